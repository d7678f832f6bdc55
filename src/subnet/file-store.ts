/**
 * FileLeaseStore: the embedded lease store used when no etcd is configured.
 * Several agents on one machine (separate processes, e.g. one per network
 * namespace) share one JSON file.
 *
 * File format ("weft-leases/1"), written with 2-space indentation, leases
 * sorted by subnet, mode 0644, in a directory created with mode 0755:
 *
 *   {
 *     "format": "weft-leases/1",
 *     "revision": 3,
 *     "config": null,                        // or the net-conf.json text, verbatim
 *     "leases": {
 *       "10.244.1.0-24": {
 *         "value": "{\"PublicIP\":\"192.168.77.1\",\"PublicIPv6\":null,\"BackendType\":\"udp\"}",
 *         "expires": 1700086400000           // epoch ms; null = reservation, never expires
 *       }
 *     }
 *   }
 *
 * - `value` is flannel's lease JSON byte for byte (encodeLeaseAttrs), so an
 *   operator reads the same text as under /coreos.com/network/subnets in etcd.
 * - `revision` goes up by one on every write (create, renew, delete,
 *   setConfig); expired leases are dropped by whichever write comes next.
 *   A missing file is an empty store at revision 0.
 * - A file that does not parse, or that breaks these rules, is a LeaseError
 *   naming the path; it is never replaced.
 *
 * Concurrency and crash safety:
 * - Readers (list, getConfig, watch) read without locking: every write
 *   replaces the file by rename (src/sys/atomic-file.ts), so a reader sees
 *   the old file or the new one, never a mix.
 * - Every read-modify-write holds the proper-lockfile lock `<path>.lock` (a
 *   directory), re-reads the file under it, writes, and releases. Within one
 *   process, operations of a store are also queued so they do not spin on
 *   the lock against each other.
 * - A lock left by a crashed process is taken over once its mtime is older
 *   than `lockStaleMs` (live holders refresh it every lockStaleMs / 2). Lock
 *   retries last about twice the stale window, so a waiter outlives a dead
 *   holder's lock.
 * - A temp file left by a crashed writer is ignored by readers and removed
 *   (with a warning) by this store's first write.
 *
 * Watching polls the file every `pollIntervalMs` and wakes up early on
 * fs.watch events for the directory (best effort). Each poll compares the
 * live (unexpired) leases with the last delivered set, so expiry is reported
 * even when nobody writes the file.
 */
