/**
 * The measurements, pod 1 -> pod 2 on a mode's topology. Each returns the raw
 * figures of one repetition; every command has a time limit and every server
 * is stopped before the function returns, whatever happens.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Lab } from '../../src/lab/lab';
import { parseIperfTcp, parseIperfUdp, parsePing, parseSockperf, type LatencyResult, type SockperfResult, type TcpResult, type UdpResult } from './parse';
import { cpuSpent, metricDeltas, processCpuSeconds, readCpu, scrapeAgent, syscallFigures, type CpuSpent, type Metrics, type SyscallFigures } from './probes';
import { AGENT_HEALTH_PORT, type ModeLab } from './topology';

export const IPERF_PORT = 5201;
export const SOCKPERF_PORT = 11111;
/** Payload of the small-packet test: 64 bytes of UDP payload (92-byte IP packets). */
export const SMALL_PAYLOAD_BYTES = 64;
export const PING_INTERVAL_S = 0.01;

export interface TcpFigures extends TcpResult {
  readonly streams: number;
  readonly gbps: number;
  readonly wallSeconds: number;
  /** Machine CPU seconds during the run (all CPUs; namespaces share the kernel). */
  readonly cpu: CpuSpent;
  readonly cpuPerGbit: number;
  /** (system + softirq) seconds per Gbit: the kernel's share. */
  readonly kernelCpuPerGbit: number;
  /** weft modes: utime + stime of each agent process during the run, seconds. */
  readonly agentCpuSeconds?: readonly number[];
  readonly agentCpuPerGbit?: number;
  readonly syscalls?: SyscallFigures;
  /** weft modes: every weft_* counter that moved, per agent (host 1, host 2). */
  readonly agentCounters?: readonly Record<string, number>[];
}

export interface UdpFigures extends UdpResult {
  readonly payloadBytes: number;
  readonly agentCounters?: readonly Record<string, number>[];
}

export type PingFigures = LatencyResult;
export type SockperfFigures = SockperfResult;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until something listens on `port` (TCP or UDP) inside `ns`. */
async function waitListening(lab: Lab, ns: string, port: number, proto: 'tcp' | 'udp', server: ChildProcess, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const flags = proto === 'tcp' ? '-Htln' : '-Huln';
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) throw new Error(`the ${proto} server on port ${port} in ${ns} exited (${server.exitCode ?? server.signalCode})`);
    const out = await lab.exec(ns, 'ss', [flags, `sport = :${port}`], { timeoutMs: 3000 }).catch(() => '');
    if (out.trim() !== '') return;
    await sleep(30);
  }
  throw new Error(`nothing listened on ${proto} port ${port} in ${ns} after ${timeoutMs} ms`);
}

async function startServer(lab: Lab, ns: string, file: string, args: readonly string[], port: number, proto: 'tcp' | 'udp'): Promise<ChildProcess> {
  const child = lab.spawn(ns, file, args);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 4000) stderr += c.toString('utf8');
  });
  child.stdout?.resume();
  try {
    await waitListening(lab, ns, port, proto, child);
  } catch (err) {
    await stopServer(child);
    throw new Error(`${(err as Error).message}${stderr === '' ? '' : `: ${stderr.trim()}`}`);
  }
  return child;
}

/** SIGTERM, then SIGKILL after 2 s; resolves once the process is gone. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

async function scrapeAll(ml: ModeLab): Promise<Metrics[]> {
  const out: Metrics[] = [];
  if (!ml.dataPlaneAgents) return out; // a kernel backend's agent counts no packets
  for (const agent of ml.agents) out.push(await scrapeAgent(ml.lab, agent.ns, AGENT_HEALTH_PORT));
  return out;
}

function commandFailure(what: string, r: { code: number | null; stdout: string; stderr: string }): Error {
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ');
  return new Error(`${what} failed (${r.code === null ? 'timed out or killed' : `exit ${r.code}`}): ${text.slice(0, 400)}`);
}

/** iperf3 TCP, `streams` parallel streams, `seconds` long, with CPU and (weft) counters around it. */
export async function measureTcp(ml: ModeLab, streams: number, seconds: number): Promise<TcpFigures> {
  const { lab, client, server } = ml;
  const srv = await startServer(lab, server.podNs as string, 'iperf3', ['-s', '-1', '-B', server.podIp, '-p', String(IPERF_PORT)], IPERF_PORT, 'tcp');
  try {
    const metricsBefore = await scrapeAll(ml);
    const pids = ml.agents.map((a) => a.child.pid);
    const agentBefore = pids.map(processCpuSeconds);
    const cpuBefore = readCpu();
    const t0 = process.hrtime.bigint();
    const r = await lab.execResult(client.podNs as string, 'iperf3', [
      '-c', server.podIp, '-p', String(IPERF_PORT), '-t', String(seconds), '-P', String(streams), '-J', '--connect-timeout', '5000',
    ], { timeoutMs: (seconds + 30) * 1000 });
    const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuAfter = readCpu();
    const agentAfter = pids.map(processCpuSeconds);
    if (r.code !== 0 && !r.stdout.trimStart().startsWith('{')) throw commandFailure(`iperf3 -c (TCP, ${streams} streams)`, r);
    const tcp = parseIperfTcp(r.stdout);
    const cpu = cpuSpent(cpuBefore, cpuAfter);
    const gbit = (tcp.bytes * 8) / 1e9;
    const perGbit = (x: number): number => (gbit > 0 ? x / gbit : NaN);
    const figures: TcpFigures = {
      ...tcp,
      streams,
      gbps: tcp.bitsPerSecond / 1e9,
      wallSeconds,
      cpu,
      cpuPerGbit: perGbit(cpu.busy),
      kernelCpuPerGbit: perGbit(cpu.system + cpu.softirq),
    };
    if (ml.agents.length === 0) return figures;
    const metricsAfter = await scrapeAll(ml);
    const agentCpuSeconds = agentAfter.map((x, i) => x - (agentBefore[i] as number));
    const counters = metricsAfter.map((after, i) => metricDeltas(metricsBefore[i] as Metrics, after));
    return {
      ...figures,
      agentCpuSeconds,
      agentCpuPerGbit: perGbit(agentCpuSeconds.reduce((s, x) => s + x, 0)),
      ...(ml.dataPlaneAgents ? { syscalls: syscallFigures(counters[0] ?? {}, counters[1] ?? {}), agentCounters: counters } : {}),
    };
  } finally {
    await stopServer(srv);
  }
}

