/**
 * A real etcd cluster for tests: N members, each an etcd process (Debian's
 * etcd-server) in its own namespace on a lab's underlay switch, clients on
 * <ip>:2379 and peers on <ip>:2380. A member can be killed (SIGKILL, its data
 * kept) and restarted on its data; leader() asks the running members
 * (`etcdctl endpoint status`) which of them leads.
 *
 *   const lab = await Lab.create({ hosts: 2, extraUnderlayNodes: etcdClusterNodes(3) });
 *   const cluster = await EtcdCluster.inLab(lab, 3);     // e1, e2, e3 at 192.168.77.201..203
 *   const leader = await cluster.waitLeader();
 *   await cluster.kill(leader);                          // the others elect a new one
 *   await cluster.restart(leader);                       // rejoins from its data dir
 *   await cluster.stop();                                // every member stopped, data dirs removed
 *
 * The lab's destroy() kills whatever still runs in the namespaces; stop()
 * also removes the data dirs, so call it (tearDownLab does, as a closer).
 */
import { EtcdServer, runEtcdctl } from './etcd-server';
import { UNDERLAY_PREFIX, type Lab } from './lab';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Member i (1-based) is at underlay address 192.168.77.<200 + i>, tag `e<i>`. */
export const MEMBER_HOST_NUMBER_BASE = 200;

export interface EtcdMemberSpec {
  /** etcd's --name; also how the cluster's methods name the member. */
  readonly name: string;
  /** The namespace the member runs in. */
  readonly ns: string;
  /** Its address there (clients and peers). */
  readonly host: string;
}

/** The lab nodes for `count` members (LabOptions.extraUnderlayNodes): namespaces <prefix>-e1.., 192.168.77.201... */
export function etcdClusterNodes(count: number): { tag: string; hostNumber: number }[] {
  return Array.from({ length: count }, (_, i) => ({ tag: `e${i + 1}`, hostNumber: MEMBER_HOST_NUMBER_BASE + i + 1 }));
}

export interface EtcdClusterOptions {
  /** etcd's --initial-cluster-token (default: from the first member's namespace, unique per lab). */
  readonly token?: string;
  /** How long start() waits for every member to be healthy (default 30 s). */
  readonly startTimeoutMs?: number;
}

/** What one member says about itself and its leader (0: it knows of none). */
interface MemberStatus {
  readonly memberId: string;
  readonly leaderId: string;
}

export class EtcdCluster {
  private readonly servers: ReadonlyMap<string, EtcdServer>;
  readonly names: readonly string[];
  /** Where cluster-wide etcdctl runs (a member's namespace stays usable when its etcd is dead). */
  private readonly ctlPrefix: readonly string[];

  private constructor(servers: Map<string, EtcdServer>, ctlPrefix: readonly string[]) {
    this.servers = servers;
    this.names = [...servers.keys()];
    this.ctlPrefix = ctlPrefix;
  }

  /** Starts every member at once (none answers before a quorum runs) and waits until each is healthy. */
  static async start(specs: readonly EtcdMemberSpec[], options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const first = specs[0];
    if (first === undefined) throw new Error('an etcd cluster needs at least one member');
    if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new Error(`member names repeat: ${specs.map((s) => s.name).join(', ')}`);
    const initialCluster = specs.map((m) => `${m.name}=http://${m.host}:${ETCD_PEER_PORT}`).join(',');
    const token = options.token ?? `${first.ns}-cluster`;
    const startTimeoutMs = options.startTimeoutMs ?? 30_000;
    const servers = new Map<string, EtcdServer>();
    try {
      for (const m of specs) {
        servers.set(m.name, await EtcdServer.prepare({
          name: m.name, host: m.host, clientPort: ETCD_CLIENT_PORT, peerPort: ETCD_PEER_PORT,
          commandPrefix: ['ip', 'netns', 'exec', m.ns], initialCluster, initialClusterToken: token, startTimeoutMs,
        }));
      }
      for (const s of servers.values()) s.spawnProcess();
      await Promise.all([...servers.values()].map((s) => s.waitHealthy()));
    } catch (err) {
      await Promise.all([...servers.values()].map((s) => s.stop()));
      throw err;
    }
    return new EtcdCluster(servers, ['ip', 'netns', 'exec', first.ns]);
  }

