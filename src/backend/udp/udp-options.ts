/**
 * The agent's flags for the udp backend's data plane (`--tun-name`,
 * `--workers`, `--batch-size`, the offload switches, ...). They mean nothing
 * to the kernel backends, which ignore them.
 */

/** What the operator asked for; each falls back, logged once, when the kernel lacks it. */
export interface RequestedOffloads {
  /** virtio-net header on the TUN with checksum and TSO offload: 64 KiB TCP super-packets. */
  readonly tunOffload: boolean;
  /** UDP_SEGMENT: a split super-packet leaves in one system call. */
  readonly udpGso: boolean;
  /** UDP_GRO: many datagrams per received message. */
  readonly udpGro: boolean;
  /** Runs of equal-size packets to one peer leave as one UDP_SEGMENT message (needs tunOffload and udpGso). */
  readonly udpGsoRuns?: boolean;
  /**
   * Coalescing trusts the outer UDP checksum the kernel verified instead of
   * re-verifying each inner TCP/UDP checksum; the socket then refuses
   * datagrams without an outer checksum (the only ones the kernel does not verify).
   */
  readonly trustOuterChecksum?: boolean;
  /** Merge consecutive TCP segments of a flow into one TUN write (needs tunOffload). */
  readonly coalesceTcp: boolean;
  /** Merge consecutive UDP datagrams of a flow into one TUN write (needs tunOffload and TUN USO, kernel >= 6.2). */
  readonly coalesceUdp: boolean;
}

export interface UdpAgentOptions {
  readonly tunName: string;
  readonly workers: number;
  readonly batchSize: number;
  readonly offloads: RequestedOffloads;
  /** TUN transmit queue (packets the kernel holds for weft to read). */
  readonly tunTxQueueLen: number;
  readonly socketBufferBytes: number;
  /** Workers keep polling this long after handling packets (0 = off). */
  readonly busyPollMicros: number;
  /** Workers poll for a window that adapts to the traffic (src/workers/poll-window.ts); --busy-poll-us wins. */
  readonly adaptivePoll?: boolean;
  /** Workers read one TUN packet per pass while packets come one at a time (src/workers/read-limit.ts). */
  readonly shortTunReads?: boolean;
  /**
   * With several workers: each worker past the first sends from its own
   * socket and source port, and received datagrams are spread over the
   * workers by the inner flow (a reuseport program), not the outer 4-tuple.
   */
  readonly spreadFlows?: boolean;
  readonly icmpPerSecond: number;
  /**
   * Deliver a datagram only if it comes from a known host's public IP and its
   * inner source is in a subnet that host owns (src/workers/forwarder.ts).
   * Off, anyone who can reach the UDP port can inject packets into pods.
   */
  readonly sourceValidation: boolean;
  /**
   * Keep per-peer packet, byte and drop counters in the data plane (default
   * true); off only to measure what they cost (the bench's weft-no-peer-counters).
   */
  readonly peerCounters?: boolean;
  /**
   * `bpf`: the kernel fast path (src/fastpath/bpf-fast-path.ts) encapsulates
   * and decapsulates what needs no userspace decision; `off` (default): every
   * packet takes the userspace path.
   */
  readonly fastPath?: FastPathMode;
  /** Static mode: every --peer runs the fast path too (it may get super-packets). */
  readonly fastPathStaticPeers?: boolean;
}

export type FastPathMode = 'off' | 'bpf';
export const FAST_PATH_MODES: readonly FastPathMode[] = ['off', 'bpf'];

export const DEFAULT_TUN_NAME = 'flannel.0';
export const DEFAULT_TUN_TXQUEUELEN = 1000;
export const DEFAULT_BATCH_SIZE = 128;
export const DEFAULT_SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;
export const DEFAULT_ICMP_PER_SECOND = 1000;

/** The agent's defaults: every offload, except packing runs of small packets (measured to lower the loss-free rate). */
export const ALL_OFFLOADS: RequestedOffloads = Object.freeze({
  tunOffload: true, udpGso: true, udpGro: true, coalesceTcp: true, coalesceUdp: true, udpGsoRuns: false, trustOuterChecksum: true,
});

export const UDP_AGENT_DEFAULTS: UdpAgentOptions = Object.freeze({
  tunName: DEFAULT_TUN_NAME,
  workers: 1,
  batchSize: DEFAULT_BATCH_SIZE,
  offloads: ALL_OFFLOADS,
  tunTxQueueLen: DEFAULT_TUN_TXQUEUELEN,
  socketBufferBytes: DEFAULT_SOCKET_BUFFER_BYTES,
  busyPollMicros: 0,
  icmpPerSecond: DEFAULT_ICMP_PER_SECOND,
  sourceValidation: true,
  peerCounters: true,
});
