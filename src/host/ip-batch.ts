/**
 * Kernel objects through iproute2's batch mode: many `route`/`neigh` (ip) or
 * `fdb` (bridge) commands in one process, one netlink request each, fed on
 * stdin. `-force` keeps going after a failed line and reports it as
 *
 *   <the kernel's or ip's message>
 *   Command failed -:<line>
 *
 * which parseBatchErrors maps back to the commands. Chosen by measurement
 * (bench/kernel-apply.ts, figures in the README): about 100 times faster than
 * one process per object (about 2 ms each), and as fast as the npm netlink
 * package sending one request at a time, without a second native addon or
 * weft's own netlink code.
 */
import { CommandError } from '../errors';
import { NOT_FOUND_EXIT_CODE, runWithInput } from '../sys/exec';

export type BatchTool = 'ip' | 'bridge';

export interface BatchFailure {
  /** Index into the commands given (0-based). */
  readonly index: number;
  readonly command: string;
  readonly error: string;
}

export interface BatchResult {
  readonly commands: number;
  readonly failures: readonly BatchFailure[];
  /**
   * Set when the tool gave up part-way: some commands (`ip neigh` on a kernel
   * error) exit at once, even under -force, with no "Command failed" line, and
   * the lines after them never run. The message is the tool's last words; which
   * lines ran is unknown, so the caller reads the kernel back and plans again.
   */
  readonly abandoned?: string | undefined;
}

export interface BatchErrors {
  readonly failures: BatchFailure[];
  /** Error output after the last "Command failed" line: the batch was abandoned (see BatchResult). */
  readonly abandoned: string | undefined;
}

/** Maps `-force -batch` error output to the commands that failed. Pure. */
export function parseBatchErrors(stderr: string, commands: readonly string[]): BatchErrors {
  const failures: BatchFailure[] = [];
  let message: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)\s*$/.exec(line);
    if (m === null) {
      if (line.trim() !== '') message.push(line.trim());
      continue;
    }
    const index = Number(m[1]) - 1;
    failures.push({ index, command: commands[index] ?? '', error: message.join(' ') || 'failed' });
    message = [];
  }
  return { failures, abandoned: message.length > 0 ? message.join(' ') : undefined };
}

/**
 * Runs `commands` (without the tool name, e.g. "route replace 10.244.2.0/24
 * via 10.244.2.0 dev flannel.1 onlink proto 87") in one batch. Resolves with
 * the lines that failed; rejects only when the tool itself cannot run.
 */
export async function runBatch(tool: BatchTool, commands: readonly string[], timeoutMs = 30_000): Promise<BatchResult> {
  if (commands.length === 0) return { commands: 0, failures: [] };
  for (const c of commands) {
    if (c.includes('\n')) throw new RangeError(`a batch command may not contain a newline: ${JSON.stringify(c)}`);
  }
  const r = await runWithInput(tool, ['-force', '-batch', '-'], `${commands.join('\n')}\n`, { timeoutMs });
  if (r.code === 0) return { commands: commands.length, failures: [] };
  const { failures, abandoned } = parseBatchErrors(r.stderr, commands);
  if (r.code === null || r.code === NOT_FOUND_EXIT_CODE || (failures.length === 0 && abandoned === undefined)) {
    throw new CommandError(`${tool} -force -batch - (${commands.length} commands)`, r.code, r.stderr,
      tool === 'bridge' ? 'weft needs iproute2\'s bridge tool (apt-get install iproute2)' : 'weft needs iproute2 (apt-get install iproute2)');
  }
  return { commands: commands.length, failures, abandoned };
}
