/**
 * `weft status`: asks the running agent for its status document (its Unix
 * socket, see agent/status-server.ts) and prints it for people, or as JSON
 * for scripts. `--watch` keeps asking, like top.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { STATUS_SCHEMA_VERSION, type AgentStatus, type PeerStatus, type TrafficFigures } from '../agent/agent-status';
import { DEFAULT_STATUS_SOCKET } from '../agent/status-server';
import { StateError, SysError, toSysError } from '../errors';

/** The agent builds the document from memory; five seconds means it is stuck. */
export const STATUS_TIMEOUT_MS = 5000;
/** Bounds a status document, so a confused peer on the socket cannot fill memory. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Nobody answered on the socket, or we may not ask: there is no status to show. */
export class StatusUnavailableError extends SysError {
  constructor(errno: string, message: string, options?: { cause?: unknown }) {
    super('connect', errno, message, options);
  }
}

/**
 * One GET /status on the agent's socket. Rejects with StatusUnavailableError
 * when nothing answers, when only root may ask, or on timeout; with
 * StateError when the answer is not a status document.
 */
export function fetchStatus(socketPath: string, timeoutMs: number, signal?: AbortSignal): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/status', method: 'GET', timeout: timeoutMs, ...(signal === undefined ? {} : { signal }) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy(new StateError(`the weft agent on ${socketPath} sent more than ${MAX_BODY_BYTES} bytes of status`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new StateError(`the weft agent on ${socketPath} answered ${res.statusCode ?? '?'}: ${body.trim()}`));
          return;
        }
        try {
          resolve(parseStatus(body, socketPath));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => {
      req.destroy(new StatusUnavailableError('ETIMEDOUT',
        `the weft agent on ${socketPath} did not answer within ${formatSeconds(timeoutMs)}; it may be stuck: its log says more`));
    });
    req.on('error', (err) => reject(describeRequestError(err, socketPath)));
    req.end();
  });
}

