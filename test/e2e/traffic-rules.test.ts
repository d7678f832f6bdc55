/**
 * End to end: src/traffic against a real kernel, in one fresh network
 * namespace (its own iptables and nftables), through the child-process
 * fixture fixtures/traffic-agent.ts. Everything is read back from the kernel
 * with iptables-save and nft: the rules must be exactly flanneld's, in order;
 * rules a flanneld left are adopted, never duplicated and never removed by
 * cleanup; what someone deletes comes back within the resync period; switching
 * mode removes the other mode's rules weft created.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { LedgerEntry } from '../../src/host/ledger';
import { ip, run, runResult, runWithInput } from '../../src/sys/exec';
import { iptablesFeatures, parseIptablesVersion } from '../../src/traffic/iptables-rules';
import type { TrafficAgentArgs } from './fixtures/traffic-agent';
import { e2eSkipReason, eventually, LineCollector, sleep, tempDir, type TempDir } from './helpers';

const NS = `weft-tr-${randomBytes(4).toString('hex')}`;
const FIXTURE = path.join(__dirname, 'fixtures', 'traffic-agent.js');
const C = '10.244.0.0/16';
const P = '10.244.1.0/24';
const P2 = '10.244.2.0/24';

const iptablesSkip = e2eSkipReason(['ip', 'iptables', 'iptables-save', 'iptables-restore']);
const nftSkip = iptablesSkip ?? e2eSkipReason(['nft']);

// ---------------------------------------------------------------------------
// Reading the namespace's kernel state

async function inNs(file: string, args: readonly string[]): Promise<string> {
  return run('ip', ['netns', 'exec', NS, file, ...args]);
}

/** The `-A` lines of a table, in iptables-save's order. */
async function ruleLines(table: 'nat' | 'filter'): Promise<string[]> {
  return (await inNs('iptables-save', ['-t', table])).split('\n').filter((l) => l.startsWith('-A '));
}

async function chainNames(table: 'nat' | 'filter'): Promise<string[]> {
  return (await inNs('iptables-save', ['-t', table])).split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0] as string);
}

async function nftTable(): Promise<string | undefined> {
  const r = await runResult('ip', ['netns', 'exec', NS, 'nft', 'list', 'table', 'ip', 'flannel-ipv4']);
  return r.code === 0 ? r.stdout : undefined;
}

