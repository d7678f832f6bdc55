/**
 * Leases become a backend's peers (src/agent/peer-feed.ts): peerOf and
 * leaseProblem, then PeerFeed with a fake backend and a logger whose records
 * are kept, to check what is said once, what again, and what never.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';

import { leaseProblem, MAX_IGNORED_LINES, MAX_PEERS, overlappingLeases, peerOf, PeerFeed } from '../../src/agent/peer-feed';
import { ACCEPTED, type ApplyReport, type Backend, type Peer, type PeerVerdict, type RouteView } from '../../src/backend/backend';
import type { Logger } from '../../src/log';
import { prefixesOverlap, type Ipv4Prefix } from '../../src/net/ipv4';
import type { Lease, LeaseAttrs } from '../../src/subnet/lease';
import { ip, network } from '../addresses';

const NETWORK = network('10.244.0.0/16');
const OWN = network('10.244.1.0/24');

function lease(subnet: string, publicIp: string, backendType = 'vxlan', extra: { data?: unknown; port?: number } = {}): Lease {
  const attrs: LeaseAttrs = extra.data === undefined ? { publicIp: ip(publicIp), backendType } : { publicIp: ip(publicIp), backendType, backendData: extra.data };
  return { subnet: network(subnet), attrs, expiration: new Date(1_800_000_000_000), underlayPort: extra.port };
}

const ME = lease('10.244.1.0/24', '192.168.64.1');
const A = lease('10.244.2.0/24', '192.168.64.2');
const B = lease('10.244.3.0/24', '192.168.64.3');
const UDP_C = lease('10.244.4.0/24', '192.168.64.4', '');

/** Accepts vxlan leases only (with the vxlan backend's wording) and reports what it is told to. */
class FakeBackend implements Backend {
  readonly type = 'vxlan';
  readonly mtu = 1450;
  onFatal: (err: Error) => void = () => undefined;
  /** Every peer set applyPeers got. */
  readonly applied: Peer[][] = [];
  /** Every peer accepts() was asked about, by publicIp. */
  readonly asked: number[] = [];
  /** The report of the next applyPeers calls, in order; when empty, everything is routed and nothing changed. */
  readonly reports: Array<(peers: readonly Peer[]) => ApplyReport> = [];
  private current: readonly Peer[] = [];

  async prepare(): Promise<LeaseAttrs> {
    return { publicIp: ip('192.168.64.1'), backendType: 'vxlan' };
  }

  async start(): Promise<void> {
    // nothing to bring up
  }

  accepts(peer: Peer): PeerVerdict {
    this.asked.push(peer.publicIp);
    return peer.backendType === 'vxlan'
      ? ACCEPTED
      : { ok: false, reason: `its BackendType is "${peer.backendType}"; the vxlan backend uses only vxlan leases (as flanneld does)` };
  }

  async applyPeers(peers: readonly Peer[]): Promise<ApplyReport> {
    this.applied.push([...peers]);
    this.current = peers;
    const next = this.reports.shift();
    return next === undefined ? { routed: peers.length, added: 0, removed: 0, failed: [] } : next(peers);
  }

  routes(): readonly RouteView[] {
    return this.current.map((p) => ({ subnet: p.subnet, publicIp: p.publicIp, via: 'vxlan' }));
  }

  dataPlane(): null {
    return null;
  }

  registerMetrics(): void {
    // none
  }

  async stop(): Promise<void> {
    // nothing to stop
  }
}

interface Said {
  level: string;
  msg: string;
  [field: string]: unknown;
}

const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error' };

/** A debug-level pino logger whose records land in `lines`, without time/pid/hostname. */
function capturingLogger(): { log: Logger; lines: Said[] } {
  const lines: Said[] = [];
  const log = pino({ level: 'debug', base: undefined, timestamp: false }, {
    write(chunk: string): void {
      const record = JSON.parse(chunk) as { level: number; msg: string };
      lines.push({ ...record, level: LEVELS[record.level] ?? String(record.level) });
    },
  });
  return { log, lines };
}

