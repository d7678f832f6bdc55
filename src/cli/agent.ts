/**
 * `weft agent`: one host of the overlay.
 *
 * Static mode (no lease store): the operator names this host's subnet with
 * --subnet and the other hosts with --peer (repeatable) and/or --peers-file
 * (re-read on SIGHUP and whenever the file changes, without a restart).
 *
 * One shutdown path: SIGINT/SIGTERM, a data-plane failure or a start-up error
 * all end in shutdown(), which removes everything weft put on the host.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Backend, PeerLease } from '../backend/backend';
import { checkPeers, parsePeerSpec, parsePeersFile } from '../backend/peer-spec';
import {
  DEFAULT_BATCH_SIZE, DEFAULT_ICMP_PER_SECOND, DEFAULT_SOCKET_BUFFER_BYTES, UdpBackend,
} from '../backend/udp-backend';
import { ConfigError, toSysError } from '../errors';
import type { Logger } from '../log';
import { loadNative } from '../native';
import { resolveUnderlay } from '../net/interfaces';
import { formatIpv4, formatPrefix, parseCidr, prefixCovers, type Ipv4Prefix } from '../net/ipv4';
import { parseNetConfig, type NetConfig } from '../subnet/net-config';
import { removeSubnetEnv, writeSubnetEnv } from '../subnet/subnet-env';
import { validateTunName } from '../tun/tun-device';
import { HealthServer } from './health-server';

export interface AgentOptions {
  readonly netConfigPath: string;
  readonly iface: readonly string[];
  readonly ifaceRegex: readonly string[];
  readonly publicIp?: string | undefined;
  readonly subnet?: string | undefined;
  readonly peers: readonly string[];
  readonly peersFile?: string | undefined;
  readonly tunName: string;
  readonly subnetFile?: string | undefined;
  readonly ipMasq: boolean;
  readonly healthzIp: string;
  readonly healthzPort: number;
  readonly workers: number;
  readonly batchSize: number;
}

export const AGENT_DEFAULTS = {
  netConfigPath: '/etc/kube-flannel/net-conf.json',
  tunName: 'flannel.0',
  healthzIp: '0.0.0.0',
  healthzPort: 0,
  workers: 1,
  batchSize: DEFAULT_BATCH_SIZE,
} as const;

export async function loadNetConfigFile(file: string): Promise<NetConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError('--net-config-path', file,
      `cannot read the network configuration ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
      'pass --net-config-path with a net-conf.json such as {"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}');
  }
  return parseNetConfig(text, file);
}

function parseOwnSubnet(text: string | undefined, network: Ipv4Prefix): Ipv4Prefix {
  if (text === undefined || text === '') {
    throw new ConfigError('--subnet', text,
      "--subnet is required in static mode: this host's subnet inside the cluster network, e.g. --subnet 10.244.1.0/24");
  }
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

/** Runs the agent until a signal or a fatal error; resolves with the exit code. */
export async function runAgent(opts: AgentOptions, log: Logger): Promise<number> {
  const config = await loadNetConfigFile(opts.netConfigPath);
  if (config.backend.type !== 'udp') {
    throw new ConfigError(`${opts.netConfigPath}: Backend.Type`, config.backend.type,
      `Backend.Type "${config.backend.type}" is not available in this weft agent yet; use "udp"`);
  }
  const port = config.backend.port;
  // Everything the operator wrote is checked before the host is touched.
  validateTunName(opts.tunName);
  const subnet = parseOwnSubnet(opts.subnet, config.network);
  const staticPeers = opts.peers.map((p) => parsePeerSpec(p, port));
  const peersFile = opts.peersFile;
  const readPeers = async (): Promise<PeerLease[]> => {
    let fromFile: PeerLease[] = [];
    if (peersFile !== undefined) {
      let text = '';
      try {
        text = await readFile(peersFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toSysError(err, `cannot read --peers-file ${peersFile}`);
      }
      fromFile = parsePeersFile(text, port, peersFile);
    }
    const all = [...staticPeers, ...fromFile];
    checkPeers(config.network, subnet, all, [...staticPeers.map(() => '--peer'), ...fromFile.map(() => peersFile as string)]);
    return all;
  };
  const initialPeers = await readPeers();
  if (peersFile !== undefined) {
    const dir = path.dirname(path.resolve(peersFile));
    if (!(await stat(dir).then((st) => st.isDirectory(), () => false))) {
      throw new ConfigError('--peers-file', peersFile, `--peers-file ${peersFile}: directory ${dir} does not exist; create it first`);
    }
  }
  const underlay = await resolveUnderlay({ iface: opts.iface, ifaceRegex: opts.ifaceRegex, publicIp: opts.publicIp });
  log.info({
    network: formatPrefix(config.network), subnet: formatPrefix(subnet), iface: underlay.name,
    publicIp: formatIpv4(underlay.publicIp), port,
  }, 'starting weft agent (static mode)');
  await warnIfForwardingOff(log);

  let backend: Backend | undefined;
  let health: HealthServer | undefined;
  let watcher: FSWatcher | undefined;
  let ready = false;
  let finishing: Promise<number> | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });

  const shutdown = (reason: string, code: number): Promise<number> => {
    if (finishing !== undefined) return finishing;
    finishing = (async () => {
      log.info({ reason }, 'stopping');
      ready = false;
      watcher?.close();
      await health?.close();
      if (backend !== undefined) {
        const totals = backend.counters();
        await backend.stop();
        log.info({ counters: totals }, 'data plane stopped');
      }
      if (opts.subnetFile !== undefined) await removeSubnetEnv(opts.subnetFile).catch(() => undefined);
      log.info('stopped; the host is as weft found it');
      resolveExit(code);
      return code;
    })();
    return finishing;
  };

  const onSignal = (sig: NodeJS.Signals): void => void shutdown(`received ${sig}`, 0);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const udp = await UdpBackend.start(loadNative(), {
      tunName: opts.tunName,
      network: config.network,
      subnet,
      bindAddress: underlay.ifaceAddress,
      underlayMtu: underlay.mtu,
      port,
      workers: opts.workers,
      batchSize: opts.batchSize,
      socketBufferBytes: DEFAULT_SOCKET_BUFFER_BYTES,
      icmpPerSecond: DEFAULT_ICMP_PER_SECOND,
      log,
    });
    backend = udp;
    udp.onFatal = (err) => {
      log.error({ err }, 'data plane failed');
      void shutdown('data plane failure', 1);
    };

    const applyPeers = async (why: string, peers?: PeerLease[]): Promise<void> => {
      const next = peers ?? (await readPeers());
      await udp.replacePeers(next);
      log.info({ why, routes: next.map((p) => `${formatPrefix(p.subnet)}=${formatIpv4(p.publicIp)}:${p.port}`) }, 'routes updated');
    };
    await applyPeers('start', initialPeers);

    if (peersFile !== undefined) {
      const file = path.resolve(peersFile);
      let pending: NodeJS.Timeout | undefined;
      const reload = (why: string): void => {
        clearTimeout(pending);
        pending = setTimeout(() => {
          applyPeers(why).catch((err: unknown) => log.error({ err }, 'peers file rejected; keeping the previous routes'));
        }, 50);
      };
      watcher = watch(path.dirname(file), (_event, name) => {
        if (name === path.basename(file)) reload('peers file changed');
      });
      process.on('SIGHUP', () => reload('SIGHUP'));
    }

    if (opts.subnetFile !== undefined) {
      await writeSubnetEnv(opts.subnetFile, { network: config.network, subnet, mtu: udp.mtu, ipMasq: opts.ipMasq });
      log.info({ file: opts.subnetFile }, 'subnet file written');
    }
    if (opts.healthzPort > 0) {
      health = await HealthServer.listen(opts.healthzIp, opts.healthzPort, {
        isReady: () => ready,
        counterBlocks: () => udp.counterBlocks(),
        routeCount: () => udp.peers().length,
      });
      log.info({ address: `${opts.healthzIp}:${health.port}` }, 'serving /healthz, /readyz and /metrics');
    }
    ready = true;
    log.info('ready');
  } catch (err) {
    await shutdown('start-up failed', 1);
    throw err;
  }
  const code = await exited;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

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
