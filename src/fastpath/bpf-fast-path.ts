/**
 * The kernel fast path in flannel's udp wire format (native/bpf/fastpath.bpf.c):
 * tc-BPF encapsulates at the TUN's egress and decapsulates at the underlay's
 * ingress what needs no userspace decision; the rest goes on to the workers.
 *
 * Lifecycle, as the udp backend drives it:
 *   open         load the object (the verifier runs) and attach decap to the
 *                underlay: from then on this host can take super-packets, so
 *                its lease may say so
 *   attachEncap  once the TUN exists
 *   configure    addresses, ports, the TUN and underlay, source validation
 *   setRoutes    with every route snapshot the workers get
 *   close        detach both, free the maps (a SIGKILLed agent's decap filter
 *                stays on the underlay: the next start replaces or removes it)
 */
import { readFileSync } from 'node:fs';
import { prefixMask, type Ipv4Prefix } from '../net/ipv4';
import { type BpfBinding, FastPathUnavailableError, loadBpf } from './bpf-binding';

/** tc filter handle and priority of weft's programs (one of each per device). */
export const FAST_PATH_TC_HANDLE = 0x8285;
export const FAST_PATH_TC_PRIORITY = 0x8285;

/** What a weft lease says in BackendData when its host decapsulates in the kernel (flanneld's udp ignores it). */
export const FAST_PATH_LEASE_KEY = 'FastPath';
export const FAST_PATH_BPF = 'bpf';

/**
 * The counters, in native/bpf/fastpath.h's order: metric-ready names; `passed`
 * marks a packet left to the userspace path, with its metric labels.
 */
export const FAST_PATH_COUNTERS = [
  { name: 'encap_packets', help: 'packets encapsulated in the kernel (a super-packet counts once)' },
  { name: 'encap_bytes', help: 'bytes of inner packets encapsulated in the kernel' },
  { name: 'encap_super_packets', help: 'of the encapsulated packets, TCP super-packets' },
  { name: 'decap_packets', help: 'datagrams decapsulated in the kernel' },
  { name: 'decap_bytes', help: 'bytes of inner packets decapsulated in the kernel' },
  { name: 'encap_pass_no_route', passed: { direction: 'encap', reason: 'no_route' }, help: 'left to the userspace path: no route for the destination' },
  { name: 'encap_pass_plain_peer', passed: { direction: 'encap', reason: 'plain_peer' }, help: 'left to the userspace path: the peer runs no fast path' },
  { name: 'encap_pass_ttl', passed: { direction: 'encap', reason: 'ttl' }, help: 'left to the userspace path: TTL too low to cross' },
  { name: 'encap_pass_other', passed: { direction: 'encap', reason: 'other' }, help: 'left to the userspace path: not IPv4, IP options, a source outside the network, a UDP super-packet' },
  { name: 'decap_pass_ttl', passed: { direction: 'decap', reason: 'ttl' }, help: 'left to the userspace path on receive: TTL expired' },
  { name: 'decap_pass_malformed', passed: { direction: 'decap', reason: 'malformed' }, help: 'left to the userspace path on receive: not exactly one packet (bad lengths, or a train of datagrams sent with UDP_SEGMENT over a link that does not segment), IP options or header checksum' },
  { name: 'decap_pass_source', passed: { direction: 'decap', reason: 'source' }, help: 'left to the userspace path on receive: unknown sender or not the owner of the inner source' },
  { name: 'decap_pass_other', passed: { direction: 'decap', reason: 'other' }, help: 'left to the userspace path on receive: not for this subnet, or a source outside the network' },
  { name: 'decap_pass_super', passed: { direction: 'decap', reason: 'super_packet' }, help: 'left to the userspace path on receive: a TCP super-packet (written to the TUN as one GSO write), or a segment of a flow that sent one in the last 2 ms (so that none overtakes it)' },
  { name: 'errors', help: 'packets dropped because a kernel helper failed half-way' },
] as const;

export type FastPathCounterName = (typeof FAST_PATH_COUNTERS)[number]['name'];

export interface FastPathSettings {
  /** The underlay address the UDP socket is bound to: outer source of what encap sends, destination decap takes. */
  readonly localIp: number;
  readonly port: number;
  readonly subnet: Ipv4Prefix;
  readonly cluster: Ipv4Prefix;
  readonly tunIfindex: number;
  readonly underlayIfindex: number;
  readonly validateSources: boolean;
}