function fixture(subnetLen?: number): { backend: FakeBackend; feed: PeerFeed; lines: Said[]; delivered: Array<{ peers: Peer[]; report: ApplyReport }> } {
  const backend = new FakeBackend();
  const { log, lines } = capturingLogger();
  const delivered: Array<{ peers: Peer[]; report: ApplyReport }> = [];
  const feed = new PeerFeed(backend, {
    own: OWN, network: NETWORK, log, onApplied: (peers, report) => delivered.push({ peers: [...peers], report }),
    ...(subnetLen !== undefined ? { subnetLen } : {}),
  });
  return { backend, feed, lines, delivered };
}

/** The records other than 'routes updated' (which most tests do not look at). */
const said = (lines: readonly Said[]): Said[] => lines.filter((l) => l.msg !== 'routes updated');
const take = (lines: Said[]): Said[] => said(lines.splice(0));

const failing = (subnet: string, reason: string) => (peers: readonly Peer[]): ApplyReport =>
  ({ routed: peers.length - 1, added: 0, removed: 0, failed: [{ subnet: network(subnet), reason }] });

describe('peerOf', () => {
  it('carries the subnet, public IP, BackendType, BackendData and underlay port', () => {
    const data = { VNI: 1, VtepMAC: '0e:a1:b2:c3:d4:e5' };
    assert.deepEqual(peerOf(lease('10.244.2.0/24', '192.168.64.2', 'vxlan', { data, port: 8472 })), {
      subnet: network('10.244.2.0/24'), publicIp: ip('192.168.64.2'), backendType: 'vxlan', backendData: data, port: 8472,
    });
    assert.equal(peerOf(lease('10.244.2.0/24', '192.168.64.2', 'vxlan', { data })).backendData, data, 'the very object');
  });

  it('a lease without a BackendType is a udp peer; no data and no port stay undefined', () => {
    assert.deepEqual(peerOf(UDP_C), {
      subnet: network('10.244.4.0/24'), publicIp: ip('192.168.64.4'), backendType: 'udp', backendData: undefined, port: undefined,
    });
  });
});

describe('leaseProblem', () => {
  it('a subnet inside the network and clear of this host\'s is fine', () => {
    assert.equal(leaseProblem(A, NETWORK, OWN), undefined);
    assert.equal(leaseProblem(lease('10.244.255.252/30', '192.168.64.9'), NETWORK, OWN), undefined);
    assert.equal(leaseProblem(lease('10.244.0.0/24', '192.168.64.9'), NETWORK, OWN), undefined);
  });

  it('a subnet outside the cluster network, or wider than it', () => {
    for (const s of ['10.245.2.0/24', '192.168.0.0/24', '10.0.0.0/8', '10.244.0.0/15']) {
      assert.deepEqual(leaseProblem(lease(s, '192.168.64.9'), NETWORK, OWN),
        { reason: 'outside_network', text: 'its subnet is outside the cluster network 10.244.0.0/16' }, s);
    }
  });

  it('a subnet overlapping this host\'s own, from inside or from outside', () => {
    for (const s of ['10.244.1.0/24', '10.244.1.128/25', '10.244.1.7/32', '10.244.0.0/23', '10.244.0.0/16']) {
      assert.deepEqual(leaseProblem(lease(s, '192.168.64.9'), NETWORK, OWN),
        { reason: 'overlaps_own_subnet', text: 'its subnet overlaps this host\'s own subnet 10.244.1.0/24' }, s);
    }
  });

  it('a PublicIP no host can be reached at, or inside the cluster network', () => {
    for (const publicIp of ['0.0.0.0', '127.0.0.1', '127.9.9.9', '224.0.0.1', '239.1.2.3', '240.0.0.1', '255.255.255.255']) {
      assert.deepEqual(leaseProblem(lease('10.244.7.0/24', publicIp), NETWORK, OWN),
        { reason: 'bogus_public_ip', text: `its PublicIP ${publicIp} is not an address a host can be reached at` }, publicIp);
    }
    for (const publicIp of ['10.244.7.9', '10.244.1.3']) {
      assert.deepEqual(leaseProblem(lease('10.244.7.0/24', publicIp), NETWORK, OWN),
        { reason: 'bogus_public_ip', text: `its PublicIP ${publicIp} is inside a pod subnet` }, publicIp);
    }
    // flannel clusters may number their nodes inside the Network, outside SubnetMin..SubnetMax
    for (const publicIp of ['1.0.0.1', '126.255.255.255', '128.0.0.1', '223.255.255.254', '10.245.0.1', '10.244.200.4']) {
      assert.equal(leaseProblem(lease('10.244.7.0/24', publicIp), NETWORK, OWN), undefined, publicIp);
    }
  });
});

