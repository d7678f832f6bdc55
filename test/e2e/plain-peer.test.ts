/**
 * End to end: a peer that does not use offloads (a plain flannel udp peer)
 * must still get one IP packet per datagram with valid checksums.
 *
 * Hosts 1 and 2 run weft with every offload on (TUN TSO super-packets split
 * in userspace, UDP_SEGMENT sends, UDP_GRO receives, coalesced TUN writes),
 * but each host's route to the other's pod subnet points at a third underlay
 * node, `relay`: a plain node:dgram socket on port 8285 that checks every
 * datagram (exactly one IPv4 packet of at most the overlay MTU, valid IP and
 * TCP/UDP/ICMP checksums) and forwards it unchanged to the other host. All
 * traffic between the pods crosses it. The same with the kernel fast path,
 * which must send such a peer only whole packets; and with the fast path
 * told the relay takes super-packets, on an underlay that segments them
 * (no checksum offload, as a NIC without it): what the kernel's UDP-tunnel
 * segmentation puts on the wire must be as valid.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitForPort } from '../../src/cli/demo';
import { ENCAP_OVERHEAD_BYTES } from '../../src/encap';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import {
  e2eSkipReason, eventually, leftoverNamespaces, leftoverProcesses, LineCollector, scrapeMetrics, tempDir, type TempDir,
} from './helpers';
import type { ChildProcess } from 'node:child_process';

const skip = e2eSkipReason();
const RELAY = path.join(__dirname, 'fixtures', 'plain-relay.js');
const H1_HEALTH = 9921;
const H2_HEALTH = 9922;
const UNDERLAY_MTU = 1500;
const OVERLAY_MTU = UNDERLAY_MTU - ENCAP_OVERHEAD_BYTES; // 1472

interface RelayCounts {
  event: 'counts';
  final: boolean;
  datagrams: number;
  bytes: number;
  forwarded: { aToB: number; bToA: number };
  byProtocol: Record<string, number>;
  maxLength: number;
  fullSize: number;
  udpWithoutChecksum: number;
  unknownSource: number;
  sendErrors: number;
  violations: Record<string, number>;
  examples: Record<string, string>;
}

interface IperfResult {
  end: { sum_received: { bytes: number; bits_per_second: number }; sum_sent: { bytes: number; retransmits?: number } };
}

const metric = (m: Map<string, number>, name: string): number => m.get(name) ?? 0;

interface Variant {
  readonly label: string;
  readonly flags: readonly string[];
  /**
   * The agents take the relay for a fast-path peer (--fast-path-static-peers), so the kernel sends it TCP
   * super-packets whole, on an underlay without transmit checksum offload (`ethtool -K eth0 tx off`, a NIC
   * without it): the kernel's UDP-tunnel segmentation must cut each into valid datagrams before the wire.
   */
  readonly segmenting?: boolean;
}

/**
 * Userspace only; with the kernel fast path on both agents (the relay runs none: they must send it whole
 * packets); and with the fast path sending it super-packets across an underlay that segments them.
 */
const VARIANTS: readonly Variant[] = [
  { label: 'userspace path', flags: [] },
  { label: 'kernel fast path on', flags: ['--fast-path', 'bpf'] },
  {
    label: 'kernel fast path sending super-packets, segmented by the sender\'s kernel',
    flags: ['--fast-path', 'bpf', '--fast-path-static-peers'], segmenting: true,
  },
];

