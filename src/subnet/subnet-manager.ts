/**
 * Where this host's subnet and the other hosts' leases come from. The agent
 * sees only this interface (flannel's subnet.Manager plays the same part):
 *
 *   StoreSubnetManager   leases in a LeaseStore: etcd (flannel's layout) or the
 *                        embedded file store
 *   StaticSubnetManager  --subnet plus --peer / --peers-file, no store
 *
 * (and later the Kubernetes API). openSubnetManager() picks one from the
 * agent's flags; nothing else in the agent knows which it got.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors';
import type { Peer, PeerVerdict } from '../backend/backend';
import type { Lease, LeaseAttrs } from './lease';
import type { LeaseSink } from './lease-watcher';
import { parseNetConfig, type NetConfig } from './net-config';

export interface LeaseSetHandlers {
  /** Receives the complete lease set (own included) at start and after each change; calls never overlap. */
  readonly sink: LeaseSink;
  /** This host's lease is gone for good (deleted, expired, taken over). Called at most once. */
  readonly onOwnLeaseLost: (reason: string) => void;
}

/** What checkConfig needs of the backend: its type and whether it can use a peer. */
export interface PeerAcceptor {
  readonly type: string;
  accepts(peer: Peer): PeerVerdict;
}

export interface Stoppable {
  stop(): Promise<void>;
}

/** How the lease store looks from here, for metrics and `weft status`. */
export interface StoreState {
  /**
   * Whether the store answered the last time it was used (the lease watch,
   * a renewal): false from a failure until the next success. Static peers
   * have no store: always true.
   */
  readonly connected: boolean;
  /** This host's lease as last acquired or renewed (its expiration), undefined before acquireLease. */
  readonly lease: Lease | undefined;
  /** When the lease was last renewed, undefined before the first renewal (and always for a static subnet). */
  readonly lastRenewal: Date | undefined;
}

export interface SubnetManager {
  /** For logs: "etcd http://10.0.0.5:2379 /coreos.com/network", "file /var/lib/weft/leases.json", "static". */
  readonly description: string;
  /** Where getNetworkConfig looks, for messages ("/etc/kube-flannel/net-conf.json, then etcd ... /config"). */
  readonly configSources: string;
  /**
   * True when every genuine lease here was allocated with the configuration's
   * SubnetLen (a store: etcd, the lease file), so a lease of another length
   * was written by someone else and is ignored; false for static peers, whose
   * lengths the operator chose.
   */
  readonly leasesHaveSubnetLen: boolean;
  /**
   * The network configuration, or undefined while none exists yet (the agent
   * waits and asks again). Throws ConfigError when one exists but is invalid;
   * any other error means the store cannot answer now (the agent retries).
   */
  getNetworkConfig(): Promise<NetConfig | undefined>;
  /**
   * Checks the manager's own settings against the configuration and the
   * chosen backend (static peers must be peers it can use); nothing changes anywhere.
   */
  checkConfig(config: NetConfig, backend: PeerAcceptor): Promise<void>;
  /** This host's lease, published with `attrs`. */
  acquireLease(config: NetConfig, attrs: LeaseAttrs): Promise<Lease>;
  /** Keeps the lease alive until stopped; `onLost` when it is gone for good. */
  keepLease(lease: Lease, attrs: LeaseAttrs, onLost: (reason: string) => void): Stoppable;
  /** Delivers the lease set now (resolves after the first delivery was applied), then every change. */
  watchLeases(own: Lease, handlers: LeaseSetHandlers): Promise<Stoppable>;
  /** Lease values in the store skipped as unreadable so far (LeaseStore.unreadableValues); 0 for static peers. */
  unreadableLeaseValues(): number;
  /** The store's connection and this host's lease as of now. */
  state(): StoreState;
  close(): Promise<void>;
}

/**
 * Reads a net-conf.json file; undefined when it does not exist (yet). Any
 * other read error, or invalid content, is a ConfigError.
 */
export async function readNetConfigFile(file: string): Promise<NetConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ConfigError('--net-config-path', file, `cannot read the network configuration ${file} (${code ?? String(err)})`);
  }
  return parseNetConfig(text, file);
}

