/**
 * Time to apply 1,000 peers: how long weft's kernel backends take to program
 * their peers as kernel objects, and what the alternatives would cost. This is
 * the measurement behind src/host/ip-batch.ts (iproute2 batch mode) and the
 * README's figures for it.
 *
 * Per peer lease the vxlan backend keeps three objects (a route, a permanent
 * neighbour and a permanent FDB entry on flannel.1), the host-gw backend one
 * (a route via the peer's public IP on the underlay). Methods:
 *
 *   weft-batch              weft's own code path: reconcilePeers from
 *                           src/backend/kernel-peers.ts, as both backends call it:
 *                           read the kernel back, plan the difference, apply it
 *                           as up to three `ip|bridge -force -batch -` processes.
 *                           Timed for the initial apply (empty kernel), a no-op
 *                           re-apply (read + diff only), one peer changed (a new
 *                           public IP and, for vxlan, a new VtepMAC: a rebuilt
 *                           node) and removing all peers.
 *   one-process-per-object  the same commands (planReconcile's against an empty
 *                           kernel), one `ip`/`bridge` process each, one after
 *                           the other: what calling the tools naively costs.
 *                           Initial apply only.
 *   netlink                 the npm package `netlink` (mildsunrise/node_netlink):
 *                           one rtnetlink request per object over one socket,
 *                           each awaited before the next (as ip -batch does per
 *                           line). The socket is opened and the interface
 *                           indexes looked up before the clock starts, as a
 *                           long-running agent would. Only with --netlink-dir (a
 *                           directory outside this repository where `npm install
 *                           netlink` was run); initial apply only.
 *
 * Every rep starts from an empty kernel (flannel.1 re-created, routes with
 * proto 87 flushed; not timed). After every apply the kernel is read back and
 * must hold exactly the wanted objects (N routes with proto 87, and for vxlan N
 * permanent neighbours and N permanent FDB entries on flannel.1), or the run
 * fails, so every figure is for work that happened. Times are wall clock
 * (process.hrtime.bigint) around the apply alone; the table gives the median
 * over the reps and [min-max].
 *
 * Addresses: underlay eth0 192.168.77.1/16 (a veth whose other end stays in the
 * namespace), peer i's public IP 192.168.(100 + i/250).(i%250 + 1), its subnet
 * the i-th /24 from 10.245.0.0 inside the cluster network 10.240.0.0/12 (a /16
 * holds only 256 /24s), this host's lease 10.244.1.0/24.
 *
 * All of it happens in one throwaway network namespace, wbench-ka-<random>: the
 * benchmark re-executes itself inside it with `ip netns exec` (the internal
 * --inside flag) and deletes it on exit, pass or fail. IPv6 is off in there and
 * no packet leaves it. Needs root and iproute2.
 *
 *   node dist/bench/kernel-apply.js [--peers N] [--reps R] [--json FILE] [--netlink-dir DIR]
 *
 *   --peers N          peer leases (default 1000, at most 2816)
 *   --reps R           repetitions of every figure (default 3)
 *   --json FILE        also write the figures, the machine and the commit as JSON
 *   --netlink-dir DIR  where `npm install netlink` was run (e.g. /tmp/netlink-try);
 *                      without it, or if it does not load, the netlink rows say "skipped"
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planReconcile, reconcilePeers, type PeerObjects, type PlanScope } from '../src/backend/kernel-peers';
import { listPermanentFdb, listPermanentNeighbours, listWeftRoutes, WEFT_ROUTE_PROTO } from '../src/host/kernel-state';
import { formatIpv4, formatPrefix, parseIpv4, type Ipv4Prefix } from '../src/net/ipv4';
import { run, runResult } from '../src/sys/exec';

const UNDERLAY = 'eth0';
const UNDERLAY_OTHER_END = 'underlay0';
const UNDERLAY_ADDRESS = '192.168.77.1';
const VXLAN_DEV = 'flannel.1';
const CLUSTER: Ipv4Prefix = { network: ip4('10.240.0.0'), length: 12 };
const OWN_LEASE: Ipv4Prefix = { network: ip4('10.244.1.0'), length: 24 };
const FIRST_PEER_SUBNET = ip4('10.245.0.0');
const MAX_PEERS = (ip4('10.255.255.0') - FIRST_PEER_SUBNET) / 256 + 1;
/** The public IP peer 0 moves to in the one-change figure (on the underlay's segment). */
const CHANGED_PUBLIC_IP = ip4('192.168.99.1');

