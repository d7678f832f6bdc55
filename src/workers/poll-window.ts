/**
 * Adaptive polling for a data-plane worker, after the guest haltpoll
 * governor: after handling packets the worker keeps polling its descriptors
 * for up to `window` microseconds before it sleeps, because on a VM whose idle
 * vCPUs halt, waking a sleeping thread costs tens of microseconds per packet.
 *
 * The window adapts to the traffic:
 *   grow    the worker slept and was woken again sooner than `maxMicros`: a
 *           longer window would have caught that packet (doubles, from
 *           `startMicros`, up to `maxMicros`);
 *   shrink  it slept longer than `maxMicros`: polling would have been wasted
 *           (halves; below `startMicros` it is 0: no polling at all);
 *   keep    the poll caught the next packet: the window pays.
 * An idle worker never wakes, so it never polls: idle CPU stays near zero.
 * The caller skips polling after a full pass (more is waiting anyway).
 *
 * Pure: time comes in as arguments, so the policy can be tested alone.
 */

export interface PollWindowOptions {
  /** First non-zero window, and the smallest kept (µs). */
  readonly startMicros: number;
  /** Largest window (µs); a sleep longer than this shrinks the window. */
  readonly maxMicros: number;
}

export const DEFAULT_POLL_WINDOW: PollWindowOptions = Object.freeze({ startMicros: 20, maxMicros: 200 });

export class PollWindow {
  private readonly o: PollWindowOptions;
  private windowMicros = 0;
  /** When the worker last went to sleep (µs, caller's clock); -1 while awake or before the first sleep. */
  private sleptAt = -1;

  constructor(options: PollWindowOptions = DEFAULT_POLL_WINDOW) {
    if (!(options.startMicros > 0 && options.maxMicros >= options.startMicros)) {
      throw new RangeError(`poll window: need 0 < startMicros <= maxMicros, got ${options.startMicros} and ${options.maxMicros}`);
    }
    this.o = options;
  }

  /** The window to poll for now (µs); 0 means sleep at once. */
  get micros(): number {
    return this.windowMicros;
  }

  /** A readiness callback ran at `now` (µs): adapt to how long the sleep before it lasted. */
  woke(now: number): void {
    if (this.sleptAt < 0) return;
    const slept = now - this.sleptAt;
    this.sleptAt = -1;
    if (slept < this.o.maxMicros) {
      this.windowMicros = Math.min(this.o.maxMicros, Math.max(this.o.startMicros, this.windowMicros * 2));
    } else {
      const half = this.windowMicros / 2;
      this.windowMicros = half < this.o.startMicros ? 0 : half;
    }
  }

  /** The worker polled for the whole window (or not at all) and now sleeps, at `now` (µs). */
  sleeping(now: number): void {
    this.sleptAt = now;
  }
}
