/**
 * Subnet leases kept in etcd (v3 API), in flannel's layout, so weft agents and
 * flanneld can share one store:
 *
 *   <prefix>/config                 network configuration (JSON text)
 *   <prefix>/subnets/10.5.52.0-24   {"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}
 *
 * A key attached to an etcd lease expires with it; a key written without an
 * etcd lease is a reservation and never expires.
 *
 * Flow of the operations:
 *  1. create: grant an etcd lease, then `If(version(key) == 0) Then(put key with
 *     that lease) Else(get key)`; a lost race revokes the granted lease.
 *  2. renew: read the key, check that its PublicIP is still ours, grant a new
 *     lease, then `If(mod_revision(key) == what we read) Then(put with the new
 *     lease)`; the old lease is revoked when this store granted it.
 *  3. list: one range read of `<prefix>/subnets/` plus the remaining TTL of each
 *     etcd lease (cached by lease id: flannel never extends a lease, it grants a
 *     new one), like flannel's getSubnets.
 *  4. watch: an etcd watch of `<prefix>/subnets/` from revision+1. This module
 *     owns the resume revision: after a disconnect it opens a new watch from the
 *     newest revision it received, and re-lists (onResync) when etcd cancels the
 *     watch (compaction) or its revision went backwards (store restored).
 *
 * The etcd3 package (1.1.2) notes that shaped this file:
 *  - its Watcher resumes by itself after a reconnect, but it moves its resume
 *    revision to the header revision of the *create* response, before the
 *    catch-up events arrive; a disconnect during catch-up would skip them. So we
 *    never let it resume: on 'disconnected' the watcher is dropped and a fresh
 *    one is created at our own revision.
 *  - a watch canceled by the server (compaction) surfaces as an 'error' event
 *    ("Watcher canceled: ..."), with no compact revision; any cancel re-lists.
 *  - its `dialTimeout` option is declared but unused, so `dialTimeoutMs` here is
 *    a deadline on every unary request (which includes dialing).
 *  - its default fault handling (3 retries, then a 5 s per-host circuit
 *    breaker) is kept; the watch reconnect delay is ours (100 ms .. 5 s, as
 *    flannel), the library's own watch backoff is made short so that no timer
 *    outlives close() for long.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type IWatchResponse, type Watcher } from 'etcd3';
import { ConfigError, LeaseError, LeaseLostError } from '../errors';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import {
  decodeLeaseAttrs,
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
} from './lease';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';
export const DEFAULT_ETCD_DIAL_TIMEOUT_MS = 5_000;
/** Watch reconnect delays, flannel's numbers (registry.go watchSubnets). */
export const WATCH_BACKOFF_MIN_MS = 100;
export const WATCH_BACKOFF_MAX_MS = 5_000;
/** How many lease TTL look-ups list() runs at once. */
const TTL_LOOKUP_CONCURRENCY = 16;
/** The lease-expiration cache drops expired entries when it reaches this size. */
const EXPIRATION_CACHE_PRUNE_AT = 4096;
/** Renew re-reads and retries this often when the key changes under it. */
const RENEW_ATTEMPTS = 3;
/** Keep-alive pings on the gRPC connection: notice a vanished etcd host while a watch is open. */
const GRPC_KEEPALIVE_TIME_MS = 30_000;
const GRPC_KEEPALIVE_TIMEOUT_MS = 10_000;
/** Upper bound for one response (a list of many leases). */
const GRPC_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
/** close() waits at most this long for etcd to confirm a watch cancel. */
const WATCH_CANCEL_WAIT_MS = 1_000;

export interface EtcdLeaseStoreOptions {
  /** etcd client URLs with a port, e.g. http://127.0.0.1:2379 (all http or all https). */
  readonly endpoints: readonly string[];
  /** Key prefix, default /coreos.com/network (trailing slashes are ignored). */
  readonly prefix?: string;
  /** PEM files for TLS; certFile and keyFile go together. Used with https:// endpoints. */
  readonly keyFile?: string;
  readonly certFile?: string;
  readonly caFile?: string;
  /** etcd password authentication; both or neither. */
  readonly username?: string;
  readonly password?: string;
  /** Deadline of every unary request, dialing included (default 5000 ms). */
  readonly dialTimeoutMs?: number;
  /** Skipped keys and values, failed clean-ups, handler exceptions. */
  readonly onWarning?: (msg: string) => void;
  /**
   * Ask etcd for the remaining TTL of every listed or watched lease (one request
   * per etcd lease). Off by default: routing does not need other hosts'
   * expirations, and with 1,000 leases the look-ups made start-up 2x slower.
   * Expirations of leases this store granted are always known.
   */
  readonly resolveExpirations?: boolean;
}

