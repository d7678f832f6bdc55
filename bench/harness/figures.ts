/**
 * The figures a run reports: what one repetition holds, the list of metrics
 * derived from it (one place for labels, units and rounding, shared by the
 * table, the chart and the JSON summary), and median / spread.
 */
import type { IdleFigures, LoadedSockperfFigures, LossFreeFigures, PingFigures, SockperfFigures, TcpFigures, UdpFigures } from './measure';
import type { ModeSpec } from './modes';

export type TestName = 'idle' | 'tcp1' | 'tcp4' | 'udp' | 'lossfree64' | 'lossfree1400' | 'ping' | 'sockperf' | 'sockperfLoaded';
export const TEST_LABELS: Readonly<Record<TestName, string>> = {
  idle: 'idle CPU',
  tcp1: 'TCP 1 stream',
  tcp4: 'TCP 4 streams',
  udp: 'UDP 64 B',
  lossfree64: 'loss-free rate 64 B',
  lossfree1400: 'loss-free rate 1400 B',
  ping: 'ping',
  sockperf: 'sockperf ping-pong',
  sockperfLoaded: 'sockperf under TCP load',
};

/** Every raw figure of one repetition of one mode; a failed test has an entry in `errors`. */
export interface RepFigures {
  readonly rep: number;
  idle?: IdleFigures;
  tcp1?: TcpFigures;
  tcp4?: TcpFigures;
  udp?: UdpFigures;
  lossfree64?: LossFreeFigures;
  lossfree1400?: LossFreeFigures;
  ping?: PingFigures;
  sockperf?: SockperfFigures;
  sockperfLoaded?: LoadedSockperfFigures;
  readonly errors: Partial<Record<TestName, string>>;
  /** What else the machine was doing just before each test. */
  readonly background: Partial<Record<TestName, Background>>;
}

/**
 * The machine just before a test, while the mode's lab sat idle: other
 * network namespaces (another lab, test or benchmark) and the CPU busy
 * outside the agents, in percent of the whole machine.
 */
export interface Background {
  readonly otherNamespaces: number;
  readonly cpuPercent: number;
}

/** Background CPU above this (percent of the machine) marks a test as disturbed. */
export const BUSY_BACKGROUND_PERCENT = 15;

export function isDisturbed(b: Background | undefined): boolean {
  return b !== undefined && (b.otherNamespaces > 0 || b.cpuPercent > BUSY_BACKGROUND_PERCENT);
}

export type ModeStatus = 'ok' | 'failed' | 'skipped';

export interface ModeResult {
  readonly spec: ModeSpec;
  status: ModeStatus;
  /** Why the mode failed or was skipped. */
  reason?: string;
  /** Last lines of the agents' logs when a weft mode failed. */
  agentLog?: string;
  readonly reps: RepFigures[];
}

export type MetricGroup = 'throughput' | 'lossfree' | 'latency' | 'cpu' | 'idle' | 'syscalls';

export interface MetricDef {
  readonly key: string;
  readonly group: MetricGroup;
  /** Column header. */
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
  readonly get: (r: RepFigures) => number | undefined;
}

const kilo = (x: number | undefined): number | undefined => (x === undefined ? undefined : x / 1000);

