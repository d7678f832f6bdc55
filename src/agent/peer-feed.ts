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

/** Why a lease cannot be a peer of this host whatever the backend, or undefined. Pure. */
export function leaseProblem(lease: Lease, network: Ipv4Prefix, own: Ipv4Prefix): string | undefined {
  if (!prefixCovers(network, lease.subnet)) return `its subnet is outside the cluster network ${formatPrefix(network)}`;
  if (prefixesOverlap(own, lease.subnet)) return `its subnet overlaps this host's own subnet ${formatPrefix(own)}`;
  return undefined;
}

export class PeerFeed {
  private readonly backend: Backend;
  private readonly options: PeerFeedOptions;
  /** Last reason said per subnet (skipped or failed), so each is logged once. */
  private readonly said = new Map<string, string>();
  private current: readonly Peer[] = [];

  constructor(backend: Backend, options: PeerFeedOptions) {
    this.backend = backend;
    this.options = options;
  }

  /** The peers given to the backend by the last delivery. */
  peers(): readonly Peer[] {
    return this.current;
  }

  /** Turns the lease set into peers and applies them. Calls must not overlap (the lease watcher serializes them). */
  async apply(leases: readonly Lease[], why: string): Promise<void> {
    const { own, network, log } = this.options;
    const peers: Peer[] = [];
    const seen = new Set<string>();
    for (const lease of leases) {
      if (samePrefix(lease.subnet, own)) continue;
      const key = formatPrefix(lease.subnet);
      seen.add(key);
      const peer = peerOf(lease);
      const problem = leaseProblem(lease, network, own);
      const verdict = problem === undefined ? this.backend.accepts(peer) : { ok: false as const, reason: problem };
      if (!verdict.ok) {
        this.sayOnce(key, `ignored: ${verdict.reason}`, () =>
          log.warn({ subnet: key, publicIp: formatIpv4(peer.publicIp), backendType: peer.backendType, reason: verdict.reason },
            `ignoring the lease of ${key}: ${verdict.reason}`));
        continue;
      }
      peers.push(peer);
    }
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
