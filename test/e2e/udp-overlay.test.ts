/**
 * End to end: two hosts (plus a foreign flannel udp peer) on a bridged
 * underlay in network namespaces, a pod behind each host, a real weft agent
 * per host. Everything crosses real TUN devices and real UDP sockets.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitForPort } from '../../src/cli/demo';
import {
  buildIcmpEcho, icmpChecksumOk, ICMP_ECHO_REQUEST, ipv4HeaderChecksumOk, parseIpv4Header, writeIpv4HeaderChecksum,
} from '../../src/encap';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { parseIpv4 } from '../../src/net/ipv4';
import {
  dropCount, e2eSkipReason, eventually, leftoverNamespaces, leftoverProcesses, LineCollector, scrapeMetrics,
  tempDir, type TempDir, weftCleanup, weftLeftovers,
} from './helpers';

const skip = e2eSkipReason();
const FOREIGN_PEER = path.join(__dirname, 'fixtures', 'foreign-peer.js');
const H1_HEALTH = 9911;
const H2_HEALTH = 9912;
const FOREIGN_SUBNET = '10.244.9.0/24';
const FOREIGN_POD = '10.244.9.5';

interface PeerEvent {
  event: string;
  from?: string;
  hex?: string;
  length?: number;
  src?: string | null;
  dst?: string | null;
  protocol?: number | null;
}

/**
 * The suite runs with the agent's defaults (every offload on), with every
 * offload off, and with the kernel fast path: host 1 (whose peers include the
 * foreign flannel peer) decapsulates in the kernel and sends through
 * userspace, host 2 declares its one peer, host 1, a fast-path host and
 * encapsulates in the kernel too.
 */
const OFFLOADS_OFF = ['--tun-offload=false', '--udp-gso=false', '--udp-gro=false', '--tun-coalesce=false', '--tun-coalesce-udp=false'];
const VARIANTS: ReadonlyArray<{ label: string; flags: readonly string[]; h2Flags: readonly string[]; offloads: object }> = [
  { label: 'offloads on', flags: [], h2Flags: [], offloads: { vnetHdr: true, udpGso: true, udpGro: true, groFlags: 7, packRuns: false } },
  { label: 'offloads off', flags: OFFLOADS_OFF, h2Flags: [], offloads: { vnetHdr: false, udpGso: false, udpGro: false, groFlags: 0, packRuns: false } },
  // with the fast path, UDP_GRO is off: the kernel's decap takes datagrams one by one
  {
    label: 'kernel fast path', flags: ['--fast-path', 'bpf'], h2Flags: ['--fast-path-static-peers'],
    offloads: { vnetHdr: true, udpGso: true, udpGro: false, groFlags: 7, packRuns: false },
  },
];

