/**
 * Route lookup micro-benchmark: CompiledRoutes.lookup (the worker hot path) against
 * RouteTable.lookup (the agent's Map-based table) and against an lru-cache placed in
 * front of CompiledRoutes as a hot-destination cache.
 *
 * Tables: "flannel" = 255 /24 leases in 10.244.0.0/16 (what a 256-node cluster
 * gives every node); "mixed" = 1000 seeded random prefixes of lengths 8..32, nested.
 * Destinations: "hot" = 16 addresses over and over (a few busy flows); "uniform" =
 * 65536 addresses spread over the table (every flow a stranger).
 *
 * One benchmark op = LOOKUPS_PER_OP lookups, so the harness's per-call overhead does
 * not swamp a ~10 ns operation; the summary divides it back out.
 *
 *   node dist/bench/micro/route-lookup.js
 *   BENCH_MAX_TIME=1 node dist/bench/micro/route-lookup.js   # seconds per case (default 3)
 *   BENCH_LRU_MAX=4096 node dist/bench/micro/route-lookup.js # cache entries (default 1024)
 */

import { add, complete, configure, cycle, suite } from 'benny';
import { LRUCache } from 'lru-cache';

import { formatIpv4, formatPrefix, parseIpv4, prefixMask } from '../../src/net/ipv4';
import { CompiledRoutes, RouteTable } from '../../src/routing';
import { seededRandom } from '../../test/prng';

const LOOKUPS_PER_OP = 1024;
const HOT_DESTINATIONS = 16;
const UNIFORM_DESTINATIONS = 65536;
const MAX_TIME_S = Number(process.env['BENCH_MAX_TIME'] ?? '3');
const LRU_MAX = Number(process.env['BENCH_LRU_MAX'] ?? '1024');
const CLUSTER = parseIpv4('10.244.0.0') as number;


function flannelTable(): RouteTable {
  const table = new RouteTable();
  for (let i = 1; i <= 255; i++) {
    table.set({ network: CLUSTER + i * 256, length: 24 }, { address: (0xc0a80000 + i) >>> 0, port: 8285 });
  }
  return table;
}

function mixedTable(rng: () => number): RouteTable {
  const table = new RouteTable();
  while (table.size < 1000) {
    const length = 8 + (rng() % 25);
    // a third of the prefixes in 10.0.0.0/8, so that many of them nest
    const base = rng() % 3 === 0 ? ((parseIpv4('10.0.0.0') as number) | (rng() & 0xffffff)) >>> 0 : rng();
    table.set({ network: (base & prefixMask(length)) >>> 0, length }, { address: rng(), port: 8285 });
  }
  return table;
}

/** Random addresses inside the table's routes (uniform over routes, then over hosts). */
function destinations(table: RouteTable, count: number, rng: () => number): Uint32Array {
  const entries = table.entries();
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const { network, length } = entries[rng() % entries.length]!.prefix;
    out[i] = (network | (rng() & ~prefixMask(length))) >>> 0;
  }
  return out;
}

/** `count` destinations cycling over `hot` distinct ones. */
function repeat(hot: Uint32Array, count: number): Uint32Array {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = hot[i % hot.length]!;
  return out;
}

/** Keeps the JIT from dropping lookups whose results are unused. */
let sink = 0;

interface Workload {
  readonly name: string;
  readonly table: RouteTable;
  readonly dsts: Uint32Array;
}

