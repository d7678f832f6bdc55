/**
 * `weft cni install`: puts weft's CNI plugin (bin/weft-cni) where container
 * runtimes look for plugins. The plugin itself is C (native/cni); see the
 * README's "CNI plugin" section.
 */
import { Option, type Command } from 'commander';
import { CNI_PLUGIN_NAMES, DEFAULT_CNI_BIN_DIR, installCniPlugin } from '../cni/cni-install';

export function addCniCommand(program: Command): void {
  const cni = program
    .command('cni')
    .description(
      "weft's CNI plugin (bin/weft-cni): container runtimes run it to attach containers to this host's lease, " +
        "exactly as flannel's plugin (type \"flannel\"); see the README's \"CNI plugin\" section.",
    );
  cni
    .command('install')
    .description(
      `Copy the plugin into a CNI bin directory as ${CNI_PLUGIN_NAMES.map((n) => `\`${n}\``).join(' and ')}, so that ` +
        'conflists naming "type": "flannel" run weft\'s plugin. A `flannel` that is not weft\'s is left alone unless --force.',
    )
    .addOption(new Option('--dir <dir>', 'the CNI bin directory (the runtime\'s CNI_PATH)').default(DEFAULT_CNI_BIN_DIR))
    .addOption(new Option('--force', 'replace a `flannel` (or `weft-cni`) that is another plugin'))
    .action(async (o: { dir: string; force?: boolean }) => {
      const installed = await installCniPlugin({ dir: o.dir, force: o.force === true });
      for (const p of installed) {
        const what = p.replaced === 'nothing' ? 'installed' : p.replaced === 'weft-cni' ? 'updated' : 'replaced another plugin with';
        process.stdout.write(`weft cni install: ${what} ${p.path}\n`);
      }
    });
}
