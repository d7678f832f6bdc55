/**
 * The benchmark's options and their defaults, apart from the harness itself
 * so that the command line can describe them without loading it.
 */
import * as path from 'node:path';
import { WEFT_BIN } from '../../src/lab/lab-agent';
import type { CpuPins } from './measure';
import type { ModeSpec } from './modes';

/** The repository (bin/weft's parent). */
export const REPO_ROOT = path.resolve(path.dirname(WEFT_BIN), '..');

export const DEFAULT_OUT_DIR = path.join(REPO_ROOT, 'bench', 'results');
export const DEFAULT_REPS = 3;
export const DEFAULT_SECONDS = 5;
export const DEFAULT_PING_COUNT = 50;
/** `--quick`: one run of each test, 2 s long; loss-free searches with 1 s trials and 5 steps. */
export const QUICK = Object.freeze({ reps: 1, seconds: 2, trialSeconds: 1, searchSteps: 5 });
/** Length of one paced trial of the loss-free search. */
export const DEFAULT_TRIAL_SECONDS = 2;
/** Paced trials of one loss-free search (after the unpaced probe). */
export const DEFAULT_SEARCH_STEPS = 8;
/** Agents' CPU sampled with no traffic, before each run's tests. */
export const DEFAULT_IDLE_SECONDS = 3;

export interface BenchOptions {
  readonly modes: readonly ModeSpec[];
  readonly reps: number;
  /** Length of each iperf3 and sockperf run. */
  readonly seconds: number;
  readonly pingCount: number;
  /** Where <timestamp>.json/.svg and latest.json/.svg are written. */
  readonly outDir: string;
  /** Run sockperf when it is installed (false: never). */
  readonly sockperf: boolean;
  readonly chart: boolean;
  /**
   * Before each measurement, wait up to this many seconds for other network
   * namespaces (another lab, test or benchmark on the machine) to go away.
   * 0: do not wait; such measurements are flagged either way.
   */
  readonly waitQuietSeconds: number;
  /**
   * Pin sockperf's client and server to these CPUs (taskset). Unpinned by
   * default: on a shared machine a pinned process waits for its CPU while the
   * other one idles, which puts milliseconds into the tail.
   */
  readonly latencyCpus: CpuPins | undefined;
  /** Run the loss-free rate searches (64 B and 1400 B payloads). */
  readonly lossFree: boolean;
  /** Length of each paced trial of a loss-free search. */
  readonly trialSeconds: number;
  /** Paced trials per loss-free search, at most. */
  readonly searchSteps: number;
  /** Sample the agents' CPU with no traffic for this long before each run's tests (0: skip). */
  readonly idleSeconds: number;
  /**
   * weft modes: `perf record` the agents during the first run's TCP x1 test
   * (the agents then run with --perf-basic-prof so JIT frames have names).
   */
  readonly profile: boolean;
}
