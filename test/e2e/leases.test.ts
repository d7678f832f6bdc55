/**
 * End to end: agents that lease their subnets, in three host namespaces on a
 * bridged underlay, once with a real etcd (Debian's etcd-server, running in
 * the lab's switch namespace) and once with the embedded file store. Pods are
 * attached to each leased subnet the way the flannel CNI plugin would, from
 * the subnet.env the agent wrote.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatPrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import { subnetKeyName } from '../../src/subnet/lease';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { etcdFixture, fileFixture, prefixOf, type StoreFixture } from './store-fixture';
import { e2eSkipReason, eventually, sleep, tearDownLab, weftCleanup, weftLeftovers } from './helpers';

const HEALTH = 9920;
const PREFIX = '/coreos.com/network';
/** A distinctive range: leases inside it prove the agents read this configuration. */
const NET_CONF = { Network: '10.244.0.0/16', SubnetLen: 24, SubnetMin: '10.244.10.0', SubnetMax: '10.244.99.0', Backend: { Type: 'udp' } };
const HAND_SUBNET = '10.244.200.0/24';
const HAND_VALUE = '{"PublicIP":"192.168.77.50","PublicIPv6":null,"BackendType":"udp"}';
/** Exactly what flanneld's udp backend writes: no BackendType at all (flannel-facts §11). */
const FLANNELD_UDP_SUBNET = '10.244.201.0/24';
const FLANNELD_UDP_VALUE = '{"PublicIP":"192.168.77.51","PublicIPv6":null}';

interface Route { subnet: string; publicIp: string; port: number }

