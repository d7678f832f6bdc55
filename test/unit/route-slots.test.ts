/**
 * Counter slots of the route table (src/routing/route-table.ts): every route
 * has a small integer that stays the same while its prefix is routed, so that
 * the data plane can keep per-peer counters at that index; a removed route's
 * slot comes back only after releaseSlots, which has it cleared first.
 * Also CompiledRoutes' checks of routeSlot / slotCount, and peerRoute.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { StateError } from '../../src/errors';
import { formatPrefix } from '../../src/net/ipv4';
import { CompiledRoutes, RouteTable, type Peer, type RouteSnapshot } from '../../src/routing';
import { cidr, ip } from '../addresses';
import { checkProperty } from '../property';

function peer(address: string, port = 8285): Peer {
  return { address: ip(address), port };
}

/** The slot of the route for exactly `text`; fails when there is none. */
function slotOf(table: RouteTable, text: string): number {
  const entry = table.entries().find((e) => formatPrefix(e.prefix) === text);
  assert.ok(entry !== undefined, `no route for ${text}`);
  return entry.slot;
}

/** Slots by prefix text. */
function slotsByPrefix(table: RouteTable): Map<string, number> {
  return new Map(table.entries().map((e) => [formatPrefix(e.prefix), e.slot]));
}

/** A clear callback that records the slots it was called with, in order. */
function recorder(): { clear: (slot: number) => void; cleared: number[] } {
  const cleared: number[] = [];
  return { clear: (slot) => cleared.push(slot), cleared };
}

function assertDistinctBelow(slots: readonly number[], count: number, what: string): void {
  assert.equal(new Set(slots).size, slots.length, `${what}: slots ${slots.join(',')} are not distinct`);
  for (const s of slots) assert.ok(Number.isInteger(s) && s >= 0 && s < count, `${what}: slot ${s} is not in 0..${count - 1}`);
}

describe('route slots: stable and distinct', () => {
  it('gives every route its own slot and keeps it across snapshots while the prefix stays', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.3.0/24'), peer('192.168.77.3'));
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.2.0/24'), peer('192.168.77.2'));
    const before = slotsByPrefix(table);
    assertDistinctBelow([...before.values()], table.slotCount, 'three routes');
    const first = table.snapshot();

    table.set(cidr('10.244.0.0/24'), peer('192.168.77.9')); // sorts first: shifts every route index
    table.set(cidr('10.244.2.0/24'), peer('192.168.77.20', 9000)); // the subnet moves to another host
    const second = table.snapshot();
    const after = slotsByPrefix(table);

    for (const [prefix, slot] of before) assert.equal(after.get(prefix), slot, `${prefix} changed its slot`);
    assertDistinctBelow([...after.values()], table.slotCount, 'four routes');
    // the snapshots agree with each other through the prefixes, not the indexes
    const bySnapshot = (s: RouteSnapshot): Map<string, number> => {
      const compiled = new CompiledRoutes(s);
      return new Map(Array.from({ length: s.size }, (_, i) => [formatPrefix(compiled.prefixOf(i)), s.routeSlot[i] as number]));
    };
    const a = bySnapshot(first);
    const b = bySnapshot(second);
    for (const [prefix, slot] of a) assert.equal(b.get(prefix), slot, `${prefix}: snapshot slots differ`);
  });

  it('snapshot.routeSlot and slotCount match entries() and slotCount', () => {
    const table = new RouteTable();
    for (const t of ['10.244.9.0/24', '10.0.0.0/8', '10.244.0.0/16', '192.168.0.0/24', '0.0.0.0/0']) table.set(cidr(t), peer('192.168.77.1'));
    table.delete(cidr('10.0.0.0/8'));
    const snap = table.snapshot();
    const entries = table.entries();
    assert.ok(snap.routeSlot instanceof Uint32Array);
    assert.deepEqual([...snap.routeSlot], entries.map((e) => e.slot));
    assert.equal(snap.slotCount, table.slotCount);
    assert.equal(snap.slotCount, 5, 'the deleted route keeps its slot until released');
    assert.equal(snap.size, 4);
    const compiled = new CompiledRoutes(snap);
    assert.equal(compiled.slotCount, 5);
    assert.deepEqual([...compiled.routeSlot], entries.map((e) => e.slot));
  });

  it('an unchanged set keeps the slot and makes none', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    const slot = slotOf(table, '10.244.1.0/24');
    assert.equal(table.set(cidr('10.244.1.0/24'), peer('192.168.77.1')), false);
    assert.equal(slotOf(table, '10.244.1.0/24'), slot);
    assert.equal(table.slotCount, 1);
  });

  it('a snapshot taken earlier keeps its slots when the table changes', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    const snap = table.snapshot();
    const copy = Uint32Array.from(snap.routeSlot);
    table.delete(cidr('10.244.1.0/24'));
    table.releaseSlots(table.version, () => undefined);
    table.set(cidr('10.244.7.0/24'), peer('192.168.77.7'));
    assert.deepEqual(snap.routeSlot, copy);
    assert.equal(snap.slotCount, 1);
  });
});