export interface FastPathRoute {
  readonly subnet: Ipv4Prefix;
  /** The peer's public IP and UDP port. */
  readonly peer: number;
  readonly port: number;
  /** The peer decapsulates in its kernel: it may get super-packets. */
  readonly fast: boolean;
}

const ROUTE_FAST = 1;
const VALIDATE_SOURCES = 1;

/** A device's index in this network namespace. */
export function ifindexOf(device: string): number {
  let text: string;
  try {
    text = readFileSync(`/sys/class/net/${device}/ifindex`, 'utf8');
  } catch (err) {
    throw new FastPathUnavailableError(`cannot find device ${device}: ${(err as Error).message}`);
  }
  const n = Number(text.trim());
  if (!Number.isInteger(n) || n <= 0) throw new FastPathUnavailableError(`device ${device} has no usable ifindex (${text.trim()})`);
  return n;
}

export class BpfFastPath {
  private closed = false;
  private readonly counterValues: Float64Array;

  private constructor(
    private readonly bpf: BpfBinding,
    private readonly handle: number,
  ) {
    this.counterValues = new Float64Array(bpf.FP_COUNTERS);
  }

  /**
   * Loads the programs and attaches decap at the underlay's ingress,
   * replacing one a killed agent left. Throws FastPathUnavailableError (or
   * the loader's error, which names the call and the verifier's complaint).
   */
  static open(underlayIfindex: number): BpfFastPath {
    const { binding, objectPath } = loadBpf();
    if (binding.FP_COUNTERS !== FAST_PATH_COUNTERS.length) {
      throw new FastPathUnavailableError(`the fast path's addon counts ${binding.FP_COUNTERS} counters, this weft ${FAST_PATH_COUNTERS.length}: rebuild (npm ci)`);
    }
    const handle = binding.fpOpen(objectPath);
    try {
      binding.fpAttachDecap(handle, underlayIfindex, FAST_PATH_TC_HANDLE, FAST_PATH_TC_PRIORITY);
    } catch (err) {
      binding.fpClose(handle);
      throw err;
    }
    return new BpfFastPath(binding, handle);
  }

  /**
   * Removes a decap filter a killed agent left on the underlay (a fast path
   * that is off now must not keep decapsulating). True when one was there.
   * Without the addon there is nothing weft could have attached.
   */
  static removeStale(underlayIfindex: number): boolean {
    let bpf: BpfBinding;
    try {
      bpf = loadBpf().binding;
    } catch {
      return false;
    }
    return bpf.fpDetachIngress(underlayIfindex, FAST_PATH_TC_HANDLE, FAST_PATH_TC_PRIORITY) === 1;
  }

  attachEncap(tunIfindex: number): void {
    this.bpf.fpAttachEncap(this.handle, tunIfindex, FAST_PATH_TC_HANDLE, FAST_PATH_TC_PRIORITY);
  }

  configure(s: FastPathSettings): void {
    this.bpf.fpConfigure(this.handle, Uint32Array.of(
      s.localIp, s.subnet.network, prefixMask(s.subnet.length), s.cluster.network, prefixMask(s.cluster.length),
      s.tunIfindex, s.underlayIfindex, s.port, s.validateSources ? VALIDATE_SOURCES : 0,
    ));
  }

  /** Makes the kernel's route map exactly `routes`; returns the changes it took. */
  setRoutes(routes: readonly FastPathRoute[]): number {
    const n = routes.length;
    const nets = new Uint32Array(n);
    const lens = new Uint8Array(n);
    const peers = new Uint32Array(n);
    const ports = new Uint16Array(n);
    const flags = new Uint8Array(n);
    routes.forEach((r, i) => {
      nets[i] = r.subnet.network;
      lens[i] = r.subnet.length;
      peers[i] = r.peer;
      ports[i] = r.port;
      flags[i] = r.fast ? ROUTE_FAST : 0;
    });
    return this.bpf.fpSetRoutes(this.handle, nets, lens, peers, ports, flags, n);
  }

  /** The counters summed over CPUs, by name. */
  counters(): Record<FastPathCounterName, number> {
    const out = {} as Record<FastPathCounterName, number>;
    if (!this.closed) this.bpf.fpCounters(this.handle, this.counterValues); // after close: the last figures read

    FAST_PATH_COUNTERS.forEach((c, i) => {
      out[c.name] = this.counterValues[i] as number;
    });
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.counters();
    this.closed = true;
    this.bpf.fpClose(this.handle);
  }
}
