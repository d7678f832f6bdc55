/**
 * The macro benchmark (`weft bench`, `npm run bench`). For each mode in turn:
 *  1. build the mode's topology fresh (topology.ts) — two namespace hosts on a
 *     veth underlay, a pod behind each;
 *  2. N repetitions of: the agents' idle CPU, TCP 1 stream (with --profile,
 *     under perf in the first run), TCP 4 streams, 64-byte UDP, the
 *     loss-free rates at 64 and 1400 bytes, ping, sockperf ping-pong alone
 *     and under a TCP flow (when installed), pod 1 -> pod 2 (measure.ts);
 *  3. tear it all down, on success, failure or Ctrl-C.
 * Then: the table on stdout, the raw figures as JSON and a chart as SVG in the
 * output directory (<timestamp>.* and latest.*). Progress goes to stderr.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as path from 'node:path';
import { namespacesWithPrefix, type Lab } from '../../src/lab/lab';
import { renderChartSvg, type ChartPanel } from './chart';
import { agentFlagNames, foreignNamespaces, gitInfo, hasTool, machineInfo, missingTools, requiredTools } from './environment';
import { BUSY_BACKGROUND_PERCENT, isDisturbed, ratioDefs, ratios, summarize, TEST_LABELS, type Background, type ModeResult, type RepFigures, type Spread, type TestName } from './figures';
import {
  LOSSFREE_FLOOR_PPS, LOSSFREE_HEADROOM, LOSSFREE_MAX_LOSS_PERCENT, LOSSFREE_PAYLOADS, LOSSFREE_PRECISION, measureIdleCpu, measureLossFree, measurePing,
  measureSmallUdp, measureSockperf, measureSockperfLoaded, measureTcp, PING_INTERVAL_S, type CpuPins,
} from './measure';
import { flagNames, type ModeSpec } from './modes';
import { REPO_ROOT, type BenchOptions } from './options';
import { cpuSpent, processCpuSeconds, readCpu } from './probes';
import { keepPerfMaps, profiledAgentEnv, profileTarget, type ProfileFigures } from './profile';
import { formatReport } from './report';
import { buildModeLab, LAB_PREFIX, UNDERLAY_MTU, type ModeLab } from './topology';

export type { BenchOptions };

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** Planned seconds of evidence the time-left estimate starts from (scale 1). */
const PRIOR_S = 30;

/** Progress lines with a running estimate of the time left (planned step times, scaled by how long steps really take). */
class Progress {
  private readonly start = Date.now();
  private plannedDone = 0;

  constructor(private plannedTotal: number) {}

  begin(what: string): void {
    const elapsed = (Date.now() - this.start) / 1000;
    // real/planned so far, pulled towards 1 until enough has run to trust it
    const scale = (elapsed + PRIOR_S) / (this.plannedDone + PRIOR_S);
    const left = (this.plannedTotal - this.plannedDone) * scale;
    const pct = Math.floor((100 * this.plannedDone) / this.plannedTotal);
    log(`[bench ${String(pct).padStart(3)}% ${duration(elapsed)} elapsed, ~${duration(left)} left] ${what}`);
  }

  done(planned: number): void {
    this.plannedDone += planned;
  }

  /** A mode ended early: its remaining steps will not run. */
  drop(planned: number): void {
    this.plannedTotal = Math.max(this.plannedDone + 1, this.plannedTotal - planned);
  }
}

/** What a test step knows besides the lab: the mode and the repetition. */
interface StepContext {
  readonly spec: ModeSpec;
  readonly rep: number;
}

interface TestStep {
  readonly name: TestName;
  readonly planned: number;
  readonly run: (ml: ModeLab, ctx: StepContext) => Promise<unknown>;
}

/** Background sample before each test (see sampleBackground). */
const QUIET_SAMPLE_MS = 500;
const SETUP_PLANNED_S = 4;
/** An iperf3 run's cost beyond its -t: a one-off server to start and stop, the client's connect and its end of test. */
const IPERF_OVERHEAD_S = 1.5;
/** measureIdleCpu lets the agents settle this long first. */
const IDLE_SETTLE_S = 1;

