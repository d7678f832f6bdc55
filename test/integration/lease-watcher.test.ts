/**
 * Routes follow leases: LeaseWatcher over a MemoryLeaseStore feeding a
 * PeerFeed and a fake backend that records every peer set it is given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { ApplyReport, Backend, Peer, PeerVerdict, RouteView } from '../../src/backend/backend';
import { PeerFeed } from '../../src/agent/peer-feed';
import { LeaseWatcher } from '../../src/subnet/lease-watcher';
import { silentLogger } from '../../src/log';
import { formatIpv4, formatPrefix, parseCidr, parseIpv4, samePrefix, type Ipv4Prefix } from '../../src/net/ipv4';
import type { Lease, LeaseAttrs } from '../../src/subnet/lease';
import { MemoryLeaseStore } from '../memory-lease-store';

const TTL = 86_400;
const NETWORK = prefix('10.5.0.0/16');
const OWN = prefix('10.5.1.0/24');
const DESC = 'memory store (test)';

function prefix(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined && parsed.address === parsed.prefix.network, `bad test prefix ${text}`);
  return parsed.prefix;
}

function host(publicIp: string, backendType = 'udp'): LeaseAttrs {
  const ip = parseIpv4(publicIp);
  assert.ok(ip !== undefined);
  return { publicIp: ip, backendType };
}

const ME = host('192.168.1.1');

/**
 * A backend that accepts leases of one type (as the kernel backends do; '' accepts all, as udp)
 * and records every peer set applyPeers gets.
 */
class FakeBackend implements Backend {
  readonly type = 'fake';
  readonly mtu = 1472;
  /** Every peer set given to applyPeers, copied, in order. */
  readonly replaced: Peer[][] = [];
  /** Runs inside applyPeers before it returns (to interleave store changes, or hold it). */
  beforeReplace: (() => Promise<void> | void) | undefined;
  onFatal: (err: Error) => void = () => undefined;
  private readonly table = new Map<string, Peer>();
  private stopped = false;

  constructor(private readonly acceptsType = 'udp') {}

  async prepare(): Promise<LeaseAttrs> {
    return ME;
  }

  async start(): Promise<void> {
    // nothing to bring up
  }

  accepts(peer: Peer): PeerVerdict {
    return this.acceptsType === '' || peer.backendType === this.acceptsType
      ? { ok: true } : { ok: false, reason: `its BackendType is "${peer.backendType}"` };
  }

  async applyPeers(peers: readonly Peer[]): Promise<ApplyReport> {
    assert.equal(this.stopped, false, 'applyPeers after stop()');
    this.replaced.push(peers.map((p) => ({ ...p })));
    this.table.clear();
    for (const peer of peers) this.table.set(formatPrefix(peer.subnet), { ...peer });
    await this.beforeReplace?.();
    return { routed: peers.length, added: peers.length, removed: 0, failed: [] };
  }

  peers(): Peer[] {
    return [...this.table.values()];
  }

  routes(): RouteView[] {
    return this.peers().map((p) => ({ subnet: p.subnet, publicIp: p.publicIp, via: 'fake' }));
  }

  dataPlane(): null {
    return null;
  }

  registerMetrics(): void {
    // none
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.table.clear();
  }
}

function show(peers: readonly Peer[]): string[] {
  return peers.map((p) => `${formatPrefix(p.subnet)}=${formatIpv4(p.publicIp)}`).sort();
}

/** Lets the store's deliveries and the routes' async updates run (setImmediate turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Fixture {
  store: MemoryLeaseStore;
  backend: FakeBackend;
  routes: LeaseWatcher;
  feed: PeerFeed;
  clock: { now: number };
  own: Lease;
  lost: string[];
  changed: Peer[][];
}

/**
 * A store with this host's lease (10.5.1.0/24, 24 h TTL) and `others` leases,
 * and a LeaseWatcher feeding a PeerFeed for it, not started.
 */
async function fixture(others: Array<[string, LeaseAttrs, number?]> = [], acceptsType = 'udp'): Promise<Fixture> {
  const clock = { now: 1_700_000_000_000 };
  const store = new MemoryLeaseStore({ now: () => clock.now, description: DESC });
  const own = await store.create(OWN, ME, TTL);
  assert.ok(own !== undefined);
  for (const [subnet, attrs, ttl] of others) await store.put(prefix(subnet), attrs, ttl);
  const backend = new FakeBackend(acceptsType);
  const lost: string[] = [];
  const changed: Peer[][] = [];
  const feed = new PeerFeed(backend, { own: OWN, network: NETWORK, log: silentLogger(), onApplied: (peers) => changed.push([...peers]) });
  const routes = new LeaseWatcher(store, {
    own,
    log: silentLogger(),
    sink: (leases, why) => feed.apply(leases, why),
    onOwnLeaseLost: (reason) => lost.push(reason),
  });
  return { store, backend, routes, feed, clock, own, lost, changed };
}

