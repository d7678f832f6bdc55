/**
 * Subnet allocation in flannel's order: own lease by PublicIP, then the
 * previous subnet, then a random one among the first 100 free subnets from
 * SubnetMin; "out of subnets" when none is free. chooseSubnet is pure;
 * acquireLease runs it against a MemoryLeaseStore.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { LeaseError, LeaseLostError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { formatPrefix, parseCidr, parseIpv4, prefixesOverlap, type Ipv4Prefix } from '../../src/net/ipv4';
import type { Lease, LeaseAttrs } from '../../src/subnet/lease';
import { acquireLease, chooseSubnet, FREE_SUBNET_CANDIDATES } from '../../src/subnet/lease-allocator';
import { parseNetConfig, subnetAt, subnetCount, type SubnetRange } from '../../src/subnet/net-config';
import { MemoryLeaseStore } from '../memory-lease-store';
import { seededRandom } from '../prng';

function ip(text: string): number {
  const value = parseIpv4(text);
  assert.ok(value !== undefined, `bad test address ${text}`);
  return value;
}

function prefix(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined && parsed.address === parsed.prefix.network, `bad test prefix ${text}`);
  return parsed.prefix;
}

function lease(subnet: string, publicIp: string): Lease {
  return { subnet: prefix(subnet), attrs: { publicIp: ip(publicIp), backendType: 'udp' }, expiration: new Date(86_400_000) };
}

const MY_IP = '192.168.1.1';
const ME: LeaseAttrs = { publicIp: ip(MY_IP), backendType: 'udp' };
const OTHER: LeaseAttrs = { publicIp: ip('192.168.1.2'), backendType: 'udp' };

/** 10.5.0.0/16 in /24s: SubnetMin 10.5.1.0, SubnetMax 10.5.255.0 (flannel's defaults), 255 subnets. */
const CFG: SubnetRange = parseNetConfig('{"Network":"10.5.0.0/16","SubnetLen":24}', 'net-conf.json');
/** 10.9.0.0/24 in /26s, three of them: 10.9.0.64, 10.9.0.128, 10.9.0.192. */
const SMALL: SubnetRange = parseNetConfig('{"Network":"10.9.0.0/24","SubnetLen":26}', 'net-conf.json');

const never = (): number => {
  throw new Error('random() must not be called here');
};
const first = (): number => 0;
const last = (): number => 0.999999;

function created(choice: ReturnType<typeof chooseSubnet>): { subnet: string; why: string } {
  assert.equal(choice.kind, 'create', `expected a create, got ${JSON.stringify(choice)}`);
  if (choice.kind !== 'create') throw new Error('unreachable');
  return { subnet: formatPrefix(choice.subnet), why: choice.why };
}

/** The free subnets from SubnetMin, as the naive definition says. */
function freeSubnets(cfg: SubnetRange, leases: readonly Lease[], tried: ReadonlySet<string> = new Set()): string[] {
  const free: string[] = [];
  for (let i = 0; i < subnetCount(cfg); i++) {
    const s = subnetAt(cfg, i);
    if (!tried.has(formatPrefix(s)) && !leases.some((l) => prefixesOverlap(l.subnet, s))) free.push(formatPrefix(s));
  }
  return free;
}

