/**
 * Sizes, ports and protocol numbers of weft's udp encapsulation. The wire
 * format is flannel's: the UDP payload is exactly the inner IPv4 packet, no
 * header of its own, so the only overhead is the outer IPv4 + UDP headers.
 */

/** An IPv4 header without options (IHL 5). */
export const IPV4_MIN_HEADER_BYTES = 20;
/** An IPv4 header with the most options (IHL 15). */
export const IPV4_MAX_HEADER_BYTES = 60;
export const UDP_HEADER_BYTES = 8;
/** Outer IPv4 + UDP header of an encapsulated packet: TUN MTU = underlay MTU - this. */
export const ENCAP_OVERHEAD_BYTES = IPV4_MIN_HEADER_BYTES + UDP_HEADER_BYTES; // 28

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** ICMP header: type, code, checksum, 4 bytes (unused / id + sequence). */
export const ICMP_HEADER_BYTES = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
/** Code of ICMP_DEST_UNREACH: network unreachable (what flannel sends for "no route"). */
export const ICMP_NET_UNREACH = 0;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
/** Code of ICMP_TIME_EXCEEDED: time to live exceeded in transit. */
export const ICMP_TTL_EXCEEDED = 0;
export const ICMP_PARAMETER_PROBLEM = 12;

/** Bytes of the original packet's payload quoted after its IP header in an ICMP error (RFC 792). */
export const ICMP_ERROR_QUOTE_BYTES = 8;

/** Room an ICMP error built by buildIcmpError may need: IP + ICMP + a 60-byte header + quote. */
export const ICMP_ERROR_MAX_BYTES =
  IPV4_MIN_HEADER_BYTES + ICMP_HEADER_BYTES + IPV4_MAX_HEADER_BYTES + ICMP_ERROR_QUOTE_BYTES; // 96

/** TTL of packets weft originates (ICMP errors). */
export const DEFAULT_TTL = 64;
/** TOS of ICMP errors weft originates: precedence "internetwork control", as Linux does. */
export const ICMP_ERROR_TOS = 0xc0;
