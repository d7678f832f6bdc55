/**
 * flannel's nftables rules (`EnableNFTables: true` in net-conf.json; flannel
 * `pkg/trafficmngr/nftables`), IPv4 only as all of weft:
 *
 *   table ip flannel-ipv4                          comment "rules for flannel-ipv4"
 *     chain postrtg  nat    postrouting srcnat     --ip-masq
 *     chain forward  filter forward      filter    --iptables-forward-rules
 *
 * The rule texts are flannel's, word for word (including flannel's own
 * choices: the kube-proxy mark is matched as `meta mark 0x4000`, unmasked, and
 * the fourth masquerade rule reads `ip saddr != P ip daddr C return`).
 *
 * Everything goes in with one `nft -f -` transaction that adds the table and
 * chains (a no-op when they exist), flushes the chains and adds the rules:
 * the result is the same whether the table was there, half there or absent,
 * and a failed transaction changes nothing. flanneld itself never re-checks
 * its nftables rules; weft compares `nft list table ip flannel-ipv4` with the
 * listing taken right after its own transaction, every resync period.
 *
 * The ledger gets the table only when weft created it, so that `weft cleanup`
 * leaves a table a flanneld made.
 */
import { CommandError } from '../errors';
import type { HostLedger, LedgerEntry } from '../host/ledger';
import type { Logger } from '../log';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { runResult, runWithInput } from '../sys/exec';

export const NFT_FAMILY = 'ip';
export const NFT_TABLE = 'flannel-ipv4';
export const NFT_TABLE_COMMENT = `rules for ${NFT_TABLE}`;
export const NFT_MASQ_CHAIN = 'postrtg';
export const NFT_FORWARD_CHAIN = 'forward';
/** flannel matches kube-proxy's mark bit as a plain value (its TODO says so). */
export const NFT_KUBE_PROXY_MARK = '0x4000';
const IPV4_MULTICAST = '224.0.0.0/4';
/** The chain flannel's dry run adds to learn whether `masquerade fully-random` is supported. */
const PROBE_CHAIN = 'masqueradeTest';

const INSTALL_HINT = 'weft needs nft for EnableNFTables: `apt-get install nftables`, and run weft as root';

export interface NftChain {
  readonly name: string;
  readonly comment: string;
  readonly type: 'nat' | 'filter';
  readonly hook: 'postrouting' | 'forward';
  readonly priority: 'srcnat' | 'filter';
  /** Rule bodies, as written after `add rule ip flannel-ipv4 <chain>`. */
  readonly rules: readonly string[];
}

// ---------------------------------------------------------------------------
// The rules (pure)

/** flannel's masquerade chain. C = cluster network, P = this host's lease. */
export function nftMasqChain(network: Ipv4Prefix, lease: Ipv4Prefix, fullyRandom: boolean): NftChain {
  const c = formatPrefix(network);
  const p = formatPrefix(lease);
  const masquerade = fullyRandom ? 'masquerade fully-random' : 'masquerade';
  return {
    name: NFT_MASQ_CHAIN,
    comment: 'chain to manage traffic masquerading by flannel',
    type: 'nat',
    hook: 'postrouting',
    priority: 'srcnat',
    rules: [
      `meta mark ${NFT_KUBE_PROXY_MARK} return`,
      `ip saddr ${p} ip daddr ${c} return`,
      `ip saddr ${c} ip daddr ${p} return`,
      `ip saddr != ${p} ip daddr ${c} return`,
      `ip saddr ${c} ip daddr != ${IPV4_MULTICAST} ${masquerade}`,
      `ip saddr != ${c} ip daddr ${c} ${masquerade}`,
    ],
  };
}

/** flannel's forward chain: accept to and from the cluster network. */
export function nftForwardChain(network: Ipv4Prefix): NftChain {
  const c = formatPrefix(network);
  return {
    name: NFT_FORWARD_CHAIN,
    comment: 'chain to accept flannel traffic',
    type: 'filter',
    hook: 'forward',
    priority: 'filter',
    rules: [`ip saddr ${c} accept`, `ip daddr ${c} accept`],
  };
}

export interface NftRuleOptions {
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  readonly network: Ipv4Prefix;
  readonly lease: Ipv4Prefix;
  readonly fullyRandom: boolean;
}

export function desiredChains(o: NftRuleOptions): NftChain[] {
  return [
    ...(o.ipMasq ? [nftMasqChain(o.network, o.lease, o.fullyRandom)] : []),
    ...(o.forwardRules ? [nftForwardChain(o.network)] : []),
  ];
}

const where = `${NFT_FAMILY} ${NFT_TABLE}`;

