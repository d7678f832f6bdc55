/**
 * The host ledger (src/host/ledger.ts): entries by identity, the file it keeps
 * in the state directory, and what it refuses to read.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError, SysError } from '../../src/errors';
import { HostLedger, LEDGER_FILE_NAME, LOCK_FILE_NAME, ledgerKey, type LedgerEntry } from '../../src/host/ledger';

const LINK: LedgerEntry = { kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:a1:b2:c3:d4:e5' };
const RULE: LedgerEntry = { kind: 'iptables-rule', table: 'nat', chain: 'POSTROUTING', spec: ['-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG'] };
const CHAIN: LedgerEntry = { kind: 'iptables-chain', table: 'nat', chain: 'FLANNEL-POSTRTG' };
const NFT: LedgerEntry = { kind: 'nft-table', family: 'ip', name: 'flannel-ipv4' };
const FILE: LedgerEntry = { kind: 'file', path: '/run/flannel/subnet.env' };

let root = '';
let n = 0;
/** A fresh directory path under the test root (not created). */
const freshDir = (): string => join(root, `state-${++n}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-ledger-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Asserts a ConfigError for `--state-dir` naming `file`, with exactly this message. */
function isLedgerError(file: string, message: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'WEFT_ERR_CONFIG');
    assert.equal(err.path, '--state-dir');
    assert.equal(err.value, file);
    assert.equal(err.message, message);
    return true;
  };
}

describe('ledgerKey', () => {
  it('identifies each kind by what names it', () => {
    assert.equal(ledgerKey(LINK), 'link flannel.1');
    assert.equal(ledgerKey(RULE), 'iptables-rule nat POSTROUTING -m comment --comment flanneld masq -j FLANNEL-POSTRTG');
    assert.equal(ledgerKey(CHAIN), 'iptables-chain nat FLANNEL-POSTRTG');
    assert.equal(ledgerKey(NFT), 'nft-table ip flannel-ipv4');
    assert.equal(ledgerKey(FILE), 'file /run/flannel/subnet.env');
  });
});

describe('HostLedger in memory', () => {
  it('record, get, has, list by kind, forget', async () => {
    const ledger = HostLedger.inMemory();
    assert.deepEqual(ledger.list('link'), []);
    assert.equal(ledger.has(LINK), false);
    for (const e of [LINK, RULE, CHAIN, NFT, FILE]) await ledger.record(e);
    assert.equal(ledger.has(LINK), true);
    assert.equal(ledger.has(RULE), true);
    assert.deepEqual(ledger.list('link'), [LINK]);
    assert.deepEqual(ledger.list('iptables-rule'), [RULE]);
    assert.deepEqual(ledger.list('iptables-chain'), [CHAIN]);
    assert.deepEqual(ledger.list('nft-table'), [NFT]);
    assert.deepEqual(ledger.list('file'), [FILE]);
    assert.deepEqual(ledger.get({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan' }), LINK);
    assert.equal(ledger.get({ kind: 'link', name: 'flannel.2', linkKind: 'vxlan' }), undefined);
    await ledger.forget(RULE);
    assert.equal(ledger.has(RULE), false);
    assert.deepEqual(ledger.list('iptables-rule'), []);
    assert.equal(ledger.has(CHAIN), true, 'forget removes only that entry');
    await ledger.forget(RULE); // twice: nothing happens
  });

  it('an entry is known by its identity: a link\'s new MAC replaces the entry', async () => {
    const ledger = HostLedger.inMemory();
    await ledger.record(LINK);
    await ledger.record({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:00:00:00:00:02' });
    assert.deepEqual(ledger.list('link'), [{ kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:00:00:00:00:02' }]);
    assert.equal(ledger.get({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan' })?.mac, '0e:00:00:00:00:02');
    // has/forget by identity, whatever the MAC given
    assert.equal(ledger.has({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan' }), true);
    await ledger.forget({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: 'ff:ff:ff:ff:ff:ff' });
    assert.deepEqual(ledger.list('link'), []);
  });

  it('two iptables rules that differ only in their spec are two entries', async () => {
    const ledger = HostLedger.inMemory();
    const other: LedgerEntry = { kind: 'iptables-rule', table: 'nat', chain: 'POSTROUTING', spec: ['-j', 'RETURN'] };
    await ledger.record(RULE);
    await ledger.record(other);
    assert.deepEqual(ledger.list('iptables-rule'), [RULE, other]);
  });

  it('never writes a file, whatever is recorded, forgotten or erased', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const ledger = HostLedger.inMemory();
      assert.equal(ledger.file, '');
      await ledger.record(LINK);
      await ledger.record(FILE);
      await ledger.forget(LINK);
      await ledger.erase();
      assert.deepEqual(ledger.list('file'), []);
    } finally {
      process.chdir(cwd);
    }
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('HostLedger in a state directory', () => {
  it('a missing file (and directory) is an empty ledger, and opening writes nothing', async () => {
    const dir = freshDir();
    const ledger = await HostLedger.open(dir);
    assert.equal(ledger.file, join(dir, LEDGER_FILE_NAME));
    assert.deepEqual(ledger.list('link'), []);
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });

  it('the first record creates the directory (0700) and the file (0600) with the JSON ledger', async () => {
    const dir = freshDir();
    const ledger = await HostLedger.open(dir);
    await ledger.record(LINK);
    await ledger.record(RULE);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(ledger.file)).mode & 0o777, 0o600);
    const text = await readFile(ledger.file, 'utf8');
    assert.ok(text.endsWith('}\n'), JSON.stringify(text.slice(-5)));
    assert.deepEqual(JSON.parse(text), { version: 1, entries: [LINK, RULE] });
    assert.deepEqual(await readdir(dir), [LEDGER_FILE_NAME], 'no temp file left behind');
  });

  it('the file is mode 0600 whatever the umask', async () => {
    const dir = freshDir();
    const old = process.umask(0o000);
    try {
      await (await HostLedger.open(dir)).record(FILE);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(join(dir, LEDGER_FILE_NAME))).mode & 0o777, 0o600);
  });

  it('round trip: a second open reads what the first recorded, forgot and updated', async () => {
    const dir = freshDir();
    const first = await HostLedger.open(dir);
    for (const e of [LINK, RULE, CHAIN, NFT, FILE]) await first.record(e);
    await first.forget(CHAIN);
    await first.record({ kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:00:00:00:00:02' });
    const second = await HostLedger.open(dir);
    assert.deepEqual(second.list('link'), [{ kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:00:00:00:00:02' }]);
    assert.deepEqual(second.list('iptables-rule'), [RULE]);
    assert.deepEqual(second.list('iptables-chain'), []);
    assert.deepEqual(second.list('nft-table'), [NFT]);
    assert.deepEqual(second.list('file'), [FILE]);
    assert.deepEqual(JSON.parse(await readFile(second.file, 'utf8')).entries, [
      { kind: 'link', name: 'flannel.1', linkKind: 'vxlan', mac: '0e:00:00:00:00:02' }, RULE, NFT, FILE,
    ]);
  });

  it('records made without waiting for each other all reach the file', async () => {
    const dir = freshDir();
    const ledger = await HostLedger.open(dir);
    await Promise.all([ledger.record(LINK), ledger.record(RULE), ledger.record(CHAIN), ledger.record(FILE)]);
    assert.deepEqual(JSON.parse(await readFile(ledger.file, 'utf8')).entries, [LINK, RULE, CHAIN, FILE]);
  });

  it('recording an identical entry, or forgetting an unknown one, does not write', async () => {
    const dir = freshDir();
    const ledger = await HostLedger.open(dir);
    await ledger.record(LINK);
    await rm(ledger.file);
    await ledger.record({ ...LINK });
    await ledger.forget(CHAIN);
    await assert.rejects(stat(ledger.file), { code: 'ENOENT' });
  });

  it('erase() forgets everything and removes the file; erasing again is fine', async () => {
    const dir = freshDir();
    const ledger = await HostLedger.open(dir);
    await ledger.record(LINK);
    await ledger.erase();
    assert.deepEqual(ledger.list('link'), []);
    await assert.rejects(stat(ledger.file), { code: 'ENOENT' });
    await ledger.erase();
    assert.deepEqual((await HostLedger.open(dir)).list('link'), []);
  });

  it('drops entries of unknown kinds or with wrong fields, and keeps them out of the next write', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const file = join(dir, LEDGER_FILE_NAME);
    await writeFile(file, JSON.stringify({
      version: 1,
      entries: [
        { kind: 'route', dst: '10.244.2.0/24' },
        LINK,
        { kind: 'link', name: 'flannel.2' }, // no linkKind
        { kind: 'link', name: 'flannel.3', linkKind: 'vxlan', mac: 42 },
        { kind: 'iptables-rule', table: 'nat', chain: 'POSTROUTING', spec: ['-j', 7] },
        { kind: 'iptables-rule', table: 'nat', chain: 'POSTROUTING' }, // no spec
        { kind: 'iptables-chain', table: 'nat' },
        { kind: 'nft-table', family: 'ip' },
        { kind: 'file', path: 5 },
        'file',
        null,
        FILE,
        { kind: 'link', name: 'tun0', linkKind: 'tun' }, // a link without a MAC is fine
      ],
    }));
    const ledger = await HostLedger.open(dir);
    assert.deepEqual(ledger.list('link'), [LINK, { kind: 'link', name: 'tun0', linkKind: 'tun' }]);
    assert.deepEqual(ledger.list('iptables-rule'), []);
    assert.deepEqual(ledger.list('iptables-chain'), []);
    assert.deepEqual(ledger.list('nft-table'), []);
    assert.deepEqual(ledger.list('file'), [FILE]);
    await ledger.record(CHAIN);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), {
      version: 1, entries: [LINK, FILE, { kind: 'link', name: 'tun0', linkKind: 'tun' }, CHAIN],
    });
  });

  it('refuses a file that is not JSON, quoting the parser', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const file = join(dir, LEDGER_FILE_NAME);
    const text = '{"version":1,"entries":[';
    await writeFile(file, text);
    let parserMessage = '';
    try {
      JSON.parse(text);
    } catch (err) {
      parserMessage = (err as Error).message;
    }
    assert.notEqual(parserMessage, '');
    await assert.rejects(HostLedger.open(dir), isLedgerError(file,
      `weft's host state ${file} is not valid JSON (${parserMessage}); ` +
      'it records what weft created on this host: restore it, or remove it and clean up by hand'));
  });

  it('refuses JSON that is not a version-1 ledger', async () => {
    const dir = freshDir();
    await mkdir(dir);
    const file = join(dir, LEDGER_FILE_NAME);
    const message = `weft's host state ${file} is not a version-1 ledger (expected {"version":1,"entries":[...]})`;
    for (const text of ['{"version":2,"entries":[]}', '{"version":"1","entries":[]}', '{"version":1}', '{"version":1,"entries":{}}', '[]', 'null', '1', '""']) {
      await writeFile(file, text);
      await assert.rejects(HostLedger.open(dir), isLedgerError(file, message), text);
    }
  });

  it('a state file that cannot be read is a SysError naming it', async () => {
    const dir = freshDir();
    const file = join(dir, LEDGER_FILE_NAME);
    await mkdir(file, { recursive: true }); // a directory where the file should be
    await assert.rejects(HostLedger.open(dir), (err: unknown) => {
      assert.ok(err instanceof SysError, `expected a SysError, got ${String(err)}`);
      assert.equal(err.errno, 'EISDIR');
      assert.ok(err.message.startsWith(`cannot read weft's host state ${file}: `), err.message);
      return true;
    });
  });
});

