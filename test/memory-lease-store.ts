/**
 * MemoryLeaseStore: an honest in-memory LeaseStore for tests, with etcd's
 * semantics where they matter:
 *
 * - one key per subnet ("10.5.1.0-24"); a write changes the store's revision
 *   by one; deleting a missing key is not a write;
 * - a lease written with a TTL expires when the clock (`now`, injectable)
 *   reaches its expiration; a lease written without one is a reservation and
 *   never expires. Expired leases disappear on the next operation or on
 *   `expireLeases()`, each as a `delete` at its own revision (etcd revokes
 *   leases one by one);
 * - `create` writes only when the key is absent (etcd `If(Version(key) == 0)`):
 *   two creates of one subnet, one wins;
 * - `renew` throws LeaseLostError when the lease is gone or holds another value
 *   than the caller's lease, and otherwise writes the new value with a fresh TTL
 *   (a reservation stays a reservation, as in flannel and EtcdLeaseStore);
 * - `watch(revision)` delivers every change after `revision`, in order,
 *   asynchronously (a microtask after the write), several pending writes in
 *   one batch. `forceResync()` makes every watch drop what it has not yet
 *   delivered and receive a complete snapshot instead (etcd compaction or a
 *   reconnect gap); `pauseWatches()` holds deliveries back so that a test can
 *   make several changes the watchers only see afterwards.
 *
 * Hooks for tests: `raceOnNextCreate` (another host creates a subnet just
 * before our create), `raceOnNextRenew` (another host rewrites our lease just
 * before our renew), `failNextRenew` (the store is unreachable once).
 * `put` and `delete` are what an operator does by hand (etcdctl put/del).
 */
import { LeaseError, LeaseLostError, StateError } from '../src/errors';
import { formatPrefix, type Ipv4Prefix } from '../src/net/ipv4';
import {
  encodeLeaseAttrs,
  parseSubnetKeyName,
  subnetKeyName,
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  type LeaseSnapshot,
  type LeaseStore,
  type LeaseWatch,
  type LeaseWatchHandlers,
} from '../src/subnet/lease';

export interface MemoryLeaseStoreOptions {
  /** Clock in epoch ms; default Date.now (so node:test's mocked Date works). */
  readonly now?: () => number;
  /** The net-conf.json text getConfig() returns; default none. */
  readonly config?: string;
  /** Shown in logs and error messages; default "memory store". */
  readonly description?: string;
}

interface Entry {
  readonly subnet: Ipv4Prefix;
  readonly attrs: LeaseAttrs;
  /** flannel's JSON text of `attrs`: what etcd would hold. */
  readonly value: string;
  /** Epoch ms; undefined for a reservation. */
  readonly expires: number | undefined;
}

interface Change {
  readonly revision: number;
  readonly event: LeaseEvent;
}

/** How often each operation was called (hooks included), for assertions. */
export interface MemoryStoreCalls {
  list: number;
  create: number;
  renew: number;
  delete: number;
}

function toLease(entry: Entry): Lease {
  return {
    subnet: entry.subnet,
    attrs: entry.attrs,
    expiration: entry.expires === undefined ? undefined : new Date(entry.expires),
  };
}

function byAddress(a: Ipv4Prefix, b: Ipv4Prefix): number {
  return a.network - b.network || a.length - b.length;
}

export class MemoryLeaseStore implements LeaseStore {
  readonly unreadableValues = 0;
  /** The memory store stands in for etcd: revisions, TTLs, create-if-absent. */
  readonly kind = 'etcd' as const;
  readonly description: string;
  readonly calls: MemoryStoreCalls = { list: 0, create: 0, renew: 0, delete: 0 };

  private readonly now: () => number;
  private config: string | undefined;
  private readonly entries = new Map<string, Entry>();
  private revision = 0;
  /** Every change since revision 0, oldest first (never compacted). */
  private readonly history: Change[] = [];
  private readonly watches = new Set<MemoryLeaseWatch>();
  private paused = false;
  private closed = false;
  private createRace: { readonly subnet: Ipv4Prefix; readonly attrs: LeaseAttrs } | undefined;
  private renewRace: LeaseAttrs | undefined;
  private renewFailure: Error | undefined;

