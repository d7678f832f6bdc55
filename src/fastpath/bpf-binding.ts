/**
 * The fast path's own addon (weft_bpf.node: libbpf, tc attachment, maps) and
 * its BPF object (weft_fastpath.bpf.o), both built by the ordinary install
 * (binding.gyp). Kept apart from the data plane's addon so that the udp path
 * never depends on libbpf: a host without it loses the fast path only.
 */
import * as path from 'node:path';
import { existsSync } from 'node:fs';

export interface BpfBinding {
  /** Opens and loads the object (the verifier runs here); returns a handle. */
  fpOpen(objectPath: string): number;
  /** Decap at the clsact ingress of the underlay, filter `tcHandle` at `priority` (replacing a stale one). */
  fpAttachDecap(handle: number, ifindex: number, tcHandle: number, priority: number): void;
  /** Encap at the clsact egress of the TUN. */
  fpAttachEncap(handle: number, tunIfindex: number, tcHandle: number, priority: number): void;
  /** local IP, subnet, mask, cluster, mask, TUN ifindex, underlay ifindex, port, flags (host order). */
  fpConfigure(handle: number, settings: Uint32Array): void;
  /** Makes the routes map exactly these `count` routes; returns the changes the kernel took. */
  fpSetRoutes(handle: number, nets: Uint32Array, lens: Uint8Array, peers: Uint32Array, ports: Uint16Array, flags: Uint8Array, count: number): number;
  /** Per-CPU counters summed, in fastpath.h's order. */
  fpCounters(handle: number, out: Float64Array): void;
  /** Detaches both programs (a device already gone is fine) and frees the maps. */
  fpClose(handle: number): void;
  /** Removes filter `tcHandle`/`priority` at the clsact ingress of `ifindex`: 1 removed, 0 none there. */
  fpDetachIngress(ifindex: number, tcHandle: number, priority: number): number;
  readonly FP_COUNTERS: number;
}

/** Why the fast path cannot load here: the addon or the object is missing or refused. */
export class FastPathUnavailableError extends Error {
  readonly code = 'WEFT_FAST_PATH_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'FastPathUnavailableError';
  }
}

export interface BpfArtifacts {
  readonly binding: BpfBinding;
  readonly objectPath: string;
}

let cached: BpfArtifacts | undefined;

/** The addon and the object from build/Release (then build/Debug). */
export function loadBpf(): BpfArtifacts {
  if (cached !== undefined) return cached;
  // dist/src/fastpath/bpf-binding.js -> repository root is three levels up
  const root = path.resolve(__dirname, '..', '..', '..');
  const tried: string[] = [];
  for (const dir of ['Release', 'Debug']) {
    const addon = path.join(root, 'build', dir, 'weft_bpf.node');
    const object = path.join(root, 'build', dir, 'weft_fastpath.bpf.o');
    tried.push(addon);
    if (!existsSync(addon) || !existsSync(object)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const binding = require(addon) as BpfBinding;
      cached = { binding, objectPath: object };
      return cached;
    } catch (err) {
      throw new FastPathUnavailableError(`cannot load ${addon}: ${(err as Error).message} (is libbpf1 installed?)`);
    }
  }
  throw new FastPathUnavailableError(`the fast path's addon and BPF object are not built (looked for ${tried.join(', ')}); ` +
    'run the README\'s setup (scripts/install-deps installs clang and libbpf-dev, npm ci builds them)');
}
