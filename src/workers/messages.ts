/**
 * The only channel between the agent (main thread) and the data plane
 * (workers): typed control messages. Workers never post per-packet messages;
 * their traffic figures travel through shared counters (counters.ts).
 */
import type { RouteSnapshot } from '../routing';
import type { ForwarderOptions } from './forwarder';

/** Everything a worker needs at start: its Forwarder's options (structured-clone friendly). */
export type WorkerInit = ForwarderOptions;

/** main -> worker */
export type ControlMessage =
  /** New routes; `peerCounters` replaces the worker's per-peer block when the slots outgrew it (peer-counters.ts). */
  | { readonly type: 'routes'; readonly snapshot: RouteSnapshot; readonly peerCounters?: Float64Array }
  | { readonly type: 'stop' };

/** worker -> main */
export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'routes-applied'; readonly version: number }
  | { readonly type: 'stopped' };
