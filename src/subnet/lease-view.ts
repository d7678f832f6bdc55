/**
 * The agent's view of every lease, kept from one snapshot plus the stream of
 * store events. Pure: each input returns the changes it caused, so routes can
 * follow leases exactly and the logic is testable without a store.
 */
import { formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { encodeLeaseAttrs, type Lease, type LeaseEvent } from './lease';

export type LeaseChange =
  | { readonly type: 'added'; readonly lease: Lease }
  | { readonly type: 'changed'; readonly lease: Lease; readonly previous: Lease }
  | { readonly type: 'removed'; readonly lease: Lease };

const keyOf = (subnet: Ipv4Prefix): string => formatPrefix(subnet);

function sameLease(a: Lease, b: Lease): boolean {
  return a.subnet.network === b.subnet.network && a.subnet.length === b.subnet.length &&
    encodeLeaseAttrs(a.attrs) === encodeLeaseAttrs(b.attrs);
}

export class LeaseView {
  private readonly byKey = new Map<string, Lease>();

  get size(): number {
    return this.byKey.size;
  }

  get(subnet: Ipv4Prefix): Lease | undefined {
    return this.byKey.get(keyOf(subnet));
  }

  leases(): Lease[] {
    return [...this.byKey.values()];
  }

  /** Replaces the view with a complete snapshot; returns what differs from before. */
  applySnapshot(leases: readonly Lease[]): LeaseChange[] {
    const changes: LeaseChange[] = [];
    const next = new Map<string, Lease>();
    for (const lease of leases) next.set(keyOf(lease.subnet), lease);
    for (const [key, old] of this.byKey) {
      if (!next.has(key)) changes.push({ type: 'removed', lease: old });
    }
    for (const [key, lease] of next) {
      const old = this.byKey.get(key);
      if (old === undefined) changes.push({ type: 'added', lease });
      else if (!sameLease(old, lease)) changes.push({ type: 'changed', lease, previous: old });
    }
    this.byKey.clear();
    for (const [key, lease] of next) this.byKey.set(key, lease);
    return changes;
  }

  /** Applies store events in order; a put of an unchanged lease (a renewal) is no change. */
  applyEvents(events: readonly LeaseEvent[]): LeaseChange[] {
    const changes: LeaseChange[] = [];
    for (const event of events) {
      if (event.type === 'put') {
        const key = keyOf(event.lease.subnet);
        const old = this.byKey.get(key);
        this.byKey.set(key, event.lease);
        if (old === undefined) changes.push({ type: 'added', lease: event.lease });
        else if (!sameLease(old, event.lease)) changes.push({ type: 'changed', lease: event.lease, previous: old });
      } else {
        const key = keyOf(event.subnet);
        const old = this.byKey.get(key);
        if (old !== undefined) {
          this.byKey.delete(key);
          changes.push({ type: 'removed', lease: old });
        }
      }
    }
    return changes;
  }
}
