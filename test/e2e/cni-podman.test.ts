/**
 * End to end with a real container runtime: podman 4.3 (CNI backend) on two
 * lab hosts, each running a weft agent that leased a subnet. Containers are
 * attached through the conflist a flannel cluster uses — weft's CNI plugin
 * (type "flannel", reading the agent's subnet.env) chained with portmap —
 * then talk across the overlay, serve a page through a mapped port, and are
 * stopped and removed without leaving a veth, an address or a cached result.
 *
 * podman is private to the test (test/e2e/podman-fixture.ts): its own
 * containers.conf, storage, runtime state, cgroup parent and network configs,
 * a busybox image imported locally (no registry here).
 *
 * WEFT_E2E_CNI_STANDIN=bridge replaces weft's plugin with the stock bridge
 * plugin configured the same way from subnet.env: it tells a broken runtime
 * setup from a broken plugin.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, type LabHost } from '../../src/lab/lab';
import { LabAgent, WEFT_BIN } from '../../src/lab/lab-agent';
import { formatIpv4, formatPrefix, parseIpv4, prefixContains } from '../../src/net/ipv4';
import { readSubnetEnv, type SubnetEnv } from '../../src/subnet/subnet-env';
import { runResult } from '../../src/sys/exec';
import { eventually, tearDownLab } from './helpers';
import { PodmanFixture, podmanSkipReason, type ContainerInspect, type PodmanTeardownReport } from './podman-fixture';
import { fileFixture, type StoreFixture } from './store-fixture';

const skip = podmanSkipReason();
/** The plugin as built (a link into build/Release). */
const WEFT_CNI = path.resolve(WEFT_BIN, '..', 'weft-cni');
const STAND_IN = process.env['WEFT_E2E_CNI_STANDIN'] === 'bridge';
const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'udp' } };
const CNI_VERSION = '1.0.0';
const HOST_PORT = 18080;
const CNI_RESULTS_DIR = '/var/lib/cni/results';
const IPV4_NAME = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

interface Link {
  readonly ifname: string;
  readonly master?: string;
}

