/**
 * The host ledger: what weft itself created on this host, kept in
 * `<state-dir>/host-state.json` (written atomically) so that a later run and
 * `weft cleanup` can tell weft's objects from anyone else's:
 *
 *   link            a device weft created (vxlan `flannel.<VNI>`), with its MAC so
 *                   that a re-created device keeps the address peers know
 *   iptables-rule   a rule weft added that was not there before (e.g. the jump
 *                   from POSTROUTING), never one a flanneld left
 *   iptables-chain  a chain weft created
 *   nft-table       an nftables table weft created
 *   file            a file weft wrote (subnet.env)
 *
 * Routes need no entry: every route weft adds carries the routing protocol
 * number WEFT_ROUTE_PROTO (`ip route show proto 87`). Neighbour and FDB
 * entries live on weft's own device and go with it.
 *
 * One agent per state directory; entries change rarely (start, first
 * install), never per packet or per peer.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, toSysError } from '../errors';
import { loadNative } from '../native';
import { writeFileAtomic } from '../sys/atomic-file';

export const DEFAULT_STATE_DIR = '/var/lib/weft';
/**
 * The state directory's lock: an flock on this file, which the kernel drops
 * when its holder dies (even by SIGKILL), so a restarted agent never waits
 * for a dead one and two starting processes can never both hold it.
 */
export const LOCK_FILE_NAME = 'state.lock';
/** How long a process waits for a live holder (an agent still stopping) before it gives up. */
const LOCK_WAIT_MS = 5000;
const LOCK_RETRY_MS = 100;
export const LEDGER_FILE_NAME = 'host-state.json';
const LEDGER_VERSION = 1;

export type LedgerEntry =
  | { readonly kind: 'link'; readonly name: string; readonly linkKind: string; readonly mac?: string | undefined }
  | { readonly kind: 'iptables-rule'; readonly table: string; readonly chain: string; readonly spec: readonly string[] }
  | { readonly kind: 'iptables-chain'; readonly table: string; readonly chain: string }
  | { readonly kind: 'nft-table'; readonly family: string; readonly name: string }
  | { readonly kind: 'file'; readonly path: string };

export type LedgerKind = LedgerEntry['kind'];
type EntryOf<K extends LedgerKind> = Extract<LedgerEntry, { kind: K }>;

/** The identity of an entry: two entries with the same key are the same object (a link's MAC may change). */
export function ledgerKey(entry: LedgerEntry): string {
  switch (entry.kind) {
    case 'link':
      return `link ${entry.name}`;
    case 'iptables-rule':
      return `iptables-rule ${entry.table} ${entry.chain} ${entry.spec.join(' ')}`;
    case 'iptables-chain':
      return `iptables-chain ${entry.table} ${entry.chain}`;
    case 'nft-table':
      return `nft-table ${entry.family} ${entry.name}`;
    case 'file':
      return `file ${entry.path}`;
  }
}

interface LedgerFile {
  readonly version: number;
  readonly entries: LedgerEntry[];
}

export class HostLedger {
  readonly file: string;
  private readonly entries = new Map<string, LedgerEntry>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(file: string, entries: readonly LedgerEntry[]) {
    this.file = file;
    for (const e of entries) this.entries.set(ledgerKey(e), e);
  }