function cases(w: Workload): Array<ReturnType<typeof add>> {
  const compiled = new CompiledRoutes(structuredClone(w.table.snapshot()));
  const table = w.table;
  const dsts = w.dsts;
  const mask = dsts.length - 1; // lengths are powers of two
  const cache = new LRUCache<number, number>({ max: LRU_MAX });

  // everybody must give the same answer before anybody is timed
  for (let i = 0; i < dsts.length; i++) {
    const dst = dsts[i]!;
    const idx = compiled.lookup(dst);
    const entry = table.lookup(dst);
    const got = idx < 0 ? 'none' : formatPrefix(compiled.prefixOf(idx));
    const want = entry === undefined ? 'none' : formatPrefix(entry.prefix);
    if (got !== want) {
      throw new Error(`${w.name}: CompiledRoutes and RouteTable disagree on ${formatIpv4(dst)}`);
    }
  }

  let offsetA = 0;
  let offsetB = 0;
  let offsetC = 0;
  return [
    add(`${w.name}: CompiledRoutes.lookup`, () => {
      let acc = 0;
      let at = offsetA;
      for (let i = 0; i < LOOKUPS_PER_OP; i++) {
        acc += compiled.lookup(dsts[at]!);
        at = (at + 1) & mask;
      }
      offsetA = at;
      sink += acc;
    }),
    add(`${w.name}: RouteTable.lookup`, () => {
      let acc = 0;
      let at = offsetB;
      for (let i = 0; i < LOOKUPS_PER_OP; i++) {
        const entry = table.lookup(dsts[at]!);
        acc += entry === undefined ? -1 : entry.peer.port;
        at = (at + 1) & mask;
      }
      offsetB = at;
      sink += acc;
    }),
    add(`${w.name}: LRUCache + CompiledRoutes`, () => {
      let acc = 0;
      let at = offsetC;
      for (let i = 0; i < LOOKUPS_PER_OP; i++) {
        const dst = dsts[at]!;
        let idx = cache.get(dst);
        if (idx === undefined) {
          idx = compiled.lookup(dst);
          cache.set(dst, idx);
        }
        acc += idx;
        at = (at + 1) & mask;
      }
      offsetC = at;
      sink += acc;
    }),
  ];
}

interface Row {
  readonly name: string;
  readonly opsPerSec: number;
}

async function run(): Promise<void> {
  const rng = seededRandom(0x5eed);
  const flannel = flannelTable();
  const mixed = mixedTable(rng);
  // flannel uniform: any host of the /16, including this node's own (unrouted) /24
  const flannelUniform = new Uint32Array(UNIFORM_DESTINATIONS);
  for (let i = 0; i < UNIFORM_DESTINATIONS; i++) flannelUniform[i] = (CLUSTER + (rng() & 0xffff)) >>> 0;

  const workloads: Workload[] = [
    { name: 'flannel 255x/24, hot 16', table: flannel, dsts: repeat(destinations(flannel, HOT_DESTINATIONS, rng), 1024) },
    { name: 'flannel 255x/24, uniform', table: flannel, dsts: flannelUniform },
    { name: 'mixed 1000, hot 16', table: mixed, dsts: repeat(destinations(mixed, HOT_DESTINATIONS, rng), 1024) },
    { name: 'mixed 1000, uniform', table: mixed, dsts: destinations(mixed, UNIFORM_DESTINATIONS, rng) },
  ];

  const rows: Row[] = [];
  for (const w of workloads) {
    const lengths = w.table.snapshot().lengths.length;
    const summary = await suite(
      `route lookup: ${w.name} (${w.table.size} routes, ${lengths} distinct lengths; ${LOOKUPS_PER_OP} lookups per op)`,
      configure({ cases: { maxTime: MAX_TIME_S, minSamples: 10 } }),
      ...cases(w),
      cycle(),
      complete(),
    );
    for (const r of summary.results) rows.push({ name: r.name, opsPerSec: r.ops });
  }

  console.log(`\nPer lookup (ops/s x ${LOOKUPS_PER_OP}); LRUCache max ${LRU_MAX}; node ${process.version}`);
  console.log(`${'case'.padEnd(60)} ${'lookups/s'.padStart(14)} ${'ns/lookup'.padStart(10)}`);
  for (const row of rows) {
    const perSec = row.opsPerSec * LOOKUPS_PER_OP;
    console.log(`${row.name.padEnd(60)} ${Math.round(perSec).toLocaleString('en-US').padStart(14)} ${(1e9 / perSec).toFixed(1).padStart(10)}`);
  }
  console.log(`(checksum ${sink})`);
}

run().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
