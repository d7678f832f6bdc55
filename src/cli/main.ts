/**
 * The `weft` command line (commander). Subcommands:
 *   weft agent   run one host of the overlay
 *   weft demo    build a two-host overlay in network namespaces and show traffic crossing it
 *
 * flanneld's flags are written Go-style (`-iface=eth0`, `--iface eth0`,
 * `-v=2`); all of those forms are accepted.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { WeftError } from '../errors';
import { createLogger } from '../log';
import { AGENT_DEFAULTS, runAgent, type AgentOptions } from './agent';
import { runDemo } from './demo';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function intIn(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function parseBool(value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

/** Long option names of every subcommand (without dashes), for normalizeArgv. */
function knownLongOptions(): Set<string> {
  const names = new Set<string>();
  for (const command of buildProgram().commands) {
    for (const option of command.options) {
      if (option.long !== undefined) names.add(option.long.replace(/^--/, ''));
    }
  }
  return names;
}

const SUBCOMMANDS = new Set(['agent', 'demo', 'bench']);

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
    const goStyle = /^-([a-z][a-z0-9-]+)(=.*)?$/.exec(arg);
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

  program
    .command('agent')
    .description(
      'Run one host of the overlay. Static mode: name this host\'s subnet with --subnet and the other ' +
        'hosts with --peer (repeatable) or --peers-file. Stops cleanly on SIGINT/SIGTERM and removes ' +
        'everything it created (TUN device, address, route).',
    )
    .addOption(new Option('--net-config-path <file>', 'net-conf.json with Network and Backend ({"Type":"udp","Port":8285})')
      .default(AGENT_DEFAULTS.netConfigPath).env('FLANNELD_NET_CONFIG_PATH'))
    .addOption(new Option('--iface <name-or-ip>', 'underlay interface (name or address; repeatable, first match wins; default: the default route\'s interface)')
      .argParser(collect).default([]))
    .addOption(new Option('--iface-regex <regex>', 'underlay interface by regular expression on name or address (repeatable)')
      .argParser(collect).default([]))
    .addOption(new Option('--public-ip <ip>', 'address other hosts send to (default: the underlay interface\'s address)')
      .env('FLANNELD_PUBLIC_IP'))
    .addOption(new Option('--subnet <cidr>', "this host's subnet (lease) inside Network, e.g. 10.244.1.0/24"))
    .addOption(new Option('--peer <cidr=ip[:port]>', "another host: its subnet and underlay address (repeatable; port defaults to Backend.Port)")
      .argParser(collect).default([]))
    .addOption(new Option('--peers-file <file>', 'file of peer lines CIDR=IP[:PORT]; re-read when it changes or on SIGHUP'))
    .addOption(new Option('--tun-name <name>', 'TUN device name (flannel itself uses flannel0)').default(AGENT_DEFAULTS.tunName))
    .addOption(new Option('--subnet-file <file>', 'write flannel\'s subnet.env here (off in static mode unless given)')
      .env('FLANNELD_SUBNET_FILE'))
    .addOption(new Option('--ip-masq [bool]', 'value of FLANNEL_IPMASQ in the subnet file').argParser(parseBool).default(false)
      .preset(true).env('FLANNELD_IP_MASQ'))
    .addOption(new Option('--healthz-ip <ip>', 'address for /healthz, /readyz and /metrics').default(AGENT_DEFAULTS.healthzIp)
      .env('FLANNELD_HEALTHZ_IP'))
    .addOption(new Option('--healthz-port <port>', 'port for /healthz, /readyz and /metrics (0 = off)')
      .argParser(intIn('--healthz-port', 0, 65535)).default(AGENT_DEFAULTS.healthzPort).env('FLANNELD_HEALTHZ_PORT'))
    .addOption(new Option('--workers <n>', 'data-plane worker threads (one TUN queue each)')
      .argParser(intIn('--workers', 1, 64)).default(AGENT_DEFAULTS.workers))
    .addOption(new Option('--batch-size <n>', 'packets per system call batch')
      .argParser(intIn('--batch-size', 1, 1024)).default(AGENT_DEFAULTS.batchSize))
    .addOption(new Option('-v, --verbosity <level>', 'log verbosity: 0 info, 1 debug, 2 trace (flanneld: -v=N)')
      .argParser(intIn('-v', 0, 10)).default(0))
    .action(async (o: Record<string, unknown>) => {
      const log = createLogger(o['verbosity'] as number);
      const options: AgentOptions = {
        netConfigPath: o['netConfigPath'] as string,
        iface: o['iface'] as string[],
        ifaceRegex: o['ifaceRegex'] as string[],
        publicIp: o['publicIp'] as string | undefined,
        subnet: o['subnet'] as string | undefined,
        peers: o['peer'] as string[],
        peersFile: o['peersFile'] as string | undefined,
        tunName: o['tunName'] as string,
        subnetFile: o['subnetFile'] as string | undefined,
        ipMasq: o['ipMasq'] as boolean,
        healthzIp: o['healthzIp'] as string,
        healthzPort: o['healthzPort'] as number,
        workers: o['workers'] as number,
        batchSize: o['batchSize'] as number,
      };
      process.exitCode = await runAgent(options, log);
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

  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(normalizeArgv(argv.slice(2)), { from: 'user' });
  } catch (err) {
    if (err instanceof WeftError) {
      process.stderr.write(`weft: ${err.message}\n`);
      process.exitCode = err.code === 'WEFT_ERR_CONFIG' || err.code === 'WEFT_ERR_USAGE' ? 2 : 1;
      return;
    }
    throw err;
  }
}
