/**
 * End to end: flanneld's behaviour at the edges, as a drop-in must have it.
 *  - etcd started seconds after the agent: the agent waits (logging every
 *    second, /healthz up, /readyz not ready), then becomes ready and tells the
 *    service manager READY=1;
 *  - --ip-masq: a pod reaching an address outside the network is masqueraded
 *    (seen from the far side), pod to pod is not; a deleted rule returns within
 *    the resync period; a jump a flanneld left is neither duplicated nor
 *    removed;
 *  - --iface that matches nothing falls through to --iface-regex, whose
 *    matched address is the one used;
 *  - --ip-blackhole-route: the lease's blackhole route under the bridge's;
 *  - vxlan with every option set (VNI, Port, GBP, Learning, MTU) read back
 *    from the kernel, and re-created with its MAC when an option changes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdServer, etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatIpv4, formatPrefix } from '../../src/net/ipv4';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { addPodInLease, e2eSkipReason, eventually, LineCollector, sleep, tearDownLab, weftCleanup, weftLeftovers } from './helpers';
import { ETCD_PREFIX, fileFixture } from './store-fixture';

const HEALTH = 9923;

interface HttpAnswer { status: number; body: string }

async function httpGet(lab: Lab, ns: string, urlPath: string): Promise<HttpAnswer> {
  const r = await lab.execResult(ns, 'curl', ['-s', '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${HEALTH}${urlPath}`]);
  const lines = r.stdout.split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

/** A unix datagram socket that prints every message it receives, one per line (Node has no AF_UNIX datagrams). */
function notifyListener(socketPath: string): { child: ChildProcess; lines: LineCollector } {
  const script = 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("listening",flush=True)\n' +
    'while True:\n  print(s.recv(4096).decode().replace("\\n"," "),flush=True)\n';
  const child = spawn('python3', ['-c', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, lines: new LineCollector(child) };
}

describe('start-up waits for etcd, then READY=1', { skip: e2eSkipReason(['ip', 'curl', 'python3']) ?? etcdSkipReason() }, () => {
  let lab: Lab;
  let etcd: EtcdServer | undefined;
  let agent: LabAgent | undefined;
  let listener: ChildProcess | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: 1, underlay: 'bridge', pods: false });
  });
  after(async () => {
    listener?.kill();
    await tearDownLab(lab, [agent], etcd);
  });

  test('etcd started 5 s after the agent: the agent waits, serving /healthz, then becomes ready', async (t) => {
    const host = await lab.addUnderlayServiceAddress();
    const socket = path.join(lab.dir, 'notify.sock');
    const notify = notifyListener(socket);
    listener = notify.child;
    await eventually('the notify listener', async () => (notify.lines.lines.includes('listening') ? true : undefined));
    const h = lab.host(1);
    agent = new LabAgent(lab, h.ns, [
      '--etcd-endpoints', `http://${host}:2379`, '--net-config-path', path.join(lab.dir, 'absent.json'),
      '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH),
    ], { ...process.env, NOTIFY_SOCKET: socket });
    const t0 = Date.now();
    await eventually('/healthz', async () => ((await httpGet(lab, h.ns, '/healthz')).status === 200 ? true : undefined), 5000);
    assert.deepEqual(await httpGet(lab, h.ns, '/healthz'), { status: 200, body: 'flanneld is running' });
    assert.deepEqual(await httpGet(lab, h.ns, '/readyz'), { status: 503, body: 'flanneld is not ready yet' });
    await sleep(Math.max(0, 5000 - (Date.now() - t0)));
    const waits = agent.records.filter((r) => r['attempt'] !== undefined && /waiting$/.test(r.msg));
    assert.ok(waits.length >= 3, `expected a retry about every second for 5 s, saw ${waits.length}:\n${agent.log()}`);
    assert.deepEqual(waits.slice(0, 3).map((r) => r['attempt']), [1, 2, 3]);
    assert.equal(agent.exited, false, 'the agent waits instead of exiting');
    assert.equal(notify.lines.lines.includes('READY=1'), false, 'not ready yet');
    assert.ok(notify.lines.lines.some((l) => l.startsWith('STATUS=waiting')), notify.lines.lines.join(' | '));

    etcd = await EtcdServer.start({ host, clientPort: 2379, commandPrefix: ['ip', 'netns', 'exec', lab.underlayNs as string] });
    await etcd.etcdctl(['put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } })]);
    const tEtcd = Date.now();
    await agent.waitReady(30_000);
    t.diagnostic(`ready ${Date.now() - tEtcd} ms after etcd answered with a configuration`);
    assert.deepEqual(await httpGet(lab, h.ns, '/readyz'), { status: 200, body: 'flanneld is ready' });
    await eventually('READY=1', async () => (notify.lines.lines.includes('READY=1') ? true : undefined), 5000);
    assert.equal(notify.lines.lines.filter((l) => l === 'READY=1').length, 1);
    const env = await readSubnetEnv(agent.subnetFile);
    assert.ok(env !== undefined && (await etcd.etcdctl(['get', '--prefix', `${ETCD_PREFIX}/subnets/`])).includes(formatPrefix(env.subnet).replace('/', '-')));
    assert.equal((await agent.stop('SIGTERM')).code, 0);
    await eventually('STOPPING=1', async () => (notify.lines.lines.includes('STOPPING=1') ? true : undefined), 5000);
  });
});

