/**
 * A `weft agent` process running inside a lab host's namespace, with its
 * structured log collected so callers can wait for events ("ready") and show
 * the log when something goes wrong.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import type { Lab } from './lab';

/** The repository's bin/weft (this file is dist/src/lab/lab-agent.js). */
export const WEFT_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'weft');

export interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export class LabAgent {
  readonly ns: string;
  readonly child: ChildProcess;
  readonly records: LogRecord[] = [];
  readonly rawLines: string[] = [];
  /** The subnet.env this agent writes. */
  readonly subnetFile: string;
  private waiters: Array<() => void> = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  /** The agent's --state-dir (its host ledger), for `weft cleanup`. */
  readonly stateDir: string;
  /** The agent's --status-socket, for `weft status` ('' when turned off). */
  readonly statusSocket: string;

  /**
   * Starts `weft agent args...` in namespace `ns`. Files an agent would write
   * on the host default to the lab's own directory: --subnet-file
   * (<dir>/<ns>.subnet.env), --state-dir (<dir>/<ns>.state), --status-socket
   * (<dir>/<ns>.sock) and, without etcd, --lease-file (<dir>/leases.json,
   * shared by the lab's agents).
   */
  constructor(lab: Lab, ns: string, args: readonly string[], env?: NodeJS.ProcessEnv) {
    this.ns = ns;
    const extra: string[] = [];
    const given = args.indexOf('--subnet-file');
    this.subnetFile = given >= 0 ? (args[given + 1] as string) : path.join(lab.dir, `${ns}.subnet.env`);
    if (given < 0) extra.push('--subnet-file', this.subnetFile);
    const state = args.indexOf('--state-dir');
    this.stateDir = state >= 0 ? (args[state + 1] as string) : path.join(lab.dir, `${ns}.state`);
    if (state < 0) extra.push('--state-dir', this.stateDir);
    const socket = args.indexOf('--status-socket');
    this.statusSocket = socket >= 0 ? (args[socket + 1] as string) : path.join(lab.dir, `${ns}.sock`);
    if (socket < 0) extra.push('--status-socket', this.statusSocket);
    if (!args.includes('--lease-file') && !args.includes('--etcd-endpoints')) extra.push('--lease-file', path.join(lab.dir, 'leases.json'));
    this.child = lab.spawn(ns, process.execPath, [WEFT_BIN, 'agent', ...args, ...extra], env);
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        this.rawLines.push(line);
        try {
          const rec = JSON.parse(line) as LogRecord;
          if (typeof rec.msg === 'string') this.records.push(rec);
        } catch {
          // not a log record (e.g. a plain error message): kept in rawLines
        }
        this.wake();
      }
    };
    this.child.stderr?.on('data', onData);
    this.child.stdout?.on('data', onData);
    this.child.once('exit', (code, signal) => {
      this.exitInfo = { code, signal };
      this.wake();
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exitCode(): number | null | undefined {
    return this.exitInfo?.code;
  }

  /** Resolves with the first log record matching, rejects on exit or timeout. */
  async waitFor(predicate: (r: LogRecord) => boolean, timeoutMs = 15_000, what = 'log record'): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.records.find(predicate);
      if (found !== undefined) return found;
      if (this.exitInfo !== undefined) {
        throw new Error(`agent in ${this.ns} exited (${this.exitInfo.code ?? this.exitInfo.signal}) before ${what}:\n${this.log()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} from the agent in ${this.ns}:\n${this.log()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  waitReady(timeoutMs = 15_000): Promise<LogRecord> {
    return this.waitFor((r) => r.msg === 'ready', timeoutMs, '"ready"');
  }

  /** The agent's output so far, for failure messages. */
  log(): string {
    return this.rawLines.join('\n');
  }

  /** Sends a signal and waits for the process to exit (SIGKILL after timeoutMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo === undefined) {
      const exit = once(this.child, 'exit');
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await exit;
      clearTimeout(timer);
    }
    return this.exitInfo as { code: number | null; signal: NodeJS.Signals | null };
  }
}
