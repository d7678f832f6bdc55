/**
 * `weft demo`: the newcomer's tour. Two hosts built from network namespaces
 * on this machine; a weft agent on each host; a pod behind each, attached by
 * weft's CNI plugin (bin/weft-cni with the reference bridge and host-local, as
 * a container runtime would run it); a ping and a short iperf3 run from pod 1
 * to pod 2 through the overlay; the agents' counters as proof that the
 * traffic crossed weft; then everything removed.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WeftError } from '../errors';
import { Lab, LAB_NETWORK } from '../lab/lab';
import { LabAgent, WEFT_BIN } from '../lab/lab-agent';
import { REFERENCE_CNI_PLUGINS, resultAddress, runCni, WEFT_CNI_BIN } from '../lab/cni-call';
import { formatIpv4, formatPrefix } from '../net/ipv4';
import { readSubnetEnv } from '../subnet/subnet-env';
import { run } from '../sys/exec';

export interface DemoOptions {
  readonly seconds: number;
  readonly showLogs: boolean;
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function requireTools(): Promise<void> {
  if (process.getuid !== undefined && process.getuid() !== 0) {
    throw new WeftError('WEFT_ERR_USAGE', 'weft demo builds network namespaces and needs root: run it with sudo');
  }
  const missing: string[] = [];
  for (const [tool, pkg] of [['ip', 'iproute2'], ['ping', 'iputils-ping'], ['iperf3', 'iperf3'], ['sysctl', 'procps'], ['curl', 'curl'], ['iptables', 'iptables']] as const) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(`${tool} (apt-get install ${pkg})`);
    }
  }
  if (!existsSync(path.join(REFERENCE_CNI_PLUGINS, 'bridge'))) missing.push(`the CNI plugins in ${REFERENCE_CNI_PLUGINS} (apt-get install containernetworking-plugins)`);
  if (!existsSync(WEFT_CNI_BIN)) missing.push(`${WEFT_CNI_BIN} (npm install builds it)`);
  if (missing.length > 0) throw new WeftError('WEFT_ERR_USAGE', `weft demo needs: ${missing.join(', ')}`);
}

export async function runDemo(options: DemoOptions): Promise<number> {
  await requireTools();
  say('== weft demo: a two-host udp overlay in network namespaces ==');
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-demo-'));
  let lab: Lab | undefined;
  const agents: LabAgent[] = [];
  const pods: Array<{ hostNs: string; ns: string; id: string; ip: string; config: object }> = [];
  const cniConfig = (subnetFile: string): object => ({
    cniVersion: '1.0.0',
    name: 'weft-demo',
    type: 'flannel',
    subnetFile,
    dataDir: path.join(dir, 'cni-records'),
    ipam: { dataDir: path.join(dir, 'cni-ipam') },
    delegate: { isDefaultGateway: true },
  });
  const onSignal = (): void => {
    say('interrupted: cleaning up');
    lab?.destroySync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    lab = await Lab.create({ hosts: 2, underlay: 'veth', pods: false }, (line) => say(`  building ${line}`));
    const netConf = path.join(dir, 'net-conf.json');
    await writeFile(netConf, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp', Port: 8285 } }, null, 2));
    say(`net-conf.json: Network ${LAB_NETWORK}, Backend udp port 8285`);
    const leaseFile = path.join(lab.dir, 'leases.json');
    say(`lease store: the embedded one, ${leaseFile} (use --etcd-endpoints for etcd)`);

    for (const h of lab.hosts) {
      say(`starting weft agent on host ${h.index} (${h.underlayIp}): it leases a subnet, then learns the other host's lease`);
      const agent = new LabAgent(lab, h.ns, [
        '--net-config-path', netConf, '--iface', 'eth0', '--lease-file', leaseFile,
        '--healthz-ip', '127.0.0.1', '--healthz-port', '9901',
      ]);
      agents.push(agent);
      await agent.waitReady();
      const env = await readSubnetEnv(agent.subnetFile);
      if (env === undefined) throw new Error(`agent on host ${h.index} wrote no subnet file`);
      say(`  host ${h.index} leased ${formatPrefix(env.subnet)}; subnet.env: FLANNEL_SUBNET=${formatIpv4(env.address)}/${env.subnet.length} FLANNEL_MTU=${env.mtu}`);
      const podNs = await lab.addNamespace(`p${h.index}`);
      const id = `weft-demo-pod-${h.index}`;
      const config = cniConfig(agent.subnetFile);
      const add = await runCni({ command: 'ADD', hostNs: h.ns, containerNs: podNs, containerId: id, config });
      const podIp = resultAddress(add.json);
      if (add.code !== 0 || podIp === undefined) throw new Error(`weft-cni ADD for pod ${h.index} failed: ${add.stdout}${add.stderr}`);
      pods.push({ hostNs: h.ns, ns: podNs, id, ip: podIp, config });
      say(`  pod ${h.index}: namespace ${podNs}, attached by weft's CNI plugin (bin/weft-cni ADD, as a container runtime runs it):`);
      say(`    eth0 ${podIp}/${env.subnet.length} from host-local over the lease, behind bridge cni0 ${formatIpv4(env.subnet.network + 1)}, MTU ${env.mtu}`);
    }
    const h1 = lab.host(1);
    await eventuallyRoutes(lab, h1.ns, 1);
    say(`host 1's routes (from /routes): ${await lab.exec(h1.ns, 'curl', ['-s', 'http://127.0.0.1:9901/routes'])}`.trim());
    const [p1, p2] = pods as [(typeof pods)[0], (typeof pods)[0]];
    const [pod1, pod2] = [p1.ns, p2.ns];

    say(`\n-- ping pod ${p1.ip} (host 1) -> pod ${p2.ip} (host 2) --`);
    const ping = await lab.exec(pod1, 'ping', ['-c', '4', '-i', '0.2', '-W', '2', p2.ip], { timeoutMs: 15_000 });
    say(ping.trim().split('\n').map((l) => `  ${l}`).join('\n'));

    say(`\n-- iperf3 TCP, ${options.seconds} s, pod 1 -> pod 2 --`);
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', p2.ip]);
    await waitForPort(lab, pod2, 5201);
    const running = lab.exec(pod1, 'iperf3', ['-c', p2.ip, '-t', String(options.seconds), '-J'], {
      timeoutMs: (options.seconds + 15) * 1000,
    });
    // `weft status` as an operator would run it, while the traffic flows (it measures rates over a second)
    await new Promise((resolve) => setTimeout(resolve, 300));
    const statusText = await weftStatusText((agents[0] as LabAgent).statusSocket);
    const out = await running;
    server.kill();
    const result = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    const gbps = result.end.sum_received.bits_per_second / 1e9;
    say(`  received ${(result.end.sum_received.bytes / 1e6).toFixed(1)} MB at ${gbps.toFixed(2)} Gbit/s through the overlay`);

    say('\n-- what crossed weft (host 1 agent counters, /metrics) --');
    const metrics = await lab.exec(h1.ns, 'curl', ['-s', 'http://127.0.0.1:9901/metrics']).catch(() => '');
    for (const line of metrics.split('\n')) {
      if (/^weft_(tun_rx_packets|udp_tx_packets|udp_rx_packets|tun_tx_packets)_total /.test(line)) say(`  ${line}`);
    }
    say(`\n-- weft status, taken while iperf3 ran (host 1's agent, over ${(agents[0] as LabAgent).statusSocket}) --`);
    say(statusText.trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
    say('\nOK: pod traffic crossed a weft udp overlay between two hosts.');
    return 0;
  } catch (err) {
    say(`\nFAILED: ${(err as Error).message}`);
    for (const a of agents) say(`--- agent log (${a.ns}) ---\n${a.log()}`);
    return 1;
  } finally {
    say('\ncleaning up: weft-cni DEL for each pod (its address goes back to host-local), stopping agents, deleting namespaces');
    for (const p of pods) {
      const del = await runCni({ command: 'DEL', hostNs: p.hostNs, containerNs: p.ns, containerId: p.id, config: p.config });
      if (del.code !== 0) say(`  weft-cni DEL for ${p.ns} failed: ${del.stdout}${del.stderr}`);
    }
    for (const a of agents) await a.stop();
    if (options.showLogs) for (const a of agents) say(`--- agent log (${a.ns}) ---\n${a.log()}`);
    await lab?.destroy();
    await rm(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('done: nothing left behind.');
  }
}

/** Waits until the agent in `ns` has `count` routes (the other hosts' leases arrived). */
async function eventuallyRoutes(lab: Lab, ns: string, count: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = await lab.exec(ns, 'curl', ['-s', 'http://127.0.0.1:9901/routes']).catch(() => '[]');
    if ((JSON.parse(out) as unknown[]).length >= count) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the agent in ${ns} did not learn ${count} route(s) within ${timeoutMs} ms`);
}

/** Waits until something listens on a TCP port inside a namespace (iperf3 server start-up). */
export async function waitForPort(lab: Lab, ns: string, port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = await lab.exec(ns, 'ss', ['-Htln', `sport = :${port}`]).catch(() => '');
    if (out.trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on port ${port} in ${ns} after ${timeoutMs} ms`);
}

/** `weft status` for a socket, as text (its error when it fails). */
function weftStatusText(socket: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT_BIN, 'status', '--socket', socket], { encoding: 'utf8', timeout: 15_000 }, (err, stdout, stderr) => {
      resolve(err === null ? stdout : `weft status failed: ${stderr || err.message}`);
    });
  });
}