function parseStatus(body: string, socketPath: string): AgentStatus {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new StateError(`the weft agent on ${socketPath} sent something that is not JSON: ${body.slice(0, 80).trim()}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof (doc as { schema?: unknown }).schema !== 'number') {
    throw new StateError(`the weft agent on ${socketPath} sent JSON that is not a status document (no numeric "schema")`);
  }
  return doc as AgentStatus;
}

function describeRequestError(err: Error, socketPath: string): unknown {
  if (err instanceof StatusUnavailableError || err instanceof StateError || err.name === 'AbortError') return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    return new StatusUnavailableError(code,
      `no weft agent is running: nothing answers on ${socketPath}; start one with \`weft agent\`, ` +
        "or pass the agent's --status-socket with --socket", { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new StatusUnavailableError(code,
      `permission denied on ${socketPath}: weft status must run as root (the agent's socket is root's alone)`, { cause: err });
  }
  return toSysError(err, `cannot ask the weft agent on ${socketPath}`, "pass the agent's --status-socket with --socket");
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toPrecision(3))} s`;
}

// ---- rendering ---------------------------------------------------------------

const SI_PREFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** Three significant digits and an SI prefix: "0", "999", "1.00 k", "45.6 M". */
export function formatRate(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  let scaled = n;
  let i = 0;
  // Rounding decides the prefix: 999.7 is "1.00 k", not "1.00e+3".
  while (i < SI_PREFIXES.length - 1 && Number(scaled.toPrecision(3)) >= 1000) {
    scaled /= 1000;
    i++;
  }
  if (i === 0) return String(Number(scaled.toPrecision(3)));
  return `${scaled.toPrecision(3)} ${SI_PREFIXES[i] as string}`;
}

/** "12s", "5m 3s", "23h 59m", "3d 4h": the two largest units, like uptime. */
export function formatDuration(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Relative to the document's own `now`, so a frame reads the same whatever the local clock says. */
function relative(at: string, now: number): string {
  const t = Date.parse(at);
  if (Number.isNaN(t)) return at;
  return t >= now ? `in ${formatDuration(t - now)}` : `${formatDuration(now - t)} ago`;
}

function sumDrops(drops: Readonly<Record<string, number>>): number {
  return Object.values(drops).reduce((a, b) => a + b, 0);
}

const PEER_COLUMNS = ['SUBNET', 'PUBLIC IP', 'VIA', 'TX pkt/s', 'TX bit/s', 'RX pkt/s', 'RX bit/s', 'DROPS'] as const;

function peerRow(p: PeerStatus): string[] {
  const rates = (t: TrafficFigures | null): string[] =>
    t === null ? ['-', '-'] : [formatRate(t.packetsPerSecond), formatRate(t.bitsPerSecond)];
  return [
    p.subnet,
    p.publicIp,
    p.port === null ? p.via : `${p.via}:${p.port}`,
    ...rates(p.tx),
    ...rates(p.rx),
    p.drops === null ? '-' : String(sumDrops(p.drops)),
  ];
}

/** Columns left-aligned at fixed starts, two spaces apart, so the eye can run down any column. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd((widths[c] as number) + 2))).join(''));
}

/** The human view of a status document: a header block, then one row per peer. */
export function renderStatus(s: AgentStatus, opts: { width?: number } = {}): string {
  const now = Date.parse(s.now);
  const fields: Array<[string, string]> = [];
  fields.push(['agent', `weft ${s.version}, pid ${s.pid}, up ${formatDuration(now - Date.parse(s.startedAt))}`]);
  fields.push(['ready', s.ready ? 'yes' : 'no']);
  fields.push(['network', s.network ?? 'not known yet (waiting for net-conf.json)']);
  if (s.lease === null) {
    fields.push(['lease', 'none yet']);
  } else {
    const expiry = s.lease.expiresAt === null ? 'static, never expires'
      : Date.parse(s.lease.expiresAt) < now ? `expired ${relative(s.lease.expiresAt, now)}`
        : `expires ${relative(s.lease.expiresAt, now)}`;
    fields.push(['lease', `${s.lease.subnet} on ${s.lease.publicIp}, ${expiry}`]);
  }
  if (s.backend === null) {
    fields.push(['backend', 'not running yet']);
  } else {
    const b = s.backend;
    fields.push(['backend', `${b.type}, MTU ${b.mtu}${b.workers === null ? '' : `, ${b.workers} worker${b.workers === 1 ? '' : 's'}`}`]);
    if (b.offloads !== null) {
      const on = Object.keys(b.offloads).filter((k) => b.offloads?.[k] === true).sort();
      fields.push(['offloads', on.length === 0 ? 'none' : on.join(', ')]);
    }
  }
  const renewal = s.store.lastRenewal !== null ? `, last renewal ${relative(s.store.lastRenewal, now)}`
    : s.lease !== null && s.lease.expiresAt !== null ? ', no renewal yet' : '';
  fields.push(['store', `${s.store.description}, ${s.store.connected ? 'connected' : 'disconnected'}${renewal}`]);
  if (s.drops !== null) {
    const nonzero = Object.entries(s.drops).filter(([, n]) => n !== 0).sort(([a], [b]) => a.localeCompare(b));
    if (nonzero.length > 0) fields.push(['drops', nonzero.map(([reason, n]) => `${reason} ${n}`).join(', ')]);
  }

  const labelWidth = Math.max(...fields.map(([label]) => label.length)) + 2;
  const lines = fields.map(([label, value]) => `${`${label}:`.padEnd(labelWidth)}${value}`);
  lines.push('');
  if (s.peers.length === 0) {
    lines.push('no peers');
  } else {
    lines.push(...table([[...PEER_COLUMNS], ...s.peers.map(peerRow)]));
  }
  // A frame wider than the terminal would wrap and scroll the redraw away.
  const width = opts.width;
  const fitted = width === undefined || width <= 0 ? lines : lines.map((l) => l.slice(0, width));
  return `${fitted.join('\n')}\n`;
}

// ---- the command -------------------------------------------------------------

function intervalSeconds(value: string): number {
  const n = /^\d+(\.\d+)?$|^\.\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0.2 && n <= 3600)) throw new InvalidArgumentError('--interval must be a number of seconds from 0.2 to 3600');
  return n;
}

interface StatusOptions {
  json?: boolean;
  watch?: boolean;
  interval: number;
  socket: string;
}

/** Cursor home, then clear the screen: the next frame replaces the last one in place. */
const REDRAW = '\x1b[H\x1b[2J';

export function addStatusCommand(program: Command): Command {
  return program
    .command('status')
    .description(
      "Show what the running agent is doing: its lease, backend, store, and each peer's traffic and drops, " +
        'asked over the agent\'s Unix socket (--status-socket). Needs root: the socket is root\'s alone.',
    )
    .addOption(new Option('--json', 'print the status document as JSON (one compact document per line with --watch)'))
    .addOption(new Option('--watch', 'keep refreshing, like top, until interrupted'))
    .addOption(new Option('--interval <seconds>', 'refresh period for --watch').argParser(intervalSeconds).default(1))
    .addOption(new Option('--socket <path>', "the agent's --status-socket").default(DEFAULT_STATUS_SOCKET).env('WEFT_STATUS_SOCKET'))
    .action(async (o: StatusOptions) => {
      if (o.watch === true) {
        await watch(o);
        return;
      }
      const s = await fetchStatus(o.socket, STATUS_TIMEOUT_MS);
      process.stdout.write(o.json === true ? `${JSON.stringify(s, null, 2)}\n` : render(s, o.socket, process.stdout.columns));
    });
}

function render(s: AgentStatus, socketPath: string, width?: number): string {
  if (s.schema !== STATUS_SCHEMA_VERSION) {
    throw new StateError(`the weft agent on ${socketPath} speaks status schema ${s.schema}, this weft reads ${STATUS_SCHEMA_VERSION}: ` +
      'run the weft that matches the agent, or use --json');
  }
  return renderStatus(s, width === undefined ? {} : { width });
}

/**
 * Asks once per interval until SIGINT/SIGTERM (exit 0) or until the agent
 * stops answering (the error propagates: exit 1). The wait is a timer, and a
 * signal cuts both the wait and a request in flight short.
 */
async function watch(o: StatusOptions): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  // A closed pipe (`weft status --watch | head`) ends the watch like a signal.
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', onStdoutError);
  const tty = process.stdout.isTTY === true;
  try {
    for (let frame = 0; !stop.signal.aborted; frame++) {
      const started = Date.now();
      let s: AgentStatus;
      try {
        s = await fetchStatus(o.socket, STATUS_TIMEOUT_MS, stop.signal);
      } catch (err) {
        if (stop.signal.aborted) break;
        throw err;
      }
      if (o.json === true) process.stdout.write(`${JSON.stringify(s)}\n`);
      else if (tty) process.stdout.write(REDRAW + render(s, o.socket, process.stdout.columns));
      else process.stdout.write((frame === 0 ? '' : '\n') + render(s, o.socket));
      try {
        await sleep(Math.max(0, started + o.interval * 1000 - Date.now()), undefined, { signal: stop.signal });
      } catch {
        break;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onStdoutError);
  }
}
