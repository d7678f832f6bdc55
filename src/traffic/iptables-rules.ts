/**
 * flanneld's iptables rules (flannel `pkg/trafficmngr/iptables`), byte for
 * byte, so that k3s, rke2 and operators who look for flannel's rules by their
 * comments find weft's, and so that weft adopts what a flanneld left:
 *
 *   --ip-masq                 nat    POSTROUTING -> FLANNEL-POSTRTG  "flanneld masq"
 *   --iptables-forward-rules  filter FORWARD     -> FLANNEL-FWD      "flanneld forward"
 *
 * Each table is written with ONE `iptables-restore --noflush` transaction:
 * the kernel sees the rules appear together, in flannel's order, with nothing
 * between them, and a failed transaction changes nothing. The transaction
 *   1. declares weft's chain (`:FLANNEL-POSTRTG - [0:0]`): creates it, or
 *      flushes it when it exists (iptables-restore flushes a redeclared chain
 *      even with --noflush; the explicit `-F` that follows says so in the
 *      payload). flanneld flushes its chains at start-up the same way;
 *   2. deletes every existing copy of the jump from the built-in chain (a
 *      flanneld may have left one, an older tool two) and appends one;
 *   3. appends the chain's rules.
 *
 * The ledger gets only what did not exist before weft added it, so that
 * `weft cleanup` never removes a chain or jump a flanneld created.
 *
 * The rule builders and payload builders are pure; the I/O is at the bottom.
 */
import { CommandError } from '../errors';
import type { HostLedger, LedgerEntry } from '../host/ledger';
import type { Logger } from '../log';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { run, runWithInput } from '../sys/exec';

export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
export const MASQ_COMMENT = 'flanneld masq';
export const FORWARD_COMMENT = 'flanneld forward';
/**
 * kube-proxy marks the packets it masquerades itself with this bit
 * (flannel's trafficmngr.KubeProxyMark); flannel returns early for them so
 * that they are not NATed twice.
 */
export const KUBE_PROXY_MARK = '0x4000/0x4000';
export const IPV4_MULTICAST = '224.0.0.0/4';

/** iptables >= 1.6.2 has both MASQUERADE --random-fully and iptables-restore --wait. */
const RANDOM_FULLY_SINCE: IptablesVersion = { major: 1, minor: 6, patch: 2 };
const RESTORE_WAIT_SINCE: IptablesVersion = { major: 1, minor: 6, patch: 2 };

const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

const INSTALL_HINT = 'weft needs iptables for --ip-masq and --iptables-forward-rules: `apt-get install iptables`, and run weft as root';
/** iptables-restore --wait may wait for the xtables lock (iptables-legacy); give it time. */
const RESTORE_TIMEOUT_MS = 30_000;

export type IptablesTable = 'nat' | 'filter';

export interface IptablesRule {
  readonly table: IptablesTable;
  readonly chain: string;
  /** The rule as iptables-save prints it after `-A <chain>`, one argument per element. */
  readonly spec: readonly string[];
}

// ---------------------------------------------------------------------------
// The rules (pure)

function masq(chain: string, spec: readonly string[], target: readonly string[]): IptablesRule {
  return { table: 'nat', chain, spec: [...spec, '-m', 'comment', '--comment', MASQ_COMMENT, ...target] };
}

function forward(chain: string, spec: readonly string[], target: readonly string[]): IptablesRule {
  return { table: 'filter', chain, spec: [...spec, '-m', 'comment', '--comment', FORWARD_COMMENT, ...target] };
}

/**
 * flannel's masquerade rules in flannel's order: the jump from POSTROUTING,
 * then FLANNEL-POSTRTG. C = cluster network, P = this host's lease.
 */
