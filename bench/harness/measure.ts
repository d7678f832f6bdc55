/**
 * The measurements, pod 1 -> pod 2 on a mode's topology. Each returns the raw
 * figures of one repetition; every command has a time limit and every server
 * is stopped before the function returns, whatever happens.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Lab } from '../../src/lab/lab';
import { parseIperfTcp, parseIperfUdp, parsePing, parseSockperf, type LatencyResult, type SockperfResult, type TcpResult, type UdpResult } from './parse';
import { cpuSpent, metricDeltas, processCpuSeconds, processRuntimeSeconds, readCpu, scrapeAgent, syscallFigures, syscallKey, type CpuSpent, type Metrics, type SyscallFigures } from './probes';
import { recordProfile, type ProfileFigures, type ProfileTarget } from './profile';
import { AGENT_HEALTH_PORT, type ModeLab } from './topology';

export const IPERF_PORT = 5201;
/** The TCP flow that loads the path while sockperf measures (sockperfLoaded) has its own server. */
export const LOAD_IPERF_PORT = 5202;
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
  /** With --profile: where perf wrote the agents' profile (this run's figures carry perf's overhead). */
  readonly profile?: ProfileFigures;
}

export interface UdpFigures extends UdpResult {
  readonly payloadBytes: number;
  readonly agentCounters?: readonly Record<string, number>[];
}

export type PingFigures = LatencyResult;
export interface SockperfFigures extends SockperfResult {
  /** weft: TUN read(2) calls per packet read from the TUN, both agents together (1.0: no read found the TUN empty). */
  readonly tunReadsPerPacket?: number;
}

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

function errorMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}

function commandFailure(what: string, r: { code: number | null; stdout: string; stderr: string }): Error {
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ');
  return new Error(`${what} failed (${r.code === null ? 'timed out or killed' : `exit ${r.code}`}): ${text.slice(0, 400)}`);
}

/**
 * iperf3 TCP, `streams` parallel streams, `seconds` long, with CPU and (weft)
 * counters around it; with `profile`, `perf record` samples the agents
 * meanwhile.
 */