import { watch as watchDirectory, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { lock as lockFile } from 'proper-lockfile';

import { LeaseError, LeaseLostError, StateError } from '../errors';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { writeFileAtomic } from '../sys/atomic-file';
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

export const LEASE_FILE_FORMAT = 'weft-leases/1';
export const DEFAULT_LEASE_FILE_PATH = '/var/lib/weft/leases.json';
export const DEFAULT_POLL_INTERVAL_MS = 200;
/** A lock directory older than this is considered abandoned (proper-lockfile's minimum is 2000). */
export const DEFAULT_LOCK_STALE_MS = 10_000;
const MIN_LOCK_STALE_MS = 2_000;
const LEASE_FILE_MODE = 0o644;
const LEASE_DIR_MODE = 0o755;
const LOCK_RETRY_MAX_TIMEOUT_MS = 100;

export interface FileLeaseStoreOptions {
  /** The shared lease file; its directory is created on the first write. */
  readonly path: string;
  /** Non-fatal trouble (a stolen lock, temp files removed, a throwing watch handler). Default: process.emitWarning. */
  readonly onWarning?: (msg: string) => void;
  /** How often watches read the file. Default 200 ms. */
  readonly pollIntervalMs?: number;
  /** Clock in epoch ms, for tests. Default Date.now. Lock staleness always uses the real clock. */
  readonly now?: () => number;
  /** When a lock left behind counts as abandoned. Default 10 s, minimum 2 s. */
  readonly lockStaleMs?: number;
}

/** One lease as stored: the raw flannel value and what it decodes to. */
interface StoredLease {
  readonly subnet: Ipv4Prefix;
  /** flannel's JSON text, as found in the file. */
  readonly value: string;
  readonly attrs: LeaseAttrs;
  /** Epoch ms; null for a reservation. */
  readonly expires: number | null;
}

/** The whole file, parsed. `leases` is keyed by subnetKeyName ("10.244.1.0-24"). */
export interface LeaseFileState {
  readonly revision: number;
  readonly config: string | null;
  readonly leases: ReadonlyMap<string, StoredLease>;
}

const EMPTY_STATE: LeaseFileState = { revision: 0, config: null, leases: new Map() };

// ---- the file format (pure) --------------------------------------------------

/**
 * Parses the text of a lease file. Throws LeaseError naming `path` and the
 * problem; the text is never repaired.
 */
export function parseLeaseFile(text: string, path: string): LeaseFileState {
  const fix = 'The file was left as it is: repair it by hand, or move it away to start with an empty store.';
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (err) {
    const what = text.trim() === '' ? 'is empty' : `is not valid JSON (${(err as Error).message})`;
    throw new LeaseError(`lease file ${path} ${what}. ${fix}`, { cause: err });
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    throw new LeaseError(`lease file ${path} must hold a JSON object with "format": "${LEASE_FILE_FORMAT}". ${fix}`);
  }
  const record = root as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (name !== 'format' && name !== 'revision' && name !== 'config' && name !== 'leases') {
      throw new LeaseError(`lease file ${path}: unknown field ${JSON.stringify(name)} (expected format, revision, config, leases). ${fix}`);
    }
  }
  if (record['format'] !== LEASE_FILE_FORMAT) {
    throw new LeaseError(`lease file ${path}: "format" is ${JSON.stringify(record['format'])}, expected "${LEASE_FILE_FORMAT}". ${fix}`);
  }
  const revision = record['revision'];
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new LeaseError(`lease file ${path}: "revision" must be a whole number >= 0, got ${JSON.stringify(revision)}. ${fix}`);
  }
  const config = record['config'];
  if (config !== null && typeof config !== 'string') {
    throw new LeaseError(`lease file ${path}: "config" must be null or the net-conf.json text as a string, got ${JSON.stringify(config)}. ${fix}`);
  }
  const leasesValue = record['leases'];
  if (typeof leasesValue !== 'object' || leasesValue === null || Array.isArray(leasesValue)) {
    throw new LeaseError(`lease file ${path}: "leases" must be an object such as {"10.244.1.0-24": {"value": "...", "expires": null}}. ${fix}`);
  }
  const leases = new Map<string, StoredLease>();
  for (const [key, entry] of Object.entries(leasesValue as Record<string, unknown>)) {
    const where = `lease file ${path}: leases[${JSON.stringify(key)}]`;
    const subnet = parseSubnetKeyName(key);
    if (subnet === undefined || subnetKeyName(subnet) !== key) {
      throw new LeaseError(`${where}: the key must be a subnet written like "10.244.1.0-24" (no host bits, no leading zeros). ${fix}`);
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new LeaseError(`${where} must be an object {"value": "<lease JSON>", "expires": <epoch ms> or null}. ${fix}`);
    }
    const { value, expires } = entry as Record<string, unknown>;
    if (typeof value !== 'string') {
      throw new LeaseError(`${where}.value must be the lease JSON as a string, got ${JSON.stringify(value)}. ${fix}`);
    }
    if (expires !== null && (typeof expires !== 'number' || !Number.isFinite(expires))) {
      throw new LeaseError(`${where}.expires must be epoch milliseconds or null, got ${JSON.stringify(expires)}. ${fix}`);
    }
    let attrs: LeaseAttrs;
    try {
      attrs = decodeLeaseAttrs(value, where);
    } catch (err) {
      throw new LeaseError(`${(err as Error).message}. ${fix}`, { cause: err });
    }
    leases.set(key, { subnet, value, attrs, expires });
  }
  return { revision, config, leases };
}

