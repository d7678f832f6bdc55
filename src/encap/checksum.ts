/**
 * The Internet checksum (RFC 1071) and the incremental TTL update (RFC 1624).
 *
 * All functions read (and, where named so, write) the caller's buffer in place
 * and keep no reference to it. The caller guarantees that the byte ranges
 * named by offset and length lie inside the buffer; nothing is bounds-checked
 * here (a byte read past the end yields `undefined`, which would give a wrong
 * sum, not an exception).
 */

/**
 * One's complement sum of `len` bytes at `off` as big-endian 16-bit words (an
 * odd trailing byte is padded with a zero byte), plus `initial` (a previous
 * partial sum, e.g. of a pseudo-header), folded to 16 bits.
 *
 * The result is 0 only when every word and `initial` are 0; a sum whose value
 * is "zero" otherwise comes out as 0xffff.
 */
export function onesComplementSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  let i = off;
  for (; i < end; i += 2) {
    sum += (buf[i] << 8) | buf[i + 1];
  }
  if ((len & 1) !== 0) sum += buf[i] << 8;
  // Each word is < 2^16, so `sum` stays an exact integer for any realistic length;
  // two folds bring any value below 2^32 into 16 bits, loop for larger `initial`.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of a byte range: the complement of its one's complement sum. */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesComplementSum(buf, off, len, initial) & 0xffff;
}

/** True when the IPv4 header of `headerLen` bytes at `off` (checksum field included) sums to 0xffff. */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number, headerLen: number): boolean {
  return onesComplementSum(buf, off, headerLen) === 0xffff;
}

/** Computes the checksum of the IPv4 header at `off` and stores it in bytes 10-11. */
export function writeIpv4HeaderChecksum(buf: Uint8Array, off: number, headerLen: number): void {
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  const c = internetChecksum(buf, off, headerLen);
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c & 0xff;
}

/**
 * Decrements the TTL of the IPv4 header at `off` in place and updates its
 * checksum incrementally (RFC 1624 eq. 3: HC' = ~(~HC + ~m + m'), m being
 * the 16-bit word TTL|protocol). Returns the new TTL.
 *
 * The caller guarantees TTL >= 1 (check first, and drop on 0 or 1 as the
 * forwarding rule requires). When the header's checksum was valid, the result
 * is exactly what a full recomputation gives (never the 0xffff form of zero);
 * an invalid checksum stays invalid by the same amount.
 */
export function decrementTtl(buf: Uint8Array, off: number): number {
  const ttl = buf[off + 8] - 1;
  const proto = buf[off + 9];
  const hc = (buf[off + 10] << 8) | buf[off + 11];
  const mOld = ((ttl + 1) << 8) | proto;
  const mNew = (ttl << 8) | proto;
  let sum = (~hc & 0xffff) + (~mOld & 0xffff) + mNew; // < 3 * 2^16
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const hcNew = ~sum & 0xffff;
  buf[off + 8] = ttl;
  buf[off + 10] = hcNew >>> 8;
  buf[off + 11] = hcNew & 0xff;
  return ttl;
}
