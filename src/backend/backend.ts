/**
 * A backend carries traffic for one host's lease to the other hosts' leases.
 * The agent tells it which peers exist; it never asks the agent anything.
 */
import type { Ipv4Prefix } from '../net/ipv4';
import type { BackendType } from '../subnet/net-config';

/** Another host of the overlay: its lease and where to reach it. */
export interface PeerLease {
  readonly subnet: Ipv4Prefix;
  /** Underlay address of the peer (its PublicIP). */
  readonly publicIp: number;
  /** UDP port for the udp backend (the peer's Backend.Port). */
  readonly port: number;
}

export interface Backend {
  readonly type: BackendType;
  /** MTU of the overlay as pods should use it (FLANNEL_MTU). */
  readonly mtu: number;
  /** Adds or replaces the route to a peer; effective without a restart. */
  setPeer(peer: PeerLease): Promise<void>;
  /** Removes the route to a peer's lease; false if it was not known. */
  deletePeer(subnet: Ipv4Prefix): Promise<boolean>;
  /** Replaces the whole peer set at once (one update to the data plane). */
  replacePeers(peers: readonly PeerLease[]): Promise<void>;
  peers(): PeerLease[];
  /** Data-plane counters by name. */
  counters(): Record<string, number>;
  /** Removes everything the backend created on the host. Safe to call twice. */
  stop(): Promise<void>;
}
