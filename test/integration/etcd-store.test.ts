/**
 * EtcdLeaseStore against a real etcd (started here, on free ports, with a
 * temporary data dir). Each test works under its own key prefix. The reconnect
 * test kills and restarts etcd, so it runs last.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { LeaseError } from '../../src/errors';
import { formatPrefix, parseCidr, parseIpv4, type Ipv4Prefix } from '../../src/net/ipv4';
import { EtcdLeaseStore } from '../../src/subnet/etcd-store';
import type { LeaseAttrs, LeaseEvent, LeaseSnapshot, LeaseWatch } from '../../src/subnet/lease';
import { EtcdServer, etcdSkipReason } from '../../src/lab/etcd-server';

const TEST_TIMEOUT_MS = 25_000;

function net(cidr: string): Ipv4Prefix {
  const parsed = parseCidr(cidr);
  assert.ok(parsed !== undefined, cidr);
  return parsed.prefix;
}

function ip(text: string): number {
  const v = parseIpv4(text);
  assert.ok(v !== undefined, text);
  return v;
}

function udp(publicIp: string): LeaseAttrs {
  return { publicIp: ip(publicIp), backendType: 'udp' };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 8_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** "put 10.5.1.0/24 10.0.0.1" / "delete 10.5.1.0/24": compact event descriptions for assertions. */
