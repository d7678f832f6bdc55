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
import { newPeerCounterBlock, peerBlockCapacity, PEER_STRIDE } from './peer-counters';
import type { ForwarderOptions } from './forwarder';
import type { ControlMessage, WorkerInit, WorkerMessage } from './messages';

/** Every worker's Forwarder options, except what the pool assigns per worker. */
export interface PoolOptions extends Omit<ForwarderOptions, 'tunFd' | 'udpFd' | 'counters' | 'peerCounters'> {
  /** One TUN descriptor per worker (multi-queue), or one shared by all. */
  readonly tunFds: readonly number[];
  /** One UDP socket per worker (SO_REUSEPORT), or one shared by all. */
  readonly udpFds: readonly number[];
  /** Per worker, the socket its encapsulated packets leave from (default: its udpFd). */
  readonly sendFds?: readonly number[];
  readonly workers: number;
  /** Keep per-peer counters (default true; off only to measure what they cost). */
  readonly peerCounters?: boolean;
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
  /** The per-peer block the worker writes (as far as the main thread knows), null when not kept. */
  peerCounters: Float64Array | null;
  /** A larger block sent with snapshot `version`, in use once the worker acknowledges that version. */
  pendingPeerCounters: { readonly version: number; readonly block: Float64Array } | undefined;
  routesVersion: number;
  ready: boolean;
  stopped: boolean;
  exited: boolean;
  /** Settles the start-up promise for this worker. */
  started: (err?: Error) => void;
}

const WORKER_FILE = path.join(__dirname, 'forwarder-worker.js');
const STOP_TIMEOUT_MS = 3000;

export class ForwarderPool extends EventEmitter {
  private readonly members: Member[] = [];
  private readonly onError: (err: DataPlaneError) => void;
  private stopping = false;

  private constructor(onError: (err: DataPlaneError) => void) {
    super();
    this.onError = onError;
  }

  /**
   * Starts the workers and resolves once every one of them is forwarding.
   * `onError` hears of any worker that fails or exits afterwards (the agent stops).
   */
  static async start(options: PoolOptions, onError: (err: DataPlaneError) => void): Promise<ForwarderPool> {
    if (options.workers < 1) throw new StateError('a forwarder pool needs at least one worker');
    const pool = new ForwarderPool(onError);
    const { tunFds, udpFds, sendFds, workers, ...shared } = options;
    const starts: Promise<void>[] = [];
    const { peerCounters: keepPeerCounters, ...forwarderShared } = shared;
    for (let i = 0; i < workers; i++) {
      const counters = newCounterBlock();
      const peerCounters = keepPeerCounters === false ? null : newPeerCounterBlock(options.routes.slotCount);
      const init: WorkerInit = {
        ...forwarderShared,
        tunFd: tunFds[i % tunFds.length] as number,
        udpFd: udpFds[i % udpFds.length] as number,
        ...(sendFds === undefined || sendFds.length === 0 ? {} : { sendFd: sendFds[i % sendFds.length] as number }),
        counters,
        peerCounters,
      };
      const worker = new Worker(WORKER_FILE, { workerData: init, name: `weft-forwarder-${i}` });
      starts.push(new Promise<void>((resolve, reject) => {
        const member: Member = {
          worker, counters, peerCounters, pendingPeerCounters: undefined,
          routesVersion: options.routes.version, ready: false, stopped: false, exited: false,
          started: (err) => (err === undefined ? resolve() : reject(err)),
        };
        pool.members.push(member);
        pool.watch(member);
      }));
    }
    try {
      await Promise.all(starts);
    } catch (err) {
      pool.stopping = true;
      await Promise.all(pool.members.map((m) => m.worker.terminate()));
      throw new DataPlaneError(`a data-plane worker failed to start: ${(err as Error).message}`, { cause: err });
    }
    return pool;
  }

  /** Listens to a worker from its creation: start-up, route acknowledgements, failures. */
  private watch(member: Member): void {
    const id = member.worker.threadId;
    member.worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'ready') {
        member.ready = true;
        member.started();
      } else if (msg.type === 'routes-applied') {
        member.routesVersion = msg.version;
        const pending = member.pendingPeerCounters;
        if (pending !== undefined && msg.version >= pending.version) {
          member.peerCounters = pending.block;
          member.pendingPeerCounters = undefined;
        }
        this.emit('routes-applied', msg.version);
      } else if (msg.type === 'stopped') {
        member.stopped = true;
        this.emit('routes-applied', member.routesVersion);
      }
    });
    member.worker.on('error', (err) => {
      if (!member.ready) member.started(err);
      else this.onError(new DataPlaneError(`data-plane worker ${id} failed: ${err.message}`, { cause: err }));
    });
    member.worker.on('exit', (code) => {
      member.exited = true;
      this.emit('routes-applied', member.routesVersion); // nobody waits for a worker that is gone
      if (!member.ready) member.started(new Error(`exited with code ${code} before it was ready`));
      else if (!this.stopping && !member.stopped) {
        this.onError(new DataPlaneError(`data-plane worker ${id} exited unexpectedly (code ${code})`));
      }
    });
  }

  get size(): number {
    return this.members.length;
  }

  /**
   * Pushes a route snapshot to every worker (with a larger per-peer block when
   * its slots outgrew a worker's); resolves when all have applied it.
   */
  setRoutes(snapshot: RouteSnapshot): Promise<void> {
    for (const m of this.members) {
      const latest = m.pendingPeerCounters?.block ?? m.peerCounters;
      let message: ControlMessage = { type: 'routes', snapshot };
      if (latest !== null && peerBlockCapacity(latest) < snapshot.slotCount) {
        const block = newPeerCounterBlock(snapshot.slotCount);
        m.pendingPeerCounters = { version: snapshot.version, block };
        message = { type: 'routes', snapshot, peerCounters: block };
      }
      m.worker.postMessage(message);
    }
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

  /** Each worker's per-peer block (read-only view); empty when per-peer counters are off. */
  peerCounterBlocks(): readonly Float64Array[] {
    const blocks: Float64Array[] = [];
    for (const m of this.members) if (m.peerCounters !== null) blocks.push(m.peerCounters);
    return blocks;
  }

  /**
   * Zeroes a per-peer slot in every block, current and pending. Only for a
   * slot no worker writes any more (RouteTable.releaseSlots after setRoutes).
   */
  clearPeerSlot(slot: number): void {
    for (const m of this.members) {
      for (const block of [m.peerCounters, m.pendingPeerCounters?.block]) {
        if (block !== null && block !== undefined) block.fill(0, slot * PEER_STRIDE, (slot + 1) * PEER_STRIDE);
      }
    }
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