  /** A cluster of `count` members on the lab's nodes e1..e<count> (made with etcdClusterNodes(count)). */
  static async inLab(lab: Lab, count: number, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const specs = etcdClusterNodes(count).map(({ tag }) => {
      const node = lab.extraNodes.get(tag);
      if (node === undefined) throw new Error(`the lab has no node ${tag}: create it with extraUnderlayNodes: etcdClusterNodes(${count})`);
      if (!node.ip.startsWith(`${UNDERLAY_PREFIX}.`)) throw new Error(`node ${tag} is not on the underlay switch (${node.ip})`);
      return { name: tag, ns: node.ns, host: node.ip };
    });
    return EtcdCluster.start(specs, options);
  }

  /** Every member's client URL, in member order (what an agent's --etcd-endpoints takes, comma-joined). */
  get endpoints(): string[] {
    return [...this.servers.values()].map((s) => s.endpoint);
  }

  member(name: string): EtcdServer {
    const s = this.servers.get(name);
    if (s === undefined) throw new Error(`no etcd member ${name} (members: ${this.names.join(', ')})`);
    return s;
  }

  /** Names of the members whose process runs now. */
  running(): string[] {
    return this.names.filter((n) => this.member(n).running);
  }

  /** etcdctl against every endpoint (it fails over between them); a request waits at most 5 s for an answer. */
  etcdctl(args: readonly string[], timeoutMs = 15_000): Promise<string> {
    return runEtcdctl(this.ctlPrefix, this.endpoints, ['--command-timeout=5s', ...args], timeoutMs);
  }

  /** SIGKILL: the member stops at once, its data stays for restart(). */
  async kill(name: string): Promise<void> {
    await this.member(name).kill();
  }

  /**
   * Starts a killed member again on its data dir. With `wait` 'serving'
   * (default) it resolves once the member serves clients, which etcd does only
   * after the member has rejoined a quorum; with 'none' it returns at once
   * (restarting the first of two missing members, say).
   */
  async restart(name: string, wait: 'serving' | 'none' = 'serving'): Promise<void> {
    const s = this.member(name);
    s.spawnProcess();
    if (wait === 'serving') await s.waitServing();
  }

  /** The member that leads now, as the running members report it; undefined without a leader (no quorum). */
  async leader(): Promise<string | undefined> {
    const statuses = await Promise.all(this.running().map(async (name) => ({ name, status: await this.status(name) })));
    // the member that says it leads itself (a deposed leader learns it within an election timeout)
    const leading = statuses.filter((s) => s.status !== undefined && s.status.leaderId !== '0' && s.status.leaderId === s.status.memberId);
    return leading[0]?.name;
  }

  /** Waits until some member leads; resolves with its name. */
  async waitLeader(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = await this.leader();
      if (leader !== undefined) return leader;
      if (Date.now() > deadline) throw new Error(`no etcd member leads after ${timeoutMs} ms (running: ${this.running().join(', ')})\n${this.logs()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Waits until every running member is healthy (serves a quorum read). */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.running().map((n) => this.member(n).waitHealthy(timeoutMs)));
  }

  /** Every etcd process the cluster ever started (for leak checks). */
  get spawnedPids(): number[] {
    return [...this.servers.values()].flatMap((s) => s.spawnedPids);
  }

  get dataDirs(): string[] {
    return [...this.servers.values()].map((s) => s.dataDir);
  }

  /** The last lines each member wrote, for failure messages. */
  logs(): string {
    return [...this.servers].map(([name, s]) => `--- etcd ${name} (${s.running ? 'running' : 'not running'}):\n${s.log.trim()}`).join('\n');
  }

  /** Stops every member (SIGTERM, then SIGKILL) and removes the data dirs. Safe to call twice. */
  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
  }

  /** `etcdctl endpoint status` of one member, undefined when it does not answer. */
  private async status(name: string): Promise<MemberStatus | undefined> {
    let out: string;
    try {
      out = await this.member(name).etcdctl(['--command-timeout=2s', 'endpoint', 'status', '-w', 'json'], 4_000);
    } catch {
      return undefined;
    }
    // the ids are 64-bit: read them as text, JSON.parse would round them
    const memberId = /"member_id":(\d+)/.exec(out)?.[1];
    const leaderId = /"leader":(\d+)/.exec(out)?.[1];
    return memberId === undefined || leaderId === undefined ? undefined : { memberId, leaderId };
  }
}