const TWO_HOSTS: Array<[string, LeaseAttrs, number?]> = [
  ['10.5.2.0/24', host('192.168.1.2'), TTL],
  ['10.5.3.0/24', host('192.168.1.3')], // a reservation
];

describe('LeaseWatcher + PeerFeed: start', () => {
  it("installs a route for every other host's lease, never for its own", async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    assert.equal(f.backend.replaced.length, 1);
    assert.deepEqual(show(f.backend.peers()), ['10.5.2.0/24=192.168.1.2', '10.5.3.0/24=192.168.1.3']);
    assert.deepEqual(f.changed.map(show), [show(f.backend.peers())]);
    assert.equal(f.backend.peers().some((p) => samePrefix(p.subnet, OWN)), false);
    assert.equal(f.store.watchCount, 1);
    assert.deepEqual(f.lost, []);
    await f.routes.stop();
  });

  it('installs an empty route set when this host is alone', async () => {
    const f = await fixture();
    await f.routes.start();
    assert.deepEqual(f.backend.replaced, [[]]);
    await f.routes.stop();
  });

  it('ignores leases the backend does not accept, outside the network, or overlapping its own; no BackendType is udp', async () => {
    const f = await fixture([
      ...TWO_HOSTS,
      ['10.5.4.0/24', host('192.168.1.4', 'vxlan')],
      ['10.5.5.0/24', host('192.168.1.5', '')], // BackendType left out: flanneld's udp lease
      ['10.5.6.0/24', host('192.168.1.6', 'UDP')],
      ['10.6.0.0/24', host('192.168.1.7')], // another network
      ['192.168.0.0/24', host('192.168.1.8')],
      ['10.5.1.128/25', host('192.168.1.9')], // inside this host's subnet
      ['10.0.0.0/8', host('192.168.1.10')], // covers everything
      ['10.5.64.0/20', host('192.168.1.11')], // odd length, but inside the network and clear of ours: a route
    ]);
    await f.routes.start();
    assert.deepEqual(show(f.backend.peers()), [
      '10.5.2.0/24=192.168.1.2', '10.5.3.0/24=192.168.1.3', '10.5.5.0/24=192.168.1.5', '10.5.64.0/20=192.168.1.11',
    ]);
    assert.deepEqual(show(f.feed.peers()), show(f.backend.peers()));
    assert.equal(f.backend.peers().find((p) => formatPrefix(p.subnet) === '10.5.5.0/24')?.backendType, 'udp');
    assert.deepEqual(f.lost, []);
    await f.routes.stop();
  });

  it('reports its own lease lost when it is missing from the first snapshot', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.store.delete(OWN);
    await f.routes.start();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 vanished from ${DESC} right after it was acquired`]);
    assert.deepEqual(f.backend.replaced, [], 'no routes installed');
    assert.equal(f.store.watchCount, 0, 'no watch left open');
    await f.routes.stop();
  });

  it('reports its own lease lost when the first snapshot shows another host holding it', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.store.put(OWN, host('192.168.1.99'), TTL);
    await f.routes.start();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 vanished from ${DESC} right after it was acquired`]);
    assert.deepEqual(f.backend.replaced, []);
    await f.routes.stop();
  });

  it('misses no change made between its snapshot and its watch', async () => {
    const f = await fixture(TWO_HOSTS);
    let once = true;
    f.backend.beforeReplace = async () => {
      if (!once) return;
      once = false;
      // while the first routes are being installed
      await f.store.put(prefix('10.5.9.0/24'), host('192.168.1.9'), TTL);
      await f.store.delete(prefix('10.5.2.0/24'));
    };
    await f.routes.start();
    await settle();
    assert.deepEqual(show(f.backend.peers()), ['10.5.3.0/24=192.168.1.3', '10.5.9.0/24=192.168.1.9']);
    await f.routes.stop();
  });
});

