/**
 * How many packets a worker's next pass over the TUN reads before it stops.
 *
 * Each TUN read returns one packet, so a pass that reads "until the device is
 * empty" always ends with a read that finds nothing. When packets come one
 * per wake-up (ping, request/response, any light load) that empty read is
 * half of the TUN reads, and it sits on the packet's path before the send.
 *
 * The policy:
 *   full    read until the device is empty (or the batch is full);
 *   single  read one packet and stop: the readiness watcher is level-triggered,
 *           so a packet that was already waiting fires it again at once.
 * A full pass that read exactly one packet expects the next to be alone too
 * (single). Single mode ends when the watcher fired again within
 * `awakeGapMicros` of the last pass (the event loop did not sleep: packets
 * were waiting), or after `maxSinglePasses` single passes in a row that each
 * found a packet (so a steady backlog costs at most that many extra event
 * loop turns before one full pass drains it).
 *
 * Pure: time comes in as arguments, so the policy can be tested alone.
 */

export interface ReadLimitOptions {
  /** A pass that starts within this long of the previous one's end did not sleep (µs). */
  readonly awakeGapMicros: number;
  /** Single passes in a row before one full pass checks for a backlog. */
  readonly maxSinglePasses: number;
}

export const DEFAULT_READ_LIMIT: ReadLimitOptions = Object.freeze({ awakeGapMicros: 10, maxSinglePasses: 8 });

export class ReadLimit {
  private single = false;
  private singlesInRow = 0;
  private lastEnd = Number.NEGATIVE_INFINITY;
  private current: number;

  constructor(
    private readonly batchSize: number,
    private readonly o: ReadLimitOptions = DEFAULT_READ_LIMIT,
  ) {
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`ReadLimit: batch size ${batchSize} is not a positive integer`);
    this.current = batchSize;
  }

  /** At the start of a pass (`now` in µs): the first read's cap, 1 or the batch size. */
  start(now: number): number {
    if (this.single && (now - this.lastEnd < this.o.awakeGapMicros || this.singlesInRow >= this.o.maxSinglePasses)) {
      this.single = false;
    }
    this.current = this.single ? 1 : this.batchSize;
    return this.current;
  }

  /** At the end of the pass (`now` in µs) that read `packets` with the cap start() gave. */
  end(packets: number, now: number): void {
    if (this.current === 1 && this.batchSize > 1) {
      if (packets > 0) this.singlesInRow++;
    } else {
      this.single = packets === 1;
      this.singlesInRow = 0;
    }
    this.lastEnd = now;
  }

  /** Whether the next pass (absent a quick wake-up) reads one packet. */
  get expectsSingle(): boolean {
    return this.single;
  }
}
