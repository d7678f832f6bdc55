/**
 * planReconcile: the kernel backends' peer set against what the kernel has,
 * as iproute2 batch commands. Examples first, then a randomized check: the
 * plan applied to an in-memory model of the kernel (written here, with the
 * kernel's replace/delete semantics) gives exactly the wanted state, never
 * touches anyone else's routes, and planning again gives nothing to do.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatIpv4, formatPrefix, prefixCovers, samePrefix } from '../../src/net/ipv4';
import type { KernelFdbEntry, KernelNeighbour, KernelRoute } from '../../src/host/kernel-state';
import {
  planReconcile, routeCommand,
  type KernelSnapshot, type PeerObjects, type PlanScope, type ReconcilePlan,
} from '../../src/backend/kernel-peers';
import { seededRandom } from '../prng';
import { ip, network } from '../addresses';

const NETWORK = network('10.244.0.0/16');
const OWN = network('10.244.1.0/24');
const DEV = 'flannel.1';
const VXLAN: PlanScope = { network: NETWORK, own: OWN, device: DEV };
const HOST_GW: PlanScope = { network: NETWORK, own: OWN, device: undefined };

/** A vxlan peer as the vxlan backend translates it. */
function vx(subnet: string, mac: string, publicIp: string): PeerObjects {
  const s = network(subnet);
  return {
    subnet: s,
    route: { gateway: s.network, dev: DEV, onlink: true },
    neighbour: { ip: s.network, mac },
    fdb: { mac, dst: ip(publicIp) },
  };
}

/** A host-gw (or DirectRouting) peer: a route via its public IP on the underlay. */
function direct(subnet: string, publicIp: string, dev = 'eth0'): PeerObjects {
  return { subnet: network(subnet), route: { gateway: ip(publicIp), dev, onlink: false } };
}

function route(dst: string, r: { via?: string; dev?: string; onlink?: boolean; proto?: number; metric?: number; type?: string } = {}): KernelRoute {
  return {
    dst: network(dst),
    type: r.type ?? 'unicast',
    gateway: r.via === undefined ? undefined : ip(r.via),
    dev: r.dev,
    onlink: r.onlink ?? false,
    proto: r.proto ?? 87,
    metric: r.metric ?? 0,
  };
}

/** The kernel objects `peer` stands for, exactly as programmed. */
function programmed(peers: readonly PeerObjects[]): KernelSnapshot {
  return {
    routes: peers.map((p) => ({ dst: p.subnet, type: 'unicast', gateway: p.route.gateway, dev: p.route.dev, onlink: p.route.onlink, proto: 87, metric: 0 })),
    neighbours: peers.flatMap((p) => (p.neighbour === undefined ? [] : [{ ip: p.neighbour.ip, mac: p.neighbour.mac }])),
    fdb: peers.flatMap((p) => (p.fdb === undefined ? [] : [{ mac: p.fdb.mac, dst: p.fdb.dst }])),
  };
}

function snapshot(s: Partial<KernelSnapshot>): KernelSnapshot {
  return { routes: s.routes ?? [], neighbours: s.neighbours ?? [], fdb: s.fdb ?? [] };
}

/** The plan as plain command lists (what a failing assertion should show). */
function commands(plan: ReconcilePlan): { fdbFirst: string[]; ip: string[]; fdbLast: string[] } {
  return { fdbFirst: plan.fdbFirst.map((c) => c.command), ip: plan.ip.map((c) => c.command), fdbLast: plan.fdbLast.map((c) => c.command) };
}

const NOTHING = { fdbFirst: [], ip: [], fdbLast: [] };

const A = vx('10.244.2.0/24', '0e:00:00:00:02:01', '192.168.64.2');
const B = vx('10.244.3.0/24', '0e:00:00:00:03:01', '192.168.64.3');

