/**
 * `weft demo`: the newcomer's tour. Two hosts and a pod behind each, built
 * from network namespaces on this machine; a weft agent on each host; a ping
 * and a short iperf3 run from pod 1 to pod 2 through the overlay; the agents'
 * counters as proof that the traffic crossed weft; then everything removed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WeftError } from '../errors';
import { Lab, LAB_NETWORK } from '../lab/lab';
import { LabAgent } from '../lab/lab-agent';
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
  if (missing.length > 0) throw new WeftError('WEFT_ERR_USAGE', `weft demo needs: ${missing.join(', ')}`);
}

export async function runDemo(options: DemoOptions): Promise<number> {
  await requireTools();
  say('== weft demo: a two-host udp overlay in network namespaces ==');
  const dir = await mkdtemp(path.join(tmpdir(), 'weft-demo-'));
  let lab: Lab | undefined;
  const agents: LabAgent[] = [];
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
      await lab.addPod(h.index, formatPrefix(env.subnet), env.mtu, (line) => say(`  like the CNI plugin: ${line}`));
    }
    const [h1, h2] = [lab.host(1), lab.host(2)];
    await eventuallyRoutes(lab, h1.ns, 1);
    say(`host 1's routes (from /routes): ${await lab.exec(h1.ns, 'curl', ['-s', 'http://127.0.0.1:9901/routes'])}`.trim());
    const pod1 = h1.podNs as string;
    const pod2 = h2.podNs as string;

    say(`\n-- ping pod ${h1.podIp} (host 1) -> pod ${h2.podIp} (host 2) --`);
    const ping = await lab.exec(pod1, 'ping', ['-c', '4', '-i', '0.2', '-W', '2', h2.podIp], { timeoutMs: 15_000 });
    say(ping.trim().split('\n').map((l) => `  ${l}`).join('\n'));

    say(`\n-- iperf3 TCP, ${options.seconds} s, pod 1 -> pod 2 --`);
    const server = lab.spawn(pod2, 'iperf3', ['-s', '-1', '-B', h2.podIp]);
    await waitForPort(lab, pod2, 5201);
    const out = await lab.exec(pod1, 'iperf3', ['-c', h2.podIp, '-t', String(options.seconds), '-J'], {
      timeoutMs: (options.seconds + 15) * 1000,
    });
    server.kill();
    const result = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    const gbps = result.end.sum_received.bits_per_second / 1e9;
    say(`  received ${(result.end.sum_received.bytes / 1e6).toFixed(1)} MB at ${gbps.toFixed(2)} Gbit/s through the overlay`);

    say('\n-- what crossed weft (host 1 agent counters, /metrics) --');
    const metrics = await lab.exec(h1.ns, 'curl', ['-s', 'http://127.0.0.1:9901/metrics']).catch(() => '');
    for (const line of metrics.split('\n')) {
      if (/^weft_(tun_rx_packets|udp_tx_packets|udp_rx_packets|tun_tx_packets)_total /.test(line)) say(`  ${line}`);
    }
    say('\nOK: pod traffic crossed a weft udp overlay between two hosts.');
    return 0;
  } catch (err) {
    say(`\nFAILED: ${(err as Error).message}`);
    for (const a of agents) say(`--- agent log (${a.ns}) ---\n${a.log()}`);
    return 1;
  } finally {
    say('\ncleaning up: stopping agents, deleting namespaces');
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
