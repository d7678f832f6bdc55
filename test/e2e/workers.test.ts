/**
 * End to end: agents with two data-plane workers. All flows between two hosts
 * share one outer 4-tuple; the reuseport program must still spread single
 * datagrams over the receiving workers by the inner flow, also from a
 * flannel-style peer that sends everything from port 8285.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitForPort } from '../../src/cli/demo';
import { IPPROTO_UDP, writeIpv4Header } from '../../src/encap';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { parseIpv4 } from '../../src/net/ipv4';
import { e2eSkipReason, eventually, LineCollector, scrapeMetrics, tearDownLab, tempDir, type TempDir } from './helpers';

const skip = e2eSkipReason();
const FOREIGN_PEER = path.join(__dirname, 'fixtures', 'foreign-peer.js');
const HEALTH = [9961, 9962];
const FOREIGN_SUBNET = '10.244.9.0/24';
const FOREIGN_POD = '10.244.9.5';

type Metrics = Map<string, number>;
const workerPackets = (m: Metrics, worker: number, from: 'tun_rx' | 'udp_rx'): number =>
  m.get(`weft_worker_packets_total{from="${from}",worker="${worker}"}`) ?? 0;

describe('two workers per agent: flows spread by the inner packet', { skip }, () => {
  let lab: Lab;
  let tmp: TempDir;
  const agents: LabAgent[] = [];

  before(async () => {
    tmp = tempDir('e2e-workers');
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', extraUnderlayNodes: [{ tag: 'f', hostNumber: 9 }] });
    const netConf = tmp.file('net-conf.json', JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } }));
    const [h1, h2] = [lab.host(1), lab.host(2)];
    agents.push(new LabAgent(lab, h1.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h1.podSubnet,
      '--peer', `${h2.podSubnet}=${h2.underlayIp}`, '--peer', `${FOREIGN_SUBNET}=${lab.extraNodes.get('f')?.ip}`,
      '--workers=2', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[0])]));
    agents.push(new LabAgent(lab, h2.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h2.podSubnet,
      '--peer', `${h1.podSubnet}=${h1.underlayIp}`,
      '--workers=2', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[1])]));
    await Promise.all(agents.map((a) => a.waitReady()));
  });

  after(async () => {
    await tearDownLab(lab, agents);
    tmp?.remove();
  });

  const scrape = (i: number): Promise<Metrics> => scrapeMetrics(lab, lab.host(i + 1).ns, HEALTH[i] as number);

  test('the agents say they spread flows; pods talk both ways; 16 TCP streams use both workers on each side', async () => {
    for (const a of agents) assert.ok(a.records.some((r) => r.msg.startsWith('received flows spread over the workers')), a.log());
    const [pod1, pod2] = [lab.host(1).podNs as string, lab.host(2).podNs as string];
    assert.match(await lab.exec(pod1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', lab.host(2).podIp], { timeoutMs: 15_000 }), / 0% packet loss/);
    assert.match(await lab.exec(pod2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', lab.host(1).podIp], { timeoutMs: 15_000 }), / 0% packet loss/);
    const before = await scrape(0);
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp]);
    try {
      await waitForPort(lab, pod2, 5201);
      const out = await lab.exec(pod1, 'iperf3', ['-c', lab.host(2).podIp, '-t', '3', '-P', '16', '-J'], { timeoutMs: 30_000 });
      const r = JSON.parse(out) as { end: { sum_received: { bytes: number } } };
      assert.ok(r.end.sum_received.bytes > 1_000_000, `only ${r.end.sum_received.bytes} bytes`);
    } finally {
      server.kill();
    }
    // host 1: the multi-queue TUN hands the streams to both workers, and the streams' ACKs, single
    // datagrams from host 2, are spread over both by the inner flow. (The data itself reaches host 2
    // as UDP_SEGMENT trains, which this kernel hands to a reuseport group by the outer 4-tuple.)
    const afterM = await scrape(0);
    for (const w of [0, 1]) {
      const read = workerPackets(afterM, w, 'tun_rx') - workerPackets(before, w, 'tun_rx');
      const acks = workerPackets(afterM, w, 'udp_rx') - workerPackets(before, w, 'udp_rx');
      assert.ok(read > 100, `host 1's worker ${w} read ${read} packets of 16 TCP streams from the TUN`);
      assert.ok(acks > 100, `host 1's worker ${w} received ${acks} datagrams of the streams' ACKs`);
    }
  });

  test('a flannel-style peer sending every flow from port 8285 still reaches both workers, and every packet is delivered', async () => {
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    // 64 UDP flows (source ports 20000..20063) from the foreign pod to pod 1, one datagram each
    const datagrams = Array.from({ length: 64 }, (_, i) => {
      const b = Buffer.alloc(20 + 8 + 8);
      writeIpv4Header(b, 0, { totalLength: b.length, id: i, flagsFragment: 0x4000, ttl: 64, protocol: IPPROTO_UDP,
        src: parseIpv4(FOREIGN_POD) as number, dst: parseIpv4(lab.host(1).podIp) as number });
      b.writeUInt16BE(20000 + i, 20);
      b.writeUInt16BE(9999, 22);
      b.writeUInt16BE(16, 24);
      b.writeUInt16BE(0, 26); // no inner UDP checksum: allowed for IPv4
      return b.toString('hex');
    });
    const before = await scrape(0);
    const peer = lab.spawn(foreign.ns, process.execPath, [FOREIGN_PEER, foreign.ip, 'malformed', JSON.stringify({
      agent: lab.host(1).underlayIp, datagrams, listenMs: 300,
    })]);
    const events = new LineCollector(peer);
    try {
      await eventually('foreign peer done', async () => events.json<{ event: string }>().find((e) => e.event === 'done'), 15_000);
    } finally {
      peer.kill();
    }
    const m = await eventually('all 64 counted', async () => {
      const now = await scrape(0);
      const n = (now.get('weft_udp_rx_packets_total') ?? 0) - (before.get('weft_udp_rx_packets_total') ?? 0);
      return n >= 64 ? now : undefined;
    }, 10_000, 200);
    assert.equal((m.get('weft_tun_tx_packets_total') ?? 0) - (before.get('weft_tun_tx_packets_total') ?? 0), 64, 'every datagram delivered');
    const perWorker = [0, 1].map((w) => workerPackets(m, w, 'udp_rx') - workerPackets(before, w, 'udp_rx'));
    assert.equal(perWorker[0] + perWorker[1], 64);
    assert.ok(perWorker.every((n) => n > 0), `64 flows from one outer 4-tuple went ${perWorker.join(' / ')} to the two workers`);
  });
});
