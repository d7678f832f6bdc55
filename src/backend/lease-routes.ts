/**
 * Routes follow leases: every other host's lease becomes a route in the
 * backend, its deletion or expiry removes the route, and this host's own lease
 * never becomes one. If the own lease disappears (deleted by an operator,
 * expired, taken over), the agent is told to stop.
 *
 * Snapshot first, then the store's events from the snapshot's revision; a
 * resync (compaction, reconnect gap) is just another snapshot.
 */
import { ConfigError } from '../errors';
import type { Logger } from '../log';
import { formatIpv4, formatPrefix, samePrefix, type Ipv4Prefix } from '../net/ipv4';
import type { Lease, LeaseStore, LeaseWatch } from '../subnet/lease';
import { LeaseView, type LeaseChange } from '../subnet/lease-view';
import type { Backend, PeerLease } from './backend';
import { checkPeers } from './peer-spec';

export interface LeaseRoutesOptions {
  readonly own: Lease;
  readonly network: Ipv4Prefix;
  /** Backend.Port from the shared network config: every host listens on it. */
  readonly port: number;
  readonly backendType: string;
  readonly log: Logger;
  /** The own lease is gone; the agent should stop. */
  readonly onOwnLeaseLost: (reason: string) => void;
  /** Called after every change of the route set has reached the data plane. */
  readonly onRoutesChanged?: (peers: readonly PeerLease[]) => void;
}

export class LeaseRoutes {
  private readonly store: LeaseStore;
  private readonly backend: Backend;
  private readonly options: LeaseRoutesOptions;
  private readonly view = new LeaseView();
  private readonly warned = new Set<string>();
  private watch: LeaseWatch | undefined;
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  private lost = false;

  constructor(store: LeaseStore, backend: Backend, options: LeaseRoutesOptions) {
    this.store = store;
    this.backend = backend;
    this.options = options;
  }

  /** Installs routes for every current lease, then follows changes. */
  async start(): Promise<void> {
    const snapshot = await this.store.list();
    if (this.stopped) return;
    this.view.applySnapshot(snapshot.leases);
    if (!this.ownLeasePresent()) {
      this.ownLeaseLost(`this host's lease ${formatPrefix(this.options.own.subnet)} vanished from ${this.store.description} right after it was acquired`);
      return;
    }
    await this.publish('snapshot');
    if (this.stopped) return;
    this.watch = this.store.watch(snapshot.revision, {
      onEvents: (events) => this.enqueue(this.view.applyEvents(events), 'event'),
      onResync: (snap) => this.enqueue(this.view.applySnapshot(snap.leases), 'resync'),
      onStatus: (status, detail) => {
        const log = this.options.log;
        if (status === 'disconnected') log.warn({ store: this.store.description, detail }, 'lease store unreachable; routes kept, retrying');
        else log.info({ store: this.store.description }, 'lease store connected');
      },
    });
  }

  /** Reports the loss once; nothing is applied afterwards. */
  private ownLeaseLost(reason: string): void {
    if (this.lost) return;
    this.lost = true;
    this.options.onOwnLeaseLost(reason);
  }

  private ownLeasePresent(): boolean {
    const own = this.view.get(this.options.own.subnet);
    return own !== undefined && own.attrs.publicIp === this.options.own.attrs.publicIp;
  }

  private enqueue(changes: readonly LeaseChange[], why: string): void {
    if (changes.length === 0 || this.stopped || this.lost) return;
    this.applying = this.applying.then(() => this.handle(changes, why)).catch((err: unknown) => {
      this.options.log.error({ err: (err as Error).message }, 'could not apply lease changes');
    });
  }

  private async handle(changes: readonly LeaseChange[], why: string): Promise<void> {
    if (this.stopped || this.lost) return;
    const ownSubnet = this.options.own.subnet;
    for (const change of changes) {
      if (!samePrefix(change.lease.subnet, ownSubnet)) continue;
      if (change.type === 'removed') {
        this.ownLeaseLost(`this host's lease ${formatPrefix(ownSubnet)} was deleted from ${this.store.description} (or expired)`);
        return;
      }
      if (change.lease.attrs.publicIp !== this.options.own.attrs.publicIp) {
        this.ownLeaseLost(
          `this host's lease ${formatPrefix(ownSubnet)} now belongs to ${formatIpv4(change.lease.attrs.publicIp)} in ${this.store.description}`);
        return;
      }
    }
    for (const change of changes) {
      if (samePrefix(change.lease.subnet, ownSubnet)) continue;
      this.options.log.info({
        change: change.type, subnet: formatPrefix(change.lease.subnet), publicIp: formatIpv4(change.lease.attrs.publicIp), why,
      }, 'lease change');
    }
    await this.publish(why);
  }

  /** The peers the current view yields: other hosts' valid leases of our backend type. */
  peers(): PeerLease[] {
    const { own, network, port, backendType, log } = this.options;
    const peers: PeerLease[] = [];
    for (const lease of this.view.leases()) {
      if (samePrefix(lease.subnet, own.subnet)) continue;
      const key = formatPrefix(lease.subnet);
      if (lease.attrs.backendType !== backendType) {
        if (!this.warned.has(key)) log.warn({ subnet: key, backendType: lease.attrs.backendType }, `ignoring a lease whose BackendType is not "${backendType}"`);
        this.warned.add(key);
        continue;
      }
      const peer: PeerLease = { subnet: lease.subnet, publicIp: lease.attrs.publicIp, port };
      try {
        checkPeers(network, own.subnet, [peer], [`lease ${key}`]);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        if (!this.warned.has(key)) log.warn({ subnet: key, err: err.message }, 'ignoring an unusable lease');
        this.warned.add(key);
        continue;
      }
      peers.push(peer);
    }
    return peers;
  }

  private async publish(why: string): Promise<void> {
    const peers = this.peers();
    await this.backend.replacePeers(peers);
    const list = peers.map((p) => `${formatPrefix(p.subnet)}=${formatIpv4(p.publicIp)}:${p.port}`);
    this.options.log.info({ why, count: peers.length, routes: list.length <= 16 ? list : undefined }, 'routes updated');
    if (list.length > 16) this.options.log.debug({ routes: list }, 'all routes');
    this.options.onRoutesChanged?.(peers);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.close();
    await this.applying;
  }
}
