import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, StateError } from '../../src/errors';
import { formatIpv4, formatPrefix, prefixMask, type Ipv4Prefix } from '../../src/net/ipv4';
import { CompiledRoutes, RouteTable, type Peer, type RouteSnapshot } from '../../src/routing';
import { seededRandom } from '../prng';
import { cidr, ip } from '../addresses';

function peer(address: string, port = 8285): Peer {
  return { address: ip(address), port };
}

/** The prefix text of the route CompiledRoutes picked for `dst`, or 'none'. */
function compiledRouteText(routes: CompiledRoutes, dst: number): string {
  const i = routes.lookup(dst);
  return i < 0 ? 'none' : formatPrefix(routes.prefixOf(i));
}

function tableRouteText(table: RouteTable, dst: number): string {
  const entry = table.lookup(dst);
  return entry === undefined ? 'none' : formatPrefix(entry.prefix);
}

describe('RouteTable set/get/delete', () => {
  it('set returns true for a new route and for a new peer, false for the same route', () => {
    const table = new RouteTable();
    assert.equal(table.version, 0);
    assert.equal(table.set(cidr('10.5.52.0/24'), peer('192.168.64.3')), true);
    assert.equal(table.version, 1);
    assert.equal(table.set(cidr('10.5.52.0/24'), peer('192.168.64.3')), false);
    assert.equal(table.version, 1, 'an unchanged set must not bump the version');
    assert.equal(table.set(cidr('10.5.52.0/24'), peer('192.168.64.3', 9000)), true, 'new port is a change');
    assert.equal(table.set(cidr('10.5.52.0/24'), peer('192.168.64.4', 9000)), true, 'new address is a change');
    assert.equal(table.version, 3);
    assert.equal(table.size, 1);
    assert.deepEqual(table.get(cidr('10.5.52.0/24')), peer('192.168.64.4', 9000));
  });

  it('get matches the exact prefix only', () => {
    const table = new RouteTable();
    table.set(cidr('10.5.0.0/16'), peer('192.168.64.3'));
    assert.equal(table.get(cidr('10.5.0.0/24')), undefined);
    assert.equal(table.get(cidr('10.0.0.0/8')), undefined);
    assert.deepEqual(table.get(cidr('10.5.0.0/16')), peer('192.168.64.3'));
  });

  it('delete removes exactly one route and reports whether it did', () => {
    const table = new RouteTable();
    table.set(cidr('10.5.0.0/16'), peer('192.168.64.3'));
    table.set(cidr('10.5.0.0/24'), peer('192.168.64.4'));
    const before = table.version;
    assert.equal(table.delete(cidr('10.5.1.0/24')), false);
    assert.equal(table.version, before, 'deleting nothing must not bump the version');
    assert.equal(table.delete(cidr('10.5.0.0/24')), true);
    assert.equal(table.version, before + 1);
    assert.equal(table.delete(cidr('10.5.0.0/24')), false);
    assert.equal(table.size, 1);
    assert.equal(tableRouteText(table, ip('10.5.0.9')), '10.5.0.0/16');
  });

  it('clear empties the table and bumps the version once', () => {
    const table = new RouteTable();
    table.clear();
    assert.equal(table.version, 0, 'clearing an empty table is not a change');
    table.set(cidr('10.5.1.0/24'), peer('192.168.64.3'));
    table.set(cidr('10.5.2.0/24'), peer('192.168.64.4'));
    table.clear();
    assert.equal(table.version, 3);
    assert.equal(table.size, 0);
    assert.equal(table.lookup(ip('10.5.1.1')), undefined);
    assert.equal(new CompiledRoutes(table.snapshot()).lookup(ip('10.5.1.1')), -1);
  });

  it('stores its own frozen copies, not the caller objects', () => {
    const table = new RouteTable();
    const p = { network: ip('10.5.1.0'), length: 24 };
    const q = { address: ip('192.168.64.3'), port: 8285 };
    table.set(p, q);
    p.network = ip('10.9.9.0');
    q.port = 1;
    const entry = table.lookup(ip('10.5.1.1'));
    assert.ok(entry !== undefined);
    assert.equal(entry.peer.port, 8285);
    assert.ok(Object.isFrozen(entry) && Object.isFrozen(entry.peer) && Object.isFrozen(entry.prefix));
  });

  it('entries are sorted by network then length', () => {
    const table = new RouteTable();
    for (const text of ['10.5.2.0/24', '0.0.0.0/0', '10.5.0.0/16', '10.5.0.0/24', '10.0.0.0/8', '192.168.0.1/32']) {
      table.set(cidr(text), peer('192.168.64.3'));
    }
    assert.deepEqual(
      table.entries().map((e) => formatPrefix(e.prefix)),
      ['0.0.0.0/0', '10.0.0.0/8', '10.5.0.0/16', '10.5.0.0/24', '10.5.2.0/24', '192.168.0.1/32'],
    );
  });
});

