/**
 * Running the system tools weft relies on (iproute2's `ip`, iperf3, ...).
 * Arguments go as an array, never through a shell.
 */
import { execFile, spawn, type ExecFileOptions } from 'node:child_process';
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

/** The exit code runWithInput reports for a program that is not installed (the shell's "command not found"). */
export const NOT_FOUND_EXIT_CODE = 127;

/**
 * Runs `file args...` with `input` on its stdin and resolves with the exit
 * code and both outputs whatever the outcome (a missing program is exit code
 * NOT_FOUND_EXIT_CODE with the reason in stderr; killed is null).
 */
export function runWithInput(file: string, args: readonly string[], input: string, options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000);
    const finish = (code: number | null, extra = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') + extra });
    };
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'ENOENT' ? NOT_FOUND_EXIT_CODE : null, e.code === 'ENOENT' ? `${file} is not installed or not on PATH` : e.message));
    child.once('close', (code) => finish(code));
    child.stdin.on('error', () => undefined); // the program may exit before reading everything; its exit code says why
    child.stdin.end(input);
  });
}