describe('overlappingLeases', () => {
  const subnets = (m: Map<Lease, Ipv4Prefix>): string[][] =>
    [...m].map(([l, other]) => [fmt(l.subnet), fmt(other)]).sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
  const fmt = (p: Ipv4Prefix): string => `${p.network >>> 24}.${(p.network >>> 16) & 255}.${(p.network >>> 8) & 255}.${p.network & 255}/${p.length}`;

  it('names both sides of each overlap, and nothing else', () => {
    const leases = ['10.244.2.0/24', '10.244.2.128/25', '10.244.3.0/24', '10.244.4.0/23', '10.244.5.0/24', '10.244.8.0/24']
      .map((s) => lease(s, '192.168.64.9'));
    assert.deepEqual(subnets(overlappingLeases(leases)), [
      ['10.244.2.0/24', '10.244.2.128/25'],
      ['10.244.2.128/25', '10.244.2.0/24'],
      ['10.244.4.0/23', '10.244.5.0/24'],
      ['10.244.5.0/24', '10.244.4.0/23'],
    ]);
  });

  it('agrees with a pairwise check on random lease sets', () => {
    let seed = 12345;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let round = 0; round < 200; round++) {
      const leases = Array.from({ length: next() % 12 }, () => {
        const length = 22 + (next() % 5);
        const network = ((0x0af40000 + ((next() % 64) << 8)) & ~((1 << (32 - length)) - 1)) >>> 0;
        return lease(fmt({ network, length }), '192.168.64.9');
      });
      const found = overlappingLeases(leases);
      for (const a of leases) {
        const overlapsAny = leases.some((b) => b !== a && prefixesOverlap(a.subnet, b.subnet));
        assert.equal(found.has(a), overlapsAny, `round ${round}: ${fmt(a.subnet)} among ${leases.map((l) => fmt(l.subnet)).join(' ')}`);
      }
    }
  });
});

