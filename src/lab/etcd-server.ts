/**
 * A real etcd member for tests: free ports, a temporary data dir, a readiness
 * wait, and a stop that always cleans up. Works on the host or inside a network
 * namespace (commandPrefix ['ip', 'netns', 'exec', ns]); etcdctl runs through
 * the same prefix. Alone by default; a member of a cluster with
 * `initialCluster` (etcd-cluster.ts starts those).
 *
 *   const etcd = await EtcdServer.start();            // 127.0.0.1, free ports
 *   await etcd.etcdctl(['put', '/k', 'v']);
 *   await etcd.kill(); await etcd.restart();          // SIGKILL, then the same data dir again
 *   await etcd.stop();                                // SIGTERM, then SIGKILL; data dir removed
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const ETCD_BINARY = '/usr/bin/etcd';
export const ETCDCTL_BINARY = '/usr/bin/etcdctl';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdSkipReason(): string | undefined {
  for (const bin of [ETCD_BINARY, ETCDCTL_BINARY]) {
    if (!existsSync(bin)) return `${bin} is missing (install the Debian packages etcd-server and etcd-client)`;
  }
  return undefined;
}

export interface EtcdServerOptions {
  /** Address etcd listens on and advertises (default 127.0.0.1). */
  readonly host?: string;
  /** Runs etcd and etcdctl through this, e.g. ['ip', 'netns', 'exec', 'weft-a']. */
  readonly commandPrefix?: readonly string[];
  /**
   * Ports; free ones are picked when absent, by binding port 0 on `host` (or on
   * 127.0.0.1 with a command prefix: a fresh namespace has every port free).
   */
  readonly clientPort?: number;
  readonly peerPort?: number;
  readonly name?: string;
  /** How long start() waits for etcd to answer (default 20 s). */
  readonly startTimeoutMs?: number;
  /**
   * The members of the cluster this server belongs to, `name=peerURL,...`
   * (etcd's --initial-cluster); default: this server alone. Read only when the
   * data dir is new: a restarted member rejoins from its own data.
   */
  readonly initialCluster?: string;
  /** etcd's --initial-cluster-token (default etcd's own). */
  readonly initialClusterToken?: string;
}

const LOG_TAIL_BYTES = 8192;
const STOP_GRACE_MS = 5_000;

/** Every server still running, killed on process exit if a test forgot (or crashed). */
const running = new Set<EtcdServer>();
process.on('exit', () => {
  for (const server of running) server.killNowSync();
});

