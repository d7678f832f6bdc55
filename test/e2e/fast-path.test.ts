/**
 * End to end: the kernel fast path (--fast-path bpf). Two weft hosts with a
 * real etcd, each lease saying its host decapsulates in the kernel; pods
 * behind them. Checks that the kernel carries the traffic (super-packets
 * whole), that what it cannot decide still takes the userspace path, and
 * that nothing stays attached after a stop, while a killed agent's decap
 * filter is replaced or removed by the next start.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { addPodInLease, e2eSkipReason, eventually, scrapeMetrics, tearDownLab } from './helpers';
import { etcdFixture, type StoreFixture } from './store-fixture';

const skip = e2eSkipReason(['ip', 'ping', 'iperf3', 'curl', 'tc']) ?? etcdSkipReason();
const HEALTH = [9961, 9962];
const ROUTES_FIXTURE = path.join(__dirname, 'fixtures', 'fast-path-routes.js');

type Metrics = Map<string, number>;
const fp = (m: Metrics, name: string, labels = ''): number => m.get(`weft_fast_path_${name}${labels}`) ?? 0;

interface IperfResult {
  end: { sum_received: { bytes: number }; sum_sent: { retransmits?: number } };
}

describe('the kernel fast path: tc-BPF encap and decap between two weft hosts', { skip }, () => {
  let lab: Lab;
  let store: StoreFixture;
  const agents: LabAgent[] = [];

  const agentArgs = (i: number, fast: boolean): string[] => [
    ...store.agentArgs(), '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[i]),
    ...(fast ? ['--fast-path', 'bpf'] : []),
  ];
  const scrape = (i: number): Promise<Metrics> => scrapeMetrics(lab, lab.host(i + 1).ns, HEALTH[i] as number);
  /** tc's view of a device's clsact hook (`ingress` or `egress`): the filter lines. */
  const filters = async (ns: string, dev: string, hook: string): Promise<string> =>
    (await lab.execResult(ns, 'tc', ['filter', 'show', 'dev', dev, hook])).stdout.trim();
  const pingOk = async (from: number, to: number): Promise<boolean> =>
    (await lab.execResult(lab.host(from).podNs as string, 'ping', ['-c', '1', '-W', '1', lab.host(to).podIp])).code === 0;

  before(async () => {
    lab = await Lab.create({ hosts: 2, pods: false, underlay: 'bridge' });
    store = await etcdFixture(lab, { Network: LAB_NETWORK, Backend: { Type: 'udp' } });
    for (const h of lab.hosts) agents.push(new LabAgent(lab, h.ns, agentArgs(h.index - 1, true)));
    for (const [i, agent] of agents.entries()) {
      await agent.waitReady(30_000);
      await addPodInLease(lab, i + 1, agent);
    }
    await eventually('pods talk both ways', async () => ((await pingOk(1, 2)) && (await pingOk(2, 1)) ? true : undefined), 15_000, 200);
  });

  after(async () => {
    await tearDownLab(lab, agents, store);
  });

  test('each lease says its host decapsulates in the kernel; decap is on the underlay, encap on the TUN', async () => {
    const leases = await store.leases();
    assert.equal(leases.size, 2);
    for (const value of leases.values()) {
      const lease = JSON.parse(value) as { BackendType?: string; BackendData?: { FastPath?: string } };
      assert.equal(lease.BackendType, undefined, 'still flanneld\'s udp lease: no BackendType');
      assert.equal(lease.BackendData?.FastPath, 'bpf', value);
    }
    for (const [i, agent] of agents.entries()) {
      assert.ok(agent.records.some((r) => r.msg === 'kernel fast path: encapsulation attached to the TUN'), agent.log());
      const ns = lab.host(i + 1).ns;
      assert.match(await filters(ns, 'eth0', 'ingress'), /weft_decap/);
      assert.match(await filters(ns, 'flannel.0', 'egress'), /weft_encap/);
    }
  });

  test('pings cross in the kernel both ways: encapsulated by one host, decapsulated by the other', async () => {
    const before = await Promise.all([scrape(0), scrape(1)]);
    for (const [from, to] of [[1, 2], [2, 1]] as const) {
      const out = await lab.exec(lab.host(from).podNs as string, 'ping', ['-c', '10', '-i', '0.05', '-W', '2', lab.host(to).podIp], { timeoutMs: 20_000 });
      assert.match(out, /10 packets transmitted, 10 received/);
    }
    const now = await Promise.all([scrape(0), scrape(1)]);
    for (const i of [0, 1]) {
      const d = (name: string, labels: string): number => fp(now[i] as Metrics, name, labels) - fp(before[i] as Metrics, name, labels);
      // 10 requests out and 10 replies out per host (ICMP through the kernel, no userspace decision)
      assert.ok(d('packets_total', '{direction="encap"}') >= 20, `host ${i + 1} encapsulated ${d('packets_total', '{direction="encap"}')}`);
      assert.ok(d('packets_total', '{direction="decap"}') >= 20, `host ${i + 1} decapsulated ${d('packets_total', '{direction="decap"}')}`);
      assert.equal(fp(now[i] as Metrics, 'errors_total'), 0);
      assert.equal(fp(now[i] as Metrics, 'enabled'), 1);
    }
  });

  test('iperf3 TCP 3 s: super-packets cross whole (sent by the kernel, written whole by the peer\'s workers), the rest in the kernel', async (t) => {
    const [pod1, pod2] = [lab.host(1).podNs as string, lab.host(2).podNs as string];
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp, '-p', '5201']);
    try {
      await eventually('iperf3 listening', async () => {
        const r = await lab.execResult(pod2, 'ss', ['-ltn']);
        return r.stdout.includes(':5201') ? true : undefined;
      });
      const before = await Promise.all([scrape(0), scrape(1)]);
      const out = await lab.exec(pod1, 'iperf3', ['-c', lab.host(2).podIp, '-p', '5201', '-t', '3', '-J'], { timeoutMs: 30_000 });
      const result = JSON.parse(out) as IperfResult;
      const now = await Promise.all([scrape(0), scrape(1)]);
      const d = (i: number, name: string): number => (now[i]?.get(name) ?? 0) - (before[i]?.get(name) ?? 0);
      const superPackets = d(0, 'weft_fast_path_super_packets_total');
      const encap = d(0, 'weft_fast_path_packets_total{direction="encap"}');
      const decap = d(1, 'weft_fast_path_packets_total{direction="decap"}');
      const leftToWorkers = d(1, 'weft_fast_path_passed_packets_total{direction="decap",reason="super_packet"}');
      const wroteWhole = d(1, 'weft_udp_rx_super_packets_total');
      const userspaceSent = d(0, 'weft_udp_tx_packets_total');
      t.diagnostic(`received ${result.end.sum_received.bytes} B, retransmits ${result.end.sum_sent.retransmits ?? '?'}; ` +
        `host 1 encapsulated ${encap} (super ${superPackets}); host 2 decapsulated ${decap} in the kernel, left ${leftToWorkers} ` +
        `to its workers, which wrote ${wroteWhole} super-packets whole; host 1's workers sent ${userspaceSent}`);
      assert.ok(result.end.sum_received.bytes > 10_000_000, 'more than 10 MB arrived');
      assert.ok(superPackets > 100, `${superPackets} super-packets`);
      // on a veth underlay nothing segments: every super-packet arrives whole; the receiving kernel leaves it (and the rest of its
      // flow for a moment) to the workers, which write it as one GSO write; everything else it decapsulates itself
      assert.ok(decap + leftToWorkers >= encap * 0.99, `${decap} + ${leftToWorkers} of ${encap} accounted for`);
      assert.ok(wroteWhole >= superPackets * 0.95, `host 2's workers wrote ${wroteWhole} of ${superPackets} super-packets whole`);
      assert.equal(d(1, 'weft_dropped_packets_total{direction="decap",reason="bad_super_packet"}'), 0);
      assert.ok(userspaceSent < encap / 100, `host 1's workers sent ${userspaceSent} datagrams beside ${encap} from the kernel`);
    } finally {
      server.kill('SIGKILL');
    }
  });

  test('SIGTERM removes both programs and the clsact qdisc it added to the underlay', async () => {
    const ns = lab.host(1).ns;
    await (agents[0] as LabAgent).stop('SIGTERM');
    assert.equal(await filters(ns, 'eth0', 'ingress'), '');
    const qdiscs = (await lab.exec(ns, 'tc', ['qdisc', 'show', 'dev', 'eth0'])).trim();
    assert.doesNotMatch(qdiscs, /clsact/, qdiscs);
    agents[0] = new LabAgent(lab, ns, agentArgs(0, true));
    await (agents[0] as LabAgent).waitReady(30_000);
    await eventually('pods talk again', async () => ((await pingOk(1, 2)) ? true : undefined), 15_000, 200);
  });

  test('after SIGKILL, a restart with the fast path replaces the decap filter, one without removes it', async () => {
    const ns = lab.host(2).ns;
    await (agents[1] as LabAgent).stop('SIGKILL');
    assert.match(await filters(ns, 'eth0', 'ingress'), /weft_decap/, 'a killed agent cannot detach: its filter stays');

    agents[1] = new LabAgent(lab, ns, agentArgs(1, true));
    await (agents[1] as LabAgent).waitReady(30_000);
    const lines = (await filters(ns, 'eth0', 'ingress')).split('\n').filter((l) => l.includes('weft_decap'));
    assert.equal(lines.length, 1, 'replaced, not added beside the old one');
    await eventually('pods talk again', async () => ((await pingOk(2, 1)) ? true : undefined), 15_000, 200);

    await (agents[1] as LabAgent).stop('SIGKILL');
    agents[1] = new LabAgent(lab, ns, agentArgs(1, false));
    await (agents[1] as LabAgent).waitReady(30_000);
    assert.ok((agents[1] as LabAgent).records.some((r) => r.msg === 'removed the kernel fast path a previous weft left on the underlay'), (agents[1] as LabAgent).log());
    assert.equal(await filters(ns, 'eth0', 'ingress'), '');
    // host 2's lease no longer says fast path: host 1 sends it plain datagrams again, through userspace
    await eventually('host 1 sees host 2 without the fast path, and pods talk', async () => ((await pingOk(1, 2)) && (await pingOk(2, 1)) ? true : undefined), 15_000, 200);
    const m = await scrape(0);
    assert.ok(fp(m, 'passed_packets_total', '{direction="encap",reason="plain_peer"}') > 0, 'host 1 left packets for host 2 to userspace');
  });
});

