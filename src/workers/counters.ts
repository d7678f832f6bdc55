/**
 * Data-plane counters. Each worker owns one block (a Float64Array over its own
 * SharedArrayBuffer, so workers never share a cache line); the worker is the
 * only writer, the main thread reads the blocks and sums them. Doubles count
 * exactly up to 2^53, far beyond any run.
 *
 * Per-packet trouble is a counter here, never an exception.
 */

export const enum Counter {
  TunRxPackets,
  TunRxBytes,
  UdpTxPackets,
  UdpTxBytes,
  UdpRxPackets,
  UdpRxBytes,
  TunTxPackets,
  TunTxBytes,

  /** tun -> udp drops */
  DropTunNotIpv4,
  DropTunTruncated,
  DropNoRoute,
  DropTtlExpiredEncap,
  DropUdpSendFailed,
  DropSplitFailed,

  /** udp -> tun drops, one per reason */
  DropTooShort,
  DropBadVersion,
  DropBadHeaderLength,
  DropBadTotalLength,
  DropBadChecksum,
  DropNotLocalSubnet,
  DropTruncated,
  DropTtlExpiredDecap,
  DropTunWriteFailed,
  /** source validation: the outer source is no known host's public IP */
  DropUnknownSender,
  /** source validation: the inner source lies in a subnet the sending host does not own */
  DropSourceNotOwned,
  /** accepted from a known host with an inner source outside the cluster network */
  UdpRxOutsideNetwork,
  /** a TCP super-packet that came whole in one datagram (a peer's kernel fast path), written as one GSO write */
  UdpRxSuperPackets,
  /** such a datagram refused: not a whole IPv4 TCP packet, or its TCP checksum neither partial nor right */
  DropBadSuperPacket,

  IcmpNetUnreachableSent,
  IcmpTimeExceededSent,
  IcmpRateLimited,
  IcmpSendFailed,

  /** user/kernel switches, per direction and call kind */
  SyscallsTunRead,
  SyscallsUdpSend,
  SyscallsUdpRecv,
  SyscallsTunWrite,
  /** batch calls (each is one trip into native code) */
  BatchesTunRead,
  BatchesUdpRecv,
  /** route snapshots applied by this worker */
  RouteUpdates,

  Count,
}

export interface CounterInfo {
  readonly name: string;
  readonly help: string;
  /** Prometheus label set: drops share one metric with a `reason` label. */
  readonly metric: string;
  readonly labels?: Readonly<Record<string, string>>;
}

const drop = (direction: string, reason: string, help: string, name = `drop_${reason}`): CounterInfo => ({
  name,
  metric: 'weft_dropped_packets_total',
  labels: { direction, reason },
  help,
});

