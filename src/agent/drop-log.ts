/**
 * Data-plane drops in the log, at debug only and at most once a period: the
 * packet path never logs, so this is where an operator running with -v sees
 * that packets are being dropped and why, without a line per packet.
 */
import type { Logger } from '../log';

export const DROP_LOG_PERIOD_MS = 10_000;

export class DropLog {
  private readonly log: Logger;
  private readonly read: () => Readonly<Record<string, number>> | null;
  private last: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;

  /** `read` gives the drop totals by "<direction>/<reason>" (null: no userspace data plane). */
  constructor(log: Logger, read: () => Readonly<Record<string, number>> | null) {
    this.log = log;
    this.read = read;
  }

  start(periodMs = DROP_LOG_PERIOD_MS): void {
    if (!this.log.isLevelEnabled('debug')) return;
    this.last = { ...(this.read() ?? {}) };
    this.timer = setInterval(() => this.report(), periodMs);
    this.timer.unref();
  }

  /** Logs the drops since the previous report, if any. */
  report(): void {
    const now = this.read();
    if (now === null) return;
    const since: Record<string, number> = {};
    let any = false;
    for (const [reason, n] of Object.entries(now)) {
      const delta = n - (this.last[reason] ?? 0);
      if (delta > 0) {
        since[reason] = delta;
        any = true;
      }
    }
    this.last = { ...now };
    if (any) this.log.debug({ drops: since }, 'data-plane drops since the last report (by direction/reason)');
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
