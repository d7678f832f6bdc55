/**
 * The kernel backends' peers as kernel objects, kept equal to the lease set:
 *
 *   route       <subnet> via <gateway> [dev D] [onlink] proto 87   (every peer)
 *   neighbour   <ip> lladdr <mac> dev flannel.<VNI> nud permanent  (vxlan)
 *   fdb         <mac> dev flannel.<VNI> dst <public IP> self permanent (vxlan)
 *
 * Each apply reads what is there (weft's routes by their protocol number, the
 * permanent entries on weft's own device), plans the difference (planReconcile,
 * pure) and runs it as at most three iproute2 batches, in flannel's order: FDB
 * and neighbour before the route that needs them, the route removed before
 * them. What a previous run (or a flanneld, for the same lease) left is adopted
 * when it is what would be programmed, replaced when it is weft's, and a route
 * someone else made for a peer's subnet is left alone and reported.
 */
import { formatIpv4, formatPrefix, prefixCovers, samePrefix, type Ipv4Prefix } from '../net/ipv4';
import { runBatch } from '../host/ip-batch';
import {
  listPermanentFdb, listPermanentNeighbours, listRoutesWithin, WEFT_ROUTE_PROTO,
  type KernelFdbEntry, type KernelNeighbour, type KernelRoute,
} from '../host/kernel-state';
import type { ApplyReport } from './backend';

/** What one peer needs in the kernel. */
export interface PeerObjects {
  readonly subnet: Ipv4Prefix;
  readonly route: { readonly gateway: number; readonly dev: string; readonly onlink: boolean };
  readonly neighbour?: { readonly ip: number; readonly mac: string } | undefined;
  readonly fdb?: { readonly mac: string; readonly dst: number } | undefined;
}

/** The kernel's state as far as the plan needs it. */
export interface KernelSnapshot {
  /** Main-table routes inside the cluster network, any protocol. */
  readonly routes: readonly KernelRoute[];
  /** Permanent neighbours and FDB entries on weft's device (empty without one). */
  readonly neighbours: readonly KernelNeighbour[];
  readonly fdb: readonly KernelFdbEntry[];
}

export interface PlanScope {
  readonly network: Ipv4Prefix;
  /** This host's lease: never a peer route (its blackhole route, if any, is not touched here). */
  readonly own: Ipv4Prefix;
  /** weft's device whose permanent neighbour/FDB entries are all weft's (vxlan); undefined for none. */
  readonly device: string | undefined;
}

/** One batch command and the peer it serves (undefined: removing something stale). */
export interface PlannedCommand {
  readonly command: string;
  readonly subnet: Ipv4Prefix | undefined;
}

export interface ReconcilePlan {
  /** bridge batch before the ip batch: FDB entries to add or correct. */
  readonly fdbFirst: readonly PlannedCommand[];
  /** ip batch: neighbours to add, routes to add/replace, routes to remove, neighbours to remove. */
  readonly ip: readonly PlannedCommand[];
  /** bridge batch after the ip batch: stale FDB entries. */
  readonly fdbLast: readonly PlannedCommand[];
  /** Peers not programmed, and why (a route weft did not create is in the way). */
  readonly blocked: readonly { readonly subnet: Ipv4Prefix; readonly reason: string }[];
  readonly added: number;
  readonly removed: number;
}

function sameRoute(r: KernelRoute, want: PeerObjects['route']): boolean {
  return r.type === 'unicast' && r.gateway === want.gateway && r.dev === want.dev && r.onlink === want.onlink;
}

function describeRoute(r: KernelRoute): string {
  const parts = [r.type === 'unicast' ? '' : `${r.type} `, formatPrefix(r.dst)];
  if (r.gateway !== undefined) parts.push(` via ${formatIpv4(r.gateway)}`);
  if (r.dev !== undefined) parts.push(` dev ${r.dev}`);
  parts.push(` proto ${r.proto}`);
  return parts.join('');
}

export function routeCommand(verb: 'replace', subnet: Ipv4Prefix, route: PeerObjects['route']): string {
  return `route ${verb} ${formatPrefix(subnet)} via ${formatIpv4(route.gateway)} dev ${route.dev}${route.onlink ? ' onlink' : ''} proto ${WEFT_ROUTE_PROTO}`;
}

