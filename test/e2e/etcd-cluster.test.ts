/**
 * End to end: weft agents on a real three-member etcd cluster (Debian's
 * etcd-server, each member in its own namespace on the lab's underlay), given
 * all three endpoints. The leader is killed, then one more member: the
 * cluster has no quorum for 30 s. Pods ping each other all along (20 echoes a
 * second per pair): not one echo may be lost, every agent stays running and
 * ready, and every lease is still in etcd afterwards with the same subnet
 * (with the default 24 h TTL, and with a 12 s TTL whose renewals fall due
 * while there is no quorum: a 30 s outage must not cost a lease). A lease
 * written while a member is down, and deleted after the outage, shows that
 * each agent's lease watch follows the cluster through it all.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdCluster, etcdClusterNodes } from '../../src/lab/etcd-cluster';
import { etcdSkipReason } from '../../src/lab/etcd-server';
import { Lab, randomLabPrefix } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatPrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import { subnetKeyName } from '../../src/subnet/lease';
import { readSubnetEnv } from '../../src/subnet/subnet-env';
import { addPodInLease, e2eSkipReason, eventually, sleep, tearDownLab } from './helpers';
import { describePing, PingStream, type PingSummary } from './ping-stream';
import { ETCD_PREFIX } from './store-fixture';

const HEALTH = 9931;
const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'udp' } };
const MEMBERS = 3;
const QUORUM_LOSS_MS = 30_000;
/** A lease written by hand while the cluster runs on two members. */
const HAND_SUBNET = '10.244.200.0/24';
const HAND_VALUE = '{"PublicIP":"192.168.77.50","PublicIPv6":null}';
/** Echoes every 50 ms, from before the first kill until after the checks that follow the outage (ended then; this is the bound). */
const PING_SECONDS = 120;

interface Route { subnet: string; publicIp: string }

/** One key's etcd lease: its id (decimal, as etcd's JSON gives it) and the seconds it has left. */
interface KeyLease { readonly value: string; readonly leaseId: string; readonly remainingS: number }

/**
 * The scenario, with flannel's default lease TTL (24 h: nothing is due during the outage) or a short
 * one, so that renewals fall due while the cluster has no quorum and must succeed once it has.
 */
