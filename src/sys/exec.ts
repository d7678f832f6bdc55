/**
 * Running the system tools weft relies on (iproute2's `ip`, iperf3, ...).
 * Arguments go as an array, never through a shell.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { CommandError } from '../errors';

export interface RunOptions {
  /** Milliseconds before the command is killed (default 10 s). */
  readonly timeoutMs?: number;
  /** Extra hint appended to the error message on failure. */
  readonly hint?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Runs `file args...`, resolves with stdout; rejects with CommandError on a non-zero exit. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const execOptions: ExecFileOptions = {
    timeout: options.timeoutMs ?? 10_000,
    maxBuffer: 16 * 1024 * 1024,
    env: options.env ?? process.env,
    encoding: 'utf8',
  };
  return new Promise((resolve, reject) => {
    execFile(file, [...args], execOptions, (err, stdout, stderr) => {
      if (err !== null) {
        const code = typeof err.code === 'number' ? err.code : null;
        const missing = err.code === 'ENOENT';
        reject(
          new CommandError(
            [file, ...args].join(' '),
            code,
            missing ? `${file} is not installed or not on PATH` : String(stderr),
            options.hint,
          ),
        );
        return;
      }
      resolve(String(stdout));
    });
  });
}

/** `ip ...` from iproute2. */
export function ip(args: readonly string[], options: RunOptions = {}): Promise<string> {
  return run('ip', args, options);
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Like run(), but resolves with the exit code and both outputs whatever the outcome. */
export function runResult(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, [...args], {
      timeout: options.timeoutMs ?? 10_000,
      maxBuffer: 16 * 1024 * 1024,
      env: options.env ?? process.env,
      encoding: 'utf8',
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
