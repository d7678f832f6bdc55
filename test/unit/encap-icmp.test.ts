import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ICMP_NET_UNREACH,
  ICMP_TTL_EXCEEDED,
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_ERROR_MAX_BYTES,
  ICMP_TIME_EXCEEDED,
  Ipv4Drop,
  buildIcmpEcho,
  buildIcmpError,
  icmpChecksumOk,
  mayQuoteInIcmpError,
  parseIpv4Header,
  validateIpv4,
} from '../../src/encap';
import { parseIpv4 } from '../../src/net/ipv4';

// ---- test-local helpers (independent of src/encap) ----

function addr(text: string): number {
  const a = parseIpv4(text);
  if (a === undefined) throw new Error(`bad test address ${text}`);
  return a;
}

/** Reference one's complement sum: words as integers, reduced modulo 0xffff (0xffff for a non-zero multiple). */
function refSum(bytes: Uint8Array, start: number, end: number): number {
  let total = 0;
  for (let i = start; i < end; i += 2) total += bytes[i] * 256 + (i + 1 < end ? bytes[i + 1] : 0);
  if (total === 0) return 0;
  const r = total % 0xffff;
  return r === 0 ? 0xffff : r;
}

/** Checksum of bytes[start, end) with the 16-bit checksum field at `field` taken as zero. */
function refChecksumExcluding(bytes: Uint8Array, start: number, end: number, field: number): number {
  const copy = bytes.slice(start, end);
  copy[field - start] = 0;
  copy[field - start + 1] = 0;
  return 0xffff - refSum(copy, 0, copy.length);
}

function u16(buf: Uint8Array, at: number): number {
  return buf[at] * 256 + buf[at + 1];
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at] * 256 + buf[at + 1]) * 256 + buf[at + 2]) * 256 + buf[at + 3];
}

interface OrigSpec {
  ihl?: number;
  payload?: number;
  protocol?: number;
  /** ICMP type, written as the first payload byte when protocol is 1. */
  icmpType?: number;
  flagsFragment?: number;
  src?: string;
  dst?: string;
  /** Override the packet length handed to the function (default: the whole packet). */
  len?: number;
}

/** An original packet built byte by byte, payload bytes 0x80 + i so quotes are recognisable. */
function orig(spec: OrigSpec = {}): { buf: Uint8Array; off: number; len: number } {
  const ihl = spec.ihl ?? 5;
  const headerLen = ihl * 4;
  const total = headerLen + (spec.payload ?? 32);
  const off = 3;
  const buf = new Uint8Array(off + total + 8).fill(0x11);
  const ff = spec.flagsFragment ?? 0;
  const src = addr(spec.src ?? '10.1.15.2');
  const dst = addr(spec.dst ?? '10.1.20.3');
  buf[off] = 0x40 | ihl;
  buf[off + 1] = 0;
  buf[off + 2] = total >> 8;
  buf[off + 3] = total & 0xff;
  buf[off + 4] = 0xab;
  buf[off + 5] = 0xcd;
  buf[off + 6] = ff >> 8;
  buf[off + 7] = ff & 0xff;
  buf[off + 8] = 1;
  buf[off + 9] = spec.protocol ?? 17;
  for (let i = 0; i < 4; i++) {
    buf[off + 12 + i] = (src >>> (24 - 8 * i)) & 0xff;
    buf[off + 16 + i] = (dst >>> (24 - 8 * i)) & 0xff;
  }
  for (let i = 20; i < headerLen; i++) buf[off + i] = 0x01; // NOP options
  for (let i = headerLen; i < total; i++) buf[off + i] = (0x80 + i - headerLen) & 0xff;
  if (spec.icmpType !== undefined && total > headerLen) buf[off + headerLen] = spec.icmpType;
  const c = refChecksumExcluding(buf, off, off + headerLen, off + 10);
  buf[off + 10] = c >> 8;
  buf[off + 11] = c & 0xff;
  return { buf, off, len: spec.len ?? total };
}