/** What a watch needs from the store; keeps the watch class free of the client's details. */
interface WatchHost {
  readonly subnetsPrefix: string;
  openWatcher(startRevision: number): Watcher;
  toEvent(type: 'put' | 'delete', kv: IKeyValue): Promise<LeaseEvent | undefined>;
  list(): Promise<LeaseSnapshot>;
  warn(msg: string): void;
  forget(watch: EtcdLeaseWatch): void;
}

export class EtcdLeaseStore implements LeaseStore, WatchHost {
  readonly kind = 'etcd' as const;
  private unreadable = 0;
  readonly description: string;
  readonly prefix: string;
  readonly subnetsPrefix: string;
  private readonly client: Etcd3;
  private readonly onWarning: ((msg: string) => void) | undefined;
  private readonly resolveExpirations: boolean;
  /** etcd lease id this store granted, by subnet key: the only leases renew() revokes. */
  private readonly grantedLeases = new Map<string, string>();
  /** Expiration (ms since epoch) by etcd lease id. */
  private readonly leaseExpirations = new Map<string, number>();
  private readonly watches = new Set<EtcdLeaseWatch>();
  private closed = false;

  private constructor(client: Etcd3, endpoints: readonly string[], prefix: string, options: EtcdLeaseStoreOptions) {
    this.client = client;
    this.prefix = prefix;
    this.subnetsPrefix = `${prefix}/subnets/`;
    this.description = `etcd ${endpoints.join(',')} ${prefix}`;
    this.onWarning = options.onWarning;
    this.resolveExpirations = options.resolveExpirations ?? false;
  }