/** The `nft -f -` transaction: table and chains added (kept when they exist), chains flushed, rules added. */
export function buildNftPayload(chains: readonly NftChain[]): string {
  const lines = [`add table ${where} { comment ${JSON.stringify(NFT_TABLE_COMMENT)} ; }`];
  for (const ch of chains) {
    lines.push(
      `add chain ${where} ${ch.name} { type ${ch.type} hook ${ch.hook} priority ${ch.priority} ; comment ${JSON.stringify(ch.comment)} ; }`,
      `flush chain ${where} ${ch.name}`,
      ...ch.rules.map((r) => `add rule ${where} ${ch.name} ${r}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** flannel's dry run (`nft -c`): does this kernel and nft accept `masquerade fully-random`? Nothing is committed. */
export function buildFullyRandomProbe(): string {
  return [
    `add table ${where}`,
    `add chain ${where} ${PROBE_CHAIN} { type nat hook postrouting priority srcnat ; }`,
    `add rule ${where} ${PROBE_CHAIN} ip saddr != 127.0.0.1 masquerade fully-random`,
    '',
  ].join('\n');
}

export const NFT_TABLE_ENTRY: LedgerEntry = { kind: 'nft-table', family: NFT_FAMILY, name: NFT_TABLE };

// ---------------------------------------------------------------------------
// I/O

/** code null: nft did not run (runResult reports a missing program that way too) or was killed at the time limit. */
function nftError(args: readonly string[], code: number | null, stderr: string): CommandError {
  const detail = code === null && stderr.trim() === '' ? 'nft is not installed or not on PATH, or did not finish in time' : stderr;
  return new CommandError(['nft', ...args].join(' '), code, detail, code === null ? INSTALL_HINT : undefined);
}

/** `nft list table <family> <name>`, or undefined when there is no such table. */
async function listTable(family: string, name: string): Promise<string | undefined> {
  const args = ['list', 'table', family, name];
  const r = await runResult('nft', args);
  if (r.code === 0) return r.stdout;
  // nft reports a missing table as ENOENT
  if (r.code !== null && /No such file or directory/.test(r.stderr)) return undefined;
  throw nftError(args, r.code, r.stderr);
}

async function nftApply(payload: string, dryRun: boolean): Promise<{ ok: boolean; stderr: string; code: number | null }> {
  const args = dryRun ? ['-c', '-f', '-'] : ['-f', '-'];
  const r = await runWithInput('nft', args, payload);
  if (r.code === null) throw nftError(args, null, r.stderr);
  return { ok: r.code === 0, stderr: r.stderr, code: r.code };
}

export interface NftablesInstallerOptions {
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  readonly network: Ipv4Prefix;
  readonly lease: Ipv4Prefix;
  readonly randomFullyDisable: boolean;
  readonly ledger: HostLedger;
  readonly log: Logger;
}

/** Installs flannel's nftables table and puts it back when it drifts. One instance per agent. */
export class NftablesInstaller {
  readonly mode = 'nftables';
  private readonly options: NftablesInstallerOptions;
  private payload: string | undefined;
  /** `nft list table` right after weft's last transaction: what the table should look like. */
  private applied: string | undefined;

  constructor(options: NftablesInstallerOptions) {
    this.options = options;
  }

  get active(): boolean {
    return this.options.ipMasq || this.options.forwardRules;
  }

  async install(): Promise<void> {
    await this.apply(await listTable(NFT_FAMILY, NFT_TABLE));
    this.options.log.info({ table: `${NFT_FAMILY} ${NFT_TABLE}` }, 'nftables rules installed');
  }

  /** Re-reads the table; re-applies the transaction when it differs from what weft applied. Returns what was wrong. */
  async ensure(): Promise<string[]> {
    const listed = await listTable(NFT_FAMILY, NFT_TABLE);
    if (listed !== undefined && listed === this.applied) return [];
    await this.apply(listed);
    return [listed === undefined ? `table ${where} is missing` : `table ${where} differs from what weft applied`];
  }

  private async apply(before: string | undefined): Promise<void> {
    const payload = await this.buildPayload();
    const r = await nftApply(payload, false);
    if (!r.ok) throw new CommandError('nft -f -', r.code, `${r.stderr.trim()}\ntransaction:\n${payload}`);
    if (before === undefined) await this.options.ledger.record(NFT_TABLE_ENTRY);
    this.applied = await listTable(NFT_FAMILY, NFT_TABLE);
  }

  private async buildPayload(): Promise<string> {
    if (this.payload !== undefined) return this.payload;
    const o = this.options;
    let fullyRandom = false;
    if (o.ipMasq && !o.randomFullyDisable) {
      fullyRandom = (await nftApply(buildFullyRandomProbe(), true)).ok;
      if (!fullyRandom) o.log.warn('nftables: masquerade fully-random is not supported here; masquerading without it');
    }
    this.payload = buildNftPayload(desiredChains({ ...o, fullyRandom }));
    return this.payload;
  }
}

/** Deletes every nftables table the ledger says weft created, and forgets them; nothing else is touched. */
export async function removeNftTables(ledger: HostLedger, log: Logger): Promise<void> {
  for (const entry of ledger.list('nft-table')) {
    if ((await listTable(entry.family, entry.name)) !== undefined) {
      const args = ['delete', 'table', entry.family, entry.name];
      const r = await runResult('nft', args);
      if (r.code !== 0) throw nftError(args, r.code, r.stderr);
      log.info({ table: `${entry.family} ${entry.name}` }, 'removed the nftables table weft created');
    }
    await ledger.forget(entry);
  }
}