describe('PeerFeed', () => {
  it('never gives this host\'s own lease to the backend, nor asks about it, nor mentions it', async () => {
    const { backend, feed, lines } = fixture();
    await feed.apply([ME, A, lease('10.244.1.0/24', '192.168.64.1', 'udp'), B], 'events');
    assert.deepEqual(backend.applied, [[peerOf(A), peerOf(B)]]);
    assert.deepEqual(backend.asked, [ip('192.168.64.2'), ip('192.168.64.3')]);
    assert.deepEqual(feed.peers(), [peerOf(A), peerOf(B)]);
    assert.deepEqual(said(lines), []);
  });

  it('a lease the backend rejects is logged once at warn with its reason, again only when the reason changes', async () => {
    const { backend, feed, lines } = fixture();
    await feed.apply([A, UDP_C], 'events');
    assert.deepEqual(backend.applied, [[peerOf(A)]]);
    const udpReason = 'its BackendType is "udp"; the vxlan backend uses only vxlan leases (as flanneld does)';
    assert.deepEqual(take(lines), [{
      level: 'warn', subnet: '10.244.4.0/24', publicIp: '192.168.64.4', backendType: 'udp', reason: udpReason,
      msg: `ignoring the lease of 10.244.4.0/24: ${udpReason}`,
    }]);

    await feed.apply([A, UDP_C], 'events');
    await feed.apply([UDP_C, A], 'events');
    assert.deepEqual(take(lines), [], 'the same reason is not said again');

    const hostGw = lease('10.244.4.0/24', '192.168.64.4', 'host-gw');
    await feed.apply([A, hostGw], 'events');
    const hostGwReason = 'its BackendType is "host-gw"; the vxlan backend uses only vxlan leases (as flanneld does)';
    assert.deepEqual(take(lines), [{
      level: 'warn', subnet: '10.244.4.0/24', publicIp: '192.168.64.4', backendType: 'host-gw', reason: hostGwReason,
      msg: `ignoring the lease of 10.244.4.0/24: ${hostGwReason}`,
    }]);
    assert.equal(backend.applied.length, 4);
    assert.deepEqual(backend.applied[3], [peerOf(A)]);
  });

  it('a lease outside the network or overlapping this host\'s is refused without asking the backend', async () => {
    const { backend, feed, lines } = fixture();
    await feed.apply([lease('10.245.2.0/24', '192.168.64.7'), lease('10.244.1.128/25', '192.168.64.8')], 'events');
    assert.deepEqual(backend.asked, []);
    assert.deepEqual(backend.applied, [[]]);
    assert.deepEqual(take(lines).map((l) => [l.level, l.msg]), [ // in subnet order
      ['warn', 'ignoring the lease of 10.244.1.128/25: its subnet overlaps this host\'s own subnet 10.244.1.0/24'],
      ['warn', 'ignoring the lease of 10.245.2.0/24: its subnet is outside the cluster network 10.244.0.0/16'],
    ]);
  });

  it('a rejected lease that goes away and comes back is said again', async () => {
    const { feed, lines } = fixture();
    await feed.apply([UDP_C], 'events');
    await feed.apply([], 'events');
    await feed.apply([UDP_C], 'events');
    assert.deepEqual(take(lines).map((l) => l.level), ['warn', 'warn']);
  });

  it('a peer the backend could not program is logged once at error, and "routed now" once it is', async () => {
    const { backend, feed, lines } = fixture();
    backend.reports.push(failing('10.244.2.0/24', 'route in the way'), failing('10.244.2.0/24', 'route in the way'));
    await feed.apply([A, B], 'events');
    assert.deepEqual(take(lines), [{ level: 'error', subnet: '10.244.2.0/24', reason: 'route in the way', msg: 'no route to 10.244.2.0/24: route in the way' }]);
    await feed.apply([A, B], 'events');
    assert.deepEqual(take(lines), [], 'the same failure is not said again');
    await feed.apply([A, B], 'events');
    assert.deepEqual(take(lines), [{ level: 'info', subnet: '10.244.2.0/24', msg: '10.244.2.0/24 is routed now' }]);
    await feed.apply([A, B], 'events');
    assert.deepEqual(take(lines), [], 'routed is said once');
  });

  it('a failure whose reason changes is said again', async () => {
    const { backend, feed, lines } = fixture();
    backend.reports.push(failing('10.244.3.0/24', 'first'), failing('10.244.3.0/24', 'second'));
    await feed.apply([A, B], 'events');
    await feed.apply([A, B], 'events');
    assert.deepEqual(take(lines).map((l) => l.msg), ['no route to 10.244.3.0/24: first', 'no route to 10.244.3.0/24: second']);
  });

  it('a rejected lease that becomes acceptable is "routed now"', async () => {
    const { feed, lines } = fixture();
    await feed.apply([UDP_C], 'events');
    await feed.apply([lease('10.244.4.0/24', '192.168.64.4', 'vxlan')], 'events');
    assert.deepEqual(take(lines).map((l) => [l.level, l.msg]), [
      ['warn', 'ignoring the lease of 10.244.4.0/24: its BackendType is "udp"; the vxlan backend uses only vxlan leases (as flanneld does)'],
      ['info', '10.244.4.0/24 is routed now'],
    ]);
  });

  it('a failure that belongs to no peer (removing stale state) is logged once with its reason as the message', async () => {
    const { backend, feed, lines } = fixture();
    const stale = (): ApplyReport => ({ routed: 1, added: 0, removed: 0, failed: [{ subnet: NETWORK, reason: 'removing stale state: ip route del 10.244.9.0/24 proto 87: RTNETLINK answers: No such process' }] });
    backend.reports.push(stale, stale);
    await feed.apply([A], 'events');
    await feed.apply([A], 'events');
    assert.deepEqual(take(lines), [{
      level: 'error',
      reason: 'removing stale state: ip route del 10.244.9.0/24 proto 87: RTNETLINK answers: No such process',
      msg: 'removing stale state: ip route del 10.244.9.0/24 proto 87: RTNETLINK answers: No such process',
    }]);
  });

  it('"routes updated" at info when something changed, or on a snapshot or start, with the routes', async () => {
    const { backend, feed, lines } = fixture();
    backend.reports.push((peers) => ({ routed: peers.length, added: 2, removed: 0, failed: [] }));
    await feed.apply([A, B], 'events');
    assert.deepEqual(lines, [{
      level: 'info', why: 'events', count: 2, added: 2, removed: 0,
      routes: ['10.244.2.0/24=192.168.64.2 (vxlan)', '10.244.3.0/24=192.168.64.3 (vxlan)'], msg: 'routes updated',
    }]);
    lines.length = 0;
    await feed.apply([A, B], 'events');
    assert.equal(lines.length, 0, 'nothing changed: nothing said');
    backend.reports.push((peers) => ({ routed: peers.length, added: 0, removed: 1, failed: [] }));
    await feed.apply([A], 'events');
    assert.deepEqual(lines.map((l) => [l.msg, l.added, l.removed, l.count]), [['routes updated', 0, 1, 1]]);
    lines.length = 0;
    await feed.apply([A], 'snapshot');
    await feed.apply([A], 'start');
    assert.deepEqual(lines.map((l) => [l.msg, l.why, l.added, l.removed]), [['routes updated', 'snapshot', 0, 0], ['routes updated', 'start', 0, 0]]);
  });

  it('more than 16 routes: counted at info, listed at debug', async () => {
    const { feed, lines } = fixture();
    const many = Array.from({ length: 17 }, (_, i) => lease(`10.244.${10 + i}.0/24`, `192.168.64.${10 + i}`));
    await feed.apply(many, 'start');
    assert.equal(lines.length, 2);
    // no `routes` field: the list goes to debug
    assert.deepEqual(lines[0], { level: 'info', why: 'start', count: 17, added: 0, removed: 0, msg: 'routes updated' });
    assert.equal(lines[1]?.level, 'debug');
    assert.equal(lines[1]?.msg, 'all routes');
    assert.equal((lines[1]?.routes as string[]).length, 17);
    assert.equal((lines[1]?.routes as string[])[16], '10.244.26.0/24=192.168.64.26 (vxlan)');
  });

  it('onApplied gets every delivery\'s peers and report; peers() is the last delivery', async () => {
    const { backend, feed, delivered } = fixture();
    backend.reports.push(failing('10.244.2.0/24', 'x'));
    await feed.apply([A, B, UDP_C], 'events');
    await feed.apply([B], 'events');
    assert.deepEqual(delivered, [
      { peers: [peerOf(A), peerOf(B)], report: { routed: 1, added: 0, removed: 0, failed: [{ subnet: network('10.244.2.0/24'), reason: 'x' }] } },
      { peers: [peerOf(B)], report: { routed: 1, added: 0, removed: 0, failed: [] } },
    ]);
    assert.deepEqual(feed.peers(), [peerOf(B)]);
  });
});

