/**
 * FileLeaseStore against real files in a temp directory: the documented file
 * format, check-and-set creation, expiry, renew failures, a race between
 * eight separate processes, crash leftovers (stale lock, temp file, damaged
 * file) and watching.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { LeaseError, LeaseLostError } from '../../src/errors';
import { FileLeaseStore, type FileLeaseStoreOptions } from '../../src/subnet/file-store';
import type { Lease, LeaseEvent, LeaseSnapshot, LeaseWatch } from '../../src/subnet/lease';

const RACER = path.join(__dirname, 'fixtures', 'file-store-racer.js');

// ---- helpers -------------------------------------------------------------------

function ip(text: string): number {
  const parts = text.split('.').map(Number);
  assert.ok(parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255), `test bug: ${text}`);
  return ((((parts[0] as number) * 256 + (parts[1] as number)) * 256 + (parts[2] as number)) * 256) + (parts[3] as number);
}

function net(cidr: string): { network: number; length: number } {
  const [addr, len] = cidr.split('/');
  return { network: ip(addr as string), length: Number(len) };
}

const HOST_A = { publicIp: ip('192.168.77.1'), backendType: 'udp' };
const HOST_B = { publicIp: ip('192.168.77.2'), backendType: 'udp' };
const HOST_A_JSON = '{"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"udp"}';
const HOST_B_JSON = '{"PublicIP":"192.168.77.2","PublicIPv6":null,"BackendType":"udp"}';
const T0 = 1_700_000_000_000;

let root: string;
let counter = 0;
const stores: FileLeaseStore[] = [];

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'weft-file-store-'));
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await rm(root, { recursive: true, force: true });
});

/** A fresh path in a not-yet-existing directory. */
function freshPath(): string {
  counter += 1;
  return path.join(root, `case-${counter}`, 'leases.json');
}

async function openStore(options: FileLeaseStoreOptions): Promise<FileLeaseStore> {
  const store = await FileLeaseStore.open({ onWarning: () => undefined, ...options });
  stores.push(store);
  return store;
}

