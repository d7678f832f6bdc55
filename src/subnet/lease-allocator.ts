/**
 * Which subnet this host gets, in flannel's order:
 *   1. a lease already held under this host's PublicIP, if it fits the config;
 *   2. the subnet of the previous subnet.env, if it is free;
 *   3. a random free subnet among the first 100 free ones from SubnetMin.
 * Creation is atomic in the store; a host that loses a race tries again
 * with what it learned. No free subnet: "out of subnets", clearly.
 */
import { LeaseError } from '../errors';
import { formatIpv4, formatPrefix, prefixesOverlap, type Ipv4Prefix } from '../net/ipv4';
import type { Logger } from '../log';
import { isValidLeaseSubnet, subnetAt, subnetCount, type SubnetRange } from './net-config';
import type { Lease, LeaseAttrs, LeaseStore } from './lease';

/** How many free subnets the random pick chooses among (flannel's number). */
export const FREE_SUBNET_CANDIDATES = 100;

export type SubnetChoice =
  | { readonly kind: 'reuse'; readonly lease: Lease }
  | { readonly kind: 'create'; readonly subnet: Ipv4Prefix; readonly why: 'previous' | 'random' }
  | { readonly kind: 'full' };

function taken(subnet: Ipv4Prefix, leases: readonly Lease[], tried: ReadonlySet<string>): boolean {
  return tried.has(formatPrefix(subnet)) || leases.some((l) => prefixesOverlap(l.subnet, subnet));
}

/**
 * Pure choice over a snapshot. `random()` returns [0, 1). `tried` holds subnets
 * this host already lost a race for during this acquisition.
 */
export function chooseSubnet(
  cfg: SubnetRange,
  leases: readonly Lease[],
  publicIp: number,
  previous: Ipv4Prefix | undefined,
  random: () => number,
  tried: ReadonlySet<string> = new Set(),
): SubnetChoice {
  const own = leases.find((l) =>
    l.attrs.publicIp === publicIp && isValidLeaseSubnet(cfg, l.subnet) && !tried.has(formatPrefix(l.subnet)));
  if (own !== undefined) return { kind: 'reuse', lease: own };
  if (previous !== undefined && isValidLeaseSubnet(cfg, previous) && !taken(previous, leases, tried)) {
    return { kind: 'create', subnet: previous, why: 'previous' };
  }
  const free: Ipv4Prefix[] = [];
  const count = subnetCount(cfg);
  for (let i = 0; i < count && free.length < FREE_SUBNET_CANDIDATES; i++) {
    const subnet = subnetAt(cfg, i);
    if (!taken(subnet, leases, tried)) free.push(subnet);
  }
  if (free.length === 0) return { kind: 'full' };
  return { kind: 'create', subnet: free[Math.floor(random() * free.length)] as Ipv4Prefix, why: 'random' };
}

export interface AcquireOptions {
  readonly previous?: Ipv4Prefix | undefined;
  readonly ttlSeconds: number;
  readonly log: Logger;
  readonly random?: () => number;
  /** Rounds of list-choose-write before giving up (each lost race is one). */
  readonly maxAttempts?: number;
}

/** Gets this host a lease from the store. Throws LeaseError when none can be had. */
export async function acquireLease(
  store: LeaseStore, cfg: SubnetRange, attrs: LeaseAttrs, options: AcquireOptions,
): Promise<Lease> {
  const random = options.random ?? Math.random;
  const attempts = options.maxAttempts ?? 20;
  const tried = new Set<string>();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const snapshot = await store.list();
    // As flanneld does: a lease of this host that no longer fits the config is released.
    for (const misfit of snapshot.leases) {
      if (misfit.attrs.publicIp === attrs.publicIp && !isValidLeaseSubnet(cfg, misfit.subnet)) {
        options.log.warn({ subnet: formatPrefix(misfit.subnet) }, "releasing this host's lease that does not fit the network configuration");
        await store.delete(misfit.subnet);
      }
    }
    const choice = chooseSubnet(cfg, snapshot.leases, attrs.publicIp, options.previous, random, tried);
    if (choice.kind === 'full') {
      throw new LeaseError(
        `out of subnets: all ${subnetCount(cfg)} subnets of ${formatPrefix(cfg.network)} between SubnetMin ` +
        `${formatIpv4(cfg.subnetMin)} and SubnetMax ${formatIpv4(cfg.subnetMax)} are leased by other hosts ` +
        `(${snapshot.leases.length} leases in ${store.description}); free one or widen Network/SubnetMin/SubnetMax`);
    }
    if (choice.kind === 'reuse') {
      try {
        const lease = await store.renew(choice.lease, attrs, options.ttlSeconds);
        options.log.info({ subnet: formatPrefix(lease.subnet) }, 'reusing the lease this host already holds');
        return lease;
      } catch (err) {
        if (!(err instanceof LeaseError)) throw err;
        options.log.info({ subnet: formatPrefix(choice.lease.subnet), err: err.message }, 'existing lease changed under us; trying again');
        tried.add(formatPrefix(choice.lease.subnet));
        continue;
      }
    }
    const lease = await store.create(choice.subnet, attrs, options.ttlSeconds);
    if (lease !== undefined) {
      options.log.info({ subnet: formatPrefix(lease.subnet), why: choice.why }, 'acquired a new lease');
      return lease;
    }
    options.log.info({ subnet: formatPrefix(choice.subnet) }, 'another host took that subnet first; trying again');
    tried.add(formatPrefix(choice.subnet));
  }
  throw new LeaseError(`could not acquire a lease in ${store.description} after ${attempts} attempts: other hosts kept winning the race`);
}
