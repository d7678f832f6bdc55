/**
 * The terminal report: one table per group of metrics (throughput, latency,
 * CPU, system calls), one row per mode, each cell `median [min-max]`; then
 * each mode's ratio to vxlan; then the modes that failed or were skipped.
 */
import { LOSSFREE_MAX_LOSS_PERCENT } from './measure';
import { BUSY_BACKGROUND_PERCENT, isDisturbed, METRICS, TEST_LABELS, type MetricGroup, type ModeResult, type RatioDef, type Spread, type TestName } from './figures';

export interface ReportInput {
  readonly modes: readonly ModeResult[];
  readonly summaries: ReadonlyMap<string, Record<string, Spread>>;
  readonly ratios: ReadonlyMap<string, Record<string, number>>;
  /** Ratios of weft's kernel-backend modes to the hand-built mode they should match. */
  readonly counterpartRatios?: ReadonlyMap<string, Record<string, number>>;
  readonly ratioDefs: readonly RatioDef[];
  readonly reps: number;
  readonly seconds: number;
  readonly pingCount: number;
  /** Loss-free searches: trial length and paced trials at most (absent: not run). */
  readonly lossFree?: { readonly trialSeconds: number; readonly steps: number };
  /** Length of the idle CPU sample (absent or 0: not run). */
  readonly idleSeconds?: number;
}

function groupTitle(group: MetricGroup, input: ReportInput): string {
  if (group === 'lossfree') {
    const how = input.lossFree === undefined ? '' : `, ${input.lossFree.trialSeconds} s trials, at most ${input.lossFree.steps} after an unpaced probe`;
    return `Loss-free rate, pod 1 -> pod 2 (RFC 2544 style: the highest paced iperf3 UDP rate with under ${LOSSFREE_MAX_LOSS_PERCENT}% loss, ` +
      `binary search${how}; Mbit/s = UDP payload)`;
  }
  if (group === 'idle') return `Agents' CPU with no traffic (${input.idleSeconds ?? '?'} s before each run's tests; percent of one core; kernel modes have no agent)`;
  return GROUP_TITLES[group];
}

const GROUP_TITLES: Readonly<Record<Exclude<MetricGroup, 'lossfree' | 'idle'>, string>> = {
  throughput: 'Throughput, pod 1 -> pod 2 (iperf3; x1 / x4 = TCP streams; UDP: 64-byte payloads, -b 0, rx = arrived at the server)',
  latency: 'Latency (ping: round trip, 10 ms apart; sockperf ping-pong over UDP: one way = half the round trip; ' +
    'sockperf+TCP: the same while one iperf3 TCP stream runs pod 1 -> pod 2, "TCP load" its rate)',
  cpu: 'CPU seconds per Gbit moved during the TCP runs (CPU = whole machine user+nice+system+irq+softirq; agents = utime+stime of both weft agents)',
  syscalls: 'System calls (TUN reads/pkt pp: TUN read calls per packet read from the TUN during sockperf ping-pong, both agents; ' +
    'the rest during the TCP runs: encap = host 1 agent, tun_read+udp_send: per packet read from the TUN, per datagram sent, per MB; ' +
    'decap = host 2 agent, udp_recv+tun_write: per datagram received, per MB)',
};

function fmt(x: number, digits: number): string {
  if (!Number.isFinite(x)) return '-';
  return x.toFixed(digits);
}

export function formatSpread(s: Spread | undefined, digits: number): string {
  if (s === undefined) return '-';
  if (s.n === 1 || s.min === s.max) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} [${fmt(s.min, digits)}-${fmt(s.max, digits)}]`;
}

/** Left-aligned first column, right-aligned others. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * When the unpaced probe itself lost under the limit, the sender (iperf3's
 * one CPU) is what bounds the figure, not the path: say so, it is a floor.
 */
function senderLimited(modes: readonly ModeResult[]): string[] {
  const hits: string[] = [];
  for (const mode of modes) {
    for (const test of ['lossfree64', 'lossfree1400'] as const) {
      const runs = mode.reps.filter((r) => r[test]?.limit === 'sender').length;
      if (runs > 0) hits.push(`${mode.spec.name} ${TEST_LABELS[test]} (${runs} run(s))`);
    }
  }
  return hits.length === 0 ? [] : [`(a lower bound, the sender's limit: the unpaced probe already lost under ${LOSSFREE_MAX_LOSS_PERCENT}%: ${hits.join('; ')})`];
}