/**
 * A peer declared a fast-path host that is not one (static mode,
 * --fast-path-static-peers on host 1 only): host 1's kernel sends host 2
 * TCP super-packets, which nothing segments on a veth underlay; host 2's
 * userspace workers take each whole (its socket filter lets through a
 * datagram without a checksum only when it is longer than a wire packet)
 * and write it to the TUN as one GSO write, after checking its TCP checksum.
 */
describe('a weft host without the fast path takes the super-packets a fast-path peer sends it', { skip }, () => {
  let lab: Lab;
  const agents: LabAgent[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: 2, underlay: 'bridge' });
    const netConf = path.join(lab.dir, 'net-conf.json');
    writeFileSync(netConf, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } }));
    const [h1, h2] = [lab.host(1), lab.host(2)];
    agents.push(new LabAgent(lab, h1.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h1.podSubnet,
      '--peer', `${h2.podSubnet}=${h2.underlayIp}`, '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[0]),
      '--fast-path', 'bpf', '--fast-path-static-peers']));
    agents.push(new LabAgent(lab, h2.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h2.podSubnet,
      '--peer', `${h1.podSubnet}=${h1.underlayIp}`, '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[1])]));
    await Promise.all(agents.map((a) => a.waitReady()));
  });

  after(async () => {
    await tearDownLab(lab, agents);
  });

  test('iperf3 TCP 3 s host 1 -> host 2: every super-packet arrives, is checked and written whole; none is refused', async (t) => {
    const [pod1, pod2] = [lab.host(1).podNs as string, lab.host(2).podNs as string];
    await eventually('pods talk', async () => {
      const r = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '1', lab.host(2).podIp]);
      return r.code === 0 ? true : undefined;
    }, 15_000, 200);
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp, '-p', '5202']);
    try {
      await eventually('iperf3 listening', async () => ((await lab.execResult(pod2, 'ss', ['-ltn'])).stdout.includes(':5202') ? true : undefined));
      const out = await lab.exec(pod1, 'iperf3', ['-c', lab.host(2).podIp, '-p', '5202', '-t', '3', '-J'], { timeoutMs: 30_000 });
      const result = JSON.parse(out) as IperfResult;
      const [m1, m2] = [await scrapeMetrics(lab, lab.host(1).ns, HEALTH[0] as number), await scrapeMetrics(lab, lab.host(2).ns, HEALTH[1] as number)];
      const sent = fp(m1, 'super_packets_total');
      const taken = m2.get('weft_udp_rx_super_packets_total') ?? 0;
      const refused = m2.get('weft_dropped_packets_total{direction="decap",reason="bad_super_packet"}') ?? 0;
      t.diagnostic(`received ${result.end.sum_received.bytes} B, retransmits ${result.end.sum_sent.retransmits ?? '?'}; ` +
        `host 1 sent ${sent} super-packets, host 2 wrote ${taken} whole, refused ${refused}; socket drops ${m2.get('weft_udp_socket_drops_total') ?? 0}`);
      assert.ok(result.end.sum_received.bytes > 10_000_000, 'more than 10 MB arrived');
      assert.ok(sent > 100, `host 1 sent ${sent} super-packets`);
      // a few may be lost to a full socket buffer (TCP sends them again): counted apart, in weft_udp_socket_drops_total
      assert.ok(taken >= sent * 0.95, `host 2 wrote ${taken} of ${sent} whole`);
      assert.equal(refused, 0);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('the fast path\'s route map follows each route set exactly', { skip: e2eSkipReason(['ip']) }, () => {
  const ns = `weft-fpr-${randomBytes(4).toString('hex')}`;
  before(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });
  after(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });

  test('updates every wanted route and deletes exactly the others, by network and length, for a few and for thousands', () => {
    const net = (a: number, b: number): number => ((10 << 24) | (244 << 16) | (a << 8) | b) >>> 0;
    const many = (from: number, n: number): Array<[number, number]> =>
      Array.from({ length: n }, (_, i): [number, number] => [((10 << 24) | ((from + i) << 8)) >>> 0, 24]);
    const sets: Array<Array<[number, number]>> = [
      [[net(1, 0), 24], [net(2, 0), 24], [net(3, 0), 24]], // 3 written
      [[net(2, 0), 24]], // 1 written, 2 deleted
      [[net(2, 0), 24], [net(2, 0), 25]], // same network, another length: 2 written, none deleted
      [[net(2, 0), 25]], // 1 written, the /24 deleted
      many(0, 3000), // 3,000 written, the /25 deleted
      many(1000, 3000), // 3,000 written, the first 1,000 deleted
      [], // 3,000 deleted
    ];
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, ROUTES_FIXTURE, JSON.stringify(sets)], { encoding: 'utf8', timeout: 60_000 });
    const { changes } = JSON.parse(out) as { changes: number[] };
    assert.deepEqual(changes, [3, 3, 2, 2, 3001, 4000, 3000]);
  });
});
