/**
 * Test-local packet arithmetic shared by the offload tests (unit and
 * property): big-endian fields, RFC 1071 sums as plain integers, TCP flags,
 * and the virtio-net header. Written from the RFCs and virtio's layout, never
 * from src/ or native/, so that the tests check the code against them.
 */

export const u16 = (b: Uint8Array, o: number): number => (b[o] as number) * 256 + (b[o + 1] as number);
export const u32 = (b: Uint8Array, o: number): number => u16(b, o) * 65536 + u16(b, o + 2);
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = Math.floor(v / 256) % 256;
  b[o + 1] = v % 256;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  put16(b, o, Math.floor(v / 65536) % 65536);
  put16(b, o + 2, v % 65536);
}

/** The words of bytes[start, end) as big-endian 16-bit integers (odd tail padded with 0), summed as a plain integer. */
export function wordSum(bytes: Uint8Array, start: number, end: number): number {
  let total = 0;
  for (let i = start; i < end; i += 2) total += (bytes[i] as number) * 256 + (i + 1 < end ? (bytes[i + 1] as number) : 0);
  return total;
}

/**
 * The one's complement value of a plain sum: arithmetic modulo 0xffff where
 * a non-zero multiple of 0xffff is "negative zero" 0xffff; only 0 stays 0.
 */
export function ones(total: number): number {
  if (total === 0) return 0;
  const r = total % 0xffff;
  return r === 0 ? 0xffff : r;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** virtio_net_hdr (without num_buffers): little-endian fields. */
export const VNET_LEN = 10;
export const NEEDS_CSUM = 1;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_UDP = 3;
export const GSO_TCPV6 = 4;
export const GSO_UDP_L4 = 5;
export const GSO_ECN = 0x80;

export interface Vnet {
  readonly flags: number;
  readonly gsoType: number;
  readonly hdrLen: number;
  readonly gsoSize: number;
  readonly csumStart: number;
  readonly csumOffset: number;
}

export function encodeVnet(v: Vnet): Uint8Array {
  const b = new Uint8Array(VNET_LEN);
  const le16 = (o: number, x: number): void => {
    b[o] = x % 256;
    b[o + 1] = Math.floor(x / 256) % 256;
  };
  b[0] = v.flags;
  b[1] = v.gsoType;
  le16(2, v.hdrLen);
  le16(4, v.gsoSize);
  le16(6, v.csumStart);
  le16(8, v.csumOffset);
  return b;
}

export function decodeVnet(b: Uint8Array): Vnet {
  const le16 = (o: number): number => (b[o] as number) + (b[o + 1] as number) * 256;
  return { flags: b[0] as number, gsoType: b[1] as number, hdrLen: le16(2), gsoSize: le16(4), csumStart: le16(6), csumOffset: le16(8) };
}