type BackendName = 'vxlan' | 'host-gw';
type MethodName = 'weft-batch' | 'one-process-per-object' | 'netlink';
const BACKENDS: readonly BackendName[] = ['vxlan', 'host-gw'];

interface Options {
  readonly peers: number;
  readonly reps: number;
  readonly json: string | undefined;
  readonly netlinkDir: string | undefined;
  /** Set on the re-executed process: the namespace it must be running in. */
  readonly inside: string | undefined;
}

/** One table row: the figures of one method on one backend (empty: not measured). */
interface Row {
  readonly method: MethodName;
  readonly backend: BackendName;
  readonly objects: number;
  readonly initialMs: number[];
  readonly noopMs: number[];
  readonly oneChangeMs: number[];
  readonly removeAllMs: number[];
  /** What the one-change apply did (weft-batch only). */
  oneChange?: { readonly added: number; readonly removed: number } | undefined;
  /** Why the row has no figures. */
  readonly skipped?: string | undefined;
}

function ip4(text: string): number {
  const v = parseIpv4(text);
  if (v === undefined) throw new Error(`not an IPv4 address: ${text}`);
  return v;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---------------------------------------------------------------- options

function positiveInt(flag: string, text: string | undefined, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag} wants an integer from 1 to ${max}, not ${JSON.stringify(text)}`);
  return n;
}

function parseOptions(argv: readonly string[]): Options {
  let peers = 1000;
  let reps = 3;
  let json: string | undefined;
  let netlinkDir: string | undefined;
  let inside: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    i++;
    if (flag === '--peers') peers = positiveInt(flag, value, MAX_PEERS);
    else if (flag === '--reps') reps = positiveInt(flag, value, 1000);
    else if (flag === '--json' && value !== undefined) json = path.resolve(value);
    else if (flag === '--netlink-dir' && value !== undefined) netlinkDir = path.resolve(value);
    else if (flag === '--inside' && value !== undefined) inside = value;
    else throw new Error(`unknown or incomplete option ${JSON.stringify(flag)}; usage: node dist/bench/kernel-apply.js [--peers N] [--reps R] [--json FILE] [--netlink-dir DIR]`);
  }
  return { peers, reps, json, netlinkDir, inside };
}

// ---------------------------------------------------------------- the namespace (outer process)

/** Deletes the namespace when this process exits, however it exits; returns the deletion. */
function deleteNamespaceOnExit(ns: string, child: () => ChildProcess | undefined): () => void {
  let deleted = false;
  const remove = (): void => {
    if (deleted) return;
    deleted = true;
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // never created, or already gone
    }
  };
  process.on('exit', remove);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(signal, () => {
      child()?.kill('SIGTERM');
      process.exit(code);
    });
  }
  return remove;
}

/** The "host": loopback, and the underlay eth0 (a veth whose other end stays inside). */
async function buildHost(ns: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const inNs = (args: string[]): Promise<string> => run('ip', ['-n', ns, ...args]);
  await inNs(['link', 'set', 'lo', 'up']);
  await inNs(['link', 'add', UNDERLAY, 'type', 'veth', 'peer', 'name', UNDERLAY_OTHER_END]);
  await inNs(['addr', 'add', `${UNDERLAY_ADDRESS}/16`, 'dev', UNDERLAY]);
  await inNs(['link', 'set', UNDERLAY_OTHER_END, 'up']);
  await inNs(['link', 'set', UNDERLAY, 'up']);
}

/** Re-executes this file inside the namespace; resolves with its exit code. */
function runInside(ns: string, argv: readonly string[], started: (c: ChildProcess) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, __filename, ...argv, '--inside', ns], { stdio: 'inherit' });
    started(child);
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + (os.constants.signals[signal] ?? 0))));
  });
}

async function outer(argv: readonly string[]): Promise<number> {
  const ns = `wbench-ka-${randomBytes(4).toString('hex')}`;
  let child: ChildProcess | undefined;
  const removeNamespace = deleteNamespaceOnExit(ns, () => child);
  try {
    await run('ip', ['netns', 'add', ns]);
    await buildHost(ns);
    log(`namespace ${ns} ready`);
    return await runInside(ns, argv, (c) => {
      child = c;
    });
  } finally {
    removeNamespace();
    log(`namespace ${ns} deleted`);
  }
}

// ---------------------------------------------------------------- peers and kernel state (inner process)

function publicIpOf(i: number): number {
  return ip4(`192.168.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`);
}

/** A locally administered unicast VtepMAC; generation 1 is the rebuilt node's. */
function vtepMacOf(i: number, generation: number): string {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `0e:00:00:${hex(generation)}:${hex(i >> 8)}:${hex(i & 255)}`;
}

/** Peer i's kernel objects as the backend's translate() would make them; generation 1 = moved to a new public IP (and VtepMAC). */
function peerObjects(backend: BackendName, i: number, generation: number): PeerObjects {
  const subnet: Ipv4Prefix = { network: (FIRST_PEER_SUBNET + i * 256) >>> 0, length: 24 };
  const publicIp = generation === 0 ? publicIpOf(i) : CHANGED_PUBLIC_IP;
  if (backend === 'host-gw') return { subnet, route: { gateway: publicIp, dev: UNDERLAY, onlink: false } };
  const mac = vtepMacOf(i, generation);
  return {
    subnet,
    route: { gateway: subnet.network, dev: VXLAN_DEV, onlink: true },
    neighbour: { ip: subnet.network, mac },
    fdb: { mac, dst: publicIp },
  };
}

/** N peers; with `changed`, peer 0 has moved. */
function desiredPeers(backend: BackendName, n: number, changed = false): PeerObjects[] {
  return Array.from({ length: n }, (_, i) => peerObjects(backend, i, changed && i === 0 ? 1 : 0));
}

function objectsPerPeer(backend: BackendName): number {
  return backend === 'vxlan' ? 3 : 1;
}

function scopeOf(backend: BackendName): PlanScope {
  return { network: CLUSTER, own: OWN_LEASE, device: backend === 'vxlan' ? VXLAN_DEV : undefined };
}

/** Refuses to touch the kernel unless this process is inside the benchmark's own namespace. */
async function assertInNamespace(ns: string): Promise<void> {
  const here = (await run('ip', ['netns', 'identify', String(process.pid)])).trim();
  if (!ns.startsWith('wbench-ka-') || here !== ns) {
    throw new Error(`--inside ${ns} but this process is in namespace ${JSON.stringify(here)}: refusing to flush anything here`);
  }
}

/** An empty kernel: flannel.1 re-created (its neighbours, FDB entries and routes go with it), proto 87 routes flushed. */
async function resetKernel(): Promise<void> {
  await runResult('ip', ['link', 'del', VXLAN_DEV]); // absent the first time
  await run('ip', ['link', 'add', VXLAN_DEV, 'type', 'vxlan', 'id', '1', 'local', UNDERLAY_ADDRESS, 'dev', UNDERLAY, 'dstport', '8472', 'nolearning']);
  await run('ip', ['addr', 'add', `${formatIpv4(OWN_LEASE.network)}/32`, 'dev', VXLAN_DEV]);
  await run('ip', ['link', 'set', VXLAN_DEV, 'up']);
  await runResult('ip', ['route', 'flush', 'table', 'main', 'proto', String(WEFT_ROUTE_PROTO)]); // checked just below
  await verifyKernel('reset', []);
}

function compareSets(what: string, actual: string[], wanted: string[]): void {
  const a = new Set(actual);
  const w = new Set(wanted);
  const missing = wanted.filter((x) => !a.has(x));
  const extra = actual.filter((x) => !w.has(x));
  if (actual.length === wanted.length && missing.length === 0 && extra.length === 0) return;
  throw new Error(`kernel check failed: ${actual.length} ${what}, expected ${wanted.length}` +
    `${missing.length > 0 ? `; missing e.g. ${missing[0]}` : ''}${extra.length > 0 ? `; unexpected e.g. ${extra[0]}` : ''}`);
}

/** The kernel must hold exactly `desired`'s objects: routes with proto 87, permanent neighbours and FDB entries on flannel.1. */
async function verifyKernel(when: string, desired: readonly PeerObjects[]): Promise<void> {
  const [routes, neighbours, fdb] = await Promise.all([listWeftRoutes(), listPermanentNeighbours(VXLAN_DEV), listPermanentFdb(VXLAN_DEV)]);
  const routeKey = (dst: Ipv4Prefix, gw: number | undefined, dev: string | undefined, onlink: boolean): string =>
    `${formatPrefix(dst)} via ${gw === undefined ? '-' : formatIpv4(gw)} dev ${dev ?? '-'}${onlink ? ' onlink' : ''}`;
  try {
    compareSets(`routes with proto ${WEFT_ROUTE_PROTO}`,
      routes.map((r) => routeKey(r.dst, r.gateway, r.dev, r.onlink)),
      desired.map((p) => routeKey(p.subnet, p.route.gateway, p.route.dev, p.route.onlink)));
    compareSets(`permanent neighbours on ${VXLAN_DEV}`,
      neighbours.map((n) => `${formatIpv4(n.ip)} ${n.mac}`),
      desired.flatMap((p) => (p.neighbour === undefined ? [] : [`${formatIpv4(p.neighbour.ip)} ${p.neighbour.mac}`])));
    compareSets(`permanent FDB entries on ${VXLAN_DEV}`,
      fdb.map((e) => `${e.mac} ${formatIpv4(e.dst)}`),
      desired.flatMap((p) => (p.fdb === undefined ? [] : [`${p.fdb.mac} ${formatIpv4(p.fdb.dst)}`])));
  } catch (err) {
    throw new Error(`after ${when}: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------- timing

async function timed<T>(body: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await body();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function emptyRow(method: MethodName, backend: BackendName, peers: number, skipped?: string): Row {
  return { method, backend, objects: peers * objectsPerPeer(backend), initialMs: [], noopMs: [], oneChangeMs: [], removeAllMs: [], skipped };
}

// ---------------------------------------------------------------- method: weft-batch

type Reconciled = Awaited<ReturnType<typeof reconcilePeers>>;

function expectReport(when: string, r: Reconciled, check: (added: number, removed: number) => boolean): void {
  if (r.failed.length > 0) throw new Error(`${when}: ${r.failed.length} peers failed, e.g. ${r.failed[0]?.reason}`);
  if (!check(r.added, r.removed)) throw new Error(`${when}: unexpected report: added ${r.added}, removed ${r.removed}`);
}

async function measureWeftBatch(backend: BackendName, opts: Options): Promise<Row> {
  const row = emptyRow('weft-batch', backend, opts.peers);
  const desired = desiredPeers(backend, opts.peers);
  const changed = desiredPeers(backend, opts.peers, true);
  const scope = scopeOf(backend);
  for (let rep = 0; rep < opts.reps; rep++) {
    await resetKernel();
    const initial = await timed(() => reconcilePeers(desired, scope));
    expectReport('initial apply', initial.value, (a, r) => a === row.objects && r === 0);
    await verifyKernel('initial apply', desired);
    const noop = await timed(() => reconcilePeers(desired, scope));
    expectReport('no-op re-apply', noop.value, (a, r) => a === 0 && r === 0);
    await verifyKernel('no-op re-apply', desired);
    const change = await timed(() => reconcilePeers(changed, scope));
    expectReport('one change', change.value, (a, r) => a + r > 0 && a + r <= 3);
    await verifyKernel('one change', changed);
    const removal = await timed(() => reconcilePeers([], scope));
    expectReport('remove all', removal.value, (a, r) => a === 0 && r === row.objects);
    await verifyKernel('remove all', []);
    row.initialMs.push(initial.ms);
    row.noopMs.push(noop.ms);
    row.oneChangeMs.push(change.ms);
    row.removeAllMs.push(removal.ms);
    row.oneChange = { added: change.value.added, removed: change.value.removed };
    log(`  ${backend} weft-batch rep ${rep + 1}: initial ${initial.ms.toFixed(1)} ms, no-op ${noop.ms.toFixed(1)} ms, ` +
      `one change ${change.ms.toFixed(1)} ms, remove all ${removal.ms.toFixed(1)} ms`);
  }
  return row;
}

// ---------------------------------------------------------------- method: one process per object

async function measureOneProcessPerObject(backend: BackendName, opts: Options): Promise<Row> {
  const row = emptyRow('one-process-per-object', backend, opts.peers);
  const desired = desiredPeers(backend, opts.peers);
  const plan = planReconcile(desired, { routes: [], neighbours: [], fdb: [] }, scopeOf(backend));
  const commands: [string, string[]][] = [
    ...plan.fdbFirst.map((c): [string, string[]] => ['bridge', c.command.split(' ')]),
    ...plan.ip.map((c): [string, string[]] => ['ip', c.command.split(' ')]),
  ];
  if (commands.length !== row.objects) throw new Error(`planned ${commands.length} commands for ${row.objects} objects`);
  for (let rep = 0; rep < opts.reps; rep++) {
    await resetKernel();
    const initial = await timed(async () => {
      for (const [tool, args] of commands) await run(tool, args);
    });
    await verifyKernel('one-process-per-object apply', desired);
    row.initialMs.push(initial.ms);
    log(`  ${backend} one-process-per-object rep ${rep + 1}: initial ${initial.ms.toFixed(1)} ms`);
  }
  return row;
}

// ---------------------------------------------------------------- method: netlink (optional npm package)

/** The part of the `netlink` package's API used here (its typings live outside this repository). */
interface NetlinkRequestOptions {
  readonly flags: number;
}
interface RtNetlinkSocket {
  getLinks(): Promise<readonly { readonly data: { readonly index?: number }; readonly attrs: { readonly ifname?: string } }[]>;
  newNeighbor(data: object, attrs: object, options: NetlinkRequestOptions): Promise<unknown>;
  newRoute(data: object, attrs: object, options: NetlinkRequestOptions): Promise<unknown>;
  readonly socket: { close(): void };
}
interface NetlinkModule {
  createRtNetlink(): RtNetlinkSocket;
  readonly FlagsNew: { readonly CREATE: number; readonly REPLACE: number };
}
type NetlinkLoad = { readonly api: NetlinkModule; readonly version: string } | { readonly skipped: string };

const AF_INET = 2;
const AF_BRIDGE = 7;
const RT_TABLE_MAIN = 254;
/** RTNH_F_ONLINK, in rtmsg's rtm_flags (the package's RouteFlags only names RTM_F_*; __unknown passes raw bits). */
const RTNH_F_ONLINK = 4;

function loadNetlink(dir: string | undefined): NetlinkLoad {
  if (dir === undefined) return { skipped: 'no --netlink-dir given' };
  try {
    const api = require(require.resolve('netlink', { paths: [dir] })) as NetlinkModule;
    const pkg = JSON.parse(readFileSync(require.resolve('netlink/package.json', { paths: [dir] }), 'utf8')) as { version?: string };
    return { api, version: pkg.version ?? '?' };
  } catch (err) {
    return { skipped: `cannot load netlink from ${dir}: ${(err as Error).message.split('\n')[0]}` };
  }
}

const addrBytes = (addr: number): Buffer => Buffer.from([addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255]);
const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));