describe('route slots: release and reuse', () => {
  it('does not reuse a deleted route\'s slot before releaseSlots reaches the deletion\'s version, and clears it once before reuse', () => {
    const table = new RouteTable();
    const events: string[] = [];
    const { clear, cleared } = recorder();
    const logClear = (slot: number): void => {
      events.push(`clear ${slot}`);
      clear(slot);
    };
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.2.0/24'), peer('192.168.77.2'));
    const gone = slotOf(table, '10.244.1.0/24');
    assert.equal(table.delete(cidr('10.244.1.0/24')), true);
    const deletedAt = table.version;

    table.set(cidr('10.244.3.0/24'), peer('192.168.77.3'));
    assert.notEqual(slotOf(table, '10.244.3.0/24'), gone, 'reused before release');
    assert.equal(table.releaseSlots(deletedAt - 1, logClear), 0, 'a version before the deletion releases nothing');
    assert.deepEqual(cleared, []);
    table.set(cidr('10.244.4.0/24'), peer('192.168.77.4'));
    assert.notEqual(slotOf(table, '10.244.4.0/24'), gone, 'reused after a release of an earlier version');
    assert.equal(table.slotCount, 4);

    assert.equal(table.releaseSlots(deletedAt, logClear), 1);
    assert.deepEqual(cleared, [gone]);
    assert.equal(table.releaseSlots(table.version, logClear), 0, 'a released slot is not released again');
    assert.deepEqual(cleared, [gone], 'clear is called once');

    table.set(cidr('10.244.5.0/24'), peer('192.168.77.5'));
    events.push(`set ${slotOf(table, '10.244.5.0/24')}`);
    assert.deepEqual(events, [`clear ${gone}`, `set ${gone}`], 'cleared, then reused');
    assert.equal(table.slotCount, 4, 'reuse makes no new slot');
  });

  it('releases with any later version, and only the slots retired by then', () => {
    const table = new RouteTable();
    for (let k = 1; k <= 4; k++) table.set(cidr(`10.244.${k}.0/24`), peer(`192.168.77.${k}`));
    const s1 = slotOf(table, '10.244.1.0/24');
    const s2 = slotOf(table, '10.244.2.0/24');
    table.delete(cidr('10.244.1.0/24'));
    const v1 = table.version;
    table.set(cidr('10.244.9.0/24'), peer('192.168.77.9'));
    table.delete(cidr('10.244.2.0/24'));
    const { clear, cleared } = recorder();
    assert.equal(table.releaseSlots(v1 + 1, clear), 1, 'the second deletion is later than v1 + 1');
    assert.deepEqual(cleared, [s1]);
    assert.equal(table.releaseSlots(v1 + 100, clear), 1);
    assert.deepEqual(cleared, [s1, s2]);
  });

  it('a prefix deleted and added again before release gets another slot', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    const old = slotOf(table, '10.244.1.0/24');
    table.delete(cidr('10.244.1.0/24'));
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    assert.notEqual(slotOf(table, '10.244.1.0/24'), old, 'the old figures are still being written by workers on the old snapshot');
  });

  it('clear() retires every slot; they come back after release, cleared once each', () => {
    const table = new RouteTable();
    for (let k = 1; k <= 3; k++) table.set(cidr(`10.244.${k}.0/24`), peer(`192.168.77.${k}`));
    const slots = [...slotsByPrefix(table).values()].sort((a, b) => a - b);
    table.clear();
    const clearedAt = table.version;
    assert.equal(table.size, 0);
    table.set(cidr('10.244.8.0/24'), peer('192.168.77.8'));
    assert.ok(!slots.includes(slotOf(table, '10.244.8.0/24')), 'a slot retired by clear() was reused before release');
    assert.equal(table.slotCount, 4);

    const { clear, cleared } = recorder();
    assert.equal(table.releaseSlots(clearedAt, clear), 3);
    assert.deepEqual([...cleared].sort((a, b) => a - b), slots);
    for (let k = 4; k <= 6; k++) table.set(cidr(`10.244.${k * 10}.0/24`), peer('192.168.77.4'));
    const reused = [40, 50, 60].map((k) => slotOf(table, `10.244.${k}.0/24`)).sort((a, b) => a - b);
    assert.deepEqual(reused, slots, 'the released slots are reused before new ones are made');
    assert.equal(table.slotCount, 4);
  });

  it('clear() of an empty table retires nothing', () => {
    const table = new RouteTable();
    table.clear();
    const { clear, cleared } = recorder();
    assert.equal(table.releaseSlots(table.version + 10, clear), 0);
    assert.deepEqual(cleared, []);
  });
});

