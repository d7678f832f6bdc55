/**
 * What the kernel backends (vxlan, host-gw) share: the peer set is turned into
 * kernel objects and reconciled (kernel-peers.ts), one apply at a time, and
 * re-applied every resync period so that a route, neighbour or FDB entry
 * someone deleted comes back (flanneld re-checks host-gw routes every 10 s).
 * Also their metrics.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import type { ApplyReport, Peer, RouteView } from './backend';
import { reconcilePeers, type PeerObjects, type PlanScope } from './kernel-peers';

/** flanneld's route check period (pkg/backend/route_network.go). */
export const KERNEL_RESYNC_MS = 10_000;

/** A backend's translation of peers into kernel objects. */
export interface PeerTranslation {
  readonly objects: readonly PeerObjects[];
  /** How each programmed peer is reached, by subnet ("vxlan", "direct", "host-gw"). */
  readonly via: ReadonlyMap<string, string>;
  /** Peers that get nothing, and why (e.g. not on this host's segment). */
  readonly unroutable: readonly { readonly subnet: Ipv4Prefix; readonly reason: string }[];
}

export interface KernelPeerSyncOptions {
  readonly scope: () => PlanScope;
  readonly translate: (peers: readonly Peer[]) => Promise<PeerTranslation>;
  /** Runs before each periodic resync (vxlan: re-create a deleted device). */
  readonly beforeResync?: () => Promise<void>;
  readonly resyncMs?: number;
  readonly log: Logger;
}

export class KernelPeerSync {
  private readonly options: KernelPeerSyncOptions;
  private peers: readonly Peer[] = [];
  private views: RouteView[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private onResync: ((report: ApplyReport) => void) | undefined;
  private stopped = false;
  private applies = 0;
  private added = 0;
  private removed = 0;
  private lastApplySeconds = 0;
  private failing = 0;

  constructor(options: KernelPeerSyncOptions) {
    this.options = options;
  }

  /** Makes `peers` the programmed set (serialized with resyncs). The first call also starts the resync, if asked for. */
  apply(peers: readonly Peer[]): Promise<ApplyReport> {
    this.peers = peers;
    const report = this.enqueue(() => this.run(peers));
    if (this.onResync !== undefined && this.timer === undefined && !this.stopped) this.armResync(this.onResync);
    return report;
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.catch(() => undefined).then(fn);
    this.queue = next;
    return next;
  }

  private async run(peers: readonly Peer[]): Promise<ApplyReport> {
    const started = process.hrtime.bigint();
    const t = await this.options.translate(peers);
    const report = await reconcilePeers(t.objects, this.options.scope());
    const failed = [...t.unroutable, ...report.failed];
    const failedKeys = new Set(failed.map((f) => formatPrefix(f.subnet)));
    this.views = peers
      .filter((p) => t.via.has(formatPrefix(p.subnet)) && !failedKeys.has(formatPrefix(p.subnet)))
      .map((p) => ({ subnet: p.subnet, publicIp: p.publicIp, via: t.via.get(formatPrefix(p.subnet)) as string }));
    this.applies++;
    this.added += report.added;
    this.removed += report.removed;
    this.failing = failed.length;
    this.lastApplySeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (report.added + report.removed > 0) {
      this.options.log.debug({ added: report.added, removed: report.removed, ms: Math.round(this.lastApplySeconds * 1000) }, 'kernel objects updated');
    }
    return { routed: this.views.length, added: report.added, removed: report.removed, failed };
  }

  /**
   * Asks for the periodic resync; it starts with the first apply(), never
   * before: until the lease set has been delivered, "no peers" would remove
   * every route a previous run left (and pods would lose the overlay while the
   * agent restarts). `onReport` sees every resync's result.
   */
  startResync(onReport: (report: ApplyReport) => void): void {
    this.onResync = onReport;
  }

  private armResync(onReport: (report: ApplyReport) => void): void {
    const ms = this.options.resyncMs ?? KERNEL_RESYNC_MS;
    this.timer = setInterval(() => {
      if (this.stopped) return;
      void this.enqueue(async () => {
        if (this.stopped) return;
        await this.options.beforeResync?.();
        const report = await this.run(this.peers);
        if (report.added + report.removed > 0) {
          this.options.log.warn({ restored: report.added, removed: report.removed }, 'kernel routes had drifted from the leases; corrected');
        }
        onReport(report);
      }).catch((err: unknown) => this.options.log.error({ err: (err as Error).message }, 'kernel resync failed; will retry'));
    }, ms);
    this.timer.unref();
  }

  routes(): readonly RouteView[] {
    return this.views;
  }

  /** Stops resyncing and waits for a running apply. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.queue.catch(() => undefined);
  }

  registerMetrics(registry: Registry): void {
    const self = this;
    new Counter({
      name: 'weft_kernel_applies_total',
      help: 'Times the peer set was reconciled with the kernel (lease changes and periodic resyncs)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.applies);
      },
    });
    new Counter({
      name: 'weft_kernel_changes_total',
      help: 'Kernel objects (routes, neighbours, FDB entries) added or replaced, and removed',
      labelNames: ['change'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ change: 'added' }, self.added);
        this.inc({ change: 'removed' }, self.removed);
      },
    });
    new Gauge({
      name: 'weft_kernel_last_apply_seconds',
      help: 'How long the last reconcile with the kernel took',
      registers: [registry],
      collect() {
        this.set(self.lastApplySeconds);
      },
    });
    new Gauge({
      name: 'weft_peers_unroutable',
      help: 'Peers this backend could not program at the last apply (not on the segment, a foreign route in the way, a kernel error)',
      registers: [registry],
      collect() {
        this.set(self.failing);
      },
    });
  }
}