function key(lease: Lease): string {
  const n = lease.subnet.network;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}-${lease.subnet.length}`;
}

async function readJson(file: string): Promise<any> {
  return JSON.parse(await readFile(file, 'utf8'));
}

/** Replaces a file the way an editor or a restore would, in one rename (so a poll never sees it half written). */
async function replaceFile(file: string, content: string): Promise<void> {
  await writeFile(`${file}.edit`, content);
  await rename(`${file}.edit`, file);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects everything a watch delivers and lets a test wait for the next item. */
class Recorder {
  readonly items: Array<
    | { kind: 'events'; events: readonly LeaseEvent[]; revision: number }
    | { kind: 'resync'; snapshot: LeaseSnapshot }
    | { kind: 'status'; status: string; detail: string | undefined }
  > = [];
  private waiters: Array<() => void> = [];

  readonly handlers = {
    onEvents: (events: readonly LeaseEvent[], revision: number) => this.push({ kind: 'events', events, revision }),
    onResync: (snapshot: LeaseSnapshot) => this.push({ kind: 'resync', snapshot }),
    onStatus: (status: string, detail?: string) => this.push({ kind: 'status', status, detail }),
  };

  private push(item: Recorder['items'][number]): void {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until an item after position `from` matches, or fails after `timeoutMs`. */
  async waitFor<K extends Recorder['items'][number]['kind']>(
    from: number,
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<Recorder['items'][number], { kind: K }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.items.slice(from).find((i) => i.kind === kind);
      if (found !== undefined) return found as Extract<Recorder['items'][number], { kind: K }>;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no ${kind} within ${timeoutMs} ms; got ${JSON.stringify(this.items.slice(from))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

// ---- basics --------------------------------------------------------------------

describe('FileLeaseStore basics', () => {
  it('creates, lists, renews and deletes; the file is the documented format with flannel values', async () => {
    const file = freshPath();
    let now = T0;
    const store = await openStore({ path: file, now: () => now });
    assert.equal(store.kind, 'file');
    assert.equal(store.description, `file ${file}`);
    assert.deepEqual(await store.list(), { leases: [], revision: 0 });
    assert.equal(await store.getConfig(), undefined);

    const lease = await store.create(net('10.244.1.0/24'), HOST_A, 86400);
    assert.deepEqual(lease, { subnet: net('10.244.1.0/24'), attrs: HOST_A, expiration: new Date(T0 + 86_400_000) });
    assert.equal(
      await readFile(file, 'utf8'),
      '{\n' +
        '  "format": "weft-leases/1",\n' +
        '  "revision": 1,\n' +
        '  "config": null,\n' +
        '  "leases": {\n' +
        '    "10.244.1.0-24": {\n' +
        '      "value": "{\\"PublicIP\\":\\"192.168.77.1\\",\\"PublicIPv6\\":null,\\"BackendType\\":\\"udp\\"}",\n' +
        '      "expires": 1700086400000\n' +
        '    }\n' +
        '  }\n' +
        '}\n',
    );
    assert.equal((await readJson(file)).leases['10.244.1.0-24'].value, HOST_A_JSON);
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o755);

    const other = await store.create(net('10.244.0.0/24'), { ...HOST_B, backendType: '' }, 60);
    assert.ok(other !== undefined);
    assert.deepEqual(await readJson(file), {
      format: 'weft-leases/1',
      revision: 2,
      config: null,
      leases: {
        '10.244.0.0-24': { value: '{"PublicIP":"192.168.77.2","PublicIPv6":null}', expires: T0 + 60_000 },
        '10.244.1.0-24': { value: HOST_A_JSON, expires: T0 + 86_400_000 },
      },
    });
    const listed = await store.list();
    assert.equal(listed.revision, 2);
    assert.deepEqual(listed.leases.map(key), ['10.244.0.0-24', '10.244.1.0-24']);
    assert.deepEqual(listed.leases[1], lease);

    now += 1000;
    const vxlan = { publicIp: HOST_A.publicIp, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '0a:0b:0c:0d:0e:0f' } };
    const renewed = await store.renew(lease, vxlan, 100);
    assert.deepEqual(renewed, { subnet: net('10.244.1.0/24'), attrs: vxlan, expiration: new Date(T0 + 101_000) });
    const afterRenew = await readJson(file);
    assert.equal(afterRenew.revision, 3);
    assert.deepEqual(afterRenew.leases['10.244.1.0-24'], {
      value: '{"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:0b:0c:0d:0e:0f"}}',
      expires: T0 + 101_000,
    });

    await store.delete(net('10.244.1.0/24'));
    const afterDelete = await readJson(file);
    assert.equal(afterDelete.revision, 4);
    assert.deepEqual(Object.keys(afterDelete.leases), ['10.244.0.0-24']);
    await store.delete(net('10.244.9.0/24')); // absent: nothing to write
    assert.equal((await readJson(file)).revision, 4);

    await store.setConfig('{"Network": "10.244.0.0/16"}');
    assert.deepEqual(await store.getConfig(), { text: '{"Network": "10.244.0.0/16"}', source: `${file} (config)` });
    assert.equal((await readJson(file)).revision, 5);
    assert.equal((await readJson(file)).config, '{"Network": "10.244.0.0/16"}');

    // a second store on the same file sees the same thing
    const again = await openStore({ path: file, now: () => now });
    assert.deepEqual(await again.list(), await store.list());
  });

  it('create loses to an unexpired lease and wins over an expired one; expired leases are swept on the next write', async () => {
    const file = freshPath();
    let now = T0;
    const a = await openStore({ path: file, now: () => now });
    const b = await openStore({ path: file, now: () => now });
    assert.ok((await a.create(net('10.244.1.0/24'), HOST_A, 60)) !== undefined);
    assert.ok((await a.create(net('10.244.2.0/24'), HOST_A, 600)) !== undefined);

    now = T0 + 59_999;
    assert.equal(await b.create(net('10.244.1.0/24'), HOST_B, 60), undefined);
    assert.equal((await readJson(file)).revision, 2, 'a lost create writes nothing');

    now = T0 + 60_000; // the expiry instant: gone
    assert.deepEqual((await b.list()).leases.map(key), ['10.244.2.0-24']);
    assert.equal(Object.keys((await readJson(file)).leases).length, 2, 'reads do not sweep');
    const won = await b.create(net('10.244.1.0/24'), HOST_B, 60);
    assert.deepEqual(won, { subnet: net('10.244.1.0/24'), attrs: HOST_B, expiration: new Date(T0 + 120_000) });
    const content = await readJson(file);
    assert.equal(content.revision, 3);
    assert.deepEqual(content.leases['10.244.1.0-24'], { value: HOST_B_JSON, expires: T0 + 120_000 });

    // an expired lease is swept by an unrelated write
    now = T0 + 120_000;
    assert.ok((await a.create(net('10.244.3.0/24'), HOST_A, 60)) !== undefined);
    const swept = await readJson(file);
    assert.equal(swept.revision, 4);
    assert.deepEqual(Object.keys(swept.leases), ['10.244.2.0-24', '10.244.3.0-24']);
  });

  it('renew fails with LeaseError after deletion, after another host took the subnet, and after expiry', async () => {
    const file = freshPath();
    let now = T0;
    const a = await openStore({ path: file, now: () => now });
    const b = await openStore({ path: file, now: () => now });
    const lease = await a.create(net('10.244.1.0/24'), HOST_A, 60);
    assert.ok(lease !== undefined);

    await b.delete(net('10.244.1.0/24'));
    await assert.rejects(a.renew(lease, HOST_A, 60), (err: unknown) => {
      assert.ok(err instanceof LeaseLostError && err instanceof LeaseError);
      assert.equal(err.code, 'WEFT_ERR_LEASE');
      assert.equal(
        err.message,
        `cannot renew the lease on 10.244.1.0/24 in ${file}: it was deleted or taken by another host (it is no longer in the file)`,
      );
      return true;
    });

    assert.ok((await b.create(net('10.244.1.0/24'), HOST_B, 60)) !== undefined);
    const revision = (await readJson(file)).revision;
    await assert.rejects(a.renew(lease, HOST_A, 60), (err: unknown) => {
      assert.ok(err instanceof LeaseLostError);
      assert.match(err.message, /deleted or taken by another host \(it now holds \{"PublicIP":"192\.168\.77\.2"/);
      return true;
    });
    assert.equal((await readJson(file)).revision, revision, 'a failed renew writes nothing');
    assert.equal((await readJson(file)).leases['10.244.1.0-24'].value, HOST_B_JSON);

    const mine = await a.create(net('10.244.2.0/24'), HOST_A, 60);
    assert.ok(mine !== undefined);
    now += 60_000;
    await assert.rejects(a.renew(mine, HOST_A, 60), /^LeaseLostError: .*deleted or taken by another host \(it expired at 2023-11-14T22:14:20\.000Z\)/);
  });

  it('rejects a subnet with host bits and a non-positive TTL', async () => {
    const store = await openStore({ path: freshPath() });
    await assert.rejects(store.create({ network: ip('10.244.1.1'), length: 24 }, HOST_A, 60), LeaseError);
    await assert.rejects(store.create(net('10.244.1.0/24'), HOST_A, 0), /TTL must be a positive number of seconds, got 0/);
  });
});

// ---- separate processes ----------------------------------------------------------

interface RacerResult {
  readonly index: number;
  readonly got?: string[];
  readonly error?: string;
}

/** Starts `count` racer processes, releases them together, returns what each one printed. */
async function race(file: string, count: number, mode: 'pair' | 'range'): Promise<RacerResult[]> {
  const children = Array.from({ length: count }, (_, i) =>
    spawn(process.execPath, [RACER, file, String(i), mode], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const outputs = children.map(() => '');
  const exits = children.map(
    (child, i) =>
      new Promise<number | null>((resolveExit) => {
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          outputs[i] += chunk;
        });
        child.on('exit', (code) => resolveExit(code));
      }),
  );
  try {
    const deadline = Date.now() + 15_000;
    while (!outputs.every((o) => o.startsWith('ready\n'))) {
      assert.ok(Date.now() < deadline, `racers not ready: ${JSON.stringify(outputs)}`);
      await sleep(10);
    }
    for (const child of children) child.stdin.end('go\n');
    const codes = await Promise.all(exits);
    assert.deepEqual(codes, children.map(() => 0), `racer output: ${JSON.stringify(outputs)}`);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  return outputs.map((o) => JSON.parse(o.trim().split('\n').pop() as string) as RacerResult);
}

function racerJson(index: number): string {
  return `{"PublicIP":"192.168.77.${index + 1}","PublicIPv6":null,"BackendType":"udp"}`;
}

describe('FileLeaseStore across processes', () => {
  it('eight processes racing for the same two subnets: each goes to exactly one of them', { timeout: 20_000 }, async () => {
    const file = freshPath();
    const results = await race(file, 8, 'pair');
    const owners = new Map<string, number[]>();
    for (const r of results) for (const k of r.got ?? []) owners.set(k, [...(owners.get(k) ?? []), r.index]);
    assert.deepEqual([...owners.keys()].sort(), ['10.244.1.0-24', '10.244.2.0-24']);
    for (const [k, who] of owners) assert.equal(who.length, 1, `${k} given to racers ${who.join(', ')}`);
    const content = await readJson(file);
    assert.equal(content.revision, 2);
    assert.deepEqual(Object.keys(content.leases).sort(), ['10.244.1.0-24', '10.244.2.0-24']);
    for (const [k, who] of owners) assert.equal(content.leases[k].value, racerJson(who[0] as number));
    assert.deepEqual(await readdir(path.dirname(file)), ['leases.json'], 'no lock or temp file left');
  });

  it('eight processes taking the first free of five subnets: five distinct winners, three without', { timeout: 20_000 }, async () => {
    const file = freshPath();
    const results = await race(file, 8, 'range');
    const winners = results.filter((r) => (r.got ?? []).length > 0);
    assert.equal(winners.length, 5, JSON.stringify(results));
    for (const r of results) assert.ok((r.got ?? []).length <= 1, JSON.stringify(r));
    const given = winners.map((r) => (r.got as string[])[0] as string);
    assert.equal(new Set(given).size, 5, `a subnet went to two racers: ${JSON.stringify(results)}`);
    const content = await readJson(file);
    assert.equal(content.revision, 5);
    const expected: Record<string, string> = {};
    for (const r of winners) expected[(r.got as string[])[0] as string] = racerJson(r.index);
    const actual: Record<string, string> = {};
    for (const [k, v] of Object.entries(content.leases as Record<string, { value: string }>)) actual[k] = v.value;
    assert.deepEqual(actual, expected);
  });
});

// ---- crash leftovers and damaged files ----------------------------------------------

describe('FileLeaseStore crash safety', () => {
  it('takes over a lock directory left by a crashed process once it is stale', { timeout: 10_000 }, async () => {
    const file = freshPath();
    await mkdir(`${file}.lock`, { recursive: true });
    const old = new Date(Date.now() - 60_000);
    await utimes(`${file}.lock`, old, old);
    const store = await openStore({ path: file });
    const started = Date.now();
    assert.ok((await store.create(net('10.244.1.0/24'), HOST_A, 60)) !== undefined);
    assert.ok(Date.now() - started < 2000, 'an old lock is taken over at once');
    assert.deepEqual(await readdir(path.dirname(file)), ['leases.json']);

    // a fresh lock (holder just crashed) is waited for, then taken over when it turns stale
    const quick = await openStore({ path: file, lockStaleMs: 2000 });
    await mkdir(`${file}.lock`);
    const t = Date.now();
    assert.ok((await quick.create(net('10.244.2.0/24'), HOST_A, 60)) !== undefined);
    const waited = Date.now() - t;
    assert.ok(waited >= 1500 && waited < 6000, `waited ${waited} ms for a 2000 ms stale lock`);
    assert.deepEqual(Object.keys((await readJson(file)).leases), ['10.244.1.0-24', '10.244.2.0-24']);
  });

  it('reports a damaged file as a LeaseError naming the path and never replaces it', async () => {
    const file = freshPath();
    const store = await openStore({ path: file });
    assert.ok((await store.create(net('10.244.1.0/24'), HOST_A, 60)) !== undefined);
    const good = await readFile(file, 'utf8');

    const truncated = good.slice(0, Math.floor(good.length / 2));
    await writeFile(file, truncated);
    await assert.rejects(store.list(), (err: unknown) => {
      assert.ok(err instanceof LeaseError);
      assert.ok(err.message.startsWith(`lease file ${file} is not valid JSON (`), err.message);
      assert.ok(err.message.endsWith('The file was left as it is: repair it by hand, or move it away to start with an empty store.'));
      return true;
    });
    await assert.rejects(store.create(net('10.244.2.0/24'), HOST_A, 60), LeaseError);
    await assert.rejects(store.renew({ subnet: net('10.244.1.0/24'), attrs: HOST_A }, HOST_A, 60), LeaseError);
    await assert.rejects(store.delete(net('10.244.1.0/24')), LeaseError);
    await assert.rejects(FileLeaseStore.open({ path: file }), LeaseError);
    assert.equal(await readFile(file, 'utf8'), truncated, 'the damaged file is untouched');
    assert.deepEqual(await readdir(path.dirname(file)), ['leases.json'], 'the lock was released');

    await writeFile(file, '');
    await assert.rejects(store.list(), new RegExp(`^LeaseError: lease file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is empty\\.`));

    const broken = JSON.parse(good);
    broken.leases['10.244.1.0-24'].value = '{"PublicIP":"nope"}';
    await writeFile(file, JSON.stringify(broken));
    await assert.rejects(store.list(), {
      name: 'LeaseError',
      message:
        `lease file ${file}: leases["10.244.1.0-24"]: the lease's PublicIP "nope" is not an IPv4 address. ` +
        'The file was left as it is: repair it by hand, or move it away to start with an empty store.',
    });
    await writeFile(file, JSON.stringify({ ...JSON.parse(good), leases: { '10.244.1.0-024': JSON.parse(good).leases['10.244.1.0-24'] } }));
    await assert.rejects(store.list(), /leases\["10\.244\.1\.0-024"\]: the key must be a subnet written like "10\.244\.1\.0-24"/);
    await writeFile(file, JSON.stringify({ ...JSON.parse(good), format: 'weft-leases/9' }));
    await assert.rejects(store.list(), /"format" is "weft-leases\/9", expected "weft-leases\/1"/);

    await writeFile(file, good);
    assert.equal((await store.list()).leases.length, 1);
  });

  it('ignores a temp file left by a crashed writer and removes it on the next write', async () => {
    const file = freshPath();
    const warnings: string[] = [];
    const store = await openStore({ path: file, onWarning: (m) => warnings.push(m) });
    assert.ok((await store.create(net('10.244.1.0/24'), HOST_A, 60)) !== undefined);
    const leftover = path.join(path.dirname(file), '.leases.json.99999.deadbeef.tmp');
    await writeFile(leftover, '{"format":"weft-leases/1","revision":7,"conf');

    const reader = await openStore({ path: file, onWarning: (m) => warnings.push(m) });
    const listed = await reader.list();
    assert.equal(listed.revision, 1);
    assert.deepEqual(listed.leases.map(key), ['10.244.1.0-24']);

    assert.ok((await reader.create(net('10.244.2.0/24'), HOST_B, 60)) !== undefined);
    assert.deepEqual(await readdir(path.dirname(file)), ['leases.json']);
    assert.deepEqual(warnings, [`removed temp files left by an interrupted write of ${file}: .leases.json.99999.deadbeef.tmp`]);
    assert.equal((await readJson(file)).revision, 2);
  });
});

