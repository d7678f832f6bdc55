/**
 * Parsers for what the benchmark's tools print: iperf3's JSON, ping's and
 * sockperf's text, /proc/stat and /proc/<pid>/stat. Pure functions over
 * strings; they throw an Error naming the tool when the text is not what
 * they expect.
 */

export interface TcpResult {
  /** Receiver side: end.sum_received. */
  readonly bitsPerSecond: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Sender side: end.sum_sent.retransmits (0 when iperf3 does not say). */
  readonly retransmits: number;
}

export interface UdpResult {
  /** Datagrams the client sent (end.sum_sent.packets). */
  readonly sent: number;
  /** Datagrams that arrived at the server: sum_received.packets - lost_packets. */
  readonly received: number;
  readonly lost: number;
  /** The server's loss figure (end.sum_received.lost_percent). */
  readonly lostPercent: number;
  readonly seconds: number;
  /** received / seconds. */
  readonly receivedPps: number;
  readonly sentPps: number;
}

export interface LatencyResult {
  readonly samples: number;
  readonly avgUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly lossPercent: number;
}

interface IperfSum {
  readonly seconds?: number;
  readonly bytes?: number;
  readonly bits_per_second?: number;
  readonly retransmits?: number;
  readonly packets?: number;
  readonly lost_packets?: number;
  readonly lost_percent?: number;
}

interface IperfJson {
  readonly error?: string;
  readonly end?: { readonly sum?: IperfSum; readonly sum_sent?: IperfSum; readonly sum_received?: IperfSum };
}

function iperfEnd(text: string): NonNullable<IperfJson['end']> {
  let json: IperfJson;
  try {
    json = JSON.parse(text) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${text.slice(0, 300)}`);
  }
  if (typeof json.error === 'string') throw new Error(`iperf3: ${json.error}`);
  if (json.end === undefined) throw new Error('iperf3: JSON without an "end" section');
  return json.end;
}

export function parseIperfTcp(text: string): TcpResult {
  const end = iperfEnd(text);
  const rx = end.sum_received;
  if (rx?.bits_per_second === undefined || rx.bytes === undefined || rx.seconds === undefined) {
    throw new Error('iperf3: TCP result without end.sum_received');
  }
  return { bitsPerSecond: rx.bits_per_second, bytes: rx.bytes, seconds: rx.seconds, retransmits: end.sum_sent?.retransmits ?? 0 };
}

/**
 * UDP: iperf3 (3.10+) puts the server's view in end.sum_received — `packets`
 * is how many the server expected (highest sequence number seen), and
 * `lost_packets` the gaps — and the client's in end.sum_sent. Older versions
 * only have end.sum (the server's figures, as seen from the client).
 */
export function parseIperfUdp(text: string): UdpResult {
  const end = iperfEnd(text);
  const rx = end.sum_received ?? end.sum;
  if (rx?.packets === undefined || rx.lost_packets === undefined || rx.seconds === undefined) {
    throw new Error('iperf3: UDP result without packets / lost_packets in end.sum_received');
  }
  const sent = end.sum_sent?.packets ?? rx.packets;
  const sentSeconds = end.sum_sent?.seconds ?? rx.seconds;
  const received = rx.packets - rx.lost_packets;
  return {
    sent,
    received,
    lost: rx.lost_packets,
    lostPercent: rx.lost_percent ?? (rx.packets > 0 ? (100 * rx.lost_packets) / rx.packets : 0),
    seconds: rx.seconds,
    receivedPps: rx.seconds > 0 ? received / rx.seconds : 0,
    sentPps: sentSeconds > 0 ? sent / sentSeconds : 0,
  };
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/** ping's per-reply lines (`time=0.081 ms`) and its summary line (`N packets transmitted, M received`). */
export function parsePing(text: string): LatencyResult {
  const rtts: number[] = [];
  for (const m of text.matchAll(/time=([\d.]+) ms/g)) rtts.push(Number(m[1]) * 1000);
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (summary === null) throw new Error(`ping printed no summary: ${text.slice(-300)}`);
  const sent = Number(summary[1]);
  const got = Number(summary[2]);
  if (rtts.length === 0) throw new Error(`ping: no reply (${sent} sent)`);
  rtts.sort((a, b) => a - b);
  return {
    samples: rtts.length,
    avgUs: rtts.reduce((s, x) => s + x, 0) / rtts.length,
    p50Us: quantile(rtts, 0.5),
    p99Us: quantile(rtts, 0.99),
    lossPercent: sent > 0 ? (100 * (sent - got)) / sent : 0,
  };
}

export interface SockperfResult extends LatencyResult {
  readonly p999Us: number;
  readonly maxUs: number;
}

/**
 * `sockperf ping-pong` summary. sockperf reports one-way latency, i.e. half
 * the round trip, in µs: `avg-latency=61.463`, `percentile 99.000 = 99.294`.
 */
export function parseSockperf(text: string): SockperfResult {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
  const avg = /avg-latency=([\d.]+)/.exec(plain);
  if (avg === null) throw new Error(`sockperf printed no avg-latency: ${plain.slice(-400)}`);
  const pct = (p: string): number => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(plain);
    return m === null ? NaN : Number(m[1]);
  };
  const observations = Number(/Total (\d+) observations/.exec(plain)?.[1] ?? NaN);
  const valid = /\[Valid Duration\][^\n]*SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(plain);
  const sent = Number(valid?.[1] ?? NaN);
  const got = Number(valid?.[2] ?? NaN);
  return {
    samples: observations,
    avgUs: Number(avg[1]),
    p50Us: pct('50.000'),
    p99Us: pct('99.000'),
    p999Us: pct('99.900'),
    maxUs: Number(/<MAX> observation =\s*([\d.]+)/.exec(plain)?.[1] ?? NaN),
    lossPercent: sent > 0 ? (100 * (sent - got)) / sent : 0,
  };
}

/** Machine-wide CPU time from /proc/stat's `cpu` line, in clock ticks. */
export interface CpuTicks {
  readonly user: number;
  readonly nice: number;
  readonly system: number;
  readonly idle: number;
  readonly iowait: number;
  readonly irq: number;
  readonly softirq: number;
  readonly steal: number;
}

export function parseProcStat(text: string): CpuTicks {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('/proc/stat has no "cpu" line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number): number => f[i] ?? 0;
  return { user: at(0), nice: at(1), system: at(2), idle: at(3), iowait: at(4), irq: at(5), softirq: at(6), steal: at(7) };
}

/** utime + stime of a process (all its threads), in clock ticks, from /proc/<pid>/stat. */
export function parsePidStat(text: string): { utime: number; stime: number } {
  // the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot read utime/stime from /proc/<pid>/stat: ${text.slice(0, 200)}`);
  return { utime, stime };
}