/** One request per object, in ip-batch's order: FDB entries, neighbours, routes. */
function netlinkRequests(api: NetlinkModule, sock: RtNetlinkSocket, desired: readonly PeerObjects[], ifindex: ReadonlyMap<string, number>): (() => Promise<unknown>)[] {
  const options = { flags: api.FlagsNew.CREATE | api.FlagsNew.REPLACE };
  const index = (dev: string): number => {
    const i = ifindex.get(dev);
    if (i === undefined) throw new Error(`no interface ${dev}`);
    return i;
  };
  const fdb = desired.flatMap((p) => (p.fdb === undefined ? [] : [() => sock.newNeighbor(
    { family: AF_BRIDGE, ifindex: index(VXLAN_DEV), state: { permanent: true }, flags: { self: true } },
    { lladdr: macBytes(p.fdb?.mac ?? ''), dst: addrBytes(p.fdb?.dst ?? 0) }, options)]));
  const neigh = desired.flatMap((p) => (p.neighbour === undefined ? [] : [() => sock.newNeighbor(
    { family: AF_INET, ifindex: index(VXLAN_DEV), state: { permanent: true } },
    { dst: addrBytes(p.neighbour?.ip ?? 0), lladdr: macBytes(p.neighbour?.mac ?? '') }, options)]));
  const routes = desired.map((p) => () => sock.newRoute(
    {
      family: AF_INET, dstLen: p.subnet.length, table: RT_TABLE_MAIN, protocol: WEFT_ROUTE_PROTO, scope: 'UNIVERSE', type: 'UNICAST',
      ...(p.route.onlink ? { flags: { __unknown: RTNH_F_ONLINK } } : {}),
    },
    { dst: addrBytes(p.subnet.network), gateway: addrBytes(p.route.gateway), oif: index(p.route.dev) }, options));
  return [...fdb, ...neigh, ...routes];
}

