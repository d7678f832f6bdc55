/**
 * The host's traffic rules, as flanneld's traffic manager
 * (`pkg/trafficmngr`) keeps them: masquerading for --ip-masq and forward
 * accepts for --iptables-forward-rules, written with iptables or, when
 * net-conf.json says `EnableNFTables: true`, with nftables.
 *
 * Life cycle, as flanneld's:
 *   start  removes what weft created in the mode NOT in use (flanneld's
 *          "clean-up unused traffic manager"; only ledger entries, never
 *          someone else's rules), installs the rules (one transaction per
 *          table), then re-checks them every --iptables-resync seconds and
 *          puts them back when someone removed or reordered them.
 *   stop   stops re-checking. The rules STAY: pods keep their NAT and
 *          forwarding through an agent restart, and the next start adopts them.
 *   removeTrafficRules (`weft cleanup`) removes what the ledger says weft created.
 */
import { StateError } from '../errors';
import type { HostLedger } from '../host/ledger';
import type { Logger } from '../log';
import type { Ipv4Prefix } from '../net/ipv4';
import { IptablesInstaller, removeIptablesRules } from './iptables-rules';
import { NftablesInstaller, removeNftTables } from './nftables-rules';

export interface TrafficRulesOptions {
  /** --ip-masq: masquerade rules. */
  readonly ipMasq: boolean;
  /** --iptables-forward-rules: forward accept rules. */
  readonly forwardRules: boolean;
  /** The cluster network (C). */
  readonly network: Ipv4Prefix;
  /** This host's lease (P). */
  readonly lease: Ipv4Prefix;
  /** --iptables-resync; 0 or less: never re-check. */
  readonly resyncSeconds: number;
  /** --ip-masq-fully-random-disable. */
  readonly randomFullyDisable: boolean;
  /**
   * The network and lease of the previous run (its subnet.env): flanneld
   * removes the masquerade rules of a previous network/lease when they differ.
   */
  readonly previous?: { readonly network: Ipv4Prefix; readonly lease: Ipv4Prefix } | undefined;
  readonly ledger: HostLedger;
  readonly log: Logger;
}

export interface TrafficRules {
  /** Installs the rules (as one transaction per table) and re-checks them every resync period. */
  start(): Promise<void>;
  /** Stops re-checking. The rules STAY in place (flanneld leaves them; the next start adopts them). */
  stop(): Promise<void>;
}

/** What each mode provides; the life cycle and the resync loop are shared. */
interface RuleInstaller {
  readonly mode: string;
  /** False when there is nothing to install (neither --ip-masq nor forward rules). */
  readonly active: boolean;
  install(): Promise<void>;
  /** Re-checks; re-installs when anything drifted. Returns what was wrong (empty: nothing). */
  ensure(): Promise<string[]>;
}

export function createTrafficRules(useNftables: boolean, options: TrafficRulesOptions): TrafficRules {
  const installer = useNftables ? new NftablesInstaller(options) : new IptablesInstaller(options);
  const removeUnused = useNftables ? removeIptablesRules : removeNftTables;
  return new ResyncedRules(installer, removeUnused, options);
}

/** `weft cleanup`: removes every iptables rule/chain and nft table the ledger says weft created (and forgets them); never anything else. */
export async function removeTrafficRules(ledger: HostLedger, log: Logger): Promise<void> {
  const failures: unknown[] = [];
  for (const remove of [removeIptablesRules, removeNftTables]) {
    try {
      await remove(ledger, log);
    } catch (err) {
      failures.push(err);
    }
  }
  // both modes were tried; report the first failure (its message says what to do)
  if (failures.length > 0) throw failures[0];
}

class ResyncedRules implements TrafficRules {
  private readonly installer: RuleInstaller;
  private readonly removeUnused: (ledger: HostLedger, log: Logger) => Promise<void>;
  private readonly options: TrafficRulesOptions;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** The resync under way, if any: stop() waits for it so it cannot write after stop() returned. */
  private running: Promise<void> | undefined;

  constructor(installer: RuleInstaller, removeUnused: (ledger: HostLedger, log: Logger) => Promise<void>, options: TrafficRulesOptions) {
    this.installer = installer;
    this.removeUnused = removeUnused;
    this.options = options;
  }

  async start(): Promise<void> {
    if (this.started) throw new StateError('traffic rules started twice');
    this.started = true;
    const { log, ledger } = this.options;
    try {
      await this.removeUnused(ledger, log);
    } catch (err) {
      // the rules of the mode in use matter more; cleanup can be retried with `weft cleanup`
      log.warn({ err }, `could not remove the rules weft created in the mode not in use (now ${this.installer.mode}); run \`weft cleanup\` to retry`);
    }
    if (!this.installer.active) return;
    await this.installer.install();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** The next resync starts a full period after the previous one ended, so two never overlap. */
  private schedule(): void {
    if (this.stopped || this.options.resyncSeconds <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.resync().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.options.resyncSeconds * 1000);
  }

  private async resync(): Promise<void> {
    const { log } = this.options;
    try {
      const problems = await this.installer.ensure();
      if (problems.length > 0) log.warn({ mode: this.installer.mode, problems }, 'traffic rules had been changed by someone else; restored them');
    } catch (err) {
      log.error({ err, mode: this.installer.mode }, 'could not re-check the traffic rules; retrying at the next resync');
    }
  }
}