  /**
   * Builds a client; reads the TLS files now (ConfigError when one is
   * missing). Does not contact etcd: the first request does.
   */
  static async connect(options: EtcdLeaseStoreOptions): Promise<EtcdLeaseStore> {
    const endpoints = checkEndpoints(options.endpoints);
    const prefix = (options.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    const timeoutMs = options.dialTimeoutMs ?? DEFAULT_ETCD_DIAL_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new ConfigError('dialTimeoutMs', timeoutMs, `etcd dial timeout ${timeoutMs} ms: give a positive number of milliseconds, e.g. 5000`);
    }
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw new ConfigError(
        options.username === undefined ? '--etcd-username' : '--etcd-password',
        undefined,
        'etcd authentication needs both --etcd-username and --etcd-password',
      );
    }
    if ((options.certFile === undefined) !== (options.keyFile === undefined)) {
      throw new ConfigError(
        options.certFile === undefined ? '--etcd-certfile' : '--etcd-keyfile',
        undefined,
        'an etcd client certificate needs both --etcd-certfile and --etcd-keyfile',
      );
    }
    const secure = endpoints[0]?.startsWith('https://') === true;
    const tlsGiven = options.caFile !== undefined || options.certFile !== undefined;
    const etcdOptions: IOptions = {
      hosts: [...endpoints],
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
      grpcOptions: {
        'grpc.keepalive_time_ms': GRPC_KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': GRPC_KEEPALIVE_TIMEOUT_MS,
        'grpc.max_receive_message_length': GRPC_MAX_RECEIVE_BYTES,
      },
      faultHandling: { watchBackoff: SHORT_LIBRARY_BACKOFF },
    };
    // Read the files even when they end up unused: a wrong path is a mistake worth reporting now.
    const ca = options.caFile === undefined ? undefined : readPem('--etcd-cafile', options.caFile);
    const cert = options.certFile === undefined ? undefined : readPem('--etcd-certfile', options.certFile);
    const key = options.keyFile === undefined ? undefined : readPem('--etcd-keyfile', options.keyFile);
    if (tlsGiven && !secure) {
      options.onWarning?.(`etcd TLS files are given but the endpoints (${endpoints.join(',')}) use http://: connecting without TLS; write https:// endpoints to use TLS`);
    } else if (tlsGiven) {
      etcdOptions.credentials = {
        // grpc-js takes null for "the system's roots"; etcd3's type insists on a Buffer.
        rootCertificate: ca ?? (null as unknown as Buffer),
        ...(cert === undefined ? {} : { certChain: cert }),
        ...(key === undefined ? {} : { privateKey: key }),
      };
    }
    if (options.username !== undefined && options.password !== undefined) {
      etcdOptions.auth = { username: options.username, password: options.password };
    }
    return new EtcdLeaseStore(new Etcd3(etcdOptions), endpoints, prefix, options);
  }

  async getConfig(): Promise<{ readonly text: string; readonly source: string } | undefined> {
    const key = `${this.prefix}/config`;
    const res = await this.call(`read ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : { text: kv.value.toString('utf8'), source: `etcd ${key}` };
  }

  async list(): Promise<LeaseSnapshot> {
    const start = Buffer.from(this.subnetsPrefix);
    const res = await this.call(`list ${this.subnetsPrefix}`, () =>
      this.client.kv.range({ key: start, range_end: prefixEnd(start) }),
    );
    const parsed: { subnet: Ipv4Prefix; attrs: LeaseAttrs; kv: IKeyValue }[] = [];
    for (const kv of res.kvs) {
      const subnet = this.subnetOf(kv, true);
      const attrs = subnet === undefined ? undefined : this.attrsOf(kv);
      if (subnet !== undefined && attrs !== undefined) parsed.push({ subnet, attrs, kv });
    }
    this.pruneExpirations();
    const expirations = await mapLimit(parsed, TTL_LOOKUP_CONCURRENCY, (p) => this.expirationOf(p.kv));
    const leases = parsed.map((p, i): Lease => ({ subnet: p.subnet, attrs: p.attrs, expiration: expirations[i] }));
    return { leases, revision: Number(res.header.revision) };
  }

  async create(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    checkTtl(ttlSeconds);
    const key = this.keyOf(subnet);
    const value = encodeLeaseAttrs(attrs);
    const granted = await this.grant(key, ttlSeconds);
    let res;
    try {
      res = await this.call(`create ${key}`, () =>
        this.client.kv.txn({
          compare: [{ key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 }],
          success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: granted.id } }],
          failure: [{ request_range: { key: Buffer.from(key) } }],
        }),
      );
    } catch (err) {
      await this.revokeUnlessAttached(granted.id, key);
      throw err;
    }
    // Our own txn, retried by the client after a lost reply, fails the compare but finds our lease on the key.
    const holder = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
    if (!res.succeeded && holder?.lease !== granted.id) {
      await this.revoke(granted.id, key);
      return undefined;
    }
    this.grantedLeases.set(key, granted.id);
    return { subnet, attrs, expiration: new Date(granted.expiresAt) };
  }

  async renew(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease> {
    checkTtl(ttlSeconds);
    const key = this.keyOf(lease.subnet);
    const value = encodeLeaseAttrs(attrs);
    const what = `lease ${formatPrefix(lease.subnet)} (etcd key ${key})`;
    for (let attempt = 1; attempt <= RENEW_ATTEMPTS; attempt++) {
      const current = (await this.call(`read ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }))).kvs[0];
      if (current === undefined) {
        throw new LeaseLostError(`cannot renew ${what}: it no longer exists (deleted, or expired before renewal)`);
      }
      let holderIp: number | undefined;
      try {
        holderIp = decodeLeaseAttrs(current.value.toString('utf8'), key).publicIp;
      } catch {
        holderIp = undefined;
      }
      if (holderIp !== lease.attrs.publicIp) {
        throw new LeaseLostError(`cannot renew ${what}: it was taken by another host (value now ${current.value.toString('utf8').slice(0, 200)})`);
      }
      // A reservation (no etcd lease) stays one: rewrite the value, keep no TTL.
      const reservation = current.lease === '0';
      const granted = reservation ? undefined : await this.grant(key, ttlSeconds);
      let res;
      try {
        res = await this.call(`renew ${key}`, () =>
          this.client.kv.txn({
            compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: current.mod_revision }],
            success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: granted?.id ?? '0' } }],
            failure: [{ request_range: { key: Buffer.from(key) } }],
          }),
        );
      } catch (err) {
        if (granted !== undefined) await this.revokeUnlessAttached(granted.id, key);
        throw err;
      }
      const now = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
      const ours = res.succeeded || (granted !== undefined && now?.lease === granted.id);
      if (ours) {
        if (granted === undefined) return { subnet: lease.subnet, attrs, expiration: undefined };
        const old = this.grantedLeases.get(key);
        this.grantedLeases.set(key, granted.id);
        if (old !== undefined && old === current.lease) await this.revoke(old, key);
        return { subnet: lease.subnet, attrs, expiration: new Date(granted.expiresAt) };
      }
      if (granted !== undefined) await this.revoke(granted.id, key);
      // The key changed between our read and our write: read again.
    }
    throw new LeaseError(`cannot renew ${what}: it kept changing under us (${RENEW_ATTEMPTS} attempts); another writer is active`);
  }

  /**
   * After a write whose outcome is unknown (the request failed, but etcd may
   * have applied it): revokes the lease granted for it only when the key is
   * read back without it. Revoking a lease deletes the keys attached to it,
   * so revoking blindly could delete this host's own key; when the key cannot
   * be read either, the lease is left to expire by itself (its TTL).
   */
  private async revokeUnlessAttached(id: string, key: string): Promise<void> {
    let attached: boolean;
    try {
      const kv = (await this.client.kv.range({ key: Buffer.from(key) })).kvs[0];
      attached = kv?.lease === id;
    } catch {
      return;
    }
    if (attached) {
      this.warn(`the write of ${key} failed but was applied: etcd lease ${id} stays`);
      return;
    }
    await this.revoke(id, key);
  }

  async delete(subnet: Ipv4Prefix): Promise<void> {
    const key = this.keyOf(subnet);
    await this.call(`delete ${key}`, () => this.client.kv.deleteRange({ key: Buffer.from(key) }));
    this.grantedLeases.delete(key);
  }

  watch(revision: number, handlers: LeaseWatchHandlers): LeaseWatch {
    if (this.closed) throw new LeaseError(`${this.description}: the store is closed, cannot watch`);
    const watch = new EtcdLeaseWatch(this, revision, handlers);
    this.watches.add(watch);
    watch.start();
    return watch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    this.client.close();
  }

  // ---- WatchHost ----

  openWatcher(startRevision: number): Watcher {
    return this.client.watch().prefix(this.subnetsPrefix).startRevision(String(startRevision)).watcher();
  }

  async toEvent(type: 'put' | 'delete', kv: IKeyValue): Promise<LeaseEvent | undefined> {
    const subnet = this.subnetOf(kv, type === 'put');
    if (subnet === undefined) return undefined;
    if (type === 'delete') return { type: 'delete', subnet };
    const attrs = this.attrsOf(kv);
    // a lease overwritten with something unreadable is no lease any more (as a fresh list would say)
    if (attrs === undefined) return { type: 'delete', subnet };
    return { type: 'put', lease: { subnet, attrs, expiration: await this.expirationOf(kv) } };
  }

  warn(msg: string): void {
    this.onWarning?.(msg);
  }

  get unreadableValues(): number {
    return this.unreadable;
  }

  forget(watch: EtcdLeaseWatch): void {
    this.watches.delete(watch);
  }

  // ---- helpers ----

  private keyOf(subnet: Ipv4Prefix): string {
    return `${this.subnetsPrefix}${subnetKeyName(subnet)}`;
  }

  private subnetOf(kv: IKeyValue, warn: boolean): Ipv4Prefix | undefined {
    const key = kv.key.toString('utf8');
    const subnet = key.startsWith(this.subnetsPrefix) ? parseSubnetKeyName(key.slice(this.subnetsPrefix.length)) : undefined;
    if (subnet === undefined && warn) {
      this.warn(`skipping etcd key ${key}: not a subnet lease key such as ${this.subnetsPrefix}10.5.52.0-24`);
    }
    return subnet;
  }

  private attrsOf(kv: IKeyValue): LeaseAttrs | undefined {
    try {
      return decodeLeaseAttrs(kv.value.toString('utf8'), `etcd key ${kv.key.toString('utf8')}`);
    } catch (err) {
      this.unreadable++;
      this.warn(`skipping ${(err as Error).message}`);
      return undefined;
    }
  }

  /** undefined for a reservation (no etcd lease) or when etcd cannot say. */
  private async expirationOf(kv: IKeyValue): Promise<Date | undefined> {
    if (kv.lease === '0') return undefined;
    const known = this.leaseExpirations.get(kv.lease);
    if (known !== undefined) return new Date(known);
    if (!this.resolveExpirations) return undefined;
    try {
      const res = await this.client.leaseClient.leaseTimeToLive({ ID: kv.lease });
      // TTL -1: the lease is gone (expired a moment ago); the key's delete event follows.
      const ttl = Math.max(Number(res.TTL), 0);
      const expiresAt = Date.now() + ttl * 1000;
      if (ttl > 0) this.rememberExpiration(kv.lease, expiresAt);
      return new Date(expiresAt);
    } catch (err) {
      if (this.closed) return undefined;
      this.warn(`cannot read the TTL of etcd lease ${kv.lease} (key ${kv.key.toString('utf8')}): ${(err as Error).message}`);
      return undefined;
    }
  }

  private rememberExpiration(leaseId: string, expiresAt: number): void {
    if (this.leaseExpirations.size >= EXPIRATION_CACHE_PRUNE_AT) this.pruneExpirations();
    this.leaseExpirations.set(leaseId, expiresAt);
  }

  private pruneExpirations(): void {
    const now = Date.now();
    for (const [id, at] of this.leaseExpirations) if (at < now) this.leaseExpirations.delete(id);
  }

  private async grant(key: string, ttlSeconds: number): Promise<{ id: string; expiresAt: number }> {
    const res = await this.call(`grant a ${ttlSeconds} s lease for ${key}`, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }));
    if (res.error !== undefined && res.error !== '') throw new LeaseError(`${this.description}: grant a lease for ${key}: ${res.error}`);
    // etcd may raise a very short TTL to its minimum; trust its answer.
    const expiresAt = Date.now() + Number(res.TTL) * 1000;
    this.rememberExpiration(res.ID, expiresAt);
    return { id: res.ID, expiresAt };
  }

  /** Best effort: a lease left behind expires by itself. */
  private async revoke(id: string, key: string): Promise<void> {
    this.leaseExpirations.delete(id);
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch (err) {
      this.warn(`could not revoke etcd lease ${id} (for ${key}); it will expire by itself: ${(err as Error).message}`);
    }
  }

  /** Runs one etcd request; failures become LeaseError naming the store and the operation. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new LeaseError(`${this.description}: the store is closed (${what})`);
    try {
      return await fn();
    } catch (err) {
      throw new LeaseError(`${this.description}: ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * One watch of the subnets prefix. Deliveries run one after another on a
 * promise chain (a put needs a TTL look-up), so handlers see events in
 * revision order and a resync after them.
 */