describe('routeCommand', () => {
  it('an onlink route through weft\'s device', () => {
    assert.equal(routeCommand('replace', network('10.244.2.0/24'), { gateway: ip('10.244.2.0'), dev: 'flannel.1', onlink: true }),
      'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87');
  });

  it('a plain route via a public IP', () => {
    assert.equal(routeCommand('replace', network('10.244.130.0/23'), { gateway: ip('192.168.64.4'), dev: 'eth0', onlink: false }),
      'route replace 10.244.130.0/23 via 192.168.64.4 dev eth0 proto 87');
  });
});

describe('planReconcile: adding', () => {
  it('with nothing in the kernel: FDB first, then neighbours before routes, every peer in order', () => {
    const plan = planReconcile([A, B], snapshot({}), VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: [
        'fdb replace 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.2 self permanent',
        'fdb replace 0e:00:00:00:03:01 dev flannel.1 dst 192.168.64.3 self permanent',
      ],
      ip: [
        'neigh replace 10.244.2.0 lladdr 0e:00:00:00:02:01 dev flannel.1 nud permanent',
        'neigh replace 10.244.3.0 lladdr 0e:00:00:00:03:01 dev flannel.1 nud permanent',
        'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87',
        'route replace 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink proto 87',
      ],
      fdbLast: [],
    });
    assert.deepEqual(plan.blocked, []);
    assert.equal(plan.added, 6);
    assert.equal(plan.removed, 0);
  });

  it('each command carries the subnet of the peer it serves', () => {
    const plan = planReconcile([A, B], snapshot({}), VXLAN);
    assert.deepEqual(plan.fdbFirst.map((c) => c.subnet), [A.subnet, B.subnet]);
    assert.deepEqual(plan.ip.map((c) => c.subnet), [A.subnet, B.subnet, A.subnet, B.subnet]);
  });

  it('host-gw peers get routes only', () => {
    const plan = planReconcile([direct('10.244.2.0/24', '192.168.64.2'), direct('10.244.3.0/24', '192.168.64.3')], snapshot({}), HOST_GW);
    assert.deepEqual(commands(plan), {
      fdbFirst: [],
      ip: ['route replace 10.244.2.0/24 via 192.168.64.2 dev eth0 proto 87', 'route replace 10.244.3.0/24 via 192.168.64.3 dev eth0 proto 87'],
      fdbLast: [],
    });
    assert.equal(plan.added, 2);
  });

  it('no peers and nothing in the kernel: an empty plan', () => {
    const plan = planReconcile([], snapshot({}), VXLAN);
    assert.deepEqual(commands(plan), NOTHING);
    assert.deepEqual([plan.added, plan.removed, plan.blocked.length], [0, 0, 0]);
  });
});

