/**
 * End to end: vxlan with DirectRouting, and host-gw, on an underlay of two
 * segments. Hosts 1 and 2 share a segment; host 3 sits behind a router
 * (Lab's routedHosts). With DirectRouting, 1 and 2 route to each other
 * directly and use vxlan for 3; host-gw cannot reach 3 at all, says so, and
 * programs no route for it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { parseRoutes, WEFT_ROUTE_PROTO } from '../../src/host/kernel-state';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { addPodInLease, e2eSkipReason, eventually, tearDownLab, weftCleanup, weftLeftovers } from './helpers';
import { fileFixture, type StoreFixture } from './store-fixture';

const HEALTH = 9922;

describe('vxlan DirectRouting and host-gw across a router', { skip: e2eSkipReason(['ip', 'bridge', 'ping', 'curl']) }, () => {
  let lab: Lab;
  let store: StoreFixture;
  let confFile = '';
  const agents = new Map<number, LabAgent>();
  const subnets = new Map<number, Ipv4Prefix>();

  const routesOn = async (i: number): Promise<string[]> =>
    parseRoutes(await lab.exec(lab.host(i).ns, 'ip', ['-N', '-j', '-d', '-4', 'route', 'show', 'proto', String(WEFT_ROUTE_PROTO)]))
      .map((r) => `${formatPrefix(r.dst)} via ${formatIpv4(r.gateway ?? 0)} dev ${r.dev ?? '?'}${r.onlink ? ' onlink' : ''}`).sort();
  const s = (i: number): Ipv4Prefix => subnets.get(i) as Ipv4Prefix;
  const viaVxlan = (i: number): string => `${formatPrefix(s(i))} via ${formatIpv4(s(i).network)} dev flannel.1 onlink`;
  const direct = (i: number): string => `${formatPrefix(s(i))} via ${lab.host(i).underlayIp} dev eth0`;
  const pingOk = async (from: number, to: number): Promise<boolean> =>
    (await lab.execResult(lab.host(from).podNs as string, 'ping', ['-c', '1', '-W', '1', lab.host(to).podIp], { timeoutMs: 5000 })).code === 0;

  const startAll = async (): Promise<void> => {
    for (const i of [1, 2, 3]) {
      agents.set(i, new LabAgent(lab, lab.host(i).ns, [...store.agentArgs(), '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH)]));
    }
    await Promise.all([...agents.values()].map((a) => a.waitReady(20_000)));
  };
  const stopAndClean = async (): Promise<void> => {
    for (const [i, a] of agents) {
      await a.stop('SIGTERM');
      await weftCleanup(lab, lab.host(i).ns, a.stateDir);
    }
    agents.clear();
  };

  before(async () => {
    lab = await Lab.create({ hosts: 3, underlay: 'bridge', pods: false, routedHosts: [3] });
    store = await fileFixture(lab, { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } });
    confFile = store.agentArgs()[store.agentArgs().indexOf('--net-config-path') + 1] as string;
  });

  after(() => tearDownLab(lab, agents.values(), store));

  test('vxlan DirectRouting: hosts on one segment get direct routes, the host behind the router gets vxlan', async () => {
    await startAll();
    for (const i of [1, 2, 3]) {
      const env = await addPodInLease(lab, i, agents.get(i) as LabAgent);
      subnets.set(i, env.subnet);
    }
    const want: Record<number, string[]> = {
      1: [direct(2), viaVxlan(3)].sort(),
      2: [direct(1), viaVxlan(3)].sort(),
      3: [viaVxlan(1), viaVxlan(2)].sort(),
    };
    for (const i of [1, 2, 3]) {
      await eventually(`host ${i}'s routes`, async () => (JSON.stringify(await routesOn(i)) === JSON.stringify(want[i]) ? true : undefined), 5000)
        .catch(async () => assert.deepEqual(await routesOn(i), want[i], `host ${i}`));
    }
    const view = JSON.parse(await lab.exec(lab.host(1).ns, 'curl', ['-sf', `http://127.0.0.1:${HEALTH}/routes`])) as Array<{ subnet: string; via: string }>;
    assert.deepEqual(view.map((r) => `${r.subnet} ${r.via}`).sort(), [`${formatPrefix(s(2))} direct`, `${formatPrefix(s(3))} vxlan`].sort());
    for (const i of [1, 2, 3]) {
      for (const j of [1, 2, 3]) {
        if (i !== j) await eventually(`pod ${i} -> pod ${j}`, async () => ((await pingOk(i, j)) ? true : undefined), 10_000, 200);
      }
    }
  });

  test('host-gw: a peer behind a router is reported clearly and gets no route; the others work', async () => {
    await stopAndClean();
    writeFileSync(confFile, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } }));
    await startAll();
    for (const i of [1, 2, 3]) {
      const env = await readSubnetEnv((agents.get(i) as LabAgent).subnetFile);
      assert.equal(formatPrefix(env?.subnet ?? { network: 0, length: 0 }), formatPrefix(s(i)), 'each host keeps its lease');
    }
    await eventually('host 1 routes host 2 only', async () =>
      (JSON.stringify(await routesOn(1)) === JSON.stringify([direct(2)]) ? true : undefined), 5000)
      .catch(async () => assert.deepEqual(await routesOn(1), [direct(2)]));
    assert.deepEqual(await routesOn(3), [], 'host 3 reaches nobody on its segment');
    const a1 = agents.get(1) as LabAgent;
    const said = await a1.waitFor((r) => r.msg.startsWith(`no route to ${formatPrefix(s(3))}`), 5000, 'the error about host 3');
    assert.match(said.msg, new RegExp(`its public IP ${lab.host(3).underlayIp.replace(/\./g, '\\.')} is not on eth0's segment \\(192\\.168\\.77\\.0/24\\)`));
    assert.equal(a1.records.filter((r) => r.msg.startsWith(`no route to ${formatPrefix(s(3))}`)).length, 1, 'said once');
    assert.ok(await pingOk(1, 2));
    assert.equal(await pingOk(1, 3), false, 'host-gw cannot cross the router');
    await stopAndClean();
    for (const i of [1, 2, 3]) assert.deepEqual(await weftLeftovers(lab, lab.host(i).ns), [], `host ${i}`);
  });
});
