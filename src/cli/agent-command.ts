/**
 * `weft agent`'s flags: flanneld's (section 5 of the reference facts), each
 * also read from FLANNELD_<NAME> in the environment, plus weft's own. The
 * flanneld flags weft cannot honour are refused with a reason, never ignored.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { runAgent, type AgentOptions } from '../agent/agent';
import { backendTypes } from '../backend/registry';
import { FAST_PATH_MODES, UDP_AGENT_DEFAULTS, type FastPathMode } from '../backend/udp/udp-options';
import { DEFAULT_STATUS_SOCKET } from '../agent/status-server';
import { weftVersion } from '../build-info';
import { UsageError } from '../errors';
import { DEFAULT_STATE_DIR } from '../host/ledger';
import { createLogger, logFormatOption, type LogFormat } from '../log';
import { validateInterfaceName } from '../net/interfaces';
import { DEFAULT_ETCD_PREFIX } from '../subnet/etcd-store';
import { DEFAULT_LEASE_FILE_PATH } from '../subnet/file-store';
import { DEFAULT_SUBNET_FILE } from '../subnet/subnet-env';

export const AGENT_DEFAULTS = {
  netConfigPath: '/etc/kube-flannel/net-conf.json',
  etcdPrefix: DEFAULT_ETCD_PREFIX,
  leaseFile: DEFAULT_LEASE_FILE_PATH,
  leaseTtlSeconds: 24 * 60 * 60,
  renewMarginMinutes: 60,
  subnetFile: DEFAULT_SUBNET_FILE,
  stateDir: DEFAULT_STATE_DIR,
  iptablesResyncSeconds: 5,
  healthzIp: '0.0.0.0',
  healthzPort: 0,
} as const;

export const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function intIn(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

export function parseBool(value: string): boolean {
  if (/^(true|t|1|yes)$/i.test(value)) return true;
  if (/^(false|f|0|no)$/i.test(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

/** FLANNELD_ETCD_ENDPOINTS style name for a flag. */
const env = (flag: string): string => `FLANNELD_${flag.toUpperCase().replace(/-/g, '_')}`;

/**
 * flanneld flags weft refuses, and why. They are refused whether given on the
 * command line or as FLANNELD_<NAME> in the environment; a value of false (or
 * an empty one) is not a request and passes.
 */
export const UNSUPPORTED_FLAGS: Readonly<Record<string, string>> = {
  'kube-subnet-mgr': 'weft has no Kubernetes subnet manager; keep leases in etcd (--etcd-endpoints) or the embedded store',
  'kube-api-url': 'weft has no Kubernetes subnet manager (see --kube-subnet-mgr)',
  'kubeconfig-file': 'weft has no Kubernetes subnet manager (see --kube-subnet-mgr)',
  'kube-annotation-prefix': 'weft has no Kubernetes subnet manager (see --kube-subnet-mgr)',
  'public-ipv6': 'weft is IPv4-only',
  'subnet-dir': 'not implemented in weft (it belongs to flannel\'s multi-network mode)',
  'set-node-network-unavailable': 'weft has no Kubernetes integration',
  vmodule: 'weft has one log level for the whole agent: use -v',
  'log_backtrace_at': 'weft logs no Go stack traces: use -v for more detail',
};

/** The value a refused flag was given, from the command line or its FLANNELD_ variable; undefined when none (or false). */
export function refusedFlagValue(name: string, fromCommandLine: unknown, environment: NodeJS.ProcessEnv): string | undefined {
  const envValue = environment[env(name)];
  const value = fromCommandLine !== undefined ? fromCommandLine : envValue;
  // Go's strconv.ParseBool false values, as flanneld reads them
  if (value === undefined || value === false || value === '' || (typeof value === 'string' && /^(false|f|0)$/i.test(value))) return undefined;
  return value === true ? 'true' : String(value);
}

function flannelOption(flags: string, description: string): Option {
  const long = /--([a-z0-9-]+)/.exec(flags)?.[1] as string;
  return new Option(flags, description).env(env(long));
}

