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
/** `--quick`: one run of each test, 2 s long. */
export const QUICK = Object.freeze({ reps: 1, seconds: 2 });

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
}
