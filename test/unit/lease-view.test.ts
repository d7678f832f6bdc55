/**
 * LeaseView: a snapshot plus store events -> added/changed/removed. Examples
 * first, then a randomized differential test against a naive model.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatPrefix, parseCidr, parseIpv4, type Ipv4Prefix } from '../../src/net/ipv4';
import type { Lease, LeaseEvent } from '../../src/subnet/lease';
import { LeaseView, type LeaseChange } from '../../src/subnet/lease-view';
import { seededRandom } from '../prng';

function prefix(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined && parsed.address === parsed.prefix.network, `bad test prefix ${text}`);
  return parsed.prefix;
}

function lease(subnet: string, publicIp: string, extra: { type?: string; data?: unknown; expires?: number } = {}): Lease {
  const ip = parseIpv4(publicIp);
  assert.ok(ip !== undefined, `bad test address ${publicIp}`);
  const attrs = extra.data === undefined
    ? { publicIp: ip, backendType: extra.type ?? 'udp' }
    : { publicIp: ip, backendType: extra.type ?? 'udp', backendData: extra.data };
  return { subnet: prefix(subnet), attrs, expiration: extra.expires === undefined ? undefined : new Date(extra.expires) };
}

const put = (l: Lease): LeaseEvent => ({ type: 'put', lease: l });
const del = (subnet: string): LeaseEvent => ({ type: 'delete', subnet: prefix(subnet) });

/** Asserts exactly these changes, in order, with the very lease objects given (identity, not just equality). */
function assertChanges(actual: readonly LeaseChange[], expected: readonly LeaseChange[]): void {
  assert.deepEqual(actual, expected);
  actual.forEach((change, i) => {
    const want = expected[i] as LeaseChange;
    assert.equal(change.lease, want.lease, `change ${i}: not the same lease object`);
    if (change.type === 'changed' && want.type === 'changed') assert.equal(change.previous, want.previous, `change ${i}: previous`);
  });
}

function subnets(view: LeaseView): string[] {
  return view.leases().map((l) => formatPrefix(l.subnet)).sort();
}

