/**
 * The status socket for real: a StatusServer on a fresh path with a fake
 * source, asked by fetchStatus and by the real `bin/weft status`. Covers the
 * socket's mode, a second agent on the same path, the stale socket a killed
 * agent leaves, a file that is not a socket, no agent at all, and a non-root
 * user being turned away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { STATUS_SCHEMA_VERSION, type AgentStatus, type StatusSource } from '../../src/agent/agent-status';
import { StatusServer } from '../../src/agent/status-server';
import { fetchStatus, renderStatus } from '../../src/cli/status-command';

// dist/test/integration -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'weft');

const STATUS: AgentStatus = {
  schema: STATUS_SCHEMA_VERSION,
  version: '0.1.0',
  pid: 31337,
  startedAt: '2025-01-01T10:00:00.000Z',
  now: '2025-01-01T10:00:42.000Z',
  ready: true,
  network: '10.244.0.0/16',
  lease: { subnet: '10.244.1.0/24', publicIp: '192.168.77.1', expiresAt: null },
  backend: { type: 'udp', mtu: 1472, workers: 1, offloads: { 'udp-gso': true } },
  store: { description: 'static', connected: true, lastRenewal: null },
  drops: { 'decap/bad_checksum': 0 },
  peers: [{
    subnet: '10.244.2.0/24', publicIp: '192.168.77.2', via: 'udp', port: 8285,
    tx: { packets: 5, bytes: 500, packetsPerSecond: 2500, bitsPerSecond: 2_000_000 },
    rx: { packets: 5, bytes: 500, packetsPerSecond: 12, bitsPerSecond: 9600 },
    drops: {},
  }],
};

const source: StatusSource = { status: () => STATUS };

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command without blocking: the server under test lives in this
 * process, and spawnSync would stop it from answering.
 */
async function run(command: string, args: readonly string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLANNELD_') && !k.startsWith('WEFT_')) env[k] = v;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

const weft = (...args: string[]): Promise<Run> => run(process.execPath, [BIN, ...args]);

describe('status server and `weft status`', () => {
  let dir = '';
  let counter = 0;
  const servers: StatusServer[] = [];
  /** A fresh socket path for each test, so a failure cannot leak into the next. */
  const socketPath = (): string => path.join(dir, `s${++counter}.sock`);
  const listen = async (p: string): Promise<StatusServer> => {
    const server = await StatusServer.listen(p, source);
    servers.push(server);
    return server;
  };

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), `weft-status-${process.pid}-`));
  });

  after(async () => {
    for (const server of servers) await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the socket 0600 and answers GET /status with the source\'s document', async () => {
    const p = socketPath();
    const server = await listen(p);
    assert.equal(server.path, p);
    assert.ok(lstatSync(p).isSocket());
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.deepEqual(await fetchStatus(p, 5000), STATUS);
  });

  it('creates a missing parent directory 0755', async () => {
    const p = path.join(dir, 'run', 'weft', 'weft.sock');
    await listen(p);
    assert.equal(statSync(path.dirname(p)).mode & 0o777, 0o755);
    assert.deepEqual(await fetchStatus(p, 5000), STATUS);
  });

  it('close() removes its socket file', async () => {
    const p = socketPath();
    const server = await listen(p);
    await server.close();
    assert.equal(existsSync(p), false);
  });

  it('bin/weft status --json prints the document; without --json the rendered text', async () => {
    const p = socketPath();
    await listen(p);
    const json = await weft('status', '--json', '--socket', p);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), STATUS);
    const text = await weft('status', '--socket', p);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, renderStatus(STATUS));
  });

  it('refuses a second server on a path another one serves, naming the path, and leaves the first serving', async () => {
    const p = socketPath();
    await listen(p);
    await assert.rejects(StatusServer.listen(p, source), (err: Error) => {
      assert.equal(err.name, 'StateError');
      assert.ok(err.message.includes(`another weft agent already serves status on ${p}`), err.message);
      return true;
    });
    assert.deepEqual(await fetchStatus(p, 5000), STATUS);
  });

  it('replaces the stale socket a killed agent left behind', async () => {
    const p = socketPath();
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(p)}, () => console.log('listening'))`],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      assert.equal(String(line).trim(), 'listening');
      child.kill('SIGKILL');
      await once(child, 'exit');
      assert.ok(lstatSync(p).isSocket(), 'the killed process left its socket file');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await listen(p);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.deepEqual(await fetchStatus(p, 5000), STATUS);
  });

  it('refuses a path that is a regular file, naming it, and leaves the file alone', async () => {
    const p = socketPath();
    writeFileSync(p, 'not a socket\n');
    await assert.rejects(StatusServer.listen(p, source), (err: Error) => {
      assert.ok(err.message.includes(`${p} exists and is not a socket`), err.message);
      return true;
    });
    assert.equal(readFileSync(p, 'utf8'), 'not a socket\n');
  });

  it('a source that throws gives 500 with its message, and an unknown path 404', async () => {
    const p = path.join(dir, `broken-${++counter}.sock`);
    const server = await StatusServer.listen(p, { status: () => { throw new Error('backend not wired yet'); } });
    servers.push(server);
    await assert.rejects(fetchStatus(p, 5000), /answered 500: backend not wired yet/);
    const other = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      get({ socketPath: p, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode, body }));
      }).on('error', reject);
    });
    assert.deepEqual(other, { status: 404, body: 'not found\n' });
  });

  it('bin/weft status with nothing on the path exits 1 and says no agent is running', async () => {
    const p = path.join(dir, 'nothing.sock');
    const r = await weft('status', '--socket', p);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr,
      `weft: no weft agent is running: nothing answers on ${p}; start one with \`weft agent\`, or pass the agent's --status-socket with --socket\n`);
  });

  it('the socket turns away a user who is not root', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('needs root: it drops to uid 65534 with setpriv');
      return;
    }
    const setpriv = spawnSync('setpriv', ['--version'], { encoding: 'utf8' });
    if (setpriv.error !== undefined) {
      t.skip(`setpriv is not available: ${String(setpriv.error)}`);
      return;
    }
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath];
    const entry = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
    const probe = await run('setpriv', [...asNobody, '-e', `require(${JSON.stringify(entry)})`]);
    if (probe.code !== 0) {
      t.skip(`uid 65534 cannot load weft from ${ROOT} (directory permissions): ${probe.stderr.trim().split('\n')[0] ?? ''}`);
      return;
    }
    chmodSync(dir, 0o755);
    const p = socketPath();
    await listen(p);
    const r = await run('setpriv', [...asNobody, BIN, 'status', '--socket', p]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.ok(r.stderr.includes('permission denied') && r.stderr.includes('root'), r.stderr);
    assert.equal(r.stdout, '', 'nothing of the status leaked');
  });
});
