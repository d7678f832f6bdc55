/**
 * What the macro benchmark compares: the kernel baselines (`direct`, `vxlan`)
 * and any number of weft configurations, each a name and the extra flags given
 * to both `weft agent`s verbatim.
 *
 * WEFT_VARIANTS is the one list to edit when the agent grows a flag worth
 * comparing. `default: true` puts a variant in a run without --modes.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../../src/errors';

export type ModeKind = 'direct' | 'vxlan' | 'weft';

/** net-conf.json's Backend.Type of a weft mode. */
export type WeftBackend = 'udp' | 'vxlan' | 'host-gw';

export interface ModeSpec {
  /** Row label in the table, chart and JSON. */
  readonly name: string;
  readonly kind: ModeKind;
  /** weft modes: the backend the agents run ('udp' otherwise). */
  readonly backend: WeftBackend;
  /** Extra `weft agent` flags (weft modes only), passed through verbatim. */
  readonly agentFlags: readonly string[];
  /** MTU of the pods' interfaces (what the CNI plugin would take from FLANNEL_MTU). */
  readonly podMtu: number;
  /** The hand-built mode this one should match (weft's kernel backends: vxlan, direct). */
  readonly counterpart?: ModeKind | undefined;
}

export interface WeftVariant {
  readonly name: string;
  readonly flags: readonly string[];
  readonly default: boolean;
  readonly about: string;
  /** Backend.Type (default udp). */
  readonly backend?: WeftBackend;
}

/** Pod MTU for each kind, on the benchmark's 1500-byte underlay. */
export const POD_MTU: Readonly<Record<ModeKind, number>> = Object.freeze({
  direct: 1500, // host-gw: no encapsulation
  vxlan: 1450, // flannel's vxlan: underlay - 50
  weft: 1472, // flannel's udp: underlay - 28 (outer IPv4 + UDP)
});

/** What each weft backend carries traffic like: its pod MTU and the hand-built mode it should match. */
export const BACKEND_SHAPE: Readonly<Record<WeftBackend, { readonly podMtu: number; readonly counterpart?: ModeKind }>> = Object.freeze({
  udp: { podMtu: POD_MTU.weft },
  vxlan: { podMtu: POD_MTU.vxlan, counterpart: 'vxlan' },
  'host-gw': { podMtu: POD_MTU.direct, counterpart: 'direct' },
});

/** The agent's offload switches (booleans; `--flag=false` turns one off). */
export const OFFLOAD_FLAGS = ['--tun-offload', '--udp-gso', '--udp-gro', '--tun-coalesce', '--tun-coalesce-udp'] as const;

/**
 * weft configurations, in the order they run. Besides OFFLOAD_FLAGS the
 * agent takes `--workers N` and `--batch-size N`. A variant naming a flag the
 * agent does not have is skipped with a note, not failed.
 */
export const WEFT_VARIANTS: readonly WeftVariant[] = [
  // the defaults, then each technique taken away on its own: what each one buys
  { name: 'weft-udp', flags: [], default: true, about: "the agent's defaults: every offload on" },
  {
    name: 'weft-no-coalesce',
    flags: ['--tun-coalesce=false', '--tun-coalesce-udp=false'],
    default: true,
    about: 'defaults without merging segments into one TUN write (one write per datagram)',
  },
  { name: 'weft-no-gro', flags: ['--udp-gro=false'], default: true, about: 'defaults without UDP_GRO (one datagram per received message)' },
  { name: 'weft-no-gso', flags: ['--udp-gso=false'], default: true, about: 'defaults without UDP_SEGMENT (split segments leave as separate datagrams of one sendmmsg)' },
  {
    name: 'weft-no-offload',
    flags: [...OFFLOAD_FLAGS.map((f) => `${f}=false`)],
    default: true,
    about: 'every offload off: one packet per TUN read/write, batched socket calls only',
  },
  { name: 'weft-2w', flags: ['--workers=2'], default: true, about: 'the defaults with two worker threads (two TUN queues, two sockets)' },
  { name: 'weft-busypoll', flags: ['--busy-poll-us=150'], default: true, about: 'the defaults, polling 150 us before sleeping: latency for CPU' },
  // the kernel backends as weft sets them up: they must match the hand-built vxlan and direct modes, which
  // have no iptables rules, so the forward-accept rules are off here (`weft-vxlan:--iptables-forward-rules=true` adds them)
  {
    name: 'weft-vxlan', backend: 'vxlan', flags: ['--iptables-forward-rules=false'], default: true,
    about: "weft's vxlan backend: the kernel's vxlan, programmed by the agent (no forward rules, like the hand-built vxlan)",
  },
  {
    name: 'weft-host-gw', backend: 'host-gw', flags: ['--iptables-forward-rules=false'], default: true,
    about: "weft's host-gw backend: plain routes, programmed by the agent (no forward rules, like the hand-built direct)",
  },
  {
    name: 'weft-no-srcval',
    flags: ['--source-validation=false'],
    default: false,
    about: 'the defaults without source validation (the per-packet check of the sender against the inner source)',
  },
  {
    name: 'weft-no-peer-counters',
    flags: ['--peer-counters=false'],
    default: false,
    about: 'the defaults without per-peer counters (packets, bytes and drops per peer): what weft status and weft_peer_* cost',
  },
  {
    name: 'weft-gso-runs',
    flags: ['--udp-gso-runs'],
    default: false,
    about: 'the defaults plus runs of equal-size small packets to one peer sent as one UDP_SEGMENT message',
  },
  {
    name: 'weft-no-trust-csum',
    flags: ['--trust-outer-checksum=false'],
    default: false,
    about: 'the defaults, but coalescing re-verifies every inner checksum (and accepts datagrams without an outer checksum)',
  },
  {
    name: 'weft-adaptive-poll',
    flags: ['--adaptive-poll'],
    default: false,
    about: 'the defaults with adaptive polling (a window of 20-200 us that follows the traffic)',
  },
  {
    name: 'weft-udp-bpf',
    flags: ['--fast-path', 'bpf', '--fast-path-static-peers'],
    default: true,
    about: 'the defaults plus the kernel fast path (tc-BPF encap/decap in flannel\'s wire format; the userspace path for the rest)',
  },
  {
    name: 'weft-no-short-reads',
    flags: ['--short-tun-reads=false'],
    default: false,
    about: 'the defaults, but every pass reads the TUN until it is empty (one empty read per wake-up)',
  },
  {
    name: 'weft-flannel-like',
    flags: [...OFFLOAD_FLAGS.map((f) => `${f}=false`), '--batch-size=1'],
    default: false,
    about: "the shape of flannel's C proxy: one packet per system call",
  },
];

