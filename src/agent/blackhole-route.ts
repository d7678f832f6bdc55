/**
 * `--ip-blackhole-route` (flanneld's flag): a blackhole route for this host's
 * own lease, so that traffic to an address of the lease that no pod holds is
 * dropped here instead of following the default route out of the host.
 * Re-checked every --iptables-resync seconds, as flanneld does.
 *
 * Unlike flanneld's, weft's route has the lowest priority (the highest
 * metric): flanneld adds it with metric 0, and when it is there before the
 * bridge (cni0) gets its address, the kernel picks the blackhole over the
 * bridge's own route for the same prefix and the host's pods become
 * unreachable. With the metric, the bridge's route wins whenever it exists.
 * It stays when the agent stops; `weft cleanup` removes it (routing protocol
 * WEFT_ROUTE_PROTO).
 */
import { WEFT_ROUTE_PROTO } from '../host/kernel-state';
import type { Logger } from '../log';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { ip } from '../sys/exec';

/** The lowest route priority there is. */
export const BLACKHOLE_METRIC = 4294967295;

export function blackholeCommand(lease: Ipv4Prefix): string[] {
  return ['route', 'replace', 'blackhole', formatPrefix(lease), 'proto', String(WEFT_ROUTE_PROTO), 'metric', String(BLACKHOLE_METRIC)];
}

export class BlackholeRoute {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private stopped = false;

  constructor(
    private readonly lease: Ipv4Prefix,
    private readonly resyncSeconds: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.ensure();
    if (this.stopped) return;
    this.log.info({ route: `blackhole ${formatPrefix(this.lease)} metric ${BLACKHOLE_METRIC}` }, 'blackhole route for this host\'s lease');
    this.timer = setInterval(() => void this.ensure(), this.resyncSeconds * 1000);
    this.timer.unref();
  }

  private async ensure(): Promise<void> {
    try {
      await ip(blackholeCommand(this.lease));
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.error({ err: (err as Error).message }, 'cannot add the blackhole route; will retry');
      this.failing = true;
    }
  }

  /** Stops re-checking; the route stays. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
