/**
 * A continuous ping between pods, for fault tests: `ping -D -n -i <interval>
 * -c <count>` inside a namespace, every reply recorded with its timestamp
 * (ping's own -D clock, the same wall clock as Date.now()), so a test can
 * assert that nothing was lost over the whole scenario or measure when
 * replies came back after a fault. Bounded by count in case a test forgets
 * it; a test ends it with finish() once its scenario is
 * over, and the echoes of the last second, possibly still in flight then,
 * are not judged.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Lab } from '../../src/lab/lab';

export interface PingReply {
  readonly seq: number;
  /** When ping printed the reply, ms since the epoch. */
  readonly at: number;
  readonly rttMs: number;
}

export interface PingSummary {
  readonly what: string;
  readonly transmitted: number;
  readonly received: number;
  /** Sequence numbers sent and never answered (the unjudged last ones aside). */
  readonly lost: readonly number[];
  /** Echoes sent in the last second before finish(): maybe in flight, not judged. */
  readonly unjudged: number;
  /** The longest stretch without a reply, with its end points (ms since the epoch). */
  readonly longestGap: { readonly ms: number; readonly from: number; readonly to: number };
  readonly startedAt: number;
  readonly endedAt: number;
  /** ping's output, for failure messages (replies elided). */
  readonly output: string;
}

export interface PingOptions {
  readonly intervalS: number;
  readonly durationS: number;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/;
const SUMMARY = /(\d+) packets transmitted, (\d+) received/;

export class PingStream {
  readonly what: string;
  readonly replies: PingReply[] = [];
  readonly startedAt: number;
  private readonly child: ChildProcess;
  private readonly other: string[] = [];
  private partial = '';
  private readonly ended: Promise<void>;
  private endedAt = 0;
  private readonly intervalS: number;
  /** Set by finish(): ping was stopped rather than run to its count. */
  private stopped = false;
  private waiters: Array<() => void> = [];

  /** Starts pinging `dst` from namespace `ns` for `durationS` seconds, one echo every `intervalS`. */
  constructor(lab: Lab, ns: string, dst: string, options: PingOptions, what = `${ns} -> ${dst}`) {
    this.what = what;
    this.intervalS = options.intervalS;
    const count = Math.ceil(options.durationS / options.intervalS);
    this.startedAt = Date.now();
    // no -w: with a deadline, ping ends at the first ICMP error (a host without its route says Net Unreachable)
    this.child = lab.spawn(ns, 'ping', ['-D', '-n', '-i', String(options.intervalS), '-c', String(count), '-W', '2', dst]);
    this.child.stdout?.on('data', (chunk: Buffer) => this.take(chunk.toString('utf8')));
    this.child.stderr?.on('data', (chunk: Buffer) => this.other.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')));
    this.ended = once(this.child, 'exit').then(() => {
      this.endedAt = Date.now();
      this.wake();
    });
  }

  private take(text: string): void {
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      const m = REPLY.exec(line);
      if (m !== null) this.replies.push({ at: Math.round(Number(m[1]) * 1000), seq: Number(m[2]), rttMs: Number(m[3]) });
      else if (line !== '') this.other.push(line);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first reply printed at or after `t` (ms since the epoch). */
  firstReplyAfter(t: number): PingReply | undefined {
    return this.replies.find((r) => r.at >= t);
  }

  /** Waits for a reply printed at or after `t`; rejects when ping ends first or after timeoutMs. */
  async waitReplyAfter(t: number, timeoutMs: number): Promise<PingReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.firstReplyAfter(t);
      if (r !== undefined) return r;
      if (!this.running) throw new Error(`${this.what}: ping ended without a reply after ${new Date(t).toISOString()}:\n${this.output()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.what}: no reply within ${timeoutMs} ms after ${new Date(t).toISOString()}:\n${this.output()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Ends ping (SIGINT: it prints its summary) and sums it up; the echoes sent
   * in the last second may still be on their way and are not judged. When
   * ping ended by itself (count or deadline reached) every echo is judged.
   */
  async finish(): Promise<PingSummary> {
    if (this.running) {
      this.stopped = true;
      this.child.kill('SIGINT');
    }
    return this.done();
  }

  /** Waits for ping to end by itself (count reached) and sums it up. */
  async done(): Promise<PingSummary> {
    await this.ended;
    const summary = this.other.map((l) => SUMMARY.exec(l)).find((m) => m !== null);
    const transmitted = summary === undefined ? 0 : Number(summary[1]);
    const received = summary === undefined ? 0 : Number(summary[2]);
    const seen = new Set(this.replies.map((r) => r.seq));
    const unjudged = this.stopped ? Math.min(transmitted, Math.ceil(1 / this.intervalS)) : 0;
    const lost: number[] = [];
    for (let seq = 1; seq <= transmitted - unjudged; seq++) if (!seen.has(seq % 65536)) lost.push(seq);
    let longestGap = { ms: 0, from: this.startedAt, to: this.startedAt };
    for (let i = 1; i < this.replies.length; i++) {
      const a = this.replies[i - 1] as PingReply;
      const b = this.replies[i] as PingReply;
      if (b.at - a.at > longestGap.ms) longestGap = { ms: b.at - a.at, from: a.at, to: b.at };
    }
    return { what: this.what, transmitted, received, lost, unjudged, longestGap, startedAt: this.startedAt, endedAt: this.endedAt, output: this.output() };
  }

  /** ping's output other than the replies (errors, the summary), with the reply count. */
  output(): string {
    return [`(${this.replies.length} replies)`, ...this.other].join('\n');
  }

  /** Stops ping without a summary (clean-up after a failure). */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

/** One line for t.diagnostic. */
export function describePing(s: PingSummary): string {
  const lost = s.lost.length === 0 ? 'none lost' : `${s.lost.length} lost (icmp_seq ${compactRanges(s.lost)})`;
  const judged = s.unjudged === 0 ? '' : ` (the last ${s.unjudged}, sent as ping was stopped, not judged)`;
  return `${s.what}: ${s.transmitted} sent in ${((s.endedAt - s.startedAt) / 1000).toFixed(1)} s, ${s.received} answered, ${lost}${judged}; ` +
    `longest gap between replies ${s.longestGap.ms} ms`;
}

function compactRanges(seqs: readonly number[]): string {
  const parts: string[] = [];
  let start = seqs[0];
  let prev = start;
  for (const s of [...seqs.slice(1), Number.NaN]) {
    if (start === undefined || prev === undefined) break;
    if (s === prev + 1) {
      prev = s;
      continue;
    }
    parts.push(start === prev ? String(start) : `${start}-${prev}`);
    start = s;
    prev = s;
  }
  return parts.join(', ');
}
