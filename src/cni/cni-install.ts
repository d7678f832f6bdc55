/**
 * `weft cni install`: puts weft's CNI plugin (native/cni, built by
 * `npm install` into build/Release/weft-cni) into a CNI bin directory, as
 * `weft-cni` and as `flannel`, so that existing conflists naming
 * `"type": "flannel"` run weft's plugin unchanged.
 *
 * Each file is replaced atomically (temp file, fsync, rename), so a runtime
 * running the old plugin at that moment is not disturbed (no ETXTBSY) and
 * never sees half a binary. A `flannel` that is not weft's (flannel's own
 * plugin) is left alone unless `force` is given.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

import { ConfigError, WeftError, toSysError } from '../errors';

export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
/** The names the plugin is installed under. */
export const CNI_PLUGIN_NAMES = ['weft-cni', 'flannel'] as const;
/** Text every build of weft's plugin carries (native/cni/cni.h, WEFT_CNI_ABOUT). */
export const WEFT_CNI_MARKER = 'weft-cni CNI plugin ';
const PLUGIN_MODE = 0o755;

/** The plugin as built in this checkout (this file is dist/src/cni/cni-install.js). */
export function builtPluginPath(): string {
  return path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'weft-cni');
}

export interface CniInstallOptions {
  readonly dir: string;
  /** Replace a `flannel` (or `weft-cni`) that is not weft's plugin. */
  readonly force?: boolean;
  /** The plugin binary to install; default builtPluginPath(). */
  readonly source?: string;
}

export interface InstalledPlugin {
  readonly path: string;
  /** What was there before: nothing, an earlier weft-cni, or another plugin (only with force). */
  readonly replaced: 'nothing' | 'weft-cni' | 'another plugin';
}

/** What is at `file` now: nothing, a build of weft's plugin, or something else. */
export async function identifyPlugin(file: string): Promise<InstalledPlugin['replaced']> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'nothing';
    throw toSysError(err, `cannot read ${file}`);
  }
  return content.includes(WEFT_CNI_MARKER) ? 'weft-cni' : 'another plugin';
}

export async function installCniPlugin(options: CniInstallOptions): Promise<InstalledPlugin[]> {
  const source = options.source ?? builtPluginPath();
  let binary: Buffer;
  try {
    binary = await readFile(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WeftError(
        'WEFT_ERR_NATIVE_LOAD',
        `weft's CNI plugin is not built (${source} is missing): run \`npm install\` in ${path.resolve(source, '..', '..', '..')} first`,
      );
    }
    throw toSysError(err, `cannot read ${source}`);
  }
  if (!binary.includes(WEFT_CNI_MARKER)) {
    throw new ConfigError('source', source, `${source} is not weft's CNI plugin`);
  }
  const dir = path.resolve(options.dir);
  const targets = CNI_PLUGIN_NAMES.map((name) => path.join(dir, name));
  const before = await Promise.all(targets.map(identifyPlugin));
  targets.forEach((target, i) => {
    if (before[i] === 'another plugin' && options.force !== true) {
      throw new ConfigError(
        '--dir',
        dir,
        `${target} is another CNI plugin, not weft's (flannel's own?): weft leaves it alone; ` +
          'pass --force to replace it, or install into another directory with --dir',
      );
    }
  });
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw toSysError(err, `cannot create the CNI bin directory ${dir}`, 'run as root, or choose another --dir');
  }
  const installed: InstalledPlugin[] = [];
  for (const [i, target] of targets.entries()) {
    await replaceFile(target, binary);
    installed.push({ path: target, replaced: before[i] as InstalledPlugin['replaced'] });
  }
  return installed;
}

async function replaceFile(target: string, content: Buffer): Promise<void> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PLUGIN_MODE);
    await handle.writeFile(content);
    await handle.chmod(PLUGIN_MODE);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, target);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw toSysError(err, `cannot install ${target}`, 'run as root, or choose another --dir');
  }
}
