/**
 * Structured, levelled logs on stderr (pino). `-v` raises the level:
 * 0 info, 1 debug, 2+ trace. The packet path never logs; it bumps counters.
 *
 * Two shapes, chosen by `--log-format`:
 *   json  one JSON object per line, as pino writes it (for collectors)
 *   text  one human line per record (for operators at a terminal):
 *           14:03:07.412 INFO  lease acquired subnet=10.244.1.0/24 ttl=86400
 *   auto  text when the destination (stderr) is a terminal, json otherwise
 * Every write is synchronous in both shapes: the agent logs right before it
 * exits, and nothing may be left in a buffer.
 */
import { InvalidArgumentError, Option } from 'commander';
import * as tty from 'node:tty';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'auto' | 'json' | 'text';

export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'text'];

/** commander argument parser for --log-format. */
export function parseLogFormat(value: string): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(value)) return value as LogFormat;
  throw new InvalidArgumentError('--log-format must be auto, json or text');
}

/** The `--log-format` option, the same for every command that logs. */
export function logFormatOption(): Option {
  return new Option('--log-format <format>',
    'logs: human-readable lines (text) or one JSON object per line (json); auto = text on a terminal, json otherwise')
    .choices(LOG_FORMATS)
    .argParser(parseLogFormat)
    .default('auto')
    .env('WEFT_LOG_FORMAT');
}

/**
 * A logger at the level `verbosity` asks for, writing to stderr (fd 2) or,
 * for tests, to `stream`.
 */
export function createLogger(verbosity: number, name = 'weft', format: LogFormat = 'auto', stream?: NodeJS.WritableStream): Logger {
  const level = verbosity >= 2 ? 'trace' : verbosity === 1 ? 'debug' : 'info';
  const toTerminal = stream === undefined ? tty.isatty(2) : (stream as Partial<tty.WriteStream>).isTTY === true;
  const shape = format === 'auto' ? (toTerminal ? 'text' : 'json') : format;
  const sink: DestinationStream = stream ?? pino.destination({ fd: 2, sync: true });
  if (shape === 'json') return pino({ name, level, base: { pid: process.pid } }, sink);
  const color = toTerminal && !noColor(process.env);
  return pino({ name, level, base: { pid: process.pid }, formatters: { log: errorsByMessage } }, textStream(sink, color));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

// ---- text ------------------------------------------------------------------

/** https://no-color.org: a NO_COLOR that is present and not empty turns colour off. */
function noColor(env: NodeJS.ProcessEnv): boolean {
  return env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '';
}

const LEVEL_LABELS: Readonly<Record<number, string>> = {
  10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL',
};
/** SGR colour per level: grey, blue, green, yellow, red, red background. */
const LEVEL_COLORS: Readonly<Record<number, string>> = { 10: '90', 20: '34', 30: '32', 40: '33', 50: '31', 60: '41;97' };
/** Record fields the line shows elsewhere, or not at all (they are the same on every line). */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

const sgr = (on: boolean, code: string, s: string): string => (on ? `\u001b[${code}m${s}\u001b[0m` : s);

/** Error values (not only `err`) become their message before pino serializes the record: `{}` says nothing. */
function errorsByMessage(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(obj)) {
    if (value instanceof Error) {
      out ??= { ...obj };
      out[key] = value.message;
    }
  }
  return out ?? obj;
}

/**
 * pino writes each record as one JSON line; this stream turns it into the
 * text line and hands it on to `sink` in the same call (synchronously).
 */
function textStream(sink: DestinationStream, color: boolean): DestinationStream {
  return {
    write(chunk: string): void {
      sink.write(formatText(chunk, color));
    },
  };
}

/** One pino JSON record -> `HH:MM:SS.mmm LEVEL message key=value ...\n` (local time). */
export function formatText(json: string, color = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = typeof record['level'] === 'number' ? record['level'] : 30;
  const label = LEVEL_LABELS[level] ?? `L${level}`.padEnd(5);
  const time = typeof record['time'] === 'number' ? clock(new Date(record['time'])) : '--:--:--.---';
  const msg = record['msg'];
  const parts = [sgr(color, '2', time), sgr(color, LEVEL_COLORS[level] ?? '0', label)];
  if (msg !== undefined) parts.push(typeof msg === 'string' ? escapeControls(msg) : compact(msg));
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN.has(key) || value === undefined) continue;
    const shown = key === 'err' ? errorMessage(value) : value;
    if (key === 'err' && shown === msg) continue; // logger.error(err): msg already is its message
    parts.push(`${sgr(color, '36', `${escapeControls(key)}=`)}${fieldValue(shown)}`);
  }
  return `${parts.join(' ')}\n`;
}

function clock(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** pino's err serializer gives `{type, message, stack, ...}`: show the message. */
function errorMessage(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string') {
    return (value as { message: string }).message;
  }
  return value;
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') {
    // quoted (JSON escapes) when it would not read back as one word, or would break the line
    return value === '' || /[\s"=\\\u0000-\u001f\u007f-\u009f]/.test(value) ? `"${escapeControls(value.replace(/["\\]/g, '\\$&'))}"` : value;
  }
  return compact(value);
}

function compact(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return escapeControls(JSON.stringify(value) ?? String(value));
}

const CONTROL_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Keep one record on one line, and a log from turning into terminal escape sequences. */
function escapeControls(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => CONTROL_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
