/**
 * What the benchmark reads around a measurement: machine CPU time
 * (/proc/stat — the namespaces share one kernel, so this is everything the
 * test cost), a process's CPU time (/proc/<pid>/stat, all threads), and an
 * agent's counters (/metrics, scraped from inside its namespace).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Lab } from '../../src/lab/lab';
import { parseMetrics } from '../../test/e2e/helpers';
import { parsePidStat, parseProcStat, type CpuTicks } from './parse';

let clockTicks: number | undefined;

/** USER_HZ: the unit of /proc/stat and /proc/<pid>/stat (100 on Linux, asked once). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export function readCpu(): CpuTicks {
  return parseProcStat(readFileSync('/proc/stat', 'utf8'));
}

/** CPU seconds spent between two /proc/stat readings, summed over CPUs. */
export interface CpuSpent {
  /** user + nice + system + irq + softirq. */
  readonly busy: number;
  readonly user: number;
  readonly system: number;
  readonly softirq: number;
  readonly irq: number;
  /** Time the hypervisor ran something else on our CPUs (not in busy; a sign of a noisy machine). */
  readonly steal: number;
  /** Every field, idle included: wall time x CPUs. */
  readonly total: number;
}

export function cpuSpent(before: CpuTicks, after: CpuTicks): CpuSpent {
  const hz = ticksPerSecond();
  const d = (k: keyof CpuTicks): number => (after[k] - before[k]) / hz;
  const user = d('user') + d('nice');
  const system = d('system');
  const irq = d('irq');
  const softirq = d('softirq');
  const steal = d('steal');
  const total = user + system + irq + softirq + d('idle') + d('iowait') + steal;
  return { busy: user + system + irq + softirq, user, system, softirq, irq, steal, total };
}

/** utime + stime of a process in seconds, or NaN once it has gone. */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const { utime, stime } = parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (utime + stime) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/**
 * Time a process's threads have run, in seconds, from each thread's
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds): the same time as
 * utime + stime without its 10 ms ticks, which matters for an agent that is
 * nearly idle. Threads that exited are not counted, so use it over spans in
 * which none do (no traffic); falls back to processCpuSeconds.
 */
export function processRuntimeSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN; // gone
  }
  let ns = 0;
  let read = 0;
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch {
      continue; // the thread exited after readdir
    }
    const x = Number(text.split(' ')[0]);
    if (!Number.isFinite(x)) return processCpuSeconds(pid); // no schedstat in this kernel
    ns += x;
    read++;
  }
  return read > 0 ? ns / 1e9 : processCpuSeconds(pid); // no schedstat files at all: a kernel without CONFIG_SCHED_INFO
}

export type Metrics = Map<string, number>;

export async function scrapeAgent(lab: Lab, ns: string, port: number): Promise<Metrics> {
  const text = await lab.exec(ns, 'curl', ['-sf', '--max-time', '5', `http://127.0.0.1:${port}/metrics`], { timeoutMs: 8000 });
  return parseMetrics(text);
}

/** after - before for every weft_* series that moved (counters only grow; gauges may go either way). */
export function metricDeltas(before: Metrics, after: Metrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of after) {
    if (!key.startsWith('weft_')) continue;
    const d = value - (before.get(key) ?? 0);
    if (d !== 0) out[key] = d;
  }
  return out;
}

export const syscallKey = (call: string): string => `weft_syscalls_total{call="${call}"}`;

/** System calls per packet and per MB on each side of the data direction (pod 1 -> pod 2). */
export interface SyscallFigures {
  /** Host 1's agent: (tun_read + udp_send) / packets read from its TUN (a TSO super-packet counts once). */
  readonly encapPerPacket: number;
  /** The same calls per datagram sent (wire packets: comparable with and without TUN offload). */
  readonly encapPerDatagram: number;
  readonly encapPerMB: number;
  /** Host 2's agent: (udp_recv + tun_write) / datagrams it received. */
  readonly decapPerPacket: number;
  readonly decapPerMB: number;
  readonly encapPackets: number;
  readonly decapPackets: number;
}

export function syscallFigures(encap: Record<string, number>, decap: Record<string, number>): SyscallFigures {
  const g = (m: Record<string, number>, k: string): number => m[k] ?? 0;
  const encapCalls = g(encap, syscallKey('tun_read')) + g(encap, syscallKey('udp_send'));
  const decapCalls = g(decap, syscallKey('udp_recv')) + g(decap, syscallKey('tun_write'));
  const encapPackets = g(encap, 'weft_tun_rx_packets_total');
  const encapMB = g(encap, 'weft_tun_rx_bytes_total') / 1e6;
  const decapPackets = g(decap, 'weft_udp_rx_packets_total');
  const decapMB = g(decap, 'weft_udp_rx_bytes_total') / 1e6;
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : NaN);
  return {
    encapPerPacket: ratio(encapCalls, encapPackets),
    encapPerDatagram: ratio(encapCalls, g(encap, 'weft_udp_tx_packets_total')),
    encapPerMB: ratio(encapCalls, encapMB),
    decapPerPacket: ratio(decapCalls, decapPackets),
    decapPerMB: ratio(decapCalls, decapMB),
    encapPackets,
    decapPackets,
  };
}