class EtcdLeaseWatch implements LeaseWatch {
  private readonly host: WatchHost;
  private readonly handlers: LeaseWatchHandlers;
  /** Newest revision received from etcd (delivered or queued for delivery). */
  private revision: number;
  private watcher: Watcher | undefined;
  /** Bumped whenever the current watcher is dropped: its late events are ignored. */
  private generation = 0;
  private backoffMs = WATCH_BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private connected = false;
  private closed = false;

  constructor(host: WatchHost, revision: number, handlers: LeaseWatchHandlers) {
    this.host = host;
    this.revision = revision;
    this.handlers = handlers;
  }

  start(): void {
    this.open();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.host.forget(this);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const watcher = this.drop();
    if (watcher !== undefined) await cancelWithin(watcher, WATCH_CANCEL_WAIT_MS);
  }

  private open(): void {
    if (this.closed) return;
    const generation = ++this.generation;
    const watcher = this.host.openWatcher(this.revision + 1);
    this.watcher = watcher;
    const current = (): boolean => !this.closed && generation === this.generation;
    watcher.on('connected', (res: IWatchResponse) => {
      if (!current()) return;
      const head = Number(res.header.revision);
      if (head < this.revision) {
        // etcd's history is older than what we saw (restored from a backup): nothing to resume.
        this.drop();
        this.enqueueResync(`etcd is at revision ${head}, behind revision ${this.revision} already seen`);
        return;
      }
      this.backoffMs = WATCH_BACKOFF_MIN_MS;
      this.setStatus('connected');
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (current()) this.receive(res);
    });
    watcher.on('disconnected', (err: Error) => {
      if (!current()) return;
      this.drop();
      this.setStatus('disconnected', err.message);
      this.retryLater(() => this.open());
    });
    watcher.on('error', (err: Error) => {
      if (!current()) return;
      // etcd canceled the watch (its start revision was compacted, or worse): start over from a list.
      this.generation++; // the library already detached it: no cancel request
      this.watcher = undefined;
      this.enqueueResync(err.message);
    });
  }