  constructor(options: MemoryLeaseStoreOptions = {}) {
    this.now = options.now ?? (() => Date.now());
    this.config = options.config;
    this.description = options.description ?? 'memory store';
  }

  // ---- LeaseStore ---------------------------------------------------------------

  async getConfig(): Promise<{ readonly text: string; readonly source: string } | undefined> {
    this.checkOpen();
    return this.config === undefined ? undefined : { text: this.config, source: `${this.description} (config)` };
  }

  async list(): Promise<LeaseSnapshot> {
    this.checkOpen();
    this.calls.list++;
    this.expireLeases();
    return this.snapshot();
  }

  async create(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    this.checkOpen();
    this.calls.create++;
    const key = keyOf(subnet);
    checkTtl(ttlSeconds);
    this.expireLeases();
    const race = this.createRace;
    this.createRace = undefined;
    if (race !== undefined) this.write(race.subnet, race.attrs, ttlSeconds);
    if (this.entries.has(key)) return undefined;
    return toLease(this.write(subnet, attrs, ttlSeconds));
  }

  async renew(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease> {
    this.checkOpen();
    this.calls.renew++;
    const key = keyOf(lease.subnet);
    checkTtl(ttlSeconds);
    const failure = this.renewFailure;
    this.renewFailure = undefined;
    if (failure !== undefined) throw failure;
    this.expireLeases();
    const race = this.renewRace;
    this.renewRace = undefined;
    if (race !== undefined) this.write(lease.subnet, race, ttlSeconds);
    const existing = this.entries.get(key);
    const what = `cannot renew the lease on ${formatPrefix(lease.subnet)} in ${this.description}`;
    if (existing === undefined) throw new LeaseLostError(`${what}: it no longer exists (deleted or expired)`);
    const expected = encodeLeaseAttrs(lease.attrs);
    if (existing.value !== expected) {
      throw new LeaseLostError(`${what}: it now holds ${existing.value}, expected ${expected}`);
    }
    const reservation = existing.expires === undefined;
    return toLease(this.write(lease.subnet, attrs, reservation ? undefined : ttlSeconds));
  }

  async delete(subnet: Ipv4Prefix): Promise<void> {
    this.checkOpen();
    this.calls.delete++;
    this.expireLeases();
    this.remove(keyOf(subnet));
  }

  watch(revision: number, handlers: LeaseWatchHandlers): LeaseWatch {
    this.checkOpen();
    const watch = new MemoryLeaseWatch(this, handlers, (w) => this.watches.delete(w));
    this.watches.add(watch);
    // Changes after `revision` that already happened, then everything to come.
    for (const change of this.history) if (change.revision > revision) watch.enqueue(change);
    watch.schedule();
    return watch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
  }

  // ---- operator actions and test hooks ----------------------------------------

  /**
   * Writes a lease unconditionally, as an operator's `etcdctl put` would:
   * with `ttlSeconds` it expires, without it it is a reservation.
   */
  async put(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds?: number): Promise<Lease> {
    this.checkOpen();
    if (ttlSeconds !== undefined) checkTtl(ttlSeconds);
    this.expireLeases();
    return toLease(this.write(subnet, attrs, ttlSeconds));
  }

  setConfig(text: string | undefined): void {
    this.config = text;
  }

  /** The next create() (for any subnet) is preceded by another host creating `subnet` with `attrs`. */
  raceOnNextCreate(subnet: Ipv4Prefix, attrs: LeaseAttrs): void {
    this.createRace = { subnet, attrs };
  }

  /** The next renew() is preceded by another host rewriting that lease with `attrs`. */
  raceOnNextRenew(attrs: LeaseAttrs): void {
    this.renewRace = attrs;
  }

  /** The next renew() rejects with `err` and changes nothing (e.g. the store is unreachable). */
  failNextRenew(err: Error): void {
    this.renewFailure = err;
  }

  /**
   * Drops every lease whose expiration the clock has reached; each is a
   * `delete` event. Every operation does this first; call it after moving
   * the clock to have watchers told without another operation.
   */
  expireLeases(): Lease[] {
    const now = this.now();
    const expired = [...this.entries.values()]
      .filter((e) => e.expires !== undefined && e.expires <= now)
      .sort((a, b) => byAddress(a.subnet, b.subnet));
    for (const entry of expired) this.remove(keyOf(entry.subnet));
    return expired.map(toLease);
  }

  /** Every watch drops its undelivered changes and receives a complete snapshot instead. */
  forceResync(): void {
    for (const watch of this.watches) watch.requestResync();
  }

  /** Holds deliveries to watchers back until resumeWatches(). */
  pauseWatches(): void {
    this.paused = true;
  }

  resumeWatches(): void {
    this.paused = false;
    for (const watch of this.watches) watch.schedule();
  }

  /** Resolves once every watch has delivered what was pending when it was called (unless paused). */
  async flushWatches(): Promise<void> {
    // Deliveries run as microtasks; a macrotask turn runs them all, and any they queue.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  get currentRevision(): number {
    return this.revision;
  }

  /** Number of open watches (a closed watch is gone). */
  get watchCount(): number {
    return this.watches.size;
  }

  /** The lease held for `subnet` right now (expired ones excluded), without counting as a call. */
  peek(subnet: Ipv4Prefix): Lease | undefined {
    const entry = this.entries.get(keyOf(subnet));
    return entry === undefined || (entry.expires !== undefined && entry.expires <= this.now()) ? undefined : toLease(entry);
  }

  // ---- internals, used by MemoryLeaseWatch ------------------------------------------

  /** @internal */
  get deliveriesPaused(): boolean {
    return this.paused;
  }

  /** @internal The current leases, sorted by subnet, at the current revision. */
  snapshot(): LeaseSnapshot {
    const leases = [...this.entries.values()].sort((a, b) => byAddress(a.subnet, b.subnet)).map(toLease);
    return { leases, revision: this.revision };
  }

  private write(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number | undefined): Entry {
    const entry: Entry = {
      subnet: { network: subnet.network, length: subnet.length },
      attrs,
      value: encodeLeaseAttrs(attrs),
      expires: ttlSeconds === undefined ? undefined : this.now() + ttlSeconds * 1000,
    };
    this.entries.set(keyOf(subnet), entry);
    this.record({ type: 'put', lease: toLease(entry) });
    return entry;
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.record({ type: 'delete', subnet: entry.subnet });
  }

  private record(event: LeaseEvent): void {
    this.revision++;
    const change: Change = { revision: this.revision, event };
    this.history.push(change);
    for (const watch of this.watches) {
      watch.enqueue(change);
      watch.schedule();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StateError(`the lease store ${this.description} is closed`);
  }
}

/** One watcher: a queue of undelivered changes, flushed in one microtask. */
class MemoryLeaseWatch implements LeaseWatch {
  private pending: Change[] = [];
  private resyncRequested = false;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly store: MemoryLeaseStore,
    private readonly handlers: LeaseWatchHandlers,
    private readonly onClosed: (w: MemoryLeaseWatch) => void,
  ) {}

  enqueue(change: Change): void {
    if (!this.closed) this.pending.push(change);
  }

  requestResync(): void {
    if (this.closed) return;
    this.resyncRequested = true;
    this.schedule();
  }

  schedule(): void {
    if (this.closed || this.scheduled || this.store.deliveriesPaused) return;
    if (this.pending.length === 0 && !this.resyncRequested) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.onClosed(this);
  }

  private deliver(): void {
    if (this.closed || this.store.deliveriesPaused) return;
    if (this.resyncRequested) {
      this.resyncRequested = false;
      this.pending = [];
      this.handlers.onResync(this.store.snapshot());
      return;
    }
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const last = batch[batch.length - 1] as Change;
    this.handlers.onEvents(batch.map((c) => c.event), last.revision);
  }
}

function keyOf(subnet: Ipv4Prefix): string {
  const key = subnetKeyName(subnet);
  if (parseSubnetKeyName(key) === undefined) {
    throw new LeaseError(`${formatPrefix(subnet)} is not a subnet (host bits set or bad length)`);
  }
  return key;
}

function checkTtl(ttlSeconds: number): void {
  if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) {
    throw new LeaseError(`a lease TTL must be a positive number of seconds, got ${ttlSeconds}`);
  }
}