/** Builds an ICMP error about `o` and checks every field, the checksums and the quote. */
function checkIcmpError(
  o: { buf: Uint8Array; off: number; len: number },
  type: number,
  code: number,
  src: number,
  expectedQuote: number,
): void {
  const outOff = 5;
  const out = new Uint8Array(outOff + ICMP_ERROR_MAX_BYTES + 16).fill(0xa5);
  const n = buildIcmpError(out, outOff, type, code, src, o.buf, o.off, o.len);
  const msg = `orig IHL ${o.buf[o.off] & 15} len ${o.len}`;
  assert.equal(n, 20 + 8 + expectedQuote, `${msg}: bytes written`);
  // Bytes outside [outOff, outOff + n) untouched.
  for (let i = 0; i < outOff; i++) assert.equal(out[i], 0xa5, `${msg}: byte ${i} before the packet`);
  for (let i = outOff + n; i < out.length; i++) assert.equal(out[i], 0xa5, `${msg}: byte ${i} after the packet`);

  // Outer IP header, field by field from the raw bytes.
  const p = outOff;
  assert.equal(out[p], 0x45, `${msg}: version/IHL`);
  assert.equal(out[p + 1], 0xc0, `${msg}: TOS`);
  assert.equal(u16(out, p + 2), n, `${msg}: total length`);
  assert.equal(u16(out, p + 4), 0, `${msg}: id`);
  assert.equal(u16(out, p + 6), 0, `${msg}: flags/fragment (DF clear)`);
  assert.equal(out[p + 8], 64, `${msg}: TTL`);
  assert.equal(out[p + 9], 1, `${msg}: protocol`);
  assert.equal(u16(out, p + 10), refChecksumExcluding(out, p, p + 20, p + 10), `${msg}: IP checksum`);
  assert.equal(u32(out, p + 12), src, `${msg}: source`);
  assert.equal(u32(out, p + 16), u32(o.buf, o.off + 12), `${msg}: destination = original source`);
  assert.equal(validateIpv4(out, p, n), Ipv4Drop.Ok, `${msg}: validates`);
  const h = parseIpv4Header(out, p, n);
  assert.ok(h !== undefined);
  assert.equal(h.totalLength, n);

  // ICMP header.
  const icmp = p + 20;
  assert.equal(out[icmp], type, `${msg}: ICMP type`);
  assert.equal(out[icmp + 1], code, `${msg}: ICMP code`);
  assert.equal(u16(out, icmp + 2), refChecksumExcluding(out, icmp, p + n, icmp + 2), `${msg}: ICMP checksum`);
  assert.equal(refSum(out, icmp, p + n), 0xffff, `${msg}: ICMP message verifies`);
  assert.equal(icmpChecksumOk(out, icmp, n - 20), true, `${msg}: icmpChecksumOk`);
  assert.deepEqual([...out.subarray(icmp + 4, icmp + 8)], [0, 0, 0, 0], `${msg}: unused bytes`);

  // The quote: the original's bytes, unchanged.
  assert.deepEqual(
    [...out.subarray(icmp + 8, p + n)],
    [...o.buf.subarray(o.off, o.off + expectedQuote)],
    `${msg}: quoted bytes`,
  );
}

// ---- buildIcmpError ----

test('buildIcmpError: net unreachable about a long UDP packet quotes header + 8 bytes', () => {
  const o = orig({ payload: 1000 });
  checkIcmpError(o, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, addr('10.1.15.0'), 28);
});

test('buildIcmpError: time exceeded (type 11 code 0)', () => {
  const o = orig({ payload: 100, protocol: 6 });
  checkIcmpError(o, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, addr('169.254.1.1'), 28);
});

test('buildIcmpError: the original\'s IP options are quoted in full (IHL 15: 60 + 8 bytes, 96 in all)', () => {
  const o = orig({ ihl: 15, payload: 200 });
  checkIcmpError(o, ICMP_DEST_UNREACH, 0, addr('10.1.15.0'), 68);
  const small = orig({ ihl: 6, payload: 200 });
  checkIcmpError(small, ICMP_DEST_UNREACH, 0, addr('10.1.15.0'), 32);
});

test('buildIcmpError: a short original quotes what there is (0, 3, 7, 8 and 9 bytes of payload)', () => {
  for (const [payload, quote] of [
    [0, 20],
    [3, 23],
    [7, 27],
    [8, 28],
    [9, 28],
  ] as const) {
    checkIcmpError(orig({ payload }), ICMP_DEST_UNREACH, 0, addr('10.1.15.0'), quote);
  }
  checkIcmpError(orig({ ihl: 15, payload: 5 }), ICMP_DEST_UNREACH, 0, addr('10.1.15.0'), 65);
});