describe('--ip-masq as flanneld: masquerade leaving the overlay only', { skip: e2eSkipReason(['ip', 'ping', 'iptables', 'iptables-save']) }, () => {
  let lab: Lab;
  const agents: LabAgent[] = [];
  const servers: ChildProcess[] = [];
  const c = '-m comment --comment "flanneld masq"';

  before(async () => {
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', pods: false });
  });
  after(async () => {
    for (const s of servers) s.kill();
    await tearDownLab(lab, agents);
  });

  /** A TCP server in `ns` that writes back the address each client came from. */
  const echoAddressServer = async (ns: string, port: number): Promise<void> => {
    servers.push(lab.spawn(ns, process.execPath, ['-e',
      `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${port}, '0.0.0.0', () => console.log('up'))`]));
    await eventually(`server in ${ns}`, async () => ((await lab.exec(ns, 'ss', ['-Htln', `sport = :${port}`])).trim() !== '' ? true : undefined));
  };
  /** Connects from `ns` and returns the address the server saw. */
  const seenAs = async (ns: string, address: string, port: number): Promise<string> =>
    (await lab.exec(ns, process.execPath, ['-e',
      `const c = require('net').connect(${port}, '${address}'); let d = ''; c.on('data', (x) => d += x); c.on('end', () => { process.stdout.write(d); });`],
    { timeoutMs: 10_000 })).trim();

  test('rules as flanneld\'s next to a jump a flanneld left; masquerade seen from the far side; a deleted rule returns', async () => {
    const store = await fileFixture(lab, { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
    const h1 = lab.host(1);
    // what a flanneld that ran here before left behind
    await lab.exec(h1.ns, 'iptables', ['-t', 'nat', '-N', 'FLANNEL-POSTRTG']);
    await lab.exec(h1.ns, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
    await lab.exec(h1.ns, 'iptables', ['-t', 'filter', '-N', 'FLANNEL-FWD']);
    await lab.exec(h1.ns, 'iptables', ['-t', 'filter', '-A', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
    for (const h of lab.hosts) {
      agents.push(new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0', '--ip-masq', '--iptables-resync', '1']));
    }
    for (const a of agents) await a.waitReady(20_000);
    for (const [i, a] of agents.entries()) {
      const env = await addPodInLease(lab, i + 1, a);
      assert.ok(env.ipMasq, 'FLANNEL_IPMASQ=true');
    }
    const lease = formatPrefix((await readSubnetEnv((agents[0] as LabAgent).subnetFile))?.subnet ?? { network: 0, length: 0 });
    const nat = async (): Promise<string[]> =>
      (await lab.exec(h1.ns, 'iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.includes('FLANNEL-POSTRTG') && l.startsWith('-A'));
    const expected = [
      `-A POSTROUTING ${c} -j FLANNEL-POSTRTG`,
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s ${lease} -d 10.244.0.0/16 ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d ${lease} ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d ${lease} ${c} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 ${c} -j MASQUERADE --random-fully`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 ${c} -j MASQUERADE --random-fully`,
    ];
    assert.deepEqual(await nat(), expected, 'one jump (the one a flanneld left, not a second), then flanneld\'s rules');
    const fwd = '-m comment --comment "flanneld forward"';
    const forward = async (): Promise<string[]> =>
      (await lab.exec(h1.ns, 'iptables-save', ['-t', 'filter'])).split('\n').filter((l) => l.includes('FLANNEL-FWD') && l.startsWith('-A'));
    assert.deepEqual(await forward(), [
      `-A FORWARD ${fwd} -j FLANNEL-FWD`, `-A FLANNEL-FWD -s 10.244.0.0/16 ${fwd} -j ACCEPT`, `-A FLANNEL-FWD -d 10.244.0.0/16 ${fwd} -j ACCEPT`,
    ], 'one FORWARD jump, next to the one a flanneld left');

    await echoAddressServer(lab.host(2).ns, 7777);
    await echoAddressServer(lab.host(2).podNs as string, 7778);
    assert.equal(await seenAs(h1.podNs as string, lab.host(2).underlayIp, 7777), h1.underlayIp, 'leaving the overlay: masqueraded');
    assert.equal(await seenAs(h1.podNs as string, lab.host(2).podIp, 7778), h1.podIp, 'pod to pod: not masqueraded');

    const masq = expected[5] as string;
    await lab.exec(h1.ns, 'iptables', ['-t', 'nat', '-D', 'FLANNEL-POSTRTG', '-s', '10.244.0.0/16', '!', '-d', '224.0.0.0/4',
      '-m', 'comment', '--comment', 'flanneld masq', '-j', 'MASQUERADE', '--random-fully']);
    assert.equal((await nat()).includes(masq), false, 'the rule is deleted');
    const t0 = Date.now();
    await eventually('the deleted rule back', async () => (JSON.stringify(await nat()) === JSON.stringify(expected) ? true : undefined), 5000, 100);
    assert.ok(Date.now() - t0 <= 2500, `restored after ${Date.now() - t0} ms with --iptables-resync 1`);
    assert.equal(await seenAs(h1.podNs as string, lab.host(2).underlayIp, 7777), h1.underlayIp, 'masqueraded again');

    for (const [i, a] of agents.entries()) {
      await a.stop('SIGTERM');
      await weftCleanup(lab, lab.host(i + 1).ns, a.stateDir);
    }
    agents.length = 0;
    const left = (await lab.exec(h1.ns, 'iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.includes('POSTROUTING') && l.startsWith('-A'));
    assert.deepEqual(left, [`-A POSTROUTING ${c} -j FLANNEL-POSTRTG`], 'weft cleanup removed nothing it did not create');
    const leftFwd = (await lab.exec(h1.ns, 'iptables-save', ['-t', 'filter'])).split('\n').filter((l) => l.startsWith('-A FORWARD'));
    assert.deepEqual(leftFwd, [`-A FORWARD ${fwd} -j FLANNEL-FWD`], 'nor the FORWARD jump a flanneld left');
    assert.deepEqual(await weftLeftovers(lab, lab.host(2).ns), [], 'host 2: everything weft created is gone');
    await store.close();
  });
});

describe('--iface falls through to --iface-regex, which uses the address it matched', { skip: e2eSkipReason(['ip']) }, () => {
  let lab: Lab;
  let agent: LabAgent | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: 1, underlay: 'bridge', pods: false });
  });
  after(() => tearDownLab(lab, [agent]));

  test('a second address on eth0 matched by the regex becomes the public IP', async () => {
    const h = lab.host(1);
    await lab.exec(h.ns, 'ip', ['addr', 'add', '192.168.79.1/24', 'dev', 'eth0']);
    const conf = path.join(lab.dir, 'net-conf.json');
    writeFileSync(conf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } }));
    agent = new LabAgent(lab, h.ns, ['--net-config-path', conf, '--iface', 'nope0', '--iface-regex', '^192\\.168\\.79\\.']);
    await agent.waitReady(20_000);
    assert.ok(agent.records.some((r) => r.msg === 'no interface matches --iface nope0'), agent.log());
    const starting = agent.records.find((r) => r.msg === 'starting weft agent');
    assert.equal(starting?.['iface'], 'eth0');
    assert.equal(starting?.['publicIp'], '192.168.79.1', 'the matched address, not eth0\'s first (192.168.77.1)');
  });
});

describe('--ip-blackhole-route: the lease\'s blackhole route, below the bridge\'s', { skip: e2eSkipReason(['ip']) }, () => {
  let lab: Lab;
  let agent: LabAgent | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: 1, underlay: 'bridge', pods: false });
  });
  after(() => tearDownLab(lab, [agent]));

  interface RouteJson { type?: string; dst: string; metric?: number; protocol?: string | number; dev?: string }
  const blackholes = async (ns: string): Promise<RouteJson[]> =>
    JSON.parse(await lab.exec(ns, 'ip', ['-j', '-N', 'route', 'show', 'type', 'blackhole'])) as RouteJson[];

  test('at the lowest priority: dropping the lease\'s traffic until the bridge\'s route exists, then under it; ' +
    'deleted, it returns; it stays at stop; weft cleanup removes it', async () => {
    const h = lab.host(1);
    const store = await fileFixture(lab, { Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } });
    agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0', '--ip-blackhole-route', '--iptables-resync', '1']);
    await agent.waitReady(20_000);
    const env = await readSubnetEnv(agent.subnetFile);
    assert.ok(env !== undefined, agent.log());
    const lease = formatPrefix(env.subnet);
    const routes = await eventually('the blackhole route', async () => {
      const r = await blackholes(h.ns);
      return r.length > 0 ? r : undefined;
    }, 10_000, 100);
    assert.deepEqual(routes.map((r) => [r.dst, r.metric, String(r.protocol)]), [[lease, 4294967295, '87']]);
    const podAddr = formatIpv4(env.subnet.network + 2);
    // no bridge yet: the lease's addresses are dropped here instead of following the default route
    const before = await lab.execResult(h.ns, 'ip', ['route', 'get', podAddr]);
    assert.ok(before.code !== 0 && /Invalid argument|blackhole/.test(before.stderr + before.stdout),
      `an address of the lease is not blackholed while no bridge exists: ${before.stdout}${before.stderr}`);
    // the pod's bridge (cni0) brings its own route for the lease, which wins over the blackhole
    await addPodInLease(lab, 1, agent);
    assert.equal(h.podIp, podAddr);
    assert.match(await lab.exec(h.ns, 'ip', ['route', 'get', podAddr]), /dev cni0/);

    await lab.exec(h.ns, 'ip', ['route', 'del', 'blackhole', lease, 'metric', '4294967295']);
    await eventually('the blackhole route to come back', async () => ((await blackholes(h.ns)).length === 1 ? true : undefined), 10_000, 100);

    assert.equal((await agent.stop('SIGTERM')).code, 0);
    assert.equal((await blackholes(h.ns)).length, 1, 'stop removed the blackhole route (flanneld leaves it)');
    await weftCleanup(lab, h.ns, agent.stateDir);
    assert.deepEqual(await blackholes(h.ns), []);
    await store.close();
  });
});

