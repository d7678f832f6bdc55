/**
 * Subnet leases: one host's claim on one subnet of the cluster network, and
 * the store they live in (etcd in flannel's layout, or an embedded file store
 * for several agents on one machine).
 *
 * Wire/storage format, exactly flannel's:
 *   key    <prefix>/subnets/10.244.52.0-24
 *   value  {"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}
 *          (BackendType and BackendData omitted when empty)
 */
import { jsonValueProblem } from '../sys/json-limits';
import { LeaseError } from '../errors';
import { formatIpv4, parseIpv4, prefixMask, type Ipv4Prefix } from '../net/ipv4';

export interface LeaseAttrs {
  /** Underlay address other hosts send to. */
  readonly publicIp: number;
  /** "udp", "vxlan", ...; "" when the writer left it out. */
  readonly backendType: string;
  /** Backend-specific JSON (vxlan: {"VNI":1,"VtepMAC":"..."}) as parsed; written back with JSON.stringify. Undefined when absent. */
  readonly backendData?: unknown;
}

export interface Lease {
  readonly subnet: Ipv4Prefix;
  readonly attrs: LeaseAttrs;
  /** When the store will drop it; undefined for a reservation or when the store does not say. */
  readonly expiration?: Date | undefined;
  /** The host's underlay port when it was given explicitly (static mode, `--peer CIDR=IP:PORT`); stores never set it. */
  readonly underlayPort?: number | undefined;
}

/**
 * The backend type a lease stands for. flanneld's udp backend writes no
 * BackendType at all, so a lease without one is a udp lease.
 */
export function leaseBackendType(attrs: LeaseAttrs): string {
  return attrs.backendType === '' ? 'udp' : attrs.backendType;
}

/** A consistent view of every lease at one store revision. */
export interface LeaseSnapshot {
  readonly leases: readonly Lease[];
  /** Store revision the snapshot was read at; watch from here. */
  readonly revision: number;
}

/** One change in the store. A modified lease arrives as `put`. */
export type LeaseEvent =
  | { readonly type: 'put'; readonly lease: Lease }
  | { readonly type: 'delete'; readonly subnet: Ipv4Prefix };

export interface LeaseWatchHandlers {
  /**
   * Changes after the last revision delivered, in order; `revision` is the newest
   * included. Deletes caused by expiry alone may repeat the previous revision.
   */
  onEvents(events: readonly LeaseEvent[], revision: number): void;
  /**
   * The store could not continue from the last revision (etcd compaction, file
   * replaced, reconnect gap): here is a complete fresh snapshot instead.
   */
  onResync(snapshot: LeaseSnapshot): void;
  /** Connection state changes and retried errors, for logs and readiness. */
  onStatus?(status: 'connected' | 'disconnected', detail?: string): void;
}

export interface LeaseWatch {
  /** Stops watching; no handler is called afterwards. */
  close(): Promise<void>;
}

/**
 * Where leases live. Implementations: EtcdLeaseStore, FileLeaseStore.
 * Every method may be called concurrently with a running watch.
 */
export interface LeaseStore {
  readonly kind: 'etcd' | 'file';
  /** Human-readable location for logs ("etcd http://10.0.0.1:2379 /coreos.com/network"). */
  readonly description: string;
  /** The network configuration kept in the store (etcd: `<prefix>/config`), or undefined. */
  getConfig(): Promise<{ readonly text: string; readonly source: string } | undefined>;
  /** Every current (unexpired) lease. */
  list(): Promise<LeaseSnapshot>;
  /**
   * Creates a lease for `subnet` if and only if nobody holds it (atomically).
   * Resolves with the lease, or undefined when another host holds it or won a race.
   */
  create(subnet: Ipv4Prefix, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease | undefined>;
  /**
   * Re-writes a lease this host holds with fresh attributes and a fresh TTL.
   * Throws LeaseLostError when the lease no longer exists or now belongs to
   * someone else; any other error is temporary (the caller retries).
   */
  renew(lease: Lease, attrs: LeaseAttrs, ttlSeconds: number): Promise<Lease>;
  /** Deletes a lease (tests and operators; agents never delete leases). */
  delete(subnet: Ipv4Prefix): Promise<void>;
  /** Watches changes after `revision`; reconnects with backoff by itself. */
  watch(revision: number, handlers: LeaseWatchHandlers): LeaseWatch;
  /**
   * Lease values skipped since the store was opened because they are not
   * flannel's lease JSON (each also named in a warning); 0 for stores that
   * refuse such values as a whole.
   */
  readonly unreadableValues: number;
  close(): Promise<void>;
}

/** "10.244.52.0-24": the last part of a lease's key. */
export function subnetKeyName(subnet: Ipv4Prefix): string {
  return `${formatIpv4(subnet.network)}-${subnet.length}`;
}

/**
 * Parses "10.244.52.0-24"; undefined when it is not a subnet key (or has host
 * bits set). flannel's dual-stack keys ("10.5.31.0-24&fc00::-64") yield their
 * IPv4 part, so such a lease still counts as taken.
 */
export function parseSubnetKeyName(name: string): Ipv4Prefix | undefined {
  const m = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&[0-9a-fA-F:]+-\d{1,3})?$/.exec(name);
  if (m === null) return undefined;
  const address = parseIpv4(m[1] as string);
  const length = Number(m[2]);
  if (address === undefined || length > 32 || String(length) !== m[2]) return undefined;
  if (((address & prefixMask(length)) >>> 0) !== address) return undefined;
  return { network: address, length };
}

/** The JSON value flannel writes for a lease, byte for byte. */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  let json = `{"PublicIP":${JSON.stringify(formatIpv4(attrs.publicIp))},"PublicIPv6":null`;
  if (attrs.backendType !== '') json += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.backendData !== undefined && attrs.backendData !== null) json += `,"BackendData":${JSON.stringify(attrs.backendData)}`;
  return `${json}}`;
}

/** flannel's lease values are two levels deep (BackendData: {"VNI":1,"VtepMAC":"…"}). */
const MAX_LEASE_DEPTH = 16;

/**
 * Reads a lease value written by weft, flanneld or an operator. Tolerates
 * unknown fields (newer flannel versions) and any field order.
 */
export function decodeLeaseAttrs(text: string, where: string): LeaseAttrs {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LeaseError(`${where}: the lease value is not JSON (${(err as Error).message}): ${text.slice(0, 200)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LeaseError(`${where}: the lease value must be a JSON object such as {"PublicIP":"192.168.1.10","BackendType":"udp"}`);
  }
  const problem = jsonValueProblem(value, MAX_LEASE_DEPTH);
  if (problem !== undefined) throw new LeaseError(`${where}: the lease value is not flannel's: ${problem}`);
  const record = value as Record<string, unknown>;
  const ipText = record['PublicIP'];
  const publicIp = typeof ipText === 'string' ? parseIpv4(ipText) : undefined;
  if (ipText === undefined || ipText === null) {
    throw new LeaseError(`${where}: the lease has no PublicIP; flannel's format is {"PublicIP":"192.168.1.10","BackendType":"udp"}`);
  }
  if (publicIp === undefined) {
    throw new LeaseError(`${where}: the lease's PublicIP ${JSON.stringify(ipText)} is not an IPv4 address`);
  }
  const type = record['BackendType'];
  if (type !== undefined && type !== null && typeof type !== 'string') {
    throw new LeaseError(`${where}: the lease's BackendType must be a string, got ${JSON.stringify(type)}`);
  }
  const data = record['BackendData'];
  return data === undefined || data === null
    ? { publicIp, backendType: type ?? '' }
    : { publicIp, backendType: type ?? '', backendData: data };
}
