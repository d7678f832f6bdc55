/**
 * Per-peer data-plane counters. Each worker owns one block: a Float64Array
 * over its own SharedArrayBuffer, PEER_STRIDE doubles per counter slot (the
 * route snapshot's `routeSlot`, stable for a subnet while it is routed). The
 * worker is the only writer; the main thread reads the blocks on a scrape or
 * a status request and sums them. A block grows by replacement: the main
 * thread sends a larger one with a route snapshot, the worker copies its
 * figures into it and writes only there from then on.
 *
 * What is counted where:
 *   sent      datagrams (and their payload bytes) the kernel took for the
 *             peer that owns the destination subnet: a split super-packet
 *             counts each datagram, as the receiver sees them;
 *   received  datagrams (and bytes) whose outer source is a peer's public
 *             IP, counted under that host's first subnet (lowest address),
 *             before any check: what the sender says it sent arrives here;
 *   dropped   by reason, for the peer a packet was going to (encap) or came
 *             from (decap). Datagrams from unknown senders belong to no peer:
 *             they count only in the totals (counters.ts).
 */

export const enum PeerCounter {
  TxPackets,
  TxBytes,
  RxPackets,
  RxBytes,
  /** encap: TTL reached 0 before encapsulation */
  TxDropTtlExpired,
  /** encap: the kernel refused the datagram (or the send budget ran out) */
  TxDropSendFailed,
  /** decap, in validateIpv4's verdict order (Ipv4Drop 1..5) */
  RxDropTooShort,
  RxDropBadVersion,
  RxDropBadHeaderLength,
  RxDropBadTotalLength,
  RxDropBadChecksum,
  RxDropNotLocalSubnet,
  RxDropTruncated,
  RxDropTtlExpired,
  RxDropSourceNotOwned,
  /** doubles per slot; a power of two keeps a slot's counters together */
  Stride = 16,
}

export const PEER_STRIDE: number = PeerCounter.Stride;

/** A drop counter of the per-peer block, with the labels of the totals' `weft_dropped_packets_total`. */
export interface PeerDropInfo {
  readonly index: number;
  readonly direction: 'encap' | 'decap';
  readonly reason: string;
}

export const PEER_DROPS: readonly PeerDropInfo[] = [
  { index: PeerCounter.TxDropTtlExpired, direction: 'encap', reason: 'ttl_expired' },
  { index: PeerCounter.TxDropSendFailed, direction: 'encap', reason: 'send_failed' },
  { index: PeerCounter.RxDropTooShort, direction: 'decap', reason: 'too_short' },
  { index: PeerCounter.RxDropBadVersion, direction: 'decap', reason: 'bad_version' },
  { index: PeerCounter.RxDropBadHeaderLength, direction: 'decap', reason: 'bad_header_length' },
  { index: PeerCounter.RxDropBadTotalLength, direction: 'decap', reason: 'bad_total_length' },
  { index: PeerCounter.RxDropBadChecksum, direction: 'decap', reason: 'bad_checksum' },
  { index: PeerCounter.RxDropNotLocalSubnet, direction: 'decap', reason: 'not_local_subnet' },
  { index: PeerCounter.RxDropTruncated, direction: 'decap', reason: 'truncated' },
  { index: PeerCounter.RxDropTtlExpired, direction: 'decap', reason: 'ttl_expired' },
  { index: PeerCounter.RxDropSourceNotOwned, direction: 'decap', reason: 'source_not_owned' },
];

/** Slots of a new block: the smallest power of two >= `slots` (and >= 64), so growth is rare. */
export function peerBlockSlots(slots: number): number {
  let n = 64;
  while (n < slots) n *= 2;
  return n;
}

export function newPeerCounterBlock(slots: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(peerBlockSlots(slots) * PEER_STRIDE * Float64Array.BYTES_PER_ELEMENT));
}

/** Slots a block has room for. */
export function peerBlockCapacity(block: Float64Array): number {
  return block.length / PEER_STRIDE;
}

/** One slot's figures summed over every worker's block (slots beyond a block count as zero). */
export function sumPeerSlot(blocks: readonly Float64Array[], slot: number): Float64Array {
  const out = new Float64Array(PEER_STRIDE);
  const base = slot * PEER_STRIDE;
  for (const block of blocks) {
    if (base + PEER_STRIDE > block.length) continue;
    for (let i = 0; i < PEER_STRIDE; i++) out[i] = (out[i] as number) + (block[base + i] as number);
  }
  return out;
}
