/**
 * Leases kept in a LeaseStore (etcd in flannel's layout, or the embedded file
 * store): allocation in flannel's order (lease-allocator.ts), renewal
 * (lease-keeper.ts) and the lease set followed from the store's watch
 * (lease-watcher.ts). The network configuration is the --net-config-path file
 * or, when that file does not exist, the store's (etcd: `<prefix>/config`).
 */
import type { Logger } from '../log';
import { formatPrefix } from '../net/ipv4';
import type { Lease, LeaseAttrs, LeaseStore } from './lease';
import { acquireLease } from './lease-allocator';
import { LeaseKeeper } from './lease-keeper';
import { LeaseWatcher } from './lease-watcher';
import { parseNetConfig, type NetConfig } from './net-config';
import { readSubnetEnv } from './subnet-env';
import { readNetConfigFile, type LeaseSetHandlers, type Stoppable, type StoreState, type SubnetManager } from './subnet-manager';

export interface StoreSubnetManagerOptions {
  readonly netConfigPath: string;
  /** subnet.env: the subnet this host had before is asked for again. */
  readonly subnetFile: string;
  readonly leaseTtlSeconds: number;
  readonly renewMarginSeconds: number;
  readonly log: Logger;
}

export class StoreSubnetManager implements SubnetManager {
  readonly description: string;
  readonly configSources: string;
  readonly leasesHaveSubnetLen = true;
  private readonly store: LeaseStore;
  private readonly options: StoreSubnetManagerOptions;
  private connected = true;
  private lease: Lease | undefined;
  private lastRenewal: Date | undefined;

  state(): StoreState {
    return { connected: this.connected, lease: this.lease, lastRenewal: this.lastRenewal };
  }

  unreadableLeaseValues(): number {
    return this.store.unreadableValues;
  }

  constructor(store: LeaseStore, options: StoreSubnetManagerOptions) {
    this.store = store;
    this.options = options;
    this.description = store.description;
    this.configSources = `${options.netConfigPath}, then the configuration kept in ${store.description}`;
  }

  async getNetworkConfig(): Promise<NetConfig | undefined> {
    const fromFile = await readNetConfigFile(this.options.netConfigPath);
    if (fromFile !== undefined) return fromFile;
    const stored = await this.answered(this.store.getConfig());
    return stored === undefined ? undefined : parseNetConfig(stored.text, stored.source);
  }

  /** Notes whether the store answered a start-up request (start-up retries until it does). */
  private async answered<T>(request: Promise<T>): Promise<T> {
    try {
      const value = await request;
      this.connected = true;
      return value;
    } catch (err) {
      this.connected = false;
      throw err;
    }
  }

  async checkConfig(): Promise<void> {
    // nothing of its own to check: the subnet comes from the store, the peers from their leases
  }

  async acquireLease(config: NetConfig, attrs: LeaseAttrs): Promise<Lease> {
    const log = this.options.log;
    const previous = await readSubnetEnv(this.options.subnetFile).catch((err: unknown) => {
      log.warn({ err: (err as Error).message }, 'ignoring the previous subnet file');
      return undefined;
    });
    const lease = await this.answered(acquireLease(this.store, config, attrs, {
      previous: previous?.subnet, ttlSeconds: this.options.leaseTtlSeconds, log,
    }));
    this.lease = lease;
    log.info({ subnet: formatPrefix(lease.subnet), expires: lease.expiration?.toISOString() }, 'lease acquired');
    return lease;
  }

  keepLease(lease: Lease, attrs: LeaseAttrs, onLost: (reason: string) => void): Stoppable {
    const keeper = new LeaseKeeper(this.store, lease, attrs, {
      ttlSeconds: this.options.leaseTtlSeconds,
      marginSeconds: this.options.renewMarginSeconds,
      log: this.options.log,
      onLost: (err) => onLost(err.message),
      onRenewed: (renewed) => {
        this.lease = renewed;
        this.lastRenewal = new Date();
        this.connected = true;
      },
      onRenewFailed: () => {
        this.connected = false;
      },
    });
    keeper.start();
    return keeper;
  }

  async watchLeases(own: Lease, handlers: LeaseSetHandlers): Promise<Stoppable> {
    const watcher = new LeaseWatcher(this.store, {
      own, log: this.options.log, sink: handlers.sink, onOwnLeaseLost: handlers.onOwnLeaseLost,
      onStatus: (status) => {
        this.connected = status === 'connected';
      },
    });
    try {
      await this.answered(watcher.start());
    } catch (err) {
      await watcher.stop();
      throw err;
    }
    return watcher;
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
