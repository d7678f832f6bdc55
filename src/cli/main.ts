/**
 * The `weft` command line (commander). Subcommands:
 *   weft agent   run one host of the overlay
 *   weft demo    build a two-host overlay in network namespaces and show traffic crossing it
 *   weft bench   compare weft with plain routing and the kernel's vxlan (bench/harness)
 *   weft cni     install weft's CNI plugin (bin/weft-cni) for container runtimes
 *   weft status  show the running agent's lease, backend, store and per-peer traffic (--watch refreshes like top)
 *
 * flanneld's flags are written Go-style (`-iface=eth0`, `--iface eth0`,
 * `-v=2`); all of those forms are accepted.
 */
import { Command, Option } from 'commander';
import { cleanupHost } from '../agent/host-cleanup';
import { WeftError } from '../errors';
import { DEFAULT_STATE_DIR } from '../host/ledger';
import { createLogger, logFormatOption, type LogFormat } from '../log';
import { addAgentCommand, intIn } from './agent-command';
import { addBenchCommand } from '../../bench';
import { runDemo } from './demo';
import { addCniCommand } from './cni-command';
import { addStatusCommand } from './status-command';

/** Long option names of every subcommand (without dashes), for normalizeArgv. */
function knownLongOptions(program: Command = buildProgram()): Set<string> {
  const names = new Set<string>();
  for (const command of program.commands) {
    for (const option of command.options) {
      if (option.long !== undefined) names.add(option.long.replace(/^--/, ''));
    }
  }
  return names;
}

const SUBCOMMANDS = new Set(['agent', 'cleanup', 'demo', 'bench', 'cni', 'status']);

/**
 * Go's flag package takes `-name=value` and `-name value` with one dash;
 * commander wants two. Only names weft knows are rewritten, so a value that
 * happens to start with a dash is left alone. glog's verbosity (`-v=N`,
 * `--v=N`, `--v N`) becomes `-v N`, and moves after the subcommand when it
 * was written before it (`weft -v=2 agent ...`).
 */
export function normalizeArgv(args: readonly string[], known: ReadonlySet<string> = knownLongOptions()): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const v = /^--?v=(\d+)$/.exec(arg);
    const goStyle = /^-([a-z][a-z0-9_-]+)(=.*)?$/.exec(arg);
    if (v !== null) {
      out.push('-v', v[1] as string);
    } else if (arg === '--v' && i + 1 < args.length) {
      out.push('-v', args[++i] as string);
    } else if (goStyle !== null && known.has(goStyle[1] as string)) {
      out.push(`-${arg}`);
    } else {
      out.push(arg);
    }
  }
  const sub = out.findIndex((a) => SUBCOMMANDS.has(a));
  if (sub > 0) {
    const before: string[] = [];
    const moved: string[] = [];
    for (let i = 0; i < sub; i++) {
      if (out[i] === '-v' && i + 1 < sub) moved.push('-v', out[++i] as string);
      else before.push(out[i] as string);
    }
    return [...before, out[sub] as string, ...moved, ...out.slice(sub + 1)];
  }
  return out;
}

export function buildProgram(): Command {
  const program = new Command('weft')
    .description(
      "weft: flannel's udp backend rebuilt for speed. A userspace overlay network agent: pods on " +
        'different hosts talk through a TUN device, each packet carried in one UDP datagram to ' +
        "the owning host's port 8285, wire-compatible with flannel.",
    )
    .version(require('../../../package.json').version as string, '--version', 'print the version and exit')
    .showHelpAfterError()
    .configureHelp({ sortOptions: false });

  addAgentCommand(program);

  program
    .command('cleanup')
    .description(
      'Remove everything weft created on this host: routes (routing protocol 87), the devices it created (vxlan ' +
        'flannel.<VNI>), its iptables rules and nftables tables, subnet.env, and its record of them in --state-dir. ' +
        'Nothing weft did not create is touched. Stop the agent first: a stopped agent leaves its kernel routes in ' +
        'place so that pods keep talking while it restarts. Needs root.',
    )
    .addOption(new Option('--state-dir <dir>', 'the agent\'s --state-dir').default(DEFAULT_STATE_DIR).env('WEFT_STATE_DIR'))
    .addOption(new Option('-v, --verbosity <level>', 'log verbosity: 0 info, 1 debug').argParser(intIn('-v', 0, 10)).default(0))
    .addOption(logFormatOption())
    .action(async (o: { stateDir: string; verbosity: number; logFormat: LogFormat }) => {
      const r = await cleanupHost(o.stateDir, createLogger(o.verbosity, 'weft', o.logFormat));
      process.stdout.write(`weft cleanup: removed ${r.routes} route(s), ${r.links.length} device(s)${r.links.length > 0 ? ` (${r.links.join(', ')})` : ''}, ` +
        `${r.files.length} file(s); traffic rules weft added are gone\n`);
    });

  program
    .command('demo')
    .description(
      'Build two hosts with a pod behind each in network namespaces on this machine, run a weft agent ' +
        'in each host, ping and run iperf3 from pod to pod through the overlay, then remove everything. ' +
        'Needs root, iproute2, ping and iperf3.',
    )
    .addOption(new Option('--seconds <n>', 'length of the iperf3 run').argParser(intIn('--seconds', 1, 60)).default(3))
    .addOption(new Option('--keep-logs', 'print the agents\' logs at the end'))
    .action(async (o: { seconds: number; keepLogs?: boolean }) => {
      process.exitCode = await runDemo({ seconds: o.seconds, showLogs: o.keepLogs === true });
    });

  addBenchCommand(program);

  addCniCommand(program);

  addStatusCommand(program);

  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(normalizeArgv(argv.slice(2), knownLongOptions(program)), { from: 'user' });
  } catch (err) {
    if (err instanceof WeftError) {
      process.stderr.write(`weft: ${err.message}\n`);
      process.exitCode = err.code === 'WEFT_ERR_CONFIG' || err.code === 'WEFT_ERR_USAGE' ? 2 : 1;
      return;
    }
    throw err;
  }
}
