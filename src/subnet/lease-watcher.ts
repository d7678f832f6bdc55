/**
 * Follows every lease in a store: the complete lease set goes to a sink once
 * at start and again after every change (one call per delivery, calls never
 * overlap), renewals that change nothing are not passed on, and this host's
 * own lease is watched: deleted, expired or taken over, the agent is told once
 * and nothing more is delivered.
 *
 * Snapshot first, then the store's events from the snapshot's revision; a
 * resync (compaction, reconnect gap) is just another snapshot. The watch opens
 * only after the first delivery was applied, from the snapshot's revision, so
 * nothing that happens in between is missed.
 */
import type { Logger } from '../log';
import { formatIpv4, formatPrefix, samePrefix } from '../net/ipv4';
import type { Lease, LeaseStore, LeaseWatch } from './lease';
import { LeaseView, type LeaseChange } from './lease-view';

/** Receives the complete lease set (this host's included); `why` is "snapshot", "event" or "resync". */
export type LeaseSink = (leases: readonly Lease[], why: string) => Promise<void>;

export interface LeaseWatcherOptions {
  readonly own: Lease;
  readonly log: Logger;
  readonly sink: LeaseSink;
  /** The own lease is gone; the agent should stop. Called at most once. */
  readonly onOwnLeaseLost: (reason: string) => void;
  /** The store's watch connection came or went (after it is logged). */
  readonly onStatus?: (status: 'connected' | 'disconnected') => void;
}

export class LeaseWatcher {
  private readonly store: LeaseStore;
  private readonly options: LeaseWatcherOptions;
  private readonly view = new LeaseView();
  private watch: LeaseWatch | undefined;
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  private lost = false;

  constructor(store: LeaseStore, options: LeaseWatcherOptions) {
    this.store = store;
    this.options = options;
  }

  /** Delivers every current lease, then follows changes. */
  async start(): Promise<void> {
    const snapshot = await this.store.list();
    if (this.stopped) return;
    this.view.applySnapshot(snapshot.leases);
    if (!this.ownLeasePresent()) {
      this.ownLeaseLost(`this host's lease ${formatPrefix(this.options.own.subnet)} vanished from ${this.store.description} right after it was acquired`);
      return;
    }
    await this.options.sink(this.view.leases(), 'snapshot');
    if (this.stopped) return;
    this.watch = this.store.watch(snapshot.revision, {
      onEvents: (events) => this.enqueue(this.view.applyEvents(events), 'event'),
      onResync: (snap) => this.enqueue(this.view.applySnapshot(snap.leases), 'resync'),
      onStatus: (status, detail) => {
        const log = this.options.log;
        if (status === 'disconnected') log.warn({ store: this.store.description, detail }, 'lease store unreachable; routes kept, retrying');
        else log.info({ store: this.store.description }, 'lease store connected');
        this.options.onStatus?.(status);
      },
    });
  }

  /** Reports the loss once; nothing is delivered afterwards. */
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
        change: change.type, subnet: formatPrefix(change.lease.subnet), publicIp: formatIpv4(change.lease.attrs.publicIp),
        backendType: change.lease.attrs.backendType === '' ? undefined : change.lease.attrs.backendType, why,
      }, 'lease change');
    }
    await this.options.sink(this.view.leases(), why);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.close();
    await this.applying;
  }
}