  /** Reads `<dir>/host-state.json`; a missing file is an empty ledger (the directory is created on first write). */
  static async open(dir: string): Promise<HostLedger> {
    const file = path.join(dir, LEDGER_FILE_NAME);
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toSysError(err, `cannot read weft's host state ${file}`);
    }
    if (text === undefined) return new HostLedger(file, []);
    await checkTrusted(file);
    return new HostLedger(file, parseLedger(text, file));
  }

  /**
   * Holds the state directory for this process (an agent, or `weft cleanup`)
   * until the returned release: two agents sharing one ledger would overwrite
   * each other's entries, and a cleanup under a running agent would pull its
   * routes away. A holder that died has let go (the kernel drops its flock); a live one is waited for a few seconds.
   */
  async lock(): Promise<() => Promise<void>> {
    if (this.file === '') return async () => undefined;
    const dir = path.dirname(this.file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const lockPath = path.join(dir, LOCK_FILE_NAME);
    const native = loadNative();
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = native.lockFile(lockPath);
        return async () => native.closeFd(fd);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') throw toSysError(err, `cannot lock ${lockPath}`);
        if (Date.now() >= deadline) {
          throw new ConfigError('--state-dir', dir,
            `another weft process (an agent or weft cleanup) holds --state-dir ${dir} (lock ${lockPath}); ` +
            'give each agent on this machine its own --state-dir, or stop the other one first');
        }
        await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
      }
    }
  }

  /** An in-memory ledger that is never written (tests, dry runs). */
  static inMemory(): HostLedger {
    return new HostLedger('', []);
  }

  list<K extends LedgerKind>(kind: K): EntryOf<K>[] {
    return [...this.entries.values()].filter((e): e is EntryOf<K> => e.kind === kind);
  }

  has(entry: LedgerEntry): boolean {
    return this.entries.has(ledgerKey(entry));
  }

  /** The recorded entry with the same identity (e.g. a link by name, with its MAC). */
  get<K extends LedgerKind>(entry: EntryOf<K>): EntryOf<K> | undefined {
    return this.entries.get(ledgerKey(entry)) as EntryOf<K> | undefined;
  }

  /** Records (or updates) an entry and writes the file. */
  async record(entry: LedgerEntry): Promise<void> {
    const key = ledgerKey(entry);
    const old = this.entries.get(key);
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(entry)) return;
    this.entries.set(key, entry);
    await this.save();
  }

  /** Forgets an entry (the object is gone) and writes the file. */
  async forget(entry: LedgerEntry): Promise<void> {
    if (!this.entries.delete(ledgerKey(entry))) return;
    await this.save();
  }

  /** Deletes the file itself (after `weft cleanup` removed everything). */
  async erase(): Promise<void> {
    this.entries.clear();
    await this.writing;
    if (this.file !== '') await rm(this.file, { force: true });
  }

  private save(): Promise<void> {
    if (this.file === '') return Promise.resolve();
    const content = `${JSON.stringify({ version: LEDGER_VERSION, entries: [...this.entries.values()] } satisfies LedgerFile, null, 1)}\n`;
    // writes are serialized; each writes the whole ledger as it is now
    this.writing = this.writing.catch(() => undefined).then(() =>
      writeFileAtomic(this.file, content, { mode: 0o600, dirMode: 0o700 }).catch((err: unknown) => {
        throw toSysError(err, `cannot write weft's host state ${this.file}`, 'check --state-dir');
      }));
    return this.writing;
  }
}

/**
 * `weft cleanup` deletes what the ledger lists, as root: a ledger someone else
 * could have written is refused (owned by another user, or writable by group
 * or others).
 */
async function checkTrusted(file: string): Promise<void> {
  const st = await stat(file);
  const me = process.getuid?.();
  if ((me !== undefined && st.uid !== me) || (st.mode & 0o022) !== 0) {
    throw new ConfigError('--state-dir', file,
      `weft's host state ${file} is owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}; weft trusts it only when ` +
      `it is its own (uid ${me ?? '?'}) and not writable by group or others: check who wrote it, then fix its owner and mode`);
  }
}

function parseLedger(text: string, file: string): LedgerEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('--state-dir', file,
      `weft's host state ${file} is not valid JSON (${(err as Error).message}); ` +
      'it records what weft created on this host: restore it, or remove it and clean up by hand');
  }
  const body = parsed as Partial<LedgerFile> | null;
  if (typeof body !== 'object' || body === null || body.version !== LEDGER_VERSION || !Array.isArray(body.entries)) {
    throw new ConfigError('--state-dir', file,
      `weft's host state ${file} is not a version-${LEDGER_VERSION} ledger (expected {"version":${LEDGER_VERSION},"entries":[...]})`);
  }
  return body.entries.filter(isEntry);
}

function isEntry(value: unknown): value is LedgerEntry {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  const str = (k: string): boolean => typeof e[k] === 'string';
  switch (e['kind']) {
    case 'link':
      return str('name') && str('linkKind') && (e['mac'] === undefined || str('mac'));
    case 'iptables-rule':
      return str('table') && str('chain') && Array.isArray(e['spec']) && (e['spec'] as unknown[]).every((s) => typeof s === 'string');
    case 'iptables-chain':
      return str('table') && str('chain');
    case 'nft-table':
      return str('family') && str('name');
    case 'file':
      return str('path');
    default:
      return false;
  }
}