async function measureNetlink(backend: BackendName, opts: Options, api: NetlinkModule): Promise<Row> {
  const row = emptyRow('netlink', backend, opts.peers);
  const desired = desiredPeers(backend, opts.peers);
  const sock = api.createRtNetlink();
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      await resetKernel();
      const links = await sock.getLinks();
      const ifindex = new Map(links.map((l) => [l.attrs.ifname ?? '', l.data.index ?? 0]));
      const requests = netlinkRequests(api, sock, desired, ifindex);
      if (requests.length !== row.objects) throw new Error(`planned ${requests.length} requests for ${row.objects} objects`);
      const initial = await timed(async () => {
        for (const request of requests) await request();
      });
      await verifyKernel('netlink apply', desired);
      row.initialMs.push(initial.ms);
      log(`  ${backend} netlink rep ${rep + 1}: initial ${initial.ms.toFixed(1)} ms`);
    }
  } finally {
    sock.socket.close();
  }
  return row;
}

// ---------------------------------------------------------------- report

function cell(xs: readonly number[], skipped: string | undefined): string {
  if (skipped !== undefined) return 'skipped';
  if (xs.length === 0) return '-';
  return `${median(xs).toFixed(1)} [${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}]`;
}

function formatTable(rows: readonly Row[], opts: Options): string {
  const header = ['method', 'backend', 'objects', 'initial apply ms', 'no-op re-apply ms', 'one-change ms', 'remove-all ms'];
  const body = rows.map((r) => [r.method, r.backend, String(r.objects),
    cell(r.initialMs, r.skipped), cell(r.noopMs, r.skipped), cell(r.oneChangeMs, r.skipped), cell(r.removeAllMs, r.skipped)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [
    `time to apply ${opts.peers} peers: median [min-max] of ${opts.reps} reps, wall clock`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}

function gitCommit(): { commit: string; dirty: boolean } {
  const repo = path.resolve(__dirname, '..', '..');
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repo, encoding: 'utf8' });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

async function machine(): Promise<Record<string, unknown>> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    kernel: os.release(),
    node: process.version,
    iproute2: (await run('ip', ['-V'])).trim(),
    loadavg: os.loadavg(),
  };
}