describe('CompiledRoutes: slot checks', () => {
  function base(): RouteSnapshot {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.2.0/24'), peer('192.168.77.2'));
    table.set(cidr('10.244.3.0/24'), peer('192.168.77.3'));
    return table.snapshot();
  }
  const malformed = /^route snapshot is malformed: /;

  function rejects(snapshot: RouteSnapshot, what: string): void {
    assert.throws(() => new CompiledRoutes(snapshot), (err: unknown) => {
      assert.ok(err instanceof StateError, `${what}: threw ${String(err)}, not a StateError`);
      assert.match(err.message, malformed, what);
      assert.equal(err.code, 'WEFT_ERR_STATE');
      return true;
    }, what);
  }

  it('accepts the snapshot as built, and one with a gap in its slots', () => {
    assert.equal(new CompiledRoutes(base()).slotCount, 3);
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.2.0/24'), peer('192.168.77.2'));
    table.delete(cidr('10.244.1.0/24'));
    const snap = table.snapshot();
    assert.deepEqual([...snap.routeSlot], [1]);
    assert.equal(new CompiledRoutes(snap).slotCount, 2);
  });

  it('rejects a slot shared by two routes', () => {
    rejects({ ...base(), routeSlot: Uint32Array.from([0, 2, 0]) }, 'duplicate slot');
  });

  it('rejects a slot at or beyond slotCount', () => {
    rejects({ ...base(), routeSlot: Uint32Array.from([0, 1, 3]) }, 'slot == slotCount');
    rejects({ ...base(), routeSlot: Uint32Array.from([0, 1, 0xffffffff]) }, 'slot 2^32-1');
    rejects({ ...base(), slotCount: 2 }, 'slotCount below the routes');
  });

  it('rejects a slotCount that is not an integer', () => {
    rejects({ ...base(), slotCount: 3.5 }, 'slotCount 3.5');
    rejects({ ...base(), slotCount: Number.NaN }, 'slotCount NaN');
    rejects({ ...base(), slotCount: -1 }, 'slotCount -1');
  });

  it('rejects a routeSlot of the wrong type or length', () => {
    rejects({ ...base(), routeSlot: Int32Array.from([0, 1, 2]) as unknown as Uint32Array }, 'Int32Array');
    rejects({ ...base(), routeSlot: Uint16Array.from([0, 1, 2]) as unknown as Uint32Array }, 'Uint16Array');
    rejects({ ...base(), routeSlot: [0, 1, 2] as unknown as Uint32Array }, 'plain array');
    rejects({ ...base(), routeSlot: undefined as unknown as Uint32Array }, 'missing');
    rejects({ ...base(), routeSlot: Uint32Array.from([0, 1]) }, 'too short');
    rejects({ ...base(), routeSlot: Uint32Array.from([0, 1, 2, 3]), slotCount: 4 }, 'too long');
  });

  it('survives structuredClone', () => {
    const snap = structuredClone(base());
    assert.deepEqual([...new CompiledRoutes(snap).routeSlot], [0, 1, 2]);
  });
});