for (const { label, flags: offloadFlags, h2Flags, offloads } of VARIANTS) {
describe(`udp overlay (${label}): two hosts and a foreign flannel peer`, { skip }, () => {
  let lab: Lab;
  let tmp: TempDir;
  let a1: LabAgent;
  let a2: LabAgent;
  let h1PeersFile: string;
  let pod1: string;
  let pod2: string;
  let netConfPath: string;

  before(async () => {
    tmp = tempDir('e2e-udp');
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', extraUnderlayNodes: [{ tag: 'f', hostNumber: 9 }] });
    const netConf = tmp.file('net-conf.json', JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp', Port: 8285 } }));
    netConfPath = netConf;
    const [h1, h2] = [lab.host(1), lab.host(2)];
    pod1 = h1.podNs as string;
    pod2 = h2.podNs as string;
    // host 1 takes host 2's route from a peers file (changed at run time below), the foreign peer from a flag
    h1PeersFile = tmp.file('h1-peers', `${h2.podSubnet}=${h2.underlayIp}\n`);
    a1 = new LabAgent(lab, h1.ns, [
      '--net-config-path', netConf, '--iface', 'eth0', '--subnet', h1.podSubnet,
      '--peers-file', h1PeersFile, '--peer', `${FOREIGN_SUBNET}=${lab.extraNodes.get('f')?.ip}`,
      '--healthz-ip', '127.0.0.1', '--healthz-port', String(H1_HEALTH), ...offloadFlags,
    ]);
    a2 = new LabAgent(lab, h2.ns, [
      '--net-config-path', netConf, '--iface', 'eth0', '--subnet', h2.podSubnet,
      '--peer', `${h1.podSubnet}=${h1.underlayIp}`,
      '--healthz-ip', '127.0.0.1', '--healthz-port', String(H2_HEALTH), ...offloadFlags, ...h2Flags,
    ]);
    await Promise.all([a1.waitReady(), a2.waitReady()]);
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

  test('the agents run with the offloads asked for', () => {
    for (const agent of [a1, a2]) {
      const inEffect = agent.records.find((r) => r.msg === 'offloads')?.['inEffect'] as Record<string, unknown> | undefined;
      assert.deepEqual(inEffect, offloads, agent.log());
    }
  });

  test('pods ping each other in both directions', async () => {
    const there = await lab.exec(pod1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', lab.host(2).podIp], { timeoutMs: 15_000 });
    assert.match(there, /3 packets transmitted, 3 received/);
    const back = await lab.exec(pod2, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', lab.host(1).podIp], { timeoutMs: 15_000 });
    assert.match(back, /3 packets transmitted, 3 received/);
    // pod TTL 64, minus host 1's kernel, weft on host 1, weft on host 2, host 2's kernel
    assert.match(there, /ttl=60/);
  });

  test('a ping whose packet fills the TUN MTU crosses unfragmented', async () => {
    const before = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    // TUN MTU = 1500 - 28 = 1472 = 20 (IP) + 8 (ICMP) + 1444
    const out = await lab.exec(pod1, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '-M', 'do', '-s', '1444', lab.host(2).podIp], { timeoutMs: 15_000 });
    assert.match(out, /2 packets transmitted, 2 received/);
    assert.match(out, /1452 bytes from 10\.244\.2\.2/);
    const afterM = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    const sentBytes = (afterM.get('weft_udp_tx_bytes_total') ?? 0) - (before.get('weft_udp_tx_bytes_total') ?? 0);
    const sentPackets = (afterM.get('weft_udp_tx_packets_total') ?? 0) - (before.get('weft_udp_tx_packets_total') ?? 0);
    assert.equal(sentPackets, 2);
    assert.equal(sentBytes, 2 * 1472, 'each datagram carries one full-MTU packet');
    // one byte more does not fit the pod's MTU (1472) with DF set
    const tooBig = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '1', '-M', 'do', '-s', '1445', lab.host(2).podIp]);
    assert.notEqual(tooBig.code, 0);
  });

  test('iperf3 TCP for 3 s moves data through the overlay', async (t) => {
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp]);
    try {
      await waitForPort(lab, pod2, 5201);
      const out = await lab.exec(pod1, 'iperf3', ['-c', lab.host(2).podIp, '-t', '3', '-J'], { timeoutMs: 30_000 });
      const r = JSON.parse(out) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
      t.diagnostic(`iperf3 through weft: ${(r.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
      assert.ok(r.end.sum_received.bytes > 1_000_000, `only ${r.end.sum_received.bytes} bytes received`);
      const m = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
      assert.ok((m.get('weft_udp_tx_bytes_total') ?? 0) >= r.end.sum_received.bytes, 'the data crossed weft on host 1');
    } finally {
      server.kill();
    }
  });

  test('an address in the cluster network with no peer yields Destination Net Unreachable', async () => {
    const before = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    const r = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '2', '10.244.50.2'], { timeoutMs: 10_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /From 10\.244\.1\.0 icmp_seq=1 Destination Net Unreachable/);
    const afterM = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    assert.equal(dropCount(afterM, 'encap', 'no_route') - dropCount(before, 'encap', 'no_route'), 1);
  });

  test('a TTL that runs out at either agent is answered with Time to live exceeded', async () => {
    // TTL 2: host 1's kernel leaves 1, weft on host 1 expires it
    const first = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '2', '-t', '2', lab.host(2).podIp], { timeoutMs: 10_000 });
    assert.match(first.stdout, /From 10\.244\.1\.0 icmp_seq=1 Time to live exceeded/);
    // TTL 3: weft on host 2 expires it and answers over UDP
    const second = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '2', '-t', '3', lab.host(2).podIp], { timeoutMs: 10_000 });
    assert.match(second.stdout, /From 10\.244\.2\.0 icmp_seq=1 Time to live exceeded/);
    const m2 = await scrapeMetrics(lab, lab.host(2).ns, H2_HEALTH);
    assert.equal(dropCount(m2, 'decap', 'ttl_expired'), 1);
  });

  test('wire format: a foreign flannel udp peer exchanges bare IPv4 packets with a pod', async () => {
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    const payload = Buffer.from('weft wire compatibility check!!', 'utf8');
    const peer = lab.spawn(foreign.ns, process.execPath, [FOREIGN_PEER, foreign.ip, 'wire', JSON.stringify({
      agent: lab.host(1).underlayIp, src: FOREIGN_POD, dst: lab.host(1).podIp, id: 0x4242, seq: 7,
      payloadHex: payload.toString('hex'),
    })]);
    const events = new LineCollector(peer);
    try {
      await eventually('foreign peer listening', async () =>
        events.json<PeerEvent>().find((e) => e.event === 'listening'));
      // the pod pings an address behind the foreign peer; no reply comes back, the datagram is what counts
      await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '1', '-s', '32', '-p', 'a55a', FOREIGN_POD], { timeoutMs: 10_000 });
      const req = await eventually('echo request at the foreign peer', async () =>
        events.json<PeerEvent>().find((e) => e.event === 'echo-request'));
      assert.equal(req.from, `${lab.host(1).underlayIp}:8285`, 'sent from the agent\'s port 8285');
      const pkt = Buffer.from(req.hex as string, 'hex');
      const h = parseIpv4Header(pkt, 0, pkt.length);
      assert.ok(h !== undefined);
      assert.equal(h.version, 4);
      assert.equal(h.headerLength, 20);
      assert.equal(h.totalLength, pkt.length, 'the datagram is exactly one IPv4 packet');
      assert.equal(pkt.length, 20 + 8 + 32);
      assert.equal(h.src, parseIpv4(lab.host(1).podIp));
      assert.equal(h.dst, parseIpv4(FOREIGN_POD));
      assert.equal(h.protocol, 1);
      assert.equal(h.ttl, 62, 'pod 64, host kernel -1, weft -1');
      assert.ok(ipv4HeaderChecksumOk(pkt, 0, 20));
      assert.equal(pkt[20], ICMP_ECHO_REQUEST);
      assert.ok(icmpChecksumOk(pkt, 20, pkt.length - 20));
      // ping -p a55a fills the data after its 16-byte timestamp with the pattern
      assert.equal(pkt.subarray(28 + 16).toString('hex'), 'a55a'.repeat(8));

      const reply = await eventually('echo reply at the foreign peer', async () =>
        events.json<PeerEvent>().find((e) => e.event === 'echo-reply'));
      assert.equal(reply.from, `${lab.host(1).underlayIp}:8285`);
      const rp = Buffer.from(reply.hex as string, 'hex');
      const rh = parseIpv4Header(rp, 0, rp.length);
      assert.ok(rh !== undefined);
      assert.equal(rh.totalLength, rp.length);
      assert.equal(rh.src, parseIpv4(lab.host(1).podIp));
      assert.equal(rh.dst, parseIpv4(FOREIGN_POD));
      assert.equal(rh.ttl, 62);
      assert.ok(ipv4HeaderChecksumOk(rp, 0, 20));
      assert.equal(rp[20], 0, 'ICMP echo reply');
      assert.ok(icmpChecksumOk(rp, 20, rp.length - 20));
      assert.equal(rp.readUInt16BE(24), 0x4242);
      assert.equal(rp.readUInt16BE(26), 7);
      assert.deepEqual(rp.subarray(28), payload);
    } finally {
      peer.kill();
    }
  });

  test('malformed datagrams are dropped and counted by reason, and traffic keeps flowing', async () => {
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    const pod = parseIpv4(lab.host(1).podIp) as number;
    const valid = (dst: number, ttl: number): Buffer => {
      const b = Buffer.alloc(20 + 8 + 16);
      buildIcmpEcho(b, 0, { type: ICMP_ECHO_REQUEST, src: parseIpv4(FOREIGN_POD) as number, dst, id: 1, seq: 1, ttl, payload: Buffer.alloc(16, 7) });
      return b;
    };
    const withHeader = (mutate: (b: Buffer) => void, fixChecksum: boolean): Buffer => {
      const b = valid(pod, 64);
      mutate(b);
      if (fixChecksum) writeIpv4HeaderChecksum(b, 0, 20);
      return b;
    };
    const datagrams: Buffer[] = [
      Buffer.alloc(10, 0x45), // too short
      withHeader((b) => { b[0] = 0x65; }, true), // version 6
      withHeader((b) => { b[0] = 0x44; }, true), // IHL 4
      withHeader((b) => { b[0] = 0x4f; }, true), // IHL 15 = 60 bytes > 44-byte datagram
      withHeader((b) => { b.writeUInt16BE(45, 2); }, true), // total length 45 != 44
      withHeader((b) => { b[10] = (b[10] as number) ^ 0xff; }, false), // bad checksum
      valid(parseIpv4(lab.host(2).podIp) as number, 64), // not for host 1's subnet
      valid(pod, 1), // TTL expires at host 1's agent: time exceeded goes back to the sender
    ];
    const before = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    const peer = lab.spawn(foreign.ns, process.execPath, [FOREIGN_PEER, foreign.ip, 'malformed', JSON.stringify({
      agent: lab.host(1).underlayIp, datagrams: datagrams.map((d) => d.toString('hex')), listenMs: 1500,
    })]);
    const events = new LineCollector(peer);
    try {
      await eventually('foreign peer done', async () => events.json<PeerEvent>().find((e) => e.event === 'done'), 15_000);
    } finally {
      peer.kill();
    }
    const afterM = await scrapeMetrics(lab, lab.host(1).ns, H1_HEALTH);
    const delta = (reason: string): number => dropCount(afterM, 'decap', reason) - dropCount(before, 'decap', reason);
    assert.deepEqual(
      {
        too_short: delta('too_short'), bad_version: delta('bad_version'), bad_header_length: delta('bad_header_length'),
        bad_total_length: delta('bad_total_length'), bad_checksum: delta('bad_checksum'),
        not_local_subnet: delta('not_local_subnet'), ttl_expired: delta('ttl_expired'),
      },
      { too_short: 1, bad_version: 1, bad_header_length: 2, bad_total_length: 1, bad_checksum: 1, not_local_subnet: 1, ttl_expired: 1 },
    );
    assert.equal((afterM.get('weft_udp_rx_packets_total') ?? 0) - (before.get('weft_udp_rx_packets_total') ?? 0), datagrams.length);
    assert.equal((afterM.get('weft_tun_tx_packets_total') ?? 0) - (before.get('weft_tun_tx_packets_total') ?? 0), 0,
      'nothing malformed reached the TUN');
    const back = events.json<PeerEvent>().filter((e) => e.event === 'received');
    assert.equal(back.length, 1, 'exactly one answer: the time exceeded');
    const icmp = Buffer.from(back[0]?.hex as string, 'hex');
    assert.equal(back[0]?.src, '10.244.1.0');
    assert.equal(back[0]?.dst, FOREIGN_POD);
    assert.equal(icmp[20], 11, 'ICMP time exceeded');
    assert.ok(a1.exited === false, 'the agent is still running');
    const ping = await lab.exec(pod1, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', lab.host(2).podIp], { timeoutMs: 10_000 });
    assert.match(ping, /2 packets transmitted, 2 received/);
  });

  test('a route removed and added again while a ping runs takes effect without a restart', async () => {
    const pidBefore = a1.child.pid;
    const h2 = lab.host(2);
    const ping = lab.spawn(pod1, 'ping', ['-i', '0.1', '-c', '200', '-W', '1', h2.podIp]);
    const out = new LineCollector(ping);
    const replies = (from = 0): number => out.lines.slice(from).filter((l) => l.includes(`bytes from ${h2.podIp}`)).length;
    const unreachable = (from = 0): number => out.lines.slice(from).filter((l) => l.includes('Destination Net Unreachable')).length;
    try {
      await eventually('replies with the route in place', async () => (replies() >= 3 ? true : undefined));
      writeFileSync(h1PeersFile, '# host 2 removed\n');
      const mark1 = out.lines.length;
      await eventually('unreachable after the route is removed', async () => (unreachable(mark1) >= 2 ? true : undefined));
      const mark2 = out.lines.length;
      writeFileSync(h1PeersFile, `${h2.podSubnet}=${h2.underlayIp}\n`);
      await eventually('replies after the route is added back', async () => (replies(mark2) >= 3 ? true : undefined));
    } finally {
      ping.kill('SIGINT');
    }
    assert.equal(a1.exited, false);
    assert.equal(a1.child.pid, pidBefore);
    const updates = a1.records.filter((r) => r.msg === 'routes updated' && r['why'] === 'peers file changed');
    assert.ok(updates.length >= 2, `expected two live route updates, saw ${updates.length}`);
  });

  test('SIGTERM stops an agent cleanly: the TUN goes with it, the rules stay (as flanneld\'s), weft cleanup removes them', async () => {
    const ns = lab.host(2).ns;
    const { code } = await a2.stop('SIGTERM');
    assert.equal(code, 0, a2.log());
    const link = await lab.execResult(ns, 'ip', ['link', 'show', 'flannel.0']);
    assert.notEqual(link.code, 0, 'flannel.0 is gone');
    assert.equal((await lab.exec(ns, 'ip', ['route', 'show', LAB_NETWORK])).trim(), '', 'the cluster route is gone');
    assert.doesNotMatch(await lab.exec(ns, 'ip', ['-br', 'addr']), /10\.244\.2\.0\//, 'the TUN address is gone');
    assert.equal((await lab.exec(ns, 'ss', ['-Hlun', 'sport = :8285'])).trim(), '', 'port 8285 is free');
    assert.ok(a2.records.some((r) => r.msg === 'stopped'));
    assert.equal((await lab.exec(ns, 'iptables', ['-S', 'FORWARD'])).includes('FLANNEL-FWD'), true, 'the forward rules stay, as flanneld leaves them');
    await weftCleanup(lab, ns, a2.stateDir);
    assert.deepEqual(await weftLeftovers(lab, ns), [], 'weft cleanup left something');
    assert.equal(existsSync(a2.subnetFile), false, 'weft cleanup removed subnet.env');
  });

  test('--ip-masq installs flannel\'s masquerade chain, restores it when flushed, leaves it on stop for weft cleanup', async () => {
    const h2 = lab.host(2);
    const agent = new LabAgent(lab, h2.ns, [
      '--net-config-path', netConfPath, '--iface', 'eth0', '--subnet', h2.podSubnet,
      '--peer', `${lab.host(1).podSubnet}=${lab.host(1).underlayIp}`, '--ip-masq', '--iptables-resync', '1', ...offloadFlags,
    ]);
    await agent.waitReady();
    const chain = async (): Promise<string[]> =>
      (await lab.exec(h2.ns, 'iptables', ['-t', 'nat', '-S', 'FLANNEL-POSTRTG'])).split('\n').filter((l) => l.startsWith('-A'));
    const c = '-m comment --comment "flanneld masq"';
    const expected = [
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.2.0/24 -d 10.244.0.0/16 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.2.0/24 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.2.0/24 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 ${c} -j MASQUERADE --random-fully`,
    ];
    assert.deepEqual(await chain(), expected);
    const jumps = (await lab.exec(h2.ns, 'iptables', ['-t', 'nat', '-S', 'POSTROUTING'])).split('\n').filter((l) => l.includes('FLANNEL-POSTRTG'));
    assert.deepEqual(jumps, [`-A POSTROUTING ${c} -j FLANNEL-POSTRTG`]);
    assert.match(readFileSync(agent.subnetFile, 'utf8'), /^FLANNEL_IPMASQ=true$/m);
    await lab.exec(h2.ns, 'iptables', ['-t', 'nat', '-F', 'FLANNEL-POSTRTG']);
    await eventually('the flushed chain restored', async () => ((await chain()).length === expected.length ? true : undefined), 5000);
    assert.deepEqual(await chain(), expected);
    const { code } = await agent.stop('SIGTERM');
    assert.equal(code, 0, agent.log());
    assert.deepEqual(await chain(), expected, 'the rules stay after a stop, as flanneld leaves them');
    await weftCleanup(lab, h2.ns, agent.stateDir);
    const gone = await lab.execResult(h2.ns, 'iptables', ['-t', 'nat', '-S', 'FLANNEL-POSTRTG']);
    assert.notEqual(gone.code, 0, 'weft cleanup deleted the chain');
    assert.doesNotMatch(await lab.exec(h2.ns, 'iptables', ['-t', 'nat', '-S', 'POSTROUTING']), /FLANNEL/);
  });
});
}
