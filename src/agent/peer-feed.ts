/**
 * Leases become the backend's peers: every other host's lease that lies in the
 * cluster network, clear of this host's subnet, and that the backend can use.
 * What is left out, and why, is said once in the log (and again only when the
 * reason changes); so is a peer the backend could not program. Each delivery
 * replaces the whole peer set; the backend does the differences.
 */
import type { ApplyReport, Backend, Peer } from '../backend/backend';
import type { Logger } from '../log';
import { formatIpv4, formatPrefix, prefixCovers, prefixesOverlap, samePrefix, type Ipv4Prefix } from '../net/ipv4';
import { leaseBackendType, type Lease } from '../subnet/lease';

export interface PeerFeedOptions {
  readonly own: Ipv4Prefix;
  readonly network: Ipv4Prefix;
  /**
   * The length every genuine lease has (net-conf.json's SubnetLen, when the
   * leases come from a store that allocates them); a lease of another length
   * is ignored. Undefined: any length (static peers).
   */
  readonly subnetLen?: number;
  readonly log: Logger;
  /** Called after every delivery has reached the backend. */
  readonly onApplied?: (peers: readonly Peer[], report: ApplyReport) => void;
}

/** A lease as the peer it describes. */
export function peerOf(lease: Lease): Peer {
  return {
    subnet: lease.subnet,
    publicIp: lease.attrs.publicIp,
    backendType: leaseBackendType(lease.attrs),
    backendData: lease.attrs.backendData,
    port: lease.underlayPort,
  };
}

/** Why leases are ignored, as the `reason` label of weft_leases_ignored. */
export type IgnoredReason =
  | 'outside_network' | 'overlaps_own_subnet' | 'subnet_length' | 'bogus_public_ip' | 'overlaps_other_lease' | 'unusable_by_backend'
  | 'too_many_leases';

/**
 * At most this many peers are routed (a /16 of /24 leases holds 256; flannel's
 * smallest leases in a /8 would be 2^22): beyond it, leases are left out, in
 * subnet order, and counted, so that a store flooded with leases cannot grow
 * the route table or the kernel's without bound.
 */
export const MAX_PEERS = 65_536;
/** New "ignoring the lease" lines per delivery; the rest are summed up in one line. */
export const MAX_IGNORED_LINES = 32;

export interface LeaseProblem {
  readonly reason: IgnoredReason;
  readonly text: string;
}

/** Addresses no host can be reached at: this network, loopback, multicast, reserved and broadcast. */
const BOGUS_PUBLIC_IPS: readonly Ipv4Prefix[] = [
  { network: 0x00000000, length: 8 },
  { network: 0x7f000000, length: 8 },
  { network: 0xe0000000, length: 4 },
  { network: 0xf0000000, length: 4 },
];

/**
 * Why a lease cannot be a peer of this host whatever the backend, or
 * undefined. Pure. A lease someone else wrote may say anything: its subnet
 * must lie in the cluster network and clear of this host's, and its public IP
 * must be an address a host can have, outside its own and this host's pod
 * subnet (the overlay would carry packets for it into itself). A public IP
 * elsewhere in the Network is fine: flannel clusters put node addresses in the
 * Network outside SubnetMin..SubnetMax.
 */
export function leaseProblem(lease: Lease, network: Ipv4Prefix, own: Ipv4Prefix, subnetLen?: number): LeaseProblem | undefined {
  if (!prefixCovers(network, lease.subnet)) {
    return { reason: 'outside_network', text: `its subnet is outside the cluster network ${formatPrefix(network)}` };
  }
  if (prefixesOverlap(own, lease.subnet)) {
    return { reason: 'overlaps_own_subnet', text: `its subnet overlaps this host's own subnet ${formatPrefix(own)}` };
  }
  if (subnetLen !== undefined && lease.subnet.length !== subnetLen) {
    // an allocator writes only SubnetLen leases: another length overlaps genuine ones or takes their place
    return { reason: 'subnet_length', text: `its subnet is a /${lease.subnet.length}, but every lease of this network is a /${subnetLen} (SubnetLen)` };
  }
  const ip = lease.attrs.publicIp;
  const single = { network: ip, length: 32 };
  if (BOGUS_PUBLIC_IPS.some((p) => prefixCovers(p, single))) {
    return { reason: 'bogus_public_ip', text: `its PublicIP ${formatIpv4(ip)} is not an address a host can be reached at` };
  }
  if (prefixCovers(lease.subnet, single) || prefixCovers(own, single)) {
    return { reason: 'bogus_public_ip', text: `its PublicIP ${formatIpv4(ip)} is inside a pod subnet` };
  }
  return undefined;
}

/**
 * Leases whose subnets overlap another lease's, each with the other's subnet.
 * Both sides of an overlap are left out: which one is genuine cannot be told,
 * and a route for either would take the other's traffic. O(n log n).
 */
export function overlappingLeases(leases: readonly Lease[]): Map<Lease, Ipv4Prefix> {
  const sorted = [...leases].sort((a, b) => a.subnet.network - b.subnet.network || a.subnet.length - b.subnet.length);
  const out = new Map<Lease, Ipv4Prefix>();
  let widest: Lease | undefined; // the lease reaching furthest among those seen so far
  let widestEnd = -1;
  for (const lease of sorted) {
    const end = lease.subnet.network + 2 ** (32 - lease.subnet.length) - 1;
    if (widest !== undefined && lease.subnet.network <= widestEnd) {
      out.set(lease, widest.subnet);
      if (!out.has(widest)) out.set(widest, lease.subnet);
    }
    if (end > widestEnd) {
      widest = lease;
      widestEnd = end;
    }
  }
  return out;
}

