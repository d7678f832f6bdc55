/**
 * Shared pieces of the end-to-end tests: root/tool checks, metrics scraping,
 * waiting helpers, leak checks. The labs themselves come from src/lab.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../../src/lab/lab';
import { LEDGER_FILE_NAME } from '../../src/host/ledger';
import { namespacesWithPrefix } from '../../src/lab/lab';
import { WEFT_BIN, type LabAgent } from '../../src/lab/lab-agent';
import { formatPrefix } from '../../src/net/ipv4';
import { readSubnetEnv, type SubnetEnv } from '../../src/subnet/subnet-env';
import assert from 'node:assert/strict';

/** Why e2e tests cannot run here, or undefined when they can. */
export function e2eSkipReason(tools: readonly string[] = ['ip', 'ping', 'iperf3', 'curl', 'sysctl', 'ss']): string | undefined {
  if (process.getuid === undefined || process.getuid() !== 0) return 'end-to-end tests need root (network namespaces)';
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `end-to-end tests need ${tool}`;
    }
  }
  return undefined;
}

export interface TempDir {
  readonly path: string;
  file(name: string, content: string): string;
  remove(): void;
}

export function tempDir(tag: string): TempDir {
  const dir = mkdtempSync(path.join(tmpdir(), `weft-${tag}-`));
  return {
    path: dir,
    file(name, content) {
      const p = path.join(dir, name);
      writeFileSync(p, content);
      return p;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Prometheus text -> map of `name{label="v",...}` (labels sorted) -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const labels = (m[2] ?? '')
      .replace(/^\{|\}$/g, '')
      .split(',')
      .filter((s) => s !== '')
      .sort()
      .join(',');
    out.set(labels === '' ? (m[1] as string) : `${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

export async function scrapeMetrics(lab: Lab, ns: string, port: number): Promise<Map<string, number>> {
  const text = await lab.exec(ns, 'curl', ['-sf', `http://127.0.0.1:${port}/metrics`]);
  return parseMetrics(text);
}

/** A drop counter's value (0 when absent). */
export function dropCount(metrics: Map<string, number>, direction: string, reason: string): number {
  return metrics.get(`weft_dropped_packets_total{direction="${direction}",reason="${reason}"}`) ?? 0;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls until check() returns a value other than undefined, or throws after timeoutMs. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    await sleep(everyMs);
  }
}

/** Collects a child's stdout lines as they arrive. */
export class LineCollector {
  readonly lines: string[] = [];
  private partial = '';

  constructor(child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.partial += chunk.toString('utf8');
      let nl: number;
      while ((nl = this.partial.indexOf('\n')) >= 0) {
        this.lines.push(this.partial.slice(0, nl));
        this.partial = this.partial.slice(nl + 1);
      }
    });
  }

  json<T>(): T[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T);
  }
}

/** Asserts that no namespace with the lab's prefix is left. */
export async function leftoverNamespaces(prefix: string): Promise<string[]> {
  return namespacesWithPrefix(prefix);
}

/** The lab's spawned processes that are still alive. */
export function leftoverProcesses(lab: Lab): number[] {
  return lab.spawnedPids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `weft cleanup --state-dir DIR` inside a namespace (as an operator would on that host); resolves with its stdout. */
export async function weftCleanup(lab: Lab, ns: string, stateDir: string): Promise<string> {
  return lab.exec(ns, process.execPath, [WEFT_BIN, 'cleanup', '--state-dir', stateDir], { timeoutMs: 20_000 });
}

/**
 * What weft could have left on a host: its routes, vxlan devices, iptables
 * chains and rules, nftables tables, fast-path filters on eth0; with `agent`, also its subnet.env and its
 * host state file.
 */
export async function weftLeftovers(lab: Lab, ns: string, agent?: LabAgent): Promise<string[]> {
  const left: string[] = [];
  if (agent !== undefined) {
    for (const file of [agent.subnetFile, path.join(agent.stateDir, LEDGER_FILE_NAME)]) if (existsSync(file)) left.push(`file: ${file}`);
  }
  const routes = (await lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', '87'])).trim();
  if (routes !== '') left.push(`routes: ${routes}`);
  const links = (await lab.exec(ns, 'ip', ['-d', '-br', 'link', 'show', 'type', 'vxlan'])).trim();
  if (links !== '') left.push(`vxlan devices: ${links}`);
  for (const table of ['nat', 'filter']) {
    const rules = (await lab.exec(ns, 'iptables-save', ['-t', table])).split('\n').filter((l) => /FLANNEL|flanneld/.test(l));
    if (rules.length > 0) left.push(`iptables ${table}: ${rules.join(' | ')}`);
  }
  const nft = await lab.execResult(ns, 'nft', ['list', 'table', 'ip', 'flannel-ipv4']);
  if (nft.code === 0) left.push(`nftables: ${nft.stdout.trim()}`);
  // the kernel fast path's decap program on the underlay (the TUN's encap goes with the TUN)
  const tc = await lab.execResult(ns, 'tc', ['filter', 'show', 'dev', 'eth0', 'ingress']);
  if (tc.code === 0 && tc.stdout.includes('weft_')) left.push(`tc filters on eth0: ${tc.stdout.trim()}`);
  return left;
}

/**
 * The end of every lab test: stops the agents (SIGTERM), closes what else is
 * given (stores, servers), destroys the lab, then asserts that none of its
 * namespaces or processes is left.
 */
export async function tearDownLab(
  lab: Lab | undefined,
  agents: Iterable<LabAgent | undefined>,
  ...closers: Array<{ close(): Promise<void> } | { stop(): Promise<void> } | undefined>
): Promise<void> {
  for (const a of agents) await a?.stop('SIGTERM').catch(() => undefined);
  for (const c of closers) {
    if (c === undefined) continue;
    await ('close' in c ? c.close() : c.stop()).catch(() => undefined);
  }
  if (lab === undefined) return;
  await lab.destroy();
  assert.deepEqual(await leftoverNamespaces(lab.prefix), [], 'namespaces left behind');
  assert.deepEqual(leftoverProcesses(lab), [], 'processes left behind');
}

/**
 * Puts a pod behind host `index` in the lease its agent wrote to subnet.env
 * (as the CNI plugin would: the lease's subnet and MTU); returns that subnet.env.
 */
export async function addPodInLease(lab: Lab, index: number, agent: LabAgent): Promise<SubnetEnv> {
  const env = await readSubnetEnv(agent.subnetFile);
  assert.ok(env !== undefined, `the agent on host ${index} wrote no ${agent.subnetFile}:\n${agent.log()}`);
  await lab.addPod(index, formatPrefix(env.subnet), env.mtu);
  return env;
}