/** The difference between `desired` and `actual`, as iproute2 batch commands. Pure. */
export function planReconcile(desired: readonly PeerObjects[], actual: KernelSnapshot, scope: PlanScope): ReconcilePlan {
  const fdbFirst: PlannedCommand[] = [];
  const neighAdds: PlannedCommand[] = [];
  const routeAdds: PlannedCommand[] = [];
  const routeDels: PlannedCommand[] = [];
  const neighDels: PlannedCommand[] = [];
  const fdbLast: PlannedCommand[] = [];
  const blocked: { subnet: Ipv4Prefix; reason: string }[] = [];
  let added = 0;
  let removed = 0;

  // metric 0 is the only key `route replace` targets; routes with another metric neither block nor belong to weft
  const routesByDst = new Map<string, KernelRoute[]>();
  for (const r of actual.routes) {
    if (r.metric !== 0 || !prefixCovers(scope.network, r.dst) || samePrefix(r.dst, scope.own)) continue;
    const key = formatPrefix(r.dst);
    routesByDst.set(key, [...(routesByDst.get(key) ?? []), r]);
  }
  const neighByIp = new Map(actual.neighbours.map((n) => [n.ip, n]));
  const fdbByMac = new Map<string, KernelFdbEntry[]>();
  for (const e of actual.fdb) fdbByMac.set(e.mac, [...(fdbByMac.get(e.mac) ?? []), e]);

  const wantedDst = new Set<string>();
  const wantedNeigh = new Set<number>();
  const wantedFdb = new Set<string>();
  const dev = scope.device;

  for (const peer of desired) {
    const key = formatPrefix(peer.subnet);
    const present = routesByDst.get(key) ?? [];
    const foreign = present.find((r) => r.proto !== WEFT_ROUTE_PROTO);
    if (foreign !== undefined && !sameRoute(foreign, peer.route)) {
      blocked.push({
        subnet: peer.subnet,
        reason: `a route weft did not create is in the way (${describeRoute(foreign)}); weft leaves it alone: remove it to let weft route ${key}`,
      });
      continue;
    }
    wantedDst.add(key);
    if (dev !== undefined && peer.fdb !== undefined) {
      wantedFdb.add(`${peer.fdb.mac} ${peer.fdb.dst}`);
      const entries = fdbByMac.get(peer.fdb.mac) ?? [];
      if (!(entries.length === 1 && entries[0]?.dst === peer.fdb.dst)) {
        fdbFirst.push({ command: `fdb replace ${peer.fdb.mac} dev ${dev} dst ${formatIpv4(peer.fdb.dst)} self permanent`, subnet: peer.subnet });
        added++;
      }
    }
    if (dev !== undefined && peer.neighbour !== undefined) {
      wantedNeigh.add(peer.neighbour.ip);
      if (neighByIp.get(peer.neighbour.ip)?.mac !== peer.neighbour.mac) {
        neighAdds.push({ command: `neigh replace ${formatIpv4(peer.neighbour.ip)} lladdr ${peer.neighbour.mac} dev ${dev} nud permanent`, subnet: peer.subnet });
        added++;
      }
    }
    const ours = present.find((r) => r.proto === WEFT_ROUTE_PROTO);
    // a foreign route equal to ours is adopted: replacing it only changes its protocol number
    if (foreign !== undefined || ours === undefined || !sameRoute(ours, peer.route)) {
      routeAdds.push({ command: routeCommand('replace', peer.subnet, peer.route), subnet: peer.subnet });
      added++;
    }
  }

  for (const [key, list] of routesByDst) {
    if (wantedDst.has(key)) continue;
    for (const r of list) {
      if (r.proto !== WEFT_ROUTE_PROTO) continue;
      // without a type: `ip route del` then matches any type (blackhole, unreachable, ...), and ip cannot parse a numeric one
      routeDels.push({ command: `route del ${key} proto ${WEFT_ROUTE_PROTO}`, subnet: undefined });
      removed++;
    }
  }
  if (dev !== undefined) {
    for (const n of actual.neighbours) {
      if (wantedNeigh.has(n.ip)) continue;
      neighDels.push({ command: `neigh del ${formatIpv4(n.ip)} dev ${dev}`, subnet: undefined });
      removed++;
    }
    for (const e of actual.fdb) {
      if (wantedFdb.has(`${e.mac} ${e.dst}`)) continue;
      // a MAC whose remote changed was replaced above; its other remotes are stale
      fdbLast.push({ command: `fdb del ${e.mac} dev ${dev} dst ${formatIpv4(e.dst)} self`, subnet: undefined });
      removed++;
    }
  }
  return { fdbFirst, ip: [...neighAdds, ...routeAdds, ...routeDels, ...neighDels], fdbLast, blocked, added, removed };
}