describe('PeerFeed and hostile leases', () => {
  it('leaves out every lease someone else wrote wrong, names each once, counts them by reason, and routes the rest', async () => {
    const { backend, feed, lines } = fixture(24);
    const hostile = [
      lease('10.245.9.0/24', '192.168.64.9'), // outside the network
      lease('10.244.2.128/25', '192.168.64.66'), // inside A's /24: would take half of A's traffic
      lease('10.244.8.0/22', '192.168.64.66'), // covers four /24s
      lease('10.244.9.0/24', '127.0.0.1'), // loopback
      lease('10.244.10.0/24', '10.244.10.7'), // a PublicIP inside its own pod subnet
      lease('10.244.11.0/24', '192.168.64.11', 'udp'), // genuine, but not for the vxlan backend
    ];
    await feed.apply([ME, A, B, ...hostile], 'snapshot');
    assert.deepEqual(backend.applied, [[peerOf(A), peerOf(B)]], 'A and B keep their routes');
    assert.deepEqual(Object.fromEntries(feed.ignored()), {
      outside_network: 1, subnet_length: 2, bogus_public_ip: 2, unusable_by_backend: 1,
    });
    const warned = said(lines).filter((l) => l.level === 'warn');
    assert.equal(warned.length, hostile.length, 'one line per ignored lease');
    await feed.apply([ME, A, B, ...hostile], 'events');
    assert.equal(said(lines).filter((l) => l.level === 'warn').length, hostile.length, 'and not again');
    await feed.apply([ME, A, B], 'events');
    assert.deepEqual(Object.fromEntries(feed.ignored()), {}, 'gone leases are no longer counted');
  });

  it('without a SubnetLen (static peers), overlapping leases are both left out', async () => {
    const { backend, feed } = fixture();
    const inside = lease('10.244.2.128/25', '192.168.64.66');
    await feed.apply([A, B, inside], 'snapshot');
    assert.deepEqual(backend.applied, [[peerOf(B)]]);
    assert.deepEqual(Object.fromEntries(feed.ignored()), { overlaps_other_lease: 2 });
  });
});

