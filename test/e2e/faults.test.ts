/**
 * End to end: faults during pod traffic, each bounded in time, in its own lab.
 *
 *  - the only etcd stopped for 10 s: pods keep talking (the data plane does
 *    not need the store), the agents stay ready, a short-TTL lease is renewed
 *    after etcd is back, an agent started during the outage gets a lease once
 *    etcd answers, and a host that could not see etcd while leases were added
 *    and deleted routes by what changed once it sees etcd again;
 *  - an agent whose configuration is a local file, started while etcd is
 *    unreachable, waits for it as flanneld does;
 *  - per backend (udp, vxlan, host-gw): an agent killed with SIGKILL and
 *    started again gets the same subnet, replaces or adopts what the killed
 *    process left in the kernel, and traffic flows through it again (how soon
 *    is measured); then the underlay link of one host is taken down for 3 s
 *    and up again: traffic resumes by itself (how soon after the link came up
 *    is measured).
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdServer, etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab, LAB_NETWORK, randomLabPrefix } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatPrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import { subnetKeyName } from '../../src/subnet/lease';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { addPodInLease, e2eSkipReason, eventually, sleep, tearDownLab } from './helpers';
import { describePing, PingStream } from './ping-stream';
import { ETCD_PREFIX, etcdFixture, type StoreFixture } from './store-fixture';

const HEALTH = 9932;

interface Route { subnet: string; publicIp: string }

/** What the agents' /routes and /readyz say, and the agents' logs for failure messages. */
class Hosts {
  readonly agents = new Map<number, LabAgent>();

  private readonly lab: Lab;

  constructor(lab: Lab) {
    this.lab = lab;
  }

  agent(i: number): LabAgent {
    const a = this.agents.get(i);
    assert.ok(a !== undefined, `no agent on host ${i}`);
    return a;
  }

  logs(): string {
    return [...this.agents].map(([i, a]) => `--- agent on host ${i} (pid ${a.child.pid ?? '?'}):\n${a.log()}`).join('\n');
  }

  async routes(i: number): Promise<Route[]> {
    return JSON.parse(await this.lab.exec(this.lab.host(i).ns, 'curl', ['-sf', `http://127.0.0.1:${HEALTH}/routes`])) as Route[];
  }

  async readyz(i: number): Promise<number> {
    const r = await this.lab.execResult(this.lab.host(i).ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${HEALTH}/readyz`]);
    return Number(r.stdout);
  }

  waitRoutes(i: number, check: (r: readonly Route[]) => boolean, what: string, timeoutMs = 15_000): Promise<Route[]> {
    return eventually(`host ${i}: ${what}`, async () => {
      const r = await this.routes(i);
      return check(r) ? r : undefined;
    }, timeoutMs, 50).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${this.logs()}`);
    });
  }

  async subnet(i: number): Promise<Ipv4Prefix> {
    const env = await readSubnetEnv(this.agent(i).subnetFile);
    assert.ok(env !== undefined, `host ${i} wrote no subnet file:\n${this.logs()}`);
    return env.subnet;
  }

  /** Asserts that every agent runs and answers /readyz with 200. */
  async assertAllReady(when: string): Promise<void> {
    for (const [i, a] of this.agents) {
      assert.equal(a.exited, false, `agent ${i} exited ${when}:\n${this.logs()}`);
      assert.equal(await this.readyz(i), 200, `agent ${i} is not ready ${when}:\n${this.logs()}`);
    }
  }
}

