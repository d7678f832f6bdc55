/**
 * `weft agent`: one host of the overlay.
 *
 * Lease mode (default): this host's subnet is a lease in a store — etcd in
 * flannel's layout with --etcd-endpoints, otherwise the embedded file store
 * (--lease-file) for several agents on one machine. Other hosts' leases
 * become routes as they appear, change and expire.
 *
 * Static mode (--subnet): no store; the operator names the other hosts with
 * --peer and/or --peers-file.
 *
 * Start-up checks everything the operator wrote before it touches the host.
 * Every resource is registered as it is created; one shutdown path (signal,
 * lost lease, data-plane failure, start-up error) releases them in reverse.
 */
import { readFile } from 'node:fs/promises';
import type { Backend } from '../backend/backend';
import { IptablesRules } from '../backend/iptables';
import { LeaseRoutes } from '../backend/lease-routes';
import {
  DEFAULT_BATCH_SIZE, DEFAULT_ICMP_PER_SECOND, DEFAULT_SOCKET_BUFFER_BYTES, DEFAULT_TUN_TXQUEUELEN, UdpBackend,
  type RequestedOffloads,
} from '../backend/udp-backend';
import { ConfigError } from '../errors';
import type { Logger } from '../log';
import { loadNative } from '../native';
import { resolveUnderlay } from '../net/interfaces';
import { formatIpv4, formatPrefix, parseCidr, prefixCovers, type Ipv4Prefix } from '../net/ipv4';
import { DEFAULT_ETCD_PREFIX, EtcdLeaseStore } from '../subnet/etcd-store';
import { DEFAULT_LEASE_FILE_PATH, FileLeaseStore } from '../subnet/file-store';
import type { Lease, LeaseStore } from '../subnet/lease';
import { acquireLease } from '../subnet/lease-allocator';
import { LeaseKeeper } from '../subnet/lease-keeper';
import { parseNetConfig, type NetConfig } from '../subnet/net-config';
import { DEFAULT_SUBNET_FILE, readSubnetEnv, writeSubnetEnv } from '../subnet/subnet-env';
import { validateTunName } from '../tun/tun-device';
import { HealthServer } from './health-server';
import { StaticPeers } from './static-peers';

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly keyFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly caFile?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
}

export interface AgentOptions {
  readonly netConfigPath: string;
  readonly iface: readonly string[];
  readonly ifaceRegex: readonly string[];
  readonly publicIp?: string | undefined;
  /** Static mode: this host's subnet. */
  readonly subnet?: string | undefined;
  readonly peers: readonly string[];
  readonly peersFile?: string | undefined;
  /** Lease mode with etcd; undefined = the embedded store. */
  readonly etcd?: EtcdOptions | undefined;
  readonly leaseFile: string;
  readonly leaseTtlSeconds: number;
  readonly renewMarginMinutes: number;
  readonly tunName: string;
  readonly subnetFile: string;
  readonly ipMasq: boolean;
  readonly iptablesResyncSeconds: number;
  readonly iptablesForwardRules: boolean;
  readonly healthzIp: string;
  readonly healthzPort: number;
  readonly workers: number;
  readonly batchSize: number;
  readonly offloads: RequestedOffloads;
  readonly tunTxQueueLen: number;
  readonly socketBufferBytes: number;
  readonly busyPollMicros: number;
}

export const AGENT_DEFAULTS = {
  netConfigPath: '/etc/kube-flannel/net-conf.json',
  etcdPrefix: DEFAULT_ETCD_PREFIX,
  leaseFile: DEFAULT_LEASE_FILE_PATH,
  leaseTtlSeconds: 24 * 60 * 60,
  renewMarginMinutes: 60,
  tunName: 'flannel.0',
  subnetFile: DEFAULT_SUBNET_FILE,
  iptablesResyncSeconds: 5,
  healthzIp: '0.0.0.0',
  healthzPort: 0,
  workers: 1,
  batchSize: DEFAULT_BATCH_SIZE,
  tunTxQueueLen: DEFAULT_TUN_TXQUEUELEN,
  socketBufferBytes: DEFAULT_SOCKET_BUFFER_BYTES,
} as const;

