import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  IPV4_DROP_NAMES,
  Ipv4Drop,
  ipv4Dst,
  ipv4HeaderLength,
  ipv4IsNonFirstFragment,
  ipv4Protocol,
  ipv4Src,
  ipv4TotalLength,
  ipv4Ttl,
  parseIpv4Header,
  validateIpv4,
  writeIpv4Header,
} from '../../src/encap';
import { parseIpv4 } from '../../src/net/ipv4';
import { seededRandom } from '../prng';

// ---- test-local helpers (independent of src/encap) ----

const SEED = Number(process.env['WEFT_TEST_SEED'] ?? 0x5eed0004) >>> 0;


function addr(text: string): number {
  const a = parseIpv4(text);
  if (a === undefined) throw new Error(`bad test address ${text}`);
  return a;
}

/** Reference header checksum: words summed as integers, reduced modulo 0xffff, complemented. */
function refChecksum(bytes: Uint8Array, start: number, end: number): number {
  let total = 0;
  for (let i = start; i < end; i += 2) total += bytes[i] * 256 + (i + 1 < end ? bytes[i + 1] : 0);
  const r = total % 0xffff;
  return 0xffff - (total !== 0 && r === 0 ? 0xffff : r);
}

interface PacketSpec {
  ihl?: number;
  version?: number;
  /** Bytes after the header. */
  payload?: number;
  /** Total length field; default header + payload. */
  totalLength?: number;
  flagsFragment?: number;
  ttl?: number;
  protocol?: number;
  src?: string;
  dst?: string;
  /** Bytes before the packet in the buffer. */
  lead?: number;
  /** Bytes after the packet in the buffer. */
  tail?: number;
}

/** Builds a packet byte by byte with the reference checksum. Returns the buffer, offset and length. */
function packet(spec: PacketSpec = {}): { buf: Uint8Array; off: number; len: number } {
  const ihl = spec.ihl ?? 5;
  const headerLen = ihl * 4;
  const len = headerLen + (spec.payload ?? 12);
  const lead = spec.lead ?? 0;
  const buf = new Uint8Array(lead + len + (spec.tail ?? 0)).fill(0x5a);
  const p = lead;
  const total = spec.totalLength ?? len;
  const ff = spec.flagsFragment ?? 0;
  const src = addr(spec.src ?? '10.1.15.2');
  const dst = addr(spec.dst ?? '10.1.20.3');
  buf[p] = ((spec.version ?? 4) << 4) | ihl;
  buf[p + 1] = 0;
  buf[p + 2] = total >> 8;
  buf[p + 3] = total & 0xff;
  buf[p + 4] = 0x12;
  buf[p + 5] = 0x34;
  buf[p + 6] = ff >> 8;
  buf[p + 7] = ff & 0xff;
  buf[p + 8] = spec.ttl ?? 64;
  buf[p + 9] = spec.protocol ?? 17;
  buf[p + 10] = 0;
  buf[p + 11] = 0;
  for (let i = 0; i < 4; i++) {
    buf[p + 12 + i] = (src >>> (24 - 8 * i)) & 0xff;
    buf[p + 16 + i] = (dst >>> (24 - 8 * i)) & 0xff;
  }
  for (let i = 20; i < headerLen; i++) buf[p + i] = (i * 7 + 1) & 0xff; // option bytes
  for (let i = headerLen; i < len; i++) buf[p + i] = i & 0xff;
  if (headerLen >= 20 && headerLen <= len) {
    const c = refChecksum(buf, p, p + headerLen);
    buf[p + 10] = c >> 8;
    buf[p + 11] = c & 0xff;
  }
  return { buf, off: p, len };
}

// ---- validateIpv4 ----

test('validateIpv4: a valid packet is Ok, also at an offset inside a larger buffer', () => {
  const a = packet();
  assert.equal(validateIpv4(a.buf, a.off, a.len), Ipv4Drop.Ok);
  const b = packet({ lead: 13, tail: 40, payload: 1400 });
  assert.equal(validateIpv4(b.buf, b.off, b.len), Ipv4Drop.Ok);
});