/** Paced trials a loss-free search is expected to run: it stops at LOSSFREE_PRECISION, which the geometric bisection reaches in about this many. */
function plannedSearchTrials(steps: number): number {
  // floor .. HEADROOM x ~300 kpps: log2(log(range) / log(precision)) halvings of the ratio
  const range = (LOSSFREE_HEADROOM * 300_000) / LOSSFREE_FLOOR_PPS;
  return Math.min(steps, Math.ceil(Math.log2(Math.log(range) / Math.log(LOSSFREE_PRECISION))));
}

/** The tests of one repetition, with the seconds each is expected to take (background sample included). */
function testSteps(options: BenchOptions, sockperf: boolean, pins: CpuPins | undefined): TestStep[] {
  const s = options.seconds;
  const q = QUIET_SAMPLE_MS / 1000;
  const steps: TestStep[] = [];
  // first, while nothing has run on this lab yet (in the first run: right after set-up)
  if (options.idleSeconds > 0) {
    steps.push({ name: 'idle', planned: q + IDLE_SETTLE_S + options.idleSeconds, run: (ml) => measureIdleCpu(ml, options.idleSeconds) });
  }
  steps.push(
    // --profile: the first run's TCP x1 only, so the other runs measure the agents unperturbed
    { name: 'tcp1', planned: q + s + IPERF_OVERHEAD_S, run: (ml, ctx) => measureTcp(ml, 1, s,
      options.profile && ctx.rep === 1 && ml.agents.length > 0 ? profileTarget(options.outDir, ctx.spec.name, 'tcp1') : undefined) },
    { name: 'tcp4', planned: q + s + IPERF_OVERHEAD_S, run: (ml) => measureTcp(ml, 4, s) },
    { name: 'udp', planned: q + s + IPERF_OVERHEAD_S, run: (ml) => measureSmallUdp(ml, s) },
  );
  if (options.lossFree) {
    const search = { trialSeconds: options.trialSeconds, steps: options.searchSteps };
    // the unpaced probe, then the paced trials
    const planned = q + (1 + plannedSearchTrials(options.searchSteps)) * (options.trialSeconds + IPERF_OVERHEAD_S);
    steps.push(
      { name: 'lossfree64', planned, run: (ml) => measureLossFree(ml, 64, search) },
      { name: 'lossfree1400', planned, run: (ml) => measureLossFree(ml, 1400, search) },
    );
  }
  steps.push({ name: 'ping', planned: q + options.pingCount * PING_INTERVAL_S + 0.5, run: (ml) => measurePing(ml, options.pingCount) });
  if (sockperf) {
    steps.push(
      { name: 'sockperf', planned: q + s + 1, run: (ml) => measureSockperf(ml, s, pins) },
      // the load flow runs s + 2 s; its server, sockperf's and the flow's end add about as much again
      { name: 'sockperfLoaded', planned: q + s + 2 + 2, run: (ml) => measureSockperfLoaded(ml, s, pins) },
    );
  }
  return steps;
}

/** The machine's state over a short sample, our agents' CPU taken out. */
async function sampleBackground(agentPids: readonly (number | undefined)[]): Promise<Background> {
  const otherNamespaces = foreignNamespaces(LAB_PREFIX).length;
  const agents0 = agentPids.map(processCpuSeconds);
  const cpu0 = readCpu();
  await new Promise((r) => setTimeout(r, QUIET_SAMPLE_MS));
  const spent = cpuSpent(cpu0, readCpu());
  const agents = agentPids.map(processCpuSeconds).reduce((s, x, i) => s + (x - (agents0[i] as number) || 0), 0);
  const cpuPercent = spent.total > 0 ? Math.max(0, (100 * (spent.busy - agents)) / spent.total) : 0;
  return { otherNamespaces, cpuPercent };
}

/**
 * What else runs on the machine right now; with waitSeconds > 0, first waits
 * (up to that long) for it to stop.
 */