export const METRICS: readonly MetricDef[] = [
  { key: 'tcp1.gbps', group: 'throughput', label: 'TCP x1', unit: 'Gbit/s', digits: 2, get: (r) => r.tcp1?.gbps },
  { key: 'tcp1.retransmits', group: 'throughput', label: 'retr x1', unit: '', digits: 0, get: (r) => r.tcp1?.retransmits },
  { key: 'tcp4.gbps', group: 'throughput', label: 'TCP x4', unit: 'Gbit/s', digits: 2, get: (r) => r.tcp4?.gbps },
  { key: 'tcp4.retransmits', group: 'throughput', label: 'retr x4', unit: '', digits: 0, get: (r) => r.tcp4?.retransmits },
  { key: 'udp.rxKpps', group: 'throughput', label: 'UDP 64B rx', unit: 'kpps', digits: 1, get: (r) => kilo(r.udp?.receivedPps) },
  { key: 'udp.txKpps', group: 'throughput', label: 'UDP 64B tx', unit: 'kpps', digits: 1, get: (r) => kilo(r.udp?.sentPps) },
  { key: 'udp.lostPercent', group: 'throughput', label: 'UDP loss', unit: '%', digits: 1, get: (r) => r.udp?.lostPercent },

  { key: 'lossfree64.kpps', group: 'lossfree', label: 'loss-free 64B', unit: 'kpps', digits: 1, get: (r) => kilo(r.lossfree64?.pps) },
  { key: 'lossfree1400.kpps', group: 'lossfree', label: 'loss-free 1400B', unit: 'kpps', digits: 1, get: (r) => kilo(r.lossfree1400?.pps) },
  { key: 'lossfree1400.mbps', group: 'lossfree', label: 'loss-free 1400B', unit: 'Mbit/s', digits: 0, get: (r) => r.lossfree1400?.mbps },

  { key: 'ping.avgUs', group: 'latency', label: 'ping avg', unit: 'µs RTT', digits: 0, get: (r) => r.ping?.avgUs },
  { key: 'ping.p50Us', group: 'latency', label: 'ping p50', unit: 'µs RTT', digits: 0, get: (r) => r.ping?.p50Us },
  { key: 'ping.p99Us', group: 'latency', label: 'ping p99', unit: 'µs RTT', digits: 0, get: (r) => r.ping?.p99Us },
  { key: 'sockperf.avgUs', group: 'latency', label: 'sockperf avg', unit: 'µs 1-way', digits: 1, get: (r) => r.sockperf?.avgUs },
  { key: 'sockperf.p50Us', group: 'latency', label: 'sockperf p50', unit: 'µs 1-way', digits: 1, get: (r) => r.sockperf?.p50Us },
  { key: 'sockperf.p99Us', group: 'latency', label: 'sockperf p99', unit: 'µs 1-way', digits: 1, get: (r) => r.sockperf?.p99Us },
  { key: 'sockperfLoaded.p50Us', group: 'latency', label: 'sockperf+TCP p50', unit: 'µs 1-way', digits: 1, get: (r) => r.sockperfLoaded?.p50Us },
  { key: 'sockperfLoaded.p99Us', group: 'latency', label: 'sockperf+TCP p99', unit: 'µs 1-way', digits: 1, get: (r) => r.sockperfLoaded?.p99Us },
  { key: 'sockperfLoaded.loadGbps', group: 'latency', label: 'TCP load', unit: 'Gbit/s', digits: 2, get: (r) => r.sockperfLoaded?.loadGbps },

  { key: 'tcp1.cpuPerGbit', group: 'cpu', label: 'CPU x1', unit: 's/Gbit', digits: 3, get: (r) => r.tcp1?.cpuPerGbit },
  { key: 'tcp1.kernelCpuPerGbit', group: 'cpu', label: 'sys+sirq x1', unit: 's/Gbit', digits: 3, get: (r) => r.tcp1?.kernelCpuPerGbit },
  { key: 'tcp1.agentCpuPerGbit', group: 'cpu', label: 'agents x1', unit: 's/Gbit', digits: 3, get: (r) => r.tcp1?.agentCpuPerGbit },
  { key: 'tcp4.cpuPerGbit', group: 'cpu', label: 'CPU x4', unit: 's/Gbit', digits: 3, get: (r) => r.tcp4?.cpuPerGbit },
  { key: 'tcp4.kernelCpuPerGbit', group: 'cpu', label: 'sys+sirq x4', unit: 's/Gbit', digits: 3, get: (r) => r.tcp4?.kernelCpuPerGbit },
  { key: 'tcp4.agentCpuPerGbit', group: 'cpu', label: 'agents x4', unit: 's/Gbit', digits: 3, get: (r) => r.tcp4?.agentCpuPerGbit },

  { key: 'idle.agent1Percent', group: 'idle', label: 'idle host 1', unit: '% of a core', digits: 2, get: (r) => r.idle?.agentPercent[0] },
  { key: 'idle.agent2Percent', group: 'idle', label: 'idle host 2', unit: '% of a core', digits: 2, get: (r) => r.idle?.agentPercent[1] },

  { key: 'sockperf.tunReadsPerPacket', group: 'syscalls', label: 'TUN reads/pkt pp', unit: '', digits: 2, get: (r) => r.sockperf?.tunReadsPerPacket },
  { key: 'tcp1.encapPerPacket', group: 'syscalls', label: 'encap/pkt x1', unit: '', digits: 3, get: (r) => r.tcp1?.syscalls?.encapPerPacket },
  { key: 'tcp1.encapPerDatagram', group: 'syscalls', label: 'encap/dgram x1', unit: '', digits: 3, get: (r) => r.tcp1?.syscalls?.encapPerDatagram },
  { key: 'tcp1.encapPerMB', group: 'syscalls', label: 'encap/MB x1', unit: '', digits: 1, get: (r) => r.tcp1?.syscalls?.encapPerMB },
  { key: 'tcp1.decapPerPacket', group: 'syscalls', label: 'decap/pkt x1', unit: '', digits: 3, get: (r) => r.tcp1?.syscalls?.decapPerPacket },
  { key: 'tcp1.decapPerMB', group: 'syscalls', label: 'decap/MB x1', unit: '', digits: 1, get: (r) => r.tcp1?.syscalls?.decapPerMB },
  { key: 'tcp4.encapPerPacket', group: 'syscalls', label: 'encap/pkt x4', unit: '', digits: 3, get: (r) => r.tcp4?.syscalls?.encapPerPacket },
  { key: 'tcp4.encapPerDatagram', group: 'syscalls', label: 'encap/dgram x4', unit: '', digits: 3, get: (r) => r.tcp4?.syscalls?.encapPerDatagram },
  { key: 'tcp4.encapPerMB', group: 'syscalls', label: 'encap/MB x4', unit: '', digits: 1, get: (r) => r.tcp4?.syscalls?.encapPerMB },
  { key: 'tcp4.decapPerPacket', group: 'syscalls', label: 'decap/pkt x4', unit: '', digits: 3, get: (r) => r.tcp4?.syscalls?.decapPerPacket },
  { key: 'tcp4.decapPerMB', group: 'syscalls', label: 'decap/MB x4', unit: '', digits: 1, get: (r) => r.tcp4?.syscalls?.decapPerMB },
];

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Repetitions that gave a value. */
  readonly n: number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const xs = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  if (xs.length === 0) return undefined;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export function summarize(mode: ModeResult): Record<string, Spread> {
  const out: Record<string, Spread> = {};
  for (const m of METRICS) {
    const s = spread(mode.reps.map(m.get));
    if (s !== undefined) out[m.key] = s;
  }
  return out;
}

