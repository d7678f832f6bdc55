/**
 * End to end: a flood of malformed datagrams at the rate one socket can send
 * them (test/e2e/fixtures/udp-flood.ts, bounded in time) at a weft host's
 * port 8285, from an address no lease names and then from a host that holds a
 * lease (so that every datagram is parsed before it is dropped), while pods ping across the
 * overlay and the agent renews a short lease every two seconds. Measured and
 * asserted: the flood is dropped and counted; the pods' ping loses nothing;
 * the agent's memory stays flat; lease renewal keeps its schedule.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { addPodInLease, dropCount, e2eSkipReason, eventually, LineCollector, scrapeMetrics, tearDownLab } from './helpers';
import { fileFixture, type StoreFixture } from './store-fixture';

const skip = e2eSkipReason();
const FLOOD = path.join(__dirname, 'fixtures', 'udp-flood.js');
const H1_HEALTH = 9951;
const FLOOD_MS = 5000;
const LEASE_TTL_SECONDS = 6; // renewed every 2 s (a third of the TTL)

/** Resident memory of a process in KiB, from /proc. */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null, `no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

describe('a flood of malformed datagrams', { skip }, () => {
  let lab: Lab;
  let store: StoreFixture;
  const agents: LabAgent[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', pods: false, extraUnderlayNodes: [{ tag: 'flood', hostNumber: 66 }] });
    store = await fileFixture(lab, { Network: LAB_NETWORK, Backend: { Type: 'udp' } });
    for (const h of lab.hosts) {
      const agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0', '-v=1', '--subnet-lease-ttl', String(LEASE_TTL_SECONDS),
        ...(h.index === 1 ? ['--healthz-ip', '127.0.0.1', '--healthz-port', String(H1_HEALTH)] : [])]);
      agents.push(agent);
      await agent.waitReady();
      await addPodInLease(lab, h.index, agent);
    }
  });

  after(async () => {
    await tearDownLab(lab, agents, store);
  });

  /** Floods host 1 from `sender` (a namespace and its underlay address) and checks what the issue asks. */
  async function flood(t: TestContext, sender: { ns: string; ip: string }, reason: string): Promise<void> {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const agent1 = agents[0] as LabAgent;
    const pid = agent1.child.pid as number;
    await eventually('pods talk', async () => {
      await lab.exec(h2.podNs as string, 'ping', ['-c', '1', '-W', '1', h1.podIp]);
      return true;
    }, 15_000, 300);
    const rssBefore = rssKiB(pid);
    const before = await scrapeMetrics(lab, h1.ns, H1_HEALTH);
    const startedAt = Date.now();
    const flooder = lab.spawn(sender.ns, process.execPath, [FLOOD, sender.ip, h1.underlayIp, '8285', String(FLOOD_MS)]);
    const floodOut = new LineCollector(flooder);
    // pings every 50 ms for as long as the flood lasts
    const count = Math.floor(FLOOD_MS / 50) - 4;
    const ping = await lab.exec(h2.podNs as string, 'ping', ['-c', String(count), '-i', '0.05', '-W', '1', h1.podIp], { timeoutMs: FLOOD_MS + 15_000 })
      .catch((err: Error) => err.message);
    const { sent, ms } = await eventually('the flood to end', async () => floodOut.json<{ sent: number; ms: number }>()[0], FLOOD_MS + 10_000);
    const endedAt = Date.now();

    const afterM = await eventually('the flood counted', async () => {
      const m = await scrapeMetrics(lab, h1.ns, H1_HEALTH);
      const a = dropCount(m, 'decap', reason);
      const b = await new Promise((r) => setTimeout(r, 300)).then(() => scrapeMetrics(lab, h1.ns, H1_HEALTH));
      return dropCount(b, 'decap', reason) === a ? b : undefined; // settled
    }, 10_000);
    const dropped = dropCount(afterM, 'decap', reason) - dropCount(before, 'decap', reason);
    const delivered = (afterM.get('weft_tun_tx_packets_total') ?? 0) - (before.get('weft_tun_tx_packets_total') ?? 0);
    const rssAfter = rssKiB(pid);
    const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(ping)?.[1];

    // renewals (debug lines) during the flood: none further apart than the schedule allows
    const renewals = agent1.records.filter((r) => r.msg === 'lease renewed' && typeof r['time'] === 'number')
      .map((r) => r['time'] as number).filter((x) => x >= startedAt - 3000 && x <= endedAt + 3000);
    const gaps = renewals.slice(1).map((x, i) => x - (renewals[i] as number));

    t.diagnostic(`flood: ${sent} datagrams in ${ms} ms (${Math.round(sent / (ms / 1000))} /s); the agent counted ${dropped} as ${reason}`);
    t.diagnostic(`ping during the flood: ${loss ?? '?'} % loss of ${count}`);
    t.diagnostic(`agent RSS: ${rssBefore} KiB before, ${rssAfter} KiB after (${rssAfter - rssBefore >= 0 ? '+' : ''}${rssAfter - rssBefore} KiB)`);
    t.diagnostic(`lease renewals around the flood: ${renewals.length}, gaps ${gaps.join(', ')} ms`);

    assert.ok(sent > 0 && dropped > 0, 'the flood reached the agent');
    assert.ok(dropped <= sent, 'nothing counted twice');
    assert.ok(delivered <= count * 2, `no flood datagram reached the TUN (${delivered} writes: the pings and their replies)`);
    assert.equal(loss, '0', `the pods' ping lost nothing:\n${ping}`);
    assert.ok(rssAfter - rssBefore < 20 * 1024, `the agent's memory stayed flat: ${rssBefore} -> ${rssAfter} KiB`);
    assert.ok(renewals.length >= Math.floor((endedAt - startedAt) / 2000) - 1, `renewals kept coming: ${renewals.length}`);
    assert.ok(gaps.every((g) => g < 3500), `no renewal came late (every ~2000 ms): ${gaps.join(', ')}`);
  }

  test('from an unknown sender: dropped before parsing and counted; pods keep pinging, memory stays flat, renewals stay on time', async (t) => {
    const node = lab.extraNodes.get('flood');
    assert.ok(node !== undefined);
    await flood(t, node, 'unknown_sender');
  });

  test('from a known host (host 2\'s address): every datagram parsed, dropped and counted as not IPv4; the same holds', async (t) => {
    const h2 = lab.host(2);
    await flood(t, { ns: h2.ns, ip: h2.underlayIp }, 'bad_version');
  });
});