/** The text of a lease file: the documented layout, leases sorted by subnet, newline at the end. */
export function formatLeaseFile(state: LeaseFileState): string {
  const sorted = [...state.leases.values()].sort(
    (a, b) => a.subnet.network - b.subnet.network || a.subnet.length - b.subnet.length,
  );
  const leases: Record<string, { value: string; expires: number | null }> = {};
  for (const lease of sorted) leases[subnetKeyName(lease.subnet)] = { value: lease.value, expires: lease.expires };
  return `${JSON.stringify({ format: LEASE_FILE_FORMAT, revision: state.revision, config: state.config, leases }, null, 2)}\n`;
}

function isLive(lease: StoredLease, now: number): boolean {
  return lease.expires === null || lease.expires > now;
}

function toLease(stored: StoredLease): Lease {
  return {
    subnet: stored.subnet,
    attrs: stored.attrs,
    expiration: stored.expires === null ? undefined : new Date(stored.expires),
  };
}

function liveLeases(state: LeaseFileState, now: number): Map<string, StoredLease> {
  const live = new Map<string, StoredLease>();
  for (const [key, lease] of state.leases) if (isLive(lease, now)) live.set(key, lease);
  return live;
}

function snapshotOf(live: ReadonlyMap<string, StoredLease>, revision: number): LeaseSnapshot {
  const leases = [...live.values()]
    .sort((a, b) => a.subnet.network - b.subnet.network || a.subnet.length - b.subnet.length)
    .map(toLease);
  return { leases, revision };
}

/** flannel's text for `attrs` after a decode/encode round trip: field order and spacing do not matter. */
function canonicalValue(lease: StoredLease): string {
  return encodeLeaseAttrs(lease.attrs);
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

/** Reads the file; null when it does not exist. Other failures are LeaseErrors naming the path. */
async function readLeaseFileText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LeaseError(`cannot read lease file ${path} (${describeError(err)})`, { cause: err });
  }
}

// ---- the store -----------------------------------------------------------------

/** A change to apply under the lock: `state` is the file as read (expired leases included). */
type Mutation<T> = (state: LeaseFileState, now: number) => { readonly result: T; readonly next?: LeaseFileState };

export class FileLeaseStore implements LeaseStore {
  readonly kind = 'file' as const;
  /** A lease file with a value that does not decode is refused as a whole (a LeaseError), never skipped. */
  readonly unreadableValues = 0;
  readonly description: string;
  /** Absolute path of the lease file. */
  readonly path: string;

  private readonly warn: (msg: string) => void;
  private readonly pollIntervalMs: number;
  private readonly now: () => number;
  private readonly lockStaleMs: number;
  private readonly watches = new Set<FileLeaseWatch>();
  /** In-process queue of locked operations. */
  private tail: Promise<unknown> = Promise.resolve();
  private tempFilesChecked = false;
  private closed = false;

  private constructor(options: FileLeaseStoreOptions) {
    this.path = resolve(options.path);
    this.description = `file ${this.path}`;
    this.warn = options.onWarning ?? ((msg) => process.emitWarning(msg, 'WeftLeaseStoreWarning'));
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.now = options.now ?? Date.now;
    this.lockStaleMs = options.lockStaleMs ?? DEFAULT_LOCK_STALE_MS;
  }

  /**
   * Opens the store at `options.path` and reads the file once, so that a
   * damaged file is reported now (LeaseError). A missing file is fine: it is
   * created by the first write.
   */
  static async open(options: FileLeaseStoreOptions): Promise<FileLeaseStore> {
    if (typeof options.path !== 'string' || options.path === '') {
      throw new LeaseError('the lease file path is empty: give a path such as /var/lib/weft/leases.json');
    }
    const poll = options.pollIntervalMs;
    if (poll !== undefined && !(Number.isFinite(poll) && poll > 0)) {
      throw new LeaseError(`pollIntervalMs must be a positive number of milliseconds, got ${poll}`);
    }
    const stale = options.lockStaleMs;
    if (stale !== undefined && !(Number.isFinite(stale) && stale >= MIN_LOCK_STALE_MS)) {
      throw new LeaseError(`lockStaleMs must be at least ${MIN_LOCK_STALE_MS} ms, got ${stale}`);
    }
    const store = new FileLeaseStore(options);
    await store.read();
    return store;
  }

  async getConfig(): Promise<{ readonly text: string; readonly source: string } | undefined> {
    this.checkOpen();
    const state = await this.read();
    return state.config === null ? undefined : { text: state.config, source: `${this.path} (config)` };
  }