async function checkBackground(ml: ModeLab, waitSeconds: number, what: string): Promise<Background> {
  const pids = ml.agents.map((a) => a.child.pid);
  let b = await sampleBackground(pids);
  if (!isDisturbed(b) || waitSeconds <= 0) return b;
  log(`  waiting up to ${waitSeconds} s for quiet before ${what} (${b.otherNamespaces} other namespaces, ${b.cpuPercent.toFixed(0)}% CPU busy outside the lab)`);
  const deadline = Date.now() + waitSeconds * 1000;
  while (isDisturbed(b) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1500));
    b = await sampleBackground(pids);
  }
  return b;
}

/** The lines of an agent's output that say what went wrong: `error: ...`, `weft: ...`, pino records at level error or fatal. */
function agentErrorLines(log: string): string[] {
  const out: string[] = [];
  for (const line of log.split('\n')) {
    if (/^(error|weft):/.test(line)) out.push(line);
    else if (line.startsWith('{')) {
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
        if ((rec.level ?? 0) >= 50) out.push(`${rec.msg ?? ''}${rec.err?.message === undefined ? '' : `: ${rec.err.message}`}`);
      } catch {
        // not JSON after all
      }
    }
  }
  return out;
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]?.slice(0, 500) ?? '';
}

async function runMode(spec: ModeSpec, options: BenchOptions, steps: readonly TestStep[], progress: Progress,
  labs: Lab[], setCurrent: (ml: ModeLab | undefined) => void): Promise<ModeResult> {
  const result: ModeResult = { spec, status: 'ok', reps: [] };
  const perRep = steps.reduce((s, t) => s + t.planned, 0);
  progress.begin(`${spec.name}: building the topology`);
  // --profile: V8 writes /tmp/perf-<pid>.map so perf can name JIT-compiled frames
  const agentEnv = options.profile && spec.kind === 'weft' ? profiledAgentEnv() : undefined;
  let ml: ModeLab;
  try {
    ml = await buildModeLab(spec, (line) => log(`  ${spec.name}: ${line}`), agentEnv);
  } catch (err) {
    result.status = 'failed';
    const message = err instanceof Error ? err.message : String(err);
    const agentErrors = agentErrorLines(message);
    result.reason = `setting up: ${errorText(err)}${agentErrors.length > 0 ? ` ${agentErrors.slice(0, 2).join('; ')}` : ''}`;
    const agentLog = /agent in \S+ (?:exited|timed out)[\s\S]*/.exec(message)?.[0];
    if (agentLog !== undefined) result.agentLog = [...agentErrors, '...', ...agentLog.split('\n').slice(-30)].join('\n');
    progress.done(SETUP_PLANNED_S);
    progress.drop(perRep * options.reps);
    log(`  ${spec.name}: FAILED ${result.reason}`);
    return result;
  }
  labs.push(ml.lab);
  setCurrent(ml);
  progress.done(SETUP_PLANNED_S);
  try {
    for (let rep = 1; rep <= options.reps; rep++) {
      const figures: RepFigures = { rep, errors: {}, background: {} };
      result.reps.push(figures);
      for (const step of steps) {
        const what = `${spec.name}: ${TEST_LABELS[step.name]}, run ${rep}/${options.reps}`;
        const background = await checkBackground(ml, options.waitQuietSeconds, what);
        figures.background[step.name] = background;
        progress.begin(`${what}${isDisturbed(background)
          ? ` (disturbed: ${background.otherNamespaces} other namespaces, ${background.cpuPercent.toFixed(0)}% CPU busy outside the lab)` : ''}`);
        try {
          const value = await step.run(ml, { spec, rep });
          (figures as unknown as Record<string, unknown>)[step.name] = value;
          logProfile(spec.name, (value as { profile?: ProfileFigures } | undefined)?.profile);
        } catch (err) {
          figures.errors[step.name] = errorText(err);
          log(`  ${spec.name}: ${TEST_LABELS[step.name]} failed: ${figures.errors[step.name]}`);
          const dead = ml.agents.find((a) => a.exited);
          if (dead !== undefined) throw new Error(`the agent in ${dead.ns} exited (code ${dead.exitCode}) during ${TEST_LABELS[step.name]}`);
        }
        progress.done(step.planned);
      }
      if (Object.keys(figures.errors).length === steps.length) {
        progress.drop(perRep * (options.reps - rep));
        throw new Error(`every test failed in run ${rep}; giving up on this mode`);
      }
    }
  } catch (err) {
    result.status = 'failed';
    result.reason = errorText(err);
    if (ml.agents.length > 0) {
      result.agentLog = ml.agents.map((a) => `--- ${a.ns} ---\n${[...agentErrorLines(a.log()), '...', ...a.log().split('\n').slice(-30)].join('\n')}`).join('\n');
    }
    log(`  ${spec.name}: FAILED ${result.reason}`);
  } finally {
    setCurrent(undefined);
    await ml.close();
    if (agentEnv !== undefined) {
      const maps = keepPerfMaps(ml.agents.map((a) => a.child.pid), options.outDir, spec.name);
      if (maps.length > 0) log(`  ${spec.name}: JIT symbol maps for perf report: ${maps.join(', ')} (copy back to /tmp/perf-<pid>.map to re-read the data)`);
    }
  }
  return result;
}

