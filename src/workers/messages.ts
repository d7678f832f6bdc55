/**
 * The only channel between the agent (main thread) and the data plane
 * (workers): typed control messages. Workers never post per-packet messages;
 * their traffic figures travel through shared counters (counters.ts).
 */
import type { Ipv4Prefix } from '../net/ipv4';
import type { RouteSnapshot } from '../routing';

/** Everything a worker needs at start; structured-clone friendly. */
export interface WorkerInit {
  readonly workerIndex: number;
  readonly tunFd: number;
  readonly udpFd: number;
  readonly tunAddress: number;
  readonly localSubnet: Ipv4Prefix;
  readonly batchSize: number;
  readonly tunSlotSize: number;
  readonly udpSlotSize: number;
  readonly icmpPerSecond: number;
  readonly counters: Float64Array;
  readonly routes: RouteSnapshot;
}

/** main -> worker */
export type ControlMessage =
  | { readonly type: 'routes'; readonly snapshot: RouteSnapshot }
  | { readonly type: 'stop' };

/** worker -> main */
export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'routes-applied'; readonly version: number }
  | { readonly type: 'stopped' };