  /** Stores the network configuration text (net-conf.json) in the file; undefined removes it. */
  async setConfig(text: string | undefined): Promise<void> {
    this.checkOpen();
    const config = text ?? null;
    await this.modify((state) => ({
      result: undefined,
      next: state.config === config ? undefined : { ...state, config },
    }));
  }

  async list(): Promise<LeaseSnapshot> {
    this.checkOpen();
    const state = await this.read();
    return snapshotOf(liveLeases(state, this.now()), state.revision);
  }

  async create(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    this.checkOpen();
    const key = this.keyOf(subnet);
    const value = encodeLeaseAttrs(attrs);
    checkTtl(ttlSeconds);
    return this.modify((state, now) => {
      const existing = state.leases.get(key);
      if (existing !== undefined && isLive(existing, now)) return { result: undefined };
      const stored: StoredLease = { subnet, value, attrs, expires: expiresAt(now, ttlSeconds) };
      return { result: toLease(stored), next: withLease(state, key, stored) };
    });
  }

  /** Throws LeaseLostError (a LeaseError) when the lease is gone, expired or holds another value. */
  async renew(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease> {
    this.checkOpen();
    const key = this.keyOf(lease.subnet);
    const expected = encodeLeaseAttrs(lease.attrs);
    const value = encodeLeaseAttrs(attrs);
    checkTtl(ttlSeconds);
    return this.modify((state, now) => {
      const existing = state.leases.get(key);
      const lost = `cannot renew the lease on ${formatPrefix(lease.subnet)} in ${this.path}: it was deleted or taken by another host`;
      if (existing === undefined) throw new LeaseLostError(`${lost} (it is no longer in the file)`);
      if (!isLive(existing, now)) {
        throw new LeaseLostError(`${lost} (it expired at ${new Date(existing.expires as number).toISOString()})`);
      }
      if (canonicalValue(existing) !== expected) {
        throw new LeaseLostError(`${lost} (it now holds ${existing.value}, expected ${expected})`);
      }
      // a reservation (no expiry) stays one, as in etcd
      const expires = existing.expires === null ? null : expiresAt(now, ttlSeconds);
      const stored: StoredLease = { subnet: existing.subnet, value, attrs, expires };
      return { result: toLease(stored), next: withLease(state, key, stored) };
    });
  }

  async delete(subnet: Ipv4Prefix): Promise<void> {
    this.checkOpen();
    const key = this.keyOf(subnet);
    await this.modify((state) => {
      if (!state.leases.has(key)) return { result: undefined };
      const leases = new Map(state.leases);
      leases.delete(key);
      return { result: undefined, next: { ...state, leases } };
    });
  }

  watch(revision: number, handlers: LeaseWatchHandlers): LeaseWatch {
    this.checkOpen();
    const watch = new FileLeaseWatch(this.path, revision, handlers, {
      pollIntervalMs: this.pollIntervalMs,
      now: this.now,
      warn: this.warn,
      onClosed: (w) => this.watches.delete(w),
    });
    this.watches.add(watch);
    watch.start();
    return watch;
  }

  /** Stops every watch and waits for queued writes; later calls throw StateError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.tail;
  }

  // ---- internals ---------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new StateError(`the lease store ${this.path} is closed`);
  }

  private keyOf(subnet: Ipv4Prefix): string {
    const key = subnetKeyName(subnet);
    if (parseSubnetKeyName(key) === undefined) {
      throw new LeaseError(`${formatIpv4(subnet.network)}/${subnet.length} is not a subnet (host bits set or bad length)`);
    }
    return key;
  }

  private async read(): Promise<LeaseFileState> {
    const text = await readLeaseFileText(this.path);
    return text === null ? EMPTY_STATE : parseLeaseFile(text, this.path);
  }

  /**
   * Runs `mutate` on the current file under the inter-process lock. When it
   * returns `next`, expired leases are dropped from it, the revision goes up
   * by one and the file is replaced atomically.
   */
  private modify<T>(mutate: Mutation<T>): Promise<T> {
    const run = this.tail.then(() => this.modifyLocked(mutate));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async modifyLocked<T>(mutate: Mutation<T>): Promise<T> {
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: LEASE_DIR_MODE });
    } catch (err) {
      throw new LeaseError(`cannot create the directory of lease file ${this.path} (${describeError(err)})`, { cause: err });
    }
    let compromised: Error | undefined;
    let release: () => Promise<void>;
    try {
      release = await lockFile(this.path, {
        stale: this.lockStaleMs,
        realpath: false,
        retries: {
          // long enough to outlive the lock of a crashed holder (stale window)
          retries: Math.ceil((2 * this.lockStaleMs) / LOCK_RETRY_MAX_TIMEOUT_MS) + 5,
          minTimeout: 10,
          maxTimeout: LOCK_RETRY_MAX_TIMEOUT_MS,
          randomize: true,
        },
        onCompromised: (err) => {
          compromised = err;
          this.warn(`the lock ${this.path}.lock was lost while held (${describeError(err)})`);
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new LeaseError(
          `lease file ${this.path} stayed locked by another process (${this.path}.lock) for longer than ` +
            `${(2 * this.lockStaleMs) / 1000} s; if no weft agent is using it, remove that directory`,
          { cause: err },
        );
      }
      throw new LeaseError(`cannot lock lease file ${this.path} (${describeError(err)})`, { cause: err });
    }
    try {
      const state = await this.read();
      const now = this.now();
      const { result, next } = mutate(state, now);
      if (next === undefined) return result;
      const leases = new Map([...next.leases].filter(([, lease]) => isLive(lease, now)));
      const text = formatLeaseFile({ revision: state.revision + 1, config: next.config, leases });
      await this.removeTempFiles();
      if (compromised !== undefined) {
        throw new LeaseError(`lost the lock on lease file ${this.path} before writing; nothing was written, try again`, {
          cause: compromised,
        });
      }
      try {
        await writeFileAtomic(this.path, text, { mode: LEASE_FILE_MODE, dirMode: LEASE_DIR_MODE });
      } catch (err) {
        throw new LeaseError(`cannot write lease file ${this.path} (${describeError(err)})`, { cause: err });
      }
      return result;
    } finally {
      await release().catch((err: unknown) => {
        this.warn(`releasing the lock ${this.path}.lock failed (${describeError(err)})`);
      });
    }
  }

  /**
   * Removes temp files a crashed writer left beside the file (only writers
   * holding the lock create them, and we hold it). Once per store.
   */
  private async removeTempFiles(): Promise<void> {
    if (this.tempFilesChecked) return;
    this.tempFilesChecked = true;
    const dir = dirname(this.path);
    const prefix = `.${basename(this.path)}.`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    const leftovers = names.filter((n) => n.startsWith(prefix) && /^\d+\.[0-9a-f]+\.tmp$/.test(n.slice(prefix.length)));
    for (const name of leftovers) await rm(join(dir, name), { force: true }).catch(() => undefined);
    if (leftovers.length > 0) this.warn(`removed temp files left by an interrupted write of ${this.path}: ${leftovers.join(', ')}`);
  }
}

function checkTtl(ttlSeconds: number): void {
  if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) {
    throw new LeaseError(`a lease TTL must be a positive number of seconds, got ${ttlSeconds}`);
  }
}

