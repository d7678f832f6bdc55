/**
 * A laboratory of hosts and pods built from network namespaces on this one
 * machine: used by `weft demo`, the benchmark and the end-to-end tests.
 *
 * Layout for a lab with prefix P and hosts 1..n:
 *   P-u             the underlay "switch" (a bridge), when underlay = 'bridge'
 *   P-h<i>          host i: underlay interface `eth0` = 192.168.77.<i>/24, ip_forward on
 *   P-p<i>          pod behind host i (addPod): `eth0` = subnet+2, default via
 *                   the host's bridge `cni0` = subnet+1 (10.244.<i>.0/24 unless
 *                   the pod follows a lease)
 * With underlay = 'veth' (two hosts only) the hosts' eth0 are the two ends of
 * one veth pair: nothing in between, the fastest underlay for benchmarks.
 * With `routedHosts`, those hosts sit on a second segment 192.168.78.0/24
 * behind a router namespace P-r (192.168.77.253 / 192.168.78.253): they reach
 * the others through it, never on one L2 segment (bridge underlays only).
 *
 * Every interface is created directly inside its namespace (never in the
 * caller's), so parallel labs cannot collide as long as prefixes differ, and
 * destroy() — also run on process exit — kills the processes inside and
 * deletes the namespaces, which takes every device and route with them.
 * Traffic stays inside these namespaces.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { formatIpv4, formatPrefix, parseCidr } from '../net/ipv4';
import { ip, run, runResult, type RunOptions, type RunResult } from '../sys/exec';

export interface LabOptions {
  /** Namespace name prefix; default `weft-<random>`. */
  readonly prefix?: string;
  readonly hosts: number;
  /** 'bridge' (default) supports any number of hosts; 'veth' joins exactly two. */
  readonly underlay?: 'bridge' | 'veth';
  readonly underlayMtu?: number;
  /** MTU given to pods' interfaces and cni0 (what the CNI would take from FLANNEL_MTU). */
  readonly podMtu?: number;
  /** Create a pod behind each host in 10.244.<i>.0/24 (default true); otherwise use addPod. */
  readonly pods?: boolean;
  /** Extra bare namespaces on the underlay (e.g. a foreign peer): names and underlay host numbers. */
  readonly extraUnderlayNodes?: readonly { readonly tag: string; readonly hostNumber: number }[];
  /** Hosts (by number) on a second segment behind a router instead of on the switch. */
  readonly routedHosts?: readonly number[];
}

export interface LabHost {
  readonly index: number;
  readonly ns: string;
  readonly underlayIp: string;
  /** The pod behind this host, once there is one (created with the lab, or by addPod). */
  podNs: string | undefined;
  podIp: string;
  podSubnet: string;
  gatewayIp: string;
}

export const LAB_NETWORK = '10.244.0.0/16';
export const UNDERLAY_PREFIX = '192.168.77';
/** The second segment, behind the router, for `routedHosts`. */
export const ROUTED_PREFIX = '192.168.78';
export const ROUTER_HOST_NUMBER = 253;

const live = new Set<Lab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of live) lab.destroySync();
  });
}

export function randomLabPrefix(tag = 'weft'): string {
  return `${tag}-${randomBytes(3).toString('hex')}`;
}

export class Lab {
  readonly prefix: string;
  readonly hosts: readonly LabHost[];
  readonly underlayNs: string | undefined;
  readonly extraNodes: ReadonlyMap<string, { ns: string; ip: string }>;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  /** A private directory for the lab's files (agents' subnet files, lease store); removed by destroy(). */
  readonly dir: string;
  /** Every process this lab ever started (for leak checks). */
  readonly spawnedPids: number[] = [];
  private destroyed = false;

  /** Host numbers behind the router (empty: every host on the switch). */
  readonly routedHosts: ReadonlySet<number>;
  /** The router namespace, when some hosts are routed. */
  readonly routerNs: string | undefined;

