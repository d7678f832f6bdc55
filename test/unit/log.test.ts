/**
 * Logs: JSON for collectors, one human line per record for operators, the
 * choice made by --log-format (auto: text on a terminal, json otherwise).
 * In-process cases write to a stream; the auto cases run a child whose
 * stderr is a pipe, or a terminal (under util-linux `script`).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { InvalidArgumentError } from 'commander';

import { createLogger, formatText, parseLogFormat, type LogFormat } from '../../src/log';

// dist/test/unit -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'weft');
const LOG_JS = path.join(ROOT, 'dist', 'src', 'log.js');

/** A stream that keeps what is written, line by line. */
function capture(isTTY = false): { stream: Writable & { isTTY?: boolean }; lines: () => string[] } {
  const chunks: string[] = [];
  const stream: Writable & { isTTY?: boolean } = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  if (isTTY) stream.isTTY = true;
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

const TEXT_LINE = /^\d{2}:\d{2}:\d{2}\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /;
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;

describe('json format', () => {
  it('writes one parseable JSON object per line with level, msg, time, pid and the fields', () => {
    const { stream, lines } = capture();
    const log = createLogger(0, 'weft', 'json', stream);
    log.info({ subnet: '10.244.1.0/24', ttl: 86400 }, 'lease acquired');
    log.warn('second');
    const out = lines();
    assert.equal(out.length, 2);
    const first = JSON.parse(out[0] as string) as Record<string, unknown>;
    assert.equal(first['level'], 30);
    assert.equal(first['msg'], 'lease acquired');
    assert.equal(typeof first['time'], 'number');
    assert.equal(first['pid'], process.pid);
    assert.equal(first['name'], 'weft');
    assert.equal(first['subnet'], '10.244.1.0/24');
    assert.equal(first['ttl'], 86400);
    assert.equal((JSON.parse(out[1] as string) as Record<string, unknown>)['level'], 40);
  });

  it('a terminal destination does not change json', () => {
    const { stream, lines } = capture(true);
    createLogger(0, 'weft', 'json', stream).info('x');
    assert.doesNotThrow(() => JSON.parse(lines()[0] as string));
  });
});

describe('text format', () => {
  it('writes "HH:MM:SS.mmm LEVEL message key=value" lines in local time', () => {
    const { stream, lines } = capture();
    const before = new Date();
    createLogger(0, 'weft', 'text', stream).info({ subnet: '10.244.1.0/24', ttl: 86400, ipMasq: true }, 'lease acquired');
    const [line] = lines();
    assert.match(line as string, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  lease acquired subnet=10\.244\.1\.0\/24 ttl=86400 ipMasq=true$/);
    assert.ok(!(line as string).startsWith('{') && !(line as string).endsWith('}'), line);
    assert.ok(!(line as string).includes('pid='), 'pid, hostname and name are not repeated on every line');
    const hh = Number((line as string).slice(0, 2));
    const after = new Date();
    assert.ok(hh === before.getHours() || hh === after.getHours(), `local hour: ${line}`);
  });

  it('shows nested values as compact JSON, quotes strings with spaces, and errors by their message', () => {
    const { stream, lines } = capture();
    const log = createLogger(0, 'weft', 'text', stream);
    log.info({ peer: { ip: '192.168.1.12', port: 8285 }, cidrs: ['10.244.1.0/24', '10.244.2.0/24'], why: 'no route to host', empty: '' }, 'peer');
    log.error({ err: new Error('etcd unreachable') }, 'lease renewal failed');
    log.error(new Error('boom'));
    log.warn({ cause: new Error('disk full'), n: null }, 'cannot write');
    const out = lines();
    assert.match(out[0] as string,
      / INFO  peer peer=\{"ip":"192\.168\.1\.12","port":8285\} cidrs=\["10\.244\.1\.0\/24","10\.244\.2\.0\/24"\] why="no route to host" empty=""$/);
    assert.match(out[1] as string, / ERROR lease renewal failed err="etcd unreachable"$/);
    assert.match(out[2] as string, / ERROR boom$/, 'the message is not repeated as err=');
    assert.match(out[3] as string, / WARN  cannot write cause="disk full" n=null$/);
    for (const line of out) assert.match(line, TEXT_LINE);
  });

  it('keeps one record on one line: control characters are escaped', () => {
    const { stream, lines } = capture();
    createLogger(0, 'weft', 'text', stream).info({ iface: 'eth0\nINFO  forged' }, 'two\nlines \u001b[31mred');
    const out = lines();
    assert.equal(out.length, 1, out.join('\n'));
    assert.ok(!ANSI.test(out[0] as string), out[0]);
    assert.match(out[0] as string, / INFO  two\\nlines \\u001b\[31mred iface="eth0\\nINFO  forged"$/);
  });

  it('hides debug at verbosity 0, shows it at 1, and trace at 2', () => {
    for (const [verbosity, expected] of [[0, ['INFO ']], [1, ['DEBUG', 'INFO ']], [2, ['TRACE', 'DEBUG', 'INFO ']]] as const) {
      const { stream, lines } = capture();
      const log = createLogger(verbosity, 'weft', 'text', stream);
      log.trace('t');
      log.debug('d');
      log.info('i');
      assert.deepEqual(lines().map((l) => l.slice(13, 18)), expected, `-v ${verbosity}`);
    }
  });

  it('colours only a terminal destination, and never with NO_COLOR', () => {
    const saved = process.env['NO_COLOR'];
    try {
      delete process.env['NO_COLOR'];
      const pipe = capture(false);
      createLogger(0, 'weft', 'text', pipe.stream).info({ a: 1 }, 'x');
      assert.ok(!ANSI.test(pipe.lines()[0] as string));
      const term = capture(true);
      createLogger(0, 'weft', 'text', term.stream).info({ a: 1 }, 'x');
      assert.ok(ANSI.test(term.lines()[0] as string));
      process.env['NO_COLOR'] = '1';
      const noColor = capture(true);
      createLogger(0, 'weft', 'text', noColor.stream).info({ a: 1 }, 'x');
      assert.match(noColor.lines()[0] as string, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  x a=1$/);
    } finally {
      if (saved === undefined) delete process.env['NO_COLOR'];
      else process.env['NO_COLOR'] = saved;
    }
  });

  it('formatText passes a line that is not JSON through', () => {
    assert.equal(formatText('not json'), 'not json\n');
  });
});

describe('auto format', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'weft-log-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const child = path.join(dir, 'child.js');
  // logs, then exits at once: what was logged must already be written
  writeFileSync(child, `const { createLogger } = require(${JSON.stringify(LOG_JS)});
const log = createLogger(Number(process.env.V || 0), 'weft', process.env.FORMAT || undefined);
log.debug('hidden unless -v 1');
log.info({ port: 8285, iface: 'eth0' }, 'listening');
process.exit(3);
`);
  const childEnv = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
    for (const k of ['NO_COLOR', 'FORMAT', 'V']) if (!(k in extra)) delete env[k];
    return env;
  };

  it('is json when stderr is a pipe (and every line is written before process.exit)', () => {
    const r = spawnSync(process.execPath, [child], { encoding: 'utf8', env: childEnv({}), timeout: 20_000 });
    assert.equal(r.status, 3, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stderr);
    const rec = JSON.parse(lines[0] as string) as Record<string, unknown>;
    assert.equal(rec['msg'], 'listening');
    assert.equal(rec['level'], 30);
    assert.equal(rec['pid'], r.pid);
    assert.equal(rec['port'], 8285);
  });

  it('text forced on a pipe, with -v 1', () => {
    const r = spawnSync(process.execPath, [child], { encoding: 'utf8', env: childEnv({ FORMAT: 'text', V: '1' }), timeout: 20_000 });
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0] as string, /^\d{2}:\d{2}:\d{2}\.\d{3} DEBUG hidden unless -v 1$/);
    assert.match(lines[1] as string, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  listening port=8285 iface=eth0$/);
  });

  const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
  const noScript = script.error !== undefined || script.status !== 0 ? 'util-linux `script` is not installed' : false;
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  /** Runs the child with its stdio on a pseudo-terminal; undefined (and the test skipped) when no terminal can be had. */
  function onTerminal(t: { skip: (why: string) => void }, extra: NodeJS.ProcessEnv): string | undefined {
    const r = spawnSync('script', ['-qec', `${quote(process.execPath)} ${quote(child)}`, '/dev/null'],
      { encoding: 'utf8', env: childEnv(extra), timeout: 20_000 });
    if (r.status !== 3) {
      t.skip(`script could not run the child on a terminal (status ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`);
      return undefined;
    }
    return r.stdout.replace(/\r/g, '');
  }

  it('is text when stderr is a terminal', { skip: noScript }, (t) => {
    const out = onTerminal(t, { NO_COLOR: '1' });
    if (out === undefined) return;
    const lines = out.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, out);
    assert.match(lines[0] as string, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  listening port=8285 iface=eth0$/);
  });

  it('is coloured on a terminal without NO_COLOR, and --log-format json still wins', { skip: noScript }, (t) => {
    const coloured = onTerminal(t, {});
    if (coloured === undefined) return;
    assert.ok(ANSI.test(coloured), JSON.stringify(coloured));
    assert.match(coloured.replace(/\u001b\[[0-9;]*m/g, ''), /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  listening port=8285 iface=eth0\n$/);
    const json = onTerminal(t, { FORMAT: 'json' as LogFormat });
    if (json === undefined) return;
    assert.equal((JSON.parse(json.trim()) as Record<string, unknown>)['msg'], 'listening');
  });
});