describe('chooseSubnet', () => {
  it('checks the test config is what the tests assume', () => {
    assert.equal(formatPrefix(subnetAt(CFG, 0)), '10.5.1.0/24');
    assert.equal(subnetCount(CFG), 255);
    assert.deepEqual([0, 1, 2].map((i) => formatPrefix(subnetAt(SMALL, i))), ['10.9.0.64/26', '10.9.0.128/26', '10.9.0.192/26']);
    assert.equal(subnetCount(SMALL), 3);
  });

  describe('reuse of this host\'s lease', () => {
    it('reuses the lease held under this PublicIP', () => {
      const own = lease('10.5.7.0/24', MY_IP);
      const leases = [lease('10.5.1.0/24', '192.168.1.2'), own, lease('10.5.9.0/24', '192.168.1.3')];
      const choice = chooseSubnet(CFG, leases, ip(MY_IP), prefix('10.5.40.0/24'), never);
      assert.equal(choice.kind, 'reuse');
      if (choice.kind === 'reuse') assert.equal(choice.lease, own);
    });

    it('reuses an own lease at SubnetMin and at SubnetMax', () => {
      for (const subnet of ['10.5.1.0/24', '10.5.255.0/24']) {
        const own = lease(subnet, MY_IP);
        const choice = chooseSubnet(CFG, [own], ip(MY_IP), undefined, never);
        assert.deepEqual(choice, { kind: 'reuse', lease: own }, subnet);
      }
    });

    it('does not reuse an own lease that does not fit SubnetLen, SubnetMin or SubnetMax', () => {
      const narrow: SubnetRange = { ...CFG, subnetMin: ip('10.5.10.0'), subnetMax: ip('10.5.20.0') };
      const misfits: Array<[SubnetRange, string]> = [
        [CFG, '10.5.0.0/24'], // below SubnetMin (the first subnet is skipped)
        [CFG, '10.6.1.0/24'], // outside Network
        [CFG, '10.5.8.0/23'], // another length
        [CFG, '10.5.8.0/25'],
        [narrow, '10.5.9.0/24'], // below a given SubnetMin
        [narrow, '10.5.21.0/24'], // above a given SubnetMax
      ];
      for (const [cfg, subnet] of misfits) {
        const own = lease(subnet, MY_IP);
        const choice = chooseSubnet(cfg, [own], ip(MY_IP), undefined, first);
        assert.equal(choice.kind, 'create', subnet);
        if (choice.kind !== 'create') continue;
        assert.equal(choice.why, 'random', subnet);
        assert.ok(!prefixesOverlap(choice.subnet, own.subnet), `${subnet}: picked ${formatPrefix(choice.subnet)}, which overlaps it`);
        assert.equal(formatPrefix(choice.subnet), freeSubnets(cfg, [own])[0], subnet);
      }
    });

    it('prefers the own lease over the previous subnet', () => {
      const own = lease('10.5.7.0/24', MY_IP);
      assert.equal(chooseSubnet(CFG, [own], ip(MY_IP), prefix('10.5.8.0/24'), never).kind, 'reuse');
    });

    it('does not reuse another host\'s lease', () => {
      const choice = chooseSubnet(CFG, [lease('10.5.7.0/24', '192.168.1.2')], ip(MY_IP), undefined, first);
      assert.deepEqual(created(choice), { subnet: '10.5.1.0/24', why: 'random' });
    });
  });

  describe('the previous subnet', () => {
    it('takes the previous subnet when it is free', () => {
      const leases = [lease('10.5.1.0/24', '192.168.1.2'), lease('10.5.41.0/24', '192.168.1.3')];
      assert.deepEqual(created(chooseSubnet(CFG, leases, ip(MY_IP), prefix('10.5.40.0/24'), never)), { subnet: '10.5.40.0/24', why: 'previous' });
    });

    it('picks at random when another host holds the previous subnet', () => {
      const leases = [lease('10.5.40.0/24', '192.168.1.2')];
      assert.deepEqual(created(chooseSubnet(CFG, leases, ip(MY_IP), prefix('10.5.40.0/24'), first)), { subnet: '10.5.1.0/24', why: 'random' });
    });

    it('picks at random when a hand-written lease of another length overlaps the previous subnet', () => {
      for (const written of ['10.5.40.0/22', '10.5.41.128/25', '10.5.0.0/16']) {
        const leases = [lease(written, '192.168.1.2')];
        const choice = chooseSubnet(CFG, leases, ip(MY_IP), prefix('10.5.41.0/24'), first);
        if (written === '10.5.0.0/16') {
          assert.deepEqual(choice, { kind: 'full' }, 'a /16 lease over the whole network leaves nothing');
          continue;
        }
        const { subnet, why } = created(choice);
        assert.equal(why, 'random', written);
        assert.ok(!prefixesOverlap(prefix(subnet), prefix(written)), `${written}: picked ${subnet}`);
      }
      // The /22 takes 10.5.40.0-10.5.43.255: the 40th free subnet is then 10.5.44.0, not 10.5.40.0.
      const leases = [lease('10.5.40.0/22', '192.168.1.2')];
      const pick40 = (): number => 39.5 / FREE_SUBNET_CANDIDATES;
      assert.deepEqual(created(chooseSubnet(CFG, leases, ip(MY_IP), prefix('10.5.41.0/24'), pick40)), { subnet: '10.5.44.0/24', why: 'random' });
    });

    it('ignores a previous subnet outside the range or of another length', () => {
      for (const previous of ['10.5.0.0/24', '10.6.3.0/24', '10.5.40.0/25', '10.5.40.0/23']) {
        assert.deepEqual(created(chooseSubnet(CFG, [], ip(MY_IP), prefix(previous), first)), { subnet: '10.5.1.0/24', why: 'random' }, previous);
      }
    });
  });

  describe('the random pick', () => {
    // Every third subnet from 10.5.1.0 is taken, so the free ones are not simply the first 100.
    const taken = Array.from({ length: 85 }, (_, i) => lease(`10.5.${1 + 3 * i}.0/24`, '192.168.2.1'));
    const free = freeSubnets(CFG, taken);
    const firstHundred = free.slice(0, FREE_SUBNET_CANDIDATES);

    it('sets the scene: more than 100 free subnets', () => {
      assert.equal(FREE_SUBNET_CANDIDATES, 100);
      assert.ok(free.length > 120, `${free.length} free`);
      assert.deepEqual(firstHundred.slice(0, 3), ['10.5.2.0/24', '10.5.3.0/24', '10.5.5.0/24']);
    });

    it('random() = 0 picks the first free subnet from SubnetMin', () => {
      assert.deepEqual(created(chooseSubnet(CFG, taken, ip(MY_IP), undefined, first)), { subnet: '10.5.2.0/24', why: 'random' });
    });

    it('random() just below 1 picks the 100th free subnet, not one beyond', () => {
      const hundredth = firstHundred[99] as string;
      assert.equal(hundredth, '10.5.150.0/24');
      assert.deepEqual(created(chooseSubnet(CFG, taken, ip(MY_IP), undefined, () => 0.999)), { subnet: hundredth, why: 'random' });
      assert.deepEqual(created(chooseSubnet(CFG, taken, ip(MY_IP), undefined, last)), { subnet: hundredth, why: 'random' });
      assert.deepEqual(created(chooseSubnet(CFG, taken, ip(MY_IP), undefined, () => 0.985)), { subnet: firstHundred[98], why: 'random' });
    });

    it('picks among fewer when fewer than 100 are free', () => {
      const crowded = freeSubnets(CFG, []).slice(0, 250).map((s) => lease(s, '192.168.2.2'));
      assert.deepEqual(freeSubnets(CFG, crowded), ['10.5.251.0/24', '10.5.252.0/24', '10.5.253.0/24', '10.5.254.0/24', '10.5.255.0/24']);
      assert.deepEqual(created(chooseSubnet(CFG, crowded, ip(MY_IP), undefined, first)), { subnet: '10.5.251.0/24', why: 'random' });
      assert.deepEqual(created(chooseSubnet(CFG, crowded, ip(MY_IP), undefined, last)), { subnet: '10.5.255.0/24', why: 'random' });
    });

    it('can pick every one of the first 100 free subnets, about evenly, and none beyond', () => {
      const next = seededRandom(42);
      const random = (): number => next() / 2 ** 32;
      const counts = new Map<string, number>();
      const DRAWS = 20_000;
      for (let i = 0; i < DRAWS; i++) {
        const { subnet } = created(chooseSubnet(CFG, taken, ip(MY_IP), undefined, random));
        counts.set(subnet, (counts.get(subnet) ?? 0) + 1);
      }
      const beyond = [...counts.keys()].filter((s) => !firstHundred.includes(s));
      assert.deepEqual(beyond, [], 'picked outside the first 100 free subnets');
      const unpicked = firstHundred.filter((s) => !counts.has(s));
      assert.deepEqual(unpicked, [], 'never picked');
      // Expected 200 each; binomial sd ~14. A bound of +-35% catches a skewed pick, not chance.
      for (const [subnet, n] of counts) assert.ok(n > 130 && n < 270, `${subnet} picked ${n} times of ${DRAWS}`);
    });
  });

  describe('full', () => {
    it('is full when every subnet in range is leased', () => {
      const leases = [lease('10.9.0.64/26', '192.168.1.2'), lease('10.9.0.128/26', '192.168.1.3'), lease('10.9.0.192/26', '192.168.1.4')];
      assert.deepEqual(chooseSubnet(SMALL, leases, ip(MY_IP), prefix('10.9.0.128/26'), never), { kind: 'full' });
    });

    it('is full when a hand-written wider lease covers the range', () => {
      assert.deepEqual(chooseSubnet(SMALL, [lease('10.9.0.0/24', '192.168.1.2')], ip(MY_IP), undefined, never), { kind: 'full' });
    });

    it('is not full while one subnet is free (the one outside the range does not count)', () => {
      const leases = [lease('10.9.0.0/26', '192.168.1.5'), lease('10.9.0.64/26', '192.168.1.2'), lease('10.9.0.192/26', '192.168.1.4')];
      assert.deepEqual(created(chooseSubnet(SMALL, leases, ip(MY_IP), undefined, last)), { subnet: '10.9.0.128/26', why: 'random' });
    });

    it('is full when the only free subnets were already tried', () => {
      const leases = [lease('10.9.0.64/26', '192.168.1.2')];
      assert.deepEqual(chooseSubnet(SMALL, leases, ip(MY_IP), undefined, never, new Set(['10.9.0.128/26', '10.9.0.192/26'])), { kind: 'full' });
    });
  });

  describe('tried', () => {
    it('excludes tried subnets from the random pick', () => {
      const tried = new Set(['10.5.1.0/24', '10.5.3.0/24']);
      assert.deepEqual(created(chooseSubnet(CFG, [], ip(MY_IP), undefined, first, tried)), { subnet: '10.5.2.0/24', why: 'random' });
      const pickThird = (): number => 2.5 / FREE_SUBNET_CANDIDATES;
      assert.deepEqual(created(chooseSubnet(CFG, [], ip(MY_IP), undefined, pickThird, tried)), { subnet: '10.5.5.0/24', why: 'random' });
      assert.deepEqual(created(chooseSubnet(CFG, [], ip(MY_IP), undefined, last, tried)), { subnet: freeSubnets(CFG, [], tried)[99], why: 'random' });
      assert.equal(freeSubnets(CFG, [], tried)[99], '10.5.102.0/24');
    });

    it('excludes a tried previous subnet', () => {
      const tried = new Set(['10.5.40.0/24']);
      assert.deepEqual(created(chooseSubnet(CFG, [], ip(MY_IP), prefix('10.5.40.0/24'), first, tried)), { subnet: '10.5.1.0/24', why: 'random' });
    });

    it('excludes a tried own lease (and everything it overlaps)', () => {
      const own = lease('10.5.1.0/24', MY_IP);
      const choice = chooseSubnet(CFG, [own], ip(MY_IP), undefined, first, new Set(['10.5.1.0/24']));
      assert.deepEqual(created(choice), { subnet: '10.5.2.0/24', why: 'random' });
    });
  });
});