test('validateIpv4: exactly 20 bytes (header only) is Ok', () => {
  const p = packet({ payload: 0 });
  assert.equal(p.len, 20);
  assert.equal(validateIpv4(p.buf, p.off, 20), Ipv4Drop.Ok);
});

test('validateIpv4: fewer than 20 bytes is TooShort', () => {
  const p = packet({ payload: 0 });
  for (const len of [0, 1, 19]) assert.equal(validateIpv4(p.buf, p.off, len), Ipv4Drop.TooShort, `len ${len}`);
});

test('validateIpv4: TooShort is reported before other faults', () => {
  const p = packet({ version: 6, payload: 0 });
  assert.equal(validateIpv4(p.buf, p.off, 19), Ipv4Drop.TooShort);
});

test('validateIpv4: version other than 4 is Version', () => {
  for (const version of [0, 6, 5, 15]) {
    const p = packet({ version });
    assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.Version, `version ${version}`);
  }
});

test('validateIpv4: Version is reported before a bad IHL', () => {
  const p = packet({ version: 6 });
  p.buf[p.off] = 0x60; // IHL 0 as well
  assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.Version);
});

test('validateIpv4: IHL below 5 is HeaderLength', () => {
  for (const ihl of [0, 1, 4]) {
    const p = packet();
    p.buf[p.off] = 0x40 | ihl;
    assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.HeaderLength, `ihl ${ihl}`);
  }
});

test('validateIpv4: IHL*4 beyond the packet is HeaderLength', () => {
  const p = packet({ payload: 0 }); // 20 bytes
  p.buf[p.off] = 0x46; // claims 24
  assert.equal(validateIpv4(p.buf, p.off, 20), Ipv4Drop.HeaderLength);
  const q = packet({ ihl: 15, payload: 0 }); // 60 bytes, valid
  assert.equal(validateIpv4(q.buf, q.off, 60), Ipv4Drop.Ok);
  // Cut one byte short (total length field patched to match, so only IHL is wrong).
  q.buf[q.off + 3] = 59;
  assert.equal(validateIpv4(q.buf, q.off, 59), Ipv4Drop.HeaderLength);
});

test('validateIpv4: IHL 15 with 40 bytes of options is Ok', () => {
  const p = packet({ ihl: 15, payload: 100 });
  assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.Ok);
});

test('validateIpv4: total length field off by one either way is TotalLength', () => {
  for (const delta of [-1, 1]) {
    const p = packet({ totalLength: 20 + 12 + delta, payload: 12, tail: 4 });
    assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.TotalLength, `delta ${delta}`);
  }
  // And the other way round: the field is right but the caller's length is not.
  const p = packet({ payload: 12, tail: 4 });
  assert.equal(validateIpv4(p.buf, p.off, p.len + 1), Ipv4Drop.TotalLength);
  assert.equal(validateIpv4(p.buf, p.off, p.len - 1), Ipv4Drop.TotalLength);
  // Total length 0 (as in TSO super-packets) is not accepted here either.
  const z = packet({ totalLength: 0 });
  assert.equal(validateIpv4(z.buf, z.off, z.len), Ipv4Drop.TotalLength);
});

test('validateIpv4: TotalLength is reported before a bad checksum', () => {
  const p = packet({ totalLength: 40, payload: 12 });
  p.buf[p.off + 10] ^= 0xff;
  assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.TotalLength);
});