export function masqRules(network: Ipv4Prefix, lease: Ipv4Prefix, randomFully: boolean): IptablesRule[] {
  const c = formatPrefix(network);
  const p = formatPrefix(lease);
  const masquerade = randomFully ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
  return [
    masq('POSTROUTING', [], ['-j', MASQ_CHAIN]),
    // traffic kube-proxy will masquerade itself
    masq(MASQ_CHAIN, ['-m', 'mark', '--mark', KUBE_PROXY_MARK], ['-j', 'RETURN']),
    // inside the overlay: no NAT
    masq(MASQ_CHAIN, ['-s', p, '-d', c], ['-j', 'RETURN']),
    masq(MASQ_CHAIN, ['-s', c, '-d', p], ['-j', 'RETURN']),
    // from outside to a pod of this host (e.g. via a NodePort on another node): keep the client address
    masq(MASQ_CHAIN, ['!', '-s', c, '-d', p], ['-j', 'RETURN']),
    // pods to the outside world, multicast excepted
    masq(MASQ_CHAIN, ['-s', c, '!', '-d', IPV4_MULTICAST], masquerade),
    // the host itself to pods
    masq(MASQ_CHAIN, ['!', '-s', c, '-d', c], masquerade),
  ];
}

/** flannel's forward rules: the jump from FORWARD, then accept to and from the cluster network. */
export function forwardRules(network: Ipv4Prefix): IptablesRule[] {
  const c = formatPrefix(network);
  return [
    forward('FORWARD', [], ['-j', FORWARD_CHAIN]),
    forward(FORWARD_CHAIN, ['-s', c], ['-j', 'ACCEPT']),
    forward(FORWARD_CHAIN, ['-d', c], ['-j', 'ACCEPT']),
  ];
}

export interface IptablesRuleOptions {
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  readonly network: Ipv4Prefix;
  readonly lease: Ipv4Prefix;
  readonly randomFully: boolean;
}

/** Every rule weft wants, masquerade (nat) first, as flanneld sets them up. */
export function desiredRules(o: IptablesRuleOptions): IptablesRule[] {
  return [
    ...(o.ipMasq ? masqRules(o.network, o.lease, o.randomFully) : []),
    ...(o.forwardRules ? forwardRules(o.network) : []),
  ];
}

/** weft's own chains among `rules` (those that are not built in), in order of appearance. */
export function ownChains(rules: readonly IptablesRule[]): string[] {
  return [...new Set(rules.map((r) => r.chain).filter((c) => !BUILTIN_CHAINS.has(c)))];
}

/**
 * Quotes an argument the way iptables-save does (xtables_save_string): bare
 * when it is only letters, digits, `_` and `-`, else in double quotes with
 * `"`, `\` and `'` escaped. So our lines compare equal to iptables-save's.
 */
export function saveQuote(value: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(value)) return value;
  return `"${value.replace(/["\\']/g, (ch) => `\\${ch}`)}"`;
}

/** `-A CHAIN spec...` (or `-D`), as iptables-save prints it and iptables-restore reads it. */
export function formatRuleLine(action: '-A' | '-D', rule: Pick<IptablesRule, 'chain' | 'spec'>): string {
  const args = rule.spec.map((arg, i) => (i > 0 && rule.spec[i - 1] === '--comment' ? saveQuote(arg) : arg));
  return [action, rule.chain, ...args].join(' ');
}

// ---------------------------------------------------------------------------
// Reading iptables-save (pure)

/** One table as `iptables-save -t <table>` printed it. */
export interface SavedTable {
  /** Every chain, built-in or not. */
  readonly chains: ReadonlySet<string>;
  /** The `-A ...` lines, in order. */
  readonly rules: readonly string[];
}

export function parseIptablesSave(text: string): SavedTable {
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] as string);
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

/** The `-A` lines of one chain, in order. */
export function chainLines(saved: SavedTable, chain: string): string[] {
  return saved.rules.filter((l) => l.startsWith(`-A ${chain} `));
}

function countLine(saved: SavedTable, line: string): number {
  return saved.rules.filter((l) => l === line).length;
}

// ---------------------------------------------------------------------------
// Planning (pure)

/** Lines of one table wrapped as an iptables-restore transaction. */
export function restorePayload(table: string, lines: readonly string[]): string {
  return `*${table}\n${lines.map((l) => `${l}\n`).join('')}COMMIT\n`;
}

