/**
 * What `weft status` shows: one JSON document the running agent builds on
 * request (status-server.ts serves it on a Unix socket; cli/status-command.ts
 * prints it). Plain data only: every address and prefix is text, every time
 * an ISO 8601 string, so the same object is the `--json` output.
 *
 * Fields that do not apply are null, never missing: a kernel backend (vxlan,
 * host-gw) keeps no per-peer traffic figures, static peers have no store.
 */

/** Bump when a field changes meaning or disappears (adding fields does not). */
export const STATUS_SCHEMA_VERSION = 1;

/** Traffic with one peer in one direction: totals since the peer appeared and rates over the last few seconds. */
export interface TrafficFigures {
  readonly packets: number;
  readonly bytes: number;
  readonly packetsPerSecond: number;
  readonly bitsPerSecond: number;
}

export interface PeerStatus {
  /** The peer's subnet, e.g. "10.244.2.0/24". */
  readonly subnet: string;
  /** Its underlay address (the lease's PublicIP). */
  readonly publicIp: string;
  /** How it is reached: "udp", "vxlan", "direct", "host-gw". */
  readonly via: string;
  /** UDP port (udp backend), else null. */
  readonly port: number | null;
  /** To the peer (datagrams sent) and from it (datagrams received); null when the backend keeps no per-peer figures. */
  readonly tx: TrafficFigures | null;
  readonly rx: TrafficFigures | null;
  /** Packets to or from this peer dropped, by "<direction>/<reason>" (e.g. "decap/source_not_owned"); null as above. */
  readonly drops: Readonly<Record<string, number>> | null;
}

export interface AgentStatus {
  readonly schema: number;
  readonly version: string;
  readonly pid: number;
  /** When the agent started (ISO 8601). */
  readonly startedAt: string;
  /** When this document was made (ISO 8601). */
  readonly now: string;
  /** As /readyz. */
  readonly ready: boolean;
  /** The cluster network (net-conf.json's Network), null while start-up waits for it. */
  readonly network: string | null;
  readonly lease: {
    readonly subnet: string;
    readonly publicIp: string;
    /** When the lease runs out unless renewed (ISO 8601); null for a static subnet. */
    readonly expiresAt: string | null;
  } | null;
  readonly backend: {
    readonly type: string;
    /** Overlay MTU (FLANNEL_MTU). */
    readonly mtu: number;
    /** Data-plane worker threads (udp), else null. */
    readonly workers: number | null;
    /** Offloads in effect after probing the kernel, by name (udp), else null. */
    readonly offloads: Readonly<Record<string, boolean>> | null;
  } | null;
  readonly store: {
    /** "etcd http://...", "file /var/lib/weft/leases.json", "static". */
    readonly description: string;
    /** Whether the last exchange with the store succeeded (always true for static peers). */
    readonly connected: boolean;
    /** Last successful lease renewal (ISO 8601), null before the first or for a static subnet. */
    readonly lastRenewal: string | null;
  };
  /** Data-plane drops over all peers and unknown senders, by "<direction>/<reason>" (udp), else null. */
  readonly drops: Readonly<Record<string, number>> | null;
  /** Peers routed now, in subnet order. */
  readonly peers: readonly PeerStatus[];
}

/** The agent side: whatever serves `weft status` asks this for a fresh document (it may take a moment to measure rates). */
export interface StatusSource {
  status(): AgentStatus | Promise<AgentStatus>;
}
