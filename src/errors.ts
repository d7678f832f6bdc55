/**
 * weft's error classes. Every error a user can see carries a stable `code`
 * (scripts may match on it) and a message that says what to do about it.
 * Per-packet trouble is never an exception: it is a counter (see
 * src/workers/counters.ts).
 */

export type WeftErrorCode =
  | 'WEFT_ERR_CONFIG'
  | 'WEFT_ERR_USAGE'
  | 'WEFT_ERR_SYS'
  | 'WEFT_ERR_NATIVE_LOAD'
  | 'WEFT_ERR_COMMAND'
  | 'WEFT_ERR_LEASE'
  | 'WEFT_ERR_STATE';

export class WeftError extends Error {
  readonly code: WeftErrorCode;

  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A configuration value was rejected. `path` names the field (for example
 * `net-conf.json: SubnetLen` or `--peer`), `value` is what was given.
 */
export class ConfigError extends WeftError {
  readonly path: string;
  readonly value: unknown;

  constructor(path: string, value: unknown, message: string) {
    super('WEFT_ERR_CONFIG', message);
    this.path = path;
    this.value = value;
  }
}

/** The command line was not understood (unknown command, unsupported flag). */
export class UsageError extends WeftError {
  constructor(message: string) {
    super('WEFT_ERR_USAGE', message);
  }
}

/** A system call failed. `errno` is the symbolic name, e.g. `EPERM`. */
export class SysError extends WeftError {
  readonly errno: string;
  readonly syscall: string;

  constructor(syscall: string, errno: string, message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_SYS', message, options);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** The native addon could not be loaded; `tried` lists every path looked at. */
export class NativeLoadError extends WeftError {
  readonly tried: readonly string[];

  constructor(tried: readonly string[], cause: unknown) {
    super(
      'WEFT_ERR_NATIVE_LOAD',
      `weft's native addon could not be loaded (tried ${tried.join(', ')}). ` +
        'Run `npm install` (or `npx node-gyp rebuild`) in the weft directory to build it.',
      { cause },
    );
    this.tried = tried;
  }
}

/** An external command (ip, iperf3, ...) failed. */
export class CommandError extends WeftError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(command: string, exitCode: number | null, stderr: string, hint?: string) {
    const detail = stderr.trim() === '' ? '' : `: ${stderr.trim()}`;
    super(
      'WEFT_ERR_COMMAND',
      `\`${command}\` failed (exit ${exitCode === null ? 'signal' : exitCode})${detail}` +
        (hint === undefined ? '' : `. ${hint}`),
    );
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Subnet lease trouble: out of subnets, store unreachable, lease lost. */
export class LeaseError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_ERR_LEASE', message, options);
  }
}

/** This host's own lease is gone (deleted, expired, or now held by another host). */
export class LeaseLostError extends LeaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An object was used in the wrong state (e.g. started twice). A bug, not user input. */
export class StateError extends WeftError {
  constructor(message: string) {
    super('WEFT_ERR_STATE', message);
  }
}

/** Turns an error thrown by the native addon (it carries `code` and `syscall`) into a SysError. */
export function toSysError(err: unknown, what: string, hint?: string): unknown {
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') {
    const e = err as NodeJS.ErrnoException;
    const errno = e.code ?? 'EUNKNOWN';
    const syscall = e.syscall ?? 'unknown';
    return new SysError(
      syscall,
      errno,
      `${what}: ${syscall} failed with ${errno} (${e.message})` + (hint === undefined ? '' : `. ${hint}`),
      { cause: err },
    );
  }
  return err;
}