describe('CompiledRoutes.peerRoute', () => {
  it('returns the lowest-subnet route of a host with two subnets, whatever the order they were set in', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.9.0/24'), peer('192.168.77.2'));
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.5.0/24'), peer('192.168.77.2'));
    const routes = new CompiledRoutes(table.snapshot());
    const r = routes.peerRoute(ip('192.168.77.2'));
    assert.ok(r >= 0);
    assert.equal(formatPrefix(routes.prefixOf(r)), '10.244.5.0/24');
    assert.equal(routes.routeSlot[r], slotOf(table, '10.244.5.0/24'));
    assert.equal(formatPrefix(routes.prefixOf(routes.peerRoute(ip('192.168.77.1')))), '10.244.1.0/24');
    assert.equal(routes.isPeer(ip('192.168.77.2')), true);
  });

  it('a shorter prefix at the same network comes first (subnet order: network, then length)', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.4.0/24'), peer('192.168.77.4'));
    table.set(cidr('10.244.4.0/22'), peer('192.168.77.4'));
    const routes = new CompiledRoutes(table.snapshot());
    assert.equal(formatPrefix(routes.prefixOf(routes.peerRoute(ip('192.168.77.4')))), '10.244.4.0/22');
  });

  it('returns -1 for an address that is no peer, and for 0.0.0.0 even when a route names it', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('192.168.77.1'));
    table.set(cidr('10.244.2.0/24'), peer('0.0.0.0'));
    const routes = new CompiledRoutes(table.snapshot());
    assert.equal(routes.peerRoute(ip('192.168.77.9')), -1);
    assert.equal(routes.peerRoute(ip('10.244.1.1')), -1, 'an overlay address is not a host');
    assert.equal(routes.peerRoute(0), -1);
    assert.equal(routes.isPeer(0), false);
    assert.equal(new CompiledRoutes(new RouteTable().snapshot()).peerRoute(ip('192.168.77.1')), -1, 'empty table');
  });

  it('takes the address signed or unsigned, and forgets a host whose subnet moved away', () => {
    const table = new RouteTable();
    table.set(cidr('10.244.1.0/24'), peer('200.1.2.3'));
    let routes = new CompiledRoutes(table.snapshot());
    assert.equal(routes.peerRoute(ip('200.1.2.3')), 0);
    assert.equal(routes.peerRoute(ip('200.1.2.3') | 0), 0);
    table.set(cidr('10.244.1.0/24'), peer('200.1.2.4'));
    routes = new CompiledRoutes(table.snapshot());
    assert.equal(routes.peerRoute(ip('200.1.2.3')), -1);
    assert.equal(routes.peerRoute(ip('200.1.2.4')), 0);
  });

  it('agrees with a scan of the routes for many hosts', () => {
    const table = new RouteTable();
    for (let k = 0; k < 200; k++) table.set(cidr(`10.${k % 7}.${k}.0/24`), peer(`192.168.${k % 13}.${(k * 7) % 31 + 1}`));
    const snap = table.snapshot();
    const routes = new CompiledRoutes(snap);
    for (let h = 0; h < 13; h++) {
      for (let a = 1; a <= 31; a++) {
        const address = ip(`192.168.${h}.${a}`);
        const expected = [...snap.peerAddress].indexOf(address);
        assert.equal(routes.peerRoute(address), expected, `192.168.${h}.${a}`);
      }
    }
  });
});

// ---- property: random set / delete / clear / release sequences --------------------------------

type Op =
  | { readonly kind: 'set'; readonly prefix: number; readonly peer: number }
  | { readonly kind: 'delete'; readonly prefix: number }
  | { readonly kind: 'clear' }
  | { readonly kind: 'release'; readonly lag: number };