describe('PeerFeed limits', () => {
  it(`names at most ${MAX_IGNORED_LINES} ignored leases per delivery and sums up the rest in one line`, async () => {
    const { feed, lines } = fixture(24);
    const hostile = Array.from({ length: 100 }, (_, i) => lease(`10.244.${10 + i}.0/24`, '127.0.0.1'));
    await feed.apply([A, ...hostile], 'snapshot');
    const first = said(lines).filter((l) => l.level === 'warn');
    assert.equal(first.length, MAX_IGNORED_LINES + 1);
    assert.match(first[first.length - 1]?.msg ?? '', /^68 more leases ignored/);
    assert.equal(feed.ignored().get('bogus_public_ip'), 100, 'all counted');
  });

  it(`routes at most ${MAX_PEERS} peers and counts the rest`, async () => {
    const backend = new FakeBackend();
    const { log, lines } = capturingLogger();
    const feed = new PeerFeed(backend, { own: network('10.0.0.0/30'), network: network('10.0.0.0/8'), log });
    const many = Array.from({ length: MAX_PEERS + 10 }, (_, i) =>
      lease(`10.${1 + (i >>> 14)}.${(i >>> 6) & 255}.${(i & 63) << 2}/30`, '192.168.64.9'));
    await feed.apply(many, 'snapshot');
    assert.equal(backend.applied[0]?.length, MAX_PEERS);
    assert.equal(feed.ignored().get('too_many_leases'), 10);
    assert.equal(said(lines).filter((l) => l.level === 'error').length, 1);
  });
});