describe('the state directory lock', () => {
  /** A separate process that takes the lock of `dir`, says so, and then waits to be killed. */
  const holder = async (dir: string): Promise<import('node:child_process').ChildProcess> => {
    const { spawn } = await import('node:child_process');
    const ledgerModule = require.resolve('../../src/host/ledger');
    const child = spawn(process.execPath, ['-e',
      `require(${JSON.stringify(ledgerModule)}).HostLedger.open(${JSON.stringify(dir)})` +
      '.then((l) => l.lock()).then(() => { process.stdout.write("held\\n"); setInterval(() => {}, 1000); })'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('held')) resolve(); });
      child.once('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the lock`)));
    });
    return child;
  };

  it('is free at once when its holder is killed (SIGKILL): the kernel drops the lock', async () => {
    const dir = freshDir();
    const child = await holder(dir);
    await assert.rejects((await HostLedger.open(dir)).lock(), /another weft process/, 'held while the holder lives');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const started = Date.now();
    const release = await (await HostLedger.open(dir)).lock();
    assert.ok(Date.now() - started < 500, `took ${Date.now() - started} ms`);
    await release();
  });

  it('is held by one process at a time, and released by its release', async () => {
    const dir = freshDir();
    const release = await (await HostLedger.open(dir)).lock();
    await assert.rejects((await HostLedger.open(dir)).lock(), (err: unknown) => err instanceof ConfigError && /another weft process/.test(err.message));
    await release();
    const again = await (await HostLedger.open(dir)).lock();
    await again();
    const files = await readdir(dir);
    assert.deepEqual(files.filter((f) => f !== LEDGER_FILE_NAME).sort(), [LOCK_FILE_NAME], 'only the lock file beside the ledger');
  });
});
