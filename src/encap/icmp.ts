/**
 * ICMP: whether a packet may be answered with an ICMP error, and builders for
 * ICMP errors (destination unreachable, time exceeded) and echo messages.
 *
 * Buffers belong to the caller. Builders write a complete IPv4 packet into
 * `out` at `outOff` and return its length; the caller guarantees the room and
 * that the output range does not overlap the input packet. Nothing here keeps
 * a reference to a buffer or allocates (except buildIcmpEcho's options object,
 * which the caller makes; it is a test and tool helper).
 */

import { internetChecksum, onesComplementSum } from './checksum';
import {
  DEFAULT_TTL,
  ICMP_DEST_UNREACH,
  ICMP_ERROR_QUOTE_BYTES,
  ICMP_ERROR_TOS,
  ICMP_HEADER_BYTES,
  ICMP_PARAMETER_PROBLEM,
  ICMP_REDIRECT,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  IPPROTO_ICMP,
  IPV4_MIN_HEADER_BYTES,
} from './constants';
import { ipv4Dst, ipv4HeaderLength, ipv4IsNonFirstFragment, ipv4Src, writeIpv4HeaderRaw } from './ipv4';

/** True for the ICMP types that are error messages (3, 4, 5, 11, 12). */
export function isIcmpErrorType(type: number): boolean {
  return (
    type === ICMP_DEST_UNREACH ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETER_PROBLEM
  );
}

/**
 * May an ICMP error be sent about the packet of `len` bytes at `off`
 * (RFC 1122 3.2.2, RFC 1812 4.3.2.7)? False when it is:
 * - an ICMP error message itself (echo request/reply and other queries are
 *   fine), or an ICMP packet too short to hold its type byte;
 * - a fragment other than the first;
 * - from 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 240.0.0.0/4 (which covers
 *   255.255.255.255): no single host to answer;
 * - to a multicast group (224.0.0.0/4) or 255.255.255.255.
 *
 * The caller guarantees a complete IP header (validateIpv4 passed, or at least
 * IHL*4 <= len); the ICMP type byte is read only when it lies inside `len`.
 */
export function mayQuoteInIcmpError(buf: Uint8Array, off: number, len: number): boolean {
  if (ipv4IsNonFirstFragment(buf, off)) return false;
  const srcTop = buf[off + 12];
  // 0/8, 127/8, and 224/4 + 240/4 together (>= 224).
  if (srcTop === 0 || srcTop === 127 || srcTop >= 224) return false;
  const dst = ipv4Dst(buf, off);
  if (dst >>> 28 === 0xe || dst === 0xffffffff) return false;
  if (buf[off + 9] === IPPROTO_ICMP) {
    const typeAt = ipv4HeaderLength(buf, off);
    if (typeAt >= len) return false;
    if (isIcmpErrorType(buf[off + typeAt])) return false;
  }
  return true;
}

/**
 * Writes an ICMP error about the packet `orig[origOff, origOff + origLen)` into
 * `out` at `outOff`: an IPv4 header (IHL 5, TOS 0xc0, id 0, no flags, TTL 64,
 * protocol ICMP, src `srcAddr`, dst = the original's source), the ICMP header
 * (`type`, `code`, checksum, 4 zero bytes), then the original's IP header
 * (IHL*4 bytes) and up to 8 bytes after it, fewer when the original is
 * shorter. Returns the bytes written (28 + quote, at most 96).
 *
 * The caller guarantees: `out` has ICMP_ERROR_MAX_BYTES (96) bytes of room at
 * `outOff`; the original has a complete IP header (origLen >= IHL*4; if not,
 * only origLen bytes are quoted); the two ranges do not overlap; and
 * mayQuoteInIcmpError allowed the original. `srcAddr` must not be an address
 * of the host receiving the error when it is written into a TUN (Linux drops
 * locally sourced packets arriving there unless accept_local is set).
 */