/** Exit codes: 0 clean stop on a signal, 1 failure at run time, 2 bad configuration. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

/**
 * The network configuration: the --net-config-path file, or — when that file
 * does not exist — the one kept in the lease store (etcd's <prefix>/config).
 */
export async function loadNetConfig(file: string, store: LeaseStore | undefined): Promise<NetConfig> {
  let text: string | undefined;
  let missing = false;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      throw new ConfigError('--net-config-path', file, `cannot read the network configuration ${file} (${code ?? String(err)})`);
    }
    missing = true;
  }
  if (text !== undefined) return parseNetConfig(text, file);
  const stored = missing && store !== undefined ? await store.getConfig() : undefined;
  if (stored !== undefined) return parseNetConfig(stored.text, stored.source);
  const where = store?.kind === 'etcd' ? `, and ${store.description} holds no config key either` : '';
  throw new ConfigError('--net-config-path', file,
    `cannot read the network configuration ${file} (ENOENT)${where}; ` +
    'pass --net-config-path with a net-conf.json such as {"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}' +
    (store?.kind === 'etcd' ? ' or put one at <prefix>/config in etcd' : ''));
}

function parseOwnSubnet(text: string, network: Ipv4Prefix): Ipv4Prefix {
  const cidr = parseCidr(text);
  if (cidr === undefined) throw new ConfigError('--subnet', text, `--subnet "${text}" is not an IPv4 CIDR (example: 10.244.1.0/24)`);
  if (cidr.address !== cidr.prefix.network) {
    throw new ConfigError('--subnet', text, `--subnet ${text} has host bits set; did you mean ${formatPrefix(cidr.prefix)}?`);
  }
  if (!prefixCovers(network, cidr.prefix) || cidr.prefix.length === network.length) {
    throw new ConfigError('--subnet', text,
      `--subnet ${text} must be a subnet inside the cluster network ${formatPrefix(network)} (and smaller than it)`);
  }
  return cidr.prefix;
}

function checkModeFlags(opts: AgentOptions): void {
  if (opts.subnet !== undefined && opts.etcd !== undefined) {
    throw new ConfigError('--subnet', opts.subnet,
      '--subnet (static mode) and --etcd-endpoints cannot be combined: with etcd the subnet is leased; drop one of them');
  }
  if (opts.subnet === undefined && (opts.peers.length > 0 || opts.peersFile !== undefined)) {
    throw new ConfigError(opts.peers.length > 0 ? '--peer' : '--peers-file', opts.peers[0] ?? opts.peersFile,
      '--peer and --peers-file belong to static mode and need --subnet; with a lease store, routes come from the other hosts\' leases');
  }
  if (opts.leaseTtlSeconds < 2) {
    throw new ConfigError('--subnet-lease-ttl', opts.leaseTtlSeconds, '--subnet-lease-ttl must be at least 2 seconds');
  }
}

export async function openLeaseStore(opts: AgentOptions, log: Logger): Promise<LeaseStore> {
  const onWarning = (msg: string): void => log.warn(msg);
  if (opts.etcd !== undefined) {
    return EtcdLeaseStore.connect({ ...opts.etcd, endpoints: [...opts.etcd.endpoints], onWarning });
  }
  return FileLeaseStore.open({ path: opts.leaseFile, onWarning });
}

