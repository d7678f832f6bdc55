/**
 * `weft bench`: the macro benchmark's command line, registered by the weft
 * CLI through bench/index.ts. The benchmark itself lives in bench/harness
 * (run.ts, loaded when it runs); this file only turns options into a
 * BenchOptions.
 */
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError } from '../src/errors';
import { defaultModeNames, readVariantsFile, resolveModes, WEFT_VARIANTS, type WeftVariant } from './harness/modes';
import {
  DEFAULT_IDLE_SECONDS, DEFAULT_OUT_DIR, DEFAULT_PING_COUNT, DEFAULT_REPS, DEFAULT_SEARCH_STEPS, DEFAULT_SECONDS, DEFAULT_TRIAL_SECONDS, QUICK,
} from './harness/options';

function intOption(flag: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} ${value}: expected a whole number from ${min} to ${max}`);
    return n;
  };
}

function cpuPair(value: string): { client: number; server: number } {
  const m = /^(\d+),(\d+)$/.exec(value.trim());
  if (m === null) throw new UsageError(`--latency-cpus ${value}: expected two CPU numbers, client,server (e.g. 0,1)`);
  return { client: Number(m[1]), server: Number(m[2]) };
}

interface BenchCliOptions {
  quick?: boolean;
  modes?: string;
  variants?: string;
  reps?: number;
  seconds?: number;
  pings: number;
  out: string;
  sockperf: boolean;
  chart: boolean;
  waitQuiet: number;
  latencyCpus?: { client: number; server: number };
  lossfree: boolean;
  trialSeconds?: number;
  searchSteps?: number;
  idleSeconds: number;
  profile?: boolean;
}

function variantsHelp(): string {
  const width = Math.max(...WEFT_VARIANTS.map((v) => v.name.length));
  return WEFT_VARIANTS.map((v) => `  ${v.name.padEnd(width)}  ${v.default ? '(default) ' : ''}${v.flags.join(' ') || '(no flags)'}: ${v.about}`).join('\n');
}

export function addBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'Measure pod-to-pod throughput, small-packet rate, the loss-free rate (RFC 2544 style) at 64 and 1400 bytes, latency ' +
        '(idle and under a TCP flow), CPU per Gbit, the agents\' idle CPU and (weft) system calls per packet, ' +
        'through plain routing (direct), the kernel\'s vxlan as flannel sets it up, and weft agent configurations, ' +
        'each on a fresh two-host namespace lab (veth underlay, MTU 1500). Prints a table; writes raw figures as JSON ' +
        'and a chart as SVG. Needs root, iproute2, ping and iperf3 (sockperf optional).',
    )
    .addOption(new Option('--quick', `a fast check: ${QUICK.reps} run of each test, ${QUICK.seconds} s long; loss-free searches of at most ` +
      `${QUICK.searchSteps} trials of ${QUICK.trialSeconds} s (--reps/--seconds/--trial-seconds/--search-steps still win)`))
    .addOption(new Option('--modes <list>',
      'comma-separated modes, in order: direct, vxlan, a weft variant\'s name (below), or NAME:FLAGS for a variant plus ' +
      'agent flags given verbatim, space-separated (e.g. "weft-udp:--workers=2 --batch-size=64"; an unknown NAME starts from no flags) ' +
      `(default: ${defaultModeNames().join(',')})`))
    .addOption(new Option('--variants <file>', 'JSON object of name -> array of agent flags; adds weft variants (and, without --modes, runs them instead of the built-in ones)'))
    .addOption(new Option('--reps <n>', `repetitions of each measurement, median and min-max reported (default: ${DEFAULT_REPS})`)
      .argParser(intOption('--reps', 1, 100)))
    .addOption(new Option('--seconds <n>', `length of each iperf3 and sockperf run (default: ${DEFAULT_SECONDS})`)
      .argParser(intOption('--seconds', 1, 600)))
    .addOption(new Option('--pings <n>', 'pings per latency run (10 ms apart)').argParser(intOption('--pings', 5, 10_000)).default(DEFAULT_PING_COUNT))
    .addOption(new Option('--out <dir>', 'where <timestamp>.json / .svg and latest.json / .svg go').default(DEFAULT_OUT_DIR, 'bench/results'))
    .addOption(new Option('--no-sockperf', 'skip the sockperf latency tests (alone and under a TCP flow) even when sockperf is installed'))
    .addOption(new Option('--no-lossfree', 'skip the loss-free rate searches (64 and 1400-byte UDP payloads), the longest tests'))
    .addOption(new Option('--trial-seconds <n>', `length of each trial of a loss-free search (default: ${DEFAULT_TRIAL_SECONDS}; --quick: ${QUICK.trialSeconds})`)
      .argParser(intOption('--trial-seconds', 1, 60)))
    .addOption(new Option('--search-steps <n>', 'paced trials per loss-free search at most, after an unpaced probe; the search also stops once ' +
      `its bracket is within 5% (default: ${DEFAULT_SEARCH_STEPS}; --quick: ${QUICK.searchSteps})`).argParser(intOption('--search-steps', 1, 30)))
    .addOption(new Option('--idle-seconds <n>', 'sample the weft agents\' CPU with no traffic this long before each run\'s tests (0: skip)')
      .argParser(intOption('--idle-seconds', 0, 600)).default(DEFAULT_IDLE_SECONDS))
    .addOption(new Option('--profile', 'weft modes: record the agents with `perf record -g` during the first run\'s TCP x1 test (the agents run with ' +
      'NODE_OPTIONS=--perf-basic-prof so JIT frames have names) and write <out>/<mode>-tcp1.perf.data and the top of `perf report` to ' +
      '<out>/<mode>-tcp1.profile.txt; that run\'s figures carry perf\'s overhead. Needs perf'))
    .addOption(new Option('--no-chart', 'do not draw the SVG chart'))
    .addOption(new Option('--wait-quiet <s>', 'before each measurement, wait up to S seconds for the machine to be quiet: no other network namespaces ' +
      '(another lab or test) and under 15% CPU busy outside the lab; measurements started otherwise are flagged either way')
      .argParser(intOption('--wait-quiet', 0, 3600)).default(0))
    .addOption(new Option('--latency-cpus <client,server>', 'pin sockperf\'s client and server to these CPUs (taskset), e.g. 0,1; ' +
      'default: the scheduler places them (on a VM a cross-CPU wake-up costs far more than a same-CPU one)').argParser(cpuPair))
    .addHelpText('after', `\nweft variants (bench/harness/modes.ts, WEFT_VARIANTS):\n${variantsHelp()}\n` +
      'A variant naming a flag `weft agent --help` does not list is skipped with a note.\n\n' +
      'Loss-free rate: the highest rate iperf3 -u -b paces pod 1 -> pod 2 with under 0.1% loss (server side), by binary search ' +
      'between 5 kpps and 1.2 x what an unpaced probe got through.\n\n' +
      'Examples:\n  weft bench --quick\n  weft bench --quick --modes vxlan,weft-udp --no-lossfree\n  weft bench --modes weft-udp --reps 1 --profile\n  weft bench --modes vxlan,weft-udp,"weft-udp:--batch-size=8" --reps 5\n  npm run bench -- --quick --modes direct,weft-udp')
    .action(async (o: BenchCliOptions) => {
      let variants: readonly WeftVariant[] = WEFT_VARIANTS;
      let modeNames = defaultModeNames();
      if (o.variants !== undefined) {
        const extra = readVariantsFile(o.variants);
        const names = new Set(extra.map((v) => v.name));
        variants = [...WEFT_VARIANTS.filter((v) => !names.has(v.name)), ...extra];
        modeNames = ['direct', 'vxlan', ...extra.map((v) => v.name)];
      }
      if (o.modes !== undefined) modeNames = o.modes.split(',');
      // the harness (labs, probes, chart) loads only when a benchmark runs, never with `weft agent`
      const { runBench } = await import('./harness/run');
      process.exitCode = await runBench({
        modes: resolveModes(modeNames, variants),
        reps: o.reps ?? (o.quick === true ? QUICK.reps : DEFAULT_REPS),
        seconds: o.seconds ?? (o.quick === true ? QUICK.seconds : DEFAULT_SECONDS),
        pingCount: o.pings,
        outDir: path.resolve(o.out),
        sockperf: o.sockperf,
        chart: o.chart,
        waitQuietSeconds: o.waitQuiet,
        latencyCpus: o.latencyCpus,
        lossFree: o.lossfree,
        trialSeconds: o.trialSeconds ?? (o.quick === true ? QUICK.trialSeconds : DEFAULT_TRIAL_SECONDS),
        searchSteps: o.searchSteps ?? (o.quick === true ? QUICK.searchSteps : DEFAULT_SEARCH_STEPS),
        idleSeconds: o.idleSeconds,
        profile: o.profile === true,
      });
    });
}