export const BASELINES: readonly ModeKind[] = ['direct', 'vxlan'];

export function defaultModeNames(variants: readonly WeftVariant[] = WEFT_VARIANTS): string[] {
  return [...BASELINES, ...variants.filter((v) => v.default).map((v) => v.name)];
}

/**
 * Reads a variants file: a JSON object of name -> flags, e.g.
 * `{"weft-4w": ["--workers=4"], "weft-b64": ["--batch-size=64"]}`. Its
 * variants are added to (or replace, by name) WEFT_VARIANTS, and are the
 * default weft modes when --modes is not given.
 */
export function readVariantsFile(file: string): WeftVariant[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--variants ${file}: cannot read it as JSON (${(err as Error).message}); ` +
      'expected an object of name -> array of agent flags, e.g. {"weft-4w": ["--workers=4"]}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`--variants ${file}: expected an object of name -> array of agent flags, e.g. {"weft-4w": ["--workers=4"]}`);
  }
  const out: WeftVariant[] = [];
  for (const [name, flags] of Object.entries(parsed)) {
    if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string')) {
      throw new UsageError(`--variants ${file}: "${name}" must be an array of strings (agent flags), got ${JSON.stringify(flags)}`);
    }
    checkName(name, `--variants ${file}`);
    out.push({ name, flags: flags as string[], default: true, about: `from ${file}` });
  }
  return out;
}

function checkName(name: string, where: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+=:-]*$/.test(name)) {
    throw new UsageError(`${where}: mode name "${name}" may only hold letters, digits and . _ + = : -`);
  }
}

/**
 * Turns `--modes` items into specs. An item is `direct`, `vxlan`, a variant's
 * name, or `BASE:FLAGS`: the variant BASE (or, when BASE names no variant, a
 * new one with no flags of its own) plus FLAGS, space-separated, e.g.
 * `weft-udp:--workers=2 --batch-size=32`. Such an item's label is the item.
 */
export function resolveModes(items: readonly string[], variants: readonly WeftVariant[]): ModeSpec[] {
  const byName = new Map(variants.map((v) => [v.name, v]));
  const specs: ModeSpec[] = [];
  for (const raw of items) {
    const item = raw.trim();
    if (item === '') continue;
    if (item === 'direct' || item === 'vxlan') {
      specs.push({ name: item, kind: item, backend: 'udp', agentFlags: [], podMtu: POD_MTU[item] });
      continue;
    }
    const colon = item.indexOf(':');
    const base = colon < 0 ? item : item.slice(0, colon);
    const extra = colon < 0 ? [] : item.slice(colon + 1).split(/\s+/).filter((f) => f !== '');
    const variant = byName.get(base);
    if (variant === undefined && colon < 0) {
      throw new UsageError(`--modes: unknown mode "${item}"; use direct, vxlan, ${[...byName.keys()].join(', ')}, ` +
        'or NAME:FLAGS for a weft agent with extra flags (e.g. weft-udp:--workers=2)');
    }
    checkName(base, '--modes');
    for (const f of extra) {
      if (!f.startsWith('-')) throw new UsageError(`--modes: "${f}" in "${item}" is not a flag; write flags as --name=value`);
    }
    const backend = variant?.backend ?? 'udp';
    specs.push({
      name: item, kind: 'weft', backend, agentFlags: [...(variant?.flags ?? []), ...extra],
      podMtu: BACKEND_SHAPE[backend].podMtu, counterpart: BACKEND_SHAPE[backend].counterpart,
    });
  }
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new UsageError(`--modes: "${s.name}" is listed twice`);
    seen.add(s.name);
  }
  if (specs.length === 0) throw new UsageError('--modes: no mode given');
  return specs;
}

/** Long flag names (`--tun-offload`) used by a spec, for checking them against the agent's --help. */
export function flagNames(flags: readonly string[]): string[] {
  return flags.map((f) => f.replace(/=.*$/, '')).filter((f) => f.startsWith('--'));
}