/** Runs the agent until a signal or a fatal error; resolves with the exit code. */
export async function runAgent(opts: AgentOptions, log: Logger): Promise<number> {
  checkModeFlags(opts);
  validateTunName(opts.tunName);

  const cleanups: Array<{ what: string; run: () => Promise<void> | void }> = [];
  const onCleanup = (what: string, run: () => Promise<void> | void): void => {
    cleanups.push({ what, run });
  };
  let ready = false;
  let started = false;
  let subnetFileWritten = false;
  let finishing: Promise<number> | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });

  /** Runs every registered clean-up, newest first, including ones registered while it runs. */
  const drain = async (): Promise<void> => {
    for (let c = cleanups.pop(); c !== undefined; c = cleanups.pop()) {
      try {
        await c.run();
      } catch (err) {
        log.error({ err: (err as Error).message, what: c.what }, 'clean-up step failed');
      }
    }
  };
  const shutdown = (reason: string, code: number): Promise<number> => {
    if (finishing !== undefined) return finishing;
    finishing = (async () => {
      // a start-up failure is reported once, by the caller; a stop asked for during start-up is said here
      if (started) (code === EXIT_OK ? log.info.bind(log) : log.error.bind(log))({ reason }, 'stopping');
      else if (code === EXIT_OK) log.info({ reason }, 'stopping during start-up');
      else log.debug({ reason }, 'start-up failed; undoing what was done');
      ready = false;
      await drain();
      if (started || subnetFileWritten) {
        log.info(subnetFileWritten ? { kept: opts.subnetFile } : {}, 'stopped; everything weft set up on this host is removed');
      }
      resolveExit(code);
      return code;
    })();
    return finishing;
  };
  const onSignal = (sig: NodeJS.Signals): void => void shutdown(`received ${sig}`, EXIT_OK);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  onCleanup('signal handlers', () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });

  /** Start-up stops at the next checkpoint once a stop was asked for (signal, lost lease, failure). */
  const checkpoint = (): void => {
    if (finishing !== undefined) throw new StartAborted();
  };

  let backend: UdpBackend | undefined;
  try {
    // --- configuration: nothing on the host changes until all of it is known to be good
    const store = opts.subnet === undefined ? await openLeaseStore(opts, log) : undefined;
    if (store !== undefined) onCleanup('lease store', () => store.close());
    checkpoint();
    const config = await loadNetConfig(opts.netConfigPath, store);
    if (config.backend.type !== 'udp') {
      throw new ConfigError(`${opts.netConfigPath}: Backend.Type`, config.backend.type,
        `Backend.Type "${config.backend.type}" is not available in this weft agent yet; use "udp"`);
    }
    const port = config.backend.port;
    const staticSubnet = opts.subnet === undefined ? undefined : parseOwnSubnet(opts.subnet, config.network);
    const staticPeers = staticSubnet === undefined ? undefined : await StaticPeers.prepare({
      peers: opts.peers, peersFile: opts.peersFile, port, network: config.network, subnet: staticSubnet,
    });
    const underlay = await resolveUnderlay({ iface: opts.iface, ifaceRegex: opts.ifaceRegex, publicIp: opts.publicIp });
    log.info({
      mode: store === undefined ? 'static' : `lease (${store.description})`,
      network: formatPrefix(config.network), iface: underlay.name, publicIp: formatIpv4(underlay.publicIp), port,
    }, 'starting weft agent');
    await warnIfForwardingOff(log);

    if (opts.healthzPort > 0) {
      const health = await HealthServer.listen(opts.healthzIp, opts.healthzPort, {
        isReady: () => ready,
        counterBlocks: () => backend?.counterBlocks() ?? [],
        routes: () => backend?.peers() ?? [],
      });
      onCleanup('health server', () => health.close());
      checkpoint();
      log.info({ address: `${opts.healthzIp}:${health.port}` }, 'serving /healthz, /readyz, /metrics and /routes');
    }

    // --- this host's subnet
    const attrs = { publicIp: underlay.publicIp, backendType: 'udp' };
    let subnet: Ipv4Prefix;
    let lease: Lease | undefined;
    if (store === undefined) {
      subnet = staticSubnet as Ipv4Prefix;
    } else {
      const previous = await readSubnetEnv(opts.subnetFile).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'ignoring the previous subnet file');
        return undefined;
      });
      lease = await acquireLease(store, config, attrs, {
        previous: previous?.subnet, ttlSeconds: opts.leaseTtlSeconds, log,
      });
      subnet = lease.subnet;
      log.info({ subnet: formatPrefix(subnet), expires: lease.expiration?.toISOString() }, 'lease acquired');
      checkpoint();
    }

    // --- the data plane
    backend = await UdpBackend.start(loadNative(), {
      tunName: opts.tunName,
      network: config.network,
      subnet,
      bindAddress: underlay.ifaceAddress,
      underlayMtu: underlay.mtu,
      port,
      workers: opts.workers,
      batchSize: opts.batchSize,
      socketBufferBytes: opts.socketBufferBytes,
      icmpPerSecond: DEFAULT_ICMP_PER_SECOND,
      offloads: opts.offloads,
      tunTxQueueLen: opts.tunTxQueueLen,
      busyPollMicros: opts.busyPollMicros,
      log,
    });
    const dataPlane: Backend = backend;
    onCleanup('data plane', async () => {
      const totals = dataPlane.counters();
      await dataPlane.stop();
      log.info({ counters: totals }, 'data plane stopped');
    });
    backend.onFatal = (err) => {
      log.error({ err }, 'data plane failed');
      void shutdown('data plane failure', EXIT_FAILURE);
    };
    checkpoint();

    const rules = new IptablesRules({
      ipMasq: opts.ipMasq, forwardRules: opts.iptablesForwardRules, network: config.network, lease: subnet,
      resyncSeconds: opts.iptablesResyncSeconds, log,
    });
    if (rules.active) {
      onCleanup('iptables rules', () => rules.stop());
      await rules.start();
      checkpoint();
    }

    // --- routes
    if (staticPeers !== undefined) {
      onCleanup('peers file watcher', () => staticPeers.stop());
      await staticPeers.start(dataPlane, log);
      checkpoint();
    } else if (store !== undefined && lease !== undefined) {
      const routes = new LeaseRoutes(store, dataPlane, {
        own: lease, network: config.network, port, backendType: 'udp', log,
        onOwnLeaseLost: (reason) => void shutdown(reason, EXIT_FAILURE),
      });
      onCleanup('lease watch', () => routes.stop());
      await routes.start();
      checkpoint();
      const keeper = new LeaseKeeper(store, lease, attrs, {
        ttlSeconds: opts.leaseTtlSeconds,
        marginSeconds: opts.renewMarginMinutes * 60,
        log,
        onLost: (err) => void shutdown(err.message, EXIT_FAILURE),
      });
      onCleanup('lease renewal', () => keeper.stop());
      keeper.start();
    }

    // --- subnet.env last: the CNI plugin may act on it at once
    await writeSubnetEnv(opts.subnetFile, { network: config.network, subnet, mtu: dataPlane.mtu, ipMasq: opts.ipMasq });
    subnetFileWritten = true;
    log.info({ file: opts.subnetFile, subnet: formatPrefix(subnet), mtu: dataPlane.mtu }, 'subnet file written');
    checkpoint();
    started = true;
    ready = true;
    log.info('ready');
  } catch (err) {
    if (err instanceof StartAborted) {
      // a stop was asked for while starting: finish it, including anything registered since
      await finishing;
      await drain();
      return exited;
    }
    await shutdown((err as Error).message, EXIT_FAILURE);
    await drain();
    throw err;
  }
  return exited;
}

/** Thrown at a start-up checkpoint after a stop was asked for; never leaves runAgent. */
class StartAborted extends Error {}

async function warnIfForwardingOff(log: Logger): Promise<void> {
  try {
    const v = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
    if (v !== '1') {
      log.warn('net.ipv4.ip_forward is 0 on this host: pods behind it will not reach the overlay until it is 1 (sysctl -w net.ipv4.ip_forward=1)');
    }
  } catch {
    // not Linux procfs: nothing to say
  }
}