/** The figures compared with vxlan: ratio = mode / vxlan of the medians. */
export interface RatioDef {
  readonly key: string;
  readonly label: string;
  /** 'higher' when a bigger ratio is better. */
  readonly better: 'higher' | 'lower';
}

/**
 * Latency compares `latencyKey`: sockperf's median when every compared mode
 * has one (thousands of samples), else ping's median round trip.
 */
export function ratioDefs(latencyKey: string): RatioDef[] {
  return [
    { key: 'tcp1.gbps', label: 'TCP x1', better: 'higher' },
    { key: 'tcp4.gbps', label: 'TCP x4', better: 'higher' },
    { key: 'udp.rxKpps', label: 'UDP pps', better: 'higher' },
    { key: 'lossfree64.kpps', label: 'loss-free 64B', better: 'higher' },
    { key: 'lossfree1400.kpps', label: 'loss-free 1400B', better: 'higher' },
    { key: latencyKey, label: latencyKey.startsWith('sockperf') ? 'latency (sockperf)' : 'latency (ping)', better: 'lower' },
    { key: 'sockperfLoaded.p50Us', label: 'latency +TCP', better: 'lower' },
    { key: 'tcp1.cpuPerGbit', label: 'CPU/Gbit x1', better: 'lower' },
  ];
}

export function ratios(summary: Record<string, Spread>, base: Record<string, Spread> | undefined, defs: readonly RatioDef[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of defs) {
    const a = summary[d.key]?.median;
    const b = base?.[d.key]?.median;
    out[d.key] = a !== undefined && b !== undefined && b !== 0 ? a / b : NaN;
  }
  return out;
}