describe('LeaseView.applySnapshot', () => {
  const a = lease('10.5.1.0/24', '192.168.1.1');
  const b = lease('10.5.2.0/24', '192.168.1.2');
  const c = lease('10.5.3.0/24', '192.168.1.3');

  it('adds every lease of the first snapshot', () => {
    const view = new LeaseView();
    assertChanges(view.applySnapshot([a, b]), [{ type: 'added', lease: a }, { type: 'added', lease: b }]);
    assert.equal(view.size, 2);
    assert.equal(view.get(prefix('10.5.1.0/24')), a);
    assert.equal(view.get(prefix('10.5.2.0/24')), b);
    assert.equal(view.get(prefix('10.5.3.0/24')), undefined);
  });

  it('reports removed, changed and added leases against the previous view', () => {
    const view = new LeaseView();
    view.applySnapshot([a, b]);
    const b2 = lease('10.5.2.0/24', '192.168.1.22');
    assertChanges(view.applySnapshot([b2, c]), [
      { type: 'removed', lease: a },
      { type: 'changed', lease: b2, previous: b },
      { type: 'added', lease: c },
    ]);
    assert.deepEqual(subnets(view), ['10.5.2.0/24', '10.5.3.0/24']);
    assert.equal(view.get(prefix('10.5.2.0/24')), b2);
    assert.equal(view.get(prefix('10.5.1.0/24')), undefined);
  });

  it('reports nothing for an identical snapshot, but keeps the newer lease objects', () => {
    const view = new LeaseView();
    view.applySnapshot([a, b]);
    // Renewed since: same attributes, new expiration, new objects.
    const a2 = lease('10.5.1.0/24', '192.168.1.1', { expires: 2_000_000 });
    const b2 = lease('10.5.2.0/24', '192.168.1.2', { expires: 2_000_000 });
    assertChanges(view.applySnapshot([b2, a2]), []);
    assert.equal(view.get(prefix('10.5.1.0/24')), a2);
    assert.equal(view.get(prefix('10.5.2.0/24')), b2);
  });

  it('counts BackendType and BackendData as part of a lease', () => {
    const view = new LeaseView();
    const v1 = lease('10.5.4.0/24', '192.168.1.4', { type: 'vxlan', data: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:01' } });
    view.applySnapshot([v1]);
    const v2 = lease('10.5.4.0/24', '192.168.1.4', { type: 'vxlan', data: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:02' } });
    assertChanges(view.applySnapshot([v2]), [{ type: 'changed', lease: v2, previous: v1 }]);
    const v3 = lease('10.5.4.0/24', '192.168.1.4', { type: 'udp' });
    assertChanges(view.applySnapshot([v3]), [{ type: 'changed', lease: v3, previous: v2 }]);
    const same = lease('10.5.4.0/24', '192.168.1.4', { type: 'udp' });
    assertChanges(view.applySnapshot([same]), []);
  });

  it('treats the same address with another prefix length as another lease', () => {
    const view = new LeaseView();
    const wide = lease('10.5.0.0/16', '192.168.1.9');
    const narrow = lease('10.5.0.0/24', '192.168.1.9');
    assertChanges(view.applySnapshot([wide, narrow]), [{ type: 'added', lease: wide }, { type: 'added', lease: narrow }]);
    assertChanges(view.applySnapshot([narrow]), [{ type: 'removed', lease: wide }]);
    assert.equal(view.get(prefix('10.5.0.0/24')), narrow);
  });

  it('removes everything for an empty snapshot', () => {
    const view = new LeaseView();
    view.applySnapshot([a, b, c]);
    assertChanges(view.applySnapshot([]), [
      { type: 'removed', lease: a }, { type: 'removed', lease: b }, { type: 'removed', lease: c },
    ]);
    assert.equal(view.size, 0);
    assert.deepEqual(view.leases(), []);
  });
});

describe('LeaseView.applyEvents', () => {
  it('adds a new lease, ignores its renewal, reports its change and removal', () => {
    const view = new LeaseView();
    const a = lease('10.5.1.0/24', '192.168.1.1', { expires: 1000 });
    assertChanges(view.applyEvents([put(a)]), [{ type: 'added', lease: a }]);

    const renewed = lease('10.5.1.0/24', '192.168.1.1', { expires: 9000 });
    assertChanges(view.applyEvents([put(renewed)]), []);
    assert.equal(view.get(a.subnet), renewed, 'the view keeps the renewed lease (new expiration)');

    const moved = lease('10.5.1.0/24', '192.168.1.99', { expires: 9000 });
    assertChanges(view.applyEvents([put(moved)]), [{ type: 'changed', lease: moved, previous: renewed }]);

    assertChanges(view.applyEvents([del('10.5.1.0/24')]), [{ type: 'removed', lease: moved }]);
    assert.equal(view.size, 0);
  });

  it('ignores the delete of a subnet it does not know', () => {
    const view = new LeaseView();
    const a = lease('10.5.1.0/24', '192.168.1.1');
    view.applyEvents([put(a)]);
    assertChanges(view.applyEvents([del('10.5.2.0/24')]), []);
    assertChanges(view.applyEvents([del('10.5.1.0/25')]), []); // same address, other length
    assert.equal(view.size, 1);
    assert.equal(view.get(a.subnet), a);
    assertChanges(new LeaseView().applyEvents([del('10.5.1.0/24')]), []);
  });

  it('adds a lease again after its delete', () => {
    const view = new LeaseView();
    const a = lease('10.5.1.0/24', '192.168.1.1');
    view.applyEvents([put(a)]);
    view.applyEvents([del('10.5.1.0/24')]);
    const again = lease('10.5.1.0/24', '192.168.1.1');
    assertChanges(view.applyEvents([put(again)]), [{ type: 'added', lease: again }]);
  });

  it('applies a batch in order, one change per event that changes something', () => {
    const view = new LeaseView();
    const a1 = lease('10.5.1.0/24', '192.168.1.1');
    const a2 = lease('10.5.1.0/24', '192.168.1.2');
    const a2renewed = lease('10.5.1.0/24', '192.168.1.2', { expires: 5 });
    const a3 = lease('10.5.1.0/24', '192.168.1.3');
    const b = lease('10.5.2.0/24', '192.168.1.7');
    assertChanges(
      view.applyEvents([put(a1), put(b), put(a2), put(a2renewed), del('10.5.1.0/24'), del('10.5.1.0/24'), put(a3), del('10.5.3.0/24')]),
      [
        { type: 'added', lease: a1 },
        { type: 'added', lease: b },
        { type: 'changed', lease: a2, previous: a1 },
        { type: 'removed', lease: a2renewed },
        { type: 'added', lease: a3 },
      ],
    );
    assert.deepEqual(subnets(view), ['10.5.1.0/24', '10.5.2.0/24']);
  });

  it('continues from a snapshot', () => {
    const view = new LeaseView();
    const a = lease('10.5.1.0/24', '192.168.1.1');
    view.applySnapshot([a]);
    const renewed = lease('10.5.1.0/24', '192.168.1.1', { expires: 7 });
    assertChanges(view.applyEvents([put(renewed)]), []);
    // the removed lease is the renewed object the view held last
    assertChanges(view.applyEvents([del('10.5.1.0/24')]), [{ type: 'removed', lease: renewed }]);
  });
});

// ---------------------------------------------------------------------------
// Differential test: LeaseView against the simplest model that could be right.

/** The naive model: a list of [key, lease], scanned linearly. */
class NaiveView {
  entries: Array<[string, Lease]> = [];

  private find(key: string): number {
    return this.entries.findIndex(([k]) => k === key);
  }

  static same(a: Lease, b: Lease): boolean {
    return a.attrs.publicIp === b.attrs.publicIp && a.attrs.backendType === b.attrs.backendType &&
      JSON.stringify(a.attrs.backendData ?? null) === JSON.stringify(b.attrs.backendData ?? null);
  }

  event(e: LeaseEvent): LeaseChange[] {
    if (e.type === 'put') {
      const key = formatPrefix(e.lease.subnet);
      const i = this.find(key);
      if (i < 0) {
        this.entries.push([key, e.lease]);
        return [{ type: 'added', lease: e.lease }];
      }
      const old = (this.entries[i] as [string, Lease])[1];
      this.entries[i] = [key, e.lease];
      return NaiveView.same(old, e.lease) ? [] : [{ type: 'changed', lease: e.lease, previous: old }];
    }
    const i = this.find(formatPrefix(e.subnet));
    if (i < 0) return [];
    const old = (this.entries[i] as [string, Lease])[1];
    this.entries.splice(i, 1);
    return [{ type: 'removed', lease: old }];
  }

  snapshot(leases: readonly Lease[]): LeaseChange[] {
    const changes: LeaseChange[] = [];
    const next: Array<[string, Lease]> = leases.map((l) => [formatPrefix(l.subnet), l]);
    for (const [key, old] of this.entries) {
      if (!next.some(([k]) => k === key)) changes.push({ type: 'removed', lease: old });
    }
    for (const [key, l] of next) {
      const old = this.entries.find(([k]) => k === key);
      if (old === undefined) changes.push({ type: 'added', lease: l });
      else if (!NaiveView.same(old[1], l)) changes.push({ type: 'changed', lease: l, previous: old[1] });
    }
    this.entries = next;
    return changes;
  }
}

/** A change as comparable text, naming the exact objects by id. */
function describeChange(change: LeaseChange, ids: Map<Lease, number>): string {
  const id = (l: Lease): number => ids.get(l) ?? -1;
  const base = `${change.type} ${formatPrefix(change.lease.subnet)} #${id(change.lease)}`;
  return change.type === 'changed' ? `${base} (was #${id(change.previous)})` : base;
}

describe('LeaseView against a naive model (randomized)', () => {
  // A small key space so that keys collide often; two lengths at one address.
  const SUBNETS = [
    '10.5.0.0/16', '10.5.0.0/24', '10.5.1.0/24', '10.5.2.0/24', '10.5.3.0/24', '10.5.4.0/24',
    '10.5.4.0/25', '10.5.4.128/25', '10.5.200.0/24', '10.6.0.0/24', '192.168.0.0/30', '10.5.255.0/24',
  ].map(prefix);
  const IPS = ['192.168.1.1', '192.168.1.2', '192.168.1.3'].map((t) => parseIpv4(t) as number);
  const TYPES = ['udp', 'udp', 'vxlan', ''];

  for (const seed of [1, 2, 3, 0xdecaf]) {
    it(`agrees over 5000 random events and snapshots (seed ${seed})`, () => {
      const next = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[next() % items.length] as T;
      const ids = new Map<Lease, number>();
      const randomLease = (subnet: Ipv4Prefix): Lease => {
        const type = pick(TYPES);
        const withData = type === 'vxlan' && next() % 2 === 0;
        const attrs = withData
          ? { publicIp: pick(IPS), backendType: type, backendData: { VNI: 1 + (next() % 2) } }
          : { publicIp: pick(IPS), backendType: type };
        const l: Lease = { subnet, attrs, expiration: next() % 4 === 0 ? undefined : new Date(next() % 1000) };
        ids.set(l, ids.size);
        return l;
      };

      const view = new LeaseView();
      const model = new NaiveView();
      let changesSeen = 0;
      let snapshots = 0;
      for (let step = 0; step < 5000; step++) {
        let actual: LeaseChange[];
        let expected: LeaseChange[];
        const roll = next() % 100;
        if (roll < 3) {
          // A snapshot: some current leases kept as they are, some changed or renewed, some new.
          snapshots++;
          const leases: Lease[] = [];
          for (const subnet of SUBNETS) {
            const current = model.entries.find(([k]) => k === formatPrefix(subnet))?.[1];
            const r = next() % 4;
            if (r === 0) continue;
            if (r === 1 && current !== undefined) leases.push(current);
            else leases.push(randomLease(subnet));
          }
          actual = view.applySnapshot(leases);
          expected = model.snapshot(leases);
          // Order within a snapshot diff is not part of the contract; compare as sorted lists.
          const a = actual.map((c) => describeChange(c, ids)).sort();
          const e = expected.map((c) => describeChange(c, ids)).sort();
          assert.deepEqual(a, e, `step ${step}: snapshot`);
        } else {
          const batch: LeaseEvent[] = [];
          const n = 1 + (next() % 4);
          for (let i = 0; i < n; i++) {
            const subnet = pick(SUBNETS);
            const current = model.entries.find(([k]) => k === formatPrefix(subnet))?.[1];
            const r = next() % 10;
            if (r < 3) {
              batch.push({ type: 'delete', subnet });
            } else if (r < 6 && current !== undefined) {
              // a renewal: same attributes, new object, new expiration
              const renewed: Lease = { subnet, attrs: { ...current.attrs }, expiration: new Date(next() % 100_000) };
              ids.set(renewed, ids.size);
              batch.push({ type: 'put', lease: renewed });
            } else {
              batch.push({ type: 'put', lease: randomLease(subnet) });
            }
          }
          actual = view.applyEvents(batch);
          expected = [];
          for (const e of batch) expected.push(...model.event(e));
          // Events are ordered: compare exactly, in order.
          assert.deepEqual(actual.map((c) => describeChange(c, ids)), expected.map((c) => describeChange(c, ids)), `step ${step}: events`);
        }
        changesSeen += actual.length;

        // The accumulated state: same keys, the very same lease objects.
        assert.equal(view.size, model.entries.length, `step ${step}: size`);
        const fromView = view.leases().map((l) => `${formatPrefix(l.subnet)} #${ids.get(l) ?? -1}`).sort();
        const fromModel = model.entries.map(([k, l]) => `${k} #${ids.get(l) ?? -1}`).sort();
        assert.deepEqual(fromView, fromModel, `step ${step}: state`);
        for (const subnet of SUBNETS) {
          assert.equal(view.get(subnet), model.entries.find(([k]) => k === formatPrefix(subnet))?.[1], `step ${step}: get`);
        }
      }
      // The run exercised the interesting paths at all.
      assert.ok(snapshots > 50, `only ${snapshots} snapshots`);
      assert.ok(changesSeen > 5000, `only ${changesSeen} changes`);
    });
  }
});
