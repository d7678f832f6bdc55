/**
 * The iptables rules flanneld installs, in its own chains:
 *   --ip-masq                 nat FLANNEL-POSTRTG: masquerade traffic leaving the overlay
 *   --iptables-forward-rules  filter FLANNEL-FWD: accept forwarding to and from the network
 * Re-checked every --iptables-resync seconds (something else may flush them),
 * and removed — jump rules and chains — when the agent stops.
 */
import type { Logger } from '../log';
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { run } from '../sys/exec';

interface Chain {
  readonly table: 'nat' | 'filter';
  readonly name: string;
  /** Built-in chain that jumps to ours. */
  readonly hook: string;
  readonly rules: readonly (readonly string[])[];
}

/** flannel's masquerade rules (facts §6). C = cluster network, P = this host's lease. */
export function masqueradeChain(network: Ipv4Prefix, lease: Ipv4Prefix): Chain {
  const c = formatPrefix(network);
  const p = formatPrefix(lease);
  return {
    table: 'nat',
    name: 'FLANNEL-POSTRTG',
    hook: 'POSTROUTING',
    rules: [
      ['-m', 'mark', '--mark', '0x4000/0x4000', '-j', 'RETURN'],
      ['-s', p, '-d', c, '-j', 'RETURN'],
      ['-s', c, '-d', p, '-j', 'RETURN'],
      ['!', '-s', c, '-d', p, '-j', 'RETURN'],
      ['-s', c, '!', '-d', '224.0.0.0/4', '-j', 'MASQUERADE', '--random-fully'],
      ['!', '-s', c, '-d', c, '-j', 'MASQUERADE', '--random-fully'],
    ],
  };
}

export function forwardChain(network: Ipv4Prefix): Chain {
  const c = formatPrefix(network);
  return {
    table: 'filter',
    name: 'FLANNEL-FWD',
    hook: 'FORWARD',
    rules: [
      ['-s', c, '-j', 'ACCEPT'],
      ['-d', c, '-j', 'ACCEPT'],
    ],
  };
}

function iptables(args: readonly string[]): Promise<string> {
  return run('iptables', ['-w', '5', ...args], { hint: 'weft needs iptables (apt-get install iptables) and root for --ip-masq and --iptables-forward-rules' });
}

async function exists(args: readonly string[]): Promise<boolean> {
  try {
    await iptables(args);
    return true;
  } catch {
    return false;
  }
}

/** Makes sure a chain, its rules in order and the jump to it exist. Returns true if anything was (re)added. */
async function ensureChain(chain: Chain): Promise<boolean> {
  const t = ['-t', chain.table];
  let changed = false;
  if (!(await exists([...t, '-S', chain.name]))) {
    await iptables([...t, '-N', chain.name]);
    changed = true;
  }
  const listed = (await iptables([...t, '-S', chain.name])).split('\n').filter((l) => l.startsWith('-A ')).length;
  let complete = listed === chain.rules.length;
  for (const rule of chain.rules) {
    if (!complete) break;
    complete = await exists([...t, '-C', chain.name, ...rule]);
  }
  if (!complete) {
    await iptables([...t, '-F', chain.name]);
    for (const rule of chain.rules) await iptables([...t, '-A', chain.name, ...rule]);
    changed = true;
  }
  if (!(await exists([...t, '-C', chain.hook, '-j', chain.name]))) {
    await iptables([...t, '-A', chain.hook, '-j', chain.name]);
    changed = true;
  }
  return changed;
}

async function removeChain(chain: Chain): Promise<void> {
  const t = ['-t', chain.table];
  while (await exists([...t, '-C', chain.hook, '-j', chain.name])) {
    await iptables([...t, '-D', chain.hook, '-j', chain.name]);
  }
  if (await exists([...t, '-S', chain.name])) {
    await iptables([...t, '-F', chain.name]);
    await iptables([...t, '-X', chain.name]);
  }
}

export interface IptablesOptions {
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  readonly network: Ipv4Prefix;
  readonly lease: Ipv4Prefix;
  readonly resyncSeconds: number;
  readonly log: Logger;
}

export class IptablesRules {
  private readonly chains: Chain[];
  private readonly options: IptablesOptions;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  constructor(options: IptablesOptions) {
    this.options = options;
    this.chains = [];
    if (options.ipMasq) this.chains.push(masqueradeChain(options.network, options.lease));
    if (options.forwardRules) this.chains.push(forwardChain(options.network));
  }

  get active(): boolean {
    return this.chains.length > 0;
  }

  /** Installs the rules, then re-checks them every resync period. */
  async start(): Promise<void> {
    if (!this.active) return;
    for (const chain of this.chains) await ensureChain(chain);
    this.options.log.info({ chains: this.chains.map((c) => `${c.table}/${c.name}`) }, 'iptables rules installed');
    if (this.options.resyncSeconds > 0) {
      this.timer = setInterval(() => {
        // iptables -w can wait seconds for the xtables lock: never run two resyncs at once
        if (this.syncing !== undefined) return;
        this.syncing = this.resync().finally(() => {
          this.syncing = undefined;
        });
      }, this.options.resyncSeconds * 1000);
    }
  }

  private async resync(): Promise<void> {
    for (const chain of this.chains) {
      try {
        if (await ensureChain(chain)) this.options.log.warn({ chain: `${chain.table}/${chain.name}` }, 'iptables rules were missing; restored');
      } catch (err) {
        this.options.log.error({ err: (err as Error).message }, 'iptables resync failed');
      }
    }
  }

  /** Stops resyncing and removes every rule and chain weft added. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.syncing; // the last one may still run: wait, so it cannot re-create what follows removes
    for (const chain of this.chains) {
      try {
        await removeChain(chain);
      } catch (err) {
        this.options.log.error({ err: (err as Error).message, chain: chain.name }, 'could not remove iptables chain');
      }
    }
  }
}