test('buildIcmpError: only origLen bytes are quoted even when the buffer holds more', () => {
  const o = orig({ payload: 40, len: 25 });
  checkIcmpError(o, ICMP_DEST_UNREACH, 0, addr('10.1.15.0'), 25);
});

test('buildIcmpError: sources with high bits (unsigned addresses) and an ICMP echo original', () => {
  const o = orig({ protocol: 1, icmpType: ICMP_ECHO_REQUEST, src: '200.1.2.3', payload: 64 });
  checkIcmpError(o, ICMP_DEST_UNREACH, 1, addr('254.0.0.9'), 28);
});

// ---- buildIcmpEcho / icmpChecksumOk ----

function checkEcho(type: number, id: number, seq: number, ttl: number, payload: Uint8Array): void {
  const outOff = 2;
  const out = new Uint8Array(outOff + 28 + payload.length + 4).fill(0x3c);
  const src = addr('10.1.20.3');
  const dst = addr('250.1.15.2');
  const n = buildIcmpEcho(out, outOff, { type, src, dst, id, seq, ttl, payload });
  const msg = `echo type ${type} payload ${payload.length}`;
  assert.equal(n, 28 + payload.length, msg);
  const p = outOff;
  assert.equal(validateIpv4(out, p, n), Ipv4Drop.Ok, msg);
  assert.equal(out[p], 0x45, msg);
  assert.equal(u16(out, p + 2), n, msg);
  assert.equal(out[p + 8], ttl, msg);
  assert.equal(out[p + 9], 1, msg);
  assert.equal(u16(out, p + 10), refChecksumExcluding(out, p, p + 20, p + 10), `${msg}: IP checksum`);
  assert.equal(u32(out, p + 12), src, msg);
  assert.equal(u32(out, p + 16), dst, msg);
  const icmp = p + 20;
  assert.equal(out[icmp], type, msg);
  assert.equal(out[icmp + 1], 0, `${msg}: code`);
  assert.equal(u16(out, icmp + 2), refChecksumExcluding(out, icmp, p + n, icmp + 2), `${msg}: ICMP checksum`);
  assert.equal(icmpChecksumOk(out, icmp, n - 20), true, msg);
  assert.equal(u16(out, icmp + 4), id, `${msg}: id`);
  assert.equal(u16(out, icmp + 6), seq, `${msg}: seq`);
  assert.deepEqual([...out.subarray(icmp + 8, p + n)], [...payload], `${msg}: payload`);
  for (let i = 0; i < outOff; i++) assert.equal(out[i], 0x3c, `${msg}: byte ${i} before`);
  for (let i = p + n; i < out.length; i++) assert.equal(out[i], 0x3c, `${msg}: byte ${i} after`);
}

test('buildIcmpEcho: request and reply with even, odd and empty payloads', () => {
  const payload56 = Uint8Array.from({ length: 56 }, (_, i) => (i * 37 + 5) & 0xff);
  checkEcho(ICMP_ECHO_REQUEST, 0x1234, 1, 64, payload56);
  checkEcho(ICMP_ECHO_REPLY, 0xffff, 0xffff, 255, Uint8Array.from([1, 2, 3, 4, 5, 6, 7]));
  checkEcho(ICMP_ECHO_REQUEST, 0, 0, 1, new Uint8Array(0));
  checkEcho(ICMP_ECHO_REQUEST, 0x8000, 0x00ff, 2, new Uint8Array(1400).fill(0xff));
});

test('icmpChecksumOk: detects a changed byte, including an odd trailing one', () => {
  const out = new Uint8Array(64);
  const n = buildIcmpEcho(out, 0, {
    type: ICMP_ECHO_REQUEST,
    src: addr('10.0.0.1'),
    dst: addr('10.0.0.2'),
    id: 7,
    seq: 9,
    ttl: 64,
    payload: Uint8Array.from([9, 8, 7]),
  });
  assert.equal(icmpChecksumOk(out, 20, n - 20), true);
  out[n - 1] ^= 0x04;
  assert.equal(icmpChecksumOk(out, 20, n - 20), false);
  out[n - 1] ^= 0x04;
  out[24] ^= 0x80; // id
  assert.equal(icmpChecksumOk(out, 20, n - 20), false);
});

// ---- mayQuoteInIcmpError ----

function mayQuote(spec: OrigSpec): boolean {
  const o = orig(spec);
  return mayQuoteInIcmpError(o.buf, o.off, o.len);
}