describe('--log-format', () => {
  it('parseLogFormat takes auto, json and text, and rejects anything else', () => {
    for (const f of ['auto', 'json', 'text']) assert.equal(parseLogFormat(f), f);
    for (const bad of ['xml', 'JSON', '', 'pretty']) {
      assert.throws(() => parseLogFormat(bad), (e: unknown) =>
        e instanceof InvalidArgumentError && e.message === '--log-format must be auto, json or text');
    }
  });

  const cleanEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLANNELD_') && !k.startsWith('WEFT_')) env[k] = v;
    return { ...env, ...extra };
  };

  for (const [what, args, env] of [
    ['weft agent --log-format xml', ['agent', '--log-format', 'xml'], {}],
    ['weft agent with WEFT_LOG_FORMAT=xml', ['agent'], { WEFT_LOG_FORMAT: 'xml' }],
    ['weft cleanup --log-format xml', ['cleanup', '--log-format', 'xml'], {}],
  ] as const) {
    it(`${what} exits non-zero with the reason, before doing anything`, () => {
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: cleanEnv(env), timeout: 20_000 });
      assert.equal(r.error, undefined, `could not run ${BIN}: ${String(r.error)}`);
      assert.notEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /--log-format must be auto, json or text/);
    });
  }

  it('the help of agent and cleanup describes it', () => {
    for (const sub of ['agent', 'cleanup']) {
      const r = spawnSync(process.execPath, [BIN, sub, '--help'], { encoding: 'utf8', env: cleanEnv(), timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      const help = r.stdout.replace(/\s+/g, ' ');
      assert.ok(help.includes('--log-format <format>'), help);
      assert.ok(help.includes('logs: human-readable lines (text) or one JSON object per line (json); auto = text on a terminal, json otherwise'), help);
      assert.ok(help.includes('WEFT_LOG_FORMAT'), help);
    }
  });
});
