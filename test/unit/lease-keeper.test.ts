/**
 * Lease renewal: when (renewDelayMs, retryDelayMs) and the LeaseKeeper that
 * acts on it, over a MemoryLeaseStore, with node:test's mocked setTimeout and
 * Date (and one run on real short timers).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';

import { LeaseError, LeaseLostError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { parseCidr, parseIpv4, type Ipv4Prefix } from '../../src/net/ipv4';
import type { Lease, LeaseAttrs, LeaseSnapshot, LeaseStore, LeaseWatch, LeaseWatchHandlers } from '../../src/subnet/lease';
import { LeaseKeeper, renewDelayMs, retryDelayMs } from '../../src/subnet/lease-keeper';
import { MemoryLeaseStore } from '../memory-lease-store';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY_S = 86_400;
const MARGIN_S = 3600; // --subnet-lease-renew-margin=60 (minutes)

function prefix(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined);
  return parsed.prefix;
}

const SUBNET = prefix('10.5.7.0/24');
const ME: LeaseAttrs = { publicIp: parseIpv4('192.168.1.1') as number, backendType: 'udp' };
const OTHER: LeaseAttrs = { publicIp: parseIpv4('192.168.1.2') as number, backendType: 'udp' };

describe('renewDelayMs', () => {
  it("renews at 23 h with flannel's defaults (TTL 24 h, margin 60 min)", () => {
    assert.equal(renewDelayMs(24 * HOUR, 0, DAY_S, MARGIN_S), 23 * HOUR);
    const t0 = 1_700_000_000_000;
    assert.equal(renewDelayMs(t0 + 24 * HOUR, t0, DAY_S, MARGIN_S), 23 * HOUR);
  });

  it('counts from now, not from when the lease was written', () => {
    assert.equal(renewDelayMs(24 * HOUR, 5 * HOUR, DAY_S, MARGIN_S), 18 * HOUR);
  });

  it('renews one minute ahead with the largest margin, 1439 min', () => {
    assert.equal(renewDelayMs(24 * HOUR, 0, DAY_S, 1439 * 60), MINUTE);
  });

  it('waits at least a minute with a long TTL, even when the lease is nearly out', () => {
    assert.equal(renewDelayMs(30 * MINUTE, 0, DAY_S, MARGIN_S), MINUTE);
    assert.equal(renewDelayMs(0, 10 * HOUR, DAY_S, MARGIN_S), MINUTE);
  });

  it('renews every third of the TTL when the TTL is shorter than the margin (test TTLs)', () => {
    assert.equal(renewDelayMs(2 * SECOND, 0, 2, MARGIN_S), 2000 / 3);
    assert.equal(renewDelayMs(10 * SECOND, 0, 10, MARGIN_S), 10_000 / 3);
    assert.equal(renewDelayMs(90 * SECOND, 0, 90, MARGIN_S), 30 * SECOND);
    // a third of 3 minutes is more than a minute: the minute is the floor
    assert.equal(renewDelayMs(3 * MINUTE, 0, 180, MARGIN_S), MINUTE);
  });
});

describe('retryDelayMs', () => {
  it('retries after one minute for long TTLs', () => {
    assert.equal(retryDelayMs(DAY_S), MINUTE);
    assert.equal(retryDelayMs(3600), MINUTE);
    assert.equal(retryDelayMs(600), MINUTE);
  });

  it('retries after a tenth of a short TTL', () => {
    assert.equal(retryDelayMs(300), 30 * SECOND);
    assert.equal(retryDelayMs(10), SECOND);
    assert.equal(retryDelayMs(6), 600);
  });

  it('never retries sooner than 500 ms', () => {
    assert.equal(retryDelayMs(5), 500);
    assert.equal(retryDelayMs(2), 500);
    assert.equal(retryDelayMs(1), 500);
  });
});

/** Lets promises and the store's microtask deliveries settle (setImmediate is not mocked). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Fixture {
  store: MemoryLeaseStore;
  keeper: LeaseKeeper;
  lost: LeaseLostError[];
  /** Moves the mocked clock and timers forward, then lets the renewal finish. */
  advance(ms: number): Promise<void>;
}

