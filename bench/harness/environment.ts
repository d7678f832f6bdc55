/**
 * Before a run: are we root, are the tools there (and which package brings
 * each). For the record: the machine, the tools' versions and weft's commit.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { WEFT_BIN } from '../../src/lab/lab-agent';
import type { ModeSpec } from './modes';
import { REPO_ROOT } from './options';

export interface Tool {
  readonly name: string;
  readonly apt: string;
  readonly why: string;
}

/** Whether `tool` is on PATH. */
export function hasTool(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function requiredTools(modes: readonly ModeSpec[]): Tool[] {
  const tools: Tool[] = [
    { name: 'ip', apt: 'iproute2', why: 'namespaces, veth, routes' },
    { name: 'ss', apt: 'iproute2', why: 'waiting for servers to listen' },
    { name: 'ping', apt: 'iputils-ping', why: 'latency' },
    { name: 'iperf3', apt: 'iperf3', why: 'throughput' },
  ];
  if (modes.some((m) => m.kind === 'vxlan')) tools.push({ name: 'bridge', apt: 'iproute2', why: "vxlan's FDB entries" });
  if (modes.some((m) => m.kind === 'weft')) tools.push({ name: 'curl', apt: 'curl', why: "reading the agents' /metrics" });
  return tools;
}

export function missingTools(tools: readonly Tool[]): Tool[] {
  return tools.filter((t) => !hasTool(t.name));
}

/** Long option names the installed `weft agent` knows (from its --help). */
export function agentFlagNames(): Set<string> {
  const help = execFileSync(process.execPath, [WEFT_BIN, 'agent', '--help'], { encoding: 'utf8', timeout: 20_000 });
  return new Set([...help.matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]));
}

function firstLine(file: string, args: readonly string[]): string | undefined {
  try {
    return execFileSync(file, [...args], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] })
      .replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).find((l) => l !== '');
  } catch {
    return undefined;
  }
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  readonly hostname: string;
  readonly loadAverage: readonly number[];
  readonly tools: Readonly<Record<string, string | undefined>>;
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // keep os.cpus()'s
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    hostname: os.hostname(),
    loadAverage: os.loadavg(),
    tools: {
      iperf3: firstLine('iperf3', ['--version']),
      sockperf: firstLine('sockperf', ['--version'])?.replace(/^sockperf:\s*/, ''),
      ip: firstLine('ip', ['-V']),
      ping: firstLine('ping', ['-V']),
    },
  };
}

export interface GitInfo {
  readonly commit: string | undefined;
  /** Uncommitted changes in the work tree (untracked files included). */
  readonly dirty: boolean | undefined;
}

export function gitInfo(): GitInfo {
  const git = (args: string[]): string | undefined => {
    try {
      return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  const commit = git(['rev-parse', 'HEAD']);
  const status = git(['status', '--porcelain']);
  return { commit, dirty: status === undefined ? undefined : status !== '' };
}

/** Other network namespaces on the machine (another lab or test run would disturb the figures). */
export function foreignNamespaces(ownPrefix: string): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 })
      .split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '' && !n.startsWith(ownPrefix));
  } catch {
    return [];
  }
}
