/**
 * End to end: weft's CNI plugin (bin/weft-cni) invoked exactly as a container
 * runtime invokes it, with the real reference delegates (bridge, host-local)
 * and two hosts running weft agents (udp backend) in network namespaces.
 * Containers are fresh network namespaces; each gets an address from its
 * host's lease and reaches containers on the other host across the overlay.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, LAB_NETWORK } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatIpv4, formatPrefix, parseCidr } from '../../src/net/ipv4';
import { readSubnetEnv, type SubnetEnv } from '../../src/subnet/subnet-env';
import { allocatedAddresses, cniError, cniSkipReason, runCni, veths, type CniOutcome } from './cni-fixture';
import { e2eSkipReason, eventually, tearDownLab } from './helpers';

const skip = e2eSkipReason(['ip', 'ping', 'iperf3', 'nsenter']) ?? cniSkipReason();

interface HostSetup {
  readonly ns: string;
  readonly agent: LabAgent;
  readonly lease: SubnetEnv;
  readonly dataDir: string;
  readonly ipamDir: string;
  readonly config: Record<string, unknown>;
}

interface Container {
  readonly id: string;
  readonly ns: string;
  readonly host: HostSetup;
  readonly address: string;
  /** ADD's result: the prevResult of a CHECK. */
  readonly result: Record<string, unknown>;
}

function inside(address: string, subnet: SubnetEnv['subnet']): boolean {
  const a = parseCidr(`${address}/32`);
  if (a === undefined) return false;
  const mask = subnet.length === 0 ? 0 : (~0 << (32 - subnet.length)) >>> 0;
  return ((a.address & mask) >>> 0) === subnet.network;
}