/** Says where a --profile recording went (or why there is none). */
function logProfile(mode: string, profile: ProfileFigures | undefined): void {
  if (profile === undefined) return;
  if (profile.error !== undefined) log(`  ${mode}: no profile: ${profile.error}`);
  else log(`  ${mode}: profile of the agents during TCP x1: ${profile.reportFile ?? ''} (${profile.samples ?? '?'} samples; data ${profile.dataFile})`);
}

/** Headline panels of the chart. */
function chartPanels(latencyKey: string): ChartPanel[] {
  const sockperf = latencyKey.startsWith('sockperf');
  return [
    { key: 'tcp1.gbps', title: 'TCP, 1 stream', unit: 'Gbit/s', better: 'higher', digits: 2 },
    { key: 'tcp4.gbps', title: 'TCP, 4 streams', unit: 'Gbit/s', better: 'higher', digits: 2 },
    { key: 'udp.rxKpps', title: 'UDP, 64-byte payloads, received', unit: 'kpackets/s', better: 'higher', digits: 0 },
    {
      key: latencyKey,
      title: sockperf ? 'Latency, sockperf ping-pong (UDP)' : 'Latency, ping',
      unit: sockperf ? 'µs one way, median' : 'µs round trip, median',
      better: 'lower',
      digits: sockperf ? 1 : 0,
    },
    { key: 'tcp1.cpuPerGbit', title: 'CPU per Gbit, TCP 1 stream', unit: 'CPU s / Gbit, whole machine', better: 'lower', digits: 3 },
    { key: 'tcp1.agentCpuPerGbit', title: 'weft agents\' CPU per Gbit, TCP 1 stream', unit: 'CPU s / Gbit, both agents', better: 'lower', digits: 3 },
  ];
}