describe('podman (CNI backend) on two weft hosts: flannel + portmap', { skip }, () => {
  const id = randomBytes(3).toString('hex');
  const network = `weft-e2e-${id}`;
  const pageName = `weft-${id}.txt`;
  const pageBody = `served by container B over weft ${id}`;
  const nameA = `weft-a-${id}`;
  const nameB = `weft-b-${id}`;
  const nameC = `weft-c-${id}`;
  let lab: Lab;
  let store: StoreFixture;
  let pm: PodmanFixture | undefined;
  const agents = new Map<number, LabAgent>();
  const envs = new Map<number, SubnetEnv>();
  /** Each host's veths before any container: the underlay's eth0. */
  const vethsBefore = new Map<number, string[]>();
  const started = new Map<string, { host: LabHost; info: ContainerInspect }>();

  const host = (i: number): LabHost => lab.host(i);
  const env = (i: number): SubnetEnv => envs.get(i) as SubnetEnv;
  const podman = (i: number, args: readonly string[]): Promise<string> => (pm as PodmanFixture).podman(host(i).ns, args);
  const ipamDir = (i: number): string => path.join((pm as PodmanFixture).hostDir(host(i).ns), 'ipam');
  const flannelDir = (i: number): string => path.join((pm as PodmanFixture).hostDir(host(i).ns), 'flannel');
  const veths = async (i: number): Promise<string[]> =>
    (JSON.parse(await lab.exec(host(i).ns, 'ip', ['-j', 'link', 'show', 'type', 'veth'])) as Link[]).map((l) => l.ifname).sort();
  /** host-local's allocations: one file per address, named after it. */
  const allocated = (i: number): string[] => {
    const d = path.join(ipamDir(i), network);
    return existsSync(d) ? readdirSync(d).filter((n) => IPV4_NAME.test(n)) : [];
  };
  const addressOf = (info: ContainerInspect): string => {
    const a = info.NetworkSettings?.Networks?.[network]?.IPAddress;
    assert.ok(a !== undefined && a !== '', `podman reports no address on ${network}: ${JSON.stringify(info.NetworkSettings)}`);
    return a;
  };

  /** What a flannel cluster's CNI configuration looks like, pointed at this host's agent and private state. */
  const conflist = (i: number): { name: string } & Record<string, unknown> => {
    const e = env(i);
    const first = STAND_IN
      ? {
          type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, ipMasq: !e.ipMasq, mtu: e.mtu,
          ipam: {
            type: 'host-local', dataDir: ipamDir(i),
            ranges: [[{ subnet: formatPrefix(e.subnet) }]], routes: [{ dst: formatPrefix(e.network) }],
          },
        }
      : {
          type: 'flannel', subnetFile: (agents.get(i) as LabAgent).subnetFile, dataDir: flannelDir(i),
          ipam: { dataDir: ipamDir(i) },
          delegate: { hairpinMode: true, isDefaultGateway: true },
        };
    return { cniVersion: CNI_VERSION, name: network, plugins: [first, { type: 'portmap', capabilities: { portMappings: true } }] };
  };

  before(async () => {
    lab = await Lab.create({ hosts: 2, underlay: 'bridge', pods: false });
    store = await fileFixture(lab, NET_CONF);
    for (const i of [1, 2]) agents.set(i, new LabAgent(lab, host(i).ns, [...store.agentArgs(), '--iface', 'eth0', '--ip-masq']));
    await Promise.all([...agents.values()].map((a) => a.waitReady(20_000)));
    for (const [i, a] of agents) {
      const e = await readSubnetEnv(a.subnetFile);
      assert.ok(e !== undefined, `the agent on host ${i} wrote no ${a.subnetFile}:\n${a.log()}`);
      envs.set(i, e);
      vethsBefore.set(i, await veths(i));
    }
    pm = await PodmanFixture.create();
    if (!STAND_IN) await installPlugin(pm.pluginDir);
    for (const i of [1, 2]) pm.addNetwork(host(i).ns, conflist(i));
  }, { timeout: 60_000 });

  after(async () => {
    let report: PodmanTeardownReport | undefined;
    try {
      // before the lab: containers are removed from their hosts, whose namespaces must still exist
      report = await pm?.teardown();
    } finally {
      await tearDownLab(lab, agents.values(), store);
    }
    assert.deepEqual(report?.forced ?? [], [], 'podman or the plugins left state that the fixture had to remove');
  });

  test('a container on each host gets an address in its host\'s lease, the overlay MTU and routes via the bridge', { timeout: 30_000 }, async (t) => {
    t.diagnostic(STAND_IN ? 'plugin: stock bridge (WEFT_E2E_CNI_STANDIN=bridge)' : `plugin: ${WEFT_CNI} as "flannel"`);
    const image = (pm as PodmanFixture).image;
    await podman(1, ['run', '-d', '--name', nameA, '--network', network, '--cap-add', 'NET_RAW', image, 'sleep', '600']);
    await podman(2, ['run', '-d', '--name', nameB, '--network', network, '--cap-add', 'NET_RAW', '-p', `${HOST_PORT}:80`, image,
      'sh', '-c', 'mkdir -p /www && printf %s "$2" > "/www/$1" && exec httpd -f -p 80 -h /www', 'sh', pageName, pageBody]);
    for (const [i, name] of [[1, nameA], [2, nameB]] as const) {
      const info = await (pm as PodmanFixture).inspect(host(i).ns, name);
      started.set(name, { host: host(i), info });
      assert.equal(info.State?.Status, 'running', `${name}: ${JSON.stringify(info.State)}`);
      const e = env(i);
      const address = addressOf(info);
      assert.ok(prefixContains(e.subnet, parseIpv4(address) ?? 0), `${name} got ${address}, outside host ${i}'s lease ${formatPrefix(e.subnet)}`);
      assert.equal(info.NetworkSettings?.Networks?.[network]?.Gateway, formatIpv4(e.address), `${name}'s gateway is FLANNEL_SUBNET's address`);
      assert.equal(allocated(i).join(), address, `host-local on host ${i} recorded ${name}'s address in the ipam dataDir`);
      const inside = await podman(i, ['exec', name, 'sh', '-c', 'cat /sys/class/net/eth0/mtu; ip -4 route']);
      const [mtu, ...routes] = inside.trim().split('\n');
      assert.equal(Number(mtu), e.mtu, `${name}'s eth0 MTU is FLANNEL_MTU`);
      const routeText = routes.join('\n');
      assert.match(routeText, new RegExp(`^default via ${formatIpv4(e.address).replace(/\./g, '\\.')} `, 'm'), routeText);
      assert.match(routeText, new RegExp(`^${formatPrefix(e.network).replace(/\./g, '\\.')} via `, 'm'), `a route to the cluster network:\n${routeText}`);
      const hostLinks = JSON.parse(await lab.exec(host(i).ns, 'ip', ['-j', '-d', 'link', 'show', 'type', 'veth'])) as Link[];
      assert.ok(hostLinks.some((l) => l.master === 'cni0'), `host ${i} has the container's veth on cni0: ${JSON.stringify(hostLinks)}`);
      if (!STAND_IN) {
        assert.ok(existsSync(path.join(flannelDir(i), info.Id)), `the plugin saved its delegate config under dataDir as ${info.Id}`);
      }
    }
  });

  test('the containers ping each other across the overlay', { timeout: 30_000 }, async () => {
    const a = started.get(nameA);
    const b = started.get(nameB);
    assert.ok(a !== undefined && b !== undefined, 'both containers are running');
    const there = await podman(1, ['exec', nameA, 'ping', '-c', '3', '-i', '0.2', '-W', '2', addressOf(b.info)]);
    assert.match(there, /3 packets transmitted, 3 packets received/, there);
    const back = await podman(2, ['exec', nameB, 'ping', '-c', '3', '-i', '0.2', '-W', '2', addressOf(a.info)]);
    assert.match(back, /3 packets transmitted, 3 packets received/, back);
  });

  // (busybox 1.35's `wget -T` crashes: busybox's timeout bounds it instead)
  test(`container A fetches container B's page through port ${HOST_PORT} on host 2's underlay address`, { timeout: 30_000 }, async () => {
    const url = `http://${host(2).underlayIp}:${HOST_PORT}/${pageName}`;
    const body = await eventually(`${url} from ${nameA}`, async () => {
      const r = await (pm as PodmanFixture).result(host(1).ns, ['exec', nameA, 'timeout', '5', 'wget', '-qO-', url]);
      if (r.code !== 0) throw new Error(`wget: exit ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    }, 15_000, 200);
    assert.equal(body, pageBody);
  });

  test('a container that exits on its own is detached by conmon\'s cleanup process', { timeout: 30_000 }, async () => {
    const b = started.get(nameB);
    assert.ok(b !== undefined, 'container B is running');
    const vethsWithA = await veths(1);
    // no --rm, so that the exit code stays readable; the DEL still comes from conmon's `podman container cleanup`
    const cid = (await podman(1, ['run', '-d', '--name', nameC, '--network', network, '--cap-add', 'NET_RAW', (pm as PodmanFixture).image,
      'sh', '-c', 'sleep 1; exec ping -c 1 -W 2 "$1"', 'sh', addressOf(b.info)])).trim();
    const info = await (pm as PodmanFixture).inspect(host(1).ns, cid);
    assert.ok(prefixContains(env(1).subnet, parseIpv4(addressOf(info)) ?? 0), `${nameC} got ${addressOf(info)} from host 1's lease`);
    const exited = await eventually(`${nameC} to exit`, async () => {
      const now = await (pm as PodmanFixture).inspect(host(1).ns, cid);
      return now.State?.Status === 'exited' ? now : undefined;
    }, 15_000, 100);
    assert.equal(exited.State?.ExitCode, 0, `${nameC}'s ping across the overlay to ${addressOf(b.info)} succeeded`);
    await assertDetached(1, nameC, info, vethsWithA);
    await podman(1, ['rm', nameC]);
  });

  test('podman stop and rm leave no veth, no address, no cached result and no namespace', { timeout: 30_000 }, async () => {
    for (const [name, { host: h, info }] of started) {
      await podman(h.index, ['stop', '-t', '0', name]);
      // each host ran one of them: it is back to its veths before any container
      await assertDetached(h.index, name, info, vethsBefore.get(h.index) as string[]);
      await podman(h.index, ['rm', name]);
    }
    assert.equal((await podman(1, ['ps', '-aq'])).trim(), '', 'no container is left');
    for (const i of [1, 2]) assert.deepEqual(allocated(i), [], `host-local on host ${i} holds no address`);
  });

  /**
   * What a container's DEL should have undone on host i, as readable lines
   * (empty: nothing left); `expectedVeths`: the host's veths before the container.
   */
  const leftoversOf = async (i: number, info: ContainerInspect, expectedVeths: readonly string[]): Promise<string[]> => {
    const left: string[] = [];
    const now = (await veths(i)).join(', ');
    if (now !== expectedVeths.join(', ')) left.push(`veths on host ${i}: ${now} (before the container: ${expectedVeths.join(', ')})`);
    const address = addressOf(info);
    if (allocated(i).includes(address)) left.push(`host-local still holds ${address} in ${path.join(ipamDir(i), network)}`);
    const cached = path.join(CNI_RESULTS_DIR, `${network}-${info.Id}-eth0`);
    if (existsSync(cached)) left.push(`libcni's cached result ${cached}`);
    const saved = path.join(flannelDir(i), info.Id);
    if (!STAND_IN && existsSync(saved)) left.push(`the plugin's saved delegate config ${saved}`);
    const sandbox = info.NetworkSettings?.SandboxKey ?? '';
    if (sandbox !== '' && existsSync(sandbox)) left.push(`the network namespace ${sandbox}`);
    const nat = (await lab.exec(host(i).ns, 'iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.includes(info.Id));
    if (nat.length > 0) left.push(`nat rules on host ${i}: ${nat.join(' | ')}`);
    return left;
  };
  /** The DEL (run by `podman stop`, or by conmon's cleanup) undoes everything ADD did on the container's host. */
  const assertDetached = async (i: number, name: string, info: ContainerInspect, expectedVeths: readonly string[]): Promise<void> => {
    const left = (): Promise<string[]> => leftoversOf(i, info, expectedVeths);
    await eventually(`${name} to be detached on host ${i}`, async () => ((await left()).length === 0 ? true : undefined), 5000).catch(() => undefined);
    assert.deepEqual(await left(), [], `${name} (${info.Id.slice(0, 12)}) left state on host ${i}`);
  };
});

/** `weft cni install --dir DIR`: the plugin goes into DIR as `flannel` and `weft-cni`. */
async function installPlugin(dir: string): Promise<void> {
  if (!existsSync(WEFT_CNI)) throw new Error(`${WEFT_CNI} is missing: build the plugin (npm install, or node-gyp rebuild)`);
  const r = await runResult(process.execPath, [WEFT_BIN, 'cni', 'install', '--dir', dir], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`weft cni install --dir ${dir} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  for (const name of ['flannel', 'weft-cni']) {
    assert.ok(existsSync(path.join(dir, name)), `weft cni install put no ${name} in ${dir}: ${readdirSync(dir).join(', ')}`);
  }
}