function pidsAlive(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

const count = (lines: string): number => (lines === '' ? 0 : lines.split('\n').length);
const has = (subnet: string) => (r: readonly Route[]): boolean => r.some((x) => x.subnet === subnet);

describe('the only etcd stopped for 10 s during pod traffic', { skip: e2eSkipReason(['ip', 'ping', 'curl', 'sysctl', 'iptables']) ?? etcdSkipReason() }, () => {
  const OUTAGE_MS = 10_000;
  /** Short enough that renewals happen every 5 s; etcd restarts every lease's TTL when it comes back, so 15 s outlive the outage. */
  const SHORT_TTL = 15;
  const GONE = '10.244.200.0/24';
  const ADDED = '10.244.201.0/24';
  const handValue = (ip: string): string => `{"PublicIP":"${ip}","PublicIPv6":null}`;
  let lab: Lab;
  let etcd: EtcdServer | undefined;
  let hosts: Hosts;
  const pings: PingStream[] = [];

  before(async () => {
    lab = await Lab.create({ prefix: randomLabPrefix('weft-fs'), hosts: 3, underlay: 'bridge', pods: false });
    hosts = new Hosts(lab);
    const host = await lab.addUnderlayServiceAddress();
    etcd = await EtcdServer.start({ host, commandPrefix: ['ip', 'netns', 'exec', lab.underlayNs as string] });
    await etcd.etcdctl(['put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } })]);
  });

  after(async () => {
    for (const p of pings) p.kill();
    const pids = etcd?.spawnedPids ?? [];
    await tearDownLab(lab, hosts.agents.values(), etcd);
    assert.deepEqual(pidsAlive(pids), [], 'etcd processes left behind');
    assert.equal(etcd === undefined || !existsSync(etcd.dataDir), true, 'etcd data dir left behind');
  });

  test('no echo lost; agents stay ready; renewal, a new agent and missed lease changes all land once etcd is back', async (t) => {
    const server = etcd as EtcdServer;
    const key = (subnet: string): string => `${ETCD_PREFIX}/subnets/${subnet.replace('/', '-')}`;
    /** The decimal id of the etcd lease a key is attached to ('0': none), undefined when the key is absent. */
    const leaseIdOf = async (subnet: Ipv4Prefix): Promise<string | undefined> => {
      const json = await server.etcdctl(['get', key(formatPrefix(subnet)), '-w', 'json']);
      if (!json.includes('"kvs"')) return undefined;
      return /"lease":(\d+)/.exec(json)?.[1] ?? '0';
    };
    const startAgent = (i: number, extra: readonly string[] = []): LabAgent => {
      const a = new LabAgent(lab, lab.host(i).ns, ['--etcd-endpoints', server.endpoint, '--net-config-path', path.join(lab.dir, 'absent.json'),
        '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH), ...extra]);
      hosts.agents.set(i, a);
      return a;
    };

    // host 1 keeps flannel's 24 h lease, host 2 renews a 15 s one every 5 s
    startAgent(1);
    startAgent(2, ['--subnet-lease-ttl', String(SHORT_TTL)]);
    for (const i of [1, 2]) {
      await hosts.agent(i).waitReady(20_000);
      const s = await hosts.subnet(i);
      await lab.addPod(i, formatPrefix(s), 1472);
    }
    const s1 = formatPrefix(await hosts.subnet(1));
    const s2 = formatPrefix(await hosts.subnet(2));
    await server.etcdctl(['put', key(GONE), handValue('192.168.77.60')]);
    for (const i of [1, 2]) await hosts.waitRoutes(i, (r) => has(GONE)(r) && r.length === 2, 'the other host and the hand-written lease');

    pings.push(new PingStream(lab, lab.host(1).podNs as string, lab.host(2).podIp, { intervalS: 0.05, durationS: 90 }, 'pod 1 -> pod 2'));
    pings.push(new PingStream(lab, lab.host(2).podNs as string, lab.host(1).podIp, { intervalS: 0.05, durationS: 90 }, 'pod 2 -> pod 1'));
    await Promise.all(pings.map((p) => p.waitReplyAfter(Date.now() - 1000, 5_000)));

    // etcd goes away (host 2's lease read last: it renews every 5 s); host 1 also loses its way to etcd (rejected), until told otherwise
    const host2LeaseBefore = await leaseIdOf(await hosts.subnet(2));
    assert.ok(host2LeaseBefore !== undefined && host2LeaseBefore !== '0', 'host 2 holds an etcd lease');
    await server.kill();
    const tDown = Date.now();
    const blockRule = ['OUTPUT', '-p', 'tcp', '-d', server.host, '--dport', String(server.clientPort), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
    await lab.exec(lab.host(1).ns, 'iptables', ['-I', ...blockRule]);
    // an agent started while etcd is down waits for it
    const third = startAgent(3);
    await third.waitFor((r) => r['attempt'] !== undefined && /waiting$/.test(r.msg), 10_000, 'a "waiting" record');
    await sleep(OUTAGE_MS / 2 - (Date.now() - tDown));
    for (const i of [1, 2]) {
      assert.equal(hosts.agent(i).exited, false, `agent ${i} runs through the outage:\n${hosts.logs()}`);
      assert.equal(await hosts.readyz(i), 200, `agent ${i} stays ready while etcd is down`);
    }
    await eventually('host 2 to fail a renewal during the outage', async () =>
      (hosts.agent(2).records.some((r) => r.msg === 'lease renewal failed; will retry') ? true : undefined), OUTAGE_MS)
      .catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${hosts.logs()}`);
      });
    await sleep(OUTAGE_MS - (Date.now() - tDown));

    // etcd is back: host 2 reconnects, host 3 leases, two leases change behind host 1's back
    await server.restart();
    const tBack = Date.now();
    const outageMs = tBack - tDown;
    await third.waitReady(30_000);
    const tThirdReady = Date.now();
    const s3 = formatPrefix(await hosts.subnet(3));
    await lab.addPod(3, s3, 1472);
    await server.etcdctl(['del', key(GONE)]);
    await server.etcdctl(['put', key(ADDED), handValue('192.168.77.61')]);
    await hosts.waitRoutes(2, (r) => has(s1)(r) && has(s3)(r) && has(ADDED)(r) && !has(GONE)(r), 'host 3 and the added lease routed, the deleted one not', 20_000);
    const tHost2Current = Date.now();

    // host 1 still routes by what it saw last, and its pods still talk
    const stale = await hosts.routes(1);
    assert.deepEqual(stale.map((r) => r.subnet).sort(), [GONE, s2].sort(), `host 1, cut off from etcd, keeps its last known routes`);
    assert.equal(hosts.agent(1).exited, false, hosts.logs());

    // host 1 sees etcd again: what changed meanwhile becomes (or stops being) a route
    await lab.exec(lab.host(1).ns, 'iptables', ['-D', ...blockRule]);
    const tUnblocked = Date.now();
    await hosts.waitRoutes(1, (r) => has(s2)(r) && has(s3)(r) && has(ADDED)(r) && !has(GONE)(r) && r.length === 3,
      'the leases added and deleted while it could not see etcd', 20_000);
    const tHost1Current = Date.now();
    for (const [from, to] of [[1, 3], [3, 1], [2, 3]] as const) {
      const out = await lab.execResult(lab.host(from).podNs as string, 'ping', ['-c', '1', '-W', '2', lab.host(to).podIp], { timeoutMs: 10_000 });
      assert.equal(out.code, 0, `pod ${from} -> pod ${to} (host 3 leased after the outage): ${out.stdout}${out.stderr}\n${hosts.logs()}`);
    }

    // host 2's short lease was renewed after the outage: a new etcd lease on the same key and value
    const renewed = await eventually('host 2 to renew its lease after the outage', async () => {
      const id = await leaseIdOf(await hosts.subnet(2));
      return id !== undefined && id !== host2LeaseBefore ? id : undefined;
    }, 3 * SHORT_TTL * 1000, 200).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${hosts.logs()}`);
    });
    const tRenewed = Date.now();
    const ttl = await server.etcdctl(['lease', 'timetolive', BigInt(renewed).toString(16)]);
    const remaining = Number(/remaining\((-?\d+)s\)/.exec(ttl)?.[1]);
    assert.ok(remaining > 0 && remaining <= SHORT_TTL, `the renewed lease runs ${SHORT_TTL} s: ${ttl}`);
    const leases = (await server.etcdctl(['get', '--prefix', `${ETCD_PREFIX}/subnets/`])).split('\n').filter((l) => l !== '');
    for (const i of [1, 2, 3]) {
      const k = key(formatPrefix(await hosts.subnet(i)));
      const at = leases.indexOf(k);
      assert.ok(at >= 0 && leases[at + 1] === handValue(lab.host(i).underlayIp), `host ${i}'s lease ${k} in etcd: ${leases.join(' ')}`);
    }
    assert.equal(s1, formatPrefix(await hosts.subnet(1)));
    assert.equal(s2, formatPrefix(await hosts.subnet(2)));
    await hosts.assertAllReady('after the outage');

    await sleep(1_000);
    for (const p of pings) {
      const s = await p.finish();
      t.diagnostic(describePing(s));
      assert.ok(s.transmitted > 0 && s.lost.length === 0 && s.endedAt > tUnblocked, `${describePing(s)}\n${s.output}\n${hosts.logs()}`);
    }
    const disconnects = (i: number): number => hosts.agent(i).records.filter((r) => r.msg === 'lease store unreachable; routes kept, retrying').length;
    t.diagnostic(`etcd down ${outageMs} ms; then host 3 (started during the outage) ready in ${tThirdReady - tBack} ms, ` +
      `host 2 routed the changes ${tHost2Current - tBack} ms after etcd was back; host 1 (cut off until then) ${tHost1Current - tUnblocked} ms after it could reach etcd`);
    t.diagnostic(`host 2's ${SHORT_TTL} s lease renewed ${tRenewed - tBack} ms after etcd was back (a new etcd lease, ${remaining} s left); ` +
      `watch disconnects logged: host 1 ${disconnects(1)}, host 2 ${disconnects(2)}`);
  });
});

describe('an agent whose network configuration is a local file, started while etcd refuses connections',
  { skip: e2eSkipReason(['ip', 'curl']) ?? etcdSkipReason() }, () => {
    let lab: Lab;
    let etcd: EtcdServer | undefined;
    let agent: LabAgent | undefined;

    before(async () => {
      lab = await Lab.create({ prefix: randomLabPrefix('weft-fw'), hosts: 1, underlay: 'bridge', pods: false });
    });
    after(() => tearDownLab(lab, [agent], etcd));

    test('waits for etcd (retrying, not ready), then leases and becomes ready', async () => {
      const host = await lab.addUnderlayServiceAddress();
      const conf = path.join(lab.dir, 'net-conf.json');
      writeFileSync(conf, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } }));
      agent = new LabAgent(lab, lab.host(1).ns, ['--etcd-endpoints', `http://${host}:2379`, '--net-config-path', conf, '--iface', 'eth0',
        '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH)]);
      for (const until = Date.now() + 3_000; !agent.exited && Date.now() < until;) await sleep(100);
      assert.equal(agent.exited, false, `the agent waits for etcd instead of exiting (exit code ${agent.exitCode}):\n${agent.log()}`);
      etcd = await EtcdServer.start({ host, clientPort: 2379, commandPrefix: ['ip', 'netns', 'exec', lab.underlayNs as string] });
      await agent.waitReady(30_000);
    });
  });

type Backend = 'udp' | 'vxlan' | 'host-gw';

interface KernelObjects {
  readonly routes: string;
  /** The backend's device: its addresses and MAC ('' when there is none). */
  readonly device: string;
  /** vxlan: the permanent neighbour and FDB entries on flannel.1. */
  readonly neighbours: string;
  readonly fdb: string;
  readonly rules: string;
}

/** What weft holds in host i's kernel, as text to compare before and after (each object listed as often as it exists). */
async function kernelObjects(lab: Lab, i: number, backend: Backend): Promise<KernelObjects> {
  const ns = lab.host(i).ns;
  const routes = (await lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', '87'])).trim();
  const dev = backend === 'udp' ? 'flannel.0' : backend === 'vxlan' ? 'flannel.1' : undefined;
  let device = '';
  let neighbours = '';
  let fdb = '';
  if (dev !== undefined) {
    const r = await lab.execResult(ns, 'ip', ['-br', 'addr', 'show', 'dev', dev]);
    const mac = await lab.execResult(ns, 'cat', [`/sys/class/net/${dev}/address`]);
    device = r.code === 0 ? `${r.stdout.trim().replace(/\s+/g, ' ')} ${mac.stdout.trim()}` : '';
  }
  if (backend === 'vxlan' && device !== '') {
    neighbours = (await lab.exec(ns, 'ip', ['-4', 'neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent'])).trim();
    fdb = (await lab.exec(ns, 'bridge', ['fdb', 'show', 'dev', 'flannel.1'])).split('\n').filter((l) => l.includes(' dst ')).join('\n');
  }
  const rules = (await lab.exec(ns, 'iptables-save', [])).split('\n').filter((l) => /FLANNEL|flanneld/.test(l) && l.startsWith('-A')).join('\n');
  return { routes, device, neighbours, fdb, rules };
}

function backendSuite(backend: Backend): void {
  const skip = e2eSkipReason(['ip', 'bridge', 'ping', 'curl', 'sysctl', 'iptables', 'iptables-save']) ?? etcdSkipReason();
  describe(`${backend} backend: an agent SIGKILLed and restarted, then the underlay link down and up`, { skip }, () => {
    let lab: Lab;
    let store: StoreFixture | undefined;
    let hosts: Hosts;
    const pings: PingStream[] = [];

    const startAgent = (i: number): LabAgent => {
      const a = new LabAgent(lab, lab.host(i).ns, [...(store as StoreFixture).agentArgs(), '--iface', 'eth0',
        '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH)]);
      hosts.agents.set(i, a);
      return a;
    };

    before(async () => {
      lab = await Lab.create({ prefix: randomLabPrefix(`weft-f${backend[0] as string}`), hosts: 2, underlay: 'bridge', pods: false });
      hosts = new Hosts(lab);
      store = await etcdFixture(lab, { Network: LAB_NETWORK, Backend: { Type: backend } });
      for (const i of [1, 2]) startAgent(i);
      for (const i of [1, 2]) {
        await hosts.agent(i).waitReady(20_000);
        await addPodInLease(lab, i, hosts.agent(i));
      }
      for (const i of [1, 2]) await hosts.waitRoutes(i, (r) => r.length === 1, 'a route to the other host');
    });

    after(async () => {
      for (const p of pings) p.kill();
      await tearDownLab(lab, hosts.agents.values(), store);
    });

    test('SIGKILL and restart: the same subnet, the kernel objects replaced or adopted, traffic through it again', async (t) => {
      const subnet = formatPrefix(await hosts.subnet(1));
      const before = await kernelObjects(lab, 1, backend);
      // udp's per-peer routes live in weft's own table, the kernel backends' in the kernel
      if (backend !== 'udp') assert.notEqual(before.routes, '', `host 1's kernel routes to host 2:\n${hosts.logs()}`);
      if (backend === 'vxlan') assert.ok(before.neighbours !== '' && before.fdb !== '', `host 1's neighbour and FDB entries: ${JSON.stringify(before)}`);
      assert.notEqual(before.rules, '', 'the forward rules are installed');
      const ping = new PingStream(lab, lab.host(2).podNs as string, lab.host(1).podIp, { intervalS: 0.02, durationS: 60 }, 'pod 2 -> pod 1');
      pings.push(ping);
      await ping.waitReplyAfter(Date.now() - 1000, 5_000);

      const killed = hosts.agent(1);
      await killed.stop('SIGKILL');
      const tKilled = Date.now();
      const left = await kernelObjects(lab, 1, backend);
      if (backend === 'udp') {
        assert.equal(left.device, '', 'the TUN flannel.0 went with the killed process');
        assert.equal((await lab.exec(lab.host(1).ns, 'ip', ['route', 'show', LAB_NETWORK])).trim(), '', 'and its route with it');
      } else {
        assert.deepEqual(left, before, 'the kernel objects stay after SIGKILL');
      }
      assert.equal(left.rules, before.rules, 'the iptables rules stay');
      await sleep(1_000); // the host runs without an agent for a second

      const tSpawn = Date.now();
      const restarted = startAgent(1);
      await restarted.waitReady(20_000);
      const tReady = Date.now();
      const first = await ping.waitReplyAfter(tSpawn, 15_000);
      assert.equal(formatPrefix(await hosts.subnet(1)), subnet, 'the same subnet after the restart');
      assert.ok(restarted.records.some((r) => r.msg === 'reusing the lease this host already holds'), restarted.log());
      const leases = await (store as StoreFixture).leases();
      assert.equal(leases.size, 2, `one lease per host: ${[...leases.keys()].join(', ')}`);
      assert.ok(leases.has(subnetKeyName(await hosts.subnet(1))));
      await hosts.waitRoutes(1, (r) => r.length === 1, 'the route to host 2 again');
      const afterRestart = await kernelObjects(lab, 1, backend);
      assert.deepEqual(afterRestart, before, `the same kernel objects after the restart (${backend === 'udp' ? 're-created' : 'adopted'}), none twice`);

      await sleep(500);
      const s = await ping.finish();
      t.diagnostic(describePing(s));
      const deadMs = tSpawn - tKilled;
      // the first record comes once the state directory's lock is taken (flock: the kernel released a killed holder's at once)
      const firstRecord = Number(restarted.records[0]?.['time'] ?? Number.NaN) - tSpawn;
      t.diagnostic(`${backend}: restart spawned -> first log record ${firstRecord} ms -> ready ${tReady - tSpawn} ms -> ` +
        `first echo reply through host 1 ${first.at - tSpawn} ms (agent dead ${deadMs} ms before the spawn)`);
      if (backend !== 'udp') {
        // the kernel carries the traffic; the agent is not in its path
        assert.equal(s.lost.length, 0, `${backend}: no echo lost while the agent was dead and restarting\n${describePing(s)}\n${s.output}\n${hosts.logs()}`);
      } else {
        assert.ok(s.longestGap.to >= tSpawn, `udp: replies stopped while the agent was dead (${describePing(s)})`);
      }
      assert.deepEqual(s.lost.filter((q) => q > first.seq), [], `nothing lost once traffic went through the restarted agent\n${s.output}`);
    });

    test('underlay eth0 of host 1 down for 3 s, then up: traffic resumes by itself', async (t) => {
      const agentPids = [1, 2].map((i) => hosts.agent(i).child.pid);
      const routesBefore = (await lab.exec(lab.host(1).ns, 'ip', ['-4', 'route', 'show', 'proto', '87'])).trim();
      const ping = new PingStream(lab, lab.host(1).podNs as string, lab.host(2).podIp, { intervalS: 0.02, durationS: 60 }, 'pod 1 -> pod 2');
      pings.push(ping);
      await ping.waitReplyAfter(Date.now() - 1000, 5_000);
      const ns = lab.host(1).ns;
      await lab.exec(ns, 'ip', ['link', 'set', 'eth0', 'down']);
      const tDown = Date.now();
      await sleep(3_000);
      const routesWhileDown = (await lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', '87'])).trim();
      await lab.exec(ns, 'ip', ['link', 'set', 'eth0', 'up']);
      const tUp = Date.now();
      // host-gw's routes went with the link; the periodic kernel resync (default 10 s) puts them back
      const first = await ping.waitReplyAfter(tUp, 20_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${hosts.logs()}`);
      });
      await hosts.assertAllReady('after the link came back');
      await eventually('weft\'s kernel routes back', async () =>
        ((await lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', '87'])).trim() === routesBefore ? true : undefined), 5_000);
      assert.deepEqual([1, 2].map((i) => hosts.agent(i).child.pid), agentPids, 'nothing was restarted');
      await sleep(500);
      const s = await ping.finish();
      t.diagnostic(describePing(s));
      t.diagnostic(`${backend}: eth0 down ${tUp - tDown} ms; first echo reply ${first.at - tUp} ms after it came up; ` +
        `weft's kernel routes on host 1 before / while down: ${count(routesBefore)} / ${count(routesWhileDown)}`);
      assert.deepEqual(s.lost.filter((q) => q > first.seq), [], `nothing lost once traffic resumed\n${s.output}\n${hosts.logs()}`);
    });
  });
}

for (const backend of ['udp', 'vxlan', 'host-gw'] as const) backendSuite(backend);
