/**
 * End to end: what an operator sees of a running overlay. Two weft hosts with
 * leases in a real etcd, plus a foreign flannel peer (a plain UDP socket on
 * the underlay) whose lease was written by hand, and a stranger with no lease.
 *
 *  - per-peer counters: during a pod-to-pod ping and an iperf3 run, what each
 *    agent says it sent to a peer is what the peer says it received from it
 *    (exactly, once the traffic has stopped, less what the receiving kernel
 *    itself reports dropping);
 *  - malformed and spoofed datagrams show up under the right reason, for the
 *    peer that sent them (and, from a stranger, only in the totals);
 *  - `weft status --json` agrees with the store, subnet.env and the kernel;
 *    `--watch` streams; the socket is root's alone.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AgentStatus } from '../../src/agent/agent-status';
import { waitForPort } from '../../src/cli/demo';
import { buildIcmpEcho, ICMP_ECHO_REQUEST, writeIpv4HeaderChecksum } from '../../src/encap';
import { etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent, WEFT_BIN } from '../../src/lab/lab-agent';
import { formatPrefix, parseIpv4 } from '../../src/net/ipv4';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import {
  addPodInLease, dropCount, e2eSkipReason, eventually, LineCollector, scrapeMetrics, sleep, tearDownLab,
} from './helpers';
import { etcdFixture, type StoreFixture } from './store-fixture';

const skip = e2eSkipReason() ?? etcdSkipReason();
const FOREIGN_PEER = path.join(__dirname, 'fixtures', 'foreign-peer.js');
const HEALTH = [9951, 9952];
/** The foreign flannel peer's lease, written before the agents start so that neither is given it. */
const FOREIGN_SUBNET = '10.244.250.0/24';
const FOREIGN_POD = '10.244.250.5';

type Metrics = Map<string, number>;

/** A line the foreign peer fixture prints. */
interface ForeignEvent { event: string; from?: string; hex?: string }

const peerSeries = (name: string, subnet: string): string => `${name}{subnet="${subnet}"}`;
const peerDrop = (m: Metrics, subnet: string, reason: string): number =>
  m.get(`weft_peer_dropped_packets_total{direction="decap",reason="${reason}",subnet="${subnet}"}`) ?? 0;

/** The kernel's own UDP receive errors in a namespace (a full socket buffer): datagrams weft never saw. */
async function udpInErrors(lab: Lab, ns: string): Promise<number> {
  const snmp = await lab.exec(ns, 'cat', ['/proc/net/snmp']);
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const i = (names ?? '').split(/\s+/).indexOf('InErrors');
  return Number((values ?? '').split(/\s+/)[i]);
}