function describeEvent(ev: LeaseEvent): string {
  const fmt = (p: Ipv4Prefix): string => `${(p.network >>> 24) & 255}.${(p.network >>> 16) & 255}.${(p.network >>> 8) & 255}.${p.network & 255}/${p.length}`;
  if (ev.type === 'delete') return `delete ${fmt(ev.subnet)}`;
  const a = ev.lease.attrs.publicIp;
  return `put ${fmt(ev.lease.subnet)} ${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

interface Recorder {
  readonly watch: LeaseWatch;
  readonly batches: { events: readonly LeaseEvent[]; revision: number }[];
  readonly resyncs: LeaseSnapshot[];
  readonly statuses: string[];
  /** Every event description so far, in order. */
  described(): string[];
}

function record(store: EtcdLeaseStore, revision: number): Recorder {
  const batches: { events: readonly LeaseEvent[]; revision: number }[] = [];
  const resyncs: LeaseSnapshot[] = [];
  const statuses: string[] = [];
  const watch = store.watch(revision, {
    onEvents: (events, rev) => batches.push({ events, revision: rev }),
    onResync: (snapshot) => resyncs.push(snapshot),
    onStatus: (status) => statuses.push(status),
  });
  return { watch, batches, resyncs, statuses, described: () => batches.flatMap((b) => b.events.map(describeEvent)) };
}

/** Lease id of a key as etcd reports it (decimal; too big for a JS number), or '0'. */
async function leaseIdOf(etcd: EtcdServer, key: string): Promise<string> {
  const out = await etcd.etcdctl(['get', key, '-w', 'json']);
  const m = /"lease":(\d+)/.exec(out);
  return m === null ? '0' : (m[1] as string);
}

async function leaseList(etcd: EtcdServer): Promise<string[]> {
  const out = await etcd.etcdctl(['lease', 'list']);
  return out.split('\n').slice(1).map((s) => s.trim()).filter((s) => s !== '');
}

const skip = etcdSkipReason();

describe('EtcdLeaseStore with a real etcd', { skip: skip ?? false }, () => {
  let etcd: EtcdServer | undefined;
  const stores: EtcdLeaseStore[] = [];
  const watches: LeaseWatch[] = [];
  let prefixCount = 0;

  before(async () => {
    etcd = await EtcdServer.start();
  });

  after(async () => {
    for (const w of watches) await w.close();
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  function server(): EtcdServer {
    assert.ok(etcd !== undefined, 'etcd did not start');
    return etcd;
  }

  function freshPrefix(): string {
    prefixCount += 1;
    return `/weft-test-${process.pid}-${prefixCount}/network`;
  }

  async function open(prefix: string, warnings?: string[], resolveExpirations = true): Promise<EtcdLeaseStore> {
    const store = await EtcdLeaseStore.connect({
      endpoints: server().endpoints,
      prefix,
      dialTimeoutMs: 2_000,
      onWarning: (msg) => warnings?.push(msg),
      resolveExpirations,
    });
    stores.push(store);
    return store;
  }

  function watching(store: EtcdLeaseStore, revision: number): Recorder {
    const rec = record(store, revision);
    watches.push(rec.watch);
    return rec;
  }

  test('keys and values are flannel\'s, byte for byte, with an etcd lease of the TTL', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const before = Date.now();
    const lease = await store.create(net('10.5.52.0/24'), udp('192.168.64.3'), 60);
    assert.ok(lease !== undefined);
    assert.ok(lease.expiration !== undefined);
    assert.ok(Math.abs(lease.expiration.getTime() - (before + 60_000)) < 3_000, `expiration ${lease.expiration.toISOString()}`);
    await store.create(net('10.5.53.0/24'), { publicIp: ip('192.168.64.4'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '0a:0b:0c:0d:0e:0f' } }, 60);
    await store.create(net('10.5.54.0/24'), { publicIp: ip('192.168.64.5'), backendType: '' }, 60);

    const out = await server().etcdctl(['get', '--prefix', prefix]);
    assert.equal(
      out,
      `${prefix}/subnets/10.5.52.0-24\n{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}\n` +
        `${prefix}/subnets/10.5.53.0-24\n{"PublicIP":"192.168.64.4","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:0b:0c:0d:0e:0f"}}\n` +
        `${prefix}/subnets/10.5.54.0-24\n{"PublicIP":"192.168.64.5","PublicIPv6":null}\n`,
    );
    const id = await leaseIdOf(server(), `${prefix}/subnets/10.5.52.0-24`);
    assert.notEqual(id, '0', 'the key must be attached to an etcd lease');
    const ttl = await server().etcdctl(['lease', 'timetolive', BigInt(id).toString(16)]);
    assert.match(ttl, /granted with TTL\(60s\), remaining\((5\d|60)s\)/);

    const listed = await store.list();
    assert.deepEqual(
      listed.leases.map((l) => [l.subnet, l.attrs]),
      [
        [net('10.5.52.0/24'), udp('192.168.64.3')],
        [net('10.5.53.0/24'), { publicIp: ip('192.168.64.4'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '0a:0b:0c:0d:0e:0f' } }],
        [net('10.5.54.0/24'), { publicIp: ip('192.168.64.5'), backendType: '' }],
      ],
    );
    for (const l of listed.leases) assert.ok(l.expiration !== undefined && l.expiration.getTime() > Date.now() + 50_000);
    assert.equal(listed.revision, await server().revision());
    assert.match(store.description, new RegExp(`^etcd http://127\\.0\\.0\\.1:\\d+ ${prefix}$`));
  });

  test('getConfig reads <prefix>/config, undefined when absent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(`${prefix}/`); // a trailing slash is ignored
    assert.equal(await store.getConfig(), undefined);
    const text = '{"Network":"10.5.0.0/16","Backend":{"Type":"udp"}}';
    await server().etcdctl(['put', `${prefix}/config`, text]);
    assert.deepEqual(await store.getConfig(), { text, source: `etcd ${prefix}/config` });
  });

  test('create wins once and loses to an existing key, revoking the lease it granted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const first = await store.create(net('10.5.1.0/24'), udp('10.0.0.1'), 60);
    assert.deepEqual(first?.attrs, udp('10.0.0.1'));
    const leasesBefore = await leaseList(server());
    assert.equal(await store.create(net('10.5.1.0/24'), udp('10.0.0.2'), 60), undefined);
    assert.equal(await store.create(net('10.5.1.0/24'), udp('10.0.0.1'), 60), undefined, 'even the same host cannot create twice');
    assert.deepEqual(await leaseList(server()), leasesBefore, 'the leases granted for the lost creates were revoked');
    assert.equal(await server().etcdctl(['get', '--print-value-only', `${prefix}/subnets/10.5.1.0-24`]), '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"udp"}\n');
    // A reservation (no etcd lease) blocks creation too.
    await server().etcdctl(['put', `${prefix}/subnets/10.5.2.0-24`, '{"PublicIP":"10.0.0.9","PublicIPv6":null,"BackendType":"udp"}']);
    assert.equal(await store.create(net('10.5.2.0/24'), udp('10.0.0.1'), 60), undefined);
  });

  test('two stores racing for one subnet: exactly one wins', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    for (let round = 0; round < 5; round++) {
      const subnet = net(`10.5.${10 + round}.0/24`);
      const [ra, rb] = await Promise.all([a.create(subnet, udp('10.0.0.1'), 60), b.create(subnet, udp('10.0.0.2'), 60)]);
      const winners = [ra, rb].filter((r) => r !== undefined);
      assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify([ra, rb])}`);
      const stored = await server().etcdctl(['get', '--print-value-only', `${prefix}/subnets/10.5.${10 + round}.0-24`]);
      assert.equal(stored, `{"PublicIP":"${ra !== undefined ? '10.0.0.1' : '10.0.0.2'}","PublicIPv6":null,"BackendType":"udp"}\n`);
    }
  });

  test('renew keeps a lease alive past its TTL; renewing a deleted or taken lease throws LeaseError', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const key = `${prefix}/subnets/10.5.7.0-24`;
    let lease = await store.create(net('10.5.7.0/24'), udp('10.0.0.7'), 2);
    assert.ok(lease !== undefined);
    const ids = [await leaseIdOf(server(), key)];
    const start = Date.now();
    while (Date.now() - start < 4_500) {
      await sleep(900);
      lease = await store.renew(lease, { ...udp('10.0.0.7'), backendData: { round: ids.length } }, 2);
      assert.ok(lease.expiration !== undefined && lease.expiration.getTime() > Date.now() + 1_000);
      ids.push(await leaseIdOf(server(), key));
    }
    assert.equal(new Set(ids).size, ids.length, 'every renewal writes the key with a new etcd lease');
    const alive = await leaseList(server());
    for (const id of ids.slice(0, -1)) assert.ok(!alive.includes(BigInt(id).toString(16)), `old lease ${id} revoked`);
    assert.equal(await server().etcdctl(['get', '--print-value-only', key]), `{"PublicIP":"10.0.0.7","PublicIPv6":null,"BackendType":"udp","BackendData":{"round":${ids.length - 1}}}\n`);

    await server().etcdctl(['put', key, '{"PublicIP":"10.0.0.8","PublicIPv6":null,"BackendType":"udp"}']);
    await assert.rejects(store.renew(lease, udp('10.0.0.7'), 2), (err: unknown) => {
      assert.ok(err instanceof LeaseError);
      assert.match(err.message, /cannot renew lease 10\.5\.7\.0\/24 .*taken by another host/);
      return true;
    });
    await store.delete(net('10.5.7.0/24'));
    assert.equal(await server().etcdctl(['get', key]), '');
    await assert.rejects(store.renew(lease, udp('10.0.0.7'), 2), (err: unknown) => {
      assert.ok(err instanceof LeaseError);
      assert.equal(err.code, 'WEFT_ERR_LEASE');
      assert.match(err.message, /cannot renew lease 10\.5\.7\.0\/24 \(etcd key .*\): it no longer exists/);
      return true;
    });
  });

  test('a reservation (no etcd lease) is listed without expiration and stays one when renewed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const key = `${prefix}/subnets/10.5.8.0-24`;
    await server().etcdctl(['put', key, '{"PublicIP":"10.0.0.8","PublicIPv6":null,"BackendType":"udp"}']);
    const [listed] = (await store.list()).leases;
    assert.ok(listed !== undefined);
    assert.equal(listed.expiration, undefined);
    const renewed = await store.renew(listed, udp('10.0.0.8'), 2);
    assert.equal(renewed.expiration, undefined);
    assert.equal(await leaseIdOf(server(), key), '0');
    await sleep(2_500);
    assert.notEqual(await server().etcdctl(['get', key]), '', 'a reservation never expires');
  });

  test('a lease that is not renewed expires and the watch reports the delete', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const rec = watching(store, (await store.list()).revision);
    const lease = await store.create(net('10.5.9.0/24'), udp('10.0.0.9'), 2);
    assert.ok(lease !== undefined);
    await waitFor('the put and the expiry delete', () => rec.described().length >= 2, 10_000);
    assert.deepEqual(rec.described(), ['put 10.5.9.0/24 10.0.0.9', 'delete 10.5.9.0/24']);
    assert.deepEqual((await store.list()).leases, []);
    const putEvent = rec.batches[0]?.events[0];
    assert.ok(putEvent?.type === 'put' && putEvent.lease.expiration !== undefined);
  });

  test('leases written by hand with etcdctl are listed and watched (extra fields, BackendData, etcd lease)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const rec = watching(store, (await store.list()).revision);
    const granted = await server().etcdctl(['lease', 'grant', '120']);
    const id = /lease ([0-9a-f]+) granted/.exec(granted)?.[1];
    assert.ok(id !== undefined, granted);
    await server().etcdctl(['put', `${prefix}/subnets/10.5.20.0-24`, '{"PublicIP":"10.0.1.1","PublicIPv6":null,"BackendType":"udp"}']);
    await server().etcdctl([
      'put',
      `--lease=${id}`,
      `${prefix}/subnets/10.5.21.0-24`,
      '{"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"},"PublicIP":"10.0.1.2","BackendType":"vxlan","PublicIPv6":null,"BackendV6Data":null,"Future":[1,2]}',
    ]);
    const vxlan: LeaseAttrs = { publicIp: ip('10.0.1.2'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } };
    const { leases } = await store.list();
    assert.equal(leases.length, 2);
    assert.deepEqual(leases[0], { subnet: net('10.5.20.0/24'), attrs: udp('10.0.1.1'), expiration: undefined });
    assert.deepEqual([leases[1]?.subnet, leases[1]?.attrs], [net('10.5.21.0/24'), vxlan]);
    const exp = leases[1]?.expiration?.getTime() ?? 0;
    assert.ok(exp > Date.now() + 100_000 && exp <= Date.now() + 121_000, `expiration from the etcd lease's TTL: ${exp - Date.now()} ms`);

    await waitFor('two puts', () => rec.described().length >= 2);
    assert.deepEqual(rec.described(), ['put 10.5.20.0/24 10.0.1.1', 'put 10.5.21.0/24 10.0.1.2']);
    const second = rec.batches[1]?.events[0];
    assert.ok(second?.type === 'put');
    assert.deepEqual(second.lease.attrs, vxlan);
    assert.ok(second.lease.expiration !== undefined);
    await server().etcdctl(['lease', 'revoke', id]);
    await waitFor('the delete caused by revoking the lease', () => rec.described().length >= 3);
    assert.equal(rec.described()[2], 'delete 10.5.21.0/24');
  });

  test('without resolveExpirations, only leases this store granted carry an expiration', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const mine = await open(prefix, undefined, false);
    const other = await open(prefix, undefined, false);
    await mine.create(net('10.5.60.0/24'), udp('10.0.6.1'), 60);
    await other.create(net('10.5.61.0/24'), udp('10.0.6.2'), 60);
    const { leases } = await mine.list();
    const bySubnet = new Map(leases.map((l) => [formatPrefix(l.subnet), l]));
    assert.ok((bySubnet.get('10.5.60.0/24')?.expiration?.getTime() ?? 0) > Date.now() + 50_000, 'own lease: known without asking');
    assert.equal(bySubnet.get('10.5.61.0/24')?.expiration, undefined, "another host's lease: not looked up");
  });

  test('malformed keys and values are skipped with a warning, in list and in watch (a bad value as a deletion)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const warnings: string[] = [];
    const store = await open(prefix, warnings);
    const rec = watching(store, (await store.list()).revision);
    const bad: [string, string][] = [
      ['garbage', '{"PublicIP":"10.0.0.1"}'],
      ['10.5.30.1-24', '{"PublicIP":"10.0.0.1"}'], // host bits set
      ['10.5.32.0-24', 'not json'],
      ['10.5.33.0-24', '{"PublicIP":"nope","BackendType":"udp"}'],
      ['10.5.34.0-24', '["PublicIP"]'],
      ['10.5.35.0-24', '{"PublicIP":"10.0.0.1","BackendType":7}'],
    ];
    for (const [name, value] of bad) await server().etcdctl(['put', `${prefix}/subnets/${name}`, value]);
    // flannel's dual-stack key counts by its IPv4 part, so that subnet is never handed out twice
    await server().etcdctl(['put', `${prefix}/subnets/10.5.31.0-24&fc00::-64`, '{"PublicIP":"10.0.0.31","BackendType":"udp"}']);
    await server().etcdctl(['put', `${prefix}/subnets/10.5.36.0-24`, '{"PublicIP":"10.0.0.36","BackendType":"udp"}']);
    await waitFor('the good puts', () => rec.described().length >= 6);
    // a subnet key with an unreadable value is no lease: it comes as a deletion (a lease it overwrote goes)
    assert.deepEqual(rec.described(), [
      'delete 10.5.32.0/24', 'delete 10.5.33.0/24', 'delete 10.5.34.0/24', 'delete 10.5.35.0/24',
      'put 10.5.31.0/24 10.0.0.31', 'put 10.5.36.0/24 10.0.0.36',
    ]);
    assert.equal(rec.batches[rec.batches.length - 1]?.revision, await server().revision());
    assert.equal(warnings.length, bad.length, warnings.join('\n'));
    assert.match(warnings[0] ?? '', new RegExp(`skipping etcd key ${prefix}/subnets/garbage: not a subnet lease key`));
    assert.match(warnings[2] ?? '', /10\.5\.32\.0-24: the lease value is not JSON/);
    assert.match(warnings[3] ?? '', /PublicIP "nope" is not an IPv4 address/);

    warnings.length = 0;
    const { leases } = await store.list();
    assert.deepEqual(leases.map((l) => l.subnet), [net('10.5.31.0/24'), net('10.5.36.0/24')]);
    assert.equal(warnings.length, bad.length, warnings.join('\n'));
  });

  test('watch delivers puts and deletes in order with increasing revisions', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const other = await open(prefix);
    const rec = watching(store, (await store.list()).revision);
    await store.create(net('10.5.40.0/24'), udp('10.0.0.40'), 60);
    await other.create(net('10.5.41.0/24'), udp('10.0.0.41'), 60);
    await store.delete(net('10.5.40.0/24'));
    await server().etcdctl(['put', `${prefix}/subnets/10.5.41.0-24`, '{"PublicIP":"10.0.0.42","PublicIPv6":null,"BackendType":"udp"}']);
    await server().etcdctl(['put', `${prefix}/unrelated`, 'x']); // outside subnets/: not watched
    await server().etcdctl(['del', `${prefix}/subnets/10.5.41.0-24`]);
    await waitFor('five events', () => rec.described().length >= 5);
    await sleep(200);
    assert.deepEqual(rec.described(), [
      'put 10.5.40.0/24 10.0.0.40',
      'put 10.5.41.0/24 10.0.0.41',
      'delete 10.5.40.0/24',
      'put 10.5.41.0/24 10.0.0.42',
      'delete 10.5.41.0/24',
    ]);
    const revisions = rec.batches.map((b) => b.revision);
    for (let i = 1; i < revisions.length; i++) assert.ok((revisions[i] as number) > (revisions[i - 1] as number), `revisions ${revisions.join(',')}`);
    assert.equal(revisions.at(-1), await server().revision());
    assert.deepEqual(rec.resyncs, []);
  });

  test('a watch from a compacted revision resyncs with the full current set, then continues', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    await store.create(net('10.5.50.0/24'), udp('10.0.0.50'), 60);
    await store.create(net('10.5.51.0/24'), udp('10.0.0.51'), 60);
    const old = (await store.list()).revision;
    await store.create(net('10.5.52.0/24'), udp('10.0.0.52'), 60);
    await store.delete(net('10.5.50.0/24'));
    const now = await server().revision();
    await server().etcdctl(['compact', String(now)]);

    const rec = watching(store, old);
    await waitFor('a resync', () => rec.resyncs.length >= 1);
    const snapshot = rec.resyncs[0];
    assert.ok(snapshot !== undefined);
    assert.equal(snapshot.revision, now);
    assert.deepEqual(snapshot.leases.map((l) => [l.subnet, l.attrs]), [
      [net('10.5.51.0/24'), udp('10.0.0.51')],
      [net('10.5.52.0/24'), udp('10.0.0.52')],
    ]);
    assert.equal(rec.batches.length, 0, 'no events from before the snapshot');
    await store.create(net('10.5.53.0/24'), udp('10.0.0.53'), 60);
    await waitFor('the put after the resync', () => rec.described().length >= 1);
    assert.deepEqual(rec.described(), ['put 10.5.53.0/24 10.0.0.53']);
    assert.equal(rec.batches[0]?.revision, now + 1);
    assert.equal(rec.resyncs.length, 1);
  });

  test('close() stops a watch: no handler runs afterwards', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const rec = record(store, (await store.list()).revision);
    await waitFor('connected', () => rec.statuses.includes('connected'));
    await rec.watch.close();
    await store.create(net('10.5.60.0/24'), udp('10.0.0.60'), 60);
    await sleep(300);
    assert.deepEqual(rec.batches, []);
    await store.close();
    await assert.rejects(store.list(), /the store is closed/);
  });

  test('connect() rejects bad endpoints and missing TLS files with the flag and the fix', async () => {
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['127.0.0.1:2379'] }), {
      code: 'WEFT_ERR_CONFIG',
      message: 'etcd endpoint "127.0.0.1:2379" is not a URL with a port such as http://127.0.0.1:2379',
    });
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['http://a:1', 'https://b:2'] }), /mix http:\/\/ and https:\/\//);
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['https://127.0.0.1:2379'], caFile: '/nonexistent/ca.pem' }), {
      code: 'WEFT_ERR_CONFIG',
      path: '--etcd-cafile',
      message: '--etcd-cafile /nonexistent/ca.pem: cannot read the file (ENOENT); give the path of a PEM file',
    });
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['http://127.0.0.1:2379'], certFile: '/nonexistent/c.pem', keyFile: '/nonexistent/k.pem' }), {
      path: '--etcd-certfile',
    });
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['https://127.0.0.1:2379'], certFile: '/x.pem' }), /needs both --etcd-certfile and --etcd-keyfile/);
    await assert.rejects(EtcdLeaseStore.connect({ endpoints: ['http://127.0.0.1:2379'], username: 'u' }), /needs both --etcd-username and --etcd-password/);
  });

  test('username and password reach etcd (auth enabled on a second etcd)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const secured = await EtcdServer.start();
    const opened: EtcdLeaseStore[] = [];
    try {
      await secured.etcdctl(['user', 'add', 'root', '--new-user-password=s3cret']);
      await secured.etcdctl(['auth', 'enable']);
      const connect = async (password: string): Promise<EtcdLeaseStore> => {
        const store = await EtcdLeaseStore.connect({ endpoints: secured.endpoints, prefix: '/auth/network', username: 'root', password, dialTimeoutMs: 2_000 });
        opened.push(store);
        return store;
      };
      const good = await connect('s3cret');
      const rec = record(good, (await good.list()).revision);
      assert.ok((await good.create(net('10.5.80.0/24'), udp('10.0.0.80'), 60)) !== undefined);
      await waitFor('the put, watched with credentials', () => rec.described().length >= 1);
      assert.equal(
        await secured.etcdctl(['--user=root:s3cret', 'get', '--print-value-only', '/auth/network/subnets/10.5.80.0-24']),
        '{"PublicIP":"10.0.0.80","PublicIPv6":null,"BackendType":"udp"}\n',
      );
      await rec.watch.close();
      const bad = await connect('wrong');
      await assert.rejects(bad.list(), (err: unknown) => {
        assert.ok(err instanceof LeaseError);
        assert.match(err.message, /list \/auth\/network\/subnets\/ failed: .*authentication failed/i);
        return true;
      });
    } finally {
      for (const s of opened) await s.close();
      await secured.stop();
    }
  });

  // Last: it kills and restarts etcd.
  test('a watch survives an etcd restart without losing or repeating events', { timeout: 45_000 }, async () => {
    const prefix = freshPrefix();
    const store = await open(prefix);
    const rec = watching(store, (await store.list()).revision);
    await store.create(net('10.5.70.0/24'), udp('10.0.0.70'), 60);
    await waitFor('the first put', () => rec.described().length >= 1);

    await server().kill();
    await waitFor('status disconnected', () => rec.statuses.includes('disconnected'));
    await assert.rejects(store.create(net('10.5.71.0/24'), udp('10.0.0.71'), 60), LeaseError);

    await server().restart();
    await server().etcdctl(['put', `${prefix}/subnets/10.5.72.0-24`, '{"PublicIP":"10.0.0.72","PublicIPv6":null,"BackendType":"udp"}']);
    // The client may hold back for a few seconds after failures (its circuit breaker): retry.
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await store.create(net('10.5.73.0/24'), udp('10.0.0.73'), 60);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
    await waitFor('the puts made after the restart', () => rec.described().length >= 3, 20_000);
    await sleep(200);
    assert.deepEqual(rec.described(), ['put 10.5.70.0/24 10.0.0.70', 'put 10.5.72.0/24 10.0.0.72', 'put 10.5.73.0/24 10.0.0.73']);
    assert.deepEqual(rec.resyncs, []);
    const firstDown = rec.statuses.indexOf('disconnected');
    assert.ok(firstDown > 0 && rec.statuses[0] === 'connected', rec.statuses.join(','));
    assert.equal(rec.statuses.at(-1), 'connected', rec.statuses.join(','));
  });
});
