/**
 * End to end: the kernel backends (vxlan, host-gw) run by weft agents in three
 * host namespaces, with the embedded store and with a real etcd. The kernel
 * state is read back with iproute2 and compared with what flanneld programs
 * (flannel-facts §11): for vxlan the device flannel.1 and, per peer, an onlink
 * route, a permanent neighbour and an FDB entry; for host-gw a route via the
 * peer's address. Pods are attached from subnet.env as the CNI plugin would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { parseFdb, parseLinkDetails, parseNeighbours, parseRoutes, WEFT_ROUTE_PROTO } from '../../src/host/kernel-state';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import { decodeLeaseAttrs, subnetKeyName } from '../../src/subnet/lease';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { waitForPort } from '../../src/cli/demo';
import {
  e2eSkipReason, eventually, LineCollector, tearDownLab, weftCleanup, weftLeftovers,
} from './helpers';
import { etcdFixture, fileFixture, type StoreFixture } from './store-fixture';

const HEALTH = 9921;
const VXLAN_MTU = 1450;
const UNDERLAY_MTU = 1500;

type KernelBackend = 'vxlan' | 'host-gw';

/** What one host's kernel holds for weft, read back and written as strings for exact comparison. */
interface KernelView {
  readonly routes: string[];
  readonly neighbours: string[];
  readonly fdb: string[];
  readonly device: string | undefined;
}

async function kernelView(lab: Lab, ns: string): Promise<KernelView> {
  const routes = parseRoutes(await lab.exec(ns, 'ip', ['-N', '-j', '-d', '-4', 'route', 'show', 'proto', String(WEFT_ROUTE_PROTO)]))
    .map((r) => `${formatPrefix(r.dst)} via ${formatIpv4(r.gateway ?? 0)} dev ${r.dev ?? '?'}${r.onlink ? ' onlink' : ''}`).sort();
  const link = await lab.execResult(ns, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'flannel.1']);
  if (link.code !== 0) return { routes, neighbours: [], fdb: [], device: undefined };
  const d = parseLinkDetails(link.stdout);
  const v = d?.vxlan;
  const device = d === undefined || v === undefined ? `${d?.kind ?? '?'}` :
    `vxlan id ${v.vni} local ${formatIpv4(v.local ?? 0)} dev ${v.dev ?? '?'} dstport ${v.port} learning ${v.learning} gbp ${v.gbp} mtu ${d.mtu} mac ${d.mac} up ${d.up}`;
  const neighbours = parseNeighbours(await lab.exec(ns, 'ip', ['-j', '-4', 'neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent']))
    .map((n) => `${formatIpv4(n.ip)} lladdr ${n.mac}`).sort();
  const fdb = parseFdb(await lab.exec(ns, 'bridge', ['-j', 'fdb', 'show', 'dev', 'flannel.1']))
    .map((e) => `${e.mac} dst ${formatIpv4(e.dst)}`).sort();
  return { routes, neighbours, fdb, device };
}