describe('LeaseWatcher + PeerFeed: following changes', () => {
  it('adds, changes and removes routes as leases come, move and go', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();

    await f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL);
    await settle();
    assert.deepEqual(show(f.backend.peers()), [
      '10.5.2.0/24=192.168.1.2', '10.5.3.0/24=192.168.1.3', '10.5.4.0/24=192.168.1.4',
    ]);

    await f.store.put(prefix('10.5.2.0/24'), host('192.168.1.22'), TTL); // the host moved
    await settle();
    assert.deepEqual(show(f.backend.peers()), [
      '10.5.2.0/24=192.168.1.22', '10.5.3.0/24=192.168.1.3', '10.5.4.0/24=192.168.1.4',
    ]);

    await f.store.delete(prefix('10.5.3.0/24'));
    await settle();
    assert.deepEqual(show(f.backend.peers()), ['10.5.2.0/24=192.168.1.22', '10.5.4.0/24=192.168.1.4']);

    assert.equal(f.backend.replaced.length, 4, 'one update per change');
    assert.deepEqual(f.changed.map(show), f.backend.replaced.map(show));
    assert.deepEqual(f.lost, []);
    await f.routes.stop();
  });

  it('applies a batch of changes as one update', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    // not awaited one by one: all land in one delivery
    await Promise.all([
      f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL),
      f.store.delete(prefix('10.5.2.0/24')),
      f.store.put(prefix('10.5.5.0/24'), host('192.168.1.5'), TTL),
    ]);
    await settle();
    assert.equal(f.backend.replaced.length, 2);
    assert.deepEqual(show(f.backend.peers()), [
      '10.5.3.0/24=192.168.1.3', '10.5.4.0/24=192.168.1.4', '10.5.5.0/24=192.168.1.5',
    ]);
    await f.routes.stop();
  });

  it('does not touch the routes for a renewal', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    const other = f.store.peek(prefix('10.5.2.0/24'));
    assert.ok(other !== undefined);
    f.clock.now += 3_600_000;
    await f.store.renew(other, other.attrs, TTL);
    await f.store.renew(f.own, ME, TTL); // our own renewal too
    await settle();
    assert.equal(f.backend.replaced.length, 1, 'no update');
    // and the watch is still live
    await f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL);
    await settle();
    assert.equal(f.backend.replaced.length, 2);
    assert.deepEqual(f.lost, []);
    await f.routes.stop();
  });

  it('drops the route of a lease that turns into another backend type, and takes it back', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    await f.store.put(prefix('10.5.2.0/24'), host('192.168.1.2', 'vxlan'), TTL);
    await settle();
    assert.deepEqual(show(f.backend.peers()), ['10.5.3.0/24=192.168.1.3']);
    await f.store.put(prefix('10.5.2.0/24'), host('192.168.1.2'), TTL);
    await settle();
    assert.deepEqual(show(f.backend.peers()), ['10.5.2.0/24=192.168.1.2', '10.5.3.0/24=192.168.1.3']);
    await f.routes.stop();
  });

  it('removes the route when a lease expires', async () => {
    const f = await fixture([['10.5.2.0/24', host('192.168.1.2'), 60], ['10.5.3.0/24', host('192.168.1.3'), 120]]);
    await f.routes.start();
    f.clock.now += 59_999;
    f.store.expireLeases();
    await settle();
    assert.equal(f.backend.replaced.length, 1, 'nothing expired yet');
    f.clock.now += 1;
    assert.deepEqual(f.store.expireLeases().map((l) => formatPrefix(l.subnet)), ['10.5.2.0/24']);
    await settle();
    assert.deepEqual(show(f.backend.peers()), ['10.5.3.0/24=192.168.1.3']);
    f.clock.now += 60_000;
    f.store.expireLeases();
    await settle();
    assert.deepEqual(show(f.backend.peers()), []);
    assert.deepEqual(f.lost, [], 'its own lease has 24 h');
    await f.routes.stop();
  });

  it('replaces the route set on a resync', async () => {
    const f = await fixture([...TWO_HOSTS, ['10.5.4.0/24', host('192.168.1.4'), TTL]]);
    await f.routes.start();
    f.store.pauseWatches();
    await f.store.delete(prefix('10.5.2.0/24'));
    await f.store.put(prefix('10.5.3.0/24'), host('192.168.1.33'), TTL);
    await f.store.put(prefix('10.5.5.0/24'), host('192.168.1.5'), TTL);
    await f.store.put(prefix('10.5.6.0/24'), host('192.168.1.6'), TTL);
    await f.store.delete(prefix('10.5.6.0/24'));
    f.store.forceResync(); // the watch lost those events: it gets a snapshot instead
    f.store.resumeWatches();
    await settle();
    assert.deepEqual(show(f.backend.peers()), [
      '10.5.3.0/24=192.168.1.33', '10.5.4.0/24=192.168.1.4', '10.5.5.0/24=192.168.1.5',
    ]);
    assert.equal(f.backend.replaced.length, 2, 'one update for the whole resync');

    f.store.forceResync(); // nothing changed since
    await settle();
    assert.equal(f.backend.replaced.length, 2, 'an identical snapshot changes nothing');
    assert.deepEqual(f.lost, []);
    await f.routes.stop();
  });
});