/** Runs the benchmark; resolves with the process exit code (0 all measured, 1 something failed, 2 cannot run here). */
export async function runBench(options: BenchOptions): Promise<number> {
  if (process.getuid !== undefined && process.getuid() !== 0) {
    log('weft bench builds network namespaces and needs root: run it with sudo');
    return 2;
  }
  const missing = missingTools(requiredTools(options.modes));
  if (missing.length > 0) {
    log(`weft bench needs tools that are not installed:\n${missing.map((t) => `  ${t.name} (${t.why}): apt-get install ${t.apt}`).join('\n')}`);
    log(`or install everything weft uses: sudo ${path.join(REPO_ROOT, 'scripts', 'install-deps')}`);
    return 2;
  }
  const notes: string[] = [];
  const sockperf = options.sockperf && hasTool('sockperf');
  if (options.sockperf && !sockperf) notes.push('sockperf is not installed: UDP ping-pong latency skipped (apt-get install sockperf)');
  const others = foreignNamespaces(LAB_PREFIX);
  if (others.length > 0) notes.push(`${others.length} other network namespace(s) exist (${others.slice(0, 4).join(', ')}${others.length > 4 ? ', ...' : ''}): something else may be running and disturbing the figures`);
  for (const n of notes) log(`note: ${n}`);

  // weft variants naming a flag this agent does not have are skipped, not failed
  const skipped = new Map<string, string>();
  const weftModes = options.modes.filter((m) => m.kind === 'weft');
  if (weftModes.length > 0) {
    let known: Set<string>;
    try {
      known = agentFlagNames();
    } catch (err) {
      log(`weft bench: \`weft agent --help\` failed (${errorText(err)}); run \`npm run build\` first`);
      return 2;
    }
    for (const m of weftModes) {
      const unknown = flagNames(m.agentFlags).filter((f) => !known.has(f));
      if (unknown.length > 0) skipped.set(m.name, `weft agent has no ${unknown.join(', ')} (not implemented yet?)`);
    }
  }

  const pins = options.latencyCpus;
  if (pins !== undefined && !hasTool('taskset')) {
    log('weft bench: --latency-cpus needs taskset (apt-get install util-linux)');
    return 2;
  }
  if (pins !== undefined && Math.max(pins.client, pins.server) >= cpus().length) {
    log(`weft bench: --latency-cpus ${pins.client},${pins.server}: this machine has CPUs 0-${cpus().length - 1}`);
    return 2;
  }
  if (options.profile && !hasTool('perf')) {
    log('weft bench: --profile needs perf (apt-get install linux-perf)');
    return 2;
  }
  const steps = testSteps(options, sockperf, pins);
  const perRep = steps.reduce((s, t) => s + t.planned, 0);
  const runnable = options.modes.filter((m) => !skipped.has(m.name));
  const planned = runnable.length * (SETUP_PLANNED_S + perRep * options.reps);
  const progress = new Progress(planned);
  log(`weft bench: ${runnable.map((m) => m.name).join(', ')}; ${options.reps} run(s) of ${steps.map((s) => TEST_LABELS[s.name]).join(', ')}; ` +
    `${options.seconds} s each${options.lossFree ? ` (loss-free searches: ${options.trialSeconds} s trials, at most ${options.searchSteps})` : ''}; ` +
    `about ${duration(planned)} in all`);

  let current: ModeLab | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`\nweft bench: ${signal}: removing the lab and stopping everything it started`);
    current?.lab.destroySync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const started = new Date();
  // recorded before the run: the code and the machine as they were when measured
  const machine = machineInfo();
  const git = gitInfo();
  const labs: Lab[] = [];
  const results: ModeResult[] = [];
  try {
    for (const spec of options.modes) {
      const why = skipped.get(spec.name);
      if (why !== undefined) {
        log(`  ${spec.name}: skipped: ${why}`);
        results.push({ spec, status: 'skipped', reason: why, reps: [] });
        continue;
      }
      results.push(await runMode(spec, options, steps, progress, labs, (ml) => {
        current = ml;
      }));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  // nothing may be left behind
  const leftovers = await namespacesWithPrefix(`${LAB_PREFIX}-`);
  const alive = labs.flatMap((l) => l.spawnedPids).filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  if (leftovers.length > 0 || alive.length > 0) {
    notes.push(`left behind: namespaces [${leftovers.join(', ')}], processes [${alive.join(', ')}]`);
    log(`WARNING: ${notes[notes.length - 1]}`);
  }

  const summaries = new Map<string, Record<string, Spread>>(results.map((r) => [r.spec.name, summarize(r)]));
  const ok = results.filter((r) => r.status === 'ok');
  // latency compares medians (p50): averages and tails swing with whatever else the CPUs are doing
  const latencyKey = ok.length > 0 && ok.every((r) => summaries.get(r.spec.name)?.['sockperf.p50Us'] !== undefined) ? 'sockperf.p50Us' : 'ping.p50Us';
  const defs = ratioDefs(latencyKey);
  const base = summaries.get('vxlan');
  const ratioMap = new Map(results.map((r) => [r.spec.name, ratios(summaries.get(r.spec.name) ?? {}, base, defs)]));
  // weft's kernel backends against the same kernel path set up by hand (weft-vxlan / vxlan, weft-host-gw / direct)
  const counterpartRatios = new Map(results
    .filter((r) => r.spec.counterpart !== undefined && summaries.has(r.spec.counterpart))
    .map((r) => [r.spec.name, ratios(summaries.get(r.spec.name) ?? {}, summaries.get(r.spec.counterpart as string), defs)]));

  process.stdout.write(`${formatReport({
    modes: results, summaries, ratios: ratioMap, counterpartRatios, ratioDefs: defs, reps: options.reps, seconds: options.seconds, pingCount: options.pingCount,
    ...(options.lossFree ? { lossFree: { trialSeconds: options.trialSeconds, steps: options.searchSteps } } : {}),
    idleSeconds: options.idleSeconds,
  })}\n`);

  const stamp = started.toISOString().slice(0, 19).replace(/:/g, '-') + 'Z';
  const record = {
    schema: 'weft-bench/1',
    date: started.toISOString(),
    finished: new Date().toISOString(),
    machine,
    weft: git,
    topology: {
      underlay: `veth pair between two host namespaces, MTU ${UNDERLAY_MTU}`,
      pods: 'one pod per host behind bridge cni0 (10.244.1.0/24, 10.244.2.0/24); traffic pod 1 -> pod 2',
    },
    options: {
      reps: options.reps,
      seconds: options.seconds,
      pingCount: options.pingCount,
      pingIntervalSeconds: PING_INTERVAL_S,
      sockperf,
      sockperfCpus: pins ?? null,
      busyBackgroundPercent: BUSY_BACKGROUND_PERCENT,
      waitQuietSeconds: options.waitQuietSeconds,
      lossFree: options.lossFree
        ? { trialSeconds: options.trialSeconds, maxSteps: options.searchSteps, maxLossPercent: LOSSFREE_MAX_LOSS_PERCENT, floorPps: LOSSFREE_FLOOR_PPS,
          headroom: LOSSFREE_HEADROOM, precision: LOSSFREE_PRECISION, payloadBytes: LOSSFREE_PAYLOADS }
        : null,
      idleSeconds: options.idleSeconds,
      profile: options.profile,
      modes: options.modes,
    },
    notes,
    latencyCompared: latencyKey,
    modes: results.map((r) => ({
      name: r.spec.name,
      kind: r.spec.kind,
      agentFlags: r.spec.agentFlags,
      podMtu: r.spec.podMtu,
      status: r.status,
      reason: r.reason,
      agentLog: r.agentLog,
      summary: summaries.get(r.spec.name),
      ratioToVxlan: ratioMap.get(r.spec.name),
      counterpart: r.spec.counterpart ?? null,
      ratioToCounterpart: counterpartRatios.get(r.spec.name) ?? null,
      reps: r.reps,
    })),
  };
  mkdirSync(options.outDir, { recursive: true });
  const json = `${JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
  const jsonFile = path.join(options.outDir, `${stamp}.json`);
  writeFileSync(jsonFile, json);
  writeFileSync(path.join(options.outDir, 'latest.json'), json);
  log(`\nraw figures: ${jsonFile} (and latest.json)`);

  if (options.chart && ok.length > 0) {
    try {
      const svg = await renderChartSvg({
        title: 'weft bench: pod to pod across two namespace hosts (veth underlay, MTU 1500)',
        subtitle: [
          `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC · weft ${git.commit?.slice(0, 10) ?? 'unknown'}${git.dirty === true ? ' (dirty)' : ''} · ` +
            `${machine.cpuModel}, ${machine.cores} cores · Linux ${machine.kernel} · Node ${machine.node}`,
          `bars: median of ${options.reps} run(s); whiskers: min-max; ${options.seconds} s per run`,
        ],
        modes: ok.map((r) => r.spec.name),
        panels: chartPanels(latencyKey),
        summaries,
      });
      const svgFile = path.join(options.outDir, `${stamp}.svg`);
      writeFileSync(svgFile, svg);
      writeFileSync(path.join(options.outDir, 'latest.svg'), svg);
      log(`chart: ${svgFile} (and latest.svg)`);
    } catch (err) {
      log(`chart not drawn: ${errorText(err)}`);
    }
  }
  const failed = results.some((r) => r.status === 'failed' || r.reps.some((rep) => Object.keys(rep.errors).length > 0));
  return failed || leftovers.length > 0 || alive.length > 0 ? 1 : 0;
}
