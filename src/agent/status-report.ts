/**
 * Builds `weft status`'s document from what the agent holds: its start-up
 * progress, the subnet manager's view of the store and the lease, and the
 * backend's routes and data plane. Read-only; everything is asked for at the
 * moment of the request.
 */
import type { Backend, PeerTraffic } from '../backend/backend';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import type { SubnetManager } from '../subnet/subnet-manager';
import { STATUS_SCHEMA_VERSION, type AgentStatus, type PeerStatus, type StatusSource } from './agent-status';
import { NO_RATES, TrafficRates } from './traffic-rates';

export interface StatusParts {
  readonly version: string;
  readonly startedAt: Date;
  readonly manager: SubnetManager;
  isReady(): boolean;
  /** The cluster network once the configuration is known. */
  network(): Ipv4Prefix | undefined;
  /** The backend once chosen (it may not be started yet). */
  backend(): Backend | undefined;
}

export class StatusReport implements StatusSource {
  private readonly parts: StatusParts;
  private readonly rates: TrafficRates;

  constructor(parts: StatusParts) {
    this.parts = parts;
    this.rates = new TrafficRates({ read: () => this.totals() });
  }

  private totals(): ReadonlyMap<string, PeerTraffic> {
    const out = new Map<string, PeerTraffic>();
    for (const r of this.parts.backend()?.routes() ?? []) {
      if (r.traffic !== undefined) out.set(formatPrefix(r.subnet), r.traffic);
    }
    return out;
  }

  async status(): Promise<AgentStatus> {
    const { parts } = this;
    const backend = parts.backend();
    const routes = backend?.routes() ?? [];
    const counted = routes.some((r) => r.traffic !== undefined);
    const rates = counted ? await this.rates.rates() : new Map();
    // routes again after the wait: the figures and the peer set of this moment
    const now = counted ? (backend?.routes() ?? []) : routes;
    const store = parts.manager.state();
    const lease = store.lease;
    const dataPlane = backend?.dataPlane() ?? null;
    const network = parts.network();
    const peers: PeerStatus[] = now.map((r) => {
      const key = formatPrefix(r.subnet);
      const t = r.traffic;
      const rate = rates.get(key) ?? NO_RATES;
      return {
        subnet: key,
        publicIp: formatIpv4(r.publicIp),
        via: r.via,
        port: r.port ?? null,
        tx: t === undefined ? null : { packets: t.txPackets, bytes: t.txBytes, packetsPerSecond: rate.txPacketsPerSecond, bitsPerSecond: rate.txBitsPerSecond },
        rx: t === undefined ? null : { packets: t.rxPackets, bytes: t.rxBytes, packetsPerSecond: rate.rxPacketsPerSecond, bitsPerSecond: rate.rxBitsPerSecond },
        drops: t === undefined ? null : { ...t.drops },
      };
    });
    return {
      schema: STATUS_SCHEMA_VERSION,
      version: parts.version,
      pid: process.pid,
      startedAt: parts.startedAt.toISOString(),
      now: new Date().toISOString(),
      ready: parts.isReady(),
      network: network === undefined ? null : formatPrefix(network),
      lease: lease === undefined ? null : {
        subnet: formatPrefix(lease.subnet),
        publicIp: formatIpv4(lease.attrs.publicIp),
        expiresAt: lease.expiration?.toISOString() ?? null,
      },
      backend: backend === undefined ? null : {
        type: backend.type,
        mtu: backend.mtu,
        workers: dataPlane?.workers ?? null,
        offloads: dataPlane === null ? null : { ...dataPlane.offloads },
      },
      store: {
        description: parts.manager.description,
        connected: store.connected,
        lastRenewal: store.lastRenewal?.toISOString() ?? null,
      },
      drops: dataPlane === null ? null : { ...dataPlane.drops },
      peers,
    };
  }

  /** Stops sampling rates (the agent stops). */
  close(): void {
    this.rates.stop();
  }
}