/**
 * The transaction that puts `rules` (all of one table) in place over what
 * `saved` shows: weft's chains created or flushed, every existing copy of a
 * jump deleted, then everything appended in order.
 */
export function buildInstallPayload(table: IptablesTable, rules: readonly IptablesRule[], saved: SavedTable): string {
  const lines: string[] = [];
  for (const chain of ownChains(rules)) lines.push(`:${chain} - [0:0]`, `-F ${chain}`);
  for (const rule of rules) {
    if (BUILTIN_CHAINS.has(rule.chain)) {
      const copies = countLine(saved, formatRuleLine('-A', rule));
      for (let i = 0; i < copies; i++) lines.push(formatRuleLine('-D', rule));
    }
    lines.push(formatRuleLine('-A', rule));
  }
  return restorePayload(table, lines);
}

/**
 * What is wrong with `saved` compared with `rules` (all of one table), one
 * sentence per problem; empty when everything is in place: weft's chains hold
 * exactly their rules in order, and each jump is there exactly once.
 */
export function findDrift(rules: readonly IptablesRule[], saved: SavedTable): string[] {
  const problems: string[] = [];
  for (const chain of ownChains(rules)) {
    if (!saved.chains.has(chain)) {
      problems.push(`chain ${chain} is missing`);
      continue;
    }
    const want = rules.filter((r) => r.chain === chain).map((r) => formatRuleLine('-A', r));
    const have = chainLines(saved, chain);
    if (want.join('\n') === have.join('\n')) continue;
    const missing = want.filter((l) => !have.includes(l));
    for (const l of missing) problems.push(`missing: ${l}`);
    if (missing.length === 0) problems.push(`chain ${chain} is out of order or holds other rules`);
  }
  for (const rule of rules.filter((r) => BUILTIN_CHAINS.has(r.chain))) {
    const line = formatRuleLine('-A', rule);
    const copies = countLine(saved, line);
    if (copies === 0) problems.push(`missing: ${line}`);
    else if (copies > 1) problems.push(`${copies} copies of: ${line}`);
  }
  return problems;
}

/** Ledger entries for the chains and rules of `rules` that `saved` (taken before installing) does not have. */
export function createdEntries(rules: readonly IptablesRule[], saved: SavedTable): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  const table = rules[0]?.table;
  if (table === undefined) return entries;
  for (const chain of ownChains(rules)) {
    if (!saved.chains.has(chain)) entries.push({ kind: 'iptables-chain', table, chain });
  }
  for (const rule of rules) {
    if (!saved.rules.includes(formatRuleLine('-A', rule))) {
      entries.push({ kind: 'iptables-rule', table: rule.table, chain: rule.chain, spec: [...rule.spec] });
    }
  }
  return entries;
}

export interface RemovalPlan {
  /** The transaction's lines; empty when nothing is left to remove. */
  readonly lines: readonly string[];
  /** Entries whose object the transaction removes, or that are already gone: forget them once it succeeded. */
  readonly forget: readonly LedgerEntry[];
  /** Chains left in place because a rule weft did not create still jumps to them. */
  readonly kept: readonly { readonly chain: string; readonly referencedBy: string }[];
}

/**
 * Removing what the ledger says weft created in one table, over what `saved`
 * shows: each recorded rule that is there is deleted once (an identical copy
 * someone else added stays), then each recorded chain is flushed and deleted
 * unless a rule weft did not create still jumps to it.
 */
