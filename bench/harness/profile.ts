/**
 * `weft bench --profile`: where the agents' CPU goes during a test, from
 * `perf record -g -p <agent pids>` (run from the root namespace: perf needs
 * no network namespace, only the pids). The agents then run with
 * NODE_OPTIONS=--perf-basic-prof, so V8 writes /tmp/perf-<pid>.map and
 * perf can name JIT-compiled JavaScript frames instead of showing bare
 * addresses.
 */
import { copyFileSync, existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runResult } from '../../src/sys/exec';

export interface ProfileTarget {
  /** perf record's output (-o). */
  readonly dataFile: string;
  /** The top of `perf report`, as text. */
  readonly reportFile: string;
}

export interface ProfileFigures {
  readonly dataFile: string;
  /** Absent when perf failed (see error). */
  readonly reportFile?: string;
  /** As perf prints it ("9K"). */
  readonly samples?: string;
  readonly error?: string;
}

/** perf sets up one event per thread and CPU before sampling starts; the test should not start before that. */
const PERF_ATTACH_MS = 300;
/** Entries of `perf report` kept in the text file. */
const REPORT_LINES = 40;

/** The Node option that makes V8 write /tmp/perf-<pid>.map (allowed in NODE_OPTIONS). */
export const PERF_NODE_OPTION = '--perf-basic-prof';

/** The environment for a profiled agent: ours plus --perf-basic-prof in NODE_OPTIONS. */
export function profiledAgentEnv(): NodeJS.ProcessEnv {
  const existing = process.env.NODE_OPTIONS ?? '';
  return { ...process.env, NODE_OPTIONS: `${existing} ${PERF_NODE_OPTION}`.trim() };
}

/** A mode's name as a file name ("weft-udp:--workers=2" -> "weft-udp_--workers_2"). */
export function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

export function profileTarget(outDir: string, mode: string, test: string): ProfileTarget {
  const base = path.join(outDir, `${fileSafe(mode)}-${test}`);
  return { dataFile: `${base}.perf.data`, reportFile: `${base}.profile.txt` };
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' ').slice(0, 400);
}

/** Samples and the top entries of `perf report` (flat: -g none; the call graphs stay in the data file). */
async function writeReport(target: ProfileTarget, pids: readonly number[]): Promise<ProfileFigures> {
  const args = ['report', '-i', target.dataFile, '--stdio', '--no-children', '--sort', 'dso,symbol', '-g', 'none'];
  const r = await runResult('perf', args, { timeoutMs: 120_000 });
  if (r.code !== 0) return { dataFile: target.dataFile, error: `perf report failed (${r.code ?? 'timed out'}): ${lastLines(r.stderr || r.stdout, 3)}` };
  const lines = r.stdout.split('\n');
  const samples = /# Samples: (\S+)/.exec(r.stdout)?.[1];
  // the symbol column is padded to the longest name (JIT names are long) and followed by IPC columns a VM has no data for ("-  -")
  const entries = lines.filter((l) => l.trim() !== '' && !l.startsWith('#')).slice(0, REPORT_LINES)
    .map((l) => l.replace(/\s+-\s+-\s*$/, '').trimEnd());
  writeFileSync(target.reportFile, [
    `# perf ${args.join(' ')}`,
    `# agents (pids ${pids.join(', ')}): samples of cpu-clock, whole run, all threads; perf-<pid>.map files name JIT frames`,
    ...lines.filter((l) => /^# (Samples|Event count)/.test(l)),
    '#',
    ...entries,
    '',
  ].join('\n'));
  return { dataFile: target.dataFile, reportFile: target.reportFile, ...(samples === undefined ? {} : { samples }) };
}

/**
 * Starts `perf record -g -p <pids> -- sleep <seconds>` and resolves once it
 * has had time to attach; `done` settles after the recording and its report
 * (never rejects: a failure is in ProfileFigures.error, and the test's own
 * figures stand either way).
 */
export async function recordProfile(target: ProfileTarget, pids: readonly (number | undefined)[], seconds: number): Promise<{ done: Promise<ProfileFigures> }> {
  const live = pids.filter((p): p is number => p !== undefined);
  if (live.length === 0) return { done: Promise.resolve({ dataFile: target.dataFile, error: 'no agent process to profile' }) };
  mkdirSync(path.dirname(target.dataFile), { recursive: true });
  // bounded: perf stops when `sleep` does; the timeout (SIGTERM: perf still writes its file) is for a perf that hangs
  const recording = runResult('perf', ['record', '-g', '-p', live.join(','), '-o', target.dataFile, '--', 'sleep', String(seconds)],
    { timeoutMs: (seconds + 30) * 1000 });
  const done = recording.then(async (r): Promise<ProfileFigures> => {
    if (r.code !== 0 || !existsSync(target.dataFile)) {
      return { dataFile: target.dataFile, error: `perf record failed (${r.code ?? 'timed out'}): ${lastLines(r.stderr, 3)}` };
    }
    return writeReport(target, live);
  }).catch((err: unknown) => ({ dataFile: target.dataFile, error: err instanceof Error ? err.message : String(err) }));
  await new Promise((r) => setTimeout(r, PERF_ATTACH_MS));
  return { done };
}

/**
 * Moves the agents' /tmp/perf-<pid>.map files next to the profile once the
 * agents have stopped (V8 appends to them until exit), so /tmp does not
 * collect them; to re-run `perf report` on a data file, copy its maps back
 * to /tmp. Returns the files kept.
 */
export function keepPerfMaps(pids: readonly (number | undefined)[], outDir: string, mode: string): string[] {
  const kept: string[] = [];
  for (const pid of pids) {
    if (pid === undefined) continue;
    const map = `/tmp/perf-${pid}.map`;
    if (!existsSync(map)) continue;
    const dest = path.join(outDir, `${fileSafe(mode)}-perf-${pid}.map`);
    try {
      mkdirSync(outDir, { recursive: true });
      copyFileSync(map, dest); // /tmp may be another file system: copy, then remove
      unlinkSync(map);
      kept.push(dest);
    } catch {
      // left in /tmp: perf report finds it there
    }
  }
  return kept;
}