function kernelSuite(backend: KernelBackend, kind: 'etcd' | 'file'): void {
  const skip = e2eSkipReason(['ip', 'bridge', 'ping', 'iperf3', 'curl', 'iptables']) ?? (kind === 'etcd' ? etcdSkipReason() : undefined);
  const netConf = { Network: '10.244.0.0/16', Backend: { Type: backend } };

  describe(`${backend} backend (${kind === 'etcd' ? 'etcd' : 'embedded store'}): three hosts`, { skip }, () => {
    let lab: Lab;
    let store: StoreFixture;
    const agents = new Map<number, LabAgent>();
    const subnets = new Map<number, Ipv4Prefix>();

    const startAgent = (i: number): LabAgent => {
      const agent = new LabAgent(lab, lab.host(i).ns, [
        ...store.agentArgs(), '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH), '--kernel-resync', '1',
      ]);
      agents.set(i, agent);
      return agent;
    };
    const leasedSubnet = async (i: number): Promise<Ipv4Prefix> => {
      const env = await readSubnetEnv((agents.get(i) as LabAgent).subnetFile);
      assert.ok(env !== undefined, `host ${i} wrote no subnet file`);
      return env.subnet;
    };
    /** The VtepMAC host i publishes in its lease. */
    const vtepMac = async (i: number): Promise<string> => {
      const value = (await store.leases()).get(subnetKeyName(subnets.get(i) as Ipv4Prefix));
      assert.ok(value !== undefined, `no lease for host ${i}`);
      const data = decodeLeaseAttrs(value, 'lease').backendData as { VtepMAC?: string };
      assert.ok(typeof data.VtepMAC === 'string', value);
      return data.VtepMAC;
    };
    /** What flanneld programs on host i for the hosts `peers`. */
    const expected = async (i: number, peers: readonly number[]): Promise<KernelView> => {
      const me = lab.host(i);
      if (backend === 'host-gw') {
        return {
          routes: peers.map((j) => `${formatPrefix(subnets.get(j) as Ipv4Prefix)} via ${lab.host(j).underlayIp} dev eth0`).sort(),
          neighbours: [], fdb: [], device: undefined,
        };
      }
      const routes: string[] = [];
      const neighbours: string[] = [];
      const fdb: string[] = [];
      for (const j of peers) {
        const s = subnets.get(j) as Ipv4Prefix;
        const mac = await vtepMac(j);
        routes.push(`${formatPrefix(s)} via ${formatIpv4(s.network)} dev flannel.1 onlink`);
        neighbours.push(`${formatIpv4(s.network)} lladdr ${mac}`);
        fdb.push(`${mac} dst ${lab.host(j).underlayIp}`);
      }
      return {
        routes: routes.sort(), neighbours: neighbours.sort(), fdb: fdb.sort(),
        device: `vxlan id 1 local ${me.underlayIp} dev eth0 dstport 8472 learning false gbp false mtu ${VXLAN_MTU} mac ${await vtepMac(i)} up true`,
      };
    };
    const pingOk = async (from: number, to: number): Promise<boolean> =>
      (await lab.execResult(lab.host(from).podNs as string, 'ping', ['-c', '1', '-W', '2', lab.host(to).podIp], { timeoutMs: 10_000 })).code === 0;

    before(async () => {
      lab = await Lab.create({ hosts: 3, underlay: 'bridge', pods: false });
      store = kind === 'etcd' ? await etcdFixture(lab, netConf) : await fileFixture(lab, netConf);
    });

    after(() => tearDownLab(lab, agents.values(), store));

    test('three agents: pods reach each other across every pair, and a short iperf3 run crosses', async (t) => {
      for (const i of [1, 2, 3]) startAgent(i);
      await Promise.all([1, 2, 3].map((i) => (agents.get(i) as LabAgent).waitReady(20_000)));
      for (const i of [1, 2, 3]) {
        subnets.set(i, await leasedSubnet(i));
        const env = await readSubnetEnv((agents.get(i) as LabAgent).subnetFile);
        assert.equal(env?.mtu, backend === 'vxlan' ? VXLAN_MTU : UNDERLAY_MTU, 'FLANNEL_MTU');
        await lab.addPod(i, formatPrefix(subnets.get(i) as Ipv4Prefix), env?.mtu ?? 0);
      }
      for (const i of [1, 2, 3]) {
        for (const j of [1, 2, 3]) {
          if (i !== j) assert.ok(await eventually(`pod ${i} -> pod ${j}`, async () => ((await pingOk(i, j)) ? true : undefined), 10_000, 200));
        }
      }
      const server = lab.spawn(lab.host(2).podNs as string, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp]);
      await waitForPort(lab, lab.host(2).podNs as string, 5201);
      const out = await lab.exec(lab.host(1).podNs as string, 'iperf3', ['-c', lab.host(2).podIp, '-t', '1', '-J'], { timeoutMs: 20_000 });
      server.kill();
      const received = (JSON.parse(out) as { end: { sum_received: { bytes: number; bits_per_second: number } } }).end.sum_received;
      assert.ok(received.bytes > 1_000_000, `iperf3 moved only ${received.bytes} bytes`);
      t.diagnostic(`${backend}: iperf3 pod 1 -> pod 2, 1 s: ${(received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
    });

    test('the kernel state on every host is what flanneld programs, and the leases are flanneld\'s', async () => {
      for (const i of [1, 2, 3]) {
        const value = (await store.leases()).get(subnetKeyName(subnets.get(i) as Ipv4Prefix));
        const ip = lab.host(i).underlayIp;
        if (backend === 'vxlan') {
          assert.equal(value, `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${await vtepMac(i)}"}}`);
        } else {
          assert.equal(value, `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"host-gw"}`);
        }
        const others = [1, 2, 3].filter((j) => j !== i);
        await eventually(`host ${i}'s kernel state`, async () => {
          const got = await kernelView(lab, lab.host(i).ns);
          return JSON.stringify(got) === JSON.stringify(await expected(i, others)) ? true : undefined;
        }, 5000).catch(async (err: unknown) => {
          assert.deepEqual(await kernelView(lab, lab.host(i).ns), await expected(i, others), String(err));
        });
        if (backend === 'vxlan') {
          const addr = await lab.exec(lab.host(i).ns, 'ip', ['-4', '-br', 'addr', 'show', 'dev', 'flannel.1']);
          assert.match(addr, new RegExp(` ${formatIpv4((subnets.get(i) as Ipv4Prefix).network).replace(/\./g, '\\.')}/32`), addr);
        }
      }
    });

    test('a peer leaving and joining again updates every other host\'s kernel state', async () => {
      const leaver = agents.get(3) as LabAgent;
      const mac = backend === 'vxlan' ? await vtepMac(3) : '';
      assert.equal((await leaver.stop('SIGTERM')).code, 0);
      await store.deleteByHand(subnetKeyName(subnets.get(3) as Ipv4Prefix)); // it leaves for good: its lease goes
      for (const i of [1, 2]) {
        const other = i === 1 ? 2 : 1;
        await eventually(`host ${i} forgets host 3`, async () =>
          JSON.stringify(await kernelView(lab, lab.host(i).ns)) === JSON.stringify(await expected(i, [other])) ? true : undefined, 10_000);
      }
      const joiner = startAgent(3);
      await joiner.waitReady(20_000);
      assert.equal(formatPrefix(await leasedSubnet(3)), formatPrefix(subnets.get(3) as Ipv4Prefix), 'the previous subnet again (subnet.env)');
      if (backend === 'vxlan') assert.equal(await vtepMac(3), mac, 'the same VtepMAC: the device was kept');
      for (const i of [1, 2]) {
        const others = [1, 2, 3].filter((j) => j !== i);
        await eventually(`host ${i} learns host 3 again`, async () =>
          JSON.stringify(await kernelView(lab, lab.host(i).ns)) === JSON.stringify(await expected(i, others)) ? true : undefined, 10_000);
      }
      assert.ok(await eventually('pod 1 -> pod 3', async () => ((await pingOk(1, 3)) ? true : undefined), 10_000, 200));
    });

    test('a deleted route, neighbour, FDB entry (and the vxlan device itself) comes back within the resync period', async () => {
      const ns = lab.host(1).ns;
      const want = await expected(1, [2, 3]);
      const s2 = subnets.get(2) as Ipv4Prefix;
      await lab.exec(ns, 'ip', ['route', 'del', formatPrefix(s2), 'proto', String(WEFT_ROUTE_PROTO)]);
      if (backend === 'vxlan') {
        await lab.exec(ns, 'ip', ['neigh', 'del', formatIpv4(s2.network), 'dev', 'flannel.1']);
        await lab.exec(ns, 'bridge', ['fdb', 'del', await vtepMac(2), 'dev', 'flannel.1', 'dst', lab.host(2).underlayIp, 'self']);
      }
      assert.notDeepEqual(await kernelView(lab, ns), want, 'something was deleted');
      await eventually('host 1\'s kernel state restored', async () =>
        JSON.stringify(await kernelView(lab, ns)) === JSON.stringify(want) ? true : undefined, 5000, 100);
      if (backend === 'vxlan') {
        await lab.exec(ns, 'ip', ['link', 'del', 'flannel.1']);
        await eventually('the vxlan device and its entries restored, with the same MAC', async () =>
          JSON.stringify(await kernelView(lab, ns)) === JSON.stringify(want) ? true : undefined, 8000, 100);
      }
      assert.ok(await eventually('pod 2 -> pod 1 again', async () => ((await pingOk(2, 1)) ? true : undefined), 10_000, 200));
    });

    if (kind === 'file') {
      test('an agent restarted under a continuous ping: no ping lost, same subnet, same VtepMAC', async (t) => {
        const subnetBefore = formatPrefix(await leasedSubnet(1));
        const macBefore = backend === 'vxlan' ? await vtepMac(1) : '';
        // a fixed count (4 s of pings 20 ms apart): ping ends by itself, every request answered or timed out
        const count = 200;
        const ping = lab.spawn(lab.host(2).podNs as string, 'ping', ['-i', '0.02', '-c', String(count), '-W', '1', lab.host(1).podIp]);
        const lines = new LineCollector(ping);
        const done = new Promise<void>((resolve) => ping.once('exit', () => resolve()));
        try {
          await eventually('the first replies', async () => (lines.lines.filter((l) => l.includes('bytes from')).length >= 5 ? true : undefined));
          const old = agents.get(1) as LabAgent;
          assert.equal((await old.stop('SIGTERM')).code, 0, old.log());
          const restarted = startAgent(1);
          await restarted.waitReady(20_000);
          assert.ok(lines.lines.filter((l) => l.includes('bytes from')).length < count, 'the restart happened while ping ran');
        } finally {
          await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
          ping.kill('SIGINT');
        }
        const summary = lines.lines.find((l) => /packets transmitted/.test(l)) ?? '';
        const m = /(\d+) packets transmitted, (\d+) received/.exec(summary);
        assert.ok(m !== null, `no ping summary: ${lines.lines.slice(-3).join(' | ')}`);
        const [sent, got] = [Number(m[1]), Number(m[2])];
        t.diagnostic(`${backend} restart under ping: ${got}/${sent} replies`);
        assert.equal(sent, count);
        assert.equal(got, sent, `lost ${sent - got} of ${sent} pings across the restart: ${summary}`);
        assert.equal(formatPrefix(await leasedSubnet(1)), subnetBefore);
        if (backend === 'vxlan') assert.equal(await vtepMac(1), macBefore);
      });
    }

    test('weft cleanup on every host leaves nothing weft created', async () => {
      for (const i of [1, 2, 3]) {
        const agent = agents.get(i) as LabAgent;
        assert.equal((await agent.stop('SIGTERM')).code, 0, agent.log());
        assert.notDeepEqual(await weftLeftovers(lab, lab.host(i).ns), [], 'a stopped agent leaves its kernel state for the next start');
        await weftCleanup(lab, lab.host(i).ns, agent.stateDir);
        assert.deepEqual(await weftLeftovers(lab, lab.host(i).ns, agent), [], `host ${i}`);
      }
    });
  });
}

kernelSuite('vxlan', 'file');
kernelSuite('host-gw', 'file');
kernelSuite('vxlan', 'etcd');
kernelSuite('host-gw', 'etcd');
