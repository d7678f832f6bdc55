/**
 * Control-plane benchmark, with a real etcd in a namespace lab:
 *  1. three agents from start to full connectivity (all ready, all routes,
 *     pods attached, a ping answered across every pair), several runs;
 *  2. one agent starting against 1,000 existing leases: time to ready, time
 *     until all 1,000 routes are in the data plane, resident memory, and how
 *     fast one more lease becomes a route; against the same agent with none.
 *
 *   node dist/bench/leases.js [runs=3]
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { EtcdServer } from '../src/lab/etcd-server';
import { Lab } from '../src/lab/lab';
import { LabAgent } from '../src/lab/lab-agent';
import { formatPrefix } from '../src/net/ipv4';
import { readSubnetEnv } from '../src/subnet/subnet-env';

const PREFIX = '/coreos.com/network';
const HEALTH = 9930;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

async function routeCount(lab: Lab, ns: string): Promise<number> {
  const out = await lab.exec(ns, 'curl', ['-sf', `http://127.0.0.1:${HEALTH}/routes`]).catch(() => '[]');
  return (JSON.parse(out) as unknown[]).length;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function withEtcdLab<T>(hosts: number, config: object, body: (lab: Lab, etcd: EtcdServer) => Promise<T>): Promise<T> {
  const lab = await Lab.create({ hosts, underlay: 'bridge', pods: false });
  let etcd: EtcdServer | undefined;
  try {
    const host = await lab.addUnderlayServiceAddress();
    etcd = await EtcdServer.start({ host, commandPrefix: ['ip', 'netns', 'exec', lab.underlayNs as string] });
    await etcd.etcdctl(['put', `${PREFIX}/config`, JSON.stringify(config)]);
    return await body(lab, etcd);
  } finally {
    await etcd?.stop();
    await lab.destroy();
  }
}

function agentArgs(lab: Lab, etcd: EtcdServer): string[] {
  return ['--etcd-endpoints', etcd.endpoint, '--net-config-path', `${lab.dir}/absent.json`, '--iface', 'eth0',
    '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH)];
}

async function threeAgents(): Promise<{ ready: number; routes: number; connected: number }> {
  return withEtcdLab(3, { Network: '10.244.0.0/16', Backend: { Type: 'udp' } }, async (lab, etcd) => {
    const t0 = Date.now();
    const agents = [1, 2, 3].map((i) => new LabAgent(lab, lab.host(i).ns, agentArgs(lab, etcd)));
    try {
      await Promise.all(agents.map((a) => a.waitReady()));
      const ready = Date.now() - t0;
      await until('all routes', async () => (await Promise.all([1, 2, 3].map((i) => routeCount(lab, lab.host(i).ns)))).every((n) => n === 2));
      const routes = Date.now() - t0;
      for (const [i, a] of agents.entries()) {
        const env = await readSubnetEnv(a.subnetFile);
        await lab.addPod(i + 1, formatPrefix(env?.subnet ?? { network: 0, length: 0 }), env?.mtu ?? 1472);
      }
      for (const i of [1, 2, 3]) {
        for (const j of [1, 2, 3]) {
          if (i !== j) await lab.exec(lab.host(i).podNs as string, 'ping', ['-c', '1', '-W', '2', lab.host(j).podIp], { timeoutMs: 10_000 });
        }
      }
      return { ready, routes, connected: Date.now() - t0 };
    } finally {
      for (const a of agents) await a.stop();
    }
  });
}

interface ManyLeases { leases: number; ready: number; allRoutes: number; rssMiB: number; newLeaseToRoute: number }

async function manyLeases(count: number): Promise<ManyLeases> {
  return withEtcdLab(1, { Network: '10.0.0.0/8', Backend: { Type: 'udp' } }, async (lab, etcd) => {
    if (count > 0) {
      // written from inside the lab: etcd listens on the lab's switch, which this process cannot reach
      await lab.exec(lab.underlayNs as string, process.execPath, [path.join(__dirname, 'fixtures', 'put-leases.js'), etcd.endpoint, String(count)], { timeoutMs: 120_000 });
    }
    const t0 = Date.now();
    const agent = new LabAgent(lab, lab.host(1).ns, agentArgs(lab, etcd));
    try {
      await agent.waitReady(60_000);
      const ready = Date.now() - t0;
      await until(`${count} routes`, async () => (await routeCount(lab, lab.host(1).ns)) === count);
      const allRoutes = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1000)); // settle before reading memory
      const rss = rssMiB(agent.child.pid as number);
      const t1 = Date.now();
      await etcd.etcdctl(['put', `${PREFIX}/subnets/10.255.255.0-24`, '{"PublicIP":"192.168.201.1","PublicIPv6":null,"BackendType":"udp"}']);
      await until('the new route', async () => (await routeCount(lab, lab.host(1).ns)) === count + 1);
      return { leases: count, ready, allRoutes, rssMiB: rss, newLeaseToRoute: Date.now() - t1 };
    } finally {
      await agent.stop();
    }
  });
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const three: Array<{ ready: number; routes: number; connected: number }> = [];
  for (let r = 0; r < runs; r++) {
    log(`three agents, run ${r + 1}/${runs}...`);
    three.push(await threeAgents());
  }
  const many: ManyLeases[] = [];
  for (const count of [0, 1000]) {
    log(`one agent against ${count} existing leases...`);
    many.push(await manyLeases(count));
  }
  console.log(`three agents with etcd, start to full connectivity (median of ${runs}; runs in ms):`);
  console.log(`  all ready        ${median(three.map((x) => x.ready))} ms   [${three.map((x) => x.ready).join(', ')}]`);
  console.log(`  all routes       ${median(three.map((x) => x.routes))} ms   [${three.map((x) => x.routes).join(', ')}]`);
  console.log(`  pods pinging     ${median(three.map((x) => x.connected))} ms   [${three.map((x) => x.connected).join(', ')}] (includes attaching the pods)`);
  console.log('one agent against existing leases in etcd:');
  console.log('  leases   ready ms   all routes ms   RSS MiB   one more lease -> route ms');
  for (const m of many) {
    console.log(`  ${String(m.leases).padStart(6)}   ${String(m.ready).padStart(8)}   ${String(m.allRoutes).padStart(13)}   ${m.rssMiB.toFixed(1).padStart(7)}   ${String(m.newLeaseToRoute).padStart(10)}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
