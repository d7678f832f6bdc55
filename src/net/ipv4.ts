/**
 * IPv4 addresses as unsigned 32-bit numbers (host order, `>>> 0`) and
 * prefixes as `{ network, length }`. Pure functions, no I/O.
 */

export interface Ipv4Prefix {
  /** Network address, host bits zero, as an unsigned 32-bit number. */
  readonly network: number;
  /** Prefix length, 0..32. */
  readonly length: number;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses "a.b.c.d"; returns undefined when the text is not an IPv4 address. */
export function parseIpv4(text: string): number | undefined {
  const m = DOTTED_QUAD.exec(text);
  if (m === null) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] as string;
    if (part.length > 1 && part.startsWith('0')) return undefined; // no octal look-alikes
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

export function formatIpv4(addr: number): string {
  return `${(addr >>> 24) & 255}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** Netmask for a prefix length, e.g. 24 -> 0xffffff00. */
export function prefixMask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

export interface ParsedCidr {
  /** The address as written (host bits possibly set). */
  readonly address: number;
  readonly prefix: Ipv4Prefix;
}

/** Parses "a.b.c.d/len"; undefined when malformed. Host bits are allowed and reported in `address`. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (address === undefined || !/^\d{1,2}$/.test(lenText)) return undefined;
  const length = Number(lenText);
  if (length > 32) return undefined;
  return { address, prefix: { network: (address & prefixMask(length)) >>> 0, length } };
}

export function formatPrefix(prefix: Ipv4Prefix): string {
  return `${formatIpv4(prefix.network)}/${prefix.length}`;
}

export function prefixContains(prefix: Ipv4Prefix, addr: number): boolean {
  return ((addr & prefixMask(prefix.length)) >>> 0) === prefix.network;
}

/** True when `inner` lies entirely inside `outer`. */
export function prefixCovers(outer: Ipv4Prefix, inner: Ipv4Prefix): boolean {
  return inner.length >= outer.length && prefixContains(outer, inner.network);
}

export function prefixesOverlap(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  return prefixCovers(a, b) || prefixCovers(b, a);
}

/** Number of addresses in a prefix (2^(32-len)), as a plain number. */
export function prefixSize(length: number): number {
  return 2 ** (32 - length);
}

/** Last address of a prefix. */
export function prefixLast(prefix: Ipv4Prefix): number {
  return (prefix.network + prefixSize(prefix.length) - 1) >>> 0;
}

export function samePrefix(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  return a.network === b.network && a.length === b.length;
}
