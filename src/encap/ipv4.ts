/**
 * IPv4 packet headers: validation, field accessors, a parser for tests and
 * tools, and a header writer. (Address arithmetic lives in src/net/ipv4.ts.)
 *
 * Buffers belong to the caller: functions read or write the given range in
 * place and keep no reference. Accessors assume the header lies inside the
 * buffer (validate first); they do no bounds checks. Addresses are unsigned
 * 32-bit numbers in host order, as in src/net/ipv4.ts.
 */

import { ipv4HeaderChecksumOk, writeIpv4HeaderChecksum } from './checksum';
import { IPV4_MIN_HEADER_BYTES } from './constants';

/** Why validateIpv4 rejected a packet; `Ok` (0) when it did not. */
export const Ipv4Drop = Object.freeze({
  Ok: 0,
  TooShort: 1,
  Version: 2,
  HeaderLength: 3,
  TotalLength: 4,
  Checksum: 5,
} as const);
export type Ipv4Drop = (typeof Ipv4Drop)[keyof typeof Ipv4Drop];

/** Metric label for each Ipv4Drop code, indexed by the code. */
export const IPV4_DROP_NAMES: Readonly<Record<Ipv4Drop, string>> = Object.freeze([
  'ok',
  'too_short',
  'bad_version',
  'bad_header_length',
  'bad_total_length',
  'bad_checksum',
] as const);

/**
 * Checks that the `len` bytes at `off` are one well-formed IPv4 packet, in this
 * order: at least 20 bytes; version 4; 5 <= IHL and IHL*4 <= len; total length
 * field == len; header checksum valid. Returns the first failure's Ipv4Drop
 * code, or Ipv4Drop.Ok. Never reads outside [off, off + len).
 */
export function validateIpv4(buf: Uint8Array, off: number, len: number): Ipv4Drop {
  if (len < IPV4_MIN_HEADER_BYTES) return Ipv4Drop.TooShort;
  const b0 = buf[off];
  if (b0 >>> 4 !== 4) return Ipv4Drop.Version;
  const headerLen = (b0 & 0x0f) << 2;
  if (headerLen < IPV4_MIN_HEADER_BYTES || headerLen > len) return Ipv4Drop.HeaderLength;
  if (((buf[off + 2] << 8) | buf[off + 3]) !== len) return Ipv4Drop.TotalLength;
  if (!ipv4HeaderChecksumOk(buf, off, headerLen)) return Ipv4Drop.Checksum;
  return Ipv4Drop.Ok;
}

/** Header length in bytes (IHL * 4). */
export function ipv4HeaderLength(buf: Uint8Array, off: number): number {
  return (buf[off] & 0x0f) << 2;
}

/** The total length field (header + payload bytes). */
export function ipv4TotalLength(buf: Uint8Array, off: number): number {
  return (buf[off + 2] << 8) | buf[off + 3];
}

export function ipv4Ttl(buf: Uint8Array, off: number): number {
  return buf[off + 8];
}

export function ipv4Protocol(buf: Uint8Array, off: number): number {
  return buf[off + 9];
}

/** Source address as an unsigned 32-bit number. */
export function ipv4Src(buf: Uint8Array, off: number): number {
  return ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
}

/** Destination address as an unsigned 32-bit number. */
export function ipv4Dst(buf: Uint8Array, off: number): number {
  return ((buf[off + 16] << 24) | (buf[off + 17] << 16) | (buf[off + 18] << 8) | buf[off + 19]) >>> 0;
}

/** True when the fragment offset is not 0 (the packet carries no transport header). */
export function ipv4IsNonFirstFragment(buf: Uint8Array, off: number): boolean {
  return ((buf[off + 6] & 0x1f) | buf[off + 7]) !== 0;
}

/** Every field of an IPv4 header, as parseIpv4Header returns it. */
export interface Ipv4Header {
  readonly version: number;
  /** IHL field (32-bit words). */
  readonly ihl: number;
  /** IHL * 4. */
  readonly headerLength: number;
  readonly tos: number;
  readonly totalLength: number;
  readonly id: number;
  /** The 3 flag bits (reserved, DF, MF) as a number 0..7. */
  readonly flags: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** In 8-byte units, as on the wire. */
  readonly fragmentOffset: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly checksum: number;
  readonly src: number;
  readonly dst: number;
  /** A copy of the option bytes (headerLength - 20 of them, cut at `len`). */
  readonly options: Uint8Array;
}