describe('RouteTable validation', () => {
  it('rejects a prefix with host bits set, naming the fix', () => {
    const table = new RouteTable();
    const err = (() => {
      try {
        table.set({ network: ip('10.5.52.7'), length: 24 }, peer('192.168.64.3'));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ConfigError, 'expected a ConfigError');
    assert.equal(err.code, 'WEFT_ERR_CONFIG');
    assert.equal(err.path, 'route');
    assert.equal(err.value, '10.5.52.7/24');
    assert.equal(err.message, 'route prefix 10.5.52.7/24 has host bits set: use 10.5.52.0/24');
    assert.equal(table.size, 0);
    assert.equal(table.version, 0);
  });

  it('rejects invalid lengths and networks in set, get and delete', () => {
    const table = new RouteTable();
    const bad: Ipv4Prefix[] = [
      { network: 0, length: 33 },
      { network: 0, length: -1 },
      { network: 0, length: 1.5 },
      { network: -1, length: 32 },
      { network: 2 ** 32, length: 32 },
      { network: 0.5, length: 32 },
      { network: ip('10.0.0.1'), length: 0 },
    ];
    for (const prefix of bad) {
      assert.throws(() => table.set(prefix, peer('192.168.64.3')), ConfigError);
      assert.throws(() => table.get(prefix), ConfigError);
      assert.throws(() => table.delete(prefix), ConfigError);
    }
    assert.throws(() => table.set({ network: 0, length: 33 }, peer('192.168.64.3')), {
      message: 'route prefix 0.0.0.0/33 has an invalid length: use an integer from 0 to 32',
    });
  });

  it('rejects invalid peers', () => {
    const table = new RouteTable();
    const prefix = cidr('10.5.1.0/24');
    assert.throws(() => table.set(prefix, { address: ip('192.168.64.3'), port: 0 }), {
      name: 'ConfigError',
      message: 'route 10.5.1.0/24: peer port 0 (to 192.168.64.3) is not valid: use 1..65535',
    });
    assert.throws(() => table.set(prefix, { address: ip('192.168.64.3'), port: 65536 }), ConfigError);
    assert.throws(() => table.set(prefix, { address: -1, port: 8285 }), ConfigError);
    assert.throws(() => table.set(prefix, { address: 2 ** 32, port: 8285 }), ConfigError);
    assert.equal(table.size, 0);
  });
});

describe('longest-prefix lookup', () => {
  const nested: Array<[string, string]> = [
    ['0.0.0.0/0', '192.168.64.1'],
    ['10.0.0.0/8', '192.168.64.8'],
    ['10.5.0.0/16', '192.168.64.16'],
    ['10.5.52.0/24', '192.168.64.24'],
    ['10.5.52.7/32', '192.168.64.32'],
  ];
  const cases: Array<[string, string]> = [
    ['10.5.52.7', '10.5.52.7/32'],
    ['10.5.52.8', '10.5.52.0/24'],
    ['10.5.52.0', '10.5.52.0/24'],
    ['10.5.52.255', '10.5.52.0/24'],
    ['10.5.53.7', '10.5.0.0/16'],
    ['10.6.52.7', '10.0.0.0/8'],
    ['11.5.52.7', '0.0.0.0/0'],
    ['255.255.255.255', '0.0.0.0/0'],
    ['0.0.0.0', '0.0.0.0/0'],
  ];

  function build(): RouteTable {
    const table = new RouteTable();
    for (const [prefix, address] of nested) table.set(cidr(prefix), peer(address));
    return table;
  }

  it('RouteTable.lookup picks the most specific route', () => {
    const table = build();
    for (const [dst, want] of cases) assert.equal(tableRouteText(table, ip(dst)), want, `lookup ${dst}`);
  });

  it('CompiledRoutes.lookup picks the most specific route and its peer', () => {
    const routes = new CompiledRoutes(build().snapshot());
    assert.equal(routes.size, 5);
    for (const [dst, want] of cases) {
      assert.equal(compiledRouteText(routes, ip(dst)), want, `lookup ${dst}`);
      const i = routes.lookup(ip(dst));
      const wantPeer = nested.find(([p]) => p === want)?.[1];
      assert.equal(formatIpv4(routes.peerAddress[i] as number), wantPeer);
      assert.equal(routes.peerPort[i], 8285);
    }
    // addresses >= 2^31 and given as signed int32 must agree
    assert.equal(routes.lookup(ip('200.1.2.3') | 0), routes.lookup(ip('200.1.2.3')));
  });

  it('falls back as specific routes are deleted', () => {
    const table = build();
    const dst = ip('10.5.52.7');
    const want = ['10.5.52.7/32', '10.5.52.0/24', '10.5.0.0/16', '10.0.0.0/8', '0.0.0.0/0', 'none'];
    for (let i = nested.length - 1; i >= -1; i--) {
      assert.equal(tableRouteText(table, dst), want[nested.length - 1 - i]);
      assert.equal(compiledRouteText(new CompiledRoutes(table.snapshot()), dst), want[nested.length - 1 - i]);
      if (i >= 0) table.delete(cidr((nested[i] as [string, string])[0]));
    }
  });

  it('an empty table finds nothing', () => {
    const table = new RouteTable();
    const routes = new CompiledRoutes(table.snapshot());
    assert.equal(table.lookup(0), undefined);
    assert.equal(routes.size, 0);
    assert.equal(routes.lookup(0), -1);
    assert.equal(routes.lookup(0xffffffff), -1);
  });

  it('a realistic flannel table: 255 /24 leases in a /16', () => {
    const table = new RouteTable();
    for (let i = 1; i <= 255; i++) table.set({ network: ip('10.244.0.0') + i * 256, length: 24 }, peer(`192.168.1.${i}`));
    const snapshot = table.snapshot();
    assert.deepEqual(Array.from(snapshot.lengths), [24]);
    const routes = new CompiledRoutes(snapshot);
    for (let i = 0; i <= 255; i++) {
      const idx = routes.lookup(ip(`10.244.${i}.77`));
      if (i === 0) {
        assert.equal(idx, -1, '10.244.0.0/24 is this node: no route');
      } else {
        assert.equal(formatIpv4(routes.peerAddress[idx] as number), `192.168.1.${i}`);
      }
    }
    assert.equal(routes.lookup(ip('10.245.1.1')), -1);
  });
});

describe('snapshots', () => {
  it('an old snapshot is not changed by later table changes', () => {
    const table = new RouteTable();
    table.set(cidr('10.5.1.0/24'), peer('192.168.64.1'));
    table.set(cidr('10.5.2.0/24'), peer('192.168.64.2'));
    const snapshot = table.snapshot();
    const old = new CompiledRoutes(snapshot);
    assert.equal(snapshot.version, table.version);

    table.delete(cidr('10.5.1.0/24'));
    table.set(cidr('10.5.2.0/24'), peer('192.168.64.99'));
    table.set(cidr('10.5.0.0/16'), peer('192.168.64.16'));
    table.set(cidr('10.5.3.0/24'), peer('192.168.64.3'));

    assert.equal(compiledRouteText(old, ip('10.5.1.9')), '10.5.1.0/24');
    assert.equal(formatIpv4(old.peerAddress[old.lookup(ip('10.5.2.9'))] as number), '192.168.64.2');
    assert.equal(old.lookup(ip('10.5.3.9')), -1);
    assert.equal(old.lookup(ip('10.5.4.9')), -1);
    assert.notEqual(table.version, old.version);

    const now = new CompiledRoutes(table.snapshot());
    assert.equal(compiledRouteText(now, ip('10.5.1.9')), '10.5.0.0/16');
    assert.equal(formatIpv4(now.peerAddress[now.lookup(ip('10.5.2.9'))] as number), '192.168.64.99');
    assert.equal(compiledRouteText(now, ip('10.5.3.9')), '10.5.3.0/24');
  });

  it('holds only typed arrays and numbers, and survives structuredClone', () => {
    const table = new RouteTable();
    table.set(cidr('10.5.1.0/24'), peer('192.168.64.1', 8285));
    table.set(cidr('10.0.0.0/8'), peer('192.168.64.8', 9999));
    const snapshot = table.snapshot();
    for (const [name, value] of Object.entries(snapshot)) {
      assert.ok(typeof value === 'number' || ArrayBuffer.isView(value), `${name} is not plain data`);
    }
    const cloned = structuredClone(snapshot);
    assert.notEqual(cloned.slots, snapshot.slots);
    const routes = new CompiledRoutes(cloned);
    assert.equal(routes.version, snapshot.version);
    assert.equal(compiledRouteText(routes, ip('10.5.1.200')), '10.5.1.0/24');
    assert.equal(routes.peerPort[routes.lookup(ip('10.9.9.9'))], 9999);
  });

  it('CompiledRoutes rejects a malformed snapshot', () => {
    const table = new RouteTable();
    table.set(cidr('10.5.1.0/24'), peer('192.168.64.1'));
    const good = table.snapshot();
    const bad: RouteSnapshot[] = [
      { ...good, peerPort: new Uint16Array(2) },
      { ...good, slots: new Int32Array(12) },
      { ...good, lengths: Uint8Array.from([16, 24]) },
      { ...good, lengths: Uint8Array.from([16]) },
      { ...good, lengths: new Uint8Array(0) },
      { ...good, routeNetwork: Uint32Array.from([ip('10.5.1.1')]) },
      { ...good, size: -1 },
      { ...good, peerAddress: new Int32Array(1) as unknown as Uint32Array },
    ];
    for (const snapshot of bad) assert.throws(() => new CompiledRoutes(snapshot), StateError);
  });
});

// ---------------------------------------------------------------------------
// Differential test: RouteTable and CompiledRoutes against a naive list.


interface NaiveRoute {
  network: number;
  length: number;
  address: number;
  port: number;
}

/** The oracle: an array, scanned in full. */
class NaiveRoutes {
  routes: NaiveRoute[] = [];

  set(network: number, length: number, address: number, port: number): void {
    const existing = this.routes.find((r) => r.network === network && r.length === length);
    if (existing === undefined) this.routes.push({ network, length, address, port });
    else {
      existing.address = address;
      existing.port = port;
    }
  }

  delete(network: number, length: number): boolean {
    const i = this.routes.findIndex((r) => r.network === network && r.length === length);
    if (i < 0) return false;
    this.routes.splice(i, 1);
    return true;
  }

  lookup(dst: number): NaiveRoute | undefined {
    let best: NaiveRoute | undefined;
    for (const r of this.routes) {
      const inside = ((dst & prefixMask(r.length)) >>> 0) === r.network;
      if (inside && (best === undefined || r.length > best.length)) best = r;
    }
    return best;
  }

  clone(): NaiveRoutes {
    const copy = new NaiveRoutes();
    copy.routes = this.routes.map((r) => ({ ...r }));
    return copy;
  }
}

function naiveText(route: NaiveRoute | undefined): string {
  return route === undefined
    ? 'none'
    : `${formatPrefix(route)} -> ${formatIpv4(route.address)}:${route.port}`;
}

function compiledText(routes: CompiledRoutes, dst: number): string {
  const i = routes.lookup(dst);
  if (i === -1) return 'none';
  assert.ok(i >= 0 && i < routes.size, `route index ${i} out of range`);
  return `${formatPrefix(routes.prefixOf(i))} -> ${formatIpv4(routes.peerAddress[i] as number)}:${routes.peerPort[i]}`;
}

function tableText(table: RouteTable, dst: number): string {
  const e = table.lookup(dst);
  return e === undefined ? 'none' : `${formatPrefix(e.prefix)} -> ${formatIpv4(e.peer.address)}:${e.peer.port}`;
}

function runDifferential(seed: number, operations: number): void {
  const rng = seededRandom(seed);
  const below = (n: number): number => rng() % n;
  const table = new RouteTable();
  const naive = new NaiveRoutes();
  const cluster = ip('10.244.0.0'); // a flannel network: /24 leases under one /16
  const kept: Array<{ routes: CompiledRoutes; naive: NaiveRoutes }> = [];
  let largest = 0;
  const where = (what: string): string => `seed=${seed} (rerun with ROUTE_TEST_SEED=${seed}): ${what}`;

  const randomPrefix = (): { network: number; length: number } => {
    const kind = below(10);
    let length: number;
    let base: number;
    if (kind < 4) {
      // a lease in the cluster, mostly /24, sometimes /25../28 or /20../23
      length = below(3) === 0 ? 20 + below(9) : 24;
      base = (cluster + (rng() & 0xffff)) >>> 0;
    } else if (kind < 7 && naive.routes.length > 0) {
      // nested under or around an existing route
      const r = naive.routes[below(naive.routes.length)] as NaiveRoute;
      length = Math.max(0, Math.min(32, r.length + below(9) - 4));
      base = (r.network | (rng() & ~prefixMask(r.length))) >>> 0;
    } else if (kind < 8) {
      length = below(2) === 0 ? 0 : 32;
      base = rng();
    } else {
      length = below(33);
      base = rng();
    }
    return { network: (base & prefixMask(length)) >>> 0, length };
  };

  const randomDestination = (): number => {
    const kind = below(4);
    if (kind === 0 || naive.routes.length === 0) return rng();
    if (kind === 1) return (cluster + (rng() & 0xffff)) >>> 0;
    const r = naive.routes[below(naive.routes.length)] as NaiveRoute;
    return (r.network | (rng() & ~prefixMask(r.length))) >>> 0;
  };

  const check = (lookups: number): void => {
    assert.equal(table.size, naive.routes.length, where('size'));
    const sorted = naive.routes
      .slice()
      .sort((a, b) => a.network - b.network || a.length - b.length)
      .map((r) => naiveText(r));
    assert.deepEqual(
      table.entries().map((e) => naiveText({ ...e.prefix, ...e.peer })),
      sorted,
      where('entries'),
    );
    const snapshot = table.snapshot();
    assert.equal(snapshot.version, table.version, where('snapshot version'));
    const routes = new CompiledRoutes(snapshot);
    const cloned = new CompiledRoutes(structuredClone(snapshot));
    for (let i = 0; i < lookups; i++) {
      const dst = randomDestination();
      const want = naiveText(naive.lookup(dst));
      const label = `lookup ${formatIpv4(dst)}`;
      assert.equal(tableText(table, dst), want, where(`RouteTable ${label}`));
      assert.equal(compiledText(routes, dst), want, where(`CompiledRoutes ${label}`));
      assert.equal(compiledText(cloned, dst), want, where(`cloned CompiledRoutes ${label}`));
    }
    kept.push({ routes: cloned, naive: naive.clone() });
  };

  for (let op = 1; op <= operations; op++) {
    const roll = below(100);
    if (roll < 60 || naive.routes.length === 0) {
      const { network, length } = randomPrefix();
      const address = rng();
      const port = 1 + below(65535);
      const before = naive.routes.find((r) => r.network === network && r.length === length);
      const wantChanged = before === undefined || before.address !== address || before.port !== port;
      const version = table.version;
      assert.equal(table.set({ network, length }, { address, port }), wantChanged, where(`set ${formatPrefix({ network, length })}`));
      assert.equal(table.version, version + (wantChanged ? 1 : 0), where('version after set'));
      naive.set(network, length, address, port);
    } else if (roll < 80) {
      // delete: mostly an existing route, sometimes a random (probably absent) prefix
      const target =
        below(5) === 0 ? randomPrefix() : (naive.routes[below(naive.routes.length)] as NaiveRoute);
      const prefix = { network: target.network, length: target.length };
      const version = table.version;
      const removed = naive.delete(prefix.network, prefix.length);
      assert.equal(table.delete(prefix), removed, where(`delete ${formatPrefix(prefix)}`));
      assert.equal(table.version, version + (removed ? 1 : 0), where('version after delete'));
    } else if (roll < 92) {
      // replace the peer of an existing route; setting the same peer again is not a change
      const r = naive.routes[below(naive.routes.length)] as NaiveRoute;
      const same = below(4) === 0;
      const address = same ? r.address : rng();
      const port = same ? r.port : 1 + below(65535);
      const changed = address !== r.address || port !== r.port;
      assert.equal(table.set({ network: r.network, length: r.length }, { address, port }), changed, where('replace'));
      naive.set(r.network, r.length, address, port);
    } else {
      const dst = randomDestination();
      assert.equal(tableText(table, dst), naiveText(naive.lookup(dst)), where(`lookup ${formatIpv4(dst)}`));
    }
    largest = Math.max(largest, table.size);
    if (op % 250 === 0) check(400);
  }
  check(4000);
  assert.ok(largest >= 2000, where(`the table only grew to ${largest} routes; the test is too weak`));

  // every snapshot taken along the way still answers as the table did then
  for (const { routes, naive: then } of kept) {
    for (let i = 0; i < 200; i++) {
      const dst =
        then.routes.length > 0 && below(2) === 0
          ? (() => {
              const r = then.routes[below(then.routes.length)] as NaiveRoute;
              return (r.network | (rng() & ~prefixMask(r.length))) >>> 0;
            })()
          : rng();
      assert.equal(compiledText(routes, dst), naiveText(then.lookup(dst)), where(`old snapshot v${routes.version}`));
    }
  }
}

describe('differential: RouteTable and CompiledRoutes against a naive list', () => {
  const fixed = process.env['ROUTE_TEST_SEED'];
  const seeds = fixed !== undefined ? [Number(fixed) >>> 0] : [1, 0xdeadbeef, (Date.now() ^ (process.pid << 16)) >>> 0];

  for (const seed of seeds) {
    it(`random inserts, deletes, replaces and lookups (seed ${seed})`, () => {
      runDifferential(seed, 12000);
    });
  }

  it('the oracle itself is right on a hand-made case', () => {
    const naive = new NaiveRoutes();
    naive.set(ip('10.0.0.0'), 8, 1, 1);
    naive.set(ip('10.5.0.0'), 16, 2, 2);
    assert.equal(naive.lookup(ip('10.5.1.1'))?.address, 2);
    assert.equal(naive.lookup(ip('10.6.1.1'))?.address, 1);
    assert.equal(naive.lookup(ip('11.0.0.1')), undefined);
  });
});

describe('CompiledRoutes.isPeer', () => {
  it('says exactly whether an address is some route\'s peer, against a plain set, on random tables', () => {
    const next = seededRandom(0x5eed_c0de);
    for (let round = 0; round < 50; round++) {
      const table = new RouteTable();
      const peers = new Set<number>();
      const count = next() % 300;
      for (let i = 0; i < count; i++) {
        // few distinct peers, many routes: several subnets per host
        const address = (0xc0a80000 | (next() % 97)) >>> 0;
        table.set({ network: ((0x0af40000 | ((next() % 256) << 8)) >>> 0), length: 24 }, { address, port: 8285 });
      }
      for (const e of table.entries()) peers.add(e.peer.address);
      const compiled = new CompiledRoutes(table.snapshot());
      for (let a = 0xc0a80000; a < 0xc0a80000 + 128; a++) {
        assert.equal(compiled.isPeer(a), peers.has(a), `round ${round}: ${formatIpv4(a)}`);
        assert.equal(compiled.isPeer(a | 0), peers.has(a), 'a signed address is the same address');
      }
      assert.equal(compiled.isPeer(0), false, '0.0.0.0 is never a peer');
    }
  });
});
