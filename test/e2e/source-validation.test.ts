/**
 * End to end: source validation on a bridged underlay in network namespaces.
 * Two weft hosts with a pod each, plus two more nodes on the underlay playing
 * senders with a plain UDP socket (test/e2e/fixtures/foreign-peer.ts):
 *   - a rogue (192.168.77.66) that no lease names, sending well-formed ICMP
 *     echo requests to host 1's pod with host 2's pod as the source;
 *   - a known peer (192.168.77.9, --peer 10.244.9.0/24) that spoofs host 2's
 *     pod as well, and then sends from its own subnet.
 * Nothing spoofed may reach the pod (its own ICMP counters say so); the
 * agent's counters name each reason; the owners' traffic still passes.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildIcmpEcho, ICMP_ECHO_REQUEST } from '../../src/encap';
import { Lab } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { parseIpv4 } from '../../src/net/ipv4';
import { dropCount, e2eSkipReason, eventually, LineCollector, scrapeMetrics, tearDownLab } from './helpers';

const skip = e2eSkipReason();
const SENDER = path.join(__dirname, 'fixtures', 'foreign-peer.js');
const H1_HEALTH = 9931;
const KNOWN_SUBNET = '10.244.9.0/24';
const KNOWN_POD = '10.244.9.5';
const COUNT = 40;

/** The pod's ICMP "InEchos" (echo requests received), from its namespace's /proc/net/snmp. */
async function echoRequestsReceived(lab: Lab, ns: string): Promise<number> {
  const snmp = await lab.exec(ns, 'cat', ['/proc/net/snmp']);
  const lines = snmp.split('\n').filter((l) => l.startsWith('Icmp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const i = names.indexOf('InEchos');
  assert.ok(i > 0, `no Icmp InEchos in ${ns}'s /proc/net/snmp`);
  return Number(values[i]);
}

/** The userspace path, and the kernel fast path (whose decap leaves every datagram it cannot vouch for to userspace). */
for (const { label, flags } of [{ label: 'userspace path', flags: [] as string[] }, { label: 'kernel fast path', flags: ['--fast-path', 'bpf'] }]) {
describe(`source validation (${label}): nobody but a subnet's owner gets packets into a pod`, { skip }, () => {
  let lab: Lab;
  let agents: LabAgent[] = [];

  before(async () => {
    lab = await Lab.create({
      hosts: 2, underlay: 'bridge',
      extraUnderlayNodes: [{ tag: 'rogue', hostNumber: 66 }, { tag: 'known', hostNumber: 9 }],
    });
    const netConf = path.join(lab.dir, 'net-conf.json');
    writeFileSync(netConf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } }));
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const known = lab.extraNodes.get('known')?.ip as string;
    agents = [
      new LabAgent(lab, h1.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h1.podSubnet,
        '--peer', `${h2.podSubnet}=${h2.underlayIp}`, '--peer', `${KNOWN_SUBNET}=${known}`,
        '--healthz-ip', '127.0.0.1', '--healthz-port', String(H1_HEALTH), ...flags]),
      new LabAgent(lab, h2.ns, ['--net-config-path', netConf, '--iface', 'eth0', '--subnet', h2.podSubnet,
        '--peer', `${h1.podSubnet}=${h1.underlayIp}`, ...flags]),
    ];
    await Promise.all(agents.map((a) => a.waitReady()));
  });

  after(async () => {
    await tearDownLab(lab, agents);
  });

  /** Sends COUNT echo requests src -> host 1's pod from an underlay node, as bare datagrams to host 1's port 8285. */
  async function sendFrom(tag: string, src: string): Promise<void> {
    const node = lab.extraNodes.get(tag);
    assert.ok(node !== undefined);
    const datagrams = Array.from({ length: COUNT }, (_, seq) => {
      const b = Buffer.alloc(20 + 8 + 32);
      buildIcmpEcho(b, 0, {
        type: ICMP_ECHO_REQUEST, src: parseIpv4(src) as number, dst: parseIpv4(lab.host(1).podIp) as number,
        id: 0x5151, seq, ttl: 64, payload: Buffer.alloc(32, 0x42),
      });
      return b.toString('hex');
    });
    const sender = lab.spawn(node.ns, process.execPath, [SENDER, node.ip, 'malformed', JSON.stringify({
      agent: lab.host(1).underlayIp, datagrams, listenMs: 300,
    })]);
    const events = new LineCollector(sender);
    try {
      await eventually(`${tag} done sending`, async () => events.json<{ event: string }>().find((e) => e.event === 'done'), 15_000);
    } finally {
      sender.kill();
    }
  }

  test('a rogue host with a source from a lease, and a known host with a source it does not own, reach no pod; the owners do', async () => {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const pod1 = h1.podNs as string;
    // the owner's traffic passes (and the agents know each other)
    await eventually('pod 2 -> pod 1 ping', async () => {
      await lab.exec(h2.podNs as string, 'ping', ['-c', '1', '-W', '1', h1.podIp]);
      return true;
    }, 15_000, 300);

    const echoesBefore = await echoRequestsReceived(lab, pod1);
    const before = await scrapeMetrics(lab, h1.ns, H1_HEALTH);
    await sendFrom('rogue', h2.podIp);
    await sendFrom('known', h2.podIp);
    const afterSpoofs = await eventually('the spoofed datagrams counted', async () => {
      const m = await scrapeMetrics(lab, h1.ns, H1_HEALTH);
      const seen = dropCount(m, 'decap', 'unknown_sender') - dropCount(before, 'decap', 'unknown_sender') +
        dropCount(m, 'decap', 'source_not_owned') - dropCount(before, 'decap', 'source_not_owned');
      return seen >= 2 * COUNT ? m : undefined;
    });
    assert.equal(dropCount(afterSpoofs, 'decap', 'unknown_sender') - dropCount(before, 'decap', 'unknown_sender'), COUNT,
      'every rogue datagram dropped as unknown_sender');
    assert.equal(dropCount(afterSpoofs, 'decap', 'source_not_owned') - dropCount(before, 'decap', 'source_not_owned'), COUNT,
      'every spoofed datagram of the known host dropped as source_not_owned');
    assert.equal((afterSpoofs.get('weft_tun_tx_packets_total') ?? 0) - (before.get('weft_tun_tx_packets_total') ?? 0), 0,
      'nothing spoofed was written to the TUN');
    assert.equal(await echoRequestsReceived(lab, pod1), echoesBefore, 'the pod received no spoofed echo request');
    if (flags.length > 0) {
      const passed = (m: Map<string, number>): number => m.get('weft_fast_path_passed_packets_total{direction="decap",reason="source"}') ?? 0;
      assert.equal(passed(afterSpoofs) - passed(before), 2 * COUNT, 'the kernel decapsulated none of them: it left each to userspace');
    }

    // the known host's own subnet is its to send from
    await sendFrom('known', KNOWN_POD);
    await eventually('the known host\'s own packets delivered', async () =>
      (await echoRequestsReceived(lab, pod1)) - echoesBefore >= COUNT ? true : undefined);
    assert.equal(await echoRequestsReceived(lab, pod1) - echoesBefore, COUNT);

    // and the owner of host 2's subnet still gets through
    const ping = await lab.exec(h2.podNs as string, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', h1.podIp]);
    assert.match(ping, /3 received/);
  });
});
}