export class PeerFeed {
  private readonly backend: Backend;
  private readonly options: PeerFeedOptions;
  /** Last reason said per subnet (skipped or failed), so each is logged once. */
  private readonly said = new Map<string, string>();
  private current: readonly Peer[] = [];
  private ignoredNow = new Map<IgnoredReason, number>();
  private overflowSaid = 0;

  constructor(backend: Backend, options: PeerFeedOptions) {
    this.backend = backend;
    this.options = options;
  }

  /** The peers given to the backend by the last delivery. */
  peers(): readonly Peer[] {
    return this.current;
  }

  /** How many of the leases of the last delivery were left out, by reason. */
  ignored(): ReadonlyMap<IgnoredReason, number> {
    return this.ignoredNow;
  }

  /** Turns the lease set into peers and applies them. Calls must not overlap (the lease watcher serializes them). */
  async apply(leases: readonly Lease[], why: string): Promise<void> {
    const { own, network, log } = this.options;
    const peers: Peer[] = [];
    const seen = new Set<string>();
    const ignored = new Map<IgnoredReason, number>();
    // in subnet order, so that the MAX_PEERS cut is the same whatever order the store delivered
    const others = leases.filter((l) => !samePrefix(l.subnet, own))
      .sort((a, b) => a.subnet.network - b.subnet.network || a.subnet.length - b.subnet.length);
    const problems = new Map<Lease, LeaseProblem>();
    for (const lease of others) {
      const problem = leaseProblem(lease, network, own, this.options.subnetLen);
      if (problem !== undefined) problems.set(lease, problem);
    }
    for (const [lease, other] of overlappingLeases(others.filter((l) => !problems.has(l)))) {
      problems.set(lease, { reason: 'overlaps_other_lease', text: `its subnet overlaps the lease of ${formatPrefix(other)}` });
    }
    let lines = 0;
    let unsaid = 0;
    let overflow = 0;
    for (const lease of others) {
      const key = formatPrefix(lease.subnet);
      seen.add(key);
      const peer = peerOf(lease);
      const problem = problems.get(lease);
      const verdict = problem === undefined ? this.backend.accepts(peer) : { ok: false as const, reason: problem.text };
      if (!verdict.ok) {
        const reason = problem?.reason ?? 'unusable_by_backend';
        ignored.set(reason, (ignored.get(reason) ?? 0) + 1);
        if (lines >= MAX_IGNORED_LINES) {
          if (this.said.get(key) !== `ignored: ${verdict.reason}`) unsaid++;
          continue;
        }
        this.sayOnce(key, `ignored: ${verdict.reason}`, () => {
          lines++;
          log.warn({ subnet: key, publicIp: formatIpv4(peer.publicIp), backendType: peer.backendType, reason: verdict.reason },
            `ignoring the lease of ${key}: ${verdict.reason}`);
        });
        continue;
      }
      if (peers.length >= MAX_PEERS) {
        overflow++;
        continue;
      }
      peers.push(peer);
    }
    if (unsaid > 0) log.warn({ more: unsaid }, `${unsaid} more leases ignored (not each named: see weft_leases_ignored)`);
    if (overflow > 0) {
      ignored.set('too_many_leases', overflow);
      if (this.overflowSaid !== overflow) log.error({ routed: MAX_PEERS, left: overflow }, `more than ${MAX_PEERS} leases: ${overflow} are not routed`);
    }
    this.overflowSaid = overflow;
    this.ignoredNow = ignored;
    const report = await this.backend.applyPeers(peers);
    this.current = peers;
    const failed = new Map(report.failed.map((f) => [formatPrefix(f.subnet), f.reason]));
    for (const peer of peers) {
      const key = formatPrefix(peer.subnet);
      const reason = failed.get(key);
      if (reason !== undefined) {
        this.sayOnce(key, `failed: ${reason}`, () => log.error({ subnet: key, reason }, `no route to ${key}: ${reason}`));
      } else if (this.said.has(key)) {
        this.said.delete(key);
        log.info({ subnet: key }, `${key} is routed now`);
      }
    }
    for (const [key, reason] of failed) {
      if (!peers.some((p) => formatPrefix(p.subnet) === key)) this.sayOnce(key, reason, () => log.error({ reason }, reason));
    }
    for (const key of [...this.said.keys()]) if (!seen.has(key) && !failed.has(key)) this.said.delete(key);
    if (report.added + report.removed > 0 || why === 'snapshot' || why === 'start') {
      const list = this.backend.routes().map((r) => `${formatPrefix(r.subnet)}=${formatIpv4(r.publicIp)} (${r.via})`);
      log.info({ why, count: list.length, added: report.added, removed: report.removed, routes: list.length <= 16 ? list : undefined }, 'routes updated');
      if (list.length > 16) log.debug({ routes: list }, 'all routes');
    }
    this.options.onApplied?.(peers, report);
  }

  private sayOnce(key: string, reason: string, say: () => void): void {
    if (this.said.get(key) === reason) return;
    this.said.set(key, reason);
    say();
  }
}