function writeJson(file: string, rows: readonly Row[], opts: Options, netlink: NetlinkLoad, meta: Record<string, unknown>): void {
  const summary = (xs: readonly number[]): object | null =>
    xs.length === 0 ? null : { medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs), runsMs: xs };
  const doc = {
    benchmark: 'kernel-apply',
    date: new Date().toISOString(),
    ...gitCommit(),
    ...meta,
    options: { peers: opts.peers, reps: opts.reps },
    netlink: 'skipped' in netlink ? { status: 'skipped', reason: netlink.skipped } : { status: 'measured', package: 'netlink', version: netlink.version },
    results: rows.map((r) => ({
      method: r.method,
      backend: r.backend,
      objects: r.objects,
      ...(r.skipped === undefined ? {} : { skipped: r.skipped }),
      initialApply: summary(r.initialMs),
      noopReapply: summary(r.noopMs),
      oneChange: r.oneChange === undefined ? summary(r.oneChangeMs) : { ...summary(r.oneChangeMs), objectsAdded: r.oneChange.added, objectsRemoved: r.oneChange.removed },
      removeAll: summary(r.removeAllMs),
    })),
  };
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  log(`wrote ${file}`);
}

// ---------------------------------------------------------------- inner process

async function inside(ns: string, opts: Options): Promise<void> {
  await assertInNamespace(ns);
  const meta = { machine: await machine() };
  const netlink = loadNetlink(opts.netlinkDir);
  if ('skipped' in netlink) log(`netlink: skipped (${netlink.skipped})`);
  const rows: Row[] = [];
  for (const backend of BACKENDS) {
    log(`${backend}: ${opts.peers} peers, ${opts.peers * objectsPerPeer(backend)} objects`);
    rows.push(await measureWeftBatch(backend, opts));
    rows.push(await measureOneProcessPerObject(backend, opts));
    rows.push('skipped' in netlink ? emptyRow('netlink', backend, opts.peers, netlink.skipped) : await measureNetlink(backend, opts, netlink.api));
  }
  await resetKernel();
  meta.machine['loadavgAfter'] = os.loadavg();
  process.stdout.write(`${formatTable(rows, opts)}\n`);
  if ('skipped' in netlink) process.stdout.write(`netlink: skipped (${netlink.skipped})\n`);
  if (opts.json !== undefined) writeJson(opts.json, rows, opts, netlink, meta);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  if (opts.inside !== undefined) {
    await inside(opts.inside, opts);
    return;
  }
  process.exitCode = await outer(argv);
}

main().catch((err: unknown) => {
  process.stderr.write(`kernel-apply: FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
