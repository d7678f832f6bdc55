/**
 * Keeps this host's lease alive: renews it `margin` before it expires (at
 * least every third of the TTL, and never more often than needed), retries a
 * failed renewal after a minute (or a tenth of the TTL when that is shorter),
 * and reports a lease that is definitely gone (LeaseLostError) so the agent
 * can stop.
 */
import { LeaseLostError } from '../errors';
import type { Logger } from '../log';
import { formatPrefix } from '../net/ipv4';
import type { Lease, LeaseAttrs, LeaseStore } from './lease';

export interface KeeperOptions {
  readonly ttlSeconds: number;
  /** --subnet-lease-renew-margin, in seconds. */
  readonly marginSeconds: number;
  readonly log: Logger;
  readonly onLost: (err: LeaseLostError) => void;
  /** Each renewal that succeeded, and each that failed and will be retried (for the store's state). */
  readonly onRenewed?: (lease: Lease) => void;
  readonly onRenewFailed?: (err: Error) => void;
  readonly now?: () => number;
}

/** Milliseconds from now until the next renewal. */
export function renewDelayMs(expiresAt: number, now: number, ttlSeconds: number, marginSeconds: number): number {
  const floor = Math.min((ttlSeconds * 1000) / 3, 60_000);
  return Math.max(expiresAt - marginSeconds * 1000 - now, floor);
}

/** Milliseconds before retrying a failed renewal: flannel's minute, shorter for short test TTLs. */
export function retryDelayMs(ttlSeconds: number): number {
  return Math.max(500, Math.min(60_000, (ttlSeconds * 1000) / 10));
}

export class LeaseKeeper {
  private lease: Lease;
  private readonly store: LeaseStore;
  private readonly attrs: LeaseAttrs;
  private readonly options: KeeperOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private renewing: Promise<void> | undefined;

  constructor(store: LeaseStore, lease: Lease, attrs: LeaseAttrs, options: KeeperOptions) {
    this.store = store;
    this.lease = lease;
    this.attrs = attrs;
    this.options = options;
  }

  current(): Lease {
    return this.lease;
  }

  start(): void {
    this.schedule(this.nextDelay());
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private nextDelay(): number {
    const { ttlSeconds, marginSeconds } = this.options;
    const expires = this.lease.expiration?.getTime() ?? this.now() + ttlSeconds * 1000;
    return renewDelayMs(expires, this.now(), ttlSeconds, marginSeconds);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.renewing = this.renew();
    }, ms);
    this.timer.unref?.();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const { log, ttlSeconds } = this.options;
    try {
      this.lease = await this.store.renew(this.lease, this.attrs, ttlSeconds);
      log.debug({ subnet: formatPrefix(this.lease.subnet), expires: this.lease.expiration?.toISOString() }, 'lease renewed');
      this.options.onRenewed?.(this.lease);
      this.schedule(this.nextDelay());
    } catch (err) {
      if (err instanceof LeaseLostError) {
        if (!this.stopped) this.options.onLost(err);
        return;
      }
      this.options.onRenewFailed?.(err as Error);
      const retry = retryDelayMs(ttlSeconds);
      log.warn({ err: (err as Error).message, retryMs: retry }, 'lease renewal failed; will retry');
      this.schedule(retry);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewing;
  }
}