/** Reads the state planReconcile needs. */
export async function readKernelSnapshot(network: Ipv4Prefix, device: string | undefined): Promise<KernelSnapshot> {
  const [routes, neighbours, fdb] = await Promise.all([
    listRoutesWithin(network),
    device === undefined ? Promise.resolve([]) : listPermanentNeighbours(device),
    device === undefined ? Promise.resolve([]) : listPermanentFdb(device),
  ]);
  return { routes, neighbours, fdb };
}

/** Rounds of read-plan-apply when iproute2 abandons a batch part-way (each round re-reads what really happened). */
export const RECONCILE_ROUNDS = 3;

/**
 * The order the plan runs in: each group is its own batch, so that a command
 * iproute2 gives up on (a failed `ip neigh` exits at once) holds back only
 * its own group, never the routes.
 */
function batches(plan: ReconcilePlan): Array<{ tool: 'ip' | 'bridge'; commands: PlannedCommand[] }> {
  const group = (prefix: string): PlannedCommand[] => plan.ip.filter((c) => c.command.startsWith(prefix));
  return [
    { tool: 'bridge', commands: [...plan.fdbFirst] },
    { tool: 'ip', commands: group('neigh replace ') },
    { tool: 'ip', commands: group('route ') },
    { tool: 'ip', commands: group('neigh del ') },
    { tool: 'bridge', commands: [...plan.fdbLast] },
  ];
}

/** Reads, plans and applies; returns what happened. Failed lines are reported by peer, never thrown. */
export async function reconcilePeers(desired: readonly PeerObjects[], scope: PlanScope): Promise<ApplyReport & { readonly plan: ReconcilePlan }> {
  let failures: { subnet: Ipv4Prefix; reason: string }[] = [];
  let plan: ReconcilePlan | undefined;
  let added = 0;
  let removed = 0;
  for (let round = 1; round <= RECONCILE_ROUNDS; round++) {
    plan = planReconcile(desired, await readKernelSnapshot(scope.network, scope.device), scope);
    failures = [...plan.blocked];
    const abandoned: Array<{ commands: PlannedCommand[]; why: string }> = [];
    for (const batch of batches(plan)) {
      const r = await runBatch(batch.tool, batch.commands.map((c) => c.command));
      for (const f of r.failures) {
        const subnet = batch.commands[f.index]?.subnet;
        if (subnet !== undefined) failures.push({ subnet, reason: `${batch.tool} ${f.command}: ${f.error}` });
        else failures.push({ subnet: scope.network, reason: `removing stale state: ${batch.tool} ${f.command}: ${f.error}` });
      }
      if (r.abandoned !== undefined) abandoned.push({ commands: batch.commands, why: `${batch.tool} gave up part-way: ${r.abandoned}` });
    }
    if (abandoned.length === 0) {
      added += plan.added;
      removed += plan.removed;
      break;
    }
    // which lines ran is unknown: read the kernel again and apply what is still missing
    if (round === RECONCILE_ROUNDS) {
      for (const a of abandoned) {
        for (const c of a.commands) failures.push({ subnet: c.subnet ?? scope.network, reason: a.why });
      }
    }
  }
  const failedKeys = new Set(failures.filter((f) => !samePrefix(f.subnet, scope.network)).map((f) => formatPrefix(f.subnet)));
  return {
    routed: desired.filter((p) => !failedKeys.has(formatPrefix(p.subnet))).length,
    added,
    removed,
    failed: failures,
    plan: plan as ReconcilePlan,
  };
}