async function nftInNs(payload: string): Promise<void> {
  const r = await runWithInput('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], payload);
  assert.equal(r.code, 0, `nft -f failed: ${r.stderr}`);
}

async function restoreInNs(payload: string): Promise<void> {
  const r = await runWithInput('ip', ['netns', 'exec', NS, 'iptables-restore', '--noflush'], payload);
  assert.equal(r.code, 0, `iptables-restore failed: ${r.stderr}`);
}

function ledgerEntries(dir: TempDir): LedgerEntry[] {
  try {
    return (JSON.parse(readFileSync(path.join(dir.path, 'host-state.json'), 'utf8')) as { entries: LedgerEntry[] }).entries;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

// ---------------------------------------------------------------------------
// What flanneld would have installed (C = 10.244.0.0/16)

const suffix = iptablesFeatures(parseIptablesVersion(readVersion())).randomFully ? ' --random-fully' : '';

function readVersion(): string {
  try {
    return execFileSync('iptables', ['--version'], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

function flanneldNat(lease: string, masqSuffix = suffix): string[] {
  return [
    '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    `-A FLANNEL-POSTRTG -s ${lease} -d ${C} -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${C} -d ${lease} -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s ${C} -d ${lease} -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${C} ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE${masqSuffix}`,
    `-A FLANNEL-POSTRTG ! -s ${C} -d ${C} -m comment --comment "flanneld masq" -j MASQUERADE${masqSuffix}`,
  ];
}

const FLANNELD_FILTER = [
  '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
  `-A FLANNEL-FWD -s ${C} -m comment --comment "flanneld forward" -j ACCEPT`,
  `-A FLANNEL-FWD -d ${C} -m comment --comment "flanneld forward" -j ACCEPT`,
];

/** Rules that are not flannel's: they must survive everything weft does. */
const FOREIGN_NAT = ['-A POSTROUTING -s 192.0.2.0/24 -j ACCEPT'];
const FOREIGN_FILTER = ['-A FORWARD -d 192.0.2.0/24 -j DROP'];

/** `nft list table ip flannel-ipv4` as this nft prints flannel's table; chains appear in the order they were created. */
function nftListing(fullyRandom: boolean, chains: readonly ('postrtg' | 'forward')[] = ['postrtg', 'forward']): string {
  const fr = fullyRandom ? ' fully-random' : '';
  const text = {
    postrtg: [
      '\tchain postrtg {',
      '\t\tcomment "chain to manage traffic masquerading by flannel"',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\tmeta mark 0x00004000 return',
      `\t\tip saddr ${P} ip daddr ${C} return`,
      `\t\tip saddr ${C} ip daddr ${P} return`,
      `\t\tip saddr != ${P} ip daddr ${C} return`,
      `\t\tip saddr ${C} ip daddr != 224.0.0.0/4 masquerade${fr}`,
      `\t\tip saddr != ${C} ip daddr ${C} masquerade${fr}`,
      '\t}',
    ],
    forward: [
      '\tchain forward {',
      '\t\tcomment "chain to accept flannel traffic"',
      '\t\ttype filter hook forward priority filter; policy accept;',
      `\t\tip saddr ${C} accept`,
      `\t\tip daddr ${C} accept`,
      '\t}',
    ],
  };
  const body = chains.map((c) => text[c].join('\n')).join('\n\n');
  return `table ip flannel-ipv4 {\n\tcomment "rules for flannel-ipv4"\n${body}\n}\n`;
}

// ---------------------------------------------------------------------------
// Running the module inside the namespace

let state: TempDir;
const held = new Set<ChildProcess>();

function argsFor(extra: Partial<TrafficAgentArgs>): TrafficAgentArgs {
  return { action: 'start', stateDir: state.path, network: C, lease: P, ipMasq: true, forwardRules: true, ...extra };
}

/** Runs the fixture to completion; resolves with its logs (stderr). */
async function runAgent(extra: Partial<TrafficAgentArgs>): Promise<string> {
  const r = await runResult('ip', ['netns', 'exec', NS, process.execPath, FIXTURE, JSON.stringify(argsFor(extra))], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `traffic-agent failed: ${r.stdout}${r.stderr}`);
  return r.stderr;
}

interface HeldAgent {
  /** Closes its stdin: it stops resyncing and exits. Resolves with its logs. */
  stop(): Promise<string>;
}

/** Starts the fixture with hold: it keeps resyncing until stopped. */
async function holdAgent(extra: Partial<TrafficAgentArgs>): Promise<HeldAgent> {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, FIXTURE, JSON.stringify(argsFor({ ...extra, hold: true }))], { stdio: ['pipe', 'pipe', 'pipe'] });
  held.add(child);
  const out = new LineCollector(child);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await eventually('the held traffic agent to start', async () => {
    if (child.exitCode !== null) throw new Error(`traffic-agent exited ${child.exitCode}: ${out.lines.join('\n')}${stderr}`);
    return out.json<{ event: string }>().some((e) => e.event === 'started') ? true : undefined;
  }, 30_000, 50);
  return {
    async stop() {
      child.stdin?.end();
      const code = await exited;
      held.delete(child);
      assert.equal(code, 0, `traffic-agent exited ${code}: ${stderr}`);
      return stderr;
    },
  };
}

/** The fixture's log lines at warn level saying rules were restored. */
function restoredWarnings(logs: string): number {
  return logs.split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((e) => e.level === 40 && e.msg.includes('restored')).length;
}

// ---------------------------------------------------------------------------

describe('traffic rules in a network namespace', { skip: iptablesSkip }, () => {
  before(async () => {
    await ip(['netns', 'add', NS]);
  });

  after(async () => {
    for (const child of held) child.kill('SIGKILL');
    await runResult('ip', ['netns', 'del', NS]);
    const left = (await ip(['netns', 'list'])).split('\n').filter((l) => l.startsWith(NS));
    assert.deepEqual(left, [], `namespace ${NS} was left behind`);
  });

  beforeEach(async () => {
    // a clean slate: the namespace is ours, so its whole ruleset may go
    await inNs('nft', ['flush', 'ruleset']);
    state = tempDir('traffic');
  });

  afterEach(() => {
    for (const child of held) child.kill('SIGKILL');
    held.clear();
    state.remove();
  });

  test('iptables: exactly flanneld\'s rules, in order; a second start adopts them; cleanup removes only weft\'s', async () => {
    await restoreInNs(`*nat\n${FOREIGN_NAT.join('\n')}\nCOMMIT\n*filter\n:OTHER - [0:0]\n${FOREIGN_FILTER.join('\n')}\nCOMMIT\n`);
    const natBefore = await ruleLines('nat');
    const filterBefore = await ruleLines('filter');
    const chainsBefore = [...(await chainNames('nat')), ...(await chainNames('filter'))];

    await runAgent({});
    assert.deepEqual(await ruleLines('nat'), [...FOREIGN_NAT, ...flanneldNat(P)]);
    assert.deepEqual(await ruleLines('filter'), [...FOREIGN_FILTER, ...FLANNELD_FILTER]);
    const recorded = ledgerEntries(state);
    assert.deepEqual(recorded.filter((e) => e.kind === 'iptables-chain'),
      [{ kind: 'iptables-chain', table: 'nat', chain: 'FLANNEL-POSTRTG' }, { kind: 'iptables-chain', table: 'filter', chain: 'FLANNEL-FWD' }]);
    assert.equal(recorded.filter((e) => e.kind === 'iptables-rule').length, 7 + 3);

    // the next start (agent restart) finds its own rules: nothing duplicated
    await runAgent({});
    assert.deepEqual(await ruleLines('nat'), [...FOREIGN_NAT, ...flanneldNat(P)]);
    assert.deepEqual(await ruleLines('filter'), [...FOREIGN_FILTER, ...FLANNELD_FILTER]);
    assert.deepEqual(ledgerEntries(state), recorded);

    await runAgent({ action: 'remove' });
    assert.deepEqual(await ruleLines('nat'), natBefore);
    assert.deepEqual(await ruleLines('filter'), filterBefore);
    assert.deepEqual([...(await chainNames('nat')), ...(await chainNames('filter'))], chainsBefore);
    assert.deepEqual(ledgerEntries(state), []);
  });

  test('iptables: a flanneld\'s rules are adopted with one jump, not recorded, and survive cleanup', async () => {
    const jump = flanneldNat(P)[0] as string;
    // a flanneld (or two) left its rules, with the jump twice
    await restoreInNs(`*nat\n:FLANNEL-POSTRTG - [0:0]\n${jump}\n${flanneldNat(P).join('\n')}\nCOMMIT\n` +
      `*filter\n:FLANNEL-FWD - [0:0]\n${FLANNELD_FILTER.join('\n')}\nCOMMIT\n`);
    assert.equal((await ruleLines('nat')).filter((l) => l === jump).length, 2);

    await runAgent({});
    assert.deepEqual(await ruleLines('nat'), flanneldNat(P));
    assert.deepEqual(await ruleLines('filter'), FLANNELD_FILTER);
    assert.deepEqual(ledgerEntries(state), [], 'weft recorded rules a flanneld created');

    await runAgent({ action: 'remove' });
    assert.deepEqual(await ruleLines('nat'), flanneldNat(P));
    assert.deepEqual(await ruleLines('filter'), FLANNELD_FILTER);
  });

  test('iptables: --ip-masq-fully-random-disable masquerades without --random-fully; turning it off again restores it',
    { skip: suffix === '' ? 'this iptables has no --random-fully: the flag changes nothing' : false }, async () => {
      await runAgent({ randomFullyDisable: true });
      assert.deepEqual(await ruleLines('nat'), flanneldNat(P, ''));
      // the next start without the flag replaces the two masquerade rules in place
      await runAgent({});
      assert.deepEqual(await ruleLines('nat'), flanneldNat(P));
      await runAgent({ action: 'remove' });
      assert.deepEqual(await ruleLines('nat'), []);
    });

  test('iptables: a changed lease replaces the previous lease\'s masquerade rules', async () => {
    await runAgent({});
    await runAgent({ lease: P2, previous: { network: C, lease: P } });
    assert.deepEqual(await ruleLines('nat'), flanneldNat(P2));
    const stale = ledgerEntries(state).filter((e) => e.kind === 'iptables-rule' && e.spec.includes(P));
    assert.deepEqual(stale, [], 'the ledger still lists the old lease\'s rules');
    await runAgent({ action: 'remove' });
    assert.deepEqual(await ruleLines('nat'), []);
  });

  test('iptables: what someone removes or reorders comes back within the resync period; stop leaves the rules', async () => {
    const agent = await holdAgent({ resyncSeconds: 1 });
    const expectNat = flanneldNat(P);
    const inPlace = async (): Promise<true | undefined> =>
      (JSON.stringify(await ruleLines('nat')) === JSON.stringify(expectNat) &&
        JSON.stringify(await ruleLines('filter')) === JSON.stringify(FLANNELD_FILTER)) ? true : undefined;

    // a rule from the middle of FLANNEL-POSTRTG
    await inNs('iptables', ['-t', 'nat', '-D', 'FLANNEL-POSTRTG', '-s', P, '-d', C, '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN']);
    assert.notDeepEqual(await ruleLines('nat'), expectNat);
    await eventually('the deleted masquerade rule to come back', inPlace, 5_000, 100);
    // the jump from FORWARD
    await inNs('iptables', ['-t', 'filter', '-D', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
    await eventually('the deleted jump to come back', inPlace, 5_000, 100);
    // a stranger's rule pushed in front of flannel's
    await inNs('iptables', ['-t', 'filter', '-I', 'FLANNEL-FWD', '1', '-j', 'DROP']);
    await eventually('the order to be restored', inPlace, 5_000, 100);

    const logs = await agent.stop();
    assert.equal(restoredWarnings(logs), 3, 'one warning per restoration');
    // stop leaves the rules, and no longer restores them
    assert.ok(await inPlace());
    await inNs('iptables', ['-t', 'filter', '-D', 'FLANNEL-FWD', '-d', C, '-m', 'comment', '--comment', 'flanneld forward', '-j', 'ACCEPT']);
    await sleep(2_500);
    assert.deepEqual(await ruleLines('filter'), FLANNELD_FILTER.slice(0, 2));

    await runAgent({ action: 'remove' });
    assert.deepEqual(await ruleLines('nat'), []);
    assert.deepEqual(await ruleLines('filter'), []);
  });

  describe('nftables', { skip: nftSkip }, () => {
    /** Whether this kernel takes `masquerade fully-random` (flannel's own dry run, done here by hand). */
    async function fullyRandomSupported(): Promise<boolean> {
      const r = await runWithInput('ip', ['netns', 'exec', NS, 'nft', '-c', '-f', '-'],
        'add table ip t\nadd chain ip t c { type nat hook postrouting priority srcnat ; }\nadd rule ip t c masquerade fully-random\n');
      return r.code === 0;
    }

    test('nftables: flannel\'s table exactly; a deleted rule and a deleted table come back; cleanup removes it', async () => {
      const agent = await holdAgent({ nftables: true, resyncSeconds: 1 });
      const expected = nftListing(await fullyRandomSupported());
      assert.equal(await nftTable(), expected);
      assert.deepEqual(ledgerEntries(state), [{ kind: 'nft-table', family: 'ip', name: 'flannel-ipv4' }]);
      assert.deepEqual(await ruleLines('nat'), [], 'nftables mode must not write iptables rules');

      const listing = await inNs('nft', ['-a', 'list', 'chain', 'ip', 'flannel-ipv4', 'postrtg']);
      const handle = /ip saddr 10\.244\.0\.0\/16 ip daddr 10\.244\.1\.0\/24 return # handle (\d+)/.exec(listing)?.[1];
      assert.ok(handle !== undefined, listing);
      await inNs('nft', ['delete', 'rule', 'ip', 'flannel-ipv4', 'postrtg', 'handle', handle]);
      assert.notEqual(await nftTable(), expected);
      await eventually('the deleted nft rule to come back', async () => ((await nftTable()) === expected ? true : undefined), 5_000, 100);

      await inNs('nft', ['delete', 'table', 'ip', 'flannel-ipv4']);
      await eventually('the deleted nft table to come back', async () => ((await nftTable()) === expected ? true : undefined), 5_000, 100);

      assert.equal(restoredWarnings(await agent.stop()), 2);
      assert.equal(await nftTable(), expected, 'stop must leave the table');

      await runAgent({ action: 'remove' });
      assert.equal(await nftTable(), undefined);
      assert.deepEqual(ledgerEntries(state), []);
    });

    test('nftables: a flanneld\'s table is adopted, not recorded, and survives cleanup; fully-random can be disabled', async () => {
      // what flanneld would have left, without fully-random and without --ip-masq
      await nftInNs('add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }\n' +
        'add chain ip flannel-ipv4 forward { type filter hook forward priority 0 ; comment "chain to accept flannel traffic" ; }\n' +
        `add rule ip flannel-ipv4 forward ip saddr ${C} accept\nadd rule ip flannel-ipv4 forward ip daddr ${C} accept\n`);
      assert.equal(await nftTable(), nftListing(false, ['forward']));

      await runAgent({ nftables: true, randomFullyDisable: true });
      // the chain flanneld made comes first: weft added its postrtg chain to the existing table
      assert.equal(await nftTable(), nftListing(false, ['forward', 'postrtg']));
      assert.deepEqual(ledgerEntries(state), [], 'weft recorded a table a flanneld created');

      await runAgent({ action: 'remove' });
      assert.equal(await nftTable(), nftListing(false, ['forward', 'postrtg']));
    });

    test('switching mode removes the rules weft created in the other mode', async () => {
      await runAgent({});
      assert.deepEqual(await ruleLines('nat'), flanneldNat(P));

      await runAgent({ nftables: true });
      assert.deepEqual(await ruleLines('nat'), []);
      assert.deepEqual(await ruleLines('filter'), []);
      assert.deepEqual(await chainNames('nat'), ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
      assert.equal(await nftTable(), nftListing(await fullyRandomSupported()));
      assert.deepEqual(ledgerEntries(state), [{ kind: 'nft-table', family: 'ip', name: 'flannel-ipv4' }]);

      await runAgent({});
      assert.equal(await nftTable(), undefined);
      assert.deepEqual(await ruleLines('nat'), flanneldNat(P));
      assert.deepEqual(await ruleLines('filter'), FLANNELD_FILTER);

      await runAgent({ action: 'remove' });
      assert.deepEqual(await ruleLines('nat'), []);
      assert.deepEqual(ledgerEntries(state), []);
    });
  });
});
