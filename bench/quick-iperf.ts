/**
 * Quick throughput check: one TCP stream pod -> pod, iperf3, over plain
 * routing between two namespace hosts (host-gw style, no encapsulation) and
 * through weft's udp overlay, on the same veth underlay (MTU 1500).
 *
 *   node dist/bench/quick-iperf.js [seconds=3] [repetitions=3]
 */
import { waitForPort } from '../src/cli/demo';
import { Lab, LAB_NETWORK } from '../src/lab/lab';
import { LabAgent } from '../src/lab/lab-agent';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

async function iperf(lab: Lab, seconds: number): Promise<number> {
  const [h1, h2] = [lab.host(1), lab.host(2)];
  const server = lab.spawn(h2.podNs as string, 'iperf3', ['-s', '-1', '-B', h2.podIp]);
  try {
    await waitForPort(lab, h2.podNs as string, 5201);
    const out = await lab.exec(h1.podNs as string, 'iperf3', ['-c', h2.podIp, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 });
    return (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

async function measure(mode: 'direct' | 'weft-udp', seconds: number, reps: number): Promise<number[]> {
  const lab = await Lab.create({ hosts: 2, underlay: 'veth', podMtu: mode === 'direct' ? 1500 : 1472 });
  const dir = mkdtempSync(path.join(tmpdir(), 'weft-quick-'));
  const agents: LabAgent[] = [];
  try {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    if (mode === 'direct') {
      await lab.exec(h1.ns, 'ip', ['route', 'add', h2.podSubnet, 'via', h2.underlayIp]);
      await lab.exec(h2.ns, 'ip', ['route', 'add', h1.podSubnet, 'via', h1.underlayIp]);
    } else {
      const conf = path.join(dir, 'net-conf.json');
      writeFileSync(conf, JSON.stringify({ Network: LAB_NETWORK, Backend: { Type: 'udp' } }));
      for (const [me, other] of [[h1, h2], [h2, h1]] as const) {
        const a = new LabAgent(lab, me.ns, ['--net-config-path', conf, '--iface', 'eth0', '--subnet', me.podSubnet,
          '--peer', `${other.podSubnet}=${other.underlayIp}`]);
        agents.push(a);
        await a.waitReady();
      }
    }
    const results: number[] = [];
    for (let i = 0; i < reps; i++) results.push(await iperf(lab, seconds));
    return results;
  } finally {
    for (const a of agents) await a.stop();
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3);
  const reps = Number(process.argv[3] ?? 3);
  const rows: [string, number[]][] = [];
  for (const mode of ['direct', 'weft-udp'] as const) {
    process.stderr.write(`measuring ${mode} (${reps} x ${seconds} s)...\n`);
    rows.push([mode, await measure(mode, seconds, reps)]);
  }
  const base = median(rows[0]?.[1] ?? [1]);
  console.log('mode       median Gbit/s   runs                     ratio to direct');
  for (const [mode, xs] of rows) {
    console.log(`${mode.padEnd(10)} ${median(xs).toFixed(2).padStart(8)}        ${xs.map((x) => x.toFixed(2)).join(', ').padEnd(24)} ${(median(xs) / base).toFixed(2)}x`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
