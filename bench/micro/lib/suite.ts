/**
 * Shared runner for the micro-benchmarks in bench/micro/: each file there is
 * one runnable benchmark (`node dist/bench/micro/<file>.js`; `npm run
 * bench:micro` runs them all) that builds its cases and calls runMicroSuite.
 * Files in this lib/ folder are helpers, not benchmarks.
 *
 * A case's function does `callsPerOp` calls per benny op, so benny's own
 * per-op overhead does not swamp a few-nanosecond function; the summary
 * divides it back out.
 *
 *   BENCH_MAX_TIME=1   seconds per case (default 3)
 */
import { add, complete, configure, cycle, suite } from 'benny';

export interface MicroCase {
  readonly name: string;
  /** Calls of the measured function per op. */
  readonly callsPerOp: number;
  readonly fn: () => void;
}

export const MAX_TIME_S = Number(process.env['BENCH_MAX_TIME'] ?? '3');

/** Results land here so the JIT cannot drop the measured calls. */
export const sink = { value: 0 };

export async function runMicroSuite(title: string, cases: readonly MicroCase[]): Promise<void> {
  const summary = await suite(
    title,
    configure({ cases: { maxTime: MAX_TIME_S, minSamples: 10 } }),
    ...cases.map((c) => add(c.name, c.fn)),
    cycle(),
    complete(),
  );
  const width = Math.max(4, ...cases.map((c) => c.name.length));
  console.log(`\n${title}: per call; node ${process.version}`);
  console.log(`${'case'.padEnd(width)}  ${'calls/s'.padStart(14)}  ${'ns/call'.padStart(9)}  ${'±%'.padStart(6)}`);
  for (const c of cases) {
    const r = summary.results.find((x) => x.name === c.name);
    if (r === undefined) continue;
    const perSec = r.ops * c.callsPerOp;
    console.log(`${c.name.padEnd(width)}  ${Math.round(perSec).toLocaleString('en-US').padStart(14)}  ${(1e9 / perSec).toFixed(1).padStart(9)}  ${r.margin.toFixed(2).padStart(6)}`);
  }
  console.log(`(checksum ${sink.value})`);
}

/** Runs main, reporting a failure through the exit code. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
