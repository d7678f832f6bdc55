/**
 * Picks the subnet manager from the agent's flags, the one place that knows
 * the kinds: `--subnet` -> static; `--etcd-endpoints` -> etcd; otherwise the
 * embedded file store `--lease-file`. Conflicting flags are refused here,
 * before anything is opened.
 */
import { ConfigError } from '../errors';
import type { Logger } from '../log';
import { EtcdLeaseStore } from './etcd-store';
import { FileLeaseStore } from './file-store';
import { StaticSubnetManager } from './static-subnet-manager';
import { StoreSubnetManager } from './store-subnet-manager';
import type { SubnetManager } from './subnet-manager';

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly keyFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly caFile?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
}

export interface SubnetManagerOptions {
  readonly netConfigPath: string;
  readonly subnetFile: string;
  /** Static mode: this host's subnet. */
  readonly subnet?: string | undefined;
  readonly peers: readonly string[];
  readonly peersFile?: string | undefined;
  /** Leases in etcd; undefined = the embedded store. */
  readonly etcd?: EtcdOptions | undefined;
  readonly leaseFile: string;
  readonly leaseTtlSeconds: number;
  readonly renewMarginMinutes: number;
}

function checkModeFlags(opts: SubnetManagerOptions): void {
  if (opts.subnet !== undefined && opts.etcd !== undefined) {
    throw new ConfigError('--subnet', opts.subnet,
      '--subnet (static mode) and --etcd-endpoints cannot be combined: with etcd the subnet is leased; drop one of them');
  }
  if (opts.subnet === undefined && (opts.peers.length > 0 || opts.peersFile !== undefined)) {
    throw new ConfigError(opts.peers.length > 0 ? '--peer' : '--peers-file', opts.peers[0] ?? opts.peersFile,
      '--peer and --peers-file belong to static mode and need --subnet; with a lease store, routes come from the other hosts\' leases');
  }
  if (opts.leaseTtlSeconds < 2) {
    throw new ConfigError('--subnet-lease-ttl', opts.leaseTtlSeconds, '--subnet-lease-ttl must be at least 2 seconds');
  }
}

/** Builds the manager; contacts nothing yet (the first getNetworkConfig does). */
export async function openSubnetManager(opts: SubnetManagerOptions, log: Logger): Promise<SubnetManager> {
  checkModeFlags(opts);
  if (opts.subnet !== undefined) {
    return new StaticSubnetManager({ netConfigPath: opts.netConfigPath, subnet: opts.subnet, peers: opts.peers, peersFile: opts.peersFile, log });
  }
  const onWarning = (msg: string): void => log.warn(msg);
  const store = opts.etcd !== undefined
    ? await EtcdLeaseStore.connect({ ...opts.etcd, endpoints: [...opts.etcd.endpoints], onWarning })
    : await FileLeaseStore.open({ path: opts.leaseFile, onWarning });
  return new StoreSubnetManager(store, {
    netConfigPath: opts.netConfigPath,
    subnetFile: opts.subnetFile,
    leaseTtlSeconds: opts.leaseTtlSeconds,
    renewMarginSeconds: opts.renewMarginMinutes * 60,
    log,
  });
}