export class EtcdServer {
  readonly host: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly name: string;
  readonly dataDir: string;
  readonly commandPrefix: readonly string[];
  private readonly startTimeoutMs: number;
  private readonly initialCluster: string | undefined;
  private readonly initialClusterToken: string | undefined;
  /** Every etcd process this server ever started (for leak checks). */
  readonly spawnedPids: number[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private logTail = '';
  private removed = false;
  /** How the last etcd process ended, while none runs. */
  private exitInfo: string | undefined;

  private constructor(options: EtcdServerOptions, clientPort: number, peerPort: number) {
    this.host = options.host ?? '127.0.0.1';
    this.commandPrefix = options.commandPrefix ?? [];
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.name = options.name ?? 'weft-test';
    this.startTimeoutMs = options.startTimeoutMs ?? 20_000;
    this.initialCluster = options.initialCluster;
    this.initialClusterToken = options.initialClusterToken;
    this.dataDir = mkdtempSync(path.join(tmpdir(), 'weft-etcd-'));
  }

  static async start(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const server = await EtcdServer.prepare(options);
    try {
      await server.launch();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /**
   * Picks the ports and makes the data dir, without starting etcd: the members
   * of a cluster must all be running before any of them answers, so a cluster
   * spawns each (spawnProcess) and then waits (waitHealthy).
   */
  static async prepare(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const bindHost = (options.commandPrefix ?? []).length > 0 ? '127.0.0.1' : (options.host ?? '127.0.0.1');
    const clientPort = options.clientPort ?? (await freePort(bindHost));
    let peerPort = options.peerPort ?? (await freePort(bindHost));
    while (peerPort === clientPort) peerPort = await freePort(bindHost);
    return new EtcdServer(options, clientPort, peerPort);
  }

  /** Client URL, e.g. http://127.0.0.1:23790. */
  get endpoint(): string {
    return `http://${urlHost(this.host)}:${this.clientPort}`;
  }

  get endpoints(): string[] {
    return [this.endpoint];
  }

  get peerUrl(): string {
    return `http://${urlHost(this.host)}:${this.peerPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Runs etcdctl (API v3) against this server; resolves with stdout, rejects with stderr in the message. */
  async etcdctl(args: readonly string[], timeoutMs = 10_000): Promise<string> {
    return runEtcdctl(this.commandPrefix, this.endpoints, args, timeoutMs);
  }

  /** Whether an etcd process of this server is running now. */
  get running(): boolean {
    return this.child !== undefined;
  }

  /** The current store revision (from `etcdctl endpoint status`). */
  async revision(): Promise<number> {
    const out = JSON.parse(await this.etcdctl(['endpoint', 'status', '-w', 'json'])) as { Status: { header: { revision: number } } }[];
    return Number(out[0]?.Status.header.revision);
  }

  /** Kills etcd at once (SIGKILL) and keeps the data dir, for restart(). */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Starts etcd again on the same ports and data dir (after kill()), and waits until it is healthy. */
  async restart(): Promise<void> {
    if (this.child !== undefined) throw new Error('etcd is still running: kill() it first');
    await this.launch();
  }

  /** SIGSTOP / SIGCONT: etcd keeps its sockets but stops answering. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGTERM, SIGKILL after 5 s, then removes the data dir. Safe to call twice. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child !== undefined) {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]);
      clearTimeout(timer);
      if (this.child !== undefined) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    this.removeDataDir();
    running.delete(this);
  }

  /** For the exit hook: no waiting possible there. */
  killNowSync(): void {
    this.child?.kill('SIGKILL');
    this.removeDataDir();
  }

  /** The last lines etcd wrote, for failure messages. */
  get log(): string {
    return this.logTail;
  }

  private removeDataDir(): void {
    if (this.removed) return;
    this.removed = true;
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    this.spawnProcess();
    await this.waitHealthy();
  }

  /**
   * Starts the etcd process (fresh or on its existing data dir) and returns at
   * once; waitHealthy() or waitServing() tell when it answers.
   */
  spawnProcess(): void {
    if (this.child !== undefined) throw new Error(`etcd ${this.name} is already running (pid ${this.child.pid ?? '?'})`);
    const args = [
      `--name=${this.name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${this.peerUrl}`,
      `--initial-advertise-peer-urls=${this.peerUrl}`,
      `--initial-cluster=${this.initialCluster ?? `${this.name}=${this.peerUrl}`}`,
      ...(this.initialClusterToken === undefined ? [] : [`--initial-cluster-token=${this.initialClusterToken}`]),
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ];
    const argv = [...this.commandPrefix, ETCD_BINARY, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    if (child.pid !== undefined) this.spawnedPids.push(child.pid);
    this.exitInfo = undefined;
    running.add(this);
    const keep = (chunk: Buffer): void => {
      this.logTail = (this.logTail + chunk.toString('utf8')).slice(-LOG_TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal === null ? `exit code ${code}` : `signal ${signal}`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    child.once('error', (err) => keep(Buffer.from(`spawn failed: ${err.message}\n`)));
  }

  /**
   * Waits until `etcdctl endpoint health` succeeds on this member: it serves
   * clients and its cluster has a leader and quorum (a quorum read).
   */
  waitHealthy(timeoutMs = this.startTimeoutMs): Promise<void> {
    return this.waitAnswering(['endpoint', 'health'], 'healthy', timeoutMs);
  }

  /**
   * Waits until `etcdctl endpoint status` succeeds: the member serves clients
   * (etcd serves them once it has joined its cluster), quorum or not.
   */
  waitServing(timeoutMs = this.startTimeoutMs): Promise<void> {
    return this.waitAnswering(['endpoint', 'status'], 'serving', timeoutMs);
  }

  private async waitAnswering(args: readonly string[], what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child === undefined) throw new Error(`etcd ${this.name} is not running (${this.exitInfo ?? 'never started'}):\n${this.logTail}`);
      try {
        await this.etcdctl(args, 3_000);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd ${this.name} was not ${what} within ${timeoutMs} ms: ${(err as Error).message}\n${this.logTail}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Runs etcdctl (API v3) through `commandPrefix` against `endpoints` (etcdctl
 * fails over between them); resolves with stdout, rejects with stderr in the
 * message.
 */
export async function runEtcdctl(commandPrefix: readonly string[], endpoints: readonly string[], args: readonly string[], timeoutMs = 10_000): Promise<string> {
  const argv = [...commandPrefix, 'env', 'ETCDCTL_API=3', ETCDCTL_BINARY, `--endpoints=${endpoints.join(',')}`, '--dial-timeout=2s', ...args];
  return await new Promise((resolve, reject) => {
    execFile(argv[0] as string, argv.slice(1), { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`etcdctl ${args.join(' ')} failed: ${err.message}${stderr === '' ? '' : `: ${stderr.trim()}`}`));
      else resolve(stdout);
    });
  });
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** A port nobody listens on right now (bind port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
