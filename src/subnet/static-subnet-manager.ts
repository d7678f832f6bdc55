/**
 * Static mode: no lease store. This host's subnet is `--subnet`; the other
 * hosts are `--peer CIDR=IP[:PORT]` flags plus an optional `--peers-file` that
 * is re-read whenever it changes (or on SIGHUP) and applied without a restart.
 * A file that does not parse is reported and the previous peers stay. Peers
 * become leases of this host's own backend type, so every backend that needs
 * nothing beyond a public IP (udp, host-gw) can run in static mode.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, toSysError } from '../errors';
import type { Logger } from '../log';
import { formatPrefix, parseCidr, prefixCovers, type Ipv4Prefix } from '../net/ipv4';
import type { Lease, LeaseAttrs } from './lease';
import type { NetConfig } from './net-config';
import { checkPeers, parsePeerSpec, parsePeersFile, type StaticPeer } from './static-peers';
import { readNetConfigFile, type LeaseSetHandlers, type PeerAcceptor, type Stoppable, type StoreState, type SubnetManager } from './subnet-manager';

export interface StaticSubnetManagerOptions {
  readonly netConfigPath: string;
  /** --subnet */
  readonly subnet: string;
  readonly peers: readonly string[];
  readonly peersFile?: string | undefined;
  readonly log: Logger;
}

/** Parses --subnet against the network. */
export function parseOwnSubnet(text: string, network: Ipv4Prefix): Ipv4Prefix {
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

export class StaticSubnetManager implements SubnetManager {
  readonly description = 'static (--subnet, --peer, --peers-file)';
  readonly configSources: string;
  readonly leasesHaveSubnetLen = false;

  unreadableLeaseValues(): number {
    return 0;
  }

  private lease: Lease | undefined;

  /** No store: nothing to lose touch with, nothing to renew. */
  state(): StoreState {
    return { connected: true, lease: this.lease, lastRenewal: undefined };
  }
  private readonly options: StaticSubnetManagerOptions;
  private readonly fromFlags: readonly StaticPeer[];
  /** The cluster network, known from checkConfig/acquireLease on. */
  private network: Ipv4Prefix | undefined;

  constructor(options: StaticSubnetManagerOptions) {
    this.options = options;
    this.configSources = options.netConfigPath;
    this.fromFlags = options.peers.map((p) => parsePeerSpec(p));
  }

  getNetworkConfig(): Promise<NetConfig | undefined> {
    return readNetConfigFile(this.options.netConfigPath);
  }

  /**
   * --subnet and every peer (flags and file) against the network, the peers
   * file's directory, and the backend: a static peer has no BackendData, so a
   * backend that needs some (vxlan's VtepMAC) cannot run in static mode.
   */
  async checkConfig(config: NetConfig, backend: PeerAcceptor): Promise<void> {
    const own = parseOwnSubnet(this.options.subnet, config.network);
    this.network = config.network;
    const peers = await this.readPeers(config.network, own);
    const probe = peers[0] ?? { subnet: own, publicIp: 0, port: undefined };
    const verdict = backend.accepts({ subnet: probe.subnet, publicIp: probe.publicIp, backendType: backend.type, backendData: undefined, port: probe.port });
    if (!verdict.ok) {
      throw new ConfigError('--subnet', this.options.subnet,
        `static mode (--subnet, --peer, --peers-file) cannot run the ${backend.type} backend: it needs what other hosts publish ` +
        `in their leases (${verdict.reason}) and a static peer has no lease; use a lease store (--etcd-endpoints or the embedded ` +
        'store), or a backend that needs only the peer\'s address (udp, host-gw)');
    }
    const file = this.options.peersFile;
    if (file !== undefined) {
      const dir = path.dirname(path.resolve(file));
      if (!(await stat(dir).then((st) => st.isDirectory(), () => false))) {
        throw new ConfigError('--peers-file', file, `--peers-file ${file}: directory ${dir} does not exist; create it first`);
      }
    }
  }

  async acquireLease(config: NetConfig, attrs: LeaseAttrs): Promise<Lease> {
    this.network = config.network;
    this.lease = { subnet: parseOwnSubnet(this.options.subnet, config.network), attrs };
    return this.lease;
  }

  keepLease(): Stoppable {
    return { stop: async () => undefined };
  }

  /** Flags plus the file's current content, checked as one set. A missing file is an empty one. */
  private async readPeers(network: Ipv4Prefix, own: Ipv4Prefix): Promise<StaticPeer[]> {
    const file = this.options.peersFile;
    let fromFile: StaticPeer[] = [];
    if (file !== undefined) {
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toSysError(err, `cannot read --peers-file ${file}`);
      }
      fromFile = parsePeersFile(text, file);
    }
    const all = [...this.fromFlags, ...fromFile];
    checkPeers(network, own, all, [...this.fromFlags.map(() => '--peer'), ...fromFile.map(() => file as string)]);
    return all;
  }

  async watchLeases(own: Lease, handlers: LeaseSetHandlers): Promise<Stoppable> {
    const { log } = this.options;
    const network = this.network ?? own.subnet;
    const toLeases = (peers: readonly StaticPeer[]): Lease[] => [
      own,
      ...peers.map((p) => ({ subnet: p.subnet, attrs: { publicIp: p.publicIp, backendType: own.attrs.backendType }, underlayPort: p.port })),
    ];
    let queue: Promise<void> = Promise.resolve();
    let stopped = false;
    // one delivery at a time; a failed one does not stop later ones
    const deliver = (why: string, peers: readonly StaticPeer[]): Promise<void> => {
      const next = queue.catch(() => undefined).then(() => (stopped ? undefined : handlers.sink(toLeases(peers), why)));
      queue = next;
      return next;
    };
    await deliver('start', await this.readPeers(network, own.subnet));
    const file = this.options.peersFile;
    if (file === undefined) return { stop: async () => undefined };
    let pending: NodeJS.Timeout | undefined;
    const reload = (why: string): void => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        this.readPeers(network, own.subnet).then(
          (peers) => deliver(why, peers).catch((err: unknown) =>
            log.error({ err: (err as Error).message, why }, 'could not apply the peers; the next change or SIGHUP tries again')),
          (err: unknown) => log.error({ err: (err as Error).message }, 'peers file rejected; keeping the previous routes'));
      }, 50);
    };
    const resolved = path.resolve(file);
    const watcher: FSWatcher = watch(path.dirname(resolved), (_event, name) => {
      if (name === path.basename(resolved)) reload('peers file changed');
    });
    const onHup = (): void => reload('SIGHUP');
    process.on('SIGHUP', onHup);
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(pending);
        watcher.close();
        process.off('SIGHUP', onHup);
        await queue.catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    // nothing held
  }
}
