/**
 * Live per-peer rates for `weft status`, from the data plane's running totals.
 * Sampling starts with the first request and stops after a minute without
 * one, so an agent nobody looks at reads nothing. A rate is the change over
 * the last two to three seconds; the first request waits one sampling period so that
 * even a one-shot `weft status` shows real rates.
 */
import type { PeerTraffic } from '../backend/backend';

export interface Rates {
  readonly txPacketsPerSecond: number;
  readonly txBitsPerSecond: number;
  readonly rxPacketsPerSecond: number;
  readonly rxBitsPerSecond: number;
}

export const NO_RATES: Rates = Object.freeze({ txPacketsPerSecond: 0, txBitsPerSecond: 0, rxPacketsPerSecond: 0, rxBitsPerSecond: 0 });

interface Sample {
  readonly at: number;
  readonly totals: ReadonlyMap<string, PeerTraffic>;
}

export interface TrafficRatesOptions {
  /** The per-peer totals now, keyed by subnet. */
  readonly read: () => ReadonlyMap<string, PeerTraffic>;
  readonly periodMs?: number;
  /** Samples kept: rates span up to (keep - 1) periods. */
  readonly keep?: number;
  readonly idleStopMs?: number;
  readonly now?: () => number;
}

export class TrafficRates {
  private readonly o: Required<TrafficRatesOptions>;
  private samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastAsked = 0;

  constructor(options: TrafficRatesOptions) {
    this.o = { periodMs: 1000, keep: 3, idleStopMs: 60_000, now: () => performance.now(), ...options };
  }

  /** Rates by subnet over the recent window (starts sampling; the first call waits one period). */
  async rates(): Promise<ReadonlyMap<string, Rates>> {
    this.lastAsked = this.o.now();
    if (this.timer === undefined) {
      this.samples = [];
      this.sample();
      this.timer = setInterval(() => this.tick(), this.o.periodMs);
      this.timer.unref();
      // not unref'd: the caller is waiting for this answer
      await new Promise((resolve) => setTimeout(resolve, this.o.periodMs));
    }
    return this.compute(this.o.read(), this.o.now());
  }

  /** Rates between the oldest kept sample and `current` (taken at `at`). */
  compute(current: ReadonlyMap<string, PeerTraffic>, at: number): ReadonlyMap<string, Rates> {
    const out = new Map<string, Rates>();
    const oldest = this.samples[0];
    if (oldest === undefined || at <= oldest.at) return out;
    const seconds = (at - oldest.at) / 1000;
    for (const [subnet, now] of current) {
      const then = oldest.totals.get(subnet);
      if (then === undefined) continue;
      // a total that went down belongs to a subnet that left and came back: no rate yet
      const per = (a: number, b: number): number => (a >= b ? (a - b) / seconds : 0);
      out.set(subnet, {
        txPacketsPerSecond: per(now.txPackets, then.txPackets),
        txBitsPerSecond: 8 * per(now.txBytes, then.txBytes),
        rxPacketsPerSecond: per(now.rxPackets, then.rxPackets),
        rxBitsPerSecond: 8 * per(now.rxBytes, then.rxBytes),
      });
    }
    return out;
  }

  private tick(): void {
    if (this.o.now() - this.lastAsked > this.o.idleStopMs) {
      this.stop();
      return;
    }
    this.sample();
  }

  private sample(): void {
    this.samples.push({ at: this.o.now(), totals: this.o.read() });
    if (this.samples.length > this.o.keep) this.samples.shift();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.samples = [];
  }
}