async function keep(t: TestContext, ttlSeconds = DAY_S, store: LeaseStore | undefined = undefined): Promise<Fixture> {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const memory = new MemoryLeaseStore(); // reads the mocked Date
  const lease = await memory.create(SUBNET, ME, ttlSeconds);
  assert.ok(lease !== undefined);
  const lost: LeaseLostError[] = [];
  const keeper = new LeaseKeeper(store ?? memory, lease, ME, {
    ttlSeconds,
    marginSeconds: MARGIN_S,
    log: silentLogger(),
    onLost: (err) => lost.push(err),
  });
  keeper.start();
  const advance = async (ms: number): Promise<void> => {
    t.mock.timers.tick(ms);
    await settle();
  };
  return { store: memory, keeper, lost, advance };
}

describe('LeaseKeeper (mocked timers)', () => {
  it('renews 23 h after each renewal, with a fresh 24 h TTL', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    for (let round = 1; round <= 3; round++) {
      await advance(23 * HOUR - 1);
      assert.equal(store.calls.renew, round - 1, `round ${round}: not yet`);
      await advance(1);
      assert.equal(store.calls.renew, round, `round ${round}: renewed`);
      const expires = round * 23 * HOUR + 24 * HOUR;
      assert.equal(keeper.current().expiration?.getTime(), expires);
      assert.equal(store.peek(SUBNET)?.expiration?.getTime(), expires);
      assert.deepEqual(store.peek(SUBNET)?.attrs, ME);
    }
    assert.deepEqual(lost, []);
    await keeper.stop();
  });

  it('renews a short-TTL lease every third of the TTL, so it never expires', async (t) => {
    const { store, keeper, advance } = await keep(t, 2);
    for (let ms = 0; ms < 10_000; ms += 50) {
      await advance(50);
      assert.ok(store.peek(SUBNET) !== undefined, `expired at ${Date.now()} ms`);
    }
    // 10 s / (2 s / 3), give or take the 50 ms steps
    assert.ok(store.calls.renew >= 13 && store.calls.renew <= 15, `${store.calls.renew} renewals`);
    await keeper.stop();
  });

  it('retries a failed renewal after a minute', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    store.failNextRenew(new Error('etcd http://127.0.0.1:2379 unreachable'));
    await advance(23 * HOUR);
    assert.equal(store.calls.renew, 1);
    assert.equal(keeper.current().expiration?.getTime(), 24 * HOUR, 'not renewed');
    await advance(MINUTE - 1);
    assert.equal(store.calls.renew, 1);
    await advance(1);
    assert.equal(store.calls.renew, 2);
    assert.equal(keeper.current().expiration?.getTime(), 23 * HOUR + MINUTE + 24 * HOUR, 'renewed on the retry');
    // and back to the normal rhythm
    await advance(23 * HOUR - 1);
    assert.equal(store.calls.renew, 2);
    await advance(1);
    assert.equal(store.calls.renew, 3);
    assert.deepEqual(lost, []);
    await keeper.stop();
  });

  it('retries a LeaseError that is not a LeaseLostError', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    store.failNextRenew(new LeaseError('cannot lock lease file /tmp/x.json'));
    await advance(23 * HOUR);
    await advance(MINUTE);
    assert.equal(store.calls.renew, 2);
    assert.deepEqual(lost, []);
    assert.equal(keeper.current().expiration?.getTime(), 23 * HOUR + MINUTE + 24 * HOUR);
    await keeper.stop();
  });

  it('calls onLost once and stops renewing when the lease was deleted', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    await store.delete(SUBNET);
    await advance(23 * HOUR);
    assert.equal(store.calls.renew, 1);
    assert.equal(lost.length, 1);
    assert.ok(lost[0] instanceof LeaseLostError);
    assert.match(lost[0].message, /10\.5\.7\.0\/24/);
    for (let i = 0; i < 10; i++) await advance(12 * HOUR);
    assert.equal(store.calls.renew, 1, 'no renewal after the loss');
    assert.equal(lost.length, 1);
    assert.equal(store.peek(SUBNET), undefined, 'and nothing re-created it');
    await keeper.stop();
  });

  it('calls onLost when another host took the lease over', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    await store.put(SUBNET, OTHER, DAY_S);
    await advance(23 * HOUR);
    assert.equal(lost.length, 1);
    assert.deepEqual(store.peek(SUBNET)?.attrs, OTHER, 'the other host keeps it');
    await advance(48 * HOUR);
    assert.equal(store.calls.renew, 1);
    await keeper.stop();
  });

  it('stop() prevents further renewals', async (t) => {
    const { store, keeper, lost, advance } = await keep(t);
    await advance(23 * HOUR); // one renewal
    assert.equal(store.calls.renew, 1);
    await advance(HOUR);
    await keeper.stop();
    for (let i = 0; i < 10; i++) await advance(24 * HOUR);
    assert.equal(store.calls.renew, 1);
    assert.deepEqual(lost, []);
  });

  it('stop() before the first renewal prevents it', async (t) => {
    const { store, keeper, advance } = await keep(t);
    await keeper.stop();
    await advance(30 * 24 * HOUR);
    assert.equal(store.calls.renew, 0);
  });

  it('stop() during a renewal waits for it, and neither reschedules nor reports a loss after it', async (t) => {
    const gated = new GatedStore();
    const { store, keeper, lost, advance } = await keep(t, DAY_S, gated);
    gated.inner = store;
    await advance(23 * HOUR);
    assert.equal(gated.waiting, 1, 'the renewal is in flight');
    await store.delete(SUBNET); // it will fail with LeaseLostError
    let stopped = false;
    const stopping = keeper.stop().then(() => {
      stopped = true;
    });
    await settle();
    assert.equal(stopped, false, 'stop() waits for the renewal in flight');
    gated.open();
    await stopping;
    assert.equal(store.calls.renew, 1);
    assert.deepEqual(lost, [], 'no onLost after stop()');
    await advance(48 * HOUR);
    assert.equal(store.calls.renew, 1);
  });
});