/** iperf3 UDP with 64-byte payloads as fast as the client can send (-b 0). */
export async function measureSmallUdp(ml: ModeLab, seconds: number): Promise<UdpFigures> {
  const { lab, client, server } = ml;
  const srv = await startServer(lab, server.podNs as string, 'iperf3', ['-s', '-1', '-B', server.podIp, '-p', String(IPERF_PORT)], IPERF_PORT, 'tcp');
  try {
    const metricsBefore = await scrapeAll(ml);
    const r = await lab.execResult(client.podNs as string, 'iperf3', [
      '-c', server.podIp, '-p', String(IPERF_PORT), '-u', '-l', String(SMALL_PAYLOAD_BYTES), '-b', '0', '-t', String(seconds), '-J',
      '--connect-timeout', '5000',
    ], { timeoutMs: (seconds + 30) * 1000 });
    if (r.code !== 0 && !r.stdout.trimStart().startsWith('{')) throw commandFailure('iperf3 -c -u (64-byte UDP)', r);
    const udp = parseIperfUdp(r.stdout);
    if (!ml.dataPlaneAgents) return { ...udp, payloadBytes: SMALL_PAYLOAD_BYTES };
    const metricsAfter = await scrapeAll(ml);
    const agentCounters = metricsAfter.map((after, i) => metricDeltas(metricsBefore[i] as Metrics, after));
    return { ...udp, payloadBytes: SMALL_PAYLOAD_BYTES, agentCounters };
  } finally {
    await stopServer(srv);
  }
}

/** `count` pings 10 ms apart; round-trip times from the per-reply lines. */
export async function measurePing(ml: ModeLab, count: number): Promise<PingFigures> {
  const deadline = Math.ceil(count * PING_INTERVAL_S + 5);
  const r = await ml.lab.execResult(ml.client.podNs as string, 'ping', [
    '-c', String(count), '-i', String(PING_INTERVAL_S), '-W', '1', '-w', String(deadline), ml.server.podIp,
  ], { timeoutMs: (deadline + 5) * 1000 });
  if (!/packets transmitted/.test(r.stdout)) throw commandFailure('ping', r);
  return parsePing(r.stdout);
}

/** CPUs to pin the latency test's client and server to (`taskset -c`). */
export interface CpuPins {
  readonly client: number;
  readonly server: number;
}

/** `taskset -c N file args...`, or `file args...` when not pinned. */
function pinned(cpu: number | undefined, file: string, args: readonly string[]): [string, string[]] {
  return cpu === undefined ? [file, [...args]] : ['taskset', ['-c', String(cpu), file, ...args]];
}

/**
 * `sockperf ping-pong` over UDP for `seconds`: one-way latency (half the
 * round trip). With `pins`, client and server run on those CPUs. Left to the
 * scheduler they sometimes share a CPU and sometimes not, and in a VM a
 * cross-CPU wake-up costs far more (on the 2-vCPU development VM: ~11 µs
 * one way on one CPU, ~47 µs across); pinned, a process cannot dodge
 * whatever else runs on its CPU (p99 ~1.4 ms there while a test ran).
 */
export async function measureSockperf(ml: ModeLab, seconds: number, pins?: CpuPins): Promise<SockperfFigures> {
  const { lab, client, server } = ml;
  const [srvFile, srvArgs] = pinned(pins?.server, 'sockperf', ['sr', '-i', server.podIp, '-p', String(SOCKPERF_PORT)]);
  const srv = await startServer(lab, server.podNs as string, srvFile, srvArgs, SOCKPERF_PORT, 'udp');
  try {
    const [file, args] = pinned(pins?.client, 'sockperf', ['pp', '-i', server.podIp, '-p', String(SOCKPERF_PORT), '-t', String(seconds)]);
    const r = await lab.execResult(client.podNs as string, file, args, { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw commandFailure('sockperf pp', r);
    return parseSockperf(r.stdout);
  } finally {
    await stopServer(srv);
  }
}