function leaseSuite(kind: 'etcd' | 'file'): void {
  const skip = e2eSkipReason(['ip', 'ping', 'curl', 'sysctl', 'iptables']) ?? (kind === 'etcd' ? etcdSkipReason() : undefined);

  describe(`leases (${kind === 'etcd' ? 'etcd' : 'embedded file store'}): three hosts`, { skip }, () => {
    let lab: Lab;
    let store: StoreFixture;
    const agents = new Map<number, LabAgent>();

    const startAgent = (i: number, extra: string[] = []): LabAgent => {
      const agent = new LabAgent(lab, lab.host(i).ns, [
        ...store.agentArgs(), '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH), ...extra,
      ]);
      agents.set(i, agent);
      return agent;
    };
    const routesOf = async (i: number): Promise<Route[]> =>
      JSON.parse(await lab.exec(lab.host(i).ns, 'curl', ['-sf', `http://127.0.0.1:${HEALTH}/routes`])) as Route[];
    const leasedSubnet = async (i: number): Promise<Ipv4Prefix> => {
      const env = await readSubnetEnv((agents.get(i) as LabAgent).subnetFile);
      assert.ok(env !== undefined, `host ${i} wrote no subnet file`);
      return env.subnet;
    };
    const waitRoutes = (i: number, check: (routes: Route[]) => boolean, what: string, timeoutMs = 10_000): Promise<Route[]> =>
      eventually(`host ${i}: ${what}`, async () => {
        const r = await routesOf(i);
        return check(r) ? r : undefined;
      }, timeoutMs, 50);

    before(async () => {
      lab = await Lab.create({ hosts: 3, underlay: 'bridge', pods: false });
      store = kind === 'etcd' ? await etcdFixture(lab, NET_CONF) : await fileFixture(lab, NET_CONF);
    });

    after(() => tearDownLab(lab, agents.values(), store));

    test('three agents lease distinct subnets inside the configured range and reach full connectivity', async (t) => {
      const t0 = Date.now();
      for (const i of [1, 2, 3]) startAgent(i);
      await Promise.all([1, 2, 3].map((i) => (agents.get(i) as LabAgent).waitReady()));
      const tReady = Date.now() - t0;
      const subnets = await Promise.all([1, 2, 3].map(leasedSubnet));
      assert.equal(new Set(subnets.map(formatPrefix)).size, 3, `distinct leases: ${subnets.map(formatPrefix).join(', ')}`);
      for (const s of subnets) {
        assert.equal(s.length, 24);
        assert.ok(s.network >= prefixOf('10.244.10.0/24').network && s.network <= prefixOf('10.244.99.0/24').network,
          `${formatPrefix(s)} lies inside SubnetMin..SubnetMax of the stored configuration`);
      }
      for (const i of [1, 2, 3]) {
        const others = [1, 2, 3].filter((j) => j !== i);
        await waitRoutes(i, (r) => r.length === 2 && others.every((j) =>
          r.some((x) => x.subnet === formatPrefix(subnets[j - 1] as Ipv4Prefix) && x.publicIp === lab.host(j).underlayIp && x.port === 8285)),
        'routes to the two other hosts');
      }
      const tRoutes = Date.now() - t0;
      for (const i of [1, 2, 3]) await lab.addPod(i, formatPrefix(subnets[i - 1] as Ipv4Prefix), 1472);
      for (const i of [1, 2, 3]) {
        for (const j of [1, 2, 3]) {
          if (i === j) continue;
          const out = await lab.exec(lab.host(i).podNs as string, 'ping', ['-c', '1', '-W', '2', lab.host(j).podIp], { timeoutMs: 10_000 });
          assert.match(out, /1 received/, `pod ${i} -> pod ${j}`);
        }
      }
      const tPing = Date.now() - t0;
      t.diagnostic(`three agents: all ready ${tReady} ms, all routes ${tRoutes} ms, pods attached and all 6 pings answered ${tPing} ms after start`);
    });

    test("lease keys and values are exactly what flanneld's udp backend writes, one per host", async () => {
      const leases = await store.leases();
      for (const i of [1, 2, 3]) {
        const key = subnetKeyName(await leasedSubnet(i));
        assert.equal(leases.get(key), `{"PublicIP":"${lab.host(i).underlayIp}","PublicIPv6":null}`, key);
      }
      assert.equal(leases.size, 3);
    });

    test('a lease written by hand becomes a route on every host; deleting it removes the route', async () => {
      const key = HAND_SUBNET.replace('/', '-');
      await store.putByHand(key, HAND_VALUE);
      for (const i of [1, 2, 3]) {
        await waitRoutes(i, (r) => r.some((x) => x.subnet === HAND_SUBNET && x.publicIp === '192.168.77.50'), 'the hand-written route');
      }
      await store.deleteByHand(key);
      for (const i of [1, 2, 3]) await waitRoutes(i, (r) => !r.some((x) => x.subnet === HAND_SUBNET), 'the hand-written route gone');
    });

    test("a lease written exactly as flanneld's udp backend writes it (no BackendType) becomes a udp route", async () => {
      const key = FLANNELD_UDP_SUBNET.replace('/', '-');
      await store.putByHand(key, FLANNELD_UDP_VALUE);
      for (const i of [1, 2, 3]) {
        await waitRoutes(i, (r) => r.some((x) => x.subnet === FLANNELD_UDP_SUBNET && x.publicIp === '192.168.77.51' && x.port === 8285),
          "flanneld's udp lease routed");
      }
      await store.deleteByHand(key);
      for (const i of [1, 2, 3]) await waitRoutes(i, (r) => !r.some((x) => x.subnet === FLANNELD_UDP_SUBNET), 'the route gone');
    });

    test('an agent killed with SIGKILL and restarted gets the same subnet', async () => {
      const before = await leasedSubnet(2);
      const killed = agents.get(2) as LabAgent;
      await killed.stop('SIGKILL');
      const restarted = startAgent(2);
      await restarted.waitReady();
      assert.equal(formatPrefix(await leasedSubnet(2)), formatPrefix(before));
      assert.ok(restarted.records.some((r) => r.msg === 'reusing the lease this host already holds'), restarted.log());
      const mine = [...(await store.leases()).values()].filter((v) => v.includes(`"${lab.host(2).underlayIp}"`));
      assert.equal(mine.length, 1, 'still exactly one lease for host 2');
      const out = await lab.exec(lab.host(2).podNs as string, 'ping', ['-c', '1', '-W', '2', lab.host(1).podIp], { timeoutMs: 10_000 });
      assert.match(out, /1 received/);
    });

    test("a short-TTL lease expires and its route disappears on the other hosts", async () => {
      const three = await leasedSubnet(3);
      await (agents.get(3) as LabAgent).stop('SIGTERM');
      const shortLived = startAgent(3, ['--subnet-lease-ttl', '4']);
      await shortLived.waitReady();
      assert.equal(formatPrefix(await leasedSubnet(3)), formatPrefix(three), 'reused with the short TTL');
      await sleep(5000); // longer than the TTL: only renewals keep it
      assert.ok((await store.leases()).has(subnetKeyName(three)), 'renewed while the agent runs');
      await shortLived.stop('SIGKILL');
      const t0 = Date.now();
      for (const i of [1, 2]) {
        await waitRoutes(i, (r) => !r.some((x) => x.subnet === formatPrefix(three)), 'the expired lease\'s route gone', 15_000);
      }
      assert.equal((await store.leases()).has(subnetKeyName(three)), false, 'the lease is gone from the store');
      assert.ok(Date.now() - t0 <= 15_000);
    });

    test('two agents started at the same instant never share a subnet', async () => {
      for (const i of [1, 2]) await (agents.get(i) as LabAgent).stop('SIGTERM');
      for (const [key] of await store.leases()) await store.deleteByHand(key);
      // both remember the same previous subnet, so both reach for it first
      const previous = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.50.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n';
      for (const i of [1, 2]) writeFileSync((agents.get(i) as LabAgent).subnetFile, previous);
      const racers = [startAgent(1), startAgent(2)];
      await Promise.all(racers.map((a) => a.waitReady()));
      const [s1, s2] = [formatPrefix(await leasedSubnet(1)), formatPrefix(await leasedSubnet(2))];
      assert.notEqual(s1, s2);
      assert.ok([s1, s2].includes('10.244.50.0/24'), `one of them got the previous subnet (${s1}, ${s2})`);
      const leases = await store.leases();
      assert.equal(leases.size, 2);
      await waitRoutes(1, (r) => r.some((x) => x.subnet === s2), "host 2's route");
      await waitRoutes(2, (r) => r.some((x) => x.subnet === s1), "host 1's route");
    });

    test("an agent whose own lease is deleted exits 0 with the reason (as flanneld); weft cleanup leaves its host clean", async () => {
      const agent = agents.get(1) as LabAgent;
      const subnet = await leasedSubnet(1);
      await store.deleteByHand(subnetKeyName(subnet));
      await eventually('the agent to exit', async () => (agent.exited ? true : undefined), 10_000);
      assert.equal(agent.exitCode, 0, agent.log());
      const stopping = agent.records.find((r) => r.msg === 'stopping');
      assert.match(String(stopping?.['reason']), new RegExp(`lease ${formatPrefix(subnet).replace(/\./g, '\\.')} was deleted`));
      const link = await lab.execResult(lab.host(1).ns, 'ip', ['link', 'show', 'flannel.0']);
      assert.notEqual(link.code, 0, 'flannel.0 is gone');
      await weftCleanup(lab, lab.host(1).ns, agent.stateDir);
      assert.deepEqual(await weftLeftovers(lab, lab.host(1).ns), []);
    });

    if (kind === 'etcd') {
      test('invalid configurations in etcd are refused with their messages, before anything is created', async () => {
        const cases: Array<[string, string]> = [
          [JSON.stringify({ Network: '10.244.0.0/16', SubnetLen: 31, Backend: { Type: 'udp' } }),
            `weft: etcd ${PREFIX}/config: SubnetLen 31 is not allowed: it must be between 18 (Network prefix 16 + 2) and 30`],
          [JSON.stringify({ Backend: { Type: 'udp' } }),
            `weft: etcd ${PREFIX}/config: Network is missing: it is required, e.g. "Network": "10.244.0.0/16"`],
          [JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'wireguard' } }),
            `weft: etcd ${PREFIX}/config: Backend.Type "wireguard" is not supported: weft supports "udp", "vxlan" and "host-gw"`],
        ];
        for (const [config, message] of cases) {
          await putConfig(config);
          const before = await store.leases();
          const agent = startAgent(3);
          await eventually('the agent to exit', async () => (agent.exited ? true : undefined), 15_000);
          assert.equal(agent.exitCode, 2, agent.log());
          assert.deepEqual(agent.rawLines.filter((l) => l.startsWith('weft: ')), [message]);
          assert.equal(agent.records.some((r) => r.level >= 50), false, `only the one error line:\n${agent.log()}`);
          assert.deepEqual(await store.leases(), before, 'no lease was written');
          const link = await lab.execResult(lab.host(3).ns, 'ip', ['link', 'show', 'flannel.0']);
          assert.notEqual(link.code, 0, 'no device was created');
        }
      });
    }

    /** etcd only: replaces <prefix>/config. */
    async function putConfig(text: string): Promise<void> {
      const out = await lab.exec(lab.underlayNs as string, '/usr/bin/etcdctl', [
        `--endpoints=${store.agentArgs()[1]}`, 'put', `${PREFIX}/config`, text,
      ], { env: { ...process.env, ETCDCTL_API: '3' } });
      assert.match(out, /OK/);
    }
  });
}

leaseSuite('etcd');
leaseSuite('file');
