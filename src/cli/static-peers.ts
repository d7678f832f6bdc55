/**
 * Static mode's peers: --peer flags plus an optional --peers-file that is
 * re-read whenever it changes (or on SIGHUP) and applied without a restart.
 * A file that does not parse is reported and the previous routes stay.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Backend, PeerLease } from '../backend/backend';
import { checkPeers, parsePeerSpec, parsePeersFile } from '../backend/peer-spec';
import { ConfigError, toSysError } from '../errors';
import type { Logger } from '../log';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';

export interface StaticPeersOptions {
  readonly peers: readonly string[];
  readonly peersFile?: string | undefined;
  /** Port for peers written without one (Backend.Port). */
  readonly port: number;
  readonly network: Ipv4Prefix;
  readonly subnet: Ipv4Prefix;
}

export class StaticPeers {
  readonly initial: readonly PeerLease[];
  private readonly options: StaticPeersOptions;
  private readonly fromFlags: readonly PeerLease[];
  private watcher: FSWatcher | undefined;
  private pending: NodeJS.Timeout | undefined;
  private onHup: (() => void) | undefined;

  private constructor(options: StaticPeersOptions, fromFlags: PeerLease[], initial: PeerLease[]) {
    this.options = options;
    this.fromFlags = fromFlags;
    this.initial = initial;
  }

  /** Parses and checks every peer (flags and file) without touching the host. */
  static async prepare(options: StaticPeersOptions): Promise<StaticPeers> {
    const fromFlags = options.peers.map((p) => parsePeerSpec(p, options.port));
    const seed = new StaticPeers(options, fromFlags, []);
    const initial = await seed.read();
    if (options.peersFile !== undefined) {
      const dir = path.dirname(path.resolve(options.peersFile));
      if (!(await stat(dir).then((st) => st.isDirectory(), () => false))) {
        throw new ConfigError('--peers-file', options.peersFile,
          `--peers-file ${options.peersFile}: directory ${dir} does not exist; create it first`);
      }
    }
    return new StaticPeers(options, fromFlags, initial);
  }

  /** Flags plus the file's current content, checked as one set. A missing file is an empty one. */
  private async read(): Promise<PeerLease[]> {
    const file = this.options.peersFile;
    let fromFile: PeerLease[] = [];
    if (file !== undefined) {
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toSysError(err, `cannot read --peers-file ${file}`);
      }
      fromFile = parsePeersFile(text, this.options.port, file);
    }
    const all = [...this.fromFlags, ...fromFile];
    checkPeers(this.options.network, this.options.subnet, all,
      [...this.fromFlags.map(() => '--peer'), ...fromFile.map(() => file as string)]);
    return all;
  }

  /** Installs the initial routes and starts following the peers file. */
  async start(backend: Backend, log: Logger): Promise<void> {
    const apply = async (why: string, peers: readonly PeerLease[]): Promise<void> => {
      await backend.replacePeers(peers);
      log.info({ why, routes: peers.map((p) => `${formatPrefix(p.subnet)}=${formatIpv4(p.publicIp)}:${p.port}`) }, 'routes updated');
    };
    await apply('start', this.initial);
    const file = this.options.peersFile;
    if (file === undefined) return;
    const reload = (why: string): void => {
      clearTimeout(this.pending);
      this.pending = setTimeout(() => {
        this.read()
          .then((peers) => apply(why, peers))
          .catch((err: unknown) => log.error({ err: (err as Error).message }, 'peers file rejected; keeping the previous routes'));
      }, 50);
    };
    const resolved = path.resolve(file);
    this.watcher = watch(path.dirname(resolved), (_event, name) => {
      if (name === path.basename(resolved)) reload('peers file changed');
    });
    this.onHup = () => reload('SIGHUP');
    process.on('SIGHUP', this.onHup);
  }

  stop(): void {
    clearTimeout(this.pending);
    this.watcher?.close();
    if (this.onHup !== undefined) process.off('SIGHUP', this.onHup);
  }
}