/** A few prefixes (nested ones among them) and peers, so that sequences revisit them. */
const PREFIXES = ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24', '10.244.0.0/16', '10.244.1.0/25', '10.0.0.0/8', '0.0.0.0/0', '192.168.1.0/24'];
const PEERS = ['192.168.77.1', '192.168.77.2', '192.168.77.3'];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), prefix: fc.nat(PREFIXES.length - 1), peer: fc.nat(PEERS.length - 1) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('delete' as const), prefix: fc.nat(PREFIXES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), lag: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

describe('route slots: property', () => {
  it('live slots are distinct and below slotCount, stable, not reused before release, cleared once; slotCount stays bounded', () => {
    checkProperty(fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
      const table = new RouteTable();
      /** model: retired slots (removed, not yet released) with the version that removed them */
      let retired: Array<{ slot: number; version: number }> = [];
      /** model: released slots, not yet reused */
      const free = new Set<number>();
      let highWater = 0;
      for (const [step, op] of ops.entries()) {
        const what = `step ${step} (${JSON.stringify(op)})`;
        const before = slotsByPrefix(table);
        const countBefore = table.slotCount;
        switch (op.kind) {
          case 'set': {
            const text = PREFIXES[op.prefix] as string;
            table.set(cidr(text), peer(PEERS[op.peer] as string));
            const slot = slotOf(table, text);
            const old = before.get(text);
            if (old !== undefined) {
              assert.equal(slot, old, `${what}: the prefix changed its slot`);
            } else {
              assert.ok(!retired.some((r) => r.slot === slot), `${what}: reused slot ${slot} before its release`);
              if (slot < countBefore) {
                assert.ok(free.has(slot), `${what}: slot ${slot} was handed out again without being released`);
                free.delete(slot);
              } else {
                assert.equal(slot, countBefore, `${what}: a new slot must be the next one`);
              }
            }
            break;
          }
          case 'delete': {
            const text = PREFIXES[op.prefix] as string;
            const removed = table.delete(cidr(text));
            assert.equal(removed, before.has(text), `${what}: delete's result`);
            if (removed) retired.push({ slot: before.get(text) as number, version: table.version });
            break;
          }
          case 'clear':
            table.clear();
            for (const slot of before.values()) retired.push({ slot, version: table.version });
            break;
          case 'release': {
            const applied = table.version - op.lag;
            const cleared: number[] = [];
            const n = table.releaseSlots(applied, (slot) => cleared.push(slot));
            const due = retired.filter((r) => r.version <= applied).map((r) => r.slot);
            assert.equal(n, cleared.length, `${what}: the count returned`);
            assert.deepEqual([...cleared].sort((a, b) => a - b), [...due].sort((a, b) => a - b), `${what}: slots cleared`);
            for (const s of cleared) free.add(s);
            retired = retired.filter((r) => r.version > applied);
            break;
          }
        }
        // prefixes that stayed kept their slots (also through a peer change)
        const after = slotsByPrefix(table);
        for (const [text, slot] of before) {
          if (after.has(text)) assert.equal(after.get(text), slot, `${what}: ${text} changed its slot`);
        }
        const live = [...after.values()];
        assertDistinctBelow(live, table.slotCount, what);
        for (const r of retired) assert.ok(!live.includes(r.slot), `${what}: retired slot ${r.slot} is live`);
        assert.ok(table.slotCount >= countBefore, `${what}: slotCount went down`);
        highWater = Math.max(highWater, live.length + retired.length);
        assert.ok(table.slotCount <= highWater,
          `${what}: slotCount ${table.slotCount} exceeds the most routes alive plus retired at once (${highWater})`);
        const snap = table.snapshot();
        assert.deepEqual([...snap.routeSlot], table.entries().map((e) => e.slot), `${what}: snapshot routeSlot`);
        assert.equal(snap.slotCount, table.slotCount, `${what}: snapshot slotCount`);
        new CompiledRoutes(snap); // throws StateError if the slots are out of range or shared
      }
    }), 300);
  });
});