describe('weft-cni invoked as a runtime invokes it: two hosts, real delegates', { skip }, () => {
  let lab: Lab;
  const hosts: HostSetup[] = [];
  const network = `weft-cni-e2e`;
  let counter = 0;

  const config = (h: HostSetup, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ...h.config, ...extra });

  async function addContainer(h: HostSetup, tag: string): Promise<Container> {
    const ns = await lab.addNamespace(`c-${tag}`);
    const id = `${tag}${(++counter).toString(16).padStart(4, '0')}0123456789abcdef`;
    const r = await runCni({ command: 'ADD', hostNs: h.ns, containerNs: ns, containerId: id, config: h.config });
    assert.equal(r.code, 0, `ADD ${tag} failed: ${r.stdout} ${r.stderr}`);
    const ips = r.json?.['ips'] as Array<{ address: string; gateway?: string }> | undefined;
    const address = ips?.[0]?.address.split('/')[0];
    assert.ok(address !== undefined, `ADD ${tag} returned no address: ${r.stdout}`);
    return { id, ns, host: h, address, result: r.json as Record<string, unknown> };
  }

  async function ping(from: Container, to: string): Promise<void> {
    await lab.exec(from.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', to], { timeoutMs: 10_000 });
  }

  async function del(c: Container, containerNs: string | undefined = c.ns): Promise<CniOutcome> {
    return runCni({ command: 'DEL', hostNs: c.host.ns, containerId: c.id, ...(containerNs !== undefined ? { containerNs } : {}), config: c.host.config });
  }

  before(async () => {
    lab = await Lab.create({ hosts: 2, pods: false });
    const netConf = path.join(lab.dir, 'net-conf.json');
    writeFileSync(netConf, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } }));
    for (const h of lab.hosts) {
      const agent = new LabAgent(lab, h.ns, ['--net-config-path', netConf, '--iface', 'eth0']);
      await agent.waitReady();
      const lease = await readSubnetEnv(agent.subnetFile);
      assert.ok(lease !== undefined, `agent on ${h.ns} wrote no subnet.env`);
      const dataDir = path.join(lab.dir, `h${h.index}-cni-records`);
      const ipamDir = path.join(lab.dir, `h${h.index}-ipam`);
      hosts.push({
        ns: h.ns,
        agent,
        lease,
        dataDir,
        ipamDir,
        config: {
          cniVersion: '1.0.0',
          name: network,
          type: 'flannel',
          subnetFile: agent.subnetFile,
          dataDir,
          ipam: { dataDir: ipamDir },
          delegate: { hairpinMode: true },
        },
      });
    }
  });

  after(async () => {
    await tearDownLab(lab, hosts.map((h) => h.agent));
  });

  test('containers get addresses from their host\'s lease, reach each other across the overlay and on one host; CHECK passes; DEL twice', async () => {
    const [h1, h2] = hosts as [HostSetup, HostSetup];
    const h1VethsBefore = await veths(lab, h1.ns);
    const c1 = await addContainer(h1, 'a');
    const c2 = await addContainer(h1, 'b');
    const c3 = await addContainer(h2, 'c');
    for (const c of [c1, c2, c3]) {
      assert.ok(inside(c.address, c.host.lease.subnet), `${c.address} is not in ${formatPrefix(c.host.lease.subnet)}`);
      const shown = await lab.exec(c.ns, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.match(shown, new RegExp(`inet ${c.address.replace(/\./g, '\\.')}/${c.host.lease.subnet.length}`));
      const mtu = JSON.parse(await lab.exec(c.ns, 'ip', ['-j', 'link', 'show', 'dev', 'eth0'])) as Array<{ mtu: number }>;
      assert.equal(mtu[0]?.mtu, c.host.lease.mtu, 'the container MTU is FLANNEL_MTU');
      const record = path.join(c.host.dataDir, c.id);
      assert.equal(statSync(record).mode & 0o777, 0o600, 'the saved delegate config is 0600');
      assert.deepEqual(allocatedAddresses(c.host.ipamDir, network).includes(c.address), true, 'host-local recorded the address');
    }
    // the gateway is the lease's first address, on the host's bridge
    const gw = formatIpv4(h1.lease.subnet.network + 1);
    assert.match(await lab.exec(h1.ns, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'cni0']), new RegExp(`inet ${gw.replace(/\./g, '\\.')}/`));

    // across the overlay (the agents may take a moment to learn each other's lease)
    await eventually('a ping across the overlay', async () => {
      await ping(c1, c3.address);
      return true;
    }, 15_000, 500);
    await ping(c3, c1.address);
    await ping(c1, c2.address); // on one host, through the bridge

    // a short iperf3 run across the overlay
    const server = lab.spawn(c3.ns, 'iperf3', ['-s', '-1', '-B', c3.address]);
    await eventually('iperf3 server', async () => ((await lab.exec(c3.ns, 'ss', ['-Hltn'])).includes(':5201') ? true : undefined), 5000);
    const report = JSON.parse(await lab.exec(c1.ns, 'iperf3', ['-c', c3.address, '-t', '1', '-J'], { timeoutMs: 20_000 })) as {
      end: { sum_received: { bytes: number } };
    };
    assert.ok(report.end.sum_received.bytes > 0, 'iperf3 moved bytes across the overlay');
    server.kill();

    // CHECK with the ADD's result as prevResult
    const add1 = JSON.parse(readFileSync(path.join(h1.dataDir, c1.id), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(add1['weftAttachment'], { ifname: 'eth0' });
    const prev = await runCni({ command: 'ADD', hostNs: h1.ns, containerNs: c1.ns, containerId: c1.id, config: h1.config });
    assert.notEqual(prev.code, 0, 'a second ADD of the same attachment fails (eth0 exists)');
    assert.ok(existsSync(path.join(h1.dataDir, c1.id)), 'a failed repeated ADD keeps the earlier attachment\'s record');
    await ping(c1, c3.address); // and the attachment still works
    const check = await runCni({ command: 'CHECK', hostNs: h1.ns, containerNs: c1.ns, containerId: c1.id, config: config(h1, { prevResult: c1.result }) });
    assert.equal(check.code, 0, `CHECK failed: ${check.stdout} ${check.stderr}`);

    // DEL twice for c2: the interface goes, the address is released, the second DEL is a no-op
    for (let i = 0; i < 2; i++) {
      const r = await del(c2);
      assert.equal(r.code, 0, `DEL #${i + 1} failed: ${r.stdout} ${r.stderr}`);
      assert.equal(r.stdout, '', 'DEL prints nothing');
    }
    assert.equal((await lab.execResult(c2.ns, 'ip', ['link', 'show', 'dev', 'eth0'])).code !== 0, true, 'eth0 is gone from the container');
    assert.equal(allocatedAddresses(h1.ipamDir, network).includes(c2.address), false, 'the address is released');
    assert.equal(existsSync(path.join(h1.dataDir, c2.id)), false, 'the record is gone');
    const checkGone = await runCni({ command: 'CHECK', hostNs: h1.ns, containerNs: c2.ns, containerId: c2.id, config: config(h1, { prevResult: c2.result }) });
    assert.equal(cniError(checkGone).code, 3, 'CHECK of a deleted attachment: unknown container');

    for (const c of [c1, c3]) assert.equal((await del(c)).code, 0);
    assert.deepEqual(await veths(lab, h1.ns), h1VethsBefore, 'no veth left on host 1');
    for (const h of [h1, h2]) {
      assert.deepEqual(allocatedAddresses(h.ipamDir, network), [], `no address left allocated on ${h.ns}`);
      assert.deepEqual(readdirSync(h.dataDir).filter((f) => !f.startsWith('.')), [], `no record left on ${h.ns}`);
    }
  });

  test('DEL works after subnet.env changed or was deleted: it replays what ADD saved', async () => {
    const h2 = hosts[1] as HostSetup;
    const movable = path.join(lab.dir, 'movable.subnet.env');
    writeFileSync(movable, readFileSync(h2.agent.subnetFile));
    const h: HostSetup = { ...h2, config: config(h2, { subnetFile: movable }) };
    const c4 = await addContainer(h, 'd');
    // the lease "changes": another subnet in the file
    writeFileSync(movable, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.250.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n');
    const check = await runCni({ command: 'CHECK', hostNs: h.ns, containerNs: c4.ns, containerId: c4.id, config: config(h, { prevResult: c4.result }) });
    const checkErr = cniError(check);
    assert.equal(checkErr.code, 7);
    assert.match(checkErr.msg, /this host's lease is now 10\.244\.250\.0\/24.*re-create the container/);
    assert.equal((await del(c4)).code, 0);
    assert.equal(allocatedAddresses(h.ipamDir, network).includes(c4.address), false, 'released after subnet.env changed');

    writeFileSync(movable, readFileSync(h2.agent.subnetFile));
    const c5 = await addContainer(h, 'e');
    rmSync(movable);
    // the container is gone too (no CNI_NETNS), as when a host reboots without its agent
    await lab.deleteNamespace(c5.ns);
    const r = await del(c5, undefined);
    assert.equal(r.code, 0, `DEL after subnet.env was deleted failed: ${r.stdout}`);
    assert.equal(allocatedAddresses(h.ipamDir, network).includes(c5.address), false, 'released after subnet.env was deleted');
    assert.equal(existsSync(path.join(h.dataDir, c5.id)), false);
  });

  test('bad inputs give a CNI error with a clear message and leave nothing behind', async () => {
    const h1 = hosts[0] as HostSetup;
    const ns = await lab.addNamespace('c-bad');
    const vethsBefore = await veths(lab, h1.ns);
    const allocatedBefore = allocatedAddresses(h1.ipamDir, network);
    const emptyDir = path.join(lab.dir, 'no-plugins');
    const cases: Array<{ what: string; config: object | string; cniPath?: string; code: number; msg: RegExp }> = [
      { what: 'missing subnet.env', config: config(h1, { subnetFile: path.join(lab.dir, 'absent.env') }), code: 11, msg: /absent\.env does not exist.*weft agent/ },
      { what: 'malformed config', config: '{"cniVersion": "1.0.0", "name": ', code: 6, msg: /not valid JSON.*line 1/ },
      { what: 'unknown CNI version', config: config(h1, { cniVersion: '9.9.9' }), code: 1, msg: /"9\.9\.9" is not supported.*0\.3\.1, 0\.4\.0, 1\.0\.0 and 1\.1\.0/ },
      { what: 'missing delegate binary', config: config(h1), cniPath: emptyDir, code: 7, msg: /delegate plugin "bridge" is not in CNI_PATH/ },
      { what: 'unknown delegate type', config: config(h1, { delegate: { type: 'no-such-plugin' } }), code: 7, msg: /"no-such-plugin" is not in CNI_PATH/ },
      { what: 'delegate that sets ipam', config: config(h1, { delegate: { ipam: { type: 'host-local' } } }), code: 7, msg: /"delegate" must not set "ipam"/ },
      { what: 'delegate that sets name', config: config(h1, { delegate: { name: 'x' } }), code: 7, msg: /"delegate" must not set "name"/ },
    ];
    for (const [i, c] of cases.entries()) {
      const id = `bad${i}0123456789abcdef`;
      const r = await runCni({ command: 'ADD', hostNs: h1.ns, containerNs: ns, containerId: id, config: c.config, ...(c.cniPath !== undefined ? { cniPath: c.cniPath } : {}) });
      const e = cniError(r);
      assert.equal(e.code, c.code, `${c.what}: code (${e.msg})`);
      assert.match(e.msg, c.msg, `${c.what}: message`);
      assert.equal(existsSync(path.join(h1.dataDir, id)), false, `${c.what}: no record`);
    }
    assert.deepEqual(await veths(lab, h1.ns), vethsBefore, 'no veth left');
    assert.deepEqual(allocatedAddresses(h1.ipamDir, network), allocatedBefore, 'no address allocated');
    const links = JSON.parse(await lab.exec(ns, 'ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>;
    assert.deepEqual(links.map((l) => l.ifname), ['lo'], 'the container has only lo');
  });

  test('STATUS and GC (CNI 1.1.0): GC releases attachments whose container is gone and keeps the others', async () => {
    const h1 = hosts[0] as HostSetup;
    const status = await runCni({ command: 'STATUS', hostNs: h1.ns, config: config(h1, { cniVersion: '1.1.0' }) });
    assert.equal(status.code, 0, `STATUS: ${status.stdout}`);
    const down = await runCni({ command: 'STATUS', hostNs: h1.ns, config: config(h1, { cniVersion: '1.1.0', subnetFile: path.join(lab.dir, 'absent.env') }) });
    assert.equal(cniError(down).code, 50);

    const keep = await addContainer(h1, 'k');
    const gone = await addContainer(h1, 'g');
    await lab.deleteNamespace(gone.ns); // its runtime never ran DEL
    const gc = await runCni({
      command: 'GC', hostNs: h1.ns,
      config: config(h1, { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] }),
    });
    assert.equal(gc.code, 0, `GC: ${gc.stdout} ${gc.stderr}`);
    assert.equal(allocatedAddresses(h1.ipamDir, network).includes(gone.address), false, 'GC released the gone container\'s address');
    assert.equal(existsSync(path.join(h1.dataDir, gone.id)), false, 'and its record');
    assert.equal(allocatedAddresses(h1.ipamDir, network).includes(keep.address), true, 'GC kept the valid attachment');
    await ping(keep, formatIpv4(h1.lease.subnet.network + 1));
    assert.equal((await del(keep)).code, 0);
  });

  for (const cniVersion of ['0.3.1', '0.4.0']) {
    test(`CNI ${cniVersion}: the real bridge answers ADD in that version's format; DEL releases`, async () => {
      const h1 = hosts[0] as HostSetup;
      const ns = await lab.addNamespace(`c-v${cniVersion.replace(/\./g, '')}`);
      const id = `version${cniVersion.replace(/\./g, '')}0123456789abcdef`;
      const conf = config(h1, { cniVersion });
      const add = await runCni({ command: 'ADD', hostNs: h1.ns, containerNs: ns, containerId: id, config: conf });
      assert.equal(add.code, 0, `ADD: ${add.stdout}`);
      assert.equal(add.json?.['cniVersion'], cniVersion);
      const ips = add.json?.['ips'] as Array<{ version?: string; address: string }>;
      // 0.3.x and 0.4.0 results name the IP version; 1.0.0 dropped it
      assert.equal(ips[0]?.version, '4', `ips: ${JSON.stringify(ips)}`);
      const address = (ips[0]?.address ?? '').split('/')[0] as string;
      assert.ok(inside(address, h1.lease.subnet), `${address} in the lease`);
      const check = await runCni({ command: 'CHECK', hostNs: h1.ns, containerNs: ns, containerId: id, config: { ...conf, prevResult: add.json } });
      if (cniVersion === '0.4.0') assert.equal(check.code, 0, `CHECK: ${check.stdout}`);
      else assert.equal(cniError(check).code, 1, 'CHECK needs 0.4.0');
      assert.equal((await runCni({ command: 'DEL', hostNs: h1.ns, containerNs: ns, containerId: id, config: conf })).code, 0);
      assert.equal(allocatedAddresses(h1.ipamDir, network).includes(address), false);
    });
  }

  test('concurrent ADDs for many containers on one host are safe', async () => {
    const h2 = hosts[1] as HostSetup;
    const n = 8;
    const nss = await Promise.all(Array.from({ length: n }, (_, i) => lab.addNamespace(`c-m${i}`)));
    const ids = nss.map((_, i) => `many${i}0123456789abcdef`);
    const adds = await Promise.all(nss.map((ns, i) => runCni({ command: 'ADD', hostNs: h2.ns, containerNs: ns, containerId: ids[i] as string, config: h2.config })));
    const addresses = adds.map((r, i) => {
      assert.equal(r.code, 0, `concurrent ADD ${i}: ${r.stdout}`);
      return ((r.json?.['ips'] as Array<{ address: string }>)[0]?.address ?? '').split('/')[0] as string;
    });
    assert.equal(new Set(addresses).size, n, `distinct addresses: ${addresses.join(' ')}`);
    assert.deepEqual(allocatedAddresses(h2.ipamDir, network), [...addresses].sort());
    const dels = await Promise.all(nss.map((ns, i) => runCni({ command: 'DEL', hostNs: h2.ns, containerNs: ns, containerId: ids[i] as string, config: h2.config })));
    dels.forEach((r, i) => assert.equal(r.code, 0, `concurrent DEL ${i}: ${r.stdout}`));
    assert.deepEqual(allocatedAddresses(h2.ipamDir, network), []);
    assert.deepEqual(readdirSync(h2.dataDir).filter((f) => !f.startsWith('.')), []);
  });
});