export async function measureTcp(ml: ModeLab, streams: number, seconds: number, profile?: ProfileTarget): Promise<TcpFigures> {
  const { lab, client, server } = ml;
  const srv = await startServer(lab, server.podNs as string, 'iperf3', ['-s', '-1', '-B', server.podIp, '-p', String(IPERF_PORT)], IPERF_PORT, 'tcp');
  try {
    const metricsBefore = await scrapeAll(ml);
    const pids = ml.agents.map((a) => a.child.pid);
    const agentBefore = pids.map(processCpuSeconds);
    // perf attaches before the client starts, so the whole flow is sampled (its start-up cost lands before cpuBefore)
    const recording = profile === undefined ? undefined : await recordProfile(profile, pids, seconds);
    const cpuBefore = readCpu();
    const t0 = process.hrtime.bigint();
    const r = await lab.execResult(client.podNs as string, 'iperf3', [
      '-c', server.podIp, '-p', String(IPERF_PORT), '-t', String(seconds), '-P', String(streams), '-J', '--connect-timeout', '5000',
    ], { timeoutMs: (seconds + 30) * 1000 });
    const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuAfter = readCpu();
    const agentAfter = pids.map(processCpuSeconds);
    const profiled = recording === undefined ? undefined : await recording.done;
    if (r.code !== 0 && !r.stdout.trimStart().startsWith('{')) throw commandFailure(`iperf3 -c (TCP, ${streams} streams)`, r);
    const tcp = parseIperfTcp(r.stdout);
    const cpu = cpuSpent(cpuBefore, cpuAfter);
    const gbit = (tcp.bytes * 8) / 1e9;
    const perGbit = (x: number): number => (gbit > 0 ? x / gbit : NaN);
    const figures: TcpFigures = {
      ...tcp,
      ...(profiled === undefined ? {} : { profile: profiled }),
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
    const metricsBefore = await scrapeAll(ml);
    const r = await lab.execResult(client.podNs as string, file, args, { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw commandFailure('sockperf pp', r);
    const latency = parseSockperf(r.stdout);
    if (!ml.dataPlaneAgents) return latency;
    const metricsAfter = await scrapeAll(ml);
    let reads = 0;
    let packets = 0;
    metricsAfter.forEach((after, i) => {
      const d = metricDeltas(metricsBefore[i] as Metrics, after);
      reads += d[syscallKey('tun_read')] ?? 0;
      packets += d['weft_tun_rx_packets_total'] ?? 0;
    });
    return { ...latency, tunReadsPerPacket: packets > 0 ? reads / packets : NaN };
  } finally {
    await stopServer(srv);
  }
}

/** Loss a loss-free trial may show: RFC 2544 asks for none; 0.1 % forgives a stray drop in a 2 s trial. */
export const LOSSFREE_MAX_LOSS_PERCENT = 0.1;
/** The loss-free searches' payloads: 64 B (92-byte IP packets) and 1400 B (1428-byte IP packets, under vxlan's 1450-byte pod MTU, the smallest). */
export const LOSSFREE_PAYLOADS = [64, 1400] as const;
/** The lowest rate searched, packets/s. */
export const LOSSFREE_FLOOR_PPS = 5000;
/**
 * Upper bound of the search over the unpaced probe's received rate: under
 * overload a receiver also spends time on packets it then drops, so the
 * rate it carries when paced can be a little higher than what got through.
 */
export const LOSSFREE_HEADROOM = 1.2;
/** The search stops once hi / lo is below this. */
export const LOSSFREE_PRECISION = 1.05;

export interface LossFreeSearch {
  /** Length of each trial (the unpaced probe too). */
  readonly trialSeconds: number;
  /** Paced trials at most, the probe not counted. */
  readonly steps: number;
}

/** One iperf3 UDP trial of a search: the rate asked for (0 = unpaced) and what happened. */
export interface LossFreeTrial {
  readonly targetPps: number;
  readonly sentPps: number;
  readonly receivedPps: number;
  readonly lostPercent: number;
  readonly passed: boolean;
  /** A paced trial iperf3 could not finish, twice (counted as failed: see measureLossFree). */
  readonly error?: string;
}

export interface LossFreeFigures {
  readonly payloadBytes: number;
  /**
   * The highest rate carried with under LOSSFREE_MAX_LOSS_PERCENT loss: what
   * the client really sent in the best passing trial, packets/s; 0 when not
   * even LOSSFREE_FLOOR_PPS passed.
   */
  readonly pps: number;
  /** pps in UDP payload bits, Mbit/s. */
  readonly mbps: number;
  /**
   * 'path': found by the search; 'sender': the unpaced probe itself lost
   * under the limit, so the client (iperf3's CPU), not the path, is the bound.
   */
  readonly limit: 'path' | 'sender';
  /** The bracket when the search ended: rates passed at lo, failed at hi (packets/s). */
  readonly lo: number;
  readonly hi: number;
  /** The unpaced probe first, then the paced trials in order. */
  readonly trials: readonly LossFreeTrial[];
}

/** One iperf3 UDP run of `payloadBytes` at `pps` (0: as fast as the client can), its own one-off server. */
async function udpTrial(ml: ModeLab, payloadBytes: number, pps: number, seconds: number): Promise<LossFreeTrial> {
  const { lab, client, server } = ml;
  const srv = await startServer(lab, server.podNs as string, 'iperf3', ['-s', '-1', '-B', server.podIp, '-p', String(IPERF_PORT)], IPERF_PORT, 'tcp');
  try {
    // -b is payload bits per second: iperf3 paces -l-byte datagrams to it
    const bits = pps === 0 ? 0 : Math.round(pps * payloadBytes * 8);
    const r = await lab.execResult(client.podNs as string, 'iperf3', [
      '-c', server.podIp, '-p', String(IPERF_PORT), '-u', '-l', String(payloadBytes), '-b', String(bits), '-t', String(seconds), '-J',
      '--connect-timeout', '5000',
    ], { timeoutMs: (seconds + 30) * 1000 });
    if (r.code !== 0 && !r.stdout.trimStart().startsWith('{')) throw commandFailure(`iperf3 -c -u (${payloadBytes}-byte UDP at ${pps === 0 ? 'full speed' : `${Math.round(pps)} pps`})`, r);
    const udp = parseIperfUdp(r.stdout);
    return {
      targetPps: pps,
      sentPps: udp.sentPps,
      receivedPps: udp.receivedPps,
      lostPercent: udp.lostPercent,
      passed: udp.received > 0 && udp.lostPercent < LOSSFREE_MAX_LOSS_PERCENT,
    };
  } finally {
    await stopServer(srv);
  }
}

/**
 * RFC 2544-style throughput: the highest paced rate carried with under
 * LOSSFREE_MAX_LOSS_PERCENT loss. `trial(pps)` runs one trial (0: unpaced).
 * The unpaced probe bounds the search (HEADROOM x what it got through); then
 * a binary search between LOSSFREE_FLOOR_PPS and that bound, halving the
 * ratio hi / lo (rates span two orders of magnitude, so the midpoint is
 * geometric), until hi / lo < LOSSFREE_PRECISION or `steps` paced trials
 * have run. Apart from the lab so that it can be tried on a simulated path.
 */
export async function searchLossFree(payloadBytes: number, steps: number, trial: (pps: number) => Promise<LossFreeTrial>): Promise<LossFreeFigures> {
  const probe = await trial(0);
  const trials: LossFreeTrial[] = [probe];
  const result = (best: LossFreeTrial | undefined, limit: 'path' | 'sender', lo: number, hi: number): LossFreeFigures => {
    const pps = best?.sentPps ?? 0;
    return { payloadBytes, pps, mbps: (pps * payloadBytes * 8) / 1e6, limit, lo, hi, trials };
  };
  if (probe.passed) return result(probe, 'sender', probe.sentPps, probe.sentPps);
  let lo = LOSSFREE_FLOOR_PPS;
  let hi = Math.max(LOSSFREE_FLOOR_PPS * LOSSFREE_PRECISION, LOSSFREE_HEADROOM * probe.receivedPps);
  let best: LossFreeTrial | undefined;
  for (let step = 0; step < steps && hi / lo >= LOSSFREE_PRECISION; step++) {
    const t = await trial(Math.sqrt(lo * hi));
    trials.push(t);
    if (t.passed) {
      lo = t.targetPps;
      // the figure is what the client really sent: a paced iperf3 can fall short of its target
      if (best === undefined || t.sentPps > best.sentPps) best = t;
    } else {
      hi = t.targetPps;
    }
  }
  if (best === undefined) {
    // every trial lost too much: is the floor itself carried? (one trial past the step limit, else the figure would be a bare 0)
    const t = await trial(LOSSFREE_FLOOR_PPS);
    trials.push(t);
    if (t.passed) best = t;
    else hi = LOSSFREE_FLOOR_PPS;
  }
  return result(best, 'path', best === undefined ? 0 : lo, hi);
}

/** The loss-free rate pod 1 -> pod 2 at `payloadBytes` (searchLossFree over iperf3 UDP trials). */
export function measureLossFree(ml: ModeLab, payloadBytes: number, search: LossFreeSearch): Promise<LossFreeFigures> {
  const once = (pps: number): Promise<LossFreeTrial> => udpTrial(ml, payloadBytes, pps, search.trialSeconds);
  return searchLossFree(payloadBytes, search.steps, async (pps) => {
    if (pps === 0) return once(pps); // the probe: nothing measured yet, so its failure means the test cannot run here
    try {
      return await once(pps);
    } catch {
      // an overloaded path can starve iperf3's own TCP control connection: once more, then a failed trial (the probe showed the set-up works)
      try {
        return await once(pps);
      } catch (err) {
        return { targetPps: pps, sentPps: NaN, receivedPps: NaN, lostPercent: NaN, passed: false, error: errorMessage(err) };
      }
    }
  });
}

/** sockperf under load: the load flow starts this long before sockperf (TCP's slow start is over by then) ... */
const LOAD_LEAD_S = 1;
/** ... and runs this much longer than sockperf in all (the brief's "duration + 2 s"), so it outlasts sockperf's warm-up and end. */
const LOAD_EXTRA_S = 2;

export interface LoadedSockperfFigures extends SockperfResult {
  /** The TCP flow's rate over its whole run (received), Gbit/s; NaN when its result could not be read. */
  readonly loadGbps: number;
  readonly loadError?: string;
}

/** Resolves once `child` has exited, or after `ms` (false). */
async function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  let timer: NodeJS.Timeout | undefined;
  const gone = await Promise.race([
    once(child, 'exit').then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return gone;
}

/**
 * sockperf ping-pong (as measureSockperf) while one iperf3 TCP stream runs
 * pod 1 -> pod 2 on LOAD_IPERF_PORT: the latency a request sees behind bulk
 * traffic on the same path (queues in the TUN, the agents' batches, the
 * sockets). The flow runs `seconds` + LOAD_EXTRA_S; sockperf starts
 * LOAD_LEAD_S into it.
 */
export async function measureSockperfLoaded(ml: ModeLab, seconds: number, pins?: CpuPins): Promise<LoadedSockperfFigures> {
  const { lab, client, server } = ml;
  const loadSeconds = seconds + LOAD_EXTRA_S;
  const loadSrv = await startServer(lab, server.podNs as string, 'iperf3', ['-s', '-1', '-B', server.podIp, '-p', String(LOAD_IPERF_PORT)], LOAD_IPERF_PORT, 'tcp');
  let load: ChildProcess | undefined;
  try {
    const [srvFile, srvArgs] = pinned(pins?.server, 'sockperf', ['sr', '-i', server.podIp, '-p', String(SOCKPERF_PORT)]);
    const srv = await startServer(lab, server.podNs as string, srvFile, srvArgs, SOCKPERF_PORT, 'udp');
    try {
      load = lab.spawn(client.podNs as string, 'iperf3', [
        '-c', server.podIp, '-p', String(LOAD_IPERF_PORT), '-t', String(loadSeconds), '-J', '--connect-timeout', '5000',
      ]);
      let loadOut = '';
      load.stdout?.on('data', (c: Buffer) => {
        loadOut += c.toString('utf8');
      });
      load.stderr?.resume();
      await sleep(LOAD_LEAD_S * 1000);
      if (load.exitCode !== null) throw new Error(`the load flow (iperf3 -c -p ${LOAD_IPERF_PORT}) ended before sockperf started (exit ${load.exitCode}): ${loadOut.slice(0, 300)}`);
      const [file, args] = pinned(pins?.client, 'sockperf', ['pp', '-i', server.podIp, '-p', String(SOCKPERF_PORT), '-t', String(seconds)]);
      const r = await lab.execResult(client.podNs as string, file, args, { timeoutMs: (seconds + 20) * 1000 });
      if (r.code !== 0) throw commandFailure('sockperf pp (under a TCP flow)', r);
      const latency = parseSockperf(r.stdout);
      // the flow's own end: a few seconds at most; its figure only says how hard the path was loaded
      if (!(await exited(load, (LOAD_EXTRA_S + 10) * 1000))) return { ...latency, loadGbps: NaN, loadError: 'the load flow did not end in time' };
      try {
        return { ...latency, loadGbps: parseIperfTcp(loadOut).bitsPerSecond / 1e9 };
      } catch (err) {
        return { ...latency, loadGbps: NaN, loadError: errorMessage(err) };
      }
    } finally {
      await stopServer(srv);
    }
  } finally {
    if (load !== undefined) await stopServer(load);
    await stopServer(loadSrv);
  }
}

/** The start-up's tail (JIT, the first collections) is not idle work: let it pass before sampling. */
const IDLE_SETTLE_MS = 1000;

export interface IdleFigures {
  readonly seconds: number;
  /** Each agent's CPU over the sample in percent of one core (host 1, host 2); empty for the kernel modes. */
  readonly agentPercent: readonly number[];
}

/**
 * The agents' own CPU with no traffic (timers, lease renewals, metrics,
 * busy polling if configured), over `seconds`. Kernel modes have no agent:
 * nothing to sample, and no time spent.
 */
export async function measureIdleCpu(ml: ModeLab, seconds: number): Promise<IdleFigures> {
  const pids = ml.agents.map((a) => a.child.pid);
  if (pids.length === 0) return { seconds: 0, agentPercent: [] };
  await sleep(IDLE_SETTLE_MS);
  const before = pids.map(processRuntimeSeconds);
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  const after = pids.map(processRuntimeSeconds);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const dead = ml.agents.find((a) => a.exited);
  if (dead !== undefined) throw new Error(`the agent in ${dead.ns} exited (code ${dead.exitCode}) while idle`);
  return { seconds: wall, agentPercent: after.map((x, i) => (100 * (x - (before[i] as number))) / wall) };
}
