/**
 * The agent's side of `weft status`: HTTP/1.1 on a Unix socket, one resource.
 *   GET /status  200 application/json: the StatusSource's AgentStatus
 * Anything else is 404; a source that throws gives 500 with its message.
 *
 * The document shows the cluster's addresses and the store's endpoint, so the
 * socket is root's alone (0600, never wider, not even for a moment): file
 * permissions are the whole access control.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import * as path from 'node:path';
import type { StatusSource } from './agent-status';
import { ConfigError, StateError, toSysError } from '../errors';

export const DEFAULT_STATUS_SOCKET = '/run/weft/weft.sock';

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** How long a socket left at the path may take to accept before we call it alive. */
const PROBE_TIMEOUT_MS = 1000;

export class StatusServer {
  readonly path: string;
  private readonly server: Server;
  /** Identifies the socket file we made, so close() never removes a successor's. */
  private readonly ino: number;
  private readonly dev: number;
  private closing: Promise<void> | null = null;

  private constructor(socketPath: string, server: Server, made: Stats) {
    this.path = socketPath;
    this.server = server;
    this.ino = made.ino;
    this.dev = made.dev;
  }

  static async listen(socketPath: string, source: StatusSource): Promise<StatusServer> {
    const hint = 'give this agent another --status-socket';
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new ConfigError('--status-socket', socketPath,
        `--status-socket ${socketPath} is too long for a Unix socket (at most ${MAX_SOCKET_PATH_BYTES} bytes); ${hint}`);
    }
    const dir = path.dirname(socketPath);
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw toSysError(err, `cannot create ${dir} for the status socket`, hint);
    }
    await clearStaleSocket(socketPath);

    // libuv unlinks the name it bound when the server closes, whoever owns that
    // name by then. Binding a private name and linking it into place keeps that
    // unlink away from the public path, and link() refuses to replace a socket
    // another agent created since clearStaleSocket looked.
    const bound = path.join(dir, `.weft-${randomBytes(4).toString('hex')}`);
    const server = createServer((req, res) => {
      const target = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' || target !== '/status') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      Promise.resolve().then(() => source.status()).then(
        (status) => res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status)}\n`),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
      );
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // bind() runs synchronously inside listen(), so the narrowed umask covers
        // exactly the creation of the socket file and nothing else.
        const umask = process.umask(0o177);
        try {
          server.listen(bound, () => resolve());
        } finally {
          process.umask(umask);
        }
      });
    } catch (err) {
      await closeServer(server);
      throw toSysError(err, `cannot serve status on ${socketPath}`, hint);
    }
    try {
      await fs.chmod(bound, 0o600);
      await fs.link(bound, socketPath);
    } catch (err) {
      await closeServer(server);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new StateError(`${socketPath} appeared while this agent was starting: another weft agent may serve status there; ${hint}`);
      }
      throw toSysError(err, `cannot serve status on ${socketPath}`, hint);
    } finally {
      await fs.unlink(bound).catch(() => undefined);
    }
    try {
      return new StatusServer(socketPath, server, await fs.lstat(socketPath));
    } catch (err) {
      await closeServer(server);
      throw toSysError(err, `cannot serve status on ${socketPath}`, hint);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        const now = await fs.lstat(this.path);
        if (now.ino === this.ino && now.dev === this.dev) await fs.unlink(this.path);
      } catch {
        // Already gone, or no longer ours: either way nothing of ours to remove.
      }
      await closeServer(this.server);
    })();
    return this.closing;
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * A killed agent leaves its socket file behind; it is removed only once a
 * connect proves nobody listens on it. Anything that is not a socket is
 * somebody's file and stays.
 */
async function clearStaleSocket(socketPath: string): Promise<void> {
  let st: Stats;
  try {
    st = await fs.lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw toSysError(err, `cannot inspect ${socketPath}`, 'give this agent another --status-socket');
  }
  if (!st.isSocket()) {
    throw new ConfigError('--status-socket', socketPath,
      `${socketPath} exists and is not a socket; weft leaves it alone: remove it, or give this agent another --status-socket`);
  }
  const answer = await probe(socketPath);
  if (answer === 'alive') {
    throw new StateError(`another weft agent already serves status on ${socketPath}; give this agent another --status-socket`);
  }
  if (answer !== 'ECONNREFUSED') {
    throw toSysError(answer, `cannot tell whether a weft agent still serves status on ${socketPath}`,
      'give this agent another --status-socket');
  }
  try {
    await fs.unlink(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw toSysError(err, `cannot remove the stale status socket ${socketPath}`, 'give this agent another --status-socket');
    }
  }
}

/** 'alive' when something accepts (or keeps us waiting), 'ECONNREFUSED' when nothing listens, else the error. */
function probe(socketPath: string): Promise<'alive' | 'ECONNREFUSED' | Error> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (answer: 'alive' | 'ECONNREFUSED' | Error): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('alive'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('alive'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'ECONNREFUSED' : err));
  });
}