function expiresAt(now: number, ttlSeconds: number): number {
  return Math.round(now + ttlSeconds * 1000);
}

function withLease(state: LeaseFileState, key: string, lease: StoredLease): LeaseFileState {
  const leases = new Map(state.leases);
  leases.set(key, lease);
  return { ...state, leases };
}

// ---- watching --------------------------------------------------------------------

interface WatchOptions {
  readonly pollIntervalMs: number;
  readonly now: () => number;
  readonly warn: (msg: string) => void;
  readonly onClosed: (watch: FileLeaseWatch) => void;
}

/**
 * Polls the lease file and turns differences between the last delivered
 * lease set and the live one into events. Polls never overlap; a wake-up
 * during a poll causes one more poll right after it.
 */
class FileLeaseWatch implements LeaseWatch {
  private readonly dir: string;
  private readonly name: string;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private first = true;
  /** Last delivered lease set. */
  private delivered = new Map<string, StoredLease>();
  private lastRevision: number;
  /** Text of the file at the last successful poll; null when it was missing. */
  private lastText: string | null | undefined;
  private lastState: LeaseFileState = EMPTY_STATE;
  private status: 'connected' | 'disconnected' | undefined;
  private lastProblem: string | undefined;

  constructor(
    private readonly path: string,
    revision: number,
    private readonly handlers: LeaseWatchHandlers,
    private readonly options: WatchOptions,
  ) {
    this.dir = dirname(path);
    this.name = basename(path);
    this.lastRevision = revision;
  }

