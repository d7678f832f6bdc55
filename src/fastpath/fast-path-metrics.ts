/**
 * The kernel fast path's per-CPU counters as Prometheus series, read from
 * its map on each scrape (one lookup per counter):
 *
 *   weft_fast_path_packets_total{direction}          encapsulated / decapsulated in the kernel
 *   weft_fast_path_bytes_total{direction}
 *   weft_fast_path_super_packets_total               TCP super-packets among the encapsulated
 *   weft_fast_path_passed_packets_total{direction,reason}  left to the userspace path, and why
 *   weft_fast_path_errors_total                      dropped when a kernel helper failed half-way
 *   weft_fast_path_enabled                           1 when the programs are attached
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { FAST_PATH_COUNTERS, type FastPathCounterName } from './bpf-fast-path';

export interface FastPathSource {
  /** The counters, or undefined when no fast path runs. */
  counters(): Readonly<Record<FastPathCounterName, number>> | undefined;
}

/** The counters of packets left to the userspace path, with their labels. */
const PASSES = FAST_PATH_COUNTERS.flatMap((c) => ('passed' in c ? [{ name: c.name, ...c.passed }] : []));

/**
 * A counter filled from the fast path's figures on each scrape; `fill` adds
 * each series' value. No series while no fast path runs.
 */
function counterFrom(
  registry: Registry, source: FastPathSource, name: string, help: string, labelNames: readonly string[],
  fill: (c: Readonly<Record<FastPathCounterName, number>>, inc: (labels: Record<string, string>, n: number) => void) => void,
): void {
  new Counter({
    name, help, labelNames, registers: [registry],
    collect() {
      const c = source.counters();
      if (c === undefined) return;
      this.reset();
      fill(c, (labels, n) => this.inc(labels, n));
    },
  });
}

export function registerFastPathMetrics(registry: Registry, source: FastPathSource): void {
  new Gauge({
    name: 'weft_fast_path_enabled',
    help: 'Whether the kernel fast path (tc-BPF, --fast-path bpf) is attached: 1 or 0',
    registers: [registry],
    collect() {
      this.set(source.counters() === undefined ? 0 : 1);
    },
  });
  counterFrom(registry, source, 'weft_fast_path_packets_total',
    'Packets the kernel fast path encapsulated (a super-packet counts once) or decapsulated, by direction', ['direction'], (c, inc) => {
      inc({ direction: 'encap' }, c.encap_packets);
      inc({ direction: 'decap' }, c.decap_packets);
    });
  counterFrom(registry, source, 'weft_fast_path_bytes_total',
    'Bytes of inner packets the kernel fast path encapsulated or decapsulated, by direction', ['direction'], (c, inc) => {
      inc({ direction: 'encap' }, c.encap_bytes);
      inc({ direction: 'decap' }, c.decap_bytes);
    });
  counterFrom(registry, source, 'weft_fast_path_super_packets_total',
    'TCP super-packets the kernel fast path encapsulated whole (the kernel segments them if the path needs it)', [],
    (c, inc) => inc({}, c.encap_super_packets));
  counterFrom(registry, source, 'weft_fast_path_passed_packets_total',
    'Packets the kernel fast path left to the userspace path, by direction and reason (the userspace path then counts what it drops)',
    ['direction', 'reason'], (c, inc) => {
      for (const p of PASSES) inc({ direction: p.direction, reason: p.reason }, c[p.name]);
    });
  counterFrom(registry, source, 'weft_fast_path_errors_total',
    'Packets the kernel fast path dropped because a kernel helper failed half-way through changing them', [],
    (c, inc) => inc({}, c.errors));
}