test('validateIpv4: a bad header checksum is Checksum; options are covered, payload is not', () => {
  const p = packet();
  p.buf[p.off + 11] ^= 0x01;
  assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.Checksum);

  const q = packet();
  q.buf[q.off + 8] -= 1; // TTL changed without a checksum update
  assert.equal(validateIpv4(q.buf, q.off, q.len), Ipv4Drop.Checksum);

  const o = packet({ ihl: 15 });
  o.buf[o.off + 59] ^= 0x80; // last option byte
  assert.equal(validateIpv4(o.buf, o.off, o.len), Ipv4Drop.Checksum);

  const d = packet({ ihl: 6, payload: 10 });
  d.buf[d.off + 24] ^= 0xff; // first payload byte
  assert.equal(validateIpv4(d.buf, d.off, d.len), Ipv4Drop.Ok);
});

test('Ipv4Drop codes are distinct, frozen, and named for metrics', () => {
  assert.deepEqual(
    { ...Ipv4Drop },
    { Ok: 0, TooShort: 1, Version: 2, HeaderLength: 3, TotalLength: 4, Checksum: 5 },
  );
  assert.equal(Object.isFrozen(Ipv4Drop), true);
  assert.equal(Object.isFrozen(IPV4_DROP_NAMES), true);
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.Ok], 'ok');
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.TooShort], 'too_short');
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.Version], 'bad_version');
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.HeaderLength], 'bad_header_length');
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.TotalLength], 'bad_total_length');
  assert.equal(IPV4_DROP_NAMES[Ipv4Drop.Checksum], 'bad_checksum');
});

// ---- accessors ----

test('accessors read each field, addresses as unsigned numbers', () => {
  const p = packet({
    ihl: 7,
    payload: 33,
    ttl: 200,
    protocol: 6,
    src: '255.254.1.2',
    dst: '192.168.0.199',
    lead: 3,
  });
  assert.equal(ipv4HeaderLength(p.buf, p.off), 28);
  assert.equal(ipv4TotalLength(p.buf, p.off), 61);
  assert.equal(ipv4Ttl(p.buf, p.off), 200);
  assert.equal(ipv4Protocol(p.buf, p.off), 6);
  assert.equal(ipv4Src(p.buf, p.off), 0xfffe0102);
  assert.equal(ipv4Src(p.buf, p.off), addr('255.254.1.2'));
  assert.equal(ipv4Dst(p.buf, p.off), 0xc0a800c7);
  const b = packet({ src: '255.255.255.255', dst: '0.0.0.0' });
  assert.equal(ipv4Src(b.buf, b.off), 4294967295);
  assert.equal(ipv4Dst(b.buf, b.off), 0);
});

test('ipv4IsNonFirstFragment: only a non-zero fragment offset counts', () => {
  const cases: Array<[number, boolean]> = [
    [0x0000, false],
    [0x4000, false], // DF
    [0x2000, false], // MF, first fragment
    [0xe000, false], // all flag bits, offset 0
    [0x0001, true], // offset 8 bytes
    [0x2001, true], // MF + offset
    [0x0100, true], // offset bit in the high byte
    [0x1000, true], // top offset bit
    [0x1fff, true],
  ];
  for (const [ff, expected] of cases) {
    const p = packet({ flagsFragment: ff });
    assert.equal(ipv4IsNonFirstFragment(p.buf, p.off), expected, `flags/fragment 0x${ff.toString(16)}`);
  }
});

// ---- parseIpv4Header ----

test('parseIpv4Header: a known header (192.168.0.1 -> 192.168.0.199, UDP, DF, checksum 0xb861)', () => {
  const bytes = Uint8Array.from([
    0xee, 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
    0xa8, 0x00, 0xc7,
  ]);
  const h = parseIpv4Header(bytes, 1, 20);
  assert.deepEqual(h, {
    version: 4,
    ihl: 5,
    headerLength: 20,
    tos: 0,
    totalLength: 0x73,
    id: 0,
    flags: 2,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    ttl: 64,
    protocol: 17,
    checksum: 0xb861,
    src: addr('192.168.0.1'),
    dst: addr('192.168.0.199'),
    options: new Uint8Array(0),
  });
});