  /** Detaches the current watcher (if any) and makes its late events stale. */
  private drop(): Watcher | undefined {
    this.generation++;
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher !== undefined && !this.closed) void watcher.cancel().catch(() => undefined);
    return watcher;
  }

  private receive(res: IWatchResponse): void {
    // Empty responses are progress notifications; events at or below our revision were seen already.
    const fresh = res.events.filter((ev) => Number(ev.kv.mod_revision) > this.revision);
    if (fresh.length === 0) return;
    const newest = Math.max(...fresh.map((ev) => Number(ev.kv.mod_revision)));
    this.revision = newest;
    this.enqueue(async () => {
      const events: LeaseEvent[] = [];
      for (const ev of fresh) {
        const event = await this.host.toEvent(ev.type === 'Delete' ? 'delete' : 'put', ev.kv);
        if (event !== undefined) events.push(event);
      }
      if (events.length > 0 && !this.closed) this.handlers.onEvents(events, newest);
    });
  }

  private enqueueResync(reason: string): void {
    this.enqueue(async () => {
      if (this.closed) return;
      let snapshot: LeaseSnapshot;
      try {
        snapshot = await this.host.list();
      } catch (err) {
        this.setStatus('disconnected', `re-listing leases after "${reason}" failed: ${(err as Error).message}`);
        this.retryLater(() => this.enqueueResync(reason));
        return;
      }
      if (this.closed) return;
      this.revision = snapshot.revision;
      this.handlers.onResync(snapshot);
      this.open();
    });
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => {
      this.host.warn(`lease watch handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    });
  }

  private retryLater(fn: () => void): void {
    if (this.closed) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, WATCH_BACKOFF_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fn();
    }, delay);
  }

  private setStatus(status: 'connected' | 'disconnected', detail?: string): void {
    if (this.closed) return;
    if (status === 'connected' && this.connected) return;
    this.connected = status === 'connected';
    try {
      this.handlers.onStatus?.(status, detail);
    } catch (err) {
      this.host.warn(`lease watch onStatus handler threw: ${(err as Error).message}`);
    }
  }
}

/** The library's own watch reconnect delay: constant and short (we reconnect ourselves). */
const SHORT_LIBRARY_BACKOFF = {
  duration: 50,
  next() {
    return SHORT_LIBRARY_BACKOFF;
  },
};

async function cancelWithin(watcher: Watcher, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    watcher.cancel().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

function checkEndpoints(endpoints: readonly string[]): string[] {
  if (endpoints.length === 0) {
    throw new ConfigError('--etcd-endpoints', '', 'no etcd endpoints: give at least one URL such as http://127.0.0.1:2379');
  }
  const out = endpoints.map((e) => {
    const m = /^(https?):\/\/([^/\s]+):(\d{1,5})\/?$/.exec(e.trim());
    if (m === null || Number(m[3]) > 65535) {
      throw new ConfigError('--etcd-endpoints', e, `etcd endpoint ${JSON.stringify(e)} is not a URL with a port such as http://127.0.0.1:2379`);
    }
    return `${m[1]}://${m[2]}:${m[3]}`;
  });
  const secure = out.filter((e) => e.startsWith('https://')).length;
  if (secure !== 0 && secure !== out.length) {
    throw new ConfigError('--etcd-endpoints', endpoints.join(','), 'etcd endpoints mix http:// and https://: use one scheme for all of them');
  }
  return out;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(flag, file, `${flag} ${file}: cannot read the file (${code}); give the path of a PEM file`);
  }
}

function checkTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new LeaseError(`a lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  }
}

/** The end of etcd's range for "every key starting with prefix". */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