// ---- watching ----------------------------------------------------------------------

describe('FileLeaseStore watch', () => {
  const watches: LeaseWatch[] = [];
  after(async () => {
    await Promise.all(watches.map((w) => w.close()));
  });

  it('delivers put, change, delete and expiry (without any write) within about a second', { timeout: 10_000 }, async () => {
    const file = freshPath();
    const store = await openStore({ path: file, pollIntervalMs: 50 });
    const writer = await openStore({ path: file });
    const start = await store.list();
    const rec = new Recorder();
    watches.push(store.watch(start.revision, rec.handlers));
    await rec.waitFor(0, 'status', 1000);

    let mark = rec.items.length;
    const lease = await writer.create(net('10.244.1.0/24'), HOST_A, 3600);
    assert.ok(lease !== undefined);
    let got = await rec.waitFor(mark, 'events', 1000);
    assert.deepEqual(got, { kind: 'events', events: [{ type: 'put', lease }], revision: 1 });

    mark = rec.items.length;
    const changed = await writer.renew(lease, HOST_B, 3600);
    got = await rec.waitFor(mark, 'events', 1000);
    assert.deepEqual(got, { kind: 'events', events: [{ type: 'put', lease: changed }], revision: 2 });

    mark = rec.items.length;
    await writer.delete(net('10.244.1.0/24'));
    got = await rec.waitFor(mark, 'events', 1000);
    assert.deepEqual(got, { kind: 'events', events: [{ type: 'delete', subnet: net('10.244.1.0/24') }], revision: 3 });

    mark = rec.items.length;
    const short = await writer.create(net('10.244.2.0/24'), HOST_A, 1);
    assert.ok(short !== undefined);
    got = await rec.waitFor(mark, 'events', 1000);
    assert.deepEqual(got.events, [{ type: 'put', lease: short }]);
    mark = rec.items.length;
    const fileBefore = await readFile(file, 'utf8');
    got = await rec.waitFor(mark, 'events', 2000);
    assert.deepEqual(got, { kind: 'events', events: [{ type: 'delete', subnet: net('10.244.2.0/24') }], revision: 4 });
    assert.ok(Date.now() >= (short.expiration as Date).getTime(), 'not reported before it expired');
    assert.equal(await readFile(file, 'utf8'), fileBefore, 'expiry was seen without a write');
    assert.equal(rec.items.filter((i) => i.kind === 'resync').length, 0);
  });

  it('resyncs when started at another revision and when the file goes back to a lower revision', { timeout: 10_000 }, async () => {
    const file = freshPath();
    const store = await openStore({ path: file, pollIntervalMs: 50 });
    const a = await store.create(net('10.244.1.0/24'), HOST_A, 3600);
    const b = await store.create(net('10.244.2.0/24'), HOST_B, 3600);
    assert.ok(a !== undefined && b !== undefined);

    const rec = new Recorder();
    watches.push(store.watch(1, rec.handlers)); // the file is at 2: no history to diff from
    const first = await rec.waitFor(0, 'resync', 1000);
    assert.deepEqual(first.snapshot, { leases: [a, b], revision: 2 });

    const mark = rec.items.length;
    await replaceFile(
      file,
      JSON.stringify({ format: 'weft-leases/1', revision: 1, config: null, leases: { '10.244.9.0-24': { value: HOST_A_JSON, expires: null } } }),
    );
    const again = await rec.waitFor(mark, 'resync', 1000);
    assert.deepEqual(again.snapshot, {
      leases: [{ subnet: net('10.244.9.0/24'), attrs: HOST_A, expiration: undefined }],
      revision: 1,
    });
    assert.equal(rec.items.slice(mark).filter((i) => i.kind === 'events').length, 0);
  });

  it('starting at the current revision delivers nothing until something changes', { timeout: 5_000 }, async () => {
    const file = freshPath();
    const store = await openStore({ path: file, pollIntervalMs: 50 });
    await store.create(net('10.244.1.0/24'), HOST_A, 3600);
    const rec = new Recorder();
    const w = store.watch((await store.list()).revision, rec.handlers);
    watches.push(w);
    await sleep(300);
    assert.deepEqual(rec.items, [{ kind: 'status', status: 'connected', detail: undefined }]);
    await w.close();
    await store.create(net('10.244.2.0/24'), HOST_A, 3600);
    await sleep(200);
    assert.equal(rec.items.length, 1, 'nothing after close');
  });

  it('reports a damaged file as disconnected, keeps polling, and recovers', { timeout: 10_000 }, async () => {
    const file = freshPath();
    const store = await openStore({ path: file, pollIntervalMs: 50 });
    const lease = await store.create(net('10.244.1.0/24'), HOST_A, 3600);
    assert.ok(lease !== undefined);
    const good = await readFile(file, 'utf8');
    const rec = new Recorder();
    watches.push(store.watch(1, rec.handlers));
    await rec.waitFor(0, 'status', 1000);

    let mark = rec.items.length;
    await replaceFile(file, 'garbage{');
    const down = await rec.waitFor(mark, 'status', 1000);
    assert.equal(down.status, 'disconnected');
    assert.ok(down.detail?.startsWith(`lease file ${file} is not valid JSON`), down.detail);

    mark = rec.items.length;
    await replaceFile(file, good);
    const up = await rec.waitFor(mark, 'status', 1000);
    assert.deepEqual(up, { kind: 'status', status: 'connected', detail: undefined });
    await sleep(150);
    assert.deepEqual(rec.items.slice(mark).map((i) => i.kind), ['status'], 'same file again: nothing to deliver');

    mark = rec.items.length;
    await store.delete(net('10.244.1.0/24'));
    const events = await rec.waitFor(mark, 'events', 1000);
    assert.deepEqual(events, { kind: 'events', events: [{ type: 'delete', subnet: net('10.244.1.0/24') }], revision: 2 });
  });
});
