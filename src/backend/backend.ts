/**
 * A backend carries pod traffic from this host's lease to the other hosts'
 * leases. It is chosen by net-conf.json's `Backend.Type` from the registry
 * (registry.ts) and owns everything that differs between backends:
 *
 *   parseConfig   its part of net-conf.json (`Backend.*`), checked before the host is touched
 *   prepare       what must exist before the lease (vxlan: the device, whose MAC the lease carries)
 *   start         the data path, once the lease is known
 *   accepts       which peers' leases it can use, and why not
 *   applyPeers    the set of peers it routes to (always the whole set)
 *   metrics       its own Prometheus series
 *   stop          keep (a restart: pods keep talking) or remove what it made
 *
 * The agent never asks which backend it runs; the backend never asks the
 * agent anything.
 */
import type { Registry } from 'prom-client';
import type { HostLedger } from '../host/ledger';
import type { Logger } from '../log';
import type { Ipv4Prefix } from '../net/ipv4';
import type { Underlay } from '../net/interfaces';
import type { Lease, LeaseAttrs } from '../subnet/lease';
import type { UdpAgentOptions } from './udp/udp-options';

/** Another host of the overlay, as its lease describes it. */
export interface Peer {
  readonly subnet: Ipv4Prefix;
  /** Underlay address of the peer (its PublicIP). */
  readonly publicIp: number;
  /** The lease's BackendType; a lease that has none is a udp lease (flanneld's udp backend writes none). */
  readonly backendType: string;
  /** The lease's BackendData as parsed JSON (vxlan: {"VNI":1,"VtepMAC":"..."}), undefined when absent. */
  readonly backendData: unknown;
  /** The peer's underlay port when it was given explicitly (static `--peer IP:PORT`); otherwise the network's. */
  readonly port?: number | undefined;
}

/** Whether a backend can route to a peer. */
export type PeerVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export const ACCEPTED: PeerVerdict = Object.freeze({ ok: true });

/**
 * Traffic with one peer since it was first routed (the udp data plane counts
 * it; the kernel backends leave it to the kernel and report none).
 */
export interface PeerTraffic {
  /** Datagrams and payload bytes the kernel took for the peer. */
  readonly txPackets: number;
  readonly txBytes: number;
  /** Datagrams and payload bytes that came from the peer's public IP. */
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** Packets to or from the peer dropped, by "<direction>/<reason>"; reasons with none are left out. */
  readonly drops: Readonly<Record<string, number>>;
}

/** One peer as the backend routes it now (for /routes, `weft status` and logs). */
export interface RouteView {
  readonly subnet: Ipv4Prefix;
  readonly publicIp: number;
  /** How it is reached: "udp", "vxlan", "direct" (vxlan's DirectRouting), "host-gw". */
  readonly via: string;
  /** The peer's UDP port (udp backend). */
  readonly port?: number | undefined;
  /** Per-peer figures, when the backend keeps them. */
  readonly traffic?: PeerTraffic | undefined;
}

/** A userspace data plane's shape and totals, for `weft status` (kernel backends have none). */
export interface DataPlaneView {
  readonly workers: number;
  /** Offloads in effect, by name. */
  readonly offloads: Readonly<Record<string, boolean>>;
  /** Drops over all peers and unknown senders, by "<direction>/<reason>"; reasons with none are left out. */
  readonly drops: Readonly<Record<string, number>>;
}

/** What an applyPeers call did. */
export interface ApplyReport {
  /** Peers routed after the call. */
  readonly routed: number;
  /** Kernel objects (or data-plane routes) added, replaced and removed. */
  readonly added: number;
  readonly removed: number;
  /** Peers that could not be programmed this time, with the reason (the next apply retries them). */
  readonly failed: readonly { readonly subnet: Ipv4Prefix; readonly reason: string }[];
}

/**
 * How a backend stops:
 *   keep    leave what carries traffic in place (kernel backends: device, routes,
 *           neighbours, FDB) so that pods keep talking while the agent restarts
 *   remove  remove everything the backend created (uninstall, tests)
 * The udp backend's TUN disappears with the process in both cases.
 */
export type StopMode = 'keep' | 'remove';

/** Everything a backend may use from the agent. */
export interface BackendContext {
  readonly network: Ipv4Prefix;
  readonly underlay: Underlay;
  /** Record of what weft created on this host (kept across restarts). */
  readonly ledger: HostLedger;
  readonly log: Logger;
  /** The agent's flags for the udp data plane (TUN name, workers, offloads, ...). */
  readonly udp: UdpAgentOptions;
  /** How often the kernel backends re-check their routes, neighbour and FDB entries and device. */
  readonly kernelResyncSeconds: number;
}

export interface Backend {
  /** The Backend.Type this backend implements ("udp", "vxlan", "host-gw"). */
  readonly type: string;
  /** MTU of the overlay as pods should use it (FLANNEL_MTU). */
  readonly mtu: number;
  /**
   * Creates what must exist before the lease is acquired and returns what the
   * lease publishes (PublicIP, BackendType, BackendData).
   */
  prepare(): Promise<LeaseAttrs>;
  /** Brings up the data path for this host's lease. */
  start(lease: Lease): Promise<void>;
  /** Pure: whether this backend can route to `peer` (the lease's type and data). */
  accepts(peer: Peer): PeerVerdict;
  /**
   * Makes `peers` (all accepted) the complete set this backend routes to: adds,
   * changes and removes as needed. Calls are serialized by the caller.
   */
  applyPeers(peers: readonly Peer[]): Promise<ApplyReport>;
  /** The peers as routed now, with their traffic when the backend counts it. */
  routes(): readonly RouteView[];
  /** The userspace data plane's shape and totals, or null for a kernel backend. */
  dataPlane(): DataPlaneView | null;
  /** Adds this backend's metrics to the agent's registry. */
  registerMetrics(registry: Registry): void;
  /** Called when the data path fails at run time; the agent replaces it to stop. */
  onFatal: (err: Error) => void;
  /** Stops; safe to call twice and before start. */
  stop(mode: StopMode): Promise<void>;
}

/**
 * One backend type in the registry. `C` is its checked configuration.
 */
export interface BackendFactory<C = unknown> {
  readonly type: string;
  /**
   * Checks net-conf.json's `Backend` object (keys as written; `Type` already
   * matched) and returns the normalized configuration. Pure; throws
   * ConfigError naming `<source>: Backend.<Field>` and the value.
   */
  parseConfig(backend: Readonly<Record<string, unknown>>, source: string): C;
  /** Builds the backend; nothing on the host changes until prepare(). */
  create(config: C, ctx: BackendContext): Backend;
}