test('mayQuoteInIcmpError: ordinary UDP and TCP packets between pods may be quoted', () => {
  assert.equal(mayQuote({}), true);
  assert.equal(mayQuote({ protocol: 6 }), true);
  assert.equal(mayQuote({ ihl: 15 }), true);
});

test('mayQuoteInIcmpError: never about an ICMP error (types 3, 4, 5, 11, 12)', () => {
  for (const icmpType of [3, 4, 5, 11, 12]) {
    assert.equal(mayQuote({ protocol: 1, icmpType }), false, `ICMP type ${icmpType}`);
  }
});

test('mayQuoteInIcmpError: ICMP queries (echo request/reply, timestamp, ...) may be quoted', () => {
  for (const icmpType of [0, 8, 9, 10, 13, 14, 17, 18, 6, 255]) {
    assert.equal(mayQuote({ protocol: 1, icmpType }), true, `ICMP type ${icmpType}`);
  }
});

test('mayQuoteInIcmpError: the ICMP type is read after the IP options', () => {
  // The first option byte is set to the other kind of type: reading it instead
  // of the byte after the options would flip both answers.
  const withErrorType = orig({ ihl: 15, protocol: 1, icmpType: 3 });
  withErrorType.buf[withErrorType.off + 20] = 8;
  assert.equal(mayQuoteInIcmpError(withErrorType.buf, withErrorType.off, withErrorType.len), false);
  const withEcho = orig({ ihl: 15, protocol: 1, icmpType: 8 });
  withEcho.buf[withEcho.off + 20] = 3;
  assert.equal(mayQuoteInIcmpError(withEcho.buf, withEcho.off, withEcho.len), true);
});

test('mayQuoteInIcmpError: an ICMP packet without its type byte is not quoted', () => {
  assert.equal(mayQuote({ protocol: 1, payload: 0 }), false);
  assert.equal(mayQuote({ protocol: 1, ihl: 6, payload: 0 }), false);
  // The type byte is present in the buffer but beyond len.
  assert.equal(mayQuote({ protocol: 1, icmpType: 8, payload: 8, len: 20 }), false);
  assert.equal(mayQuote({ protocol: 1, icmpType: 8, payload: 1 }), true);
  // A non-ICMP packet with no payload is fine.
  assert.equal(mayQuote({ protocol: 17, payload: 0 }), true);
});

test('mayQuoteInIcmpError: non-first fragments are not quoted; first fragments are', () => {
  assert.equal(mayQuote({ flagsFragment: 0x0001 }), false);
  assert.equal(mayQuote({ flagsFragment: 0x2000 | 0x00b9 }), false);
  assert.equal(mayQuote({ flagsFragment: 0x1000 }), false);
  assert.equal(mayQuote({ flagsFragment: 0x2000 }), true); // MF, offset 0
  assert.equal(mayQuote({ flagsFragment: 0x4000 }), true); // DF
  // A non-first fragment of an echo request: its "type byte" is just data.
  assert.equal(mayQuote({ protocol: 1, icmpType: 8, flagsFragment: 0x0010 }), false);
});

test('mayQuoteInIcmpError: sources 0/8, 127/8, 224/4, 240/4, 255.255.255.255 are not answered', () => {
  const refused = [
    '0.0.0.0',
    '0.255.255.255',
    '127.0.0.1',
    '127.255.255.254',
    '224.0.0.1',
    '239.255.255.255',
    '240.0.0.1',
    '254.1.2.3',
    '255.255.255.255',
  ];
  const allowed = ['1.0.0.0', '126.255.255.255', '128.0.0.0', '10.1.15.2', '223.255.255.255', '192.168.1.255'];
  for (const src of refused) assert.equal(mayQuote({ src }), false, `source ${src}`);
  for (const src of allowed) assert.equal(mayQuote({ src }), true, `source ${src}`);
});

test('mayQuoteInIcmpError: destinations 224/4 and 255.255.255.255 are not answered', () => {
  const refused = ['224.0.0.5', '239.1.2.3', '239.255.255.255', '255.255.255.255'];
  const allowed = ['223.255.255.255', '240.0.0.0', '255.255.255.254', '10.1.255.255', '0.0.0.0'];
  for (const dst of refused) assert.equal(mayQuote({ dst }), false, `destination ${dst}`);
  for (const dst of allowed) assert.equal(mayQuote({ dst }), true, `destination ${dst}`);
});