describe('acquireLease with a MemoryLeaseStore', () => {
  const TTL = 86_400;
  const log = silentLogger();

  function setup(): { store: MemoryLeaseStore; clock: { now: number } } {
    const clock = { now: 1_700_000_000_000 };
    return { store: new MemoryLeaseStore({ now: () => clock.now, description: 'memory store (test)' }), clock };
  }

  it('creates a lease on the previous subnet', async () => {
    const { store, clock } = setup();
    const got = await acquireLease(store, CFG, ME, { previous: prefix('10.5.40.0/24'), ttlSeconds: TTL, log, random: never });
    assert.equal(formatPrefix(got.subnet), '10.5.40.0/24');
    assert.deepEqual(got.attrs, ME);
    assert.equal(got.expiration?.getTime(), clock.now + TTL * 1000);
    assert.deepEqual(store.peek(prefix('10.5.40.0/24')), got);
    assert.equal(store.calls.create, 1);
  });

  it('renews the lease this host already holds instead of creating one', async () => {
    const { store, clock } = setup();
    await store.put(prefix('10.5.2.0/24'), OTHER, TTL);
    const old = await store.put(prefix('10.5.7.0/24'), ME, TTL);
    clock.now += 3_600_000;
    const revision = store.currentRevision;
    const updated: LeaseAttrs = { ...ME, backendData: { note: 'restarted' } };
    const got = await acquireLease(store, CFG, updated, { previous: prefix('10.5.40.0/24'), ttlSeconds: TTL, log, random: never });
    assert.equal(formatPrefix(got.subnet), '10.5.7.0/24');
    assert.deepEqual(got.attrs, updated, 'the renewal writes the new attributes');
    assert.equal(got.expiration?.getTime(), clock.now + TTL * 1000);
    assert.ok((got.expiration?.getTime() ?? 0) > (old.expiration?.getTime() ?? 0));
    assert.equal(store.calls.renew, 1);
    assert.equal(store.calls.create, 0);
    assert.equal(store.currentRevision, revision + 1);
    assert.deepEqual(store.peek(prefix('10.5.7.0/24')), got);
    assert.equal((await store.list()).leases.length, 2);
  });

  it('reuses a reservation held under this PublicIP, which stays a reservation', async () => {
    const { store } = setup();
    await store.put(prefix('10.5.9.0/24'), ME); // no TTL: an operator's reservation
    const got = await acquireLease(store, CFG, ME, { ttlSeconds: TTL, log, random: never });
    assert.equal(formatPrefix(got.subnet), '10.5.9.0/24');
    assert.equal(got.expiration, undefined);
    assert.equal(store.calls.create, 0);
  });

  it('tries again with another subnet after losing a race', async () => {
    const { store } = setup();
    store.raceOnNextCreate(prefix('10.5.1.0/24'), OTHER);
    const got = await acquireLease(store, CFG, ME, { ttlSeconds: TTL, log, random: first });
    assert.equal(formatPrefix(got.subnet), '10.5.2.0/24');
    assert.equal(store.calls.create, 2);
    assert.deepEqual(store.peek(prefix('10.5.1.0/24'))?.attrs, OTHER, 'the winner keeps its lease');
    assert.deepEqual(store.peek(prefix('10.5.2.0/24'))?.attrs, ME);
  });

  it('falls back to a random subnet when it loses the race for the previous one', async () => {
    const { store } = setup();
    store.raceOnNextCreate(prefix('10.5.40.0/24'), OTHER);
    const got = await acquireLease(store, CFG, ME, { previous: prefix('10.5.40.0/24'), ttlSeconds: TTL, log, random: first });
    assert.equal(formatPrefix(got.subnet), '10.5.1.0/24');
    assert.deepEqual(store.peek(prefix('10.5.40.0/24'))?.attrs, OTHER);
  });

  it('gives up after maxAttempts lost races', async () => {
    const { store } = setup();
    store.raceOnNextCreate(prefix('10.5.1.0/24'), OTHER);
    await assert.rejects(
      acquireLease(store, CFG, ME, { ttlSeconds: TTL, log, random: first, maxAttempts: 1 }),
      (err: unknown) => {
        assert.ok(err instanceof LeaseError);
        assert.equal(err.message, 'could not acquire a lease in memory store (test) after 1 attempts: other hosts kept winning the race');
        return true;
      },
    );
  });

  it('fails with "out of subnets" when every subnet is leased', async () => {
    const { store } = setup();
    await store.put(prefix('10.9.0.64/26'), OTHER, TTL);
    await store.put(prefix('10.9.0.128/26'), { publicIp: ip('192.168.1.3'), backendType: 'udp' });
    await store.put(prefix('10.9.0.192/26'), { publicIp: ip('192.168.1.4'), backendType: 'vxlan' }, TTL);
    await assert.rejects(
      acquireLease(store, SMALL, ME, { previous: prefix('10.9.0.64/26'), ttlSeconds: TTL, log, random: never }),
      (err: unknown) => {
        assert.ok(err instanceof LeaseError);
        assert.equal(err.code, 'WEFT_ERR_LEASE');
        assert.equal(
          err.message,
          'out of subnets: all 3 subnets of 10.9.0.0/24 between SubnetMin 10.9.0.64 and SubnetMax 10.9.0.192 are leased by ' +
            'other hosts (3 leases in memory store (test)); free one or widen Network/SubnetMin/SubnetMax',
        );
        return true;
      },
    );
    assert.equal(store.calls.create, 0);
  });

  it('gets a subnet once an expired lease frees one', async () => {
    const { store, clock } = setup();
    await store.put(prefix('10.9.0.64/26'), OTHER, 60);
    await store.put(prefix('10.9.0.128/26'), OTHER);
    await store.put(prefix('10.9.0.192/26'), OTHER);
    await assert.rejects(acquireLease(store, SMALL, ME, { ttlSeconds: TTL, log, random: never }), /^LeaseError: out of subnets/);
    clock.now += 60_000;
    const got = await acquireLease(store, SMALL, ME, { ttlSeconds: TTL, log, random: first });
    assert.equal(formatPrefix(got.subnet), '10.9.0.64/26');
  });

  it('tries again when its own lease changes under it during reuse', async () => {
    const { store } = setup();
    await store.put(prefix('10.5.7.0/24'), ME, TTL);
    // Between our list and our renew, another host takes that lease over.
    store.raceOnNextRenew(OTHER);
    const got = await acquireLease(store, CFG, ME, { previous: prefix('10.5.7.0/24'), ttlSeconds: TTL, log, random: first });
    assert.equal(formatPrefix(got.subnet), '10.5.1.0/24', 'not the lost one, and not the previous one (taken)');
    assert.deepEqual(store.peek(prefix('10.5.7.0/24'))?.attrs, OTHER);
    assert.equal(store.calls.renew, 1);
    assert.equal(store.calls.list, 2);
  });

  it('does not retry a renewal of its own lease that failed for another reason', async () => {
    const { store } = setup();
    await store.put(prefix('10.5.7.0/24'), ME, TTL);
    const boom = new Error('etcd unavailable');
    store.failNextRenew(boom);
    await assert.rejects(acquireLease(store, CFG, ME, { ttlSeconds: TTL, log, random: first }), (err: unknown) => err === boom);
    assert.equal(store.calls.create, 0);
  });

  it('retries a renewal that failed with a LeaseLostError like a changed lease', async () => {
    const { store } = setup();
    await store.put(prefix('10.5.7.0/24'), ME, TTL);
    store.failNextRenew(new LeaseLostError('gone'));
    const got = await acquireLease(store, CFG, ME, { ttlSeconds: TTL, log, random: first });
    // 10.5.7.0/24 is still ours in the store but was "tried": a fresh subnet is created.
    assert.equal(formatPrefix(got.subnet), '10.5.1.0/24');
  });
});
