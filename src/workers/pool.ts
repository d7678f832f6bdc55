/**
 * Main-thread side of the data plane: starts the forwarding workers, pushes
 * route snapshots to them as routes change (no restart, no pause: a worker
 * swaps its table between two batches), reads their counters, stops them.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { StateError, WeftError } from '../errors';
import type { RouteSnapshot } from '../routing';
import { newCounterBlock, sumCounters } from './counters';
import type { ForwarderOptions } from './forwarder';
import type { ControlMessage, WorkerInit, WorkerMessage } from './messages';

/** Every worker's Forwarder options, except what the pool assigns per worker. */
export interface PoolOptions extends Omit<ForwarderOptions, 'tunFd' | 'udpFd' | 'counters'> {
  /** One TUN descriptor per worker (multi-queue), or one shared by all. */
  readonly tunFds: readonly number[];
  /** One UDP socket per worker (SO_REUSEPORT), or one shared by all. */
  readonly udpFds: readonly number[];
  readonly workers: number;
}

/** A worker died or reported an error; the agent should stop. */
export class DataPlaneError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_STATE', message, options);
  }
}

interface Member {
  readonly worker: Worker;
  readonly counters: Float64Array;
  routesVersion: number;
  stopped: boolean;
  exited: boolean;
}

const WORKER_FILE = path.join(__dirname, 'forwarder-worker.js');
const STOP_TIMEOUT_MS = 3000;

export class ForwarderPool extends EventEmitter {
  private readonly members: Member[];
  private stopping = false;

  private constructor(members: Member[]) {
    super();
    this.members = members;
  }

  /** Starts the workers and resolves once every one of them is forwarding. */
  static async start(options: PoolOptions): Promise<ForwarderPool> {
    if (options.workers < 1) throw new StateError('a forwarder pool needs at least one worker');
    const members: Member[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < options.workers; i++) {
      const counters = newCounterBlock();
      const { tunFds, udpFds, workers, ...shared } = options;
      const init: WorkerInit = {
        ...shared,
        workerIndex: i,
        tunFd: tunFds[i % tunFds.length] as number,
        udpFd: udpFds[i % udpFds.length] as number,
        counters,
      };
      const worker = new Worker(WORKER_FILE, { workerData: init, name: `weft-forwarder-${i}` });
      const member: Member = { worker, counters, routesVersion: options.routes.version, stopped: false, exited: false };
      members.push(member);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (msg: WorkerMessage): void => {
            if (msg.type === 'ready') {
              worker.off('error', reject);
              resolve();
            }
          };
          worker.on('message', onMessage);
          worker.once('error', reject);
        }),
      );
    }
    const pool = new ForwarderPool(members);
    try {
      await Promise.all(ready);
    } catch (err) {
      await Promise.all(members.map((m) => m.worker.terminate()));
      throw new DataPlaneError(`a data-plane worker failed to start: ${(err as Error).message}`, { cause: err });
    }
    for (const m of members) pool.watch(m);
    return pool;
  }

  private watch(member: Member): void {
    member.worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'routes-applied') {
        member.routesVersion = msg.version;
        this.emit('routes-applied', msg.version);
      } else if (msg.type === 'stopped') {
        member.stopped = true;
      }
    });
    member.worker.on('error', (err) => {
      this.emit('error', new DataPlaneError(`data-plane worker ${member.worker.threadId} failed: ${err.message}`, { cause: err }));
    });
    member.worker.on('exit', (code) => {
      member.exited = true;
      if (!this.stopping && !member.stopped) {
        this.emit('error', new DataPlaneError(`data-plane worker ${member.worker.threadId} exited unexpectedly (code ${code})`));
      }
    });
  }

  get size(): number {
    return this.members.length;
  }

  /** Pushes a route snapshot to every worker; resolves when all have applied it. */
  setRoutes(snapshot: RouteSnapshot): Promise<void> {
    const message: ControlMessage = { type: 'routes', snapshot };
    for (const m of this.members) m.worker.postMessage(message);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.members.every((m) => m.routesVersion >= snapshot.version || m.stopped || m.exited)) {
          this.off('routes-applied', check);
          resolve();
        }
      };
      this.on('routes-applied', check);
      check();
    });
  }

  /** Totals over all workers, by counter name. */
  counters(): Record<string, number> {
    return sumCounters(this.members.map((m) => m.counters));
  }

  /** Each worker's own counter block (read-only view for metrics). */
  counterBlocks(): readonly Float64Array[] {
    return this.members.map((m) => m.counters);
  }

  /** Stops every worker; terminates any that does not stop in time. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(
      this.members.map(async (m) => {
        if (m.exited) return;
        const exited = new Promise<void>((resolve) => m.worker.once('exit', () => resolve()));
        try {
          m.worker.postMessage({ type: 'stop' } satisfies ControlMessage);
        } catch {
          // already gone
        }
        const timer = setTimeout(() => void m.worker.terminate(), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