  start(): void {
    this.wake();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.options.onClosed(this);
    await this.running;
  }

  /** Polls now, or right after the poll in progress. */
  private wake(): void {
    if (this.closed) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.poll().finally(() => {
      this.running = undefined;
      if (this.closed) return;
      if (this.again) {
        this.again = false;
        this.wake();
      } else {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.wake();
        }, this.options.pollIntervalMs);
      }
    });
  }

  /** fs.watch on the directory (the file itself is replaced on every write). Best effort; retried each poll. */
  private ensureWatcher(): void {
    if (this.watcher !== undefined || this.closed) return;
    try {
      const watcher = watchDirectory(this.dir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === this.name) this.wake();
      });
      watcher.on('error', () => {
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch {
      // the directory may not exist yet, or inotify is exhausted: polling still works
    }
  }

  private async poll(): Promise<void> {
    this.ensureWatcher();
    let text: string | null;
    let state: LeaseFileState;
    try {
      text = await readLeaseFileText(this.path);
      if (text === this.lastText) state = this.lastState;
      else state = text === null ? EMPTY_STATE : parseLeaseFile(text, this.path);
    } catch (err) {
      this.setStatus('disconnected', err instanceof Error ? err.message : String(err));
      return;
    }
    if (this.closed) return;
    this.setStatus('connected');
    const live = liveLeases(state, this.options.now());
    if (this.first) {
      this.first = false;
      if (state.revision !== this.lastRevision) {
        this.resync(live, state.revision);
      } else {
        // The caller knows the file at this revision: everything in it, expired or not.
        this.delivered = new Map(state.leases);
        this.deliverDiff(live, state.revision);
      }
    } else if (state.revision < this.lastRevision || (state.revision === this.lastRevision && text !== this.lastText)) {
      // Revision went back, or same revision with other content: another history.
      this.resync(live, state.revision);
    } else {
      this.deliverDiff(live, state.revision);
    }
    this.lastRevision = state.revision;
    this.lastText = text;
    this.lastState = state;
  }

  private deliverDiff(live: Map<string, StoredLease>, revision: number): void {
    const events: LeaseEvent[] = [];
    for (const [key, old] of this.delivered) {
      if (!live.has(key)) events.push({ type: 'delete', subnet: old.subnet });
    }
    for (const [key, lease] of live) {
      const old = this.delivered.get(key);
      if (old === undefined || old.value !== lease.value || old.expires !== lease.expires) {
        events.push({ type: 'put', lease: toLease(lease) });
      }
    }
    this.delivered = live;
    if (events.length > 0) this.call('onEvents', () => this.handlers.onEvents(events, revision));
  }

  private resync(live: Map<string, StoredLease>, revision: number): void {
    this.delivered = live;
    const snapshot = snapshotOf(live, revision);
    this.call('onResync', () => this.handlers.onResync(snapshot));
  }

  private setStatus(status: 'connected' | 'disconnected', detail?: string): void {
    if (this.closed) return;
    if (status === this.status && detail === this.lastProblem) return;
    this.status = status;
    this.lastProblem = detail;
    const onStatus = this.handlers.onStatus;
    if (onStatus !== undefined) this.call('onStatus', () => onStatus.call(this.handlers, status, detail));
  }

  /** Calls a handler; a throwing handler is reported and the watch goes on. */
  private call(what: string, fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.options.warn(`lease watch on ${this.path}: the ${what} handler threw: ${describeError(err)}`);
    }
  }
}