describe("LeaseWatcher + PeerFeed: this host's own lease", () => {
  it('reports its own lease deleted, naming the subnet', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    await f.store.delete(OWN);
    await settle();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 was deleted from ${DESC} (or expired)`]);
    assert.equal(f.backend.replaced.length, 1, 'no route update for it');
    await f.routes.stop();
  });

  it('reports its own lease expired', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    f.clock.now += TTL * 1000;
    f.store.expireLeases();
    await settle();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 was deleted from ${DESC} (or expired)`]);
    await f.routes.stop();
  });

  it('reports its own lease taken by another PublicIP', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    await f.store.put(OWN, host('192.168.1.99'), TTL);
    await settle();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 now belongs to 192.168.1.99 in ${DESC}`]);
    assert.equal(f.backend.peers().some((p) => samePrefix(p.subnet, OWN)), false, 'never a route to its own subnet');
    await f.routes.stop();
  });

  it('reports its own lease taken over when a resync shows it', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    f.store.pauseWatches();
    await f.store.put(OWN, host('192.168.1.99'), TTL);
    f.store.forceResync();
    f.store.resumeWatches();
    await settle();
    assert.deepEqual(f.lost, [`this host's lease 10.5.1.0/24 now belongs to 192.168.1.99 in ${DESC}`]);
    await f.routes.stop();
  });

  it('is not lost when its own lease is rewritten by this host with other attributes', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    await f.store.put(OWN, { ...ME, backendData: { restarted: true } }, TTL);
    await settle();
    assert.deepEqual(f.lost, []);
    assert.deepEqual(show(f.backend.peers()), ['10.5.2.0/24=192.168.1.2', '10.5.3.0/24=192.168.1.3']);
    await f.routes.stop();
  });
});

describe('LeaseWatcher + PeerFeed: stop', () => {
  it('stops following the store', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    await f.routes.stop();
    assert.equal(f.store.watchCount, 0, 'the watch is closed');
    await f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL);
    await f.store.delete(OWN);
    f.store.forceResync();
    await settle();
    assert.equal(f.backend.replaced.length, 1);
    assert.deepEqual(f.lost, []);
  });

  it('drops changes already delivered but not yet applied', async () => {
    const f = await fixture(TWO_HOSTS);
    await f.routes.start();
    // hold the backend so that an update is queued behind another
    let release: () => void = () => undefined;
    f.backend.beforeReplace = () => new Promise<void>((resolve) => {
      release = resolve;
    });
    await f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL);
    await settle(); // update 2 is in replacePeers, held
    await f.store.put(prefix('10.5.5.0/24'), host('192.168.1.5'), TTL);
    await settle(); // update 3 is queued
    assert.equal(f.backend.replaced.length, 2);
    const stopping = f.routes.stop();
    f.backend.beforeReplace = undefined;
    release();
    await stopping;
    await settle();
    assert.equal(f.backend.replaced.length, 2, 'the queued update was not applied after stop()');
  });

  it('stop() while start() is still installing the first routes leaves no watch behind', async () => {
    const f = await fixture(TWO_HOSTS);
    let release: () => void = () => undefined;
    f.backend.beforeReplace = () => new Promise<void>((resolve) => {
      release = resolve;
    });
    const starting = f.routes.start();
    await settle(); // start() is in replacePeers
    const stopping = f.routes.stop();
    f.backend.beforeReplace = undefined;
    release();
    await Promise.all([starting, stopping]);
    assert.equal(f.store.watchCount, 0, 'a watch was opened after stop()');
    await f.store.put(prefix('10.5.4.0/24'), host('192.168.1.4'), TTL);
    await settle();
    assert.equal(f.backend.replaced.length, 1, 'routes changed after stop()');
  });
});