describe('vxlan with every option set: the device as flanneld makes it, re-created with its MAC when an option changes', { skip: e2eSkipReason(['ip']) }, () => {
  let lab: Lab;
  let agent: LabAgent | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: 1, underlay: 'bridge', pods: false });
  });
  after(() => tearDownLab(lab, [agent]));

  interface VxlanLink { mtu: number; address: string; linkinfo: { info_kind: string; info_data: Record<string, unknown> } }
  const device = async (ns: string): Promise<VxlanLink> =>
    (JSON.parse(await lab.exec(ns, 'ip', ['-d', '-j', 'link', 'show', 'flannel.7'])) as VxlanLink[])[0] as VxlanLink;

  test('VNI 7, Port 4790, GBP, Learning, MTU 1400: flannel.7 carries each; the lease publishes VNI and VtepMAC; ' +
    'Learning turned off re-creates it with the same MAC', async () => {
    const h = lab.host(1);
    const conf = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 7, Port: 4790, GBP: true, Learning: true, MTU: 1400 } };
    const store = await fileFixture(lab, conf);
    agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0']);
    await agent.waitReady(20_000);
    const first = await device(h.ns);
    assert.equal(first.linkinfo.info_kind, 'vxlan');
    const d = first.linkinfo.info_data;
    assert.deepEqual([d['id'], d['port'], d['gbp'], d['learning'], d['local'], d['link']], [7, 4790, true, true, h.underlayIp, 'eth0']);
    assert.equal(first.mtu, 1400 - 50, 'MTU minus the vxlan overhead');
    const env = await readSubnetEnv(agent.subnetFile);
    assert.equal(env?.mtu, 1350);
    const leases = [...(await store.leases()).values()];
    assert.equal(leases.length, 1);
    const lease = JSON.parse(leases[0] as string) as { BackendType: string; BackendData: { VNI: number; VtepMAC: string } };
    assert.deepEqual([lease.BackendType, lease.BackendData.VNI, lease.BackendData.VtepMAC], ['vxlan', 7, first.address]);
    assert.equal((await agent.stop('SIGTERM')).code, 0);

    // the next start with Learning off finds a device whose attributes differ: re-created, MAC kept (the peers' FDB entries stay right)
    writeFileSync(path.join(lab.dir, 'net-conf.json'), JSON.stringify({ ...conf, Backend: { ...conf.Backend, Learning: false } }));
    agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0']);
    await agent.waitReady(20_000);
    const second = await device(h.ns);
    assert.equal(second.linkinfo.info_data['learning'], false);
    assert.equal(second.linkinfo.info_data['gbp'], true);
    assert.equal(second.address, first.address, 'the VtepMAC survives the re-creation');
    assert.equal((await agent.stop('SIGTERM')).code, 0);
    await weftCleanup(lab, h.ns, agent.stateDir);
    assert.deepEqual(await weftLeftovers(lab, h.ns), []);
    await store.close();
  });
});