for (const { label, flags, segmenting = false } of VARIANTS) {
const fastPath = flags.includes('bpf');
describe(`a plain (offload-free) flannel udp peer between two offloading agents (${label})`,
  { skip: segmenting ? e2eSkipReason(['ip', 'ping', 'iperf3', 'curl', 'ethtool']) : skip }, () => {
  let lab: Lab;
  let tmp: TempDir;
  let relay: ChildProcess;
  let relayOut: LineCollector;
  let relayIp: string;
  let relayNs: string;
  let pod1: string;
  let pod2: string;

  before(async () => {
    tmp = tempDir('e2e-plain');
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', underlayMtu: UNDERLAY_MTU, extraUnderlayNodes: [{ tag: 'relay', hostNumber: 9 }] });
    const node = lab.extraNodes.get('relay');
    assert.ok(node !== undefined);
    relayIp = node.ip;
    relayNs = node.ns;
    const [h1, h2] = [lab.host(1), lab.host(2)];
    pod1 = h1.podNs as string;
    pod2 = h2.podNs as string;
    relay = lab.spawn(node.ns, process.execPath, [RELAY, relayIp, JSON.stringify({ a: h1.underlayIp, b: h2.underlayIp, mtu: OVERLAY_MTU })]);
    relayOut = new LineCollector(relay);
    await eventually('the relay listening', async () => relayOut.json<{ event: string }>().find((e) => e.event === 'listening'));
    if (segmenting) {
      // no transmit checksum offload, so no GSO either: the kernel segments and checksums before the veth
      for (const h of [h1, h2]) await lab.exec(h.ns, 'ethtool', ['-K', 'eth0', 'tx', 'off']);
    }
    const netConf = tmp.file('net-conf.json', JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp', Port: 8285 } }));
    // offloads are on by default; each host reaches the other only through the relay
    const agent = (ns: string, subnet: string, peerSubnet: string, port: number): LabAgent => new LabAgent(lab, ns, [
      '--net-config-path', netConf, '--iface', 'eth0', '--subnet', subnet, '--peer', `${peerSubnet}=${relayIp}`,
      '--healthz-ip', '127.0.0.1', '--healthz-port', String(port), ...flags,
    ]);
    const a1 = agent(h1.ns, h1.podSubnet, h2.podSubnet, H1_HEALTH);
    const a2 = agent(h2.ns, h2.podSubnet, h1.podSubnet, H2_HEALTH);
    await Promise.all([a1.waitReady(), a2.waitReady()]);
    for (const a of [a1, a2]) {
      // the agents really run with the offloads whose output the relay is to check
      const rec = a.records.find((r) => r.msg === 'offloads');
      const inEffect = rec?.['inEffect'] as { vnetHdr?: boolean; udpGso?: boolean; udpGro?: boolean; groFlags?: number } | undefined;
      assert.ok(inEffect !== undefined, `no "offloads" record:\n${a.log()}`);
      assert.equal(inEffect.vnetHdr, true, 'TUN offload (TSO super-packets) in effect');
      assert.equal(inEffect.udpGso, true, 'UDP_SEGMENT in effect');
      // with the fast path UDP_GRO is off (the kernel decapsulates one datagram at a time)
      assert.equal(inEffect.udpGro, !fastPath, 'UDP_GRO in effect without the fast path');
      assert.ok((inEffect.groFlags ?? 0) !== 0, 'TUN coalescing in effect');
    }
  });

  after(async () => {
    const prefix = lab?.prefix;
    await lab?.destroy();
    tmp?.remove();
    if (prefix !== undefined) {
      assert.deepEqual(await leftoverNamespaces(prefix), [], 'namespaces left behind');
      assert.deepEqual(leftoverProcesses(lab), [], 'processes left behind');
    }
  });

  test('pods ping each other through the relay, small and full-MTU packets', async () => {
    const there = await lab.exec(pod1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', lab.host(2).podIp], { timeoutMs: 15_000 });
    assert.match(there, /3 packets transmitted, 3 received/);
    const back = await lab.exec(pod2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(OVERLAY_MTU - 28), lab.host(1).podIp], { timeoutMs: 15_000 });
    assert.match(back, /3 packets transmitted, 3 received/);
    const counts = relayOut.json<RelayCounts>().filter((e) => e.event === 'counts');
    assert.ok(counts.length > 0, 'the relay reports its counts');
  });

  const iperf = async (fromPod: string, toIndex: number, senderNs: string, senderHealth: number):
    Promise<{ r: IperfResult; split: { tunRx: number; udpTx: number; superPackets: number } }> => {
    const server = lab.spawn(lab.host(toIndex).podNs as string, 'iperf3', ['-s', '-1', '-B', lab.host(toIndex).podIp]);
    try {
      await waitForPort(lab, lab.host(toIndex).podNs as string, 5201);
      const before = await scrapeMetrics(lab, senderNs, senderHealth);
      const out = await lab.exec(fromPod, 'iperf3', ['-c', lab.host(toIndex).podIp, '-t', '3', '-J'], { timeoutMs: 30_000 });
      const afterM = await scrapeMetrics(lab, senderNs, senderHealth);
      const delta = (name: string): number => metric(afterM, name) - metric(before, name);
      return {
        r: JSON.parse(out) as IperfResult,
        split: {
          tunRx: delta('weft_tun_rx_packets_total'), udpTx: delta('weft_udp_tx_packets_total'),
          superPackets: delta('weft_fast_path_super_packets_total'),
        },
      };
    } finally {
      server.kill();
      if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
    }
  };

  for (const [from, to] of [[1, 2], [2, 1]] as const) {
    const what = segmenting ? 'the kernel sends TCP super-packets, which its UDP-tunnel segmentation cuts' : 'reads TSO super-packets and splits them';
    test(`iperf3 TCP 3 s pod ${from} -> pod ${to}: host ${from} ${what}`, async (t) => {
      const { r, split } = await iperf(lab.host(from).podNs as string, to, lab.host(from).ns, from === 1 ? H1_HEALTH : H2_HEALTH);
      t.diagnostic(`pod${from} -> pod${to} via the relay: ${(r.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s, `
        + `${r.end.sum_received.bytes} bytes; host ${from} read ${split.tunRx} packets from the TUN, sent ${split.udpTx} datagrams, `
        + `${split.superPackets} super-packets encapsulated in the kernel`);
      assert.ok(r.end.sum_received.bytes > 1_000_000, `only ${r.end.sum_received.bytes} bytes received`);
      if (segmenting) {
        assert.ok(split.superPackets > 100, `only ${split.superPackets} super-packets left host ${from} through the kernel`);
      } else {
        // large segments: several datagrams per TUN read on average
        assert.ok(split.udpTx > 3 * split.tunRx, `udp_tx_packets ${split.udpTx} is not well above tun_rx_packets ${split.tunRx}: no super-packets were split`);
      }
    });
  }

  test('the relay saw one valid IPv4 packet per datagram, never more than the MTU', async (t) => {
    const exit = once(relay, 'exit');
    relay.kill('SIGTERM');
    await exit;
    const final = relayOut.json<RelayCounts>().find((e) => e.event === 'counts' && e.final);
    assert.ok(final !== undefined, `the relay printed no final counts:\n${relayOut.lines.join('\n')}`);
    const { examples, ...summary } = final;
    t.diagnostic(`relay counts: ${JSON.stringify(summary)}`);
    assert.deepEqual(final.violations, {}, `violations (first offenders: ${JSON.stringify(examples)})`);
    assert.ok(final.datagrams > 10_000, `only ${final.datagrams} datagrams crossed the relay`);
    assert.equal(final.unknownSource, 0, 'only the two hosts send to the relay');
    assert.equal(final.forwarded.aToB + final.forwarded.bToA, final.datagrams);
    assert.ok(final.forwarded.aToB > 1000 && final.forwarded.bToA > 1000, 'traffic crossed in both directions');
    assert.ok(final.maxLength <= OVERLAY_MTU);
    assert.ok(final.fullSize > 1000, `only ${final.fullSize} full-MTU datagrams: the split segments should fill the MTU`);
    assert.ok((final.byProtocol['6'] ?? 0) > 10_000, 'TCP');
    assert.ok((final.byProtocol['1'] ?? 0) >= 12, 'ICMP echo requests and replies');
    // the relay's kernel checked every outer UDP checksum that was not zero (zero: none sent, as vxlan's default)
    const snmp = (await lab.exec(relayNs, 'cat', ['/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
    const csumErrors = Number(values?.[names?.indexOf('InCsumErrors') ?? -1]);
    assert.equal(csumErrors, 0, `outer UDP checksum errors at the relay: ${snmp.join(' / ')}`);
  });

  if (fastPath && !segmenting) {
    test('with the fast path, the agents decapsulated the relay\'s datagrams in the kernel and left sending to it to userspace', async () => {
      for (const [ns, port] of [[lab.host(1).ns, H1_HEALTH], [lab.host(2).ns, H2_HEALTH]] as const) {
        const m = await scrapeMetrics(lab, ns, port);
        assert.ok(metric(m, 'weft_fast_path_packets_total{direction="decap"}') > 1000, `${ns}: decapsulated in the kernel`);
        assert.ok(metric(m, 'weft_fast_path_passed_packets_total{direction="encap",reason="plain_peer"}') > 1000, `${ns}: sent through userspace`);
        assert.equal(metric(m, 'weft_fast_path_packets_total{direction="encap"}'), 0, `${ns}: nothing encapsulated in the kernel for a plain peer`);
      }
    });
  }
  if (segmenting) {
    test('both directions crossed in the kernel: encapsulated by one agent, decapsulated by the other', async () => {
      for (const [ns, port] of [[lab.host(1).ns, H1_HEALTH], [lab.host(2).ns, H2_HEALTH]] as const) {
        const m = await scrapeMetrics(lab, ns, port);
        assert.ok(metric(m, 'weft_fast_path_packets_total{direction="encap"}') > 1000, `${ns}: encapsulated in the kernel`);
        assert.ok(metric(m, 'weft_fast_path_packets_total{direction="decap"}') > 1000, `${ns}: decapsulated in the kernel`);
        assert.equal(metric(m, 'weft_fast_path_errors_total'), 0, `${ns}: no helper failed`);
      }
    });
  }
});
}