/** Description of every counter, indexed by Counter. Names are unique. */
export const COUNTER_INFO: readonly CounterInfo[] = [
  { name: 'tun_rx_packets', metric: 'weft_tun_rx_packets_total', help: 'Packets read from the TUN device (a TSO super-packet counts once)' },
  { name: 'tun_rx_bytes', metric: 'weft_tun_rx_bytes_total', help: 'Bytes read from the TUN device' },
  { name: 'udp_tx_packets', metric: 'weft_udp_tx_packets_total', help: 'Datagrams sent to peers' },
  { name: 'udp_tx_bytes', metric: 'weft_udp_tx_bytes_total', help: 'Payload bytes sent to peers' },
  { name: 'udp_rx_packets', metric: 'weft_udp_rx_packets_total', help: 'Datagrams received from peers' },
  { name: 'udp_rx_bytes', metric: 'weft_udp_rx_bytes_total', help: 'Payload bytes received from peers' },
  { name: 'tun_tx_packets', metric: 'weft_tun_tx_packets_total', help: 'Packets written to the TUN device (each coalesced segment counts)' },
  { name: 'tun_tx_bytes', metric: 'weft_tun_tx_bytes_total', help: 'Bytes written to the TUN device (coalesced packets count their merged size)' },
  drop('encap', 'not_ipv4', 'Packet from the TUN that is not IPv4'),
  drop('encap', 'tun_truncated', 'Packet from the TUN larger than its read slot (the TUN MTU was raised under weft)'),
  drop('encap', 'no_route', 'No peer owns the destination subnet'),
  drop('encap', 'ttl_expired', 'TTL reached 0 before encapsulation', 'drop_ttl_expired_encap'),
  drop('encap', 'send_failed', 'The kernel refused the datagram'),
  drop('encap', 'split_failed', 'A super-packet from the TUN that could not be split into wire packets'),
  drop('decap', 'too_short', 'Datagram shorter than an IPv4 header'),
  drop('decap', 'bad_version', 'Datagram is not IPv4'),
  drop('decap', 'bad_header_length', 'IPv4 header length out of range'),
  drop('decap', 'bad_total_length', 'IPv4 total length differs from the datagram length'),
  drop('decap', 'bad_checksum', 'IPv4 header checksum is wrong'),
  drop('decap', 'not_local_subnet', "Destination is not in this host's subnet"),
  drop('decap', 'truncated', 'Datagram larger than the receive slot'),
  drop('decap', 'ttl_expired', 'TTL reached 0 before delivery', 'drop_ttl_expired_decap'),
  drop('decap', 'tun_write_failed', 'The kernel refused the packet written to the TUN'),
  drop('decap', 'unknown_sender', 'Source validation: the datagram came from an address that is no lease\'s (or --peer\'s) public IP'),
  drop('decap', 'source_not_owned', 'Source validation: the inner source is in the cluster network but not in a subnet the sending host owns'),
  { name: 'udp_rx_outside_network', metric: 'weft_udp_rx_outside_network_packets_total', help: 'Datagrams accepted from a known host whose inner source is outside the cluster network' },
  { name: 'udp_rx_super_packets', metric: 'weft_udp_rx_super_packets_total', help: 'TCP super-packets that arrived whole in one datagram (a peer\'s kernel fast path sent them) and were written as one GSO write' },
  drop('decap', 'bad_super_packet', 'A datagram larger than the MTU that is not a whole IPv4 TCP packet with a partial or right TCP checksum'),
  { name: 'icmp_net_unreachable_sent', metric: 'weft_icmp_sent_total', labels: { type: 'net_unreachable' }, help: 'ICMP errors generated' },
  { name: 'icmp_time_exceeded_sent', metric: 'weft_icmp_sent_total', labels: { type: 'time_exceeded' }, help: 'ICMP errors generated' },
  { name: 'icmp_rate_limited', metric: 'weft_icmp_rate_limited_total', help: 'ICMP errors not sent because of the rate limit' },
  { name: 'icmp_send_failed', metric: 'weft_icmp_send_failed_total', help: 'ICMP errors the kernel refused to send or write' },
  { name: 'syscalls_tun_read', metric: 'weft_syscalls_total', labels: { call: 'tun_read' }, help: 'System calls made by the data plane' },
  { name: 'syscalls_udp_send', metric: 'weft_syscalls_total', labels: { call: 'udp_send' }, help: 'System calls made by the data plane' },
  { name: 'syscalls_udp_recv', metric: 'weft_syscalls_total', labels: { call: 'udp_recv' }, help: 'System calls made by the data plane' },
  { name: 'syscalls_tun_write', metric: 'weft_syscalls_total', labels: { call: 'tun_write' }, help: 'System calls made by the data plane' },
  { name: 'batches_tun_read', metric: 'weft_batches_total', labels: { side: 'tun' }, help: 'Batch read calls into native code' },
  { name: 'batches_udp_recv', metric: 'weft_batches_total', labels: { side: 'udp' }, help: 'Batch read calls into native code' },
  { name: 'route_updates', metric: 'weft_route_updates_total', help: 'Route snapshots applied by data-plane workers' },
];

export const COUNTER_COUNT: number = Counter.Count;

export function newCounterBlock(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(COUNTER_COUNT * Float64Array.BYTES_PER_ELEMENT));
}

/** Sums several workers' blocks into a name -> value record. */
export function sumCounters(blocks: readonly Float64Array[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < COUNTER_COUNT; i++) {
    let total = 0;
    for (const block of blocks) total += block[i] as number;
    out[(COUNTER_INFO[i] as CounterInfo).name] = total;
  }
  return out;
}