function scenario(ttlSeconds: number | undefined): void {
  const title = ttlSeconds === undefined ? 'the default lease TTL' : `a ${ttlSeconds} s lease TTL (renewals due during the outage)`;
  /** What a lease of an agent must have left: most of its day, or some of its short TTL. */
  const leaseAlive = (remainingS: number): boolean => (ttlSeconds === undefined ? remainingS > 86_000 : remainingS > 0 && remainingS <= ttlSeconds);
  describe(`three-member etcd cluster, ${title}: the leader killed, then quorum lost for 30 s, during pod traffic`,
    { skip: e2eSkipReason(['ip', 'ping', 'curl', 'sysctl', 'iptables', 'ss']) ?? etcdSkipReason() }, () => {
      let lab: Lab;
      let cluster: EtcdCluster | undefined;
      const agents = new Map<number, LabAgent>();
      const subnets = new Map<number, Ipv4Prefix>();
      const pings: PingStream[] = [];

      const agentLogs = (): string => [...agents].map(([i, a]) => `--- agent on host ${i}:\n${a.log()}`).join('\n');
      const routesOf = async (i: number): Promise<Route[]> =>
        JSON.parse(await lab.exec(lab.host(i).ns, 'curl', ['-sf', `http://127.0.0.1:${HEALTH}/routes`])) as Route[];
      const readyz = async (i: number): Promise<number> => {
        const r = await lab.execResult(lab.host(i).ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${HEALTH}/readyz`]);
        return Number(r.stdout);
      };
      const waitRoutes = (i: number, check: (r: Route[]) => boolean, what: string, timeoutMs = 15_000): Promise<Route[]> =>
        eventually(`host ${i}: ${what}`, async () => {
          const r = await routesOf(i);
          return check(r) ? r : undefined;
        }, timeoutMs, 50).catch((err: unknown) => {
          throw new Error(`${(err as Error).message}\n${agentLogs()}`);
        });
      const keyLease = async (subnet: Ipv4Prefix): Promise<KeyLease | undefined> => {
        const c = cluster as EtcdCluster;
        const key = `${ETCD_PREFIX}/subnets/${subnetKeyName(subnet)}`;
        const json = await c.etcdctl(['get', key, '-w', 'json']);
        const leaseId = /"lease":(\d+)/.exec(json)?.[1];
        const value64 = /"value":"([^"]*)"/.exec(json)?.[1];
        if (value64 === undefined) return undefined;
        const value = Buffer.from(value64, 'base64').toString('utf8');
        if (leaseId === undefined) return { value, leaseId: '0', remainingS: Number.POSITIVE_INFINITY };
        const ttl = await c.etcdctl(['lease', 'timetolive', BigInt(leaseId).toString(16)]);
        const remaining = /remaining\((-?\d+)s\)/.exec(ttl)?.[1];
        assert.ok(remaining !== undefined, `lease timetolive said: ${ttl}`);
        return { value, leaseId, remainingS: Number(remaining) };
      };

      before(async () => {
        lab = await Lab.create({ prefix: randomLabPrefix('weft-ec'), hosts: 3, underlay: 'bridge', pods: false, extraUnderlayNodes: etcdClusterNodes(MEMBERS) });
        cluster = await EtcdCluster.inLab(lab, MEMBERS);
        await cluster.etcdctl(['put', `${ETCD_PREFIX}/config`, JSON.stringify(NET_CONF)]);
      });

      after(async () => {
        for (const p of pings) p.kill();
        const pids = cluster?.spawnedPids ?? [];
        const dirs = cluster?.dataDirs ?? [];
        await tearDownLab(lab, agents.values(), cluster);
        const alive = pids.filter((pid) => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false;
          }
        });
        assert.deepEqual(alive, [], 'etcd processes left behind');
        assert.deepEqual(dirs.filter((d) => existsSync(d)), [], 'etcd data dirs left behind');
      });

      test('no pod echo lost, no lease lost; every agent stays ready and follows the lease changes', async (t) => {
        const c = cluster as EtcdCluster;
        const endpoints = c.endpoints.join(',');
        for (const i of [1, 2, 3]) {
          agents.set(i, new LabAgent(lab, lab.host(i).ns, [
            '--etcd-endpoints', endpoints, '--net-config-path', path.join(lab.dir, 'absent-net-conf.json'),
            '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTH),
            ...(ttlSeconds === undefined ? [] : ['--subnet-lease-ttl', String(ttlSeconds)]),
          ]));
        }
        for (const [i, a] of agents) {
          await a.waitReady(30_000);
          const env = await addPodInLease(lab, i, a);
          subnets.set(i, env.subnet);
        }
        for (const i of [1, 2, 3]) await waitRoutes(i, (r) => r.length === 2, 'routes to the two other hosts');
        const leasesBefore = new Map<number, KeyLease>();
        for (const [i, s] of subnets) {
          const l = await keyLease(s);
          assert.ok(l !== undefined && l.value === `{"PublicIP":"${lab.host(i).underlayIp}","PublicIPv6":null}`, `host ${i}'s lease: ${JSON.stringify(l)}`);
          assert.ok(leaseAlive(l.remainingS), `the lease's TTL (${l.remainingS} s left)`);
          leasesBefore.set(i, l);
        }

        // every pod pings the next one, each agent sends and receives
        for (const [from, to] of [[1, 2], [2, 3], [3, 1]] as const) {
          pings.push(new PingStream(lab, lab.host(from).podNs as string, lab.host(to).podIp, { intervalS: 0.05, durationS: PING_SECONDS },
            `pod ${from} -> pod ${to}`));
        }
        const t0 = Date.now();
        await Promise.all(pings.map((p) => p.waitReplyAfter(t0 - 1000, 5_000)));

        // 1. the leader dies: the other two elect a new one
        const first = await c.waitLeader();
        await c.kill(first);
        const tKill1 = Date.now();
        const newLeader = await c.waitLeader();
        const electionMs = Date.now() - tKill1;

        // a lease written on two members becomes a route everywhere (each watch is on a live member)
        await c.etcdctl(['put', `${ETCD_PREFIX}/subnets/${HAND_SUBNET.replace('/', '-')}`, HAND_VALUE]);
        const tPut = Date.now();
        for (const i of [1, 2, 3]) await waitRoutes(i, (r) => r.some((x) => x.subnet === HAND_SUBNET), 'the lease written with one member down', 20_000);
        const handRouteMs = Date.now() - tPut;

        // 2. one more member dies: no quorum. Of the two left, the one more agents are connected to, so that watches must move.
        const connectedHosts = async (member: string): Promise<number[]> => {
          const ip = new URL(c.member(member).endpoint).hostname;
          const out: number[] = [];
          for (const i of [1, 2, 3]) {
            const conns = await lab.exec(lab.host(i).ns, 'ss', ['-Htn', 'state', 'established', 'dst', `${ip}:2379`]);
            if (conns.trim() !== '') out.push(i);
          }
          return out;
        };
        const live = c.running();
        const connected = new Map<string, number[]>();
        for (const m of live) connected.set(m, await connectedHosts(m));
        const victim = [...live].sort((a, b) =>
          ((connected.get(b) ?? []).length - (connected.get(a) ?? []).length) || (a === newLeader ? -1 : b === newLeader ? 1 : 0))[0] as string;
        await c.kill(victim);
        const tQuorumLost = Date.now();
        // a leader left alone steps down after an election timeout (etcd's check-quorum)
        await eventually('the lone member without a leader', async () => ((await c.leader()) === undefined ? true : undefined), 10_000, 200)
          .catch((err: unknown) => {
            throw new Error(`${(err as Error).message}\n${c.logs()}`);
          });
        const write = await c.etcdctl(['put', `${ETCD_PREFIX}/probe`, 'x'], 10_000).then(() => 'written', (err: unknown) => (err as Error).message);
        assert.notEqual(write, 'written', 'no write succeeds without quorum');
        await sleep(QUORUM_LOSS_MS / 2 - (Date.now() - tQuorumLost));
        for (const i of [1, 2, 3]) {
          assert.equal((agents.get(i) as LabAgent).exited, false, `agent ${i} runs through the outage:\n${agentLogs()}`);
          assert.equal(await readyz(i), 200, `agent ${i} stays ready while etcd has no quorum`);
        }
        await sleep(QUORUM_LOSS_MS - (Date.now() - tQuorumLost));

        // 3. both come back (the first of them restores quorum)
        await c.restart(victim);
        const quorumLostMs = Date.now() - tQuorumLost;
        await c.restart(first);
        await c.waitHealthy();
        const tRestored = Date.now();

        // the lease watch of every agent still works: deleting the hand-written lease removes its route everywhere
        await c.etcdctl(['del', `${ETCD_PREFIX}/subnets/${HAND_SUBNET.replace('/', '-')}`]);
        for (const i of [1, 2, 3]) await waitRoutes(i, (r) => !r.some((x) => x.subnet === HAND_SUBNET) && r.length === 2, 'the deleted lease\'s route gone', 20_000);
        const resyncMs = Date.now() - tRestored;

        for (const [i, s] of subnets) {
          const l = await keyLease(s);
          const was = leasesBefore.get(i) as KeyLease;
          assert.ok(l !== undefined, `host ${i}'s lease ${formatPrefix(s)} is gone from etcd:\n${agentLogs()}`);
          assert.equal(l.value, was.value, `host ${i}'s lease value`);
          assert.ok(leaseAlive(l.remainingS), `host ${i}'s lease is still alive (${l.remainingS} s left)`);
          const env = await readSubnetEnv((agents.get(i) as LabAgent).subnetFile);
          assert.equal(env === undefined ? '' : formatPrefix(env.subnet), formatPrefix(s), `host ${i}'s subnet.env still names its lease`);
        }
        const listed = (await c.etcdctl(['get', '--prefix', '--keys-only', `${ETCD_PREFIX}/subnets/`])).split('\n').filter((l) => l !== '');
        assert.equal(listed.length, 3, `exactly the three agents' leases: ${listed.join(', ')}`);
        for (const i of [1, 2, 3]) {
          assert.equal((agents.get(i) as LabAgent).exited, false, `agent ${i} still runs:\n${agentLogs()}`);
          assert.equal(await readyz(i), 200, `agent ${i} is ready`);
        }

        await sleep(2_000);
        const summaries: PingSummary[] = [];
        for (const p of pings) summaries.push(await p.finish());
        for (const s of summaries) {
          t.diagnostic(describePing(s));
          assert.ok(s.endedAt > tRestored + 1_000, `${s.what}: the ping ran past the end of the outage`);
          assert.ok(s.transmitted > 0 && s.lost.length === 0 && s.received >= s.transmitted - s.unjudged,
            `${describePing(s)}\n${s.output}\n${agentLogs()}`);
        }
        const storeEvents = [...agents].map(([i, a]) =>
          `host ${i}: ${a.records.filter((r) => r.msg === 'lease store unreachable; routes kept, retrying').length} disconnects, ` +
          `${a.records.filter((r) => r.msg === 'lease store connected').length} connects`).join('; ');
        t.diagnostic(`leader ${first} killed, ${newLeader} elected in ${electionMs} ms; a lease written then was a route on all hosts in ${handRouteMs} ms; ` +
          `then ${victim} killed (hosts with a connection to it: ${(connected.get(victim) ?? []).join(', ') || 'none'})`);
        t.diagnostic(`quorum lost for ${quorumLostMs} ms; after it, a deletion reached all hosts in ${resyncMs} ms; lease watch: ${storeEvents}`);
      });
    });
}

scenario(undefined);
scenario(12);