describe('planReconcile: what is already there', () => {
  it('everything as wanted: an empty plan', () => {
    const plan = planReconcile([A, B], programmed([A, B]), VXLAN);
    assert.deepEqual(commands(plan), NOTHING);
    assert.deepEqual(plan.blocked, []);
    assert.equal(plan.added, 0);
    assert.equal(plan.removed, 0);
  });

  it('weft\'s route with another gateway: one route replace', () => {
    const peer = direct('10.244.2.0/24', '192.168.64.2');
    const plan = planReconcile([peer], snapshot({ routes: [route('10.244.2.0/24', { via: '192.168.64.9', dev: 'eth0' })] }), HOST_GW);
    assert.deepEqual(commands(plan), { fdbFirst: [], ip: ['route replace 10.244.2.0/24 via 192.168.64.2 dev eth0 proto 87'], fdbLast: [] });
    assert.deepEqual([plan.added, plan.removed], [1, 0]);
  });

  it('weft\'s route differing only in device, onlink or type is replaced too', () => {
    const want = 'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87';
    for (const existing of [
      route('10.244.2.0/24', { via: '10.244.2.0', dev: 'eth0', onlink: true }),
      route('10.244.2.0/24', { via: '10.244.2.0', dev: DEV, onlink: false }),
      route('10.244.2.0/24', { type: 'blackhole' }),
    ]) {
      const kernel = programmed([A]);
      const plan = planReconcile([A], { ...kernel, routes: [existing] }, VXLAN);
      assert.deepEqual(commands(plan), { fdbFirst: [], ip: [want], fdbLast: [] }, JSON.stringify(existing));
      assert.equal(plan.added, 1);
    }
  });

  it('a route someone else made that is exactly the wanted one is adopted with a route replace', () => {
    const foreign = { ...programmed([A]).routes[0] as KernelRoute, proto: 3 };
    const plan = planReconcile([A], { ...programmed([A]), routes: [foreign] }, VXLAN);
    assert.deepEqual(commands(plan), { fdbFirst: [], ip: ['route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87'], fdbLast: [] });
    assert.deepEqual(plan.blocked, []);
    assert.deepEqual([plan.added, plan.removed], [1, 0]);
  });

  it('a different route someone else made blocks the peer, with the reason, and nothing is added for it', () => {
    const kernel = snapshot({ routes: [route('10.244.2.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 3 })] });
    const plan = planReconcile([A, B], kernel, VXLAN);
    assert.deepEqual(plan.blocked, [{
      subnet: A.subnet,
      reason: 'a route weft did not create is in the way (10.244.2.0/24 via 192.168.64.9 dev eth0 proto 3); ' +
        'weft leaves it alone: remove it to let weft route 10.244.2.0/24',
    }]);
    assert.deepEqual(commands(plan), {
      fdbFirst: ['fdb replace 0e:00:00:00:03:01 dev flannel.1 dst 192.168.64.3 self permanent'],
      ip: [
        'neigh replace 10.244.3.0 lladdr 0e:00:00:00:03:01 dev flannel.1 nud permanent',
        'route replace 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink proto 87',
      ],
      fdbLast: [],
    });
    assert.deepEqual([plan.added, plan.removed], [3, 0]);
  });

  it('the reason names a foreign blackhole route by its type and says what it lacks', () => {
    const kernel = snapshot({ routes: [route('10.244.2.0/24', { type: 'blackhole', proto: 4 })] });
    const plan = planReconcile([A], kernel, VXLAN);
    assert.deepEqual(plan.blocked.map((b) => b.reason), [
      'a route weft did not create is in the way (blackhole 10.244.2.0/24 proto 4); weft leaves it alone: remove it to let weft route 10.244.2.0/24',
    ]);
    assert.deepEqual(commands(plan), NOTHING);
  });

  it('a foreign route that differs only in onlink is in the way too', () => {
    const kernel = snapshot({ routes: [route('10.244.2.0/24', { via: '10.244.2.0', dev: DEV, onlink: false, proto: 3 })] });
    assert.equal(planReconcile([A], kernel, VXLAN).blocked.length, 1);
  });

  it('a blocked peer\'s neighbour and FDB entry left from before are removed as stale', () => {
    const kernel = { ...programmed([A]), routes: [route('10.244.2.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 3 })] };
    const plan = planReconcile([A], kernel, VXLAN);
    assert.equal(plan.blocked.length, 1);
    assert.deepEqual(commands(plan), {
      fdbFirst: [],
      ip: ['neigh del 10.244.2.0 dev flannel.1'],
      fdbLast: ['fdb del 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.2 self'],
    });
    assert.deepEqual([plan.added, plan.removed], [0, 2]);
  });

  it('routes with a metric other than 0 neither block a peer nor are removed, whoever made them', () => {
    const kernel = snapshot({
      routes: [
        route('10.244.2.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 3, metric: 100 }),
        route('10.244.5.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 3, metric: 50 }),
        route('10.244.6.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 87, metric: 100 }),
      ],
    });
    const plan = planReconcile([A], kernel, VXLAN);
    assert.deepEqual(plan.blocked, []);
    assert.deepEqual(commands(plan).ip, [
      'neigh replace 10.244.2.0 lladdr 0e:00:00:00:02:01 dev flannel.1 nud permanent',
      'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87',
    ]);
    assert.equal(plan.removed, 0);
  });
});

describe('planReconcile: removing', () => {
  it('removes weft\'s stale routes by destination and protocol, whatever their type', () => {
    const kernel = snapshot({
      routes: [
        route('10.244.5.0/24', { via: '10.244.5.0', dev: DEV, onlink: true }),
        route('10.244.9.0/24', { type: 'blackhole' }),
        route('10.244.6.5/32', { via: '192.168.64.7', dev: 'eth0' }),
        route('10.244.7.0/24', { via: '192.168.64.7', dev: 'eth0', proto: 3 }), // someone else's: stays
      ],
    });
    const plan = planReconcile([], kernel, VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: [],
      ip: ['route del 10.244.5.0/24 proto 87', 'route del 10.244.9.0/24 proto 87', 'route del 10.244.6.5/32 proto 87'],
      fdbLast: [],
    });
    assert.deepEqual(plan.ip.map((c) => c.subnet), [undefined, undefined, undefined]);
    assert.deepEqual([plan.added, plan.removed], [0, 3]);
  });

  it('never touches routes outside the network, or for this host\'s own subnet', () => {
    const kernel = snapshot({
      routes: [
        route('10.245.2.0/24', { via: '192.168.64.2', dev: 'eth0' }),
        route('10.0.0.0/8', { via: '192.168.64.2', dev: 'eth0' }),
        route('10.244.1.0/24', { type: 'blackhole' }),
        route('10.244.1.0/24', { type: 'blackhole', metric: 4294967295 }),
        route('192.168.64.0/24', { dev: 'eth0', proto: 2 }),
      ],
    });
    const plan = planReconcile([], kernel, VXLAN);
    assert.deepEqual(commands(plan), NOTHING);
    assert.equal(plan.removed, 0);
  });

  it('a foreign route outside the network does not block a peer (only its own destination counts)', () => {
    const kernel = snapshot({ routes: [route('10.244.2.0/23', { via: '192.168.64.9', dev: 'eth0', proto: 3 })] });
    const plan = planReconcile([direct('10.244.2.0/24', '192.168.64.2')], kernel, HOST_GW);
    assert.deepEqual(plan.blocked, []);
    assert.deepEqual(commands(plan).ip, ['route replace 10.244.2.0/24 via 192.168.64.2 dev eth0 proto 87']);
  });

  it('removes the device\'s stale neighbours (after the routes) and FDB entries (last)', () => {
    const stale = vx('10.244.5.0/24', '0e:00:00:00:05:01', '192.168.64.5');
    const kernel = programmed([A, stale]);
    const plan = planReconcile([A], kernel, VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: [],
      ip: ['route del 10.244.5.0/24 proto 87', 'neigh del 10.244.5.0 dev flannel.1'],
      fdbLast: ['fdb del 0e:00:00:00:05:01 dev flannel.1 dst 192.168.64.5 self'],
    });
    assert.deepEqual([plan.added, plan.removed], [0, 3]);
  });

  it('a peer whose MAC changed: new FDB entry first, neighbour replaced, the old FDB entry removed last', () => {
    const moved = vx('10.244.2.0/24', '0e:00:00:00:02:02', '192.168.64.2');
    const plan = planReconcile([moved], programmed([A]), VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: ['fdb replace 0e:00:00:00:02:02 dev flannel.1 dst 192.168.64.2 self permanent'],
      ip: ['neigh replace 10.244.2.0 lladdr 0e:00:00:00:02:02 dev flannel.1 nud permanent'],
      fdbLast: ['fdb del 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.2 self'],
    });
    assert.deepEqual(plan.fdbLast.map((c) => c.subnet), [undefined]);
    assert.deepEqual([plan.added, plan.removed], [2, 1]);
  });

  it('a peer whose public IP changed: the FDB entry is replaced in place', () => {
    const moved = vx('10.244.2.0/24', '0e:00:00:00:02:01', '192.168.64.22');
    const plan = planReconcile([moved], programmed([A]), VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: ['fdb replace 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.22 self permanent'],
      ip: [],
      fdbLast: ['fdb del 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.2 self'],
    });
  });

  it('a MAC with two remotes: replaced with the wanted one, the extra remote removed last', () => {
    const kernel = { ...programmed([A]), fdb: [{ mac: '0e:00:00:00:02:01', dst: ip('192.168.64.2') }, { mac: '0e:00:00:00:02:01', dst: ip('192.168.64.99') }] };
    const plan = planReconcile([A], kernel, VXLAN);
    assert.deepEqual(commands(plan), {
      fdbFirst: ['fdb replace 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.2 self permanent'],
      ip: [],
      fdbLast: ['fdb del 0e:00:00:00:02:01 dev flannel.1 dst 192.168.64.99 self'],
    });
    assert.deepEqual([plan.added, plan.removed], [1, 1]);
  });

  it('without a device (host-gw) there are no neighbour or FDB commands, even when given', () => {
    const kernel = { ...programmed([vx('10.244.5.0/24', '0e:00:00:00:05:01', '192.168.64.5')]), routes: [] };
    const plan = planReconcile([A, B], kernel, HOST_GW);
    assert.deepEqual(commands(plan), {
      fdbFirst: [],
      ip: ['route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87', 'route replace 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink proto 87'],
      fdbLast: [],
    });
    assert.deepEqual([plan.added, plan.removed], [2, 0]);
  });

  it('removes a stale weft route of another type with a command ip can parse (no type: ip route del matches any)', () => {
    const plan = planReconcile([], snapshot({ routes: [route('10.244.10.0/24', { type: '7' }), route('10.244.9.0/24', { type: 'blackhole' })] }), VXLAN);
    assert.deepEqual(plan.ip.map((c) => c.command), ['route del 10.244.10.0/24 proto 87', 'route del 10.244.9.0/24 proto 87']);
  });
});

// ---------------------------------------------------------------------------
// Randomized: the plan applied to a model of the kernel.

/** The kernel's main table, neighbour table of the device and its FDB, with iproute2's command semantics. */
class KernelModel {
  routes: KernelRoute[];
  neighbours: Map<number, string>;
  fdb: KernelFdbEntry[];
  /** Foreign routes that a command replaced (must only ever be adoptions of an identical route). */
  readonly adopted: KernelRoute[] = [];

  constructor(s: KernelSnapshot, private readonly device: string | undefined) {
    this.routes = [...s.routes];
    this.neighbours = new Map(s.neighbours.map((n) => [n.ip, n.mac]));
    this.fdb = [...s.fdb];
  }

  snapshot(): KernelSnapshot {
    return {
      routes: [...this.routes],
      neighbours: [...this.neighbours].map(([addr, mac]): KernelNeighbour => ({ ip: addr, mac })),
      fdb: [...this.fdb],
    };
  }

  ip(command: string): void {
    let m = /^neigh replace (\S+) lladdr (\S+) dev (\S+) nud permanent$/.exec(command);
    if (m !== null) {
      assert.equal(m[3], this.device, command);
      this.neighbours.set(ip(m[1] as string), m[2] as string);
      return;
    }
    m = /^neigh del (\S+) dev (\S+)$/.exec(command);
    if (m !== null) {
      assert.equal(m[2], this.device, command);
      // ip exits on a failed neigh command: deleting a neighbour that is not there would abandon the batch
      assert.ok(this.neighbours.delete(ip(m[1] as string)), `${command}: no such neighbour`);
      return;
    }
    m = /^route replace (\S+) via (\S+) dev (\S+)( onlink)? proto 87$/.exec(command);
    if (m !== null) {
      const dst = network(m[1] as string);
      const want: KernelRoute = { dst, type: 'unicast', gateway: ip(m[2] as string), dev: m[3], onlink: m[4] !== undefined, proto: 87, metric: 0 };
      // replace: the route with the same destination and metric 0, whatever its type and protocol
      const i = this.routes.findIndex((r) => samePrefix(r.dst, dst) && r.metric === 0);
      if (i < 0) {
        this.routes.push(want);
        return;
      }
      const old = this.routes[i] as KernelRoute;
      if (old.proto !== 87) {
        assert.deepEqual({ ...old, proto: 87 }, want, `${command} replaces someone else's different route`);
        this.adopted.push(old);
      }
      this.routes[i] = want;
      return;
    }
    m = /^route del (?:(unicast|blackhole) )?(\S+) proto 87$/.exec(command);
    if (m !== null) {
      const dst = network(m[2] as string);
      const type = m[1];
      // without a metric the kernel deletes the lowest-metric match of that protocol (and type, when given)
      const matches = this.routes.filter((r) => samePrefix(r.dst, dst) && r.proto === 87 && (type === undefined || r.type === type));
      assert.ok(matches.length > 0, `${command}: no such route`);
      const victim = matches.reduce((a, b) => (b.metric < a.metric ? b : a));
      assert.equal(victim.metric, 0, `${command} would delete a metric ${victim.metric} route`);
      this.routes.splice(this.routes.indexOf(victim), 1);
      return;
    }
    assert.fail(`the model does not know the ip command ${JSON.stringify(command)}`);
  }

  bridge(command: string): void {
    let m = /^fdb replace (\S+) dev (\S+) dst (\S+) self permanent$/.exec(command);
    if (m !== null) {
      assert.equal(m[2], this.device, command);
      const mac = m[1] as string;
      const dst = ip(m[3] as string);
      // the kernel's vxlan replace: nothing when the remote is there, else the MAC's first remote is changed
      if (this.fdb.some((e) => e.mac === mac && e.dst === dst)) return;
      const i = this.fdb.findIndex((e) => e.mac === mac);
      if (i >= 0) this.fdb[i] = { mac, dst };
      else this.fdb.push({ mac, dst });
      return;
    }
    m = /^fdb del (\S+) dev (\S+) dst (\S+) self$/.exec(command);
    if (m !== null) {
      assert.equal(m[2], this.device, command);
      const mac = m[1] as string;
      const dst = ip(m[3] as string);
      // a remote that is not there: the kernel does nothing (and says nothing)
      this.fdb = this.fdb.filter((e) => !(e.mac === mac && e.dst === dst));
      return;
    }
    assert.fail(`the model does not know the bridge command ${JSON.stringify(command)}`);
  }

  apply(plan: ReconcilePlan): void {
    for (const c of plan.fdbFirst) this.bridge(c.command);
    for (const c of plan.ip) this.ip(c.command);
    for (const c of plan.fdbLast) this.bridge(c.command);
  }
}

const routeKey = (r: KernelRoute): string =>
  `${r.type} ${formatPrefix(r.dst)} ${r.gateway === undefined ? '-' : formatIpv4(r.gateway)} ${r.dev ?? '-'} ${r.onlink} ${r.proto} ${r.metric}`;

function inScope(r: KernelRoute, scope: PlanScope): boolean {
  return r.metric === 0 && prefixCovers(scope.network, r.dst) && !samePrefix(r.dst, scope.own);
}

interface Case {
  desired: PeerObjects[];
  actual: KernelSnapshot;
  scope: PlanScope;
}

/** Peer subnets (non-overlapping, as leases are), and destinations only stale routes have. */
const PEER_POOL = ['10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24', '10.244.5.0/24', '10.244.6.0/24', '10.244.7.0/24',
  '10.244.8.0/24', '10.244.9.0/24', '10.244.10.0/23', '10.244.12.0/24'];
const OTHER_DSTS = ['10.244.1.0/24', '10.244.1.128/25', '10.244.20.128/25', '10.244.21.5/32', '10.245.2.0/24', '10.0.0.0/8', '10.244.0.0/16'];
const PUBLIC = ['192.168.64.2', '192.168.64.3', '192.168.64.4', '192.168.64.5'];

function randomCase(rand: () => number): Case {
  const pick = <T>(xs: readonly T[]): T => xs[rand() % xs.length] as T;
  const chance = (percent: number): boolean => rand() % 100 < percent;
  const macOf = (i: number, version: number): string => `0e:00:00:00:${i.toString(16).padStart(2, '0')}:0${version}`;
  const device = chance(75) ? DEV : undefined;
  const scope: PlanScope = { network: NETWORK, own: OWN, device };

  const desired: PeerObjects[] = [];
  PEER_POOL.forEach((text, i) => {
    if (!chance(55)) return;
    if (chance(70)) {
      desired.push(vx(text, macOf(i, rand() % 2), pick(PUBLIC)));
    } else {
      desired.push(direct(text, pick(PUBLIC)));
    }
  });

  const routes: KernelRoute[] = [];
  for (const text of [...PEER_POOL, ...OTHER_DSTS]) {
    const s = network(text);
    // at most one route per destination and metric, as `ip route add` allows
    for (const metric of [0, 100]) {
      if (!chance(metric === 0 ? 55 : 15)) continue;
      const type = chance(85) ? 'unicast' : 'blackhole';
      const proto = pick([87, 87, 87, 3, 4]);
      if (type === 'blackhole') {
        routes.push({ dst: s, type, gateway: undefined, dev: undefined, onlink: false, proto, metric });
        continue;
      }
      const gateway = chance(50) ? s.network : ip(pick(PUBLIC));
      routes.push({ dst: s, type, gateway, dev: pick([DEV, 'eth0']), onlink: chance(50), proto, metric });
    }
  }

  const neighbours: KernelNeighbour[] = [];
  const neighIps = [...PEER_POOL.map((t) => network(t).network), ip('10.244.30.0'), ip('10.244.31.0')];
  neighIps.forEach((addr, i) => {
    if (chance(40)) neighbours.push({ ip: addr, mac: macOf(i, rand() % 3) });
  });

  const fdb: KernelFdbEntry[] = [];
  for (let i = 0; i < PEER_POOL.length + 2; i++) {
    for (const version of [0, 1, 2]) {
      for (const dst of PUBLIC) {
        if (chance(4)) fdb.push({ mac: macOf(i, version), dst: ip(dst) });
      }
    }
  }
  return { desired, actual: { routes, neighbours, fdb }, scope };
}

/** The peers a naive reading of the rules says are blocked: a different metric-0 route of another protocol at their destination. */
function naiveBlocked(c: Case): string[] {
  return c.desired.filter((p) => c.actual.routes.some((r) =>
    inScope(r, c.scope) && samePrefix(r.dst, p.subnet) && r.proto !== 87 &&
    !(r.type === 'unicast' && r.gateway === p.route.gateway && r.dev === p.route.dev && r.onlink === p.route.onlink)))
    .map((p) => formatPrefix(p.subnet));
}

function checkCase(c: Case, label: string): { blocked: number; adopted: number; removed: number } {
  const plan = planReconcile(c.desired, c.actual, c.scope);
  const blocked = plan.blocked.map((b) => formatPrefix(b.subnet));
  assert.deepEqual(blocked, naiveBlocked(c), `${label}: blocked`);
  for (const b of plan.blocked) assert.ok(b.reason.startsWith('a route weft did not create is in the way ('), `${label}: ${b.reason}`);

  const all = [...plan.fdbFirst, ...plan.ip, ...plan.fdbLast];
  assert.equal(plan.added, all.filter((x) => / replace /.test(` ${x.command} `)).length, `${label}: added`);
  assert.equal(plan.removed, all.filter((x) => / del /.test(` ${x.command} `)).length, `${label}: removed`);
  for (const x of all) {
    if (x.subnet !== undefined) assert.ok(!blocked.includes(formatPrefix(x.subnet)), `${label}: ${x.command} serves a blocked peer`);
  }
  if (c.scope.device === undefined) assert.deepEqual([plan.fdbFirst.length, plan.fdbLast.length, plan.ip.filter((x) => x.command.startsWith('neigh')).length], [0, 0, 0], label);

  const kernel = new KernelModel(c.actual, c.scope.device);
  kernel.apply(plan);
  const after = kernel.snapshot();
  const served = c.desired.filter((p) => !blocked.includes(formatPrefix(p.subnet)));

  // weft's peer routes: exactly the served peers, as wanted
  const ours = after.routes.filter((r) => inScope(r, c.scope) && r.proto === 87).map(routeKey).sort();
  assert.deepEqual(ours, programmed(served).routes.map(routeKey).sort(), `${label}: weft's routes`);
  // everything else is as it was, but for adopted routes
  const adopted = new Set(kernel.adopted.map(routeKey));
  const others = (rs: readonly KernelRoute[]): string[] => rs.filter((r) => !(inScope(r, c.scope) && r.proto === 87)).map(routeKey).sort();
  assert.deepEqual(others(after.routes), others(c.actual.routes).filter((k) => !adopted.has(k)), `${label}: other routes`);
  for (const r of kernel.adopted) assert.ok(served.some((p) => samePrefix(p.subnet, r.dst)), `${label}: adopted ${routeKey(r)}`);

  if (c.scope.device === undefined) {
    assert.deepEqual(after.neighbours, c.actual.neighbours, `${label}: neighbours without a device`);
    assert.deepEqual(after.fdb, c.actual.fdb, `${label}: fdb without a device`);
  } else {
    const want = programmed(served);
    const text = (s: KernelSnapshot): { neighbours: string[]; fdb: string[] } => ({
      neighbours: s.neighbours.map((n) => `${formatIpv4(n.ip)} ${n.mac}`).sort(),
      fdb: s.fdb.map((e) => `${e.mac} ${formatIpv4(e.dst)}`).sort(),
    });
    assert.deepEqual(text(after), text(want), `${label}: neighbours and fdb`);
  }

  // a second plan against the result has nothing left to do
  const again = planReconcile(c.desired, after, c.scope);
  assert.deepEqual(commands(again), NOTHING, `${label}: second plan`);
  assert.deepEqual(again.blocked, plan.blocked, `${label}: second plan blocked`);
  return { blocked: plan.blocked.length, adopted: kernel.adopted.length, removed: plan.removed };
}

describe('planReconcile: randomized against a kernel model', () => {
  it('the model itself: replace/delete semantics on a known plan, and it refuses what ip would refuse', () => {
    const moved = vx('10.244.2.0/24', '0e:00:00:00:02:02', '192.168.64.9');
    const model = new KernelModel(programmed([A, B]), DEV);
    model.apply(planReconcile([moved], programmed([A, B]), VXLAN));
    assert.deepEqual(model.snapshot(), programmed([moved]));
    assert.throws(() => new KernelModel(snapshot({}), DEV).ip('neigh del 10.244.2.0 dev flannel.1'), /no such neighbour/);
    assert.throws(() => new KernelModel(snapshot({}), DEV).ip('route del 7 10.244.2.0/24 proto 87'), /does not know/);
    const foreign = snapshot({ routes: [route('10.244.2.0/24', { via: '192.168.64.9', dev: 'eth0', proto: 3 })] });
    assert.throws(() => new KernelModel(foreign, DEV).ip('route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87'),
      /replaces someone else's different route/);
  });

  it('2000 random cases: the desired state for every peer not blocked, nothing foreign touched, idempotent', () => {
    const rand = seededRandom(0x6b70);
    let blockedSeen = 0;
    let adoptedSeen = 0;
    let deletesSeen = 0;
    for (let n = 0; n < 2000; n++) {
      const seen = checkCase(randomCase(rand), `case ${n}`);
      blockedSeen += seen.blocked;
      adoptedSeen += seen.adopted;
      deletesSeen += seen.removed;
    }
    // the generator reaches the interesting paths
    assert.ok(blockedSeen > 100, `blocked ${blockedSeen}`);
    assert.ok(adoptedSeen > 20, `adopted ${adoptedSeen}`);
    assert.ok(deletesSeen > 1000, `deletes ${deletesSeen}`);
  });
});