export function planRemoval(entries: readonly LedgerEntry[], saved: SavedTable): RemovalPlan {
  const lines: string[] = [];
  const forget: LedgerEntry[] = [];
  const kept: { chain: string; referencedBy: string }[] = [];
  const remaining = [...saved.rules];
  for (const e of entries) {
    if (e.kind !== 'iptables-rule') continue;
    const line = formatRuleLine('-A', e);
    const at = remaining.indexOf(line);
    if (at >= 0) {
      remaining.splice(at, 1);
      lines.push(formatRuleLine('-D', e));
    }
    forget.push(e);
  }
  for (const e of entries) {
    if (e.kind !== 'iptables-chain') continue;
    if (!saved.chains.has(e.chain)) {
      forget.push(e);
      continue;
    }
    const reference = remaining.find((l) => !l.startsWith(`-A ${e.chain} `) && jumpsTo(l, e.chain));
    if (reference !== undefined) {
      kept.push({ chain: e.chain, referencedBy: reference });
      continue;
    }
    lines.push(`-F ${e.chain}`, `-X ${e.chain}`);
    forget.push(e);
  }
  return { lines, forget, kept };
}

function jumpsTo(line: string, chain: string): boolean {
  const args = line.split(/\s+/);
  return args.some((a, i) => (a === '-j' || a === '-g') && args[i + 1] === chain);
}

// ---------------------------------------------------------------------------
// The installed iptables (pure parsing)