/** weft's version (package.json). */
export function version(): string {
  return weftVersion();
}

export function addAgentCommand(program: Command): Command {
  const command = program
    .command('agent')
    .description(
      "Run one host of the overlay. By default this host's subnet is a lease: in etcd with " +
        '--etcd-endpoints (flannel\'s key layout, shareable with flanneld), otherwise in the embedded ' +
        'store (--lease-file) shared by agents on one machine. Static mode instead: --subnet plus --peer ' +
        'or --peers-file. The backend is net-conf.json\'s Backend.Type: udp, vxlan or host-gw. On ' +
        'SIGINT/SIGTERM it stops as flanneld does: the udp backend\'s TUN goes with the process; the vxlan ' +
        'device, kernel routes, neighbour/FDB entries, iptables rules and subnet.env stay, so pods keep ' +
        'talking while the agent restarts. `weft cleanup` removes everything weft created.',
    )
    .addOption(flannelOption('--net-config-path <file>', 'net-conf.json; when the file does not exist, etcd\'s <prefix>/config is used')
      .default(AGENT_DEFAULTS.netConfigPath))
    .addOption(flannelOption('--iface <name-or-ip>', 'underlay interface by name or address (repeatable, first match wins; default: the default route\'s interface)')
      .argParser(collect).default([]))
    .addOption(flannelOption('--iface-regex <regex>', 'underlay interface by regular expression on name or address (repeatable)')
      .argParser(collect).default([]))
    .addOption(flannelOption('--iface-can-reach <ip>', 'underlay interface: the one the kernel would use to reach this address (after --iface and --iface-regex)'))
    .addOption(flannelOption('--public-ip <ip>', 'address other hosts send to (default: the underlay interface\'s address)'))
    .addOption(flannelOption('--etcd-endpoints <urls>', 'comma-separated etcd URLs, e.g. http://127.0.0.1:2379 (not given: the embedded store)'))
    .addOption(flannelOption('--etcd-prefix <path>', 'etcd key prefix').default(AGENT_DEFAULTS.etcdPrefix))
    .addOption(flannelOption('--etcd-keyfile <file>', 'TLS key for etcd'))
    .addOption(flannelOption('--etcd-certfile <file>', 'TLS certificate for etcd'))
    .addOption(flannelOption('--etcd-cafile <file>', 'CA bundle for etcd\'s TLS certificate'))
    .addOption(flannelOption('--etcd-username <name>', 'etcd user'))
    .addOption(flannelOption('--etcd-password <password>', 'etcd password'))
    .addOption(new Option('--lease-file <file>', 'embedded lease store, used when --etcd-endpoints is not given')
      .default(AGENT_DEFAULTS.leaseFile).env('WEFT_LEASE_FILE'))
    .addOption(flannelOption('--subnet-lease-renew-margin <minutes>', 'renew the lease this many minutes before it expires')
      .argParser(intIn('--subnet-lease-renew-margin', 1, 1439)).default(AGENT_DEFAULTS.renewMarginMinutes))
    .addOption(new Option('--subnet-lease-ttl <seconds>', 'lease lifetime (flannel: 24 h); shorten it to test expiry. When shorter than the margin, the lease is renewed every third of it')
      .argParser(intIn('--subnet-lease-ttl', 2, 10 * 365 * 86400)).default(AGENT_DEFAULTS.leaseTtlSeconds).env('WEFT_SUBNET_LEASE_TTL'))
    .addOption(flannelOption('--subnet-file <file>', 'where to write flannel\'s subnet.env').default(AGENT_DEFAULTS.subnetFile))
    .addOption(new Option('--subnet <cidr>', "static mode: this host's subnet inside Network, e.g. 10.244.1.0/24 (no lease store)"))
    .addOption(new Option('--peer <cidr=ip[:port]>', 'static mode: another host\'s subnet and underlay address (repeatable; port defaults to Backend.Port)')
      .argParser(collect).default([]))
    .addOption(new Option('--peers-file <file>', 'static mode: file of CIDR=IP[:PORT] lines, re-read when it changes or on SIGHUP'))
    .addOption(flannelOption('--ip-masq [bool]', 'masquerade traffic leaving the overlay (nat chain FLANNEL-POSTRTG, or nftables with EnableNFTables)')
      .argParser(parseBool).default(false).preset(true))
    .addOption(flannelOption('--ip-masq-fully-random-disable [bool]', 'masquerade without --random-fully (fully-random port mapping)')
      .argParser(parseBool).default(false).preset(true))
    .addOption(flannelOption('--ip-blackhole-route [bool]', 'add a blackhole route for this host\'s lease (at the lowest priority: the bridge\'s own route wins)')
      .argParser(parseBool).default(false).preset(true))
    .addOption(flannelOption('--iptables-resync <seconds>', 'how often the iptables rules are re-checked')
      .argParser(intIn('--iptables-resync', 1, 86400)).default(AGENT_DEFAULTS.iptablesResyncSeconds))
    .addOption(flannelOption('--iptables-forward-rules [bool]', 'accept forwarding to and from the network (filter chain FLANNEL-FWD)')
      .argParser(parseBool).default(true).preset(true))
    .addOption(flannelOption('--healthz-ip <ip>', 'address for /healthz, /readyz, /metrics and /routes').default(AGENT_DEFAULTS.healthzIp))
    .addOption(flannelOption('--healthz-port <port>', 'port for /healthz, /readyz, /metrics and /routes (0 = off)')
      .argParser(intIn('--healthz-port', 0, 65535)).default(AGENT_DEFAULTS.healthzPort))
    .addOption(new Option('--status-socket <path>', 'Unix socket `weft status` asks (root only, mode 0600); give each agent on one machine its own; \'\' = none')
      .default(DEFAULT_STATUS_SOCKET).env('WEFT_STATUS_SOCKET'))
    .addOption(new Option('--kernel-resync <seconds>', 'vxlan and host-gw: how often the device, routes, neighbour and FDB entries are re-checked and restored')
      .argParser(intIn('--kernel-resync', 1, 3600)).default(10))
    .addOption(new Option('--state-dir <dir>', 'where weft records what it created on this host (for restarts and `weft cleanup`)')
      .default(AGENT_DEFAULTS.stateDir).env('WEFT_STATE_DIR'))
    .addOption(new Option('--tun-name <name>', 'udp backend: TUN device name (flannel itself uses flannel0)').default(UDP_AGENT_DEFAULTS.tunName)
      .argParser((v: string) => {
        validateInterfaceName(v, '--tun-name');
        return v;
      }))
    .addOption(new Option('--workers <n>', 'data-plane worker threads (one TUN queue each)')
      .argParser(intIn('--workers', 1, 64)).default(UDP_AGENT_DEFAULTS.workers))
    .addOption(new Option('--batch-size <n>', 'packets per system call batch')
      .argParser(intIn('--batch-size', 1, 1024)).default(UDP_AGENT_DEFAULTS.batchSize))
    .addOption(new Option('--tun-offload [bool]', 'virtio-net header with checksum/TSO offload on the TUN: reads 64 KiB TCP super-packets, split in userspace')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--udp-gso [bool]', 'send a split super-packet with one UDP_SEGMENT system call').argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--udp-gso-runs [bool]', 'send a run of equal-size packets to one peer with one UDP_SEGMENT system call (still one packet per datagram; needs --udp-gso). More small packets per second unpaced, but they arrive in bursts: off by default, it lowered the loss-free rate')
      .argParser(parseBool).default(false).preset(true))
    .addOption(new Option('--trust-outer-checksum [bool]', 'when coalescing, trust the outer UDP checksum the kernel verified instead of re-verifying each inner checksum; datagrams without an outer checksum are then refused (counted in weft_udp_socket_drops_total)')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--udp-gro [bool]', 'receive many datagrams per message with UDP_GRO').argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--tun-coalesce [bool]', 'merge consecutive TCP segments of a flow into one TUN write').argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--tun-coalesce-udp [bool]', 'merge consecutive UDP datagrams of a flow into one TUN write (kernel >= 6.2)')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--tun-txqueuelen <n>', 'packets the kernel may queue on the TUN for weft').argParser(intIn('--tun-txqueuelen', 1, 1_000_000))
      .default(UDP_AGENT_DEFAULTS.tunTxQueueLen))
    .addOption(new Option('--socket-buffer <bytes>', 'UDP receive and send buffer size').argParser(intIn('--socket-buffer', 65536, 1 << 30))
      .default(UDP_AGENT_DEFAULTS.socketBufferBytes))
    .addOption(new Option('--source-validation [bool]',
      'udp backend: deliver a datagram only if it comes from a lease\'s (or --peer\'s) public IP and carries a source address ' +
      'that host owns. =false is UNSAFE: anyone who can reach the UDP port can then inject packets into pods with any source ' +
      '(flannel\'s udp backend has no such check); turn it off only on an underlay nobody else can reach')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--peer-counters [bool]', 'udp backend: count packets, bytes and drops per peer (weft status, weft_peer_* metrics); =false only to measure their cost')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--spread-flows [bool]', 'with --workers > 1: pick the receiving worker by the inner flow (a reuseport program) and let each worker send from its own source port')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--adaptive-poll [bool]', 'after handling packets, poll for a window that grows while packets keep coming soon after and shrinks to nothing when they do not (lower latency under load, no CPU when idle)')
      .argParser(parseBool).default(false).preset(true))
    .addOption(new Option('--fast-path <mode>', 'udp backend: "bpf" encapsulates and decapsulates in the kernel (tc-BPF, flannel\'s wire format) ' +
      'what needs no userspace decision, and tells other weft hosts (lease BackendData) it takes TCP super-packets; "off" sends every packet ' +
      'through the userspace path. Default: net-conf.json Backend.FastPath, else off. Falls back to off, logged once, when the kernel or the build lacks something')
      .choices(FAST_PATH_MODES))
    .addOption(new Option('--fast-path-static-peers [bool]', 'static mode with --fast-path bpf: every --peer runs the fast path too, so it may be sent TCP super-packets ' +
      '(default: none does; a peer without it would get datagrams it cannot take)')
      .argParser(parseBool).default(false).preset(true))
    .addOption(new Option('--short-tun-reads [bool]', 'udp backend: while packets come one at a time, read one per wake-up instead of reading until the TUN is empty (one system call less per packet); =false always reads until empty')
      .argParser(parseBool).default(true).preset(true))
    .addOption(new Option('--busy-poll-us <microseconds>', 'keep polling this long after handling packets instead of sleeping: lower latency, more CPU (0 = off)')
      .argParser(intIn('--busy-poll-us', 0, 10_000)).default(0))
    .addOption(new Option('-v, --verbosity <level>', 'log verbosity: 0 info, 1 debug, 2 trace (flanneld: -v=N)')
      .argParser(intIn('-v', 0, 10)).default(0).env('FLANNELD_V'))
    .addOption(logFormatOption())
    .addOption(new Option('--version', 'print the version and exit (as flanneld --version)'));
  for (const name of Object.keys(UNSUPPORTED_FLAGS)) {
    command.addOption(new Option(`--${name} [value]`).hideHelp());
  }
  command.addHelpText('after', `\nBackends (net-conf.json Backend.Type): ${backendTypes().join(', ')}.` +
    `\nflanneld flags weft refuses (also as FLANNELD_* variables): ${Object.keys(UNSUPPORTED_FLAGS).map((n) => `--${n}`).join(', ')}.`);

  command.action(async (o: Record<string, unknown>) => {
    if (o['version'] === true) {
      process.stdout.write(`${version()}\n`);
      return;
    }
    for (const [name, why] of Object.entries(UNSUPPORTED_FLAGS)) {
      const key = command.options.find((opt) => opt.long === `--${name}`)?.attributeName() ?? name;
      const value = refusedFlagValue(name, o[key], process.env);
      if (value !== undefined) {
        const from = o[key] !== undefined ? '' : ` (from ${env(name)}=${value})`;
        throw new UsageError(`--${name} is not supported${from}: ${why}`);
      }
    }
    const endpoints = o['etcdEndpoints'] as string | undefined;
    if (o['fastPathStaticPeers'] === true && o['subnet'] === undefined) {
      throw new UsageError('--fast-path-static-peers is for static mode (--subnet, --peer): with a lease store, each host\'s lease says whether it runs the fast path');
    }
    const options: AgentOptions = {
      netConfigPath: o['netConfigPath'] as string,
      iface: o['iface'] as string[],
      ifaceRegex: o['ifaceRegex'] as string[],
      ifaceCanReach: o['ifaceCanReach'] as string | undefined,
      publicIp: o['publicIp'] as string | undefined,
      subnet: o['subnet'] as string | undefined,
      peers: o['peer'] as string[],
      peersFile: o['peersFile'] as string | undefined,
      etcd: endpoints === undefined ? undefined : {
        endpoints: endpoints.split(',').map((e) => e.trim()).filter((e) => e !== ''),
        prefix: o['etcdPrefix'] as string,
        keyFile: o['etcdKeyfile'] as string | undefined,
        certFile: o['etcdCertfile'] as string | undefined,
        caFile: o['etcdCafile'] as string | undefined,
        username: o['etcdUsername'] as string | undefined,
        password: o['etcdPassword'] as string | undefined,
      },
      leaseFile: o['leaseFile'] as string,
      leaseTtlSeconds: o['subnetLeaseTtl'] as number,
      renewMarginMinutes: o['subnetLeaseRenewMargin'] as number,
      subnetFile: o['subnetFile'] as string,
      stateDir: o['stateDir'] as string,
      kernelResyncSeconds: o['kernelResync'] as number,
      ipMasq: o['ipMasq'] as boolean,
      ipMasqRandomFullyDisable: o['ipMasqFullyRandomDisable'] as boolean,
      ipBlackholeRoute: o['ipBlackholeRoute'] as boolean,
      iptablesResyncSeconds: o['iptablesResync'] as number,
      iptablesForwardRules: o['iptablesForwardRules'] as boolean,
      healthzIp: o['healthzIp'] as string,
      healthzPort: o['healthzPort'] as number,
      statusSocket: o['statusSocket'] as string,
      udp: {
        tunName: o['tunName'] as string,
        workers: o['workers'] as number,
        batchSize: o['batchSize'] as number,
        offloads: {
          tunOffload: o['tunOffload'] as boolean,
          udpGso: o['udpGso'] as boolean,
          udpGsoRuns: o['udpGsoRuns'] as boolean,
          trustOuterChecksum: o['trustOuterChecksum'] as boolean,
          udpGro: o['udpGro'] as boolean,
          coalesceTcp: o['tunCoalesce'] as boolean,
          coalesceUdp: o['tunCoalesceUdp'] as boolean,
        },
        tunTxQueueLen: o['tunTxqueuelen'] as number,
        socketBufferBytes: o['socketBuffer'] as number,
        busyPollMicros: o['busyPollUs'] as number,
        adaptivePoll: o['adaptivePoll'] as boolean,
        shortTunReads: o['shortTunReads'] as boolean,
        spreadFlows: o['spreadFlows'] as boolean,
        icmpPerSecond: UDP_AGENT_DEFAULTS.icmpPerSecond,
        sourceValidation: o['sourceValidation'] as boolean,
        peerCounters: o['peerCounters'] as boolean,
        ...(o['fastPath'] === undefined ? {} : { fastPath: o['fastPath'] as FastPathMode }),
        fastPathStaticPeers: o['fastPathStaticPeers'] as boolean,
      },
    };
    process.exitCode = await runAgent(options, createLogger(o['verbosity'] as number, 'weft', o['logFormat'] as LogFormat));
  });
  return command;
}