test('parseIpv4Header: options, MF and fragment offset, and too-short input', () => {
  const p = packet({ ihl: 6, flagsFragment: 0x2000 | 0x0123, payload: 4 });
  p.buf.set([1, 2, 3, 4], p.off + 20);
  const h = parseIpv4Header(p.buf, p.off, p.len);
  assert.ok(h !== undefined);
  assert.equal(h.headerLength, 24);
  assert.equal(h.flags, 1);
  assert.equal(h.moreFragments, true);
  assert.equal(h.dontFragment, false);
  assert.equal(h.fragmentOffset, 0x123);
  assert.deepEqual(h.options, Uint8Array.from([1, 2, 3, 4]));
  // The options are a copy, not a view into the packet.
  p.buf[p.off + 20] = 99;
  assert.equal(h.options[0], 1);
  assert.equal(parseIpv4Header(p.buf, p.off, 19), undefined);
});

// ---- writeIpv4Header ----

test('writeIpv4Header: writes the exact bytes of a known header', () => {
  const buf = new Uint8Array(24).fill(0xaa);
  const n = writeIpv4Header(buf, 2, {
    tos: 0,
    totalLength: 0x73,
    id: 0,
    flagsFragment: 0x4000,
    ttl: 64,
    protocol: 17,
    src: addr('192.168.0.1'),
    dst: addr('192.168.0.199'),
  });
  assert.equal(n, 20);
  assert.deepEqual(
    buf,
    Uint8Array.from([
      0xaa, 0xaa, 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
      0xc0, 0xa8, 0x00, 0xc7, 0xaa, 0xaa,
    ]),
  );
});

test('writeIpv4Header: omitted tos, id and flags are 0', () => {
  const buf = new Uint8Array(20).fill(0xff);
  writeIpv4Header(buf, 0, { totalLength: 20, ttl: 1, protocol: 1, src: 1, dst: 2 });
  assert.equal(buf[1], 0);
  assert.deepEqual([buf[4], buf[5], buf[6], buf[7]], [0, 0, 0, 0]);
  assert.equal(validateIpv4(buf, 0, 20), Ipv4Drop.Ok);
});

test(`writeIpv4Header / parseIpv4Header round trip on random fields (seed ${SEED})`, () => {
  const rand = seededRandom(SEED);
  for (let iter = 0; iter < 1000; iter++) {
    const fields = {
      tos: rand() & 0xff,
      totalLength: 20 + (rand() % 65516),
      id: rand() & 0xffff,
      flagsFragment: rand() & 0xffff,
      ttl: rand() & 0xff,
      protocol: rand() & 0xff,
      src: rand(),
      dst: rand(),
    };
    const off = rand() % 5;
    const buf = new Uint8Array(off + 20);
    for (let i = 0; i < buf.length; i++) buf[i] = rand() & 0xff; // stale checksum field etc.
    const lead = buf.slice(0, off);
    writeIpv4Header(buf, off, fields);
    const msg = `seed ${SEED} iteration ${iter}`;
    const h = parseIpv4Header(buf, off, 20);
    assert.ok(h !== undefined, msg);
    assert.equal(h.version, 4, msg);
    assert.equal(h.ihl, 5, msg);
    assert.equal(h.tos, fields.tos, msg);
    assert.equal(h.totalLength, fields.totalLength, msg);
    assert.equal(h.id, fields.id, msg);
    assert.equal((h.flags << 13) | h.fragmentOffset, fields.flagsFragment, msg);
    assert.equal(h.ttl, fields.ttl, msg);
    assert.equal(h.protocol, fields.protocol, msg);
    assert.equal(h.src, fields.src, msg);
    assert.equal(h.dst, fields.dst, msg);
    const zeroed = buf.slice(off, off + 20);
    zeroed[10] = 0;
    zeroed[11] = 0;
    assert.equal(h.checksum, refChecksum(zeroed, 0, 20), msg);
    for (let i = 0; i < off; i++) assert.equal(buf[i], lead[i], `${msg}: byte ${i} before the header changed`);
  }
});