/**
 * Reads every header field of the packet at `off` into a new object (tests and
 * tools; not for the hot path). Returns undefined when `len` < 20. Does not
 * validate: a bad version or checksum is reported as found.
 */
export function parseIpv4Header(buf: Uint8Array, off: number, len: number): Ipv4Header | undefined {
  if (len < IPV4_MIN_HEADER_BYTES) return undefined;
  const headerLength = ipv4HeaderLength(buf, off);
  const optionsEnd = Math.min(headerLength, len);
  const flagsFrag = (buf[off + 6] << 8) | buf[off + 7];
  return {
    version: buf[off] >>> 4,
    ihl: buf[off] & 0x0f,
    headerLength,
    tos: buf[off + 1],
    totalLength: ipv4TotalLength(buf, off),
    id: (buf[off + 4] << 8) | buf[off + 5],
    flags: flagsFrag >>> 13,
    dontFragment: (flagsFrag & 0x4000) !== 0,
    moreFragments: (flagsFrag & 0x2000) !== 0,
    fragmentOffset: flagsFrag & 0x1fff,
    ttl: buf[off + 8],
    protocol: buf[off + 9],
    checksum: (buf[off + 10] << 8) | buf[off + 11],
    src: ipv4Src(buf, off),
    dst: ipv4Dst(buf, off),
    options: Uint8Array.prototype.slice.call(
      buf,
      off + IPV4_MIN_HEADER_BYTES,
      off + Math.max(optionsEnd, IPV4_MIN_HEADER_BYTES),
    ),
  };
}

/** Fields for writeIpv4Header. Omitted optional fields are 0. */
export interface Ipv4HeaderFields {
  readonly tos?: number;
  /** Header + payload bytes. */
  readonly totalLength: number;
  readonly id?: number;
  /** The 16-bit flags + fragment offset word, e.g. 0x4000 for DF. */
  readonly flagsFragment?: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly src: number;
  readonly dst: number;
}

/**
 * Writes a 20-byte IPv4 header (version 4, IHL 5, no options) with a valid
 * checksum at `off`. The caller guarantees 20 bytes of room. Returns 20.
 */
export function writeIpv4Header(buf: Uint8Array, off: number, fields: Ipv4HeaderFields): number {
  return writeIpv4HeaderRaw(
    buf,
    off,
    fields.tos ?? 0,
    fields.totalLength,
    fields.id ?? 0,
    fields.flagsFragment ?? 0,
    fields.ttl,
    fields.protocol,
    fields.src,
    fields.dst,
  );
}

/**
 * writeIpv4Header without the fields object, for builders that must not
 * allocate. Same contract; returns 20.
 */
export function writeIpv4HeaderRaw(
  buf: Uint8Array,
  off: number,
  tos: number,
  totalLength: number,
  id: number,
  flagsFragment: number,
  ttl: number,
  protocol: number,
  src: number,
  dst: number,
): number {
  buf[off] = 0x45;
  buf[off + 1] = tos;
  buf[off + 2] = totalLength >>> 8;
  buf[off + 3] = totalLength & 0xff;
  buf[off + 4] = id >>> 8;
  buf[off + 5] = id & 0xff;
  buf[off + 6] = flagsFragment >>> 8;
  buf[off + 7] = flagsFragment & 0xff;
  buf[off + 8] = ttl;
  buf[off + 9] = protocol;
  buf[off + 12] = src >>> 24;
  buf[off + 13] = (src >>> 16) & 0xff;
  buf[off + 14] = (src >>> 8) & 0xff;
  buf[off + 15] = src & 0xff;
  buf[off + 16] = dst >>> 24;
  buf[off + 17] = (dst >>> 16) & 0xff;
  buf[off + 18] = (dst >>> 8) & 0xff;
  buf[off + 19] = dst & 0xff;
  writeIpv4HeaderChecksum(buf, off, IPV4_MIN_HEADER_BYTES);
  return IPV4_MIN_HEADER_BYTES;
}