describe('LeaseKeeper (mocked timers, stop during a successful renewal)', () => {
  it('lets the renewal in flight finish and schedules no further one', async (t) => {
    const gated = new GatedStore();
    const { store, keeper, lost, advance } = await keep(t, DAY_S, gated);
    gated.inner = store;
    await advance(23 * HOUR);
    assert.equal(gated.waiting, 1);
    const stopping = keeper.stop();
    gated.open();
    await stopping;
    assert.equal(store.calls.renew, 1);
    assert.equal(store.peek(SUBNET)?.expiration?.getTime(), 47 * HOUR, 'the renewal in flight was written');
    for (let i = 0; i < 5; i++) await advance(24 * HOUR);
    assert.equal(gated.waiting, 1, 'no renewal after stop()');
    assert.deepEqual(lost, []);
  });
});

describe('LeaseKeeper (real timers, 2 s TTL)', () => {
  it('keeps a 2 s lease alive for 2.1 s', async () => {
    const store = new MemoryLeaseStore();
    const lease = await store.create(SUBNET, ME, 2);
    assert.ok(lease !== undefined);
    const lost: LeaseLostError[] = [];
    const keeper = new LeaseKeeper(store, lease, ME, { ttlSeconds: 2, marginSeconds: MARGIN_S, log: silentLogger(), onLost: (e) => lost.push(e) });
    keeper.start();
    const started = Date.now();
    while (Date.now() - started < 2100) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(store.peek(SUBNET) !== undefined, `expired after ${Date.now() - started} ms`);
    }
    await keeper.stop();
    // every 667 ms: 3 in 2.1 s, fewer if the machine is slow
    assert.ok(store.calls.renew >= 2, `${store.calls.renew} renewals`);
    assert.deepEqual(lost, []);
    const count = store.calls.renew;
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(store.calls.renew, count, 'nothing after stop()');
  });
});

/** A store whose renew() waits for open(); everything else goes to `inner`. */
class GatedStore implements LeaseStore {
  readonly unreadableValues = 0;
  readonly kind = 'etcd' as const;
  readonly description = 'gated memory store';
  inner: LeaseStore | undefined;
  waiting = 0;
  private gate: (() => void) | undefined;
  private readonly opened = new Promise<void>((resolve) => {
    this.gate = resolve;
  });

  open(): void {
    this.gate?.();
  }

  private get store(): LeaseStore {
    assert.ok(this.inner !== undefined, 'GatedStore.inner not set');
    return this.inner;
  }

  getConfig(): Promise<{ readonly text: string; readonly source: string } | undefined> {
    return this.store.getConfig();
  }

  list(): Promise<LeaseSnapshot> {
    return this.store.list();
  }

  create(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined> {
    return this.store.create(subnet, attrs, ttlSeconds);
  }

  async renew(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease> {
    this.waiting++;
    await this.opened;
    return this.store.renew(lease, attrs, ttlSeconds);
  }

  delete(subnet: Ipv4Prefix): Promise<void> {
    return this.store.delete(subnet);
  }

  watch(revision: number, handlers: LeaseWatchHandlers): LeaseWatch {
    return this.store.watch(revision, handlers);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