function weftStatus(args: readonly string[], uid?: number): { code: number | null; stdout: string; stderr: string } {
  const argv = uid === undefined
    ? [process.execPath, WEFT_BIN, 'status', ...args]
    : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, WEFT_BIN, 'status', ...args];
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('observability: per-peer counters, drops by reason, weft status', { skip }, () => {
  let lab: Lab;
  let store: StoreFixture;
  const agents: LabAgent[] = [];
  const subnets: string[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: 2, pods: false, underlay: 'bridge', extraUnderlayNodes: [{ tag: 'f', hostNumber: 9 }, { tag: 'x', hostNumber: 10 }] });
    store = await etcdFixture(lab, { Network: LAB_NETWORK, Backend: { Type: 'udp' } });
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    // as flanneld's udp backend writes its lease: no BackendType
    await store.putByHand(FOREIGN_SUBNET.replace('/', '-'), `{"PublicIP":"${foreign.ip}","PublicIPv6":null}`);
    for (const h of lab.hosts) {
      const agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0',
        '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH[h.index - 1])]);
      agents.push(agent);
    }
    for (const [i, agent] of agents.entries()) {
      await agent.waitReady(30_000);
      const env = await addPodInLease(lab, i + 1, agent);
      subnets.push(formatPrefix(env.subnet));
    }
  });

  after(async () => {
    await tearDownLab(lab, agents, store);
  });

  const scrape = (i: number): Promise<Metrics> => scrapeMetrics(lab, lab.host(i + 1).ns, HEALTH[i] as number);

  test('a lease written as flanneld\'s udp backend writes it is a peer: a pod\'s packet reaches that host as one bare ' +
    'IPv4 datagram, and its packet comes back to the pod', async () => {
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    const pod1 = lab.host(1).podNs as string;
    const payload = Buffer.from('to and from a flanneld lease....', 'utf8');
    const peer = lab.spawn(foreign.ns, process.execPath, [FOREIGN_PEER, foreign.ip, 'wire', JSON.stringify({
      agent: lab.host(1).underlayIp, src: FOREIGN_POD, dst: lab.host(1).podIp, id: 0x5151, seq: 3, payloadHex: payload.toString('hex'),
    })]);
    const events = new LineCollector(peer);
    try {
      await eventually('the flanneld-style peer listening', async () => events.json<ForeignEvent>().find((e) => e.event === 'listening'));
      await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '1', '-s', '24', FOREIGN_POD], { timeoutMs: 10_000 });
      const req = await eventually('the pod\'s echo request at the flanneld-style peer',
        async () => events.json<ForeignEvent>().find((e) => e.event === 'echo-request'));
      assert.equal(req.from, `${lab.host(1).underlayIp}:8285`);
      const pkt = Buffer.from(req.hex as string, 'hex');
      assert.equal(pkt.length, 20 + 8 + 24, 'the datagram is exactly the pod\'s IPv4 packet');
      assert.equal(pkt.readUInt16BE(2), pkt.length);
      assert.equal(pkt.readUInt32BE(12) >>> 0, parseIpv4(lab.host(1).podIp));
      assert.equal(pkt.readUInt32BE(16) >>> 0, parseIpv4(FOREIGN_POD));
      const reply = await eventually('the pod\'s echo reply to the flanneld-style peer',
        async () => events.json<ForeignEvent>().find((e) => e.event === 'echo-reply'));
      const rp = Buffer.from(reply.hex as string, 'hex');
      assert.equal(rp.readUInt32BE(16) >>> 0, parseIpv4(FOREIGN_POD));
      assert.equal(rp.readUInt16BE(24), 0x5151);
      assert.deepEqual(rp.subarray(28), payload);
    } finally {
      peer.kill();
    }
  });

  test('during a ping and an iperf3 run, what each agent sent to a peer is what the peer received from it', async (t) => {
    const [s1, s2] = subnets as [string, string];
    const [pod1, pod2] = [lab.host(1).podNs as string, lab.host(2).podNs as string];
    await eventually('pods talk', async () => {
      const r = await lab.execResult(pod1, 'ping', ['-c', '1', '-W', '1', lab.host(2).podIp]);
      return r.code === 0 ? true : undefined;
    }, 15_000, 200);

    // ping alone: every datagram is an echo or its reply, so the per-peer figures also equal the totals
    const [b1, b2] = await Promise.all([scrape(0), scrape(1)]);
    const ping = await lab.exec(pod1, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', '-s', '100', lab.host(2).podIp], { timeoutMs: 20_000 });
    assert.match(ping, /20 packets transmitted, 20 received/);
    const [p1, p2] = await Promise.all([scrape(0), scrape(1)]);
    const d = (a: Metrics, b: Metrics, key: string): number => (a.get(key) ?? 0) - (b.get(key) ?? 0);
    assert.equal(d(p1, b1, peerSeries('weft_peer_sent_packets_total', s2)), 20, 'host 1 sent 20 echo requests to host 2');
    assert.equal(d(p2, b2, peerSeries('weft_peer_received_packets_total', s1)), 20, 'host 2 received 20 from host 1');
    assert.equal(d(p2, b2, peerSeries('weft_peer_sent_packets_total', s1)), 20, 'host 2 sent 20 replies');
    assert.equal(d(p1, b1, peerSeries('weft_peer_received_packets_total', s2)), 20, 'host 1 received 20 replies');
    // 100 bytes of payload + 8 ICMP + 20 IP: the datagram payload is the inner packet
    assert.equal(d(p1, b1, peerSeries('weft_peer_sent_bytes_total', s2)), 20 * 128);
    assert.equal(d(p2, b2, peerSeries('weft_peer_received_bytes_total', s1)), 20 * 128);
    assert.equal(d(p1, b1, 'weft_udp_tx_packets_total'), 20, 'the per-peer figure is the whole of what was sent');

    // iperf3 both ways at once: super-packets split into datagrams on send, coalesced on receive
    const errorsBefore = await Promise.all([udpInErrors(lab, lab.host(1).ns), udpInErrors(lab, lab.host(2).ns)]);
    const [i1, i2] = await Promise.all([scrape(0), scrape(1)]);
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', lab.host(2).podIp]);
    try {
      await waitForPort(lab, pod2, 5201);
      const out = await lab.exec(pod1, 'iperf3', ['-c', lab.host(2).podIp, '-t', '2', '--bidir', '-J'], { timeoutMs: 30_000 });
      const r = JSON.parse(out) as { end: { sum_received: { bytes: number } } };
      assert.ok(r.end.sum_received.bytes > 1_000_000, 'iperf3 moved data');
    } finally {
      server.kill();
    }
    await sleep(500); // nothing is in flight any more
    const [e1, e2] = await Promise.all([scrape(0), scrape(1)]);
    const errorsAfter = await Promise.all([udpInErrors(lab, lab.host(1).ns), udpInErrors(lab, lab.host(2).ns)]);
    for (const [from, to, mFrom0, mFrom1, mTo0, mTo1, sFrom, sTo, lost] of [
      [1, 2, i1, e1, i2, e2, s1, s2, (errorsAfter[1] as number) - (errorsBefore[1] as number)],
      [2, 1, i2, e2, i1, e1, s2, s1, (errorsAfter[0] as number) - (errorsBefore[0] as number)],
    ] as const) {
      const sent = d(mFrom1, mFrom0, peerSeries('weft_peer_sent_packets_total', sTo));
      const received = d(mTo1, mTo0, peerSeries('weft_peer_received_packets_total', sFrom));
      t.diagnostic(`host ${from} -> host ${to}: sent ${sent}, received ${received}, kernel receive errors ${lost}`);
      assert.ok(sent > 1000, `host ${from} sent ${sent} datagrams to host ${to}`);
      // a receive error drops one message: with UDP_GRO up to 64 datagrams
      assert.ok(received <= sent && sent - received <= 64 * lost,
        `host ${from} sent ${sent} datagrams to host ${to}, which received ${received} (the kernel dropped ${lost} messages)`);
      if (lost === 0) {
        assert.equal(d(mTo1, mTo0, peerSeries('weft_peer_received_bytes_total', sFrom)), d(mFrom1, mFrom0, peerSeries('weft_peer_sent_bytes_total', sTo)),
          'and the same bytes');
      }
    }
    // the figures an operator reads beside them
    assert.equal(e1.get('weft_workers'), 1);
    assert.equal(e1.get('weft_store_connected'), 1);
    assert.equal(e1.get('weft_offload_enabled{offload="udp_gso"}'), 1);
    assert.ok((e1.get('weft_syscalls_per_packet{direction="encap"}') ?? 0) > 0);
    const expiry = e1.get('weft_lease_expiry_timestamp_seconds') ?? 0;
    assert.ok(expiry > Date.now() / 1000 && expiry <= Date.now() / 1000 + 24 * 3600 + 5, `lease expiry ${expiry}`);
    assert.equal(e1.get(`weft_peer_info{port="8285",public_ip="${lab.host(2).underlayIp}",subnet="${s2}"}`), 1);
    assert.ok([...e1.keys()].some((k) => k.startsWith('weft_build_info{')), 'build info');
  });

  test('malformed and spoofed datagrams are counted under the right reason, for the peer that sent them', async () => {
    const [s1, s2] = subnets as [string, string];
    const foreign = lab.extraNodes.get('f');
    const stranger = lab.extraNodes.get('x');
    assert.ok(foreign !== undefined && stranger !== undefined);
    const pod = parseIpv4(lab.host(1).podIp) as number;
    const echo = (src: string, dst: number, ttl: number): Buffer => {
      const b = Buffer.alloc(20 + 8 + 16);
      buildIcmpEcho(b, 0, { type: ICMP_ECHO_REQUEST, src: parseIpv4(src) as number, dst, id: 7, seq: 1, ttl, payload: Buffer.alloc(16, 3) });
      return b;
    };
    const broken = (mutate: (b: Buffer) => void, fixChecksum: boolean): Buffer => {
      const b = echo(FOREIGN_POD, pod, 64);
      mutate(b);
      if (fixChecksum) writeIpv4HeaderChecksum(b, 0, 20);
      return b;
    };
    const fromForeign: Buffer[] = [
      Buffer.alloc(12, 0x45), // too short
      broken((b) => { b[0] = 0x65; }, true), // version 6
      broken((b) => { b[0] = 0x44; }, true), // header length 16
      broken((b) => { b.writeUInt16BE(50, 2); }, true), // total length != datagram
      broken((b) => { b[10] = (b[10] as number) ^ 0x5a; }, false), // header checksum
      broken((b) => { b[10] = (b[10] as number) ^ 0x5a; }, false),
      echo(FOREIGN_POD, parseIpv4(lab.host(2).podIp) as number, 64), // for host 2's subnet, sent to host 1
      echo(lab.host(2).podIp, pod, 64), // a source host 2 owns, from the foreign host
      echo(lab.host(2).podIp, pod, 64),
      echo(lab.host(2).podIp, pod, 64),
    ];
    const send = async (node: { ns: string; ip: string }, datagrams: readonly Buffer[]): Promise<void> => {
      const peer = lab.spawn(node.ns, process.execPath, [FOREIGN_PEER, node.ip, 'malformed', JSON.stringify({
        agent: lab.host(1).underlayIp, datagrams: datagrams.map((x) => x.toString('hex')), listenMs: 300,
      })]);
      const events = new LineCollector(peer);
      try {
        await eventually('sender done', async () => events.json<{ event: string }>().find((e) => e.event === 'done'), 15_000);
      } finally {
        peer.kill();
      }
    };
    const before = await scrape(0);
    await send(foreign, fromForeign);
    await send(stranger, [echo(FOREIGN_POD, pod, 64), echo(FOREIGN_POD, pod, 64)]);
    const m = await eventually('the datagrams counted', async () => {
      const now = await scrape(0);
      const seen = (now.get('weft_udp_rx_packets_total') ?? 0) - (before.get('weft_udp_rx_packets_total') ?? 0);
      return seen >= fromForeign.length + 2 ? now : undefined;
    }, 10_000, 200);
    const peerDelta = (reason: string): number => peerDrop(m, FOREIGN_SUBNET, reason) - peerDrop(before, FOREIGN_SUBNET, reason);
    const totalDelta = (reason: string): number => dropCount(m, 'decap', reason) - dropCount(before, 'decap', reason);
    const expected = {
      too_short: 1, bad_version: 1, bad_header_length: 1, bad_total_length: 1, bad_checksum: 2, not_local_subnet: 1, source_not_owned: 3,
    };
    assert.deepEqual(Object.fromEntries(Object.keys(expected).map((r) => [r, peerDelta(r)])), expected, 'per peer, by reason');
    assert.deepEqual(Object.fromEntries(Object.keys(expected).map((r) => [r, totalDelta(r)])), expected, 'in the totals, by reason');
    assert.equal(
      (m.get(peerSeries('weft_peer_received_packets_total', FOREIGN_SUBNET)) ?? 0) - (before.get(peerSeries('weft_peer_received_packets_total', FOREIGN_SUBNET)) ?? 0),
      fromForeign.length, 'every datagram from the foreign host counted as received from it');
    assert.equal(totalDelta('unknown_sender'), 2, 'the stranger\'s datagrams: unknown sender');
    for (const s of [s2, FOREIGN_SUBNET]) {
      assert.equal(peerDrop(m, s, 'unknown_sender'), 0, `no peer is blamed for a stranger (${s})`);
    }
    assert.equal(peerDrop(m, s2, 'source_not_owned') - peerDrop(before, s2, 'source_not_owned'), 0, 'host 2 is not blamed for the spoof');
    assert.equal(m.get(peerSeries('weft_peer_sent_packets_total', s1)), undefined, 'no series for the host\'s own subnet');
  });

  test('a datagram without an outer UDP checksum is refused at the socket and counted; the same with one is delivered', async () => {
    const foreign = lab.extraNodes.get('f');
    assert.ok(foreign !== undefined);
    const packet = Buffer.alloc(20 + 8 + 16);
    buildIcmpEcho(packet, 0, { type: ICMP_ECHO_REQUEST, src: parseIpv4(FOREIGN_POD) as number, dst: parseIpv4(lab.host(1).podIp) as number, id: 9, seq: 1, ttl: 64, payload: Buffer.alloc(16, 5) });
    // python3 can ask the kernel for no checksum (SO_NO_CHECK = 11); node's dgram cannot
    const send = (noCheck: boolean): Promise<string> => lab.exec(foreign.ns, 'python3', ['-c', [
      'import socket, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `s.setsockopt(socket.SOL_SOCKET, 11, ${noCheck ? 1 : 0})`,
      `s.bind(("${foreign.ip}", 8285))`,
      `s.sendto(bytes.fromhex("${packet.toString('hex')}"), ("${lab.host(1).underlayIp}", 8285))`,
    ].join('\n')], { timeoutMs: 10_000 });
    const m0 = await scrape(0);
    await send(true);
    const m1 = await eventually('the socket drop counted', async () => {
      const m = await scrape(0);
      return (m.get('weft_udp_socket_drops_total') ?? 0) > (m0.get('weft_udp_socket_drops_total') ?? 0) ? m : undefined;
    }, 10_000, 200);
    assert.equal((m1.get('weft_udp_socket_drops_total') ?? 0) - (m0.get('weft_udp_socket_drops_total') ?? 0), 1);
    assert.equal(m1.get('weft_udp_rx_packets_total'), m0.get('weft_udp_rx_packets_total'), 'weft never saw it');
    assert.equal(m1.get('weft_offload_enabled{offload="trust_outer_checksum"}'), 1);
    await send(false);
    const m2 = await eventually('the checksummed one received', async () => {
      const m = await scrape(0);
      return (m.get('weft_udp_rx_packets_total') ?? 0) > (m1.get('weft_udp_rx_packets_total') ?? 0) ? m : undefined;
    }, 10_000, 200);
    assert.equal((m2.get('weft_udp_rx_packets_total') ?? 0) - (m1.get('weft_udp_rx_packets_total') ?? 0), 1);
    assert.equal((m2.get('weft_tun_tx_packets_total') ?? 0) - (m1.get('weft_tun_tx_packets_total') ?? 0), 1, 'and delivered');
  });

  test('weft status --json agrees with the lease store, subnet.env and the kernel', async () => {
    const a1 = agents[0] as LabAgent;
    const r = weftStatus(['--json', '--socket', a1.statusSocket]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as AgentStatus;
    const env = await readSubnetEnv(a1.subnetFile);
    assert.ok(env !== undefined);
    assert.equal(s.ready, true);
    assert.equal(s.network, LAB_NETWORK);
    assert.equal(s.lease?.subnet, formatPrefix(env.subnet));
    assert.equal(s.lease?.publicIp, lab.host(1).underlayIp);
    assert.ok(s.lease?.expiresAt !== null && Date.parse(s.lease?.expiresAt ?? '') > Date.now(), 'the lease expires in the future');
    assert.equal(s.backend?.type, 'udp');
    assert.equal(s.backend?.mtu, env.mtu);
    assert.equal(s.backend?.workers, 1);
    assert.equal(s.backend?.offloads?.['tun_vnet_hdr'], true);
    assert.match(s.store.description, /^etcd /);
    assert.equal(s.store.connected, true);

    // the store's leases, less this host's own, are the peers; each with its PublicIP
    const leases = await store.leases();
    const fromStore = [...leases].map(([key, value]) => ({ subnet: key.replace('-', '/'), publicIp: (JSON.parse(value) as { PublicIP: string }).PublicIP }))
      .filter((l) => l.subnet !== s.lease?.subnet).sort((x, y) => x.subnet.localeCompare(y.subnet));
    const shown = s.peers.map((p) => ({ subnet: p.subnet, publicIp: p.publicIp })).sort((x, y) => x.subnet.localeCompare(y.subnet));
    assert.deepEqual(shown, fromStore);
    assert.equal(JSON.parse(leases.get((s.lease?.subnet ?? '').replace('/', '-')) ?? '{}').PublicIP, s.lease?.publicIp);
    for (const p of s.peers) {
      assert.equal(p.via, 'udp');
      assert.equal(p.port, 8285);
      assert.ok(p.tx !== null && p.rx !== null && p.drops !== null, 'the udp backend counts per peer');
    }
    const host2 = s.peers.find((p) => p.subnet === subnets[1]);
    assert.ok(host2 !== undefined && (host2.tx?.packets ?? 0) > 1000, 'the traffic of the first test shows');
    assert.equal(s.peers.find((p) => p.subnet === FOREIGN_SUBNET)?.drops?.['decap/source_not_owned'], 3);

    // the kernel: the TUN with the status's MTU, and one route for the whole network through it
    const link = JSON.parse(await lab.exec(lab.host(1).ns, 'ip', ['-j', 'link', 'show', 'flannel.0'])) as Array<{ mtu: number }>;
    assert.equal(link[0]?.mtu, s.backend?.mtu);
    const routes = JSON.parse(await lab.exec(lab.host(1).ns, 'ip', ['-j', 'route', 'show', 'dev', 'flannel.0'])) as Array<{ dst: string }>;
    assert.deepEqual(routes.map((x) => x.dst), [LAB_NETWORK]);

    // the human form names the same things
    const text = weftStatus(['--socket', a1.statusSocket]);
    assert.equal(text.code, 0, text.stderr);
    for (const p of s.peers) assert.ok(text.stdout.includes(p.subnet) && text.stdout.includes(p.publicIp), text.stdout);
    assert.ok(text.stdout.includes(s.lease?.subnet ?? '?'), text.stdout);
  });

  test('the live rates follow the traffic', async () => {
    const a1 = agents[0] as LabAgent;
    const flood = lab.spawn(lab.host(1).podNs as string, 'ping', ['-c', '120', '-i', '0.05', '-W', '1', lab.host(2).podIp]);
    try {
      await sleep(3500); // longer than the rate window: the rate covers only the ping
      const s = JSON.parse(weftStatus(['--json', '--socket', a1.statusSocket]).stdout) as AgentStatus;
      const rate = s.peers.find((p) => p.subnet === subnets[1])?.tx?.packetsPerSecond ?? 0;
      // 20 echo requests a second
      assert.ok(rate > 10 && rate < 30, `tx rate to host 2 while pinging 20/s: ${rate}`);
    } finally {
      flood.kill();
    }
  });

  test('weft status --watch --json streams one document per interval and stops on SIGINT', async () => {
    const a1 = agents[0] as LabAgent;
    const child = spawn(process.execPath, [WEFT_BIN, 'status', '--watch', '--json', '--interval', '0.3', '--socket', a1.statusSocket],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = new LineCollector(child);
    try {
      const docs = await eventually('three documents', async () => {
        const got = lines.json<AgentStatus>();
        return got.length >= 3 ? got : undefined;
      }, 15_000, 100);
      assert.ok(docs.every((x) => x.schema === 1 && x.lease?.subnet === subnets[0]));
      assert.ok(new Set(docs.map((x) => x.now)).size === docs.length, 'each document is fresh');
    } finally {
      child.kill('SIGINT');
    }
    const code = child.exitCode ?? (await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))));
    assert.equal(code, 0);
  });

  test('the status socket is root\'s alone: mode 0600, and a non-root user is refused', async (t) => {
    const a1 = agents[0] as LabAgent;
    const st = statSync(a1.statusSocket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
    if (spawnSync('setpriv', ['--version']).status !== 0) {
      t.skip('setpriv (util-linux) is not installed');
      return;
    }
    // let the unprivileged user reach the socket file itself: only its mode stands in the way
    const dirMode = statSync(lab.dir).mode & 0o777;
    chmodSync(lab.dir, 0o755);
    try {
      const r = weftStatus(['--json', '--socket', a1.statusSocket], 65534);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /permission denied on .*weft status must run as root/);
      assert.equal(r.stdout, '');
    } finally {
      chmodSync(lab.dir, dirMode);
    }
    assert.ok(readFileSync('/proc/self/status', 'utf8').includes('Uid:\t0'), 'the test itself runs as root');
  });
});