export function formatReport(input: ReportInput): string {
  const ok = input.modes.filter((m) => m.status === 'ok');
  const out: string[] = [];
  const spreadNote = input.reps > 1 ? `median [min-max] of ${input.reps} runs` : '1 run';
  out.push(`weft bench: ${spreadNote}, ${input.seconds} s per iperf3/sockperf run, ${input.pingCount} pings per run`);
  for (const group of ['throughput', 'lossfree', 'latency', 'cpu', 'idle', 'syscalls'] as const) {
    const metrics = METRICS.filter((m) => m.group === group && ok.some((mode) => input.summaries.get(mode.spec.name)?.[m.key] !== undefined));
    if (metrics.length === 0) continue;
    // idle CPU lists every mode, '-' for the kernel ones (no agent: nothing to spend); other groups leave out a mode with no figure in them
    const rows = ok
      .filter((mode) => group === 'idle' || metrics.some((m) => input.summaries.get(mode.spec.name)?.[m.key] !== undefined))
      .map((mode) => [mode.spec.name, ...metrics.map((m) => formatSpread(input.summaries.get(mode.spec.name)?.[m.key], m.digits))]);
    const header = ['mode', ...metrics.map((m) => (m.unit === '' ? m.label : `${m.label} ${m.unit}`))];
    out.push('', `== ${groupTitle(group, input)} ==`, renderTable(header, rows));
    if (group === 'lossfree') out.push(...senderLimited(ok));
  }
  // a ratio no mode has (a test skipped) is no column
  const defs = input.ratioDefs.filter((d) => ok.some((mode) => Number.isFinite(input.ratios.get(mode.spec.name)?.[d.key] ?? NaN)));
  if (ok.some((m) => m.spec.name === 'vxlan')) {
    const header = ['mode', ...defs.map((d) => d.label)];
    const rows = ok.map((mode) => [mode.spec.name, ...defs.map((d) => {
      const r = input.ratios.get(mode.spec.name)?.[d.key];
      return r === undefined || !Number.isFinite(r) ? '-' : `${r.toFixed(2)}x`;
    })]);
    out.push('', '== Ratio to vxlan (mode median / vxlan median; throughput, loss-free rates: higher is better; latency, CPU/Gbit: lower is better) ==',
      renderTable(header, rows));
  }
  const pairs = ok.filter((mode) => input.counterpartRatios?.has(mode.spec.name) === true);
  if (pairs.length > 0) {
    const header = ['mode', 'set up by hand', ...defs.map((d) => d.label)];
    const rows = pairs.map((mode) => [mode.spec.name, mode.spec.counterpart ?? '', ...defs.map((d) => {
      const r = input.counterpartRatios?.get(mode.spec.name)?.[d.key];
      return r === undefined || !Number.isFinite(r) ? '-' : `${r.toFixed(2)}x`;
    })]);
    out.push('', '== weft\'s kernel backends against the same kernel setup done by hand (1.00x = identical) ==', renderTable(header, rows));
  }
  const notes: string[] = [];
  for (const mode of input.modes) {
    if (mode.status !== 'ok') notes.push(`${mode.spec.name}: ${mode.status}: ${mode.reason ?? ''}`);
    for (const rep of mode.reps) {
      for (const [test, why] of Object.entries(rep.errors)) {
        notes.push(`${mode.spec.name}: ${TEST_LABELS[test as TestName]} failed in run ${rep.rep}: ${why}`);
      }
    }
  }
  if (notes.length > 0) out.push('', '== Not measured ==', ...notes);
  const all = input.modes.flatMap((m) => m.reps.flatMap((r) => Object.keys(r).filter((k) => k in TEST_LABELS)));
  const disturbed = input.modes.flatMap((m) => m.reps.flatMap((r) => Object.entries(r.background)
    .filter(([, b]) => isDisturbed(b))
    .map(([t, b]) => `${m.spec.name} ${TEST_LABELS[t as TestName]} run ${r.rep} (${b.otherNamespaces} namespaces, ${b.cpuPercent.toFixed(0)}% CPU)`)));
  if (disturbed.length > 0) {
    out.push('', `== Caution: ${disturbed.length} of ${all.length} measurements started while something else ran on the machine ` +
      `(other network namespaces, or over ${BUSY_BACKGROUND_PERCENT}% CPU busy outside the lab); "background" in the JSON; ` +
      '--wait-quiet S waits for quiet ==',
    disturbed.slice(0, 12).join('; ') + (disturbed.length > 12 ? '; ...' : ''));
  }
  return out.join('\n');
}