export interface IptablesVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** The version in `iptables --version` output ("iptables v1.8.9 (nf_tables)"); undefined when there is none. */
export function parseIptablesVersion(text: string): IptablesVersion | undefined {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (m === null) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

export function versionAtLeast(v: IptablesVersion, min: IptablesVersion): boolean {
  if (v.major !== min.major) return v.major > min.major;
  if (v.minor !== min.minor) return v.minor > min.minor;
  return v.patch >= min.patch;
}

export interface IptablesFeatures {
  /** MASQUERADE --random-fully (flannel's HasRandomFully). */
  readonly randomFully: boolean;
  /** iptables-restore --wait: wait for the xtables lock instead of failing. */
  readonly restoreWait: boolean;
}

/** What an iptables of this version supports; an unknown version supports neither (as flannel assumes). */
export function iptablesFeatures(version: IptablesVersion | undefined): IptablesFeatures {
  return {
    randomFully: version !== undefined && versionAtLeast(version, RANDOM_FULLY_SINCE),
    restoreWait: version !== undefined && versionAtLeast(version, RESTORE_WAIT_SINCE),
  };
}

// ---------------------------------------------------------------------------
// I/O

async function detectFeatures(): Promise<IptablesFeatures> {
  return iptablesFeatures(parseIptablesVersion(await run('iptables', ['--version'], { hint: INSTALL_HINT })));
}

async function readTable(table: string): Promise<SavedTable> {
  return parseIptablesSave(await run('iptables-save', ['-t', table], { hint: INSTALL_HINT }));
}

async function restore(payload: string, features: IptablesFeatures): Promise<void> {
  const args = ['--noflush', ...(features.restoreWait ? ['--wait'] : [])];
  const result = await runWithInput('iptables-restore', args, payload, { timeoutMs: RESTORE_TIMEOUT_MS });
  if (result.code !== 0) {
    const hint = result.code !== null
      ? 'if another program changed the table at the same moment, the next attempt (next resync, or a restart) succeeds'
      : /not installed/.test(result.stderr) ? INSTALL_HINT
        : `it did not finish within ${RESTORE_TIMEOUT_MS / 1000} s: another program may hold the xtables lock`;
    throw new CommandError(['iptables-restore', ...args].join(' '), result.code, `${result.stderr.trim()}\ntransaction:\n${payload}`, hint);
  }
}

export interface IptablesInstallerOptions {
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  readonly network: Ipv4Prefix;
  readonly lease: Ipv4Prefix;
  readonly randomFullyDisable: boolean;
  readonly previous?: { readonly network: Ipv4Prefix; readonly lease: Ipv4Prefix } | undefined;
  readonly ledger: HostLedger;
  readonly log: Logger;
}

/** Installs flanneld's iptables rules and puts them back when they drift. One instance per agent. */
export class IptablesInstaller {
  readonly mode = 'iptables';
  private readonly options: IptablesInstallerOptions;
  private features: IptablesFeatures | undefined;
  private byTable: Map<IptablesTable, IptablesRule[]> | undefined;

  constructor(options: IptablesInstallerOptions) {
    this.options = options;
  }

  get active(): boolean {
    return this.options.ipMasq || this.options.forwardRules;
  }

  /** Puts every table's rules in place (one transaction per table). */
  async install(): Promise<void> {
    const byTable = await this.plan();
    const { previous, network, lease, ipMasq, log } = this.options;
    if (ipMasq && previous !== undefined && (formatPrefix(previous.network) !== formatPrefix(network) || formatPrefix(previous.lease) !== formatPrefix(lease))) {
      // flanneld deletes the old network's masquerade rules; they live in FLANNEL-POSTRTG, which the transaction flushes
      log.info({ previousNetwork: formatPrefix(previous.network), previousLease: formatPrefix(previous.lease) },
        'network or lease changed since the last run: replacing the old masquerade rules');
    }
    for (const [table, rules] of byTable) await this.apply(table, rules, await readTable(table));
    log.info({ chains: [...byTable].map(([table, rules]) => `${table}/${ownChains(rules).join(',')}`) }, 'iptables rules installed');
  }

  /** Re-checks every table (one iptables-save each); re-applies a table that drifted. Returns what was wrong. */
  async ensure(): Promise<string[]> {
    const problems: string[] = [];
    for (const [table, rules] of await this.plan()) {
      const saved = await readTable(table);
      const drift = findDrift(rules, saved);
      if (drift.length === 0) continue;
      problems.push(...drift.map((d) => `${table}: ${d}`));
      await this.apply(table, rules, saved);
    }
    return problems;
  }

  private async plan(): Promise<Map<IptablesTable, IptablesRule[]>> {
    if (this.byTable !== undefined) return this.byTable;
    this.features ??= await detectFeatures();
    const o = this.options;
    const rules = desiredRules({ ...o, randomFully: this.features.randomFully && !o.randomFullyDisable });
    const byTable = new Map<IptablesTable, IptablesRule[]>();
    for (const r of rules) byTable.set(r.table, [...(byTable.get(r.table) ?? []), r]);
    this.byTable = byTable;
    return byTable;
  }

  private async apply(table: IptablesTable, rules: readonly IptablesRule[], saved: SavedTable): Promise<void> {
    await restore(buildInstallPayload(table, rules, saved), this.features as IptablesFeatures);
    const { ledger } = this.options;
    for (const entry of createdEntries(rules, saved)) await ledger.record(entry);
    // rules weft once added to its chains (an old lease's, say) went with the flush
    const chains = ownChains(rules);
    const wanted = new Set(rules.map((r) => formatRuleLine('-A', r)));
    for (const e of ledger.list('iptables-rule')) {
      if (e.table === table && chains.includes(e.chain) && !wanted.has(formatRuleLine('-A', e))) await ledger.forget(e);
    }
  }
}

/**
 * Removes every iptables rule and chain the ledger says weft created (one
 * transaction per table) and forgets them; nothing else is touched. A chain
 * that a rule weft did not create still jumps to stays (and stays recorded).
 */
export async function removeIptablesRules(ledger: HostLedger, log: Logger): Promise<void> {
  const entries = [...ledger.list('iptables-rule'), ...ledger.list('iptables-chain')];
  if (entries.length === 0) return;
  const features = await detectFeatures();
  for (const table of [...new Set(entries.map((e) => e.table))]) {
    const plan = planRemoval(entries.filter((e) => e.table === table), await readTable(table));
    if (plan.lines.length > 0) await restore(restorePayload(table, plan.lines), features);
    for (const k of plan.kept) {
      log.warn({ table, chain: k.chain, referencedBy: k.referencedBy },
        'left an iptables chain weft created in place: a rule weft did not create still jumps to it; remove that rule, then run `weft cleanup` again');
    }
    for (const e of plan.forget) await ledger.forget(e);
    if (plan.lines.length > 0) log.info({ table, removed: plan.lines.filter((l) => !l.startsWith('-F')) }, 'removed the iptables rules weft created');
  }
}