describe('EnableNFTables: flannel\'s nftables rules instead of iptables', { skip: e2eSkipReason(['ip', 'nft', 'iptables-save']) }, () => {
  let lab: Lab;
  let agent: LabAgent | undefined;

  before(async () => {
    lab = await Lab.create({ hosts: 1, underlay: 'bridge', pods: false });
  });
  after(() => tearDownLab(lab, [agent]));

  test('--ip-masq with EnableNFTables installs table ip flannel-ipv4 and no iptables rules; weft cleanup removes it', async () => {
    const h = lab.host(1);
    const store = await fileFixture(lab, { Network: '10.244.0.0/16', EnableNFTables: true, Backend: { Type: 'host-gw' } });
    agent = new LabAgent(lab, h.ns, [...store.agentArgs(), '--iface', 'eth0', '--ip-masq']);
    await agent.waitReady(20_000);
    const lease = formatPrefix((await readSubnetEnv(agent.subnetFile))?.subnet ?? { network: 0, length: 0 });
    const table = await lab.exec(h.ns, 'nft', ['list', 'table', 'ip', 'flannel-ipv4']);
    for (const rule of [
      'type nat hook postrouting priority srcnat; policy accept;',
      `ip saddr ${lease} ip daddr 10.244.0.0/16 return`,
      'ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
      'type filter hook forward priority filter; policy accept;',
      'ip saddr 10.244.0.0/16 accept',
      'ip daddr 10.244.0.0/16 accept',
    ]) assert.ok(table.includes(rule), `missing "${rule}" in:\n${table}`);
    const ipt = (await lab.exec(h.ns, 'iptables-save', [])).split('\n').filter((l) => /FLANNEL|flanneld/.test(l));
    assert.deepEqual(ipt, [], 'no iptables rules in nftables mode');
    assert.equal((await agent.stop('SIGTERM')).code, 0);
    await weftCleanup(lab, h.ns, agent.stateDir);
    assert.deepEqual(await weftLeftovers(lab, h.ns), []);
    await store.close();
  });
});