export function buildIcmpError(
  out: Uint8Array,
  outOff: number,
  type: number,
  code: number,
  srcAddr: number,
  orig: Uint8Array,
  origOff: number,
  origLen: number,
): number {
  let quoteLen = ipv4HeaderLength(orig, origOff) + ICMP_ERROR_QUOTE_BYTES;
  if (quoteLen > origLen) quoteLen = origLen;
  const icmpLen = ICMP_HEADER_BYTES + quoteLen;
  const totalLen = IPV4_MIN_HEADER_BYTES + icmpLen;
  writeIpv4HeaderRaw(
    out,
    outOff,
    ICMP_ERROR_TOS,
    totalLen,
    0,
    0,
    DEFAULT_TTL,
    IPPROTO_ICMP,
    srcAddr,
    ipv4Src(orig, origOff),
  );
  const icmp = outOff + IPV4_MIN_HEADER_BYTES;
  out[icmp] = type;
  out[icmp + 1] = code;
  out[icmp + 2] = 0;
  out[icmp + 3] = 0;
  out[icmp + 4] = 0;
  out[icmp + 5] = 0;
  out[icmp + 6] = 0;
  out[icmp + 7] = 0;
  const quote = icmp + ICMP_HEADER_BYTES;
  for (let i = 0; i < quoteLen; i++) out[quote + i] = orig[origOff + i];
  writeIcmpChecksum(out, icmp, icmpLen);
  return totalLen;
}

/** Fields for buildIcmpEcho. */
export interface IcmpEchoFields {
  /** ICMP_ECHO_REQUEST (8) or ICMP_ECHO_REPLY (0). */
  readonly type: number;
  readonly src: number;
  readonly dst: number;
  /** Echo identifier (16 bits). */
  readonly id: number;
  /** Echo sequence number (16 bits). */
  readonly seq: number;
  readonly ttl: number;
  /** Copied after the 8-byte ICMP header. */
  readonly payload: Uint8Array;
}

/**
 * Writes an IPv4 ICMP echo request or reply (IHL 5, TOS 0, IP id 0, no flags,
 * code 0) with valid checksums into `out` at `outOff`. The caller guarantees
 * 28 + payload.length bytes of room. Returns the bytes written.
 */
export function buildIcmpEcho(out: Uint8Array, outOff: number, fields: IcmpEchoFields): number {
  const payload = fields.payload;
  const icmpLen = ICMP_HEADER_BYTES + payload.length;
  const totalLen = IPV4_MIN_HEADER_BYTES + icmpLen;
  writeIpv4HeaderRaw(out, outOff, 0, totalLen, 0, 0, fields.ttl, IPPROTO_ICMP, fields.src, fields.dst);
  const icmp = outOff + IPV4_MIN_HEADER_BYTES;
  out[icmp] = fields.type;
  out[icmp + 1] = 0;
  out[icmp + 4] = (fields.id >>> 8) & 0xff;
  out[icmp + 5] = fields.id & 0xff;
  out[icmp + 6] = (fields.seq >>> 8) & 0xff;
  out[icmp + 7] = fields.seq & 0xff;
  out.set(payload, icmp + ICMP_HEADER_BYTES);
  writeIcmpChecksum(out, icmp, icmpLen);
  return totalLen;
}

/** True when the ICMP message (header + data, not the IP header) of `icmpLen` bytes at `icmpOff` sums to 0xffff. */
export function icmpChecksumOk(buf: Uint8Array, icmpOff: number, icmpLen: number): boolean {
  return onesComplementSum(buf, icmpOff, icmpLen) === 0xffff;
}

/** Computes the ICMP checksum over the message at `icmpOff` and stores it in bytes 2-3. */
function writeIcmpChecksum(buf: Uint8Array, icmpOff: number, icmpLen: number): void {
  buf[icmpOff + 2] = 0;
  buf[icmpOff + 3] = 0;
  const c = internetChecksum(buf, icmpOff, icmpLen);
  buf[icmpOff + 2] = c >>> 8;
  buf[icmpOff + 3] = c & 0xff;
}