  private constructor(prefix: string, hosts: LabHost[], underlayNs: string | undefined,
    extra: Map<string, { ns: string; ip: string }>, routed: ReadonlySet<number>) {
    this.prefix = prefix;
    this.routedHosts = routed;
    this.routerNs = routed.size > 0 ? `${prefix}-r` : undefined;
    this.hosts = hosts;
    this.underlayNs = underlayNs;
    this.extraNodes = extra;
    this.dir = mkdtempSync(path.join(tmpdir(), `${prefix}-`));
  }

  static async create(options: LabOptions, progress: (line: string) => void = () => undefined): Promise<Lab> {
    const prefix = options.prefix ?? randomLabPrefix();
    const underlay = options.underlay ?? 'bridge';
    if (underlay === 'veth' && (options.hosts !== 2 || (options.extraUnderlayNodes ?? []).length > 0 || (options.routedHosts ?? []).length > 0)) {
      throw new Error("a 'veth' underlay joins exactly two hosts, on one segment");
    }
    const routed = new Set(options.routedHosts ?? []);
    const mtu = options.underlayMtu ?? 1500;
    const withPods = options.pods ?? true;
    const hosts: LabHost[] = [];
    for (let i = 1; i <= options.hosts; i++) {
      hosts.push({
        index: i,
        ns: `${prefix}-h${i}`,
        underlayIp: `${routed.has(i) ? ROUTED_PREFIX : UNDERLAY_PREFIX}.${i}`,
        podNs: undefined,
        podIp: '',
        podSubnet: '',
        gatewayIp: '',
      });
    }
    const extra = new Map<string, { ns: string; ip: string }>();
    for (const node of options.extraUnderlayNodes ?? []) {
      extra.set(node.tag, { ns: `${prefix}-${node.tag}`, ip: `${UNDERLAY_PREFIX}.${node.hostNumber}` });
    }
    const lab = new Lab(prefix, hosts, underlay === 'bridge' ? `${prefix}-u` : undefined, extra, routed);
    live.add(lab);
    installExitHook();
    try {
      await lab.build(underlay, mtu, progress);
      if (withPods) {
        for (const h of hosts) await lab.addPod(h.index, `10.244.${h.index}.0/24`, options.podMtu ?? mtu - 28, progress);
      }
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /**
   * A bare namespace `<prefix>-<tag>` (only `lo`, up) that destroy() deletes
   * with the others: e.g. a container's network namespace for a CNI plugin.
   * Returns its name.
   */
  async addNamespace(tag: string): Promise<string> {
    const name = `${this.prefix}-${tag}`;
    await this.addNs(name);
    return name;
  }

  /** Deletes a namespace made by addNamespace() before the lab ends (a container that is gone). */
  async deleteNamespace(name: string): Promise<void> {
    const i = this.namespaces.indexOf(name);
    if (i < 0) throw new Error(`${name} is not one of this lab's namespaces`);
    await ip(['netns', 'del', name]);
    this.namespaces.splice(i, 1);
  }

  private async addNs(name: string): Promise<void> {
    await ip(['netns', 'add', name]);
    this.namespaces.push(name);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private async build(underlay: 'bridge' | 'veth', mtu: number, progress: (l: string) => void): Promise<void> {
    if (this.underlayNs !== undefined) {
      progress(`underlay switch: namespace ${this.underlayNs}, bridge br0`);
      await this.addNs(this.underlayNs);
      await ip(['-n', this.underlayNs, 'link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge']);
      await ip(['-n', this.underlayNs, 'link', 'set', 'br0', 'up']);
    }
    const underlayNodes: { ns: string; ip: string; port: string }[] = [];
    const routedNodes: { ns: string; ip: string; port: string }[] = [];
    if (this.routerNs !== undefined) {
      if (this.underlayNs === undefined) throw new Error('routed hosts need a bridge underlay');
      progress(`router: namespace ${this.routerNs}, ${UNDERLAY_PREFIX}.${ROUTER_HOST_NUMBER} on the switch, ${ROUTED_PREFIX}.${ROUTER_HOST_NUMBER} on br1`);
      await this.addNs(this.routerNs);
      await writeNsSysctl(this.routerNs, 'net.ipv4.ip_forward', '1');
      await ip(['-n', this.routerNs, 'link', 'add', 'br1', 'mtu', String(mtu), 'type', 'bridge']);
      await ip(['-n', this.routerNs, 'addr', 'add', `${ROUTED_PREFIX}.${ROUTER_HOST_NUMBER}/24`, 'dev', 'br1']);
      await ip(['-n', this.routerNs, 'link', 'set', 'br1', 'up']);
      underlayNodes.push({ ns: this.routerNs, ip: `${UNDERLAY_PREFIX}.${ROUTER_HOST_NUMBER}`, port: 'r' });
    }
    for (const h of this.hosts) {
      progress(`host ${h.index}: namespace ${h.ns}, underlay eth0 ${h.underlayIp}/24, MTU ${mtu}${this.routedHosts.has(h.index) ? ', behind the router' : ''}`);
      await this.addNs(h.ns);
      await writeNsSysctl(h.ns, 'net.ipv4.ip_forward', '1');
      (this.routedHosts.has(h.index) ? routedNodes : underlayNodes).push({ ns: h.ns, ip: h.underlayIp, port: `h${h.index}` });
    }
    for (const [tag, node] of this.extraNodes) {
      progress(`underlay node ${tag}: namespace ${node.ns}, eth0 ${node.ip}/24`);
      await this.addNs(node.ns);
      underlayNodes.push({ ns: node.ns, ip: node.ip, port: tag });
    }
    if (underlay === 'veth') {
      const [a, b] = underlayNodes as [typeof underlayNodes[0], typeof underlayNodes[0]];
      await ip(['-n', a.ns, 'link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.ns, 'mtu', String(mtu)]);
    } else {
      for (const node of underlayNodes) {
        await ip(['-n', node.ns, 'link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', node.port,
          'netns', this.underlayNs as string, 'mtu', String(mtu)]);
        await ip(['-n', this.underlayNs as string, 'link', 'set', node.port, 'master', 'br0', 'up']);
      }
    }
    for (const node of routedNodes) {
      const routerNs = this.routerNs as string;
      await ip(['-n', node.ns, 'link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', node.port, 'netns', routerNs, 'mtu', String(mtu)]);
      await ip(['-n', routerNs, 'link', 'set', node.port, 'master', 'br1', 'up']);
    }
    for (const node of [...underlayNodes, ...routedNodes]) {
      await ip(['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
      await ip(['-n', node.ns, 'link', 'set', 'eth0', 'up']);
    }
    for (const node of [...underlayNodes, ...routedNodes]) await waitOperUp(node.ns, 'eth0');
    if (this.routerNs !== undefined) {
      // each segment reaches the other through the router
      for (const node of underlayNodes) {
        if (node.ns === this.routerNs) continue;
        await ip(['-n', node.ns, 'route', 'add', `${ROUTED_PREFIX}.0/24`, 'via', `${UNDERLAY_PREFIX}.${ROUTER_HOST_NUMBER}`]);
      }
      for (const node of routedNodes) {
        await ip(['-n', node.ns, 'route', 'add', `${UNDERLAY_PREFIX}.0/24`, 'via', `${ROUTED_PREFIX}.${ROUTER_HOST_NUMBER}`]);
      }
    }
  }

  /**
   * Puts a pod behind host `index` in `subnet` (a /24 or other prefix), as the
   * flannel CNI plugin would from subnet.env: bridge cni0 = subnet+1 on the
   * host, the pod's eth0 = subnet+2 with a default route via cni0, MTU `mtu`.
   */
  async addPod(index: number, subnet: string, mtu: number, progress: (l: string) => void = () => undefined): Promise<LabHost> {
    const h = this.host(index);
    if (h.podNs !== undefined) throw new Error(`host ${index} already has a pod`);
    const cidr = parseCidr(subnet);
    if (cidr === undefined) throw new Error(`addPod: ${subnet} is not a CIDR`);
    const len = cidr.prefix.length;
    const podNs = `${this.prefix}-p${index}`;
    const gateway = formatIpv4(cidr.prefix.network + 1);
    const podIp = formatIpv4(cidr.prefix.network + 2);
    progress(`pod ${index}: namespace ${podNs}, eth0 ${podIp}/${len} behind bridge cni0 ${gateway} on host ${index}, MTU ${mtu}`);
    await this.addNs(podNs);
    await ip(['-n', h.ns, 'link', 'add', 'cni0', 'mtu', String(mtu), 'type', 'bridge']);
    await ip(['-n', h.ns, 'addr', 'add', `${gateway}/${len}`, 'dev', 'cni0']);
    await ip(['-n', h.ns, 'link', 'set', 'cni0', 'up']);
    await ip(['-n', h.ns, 'link', 'add', 'vpod', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs, 'mtu', String(mtu)]);
    await ip(['-n', h.ns, 'link', 'set', 'vpod', 'master', 'cni0', 'up']);
    await ip(['-n', podNs, 'addr', 'add', `${podIp}/${len}`, 'dev', 'eth0']);
    await ip(['-n', podNs, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', podNs, 'route', 'add', 'default', 'via', gateway]);
    await waitOperUp(podNs, 'eth0');
    h.podNs = podNs;
    h.podIp = podIp;
    h.podSubnet = formatPrefix(cidr.prefix);
    h.gatewayIp = gateway;
    return h;
  }

  /**
   * Gives the underlay switch an address (192.168.77.254) so a service shared
   * by the hosts — etcd — can run inside the lab. Bridge underlays only.
   */
  async addUnderlayServiceAddress(): Promise<string> {
    if (this.underlayNs === undefined) throw new Error("a 'veth' underlay has no switch to host a service");
    const address = `${UNDERLAY_PREFIX}.254`;
    await ip(['-n', this.underlayNs, 'addr', 'add', `${address}/24`, 'dev', 'br0']);
    if (this.routerNs !== undefined) {
      await ip(['-n', this.underlayNs, 'route', 'add', `${ROUTED_PREFIX}.0/24`, 'via', `${UNDERLAY_PREFIX}.${ROUTER_HOST_NUMBER}`]);
    }
    return address;
  }

  host(i: number): LabHost {
    const h = this.hosts[i - 1];
    if (h === undefined) throw new Error(`lab has no host ${i}`);
    return h;
  }

  /** Runs a command inside a namespace and returns its stdout. */
  exec(ns: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
    return run('ip', ['netns', 'exec', ns, file, ...args], options);
  }

  /** Runs a command inside a namespace; resolves with its exit code and output, success or not. */
  execResult(ns: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return runResult('ip', ['netns', 'exec', ns, file, ...args], options);
  }

  /** Starts a long-running command inside a namespace; destroy() kills it. */
  spawn(ns: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env ?? process.env,
    });
    this.children.add(child);
    if (child.pid !== undefined) this.spawnedPids.push(child.pid);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kills every process in the lab's namespaces, then deletes the namespaces. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const child of this.children) child.kill('SIGTERM');
    await Promise.race([
      Promise.all([...this.children].map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : once(c, 'exit')))),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    this.destroySync();
  }

  /** Synchronous teardown (process exit path): SIGKILL whatever is left, delete namespaces. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const child of this.children) child.kill('SIGKILL');
    for (const ns of [...this.namespaces].reverse()) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      } catch {
        // namespace already gone
      }
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already deleted
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits for the kernel to report carrier on a fresh veth (link-watch can take up to a second). */
async function waitOperUp(ns: string, dev: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const json = await ip(['-n', ns, '-j', 'link', 'show', 'dev', dev]);
    const state = (JSON.parse(json) as Array<{ operstate?: string }>)[0]?.operstate;
    if (state === 'UP') return;
    if (Date.now() > deadline) throw new Error(`${dev} in ${ns} did not come up within ${timeoutMs} ms (operstate ${state})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function writeNsSysctl(ns: string, key: string, value: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/** Namespaces whose name starts with the prefix (for leak checks in tests). */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}
