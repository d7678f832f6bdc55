/**
 * Property-based tests of the lease codec (src/subnet/lease.ts): flannel's
 * etcd value {"PublicIP":..,"PublicIPv6":null,"BackendType":..,"BackendData":..}
 * and the subnet key name "10.244.52.0-24". Attributes built from a model
 * encode to flannel's exact bytes and decode back; values written by other
 * writers (any key order, unknown fields, nulls, spacing) decode to the same
 * model; mutated and garbage values are refused with a LeaseError or decoded
 * into attributes that encode and decode again unchanged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { LeaseError } from '../../src/errors';
import {
  decodeLeaseAttrs,
  encodeLeaseAttrs,
  parseSubnetKeyName,
  subnetKeyName,
  type LeaseAttrs,
} from '../../src/subnet/lease';
import {
  assertMaskedPrefix,
  assertUint32,
  checkProperty,
  garbageTextArb,
  type Json,
  type JsonObject,
  jsonTextArb,
  mutatedJsonArb,
  mutatedTextArb,
  nestedArrayText,
  objectOf,
  parseOutcome,
  prefixArb,
  refFormatIpv4,
  refMask,
  refParseIpv4,
  uint32Arb,
} from '../property';

const WHERE = 'etcd key /coreos.com/network/subnets/10.244.52.0-24';

// ---------------------------------------------------------------------------
// The model

/** JSON as it comes back from a JSON round trip (e.g. -0 becomes 0). */
const viaJson = (v: Json): Json => JSON.parse(JSON.stringify(v)) as Json;

const backendTypeArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', 'udp', 'vxlan', 'host-gw', 'ipip', 'wireguard', 'UDP', ' udp', '\ud800', '"', '\\', '\u0000'),
  fc.string({ unit: 'binary', maxLength: 10 }),
);

/** BackendData as flannel's backends write it, or anything JSON. */
const backendDataArb: fc.Arbitrary<Json> = fc.oneof(
  fc.record({ VNI: fc.integer({ min: 0, max: 0xffffff }), VtepMAC: fc.constantFrom('0a:58:0a:f4:01:01', 'ee:ee:ee:ee:ee:ee') })
    .map((o) => viaJson(o as JsonObject)), // a plain object, as JSON.parse makes
  fc.jsonValue({ maxDepth: 3 }).map((v) => viaJson(v as Json)),
).filter((v) => v !== null);

const leaseAttrsArb: fc.Arbitrary<LeaseAttrs> = fc
  .record({ publicIp: uint32Arb, backendType: backendTypeArb, backendData: fc.option(backendDataArb, { nil: undefined }) })
  .map(({ backendData, ...rest }) => (backendData === undefined ? rest : { ...rest, backendData }));

/** flannel's bytes, written out here field by field. */
function refEncode(a: LeaseAttrs): string {
  const parts = [`"PublicIP":"${refFormatIpv4(a.publicIp)}"`, '"PublicIPv6":null'];
  if (a.backendType !== '') parts.push(`"BackendType":${JSON.stringify(a.backendType)}`);
  if (a.backendData !== undefined) parts.push(`"BackendData":${JSON.stringify(a.backendData)}`);
  return `{${parts.join(',')}}`;
}

/** The same attributes as another writer may store them: any order, unknown fields, explicit nulls, spacing. */
function otherWriterArb(a: LeaseAttrs): fc.Arbitrary<string> {
  const entries: Array<readonly [string, fc.Arbitrary<Json>]> = [
    ['PublicIP', fc.constant(refFormatIpv4(a.publicIp))],
    ['PublicIPv6', fc.constantFrom<Json>(null, 'fc00::1', '2001:db8::7')],
    ['BackendType', a.backendType === '' ? fc.constant(null) : fc.constant(a.backendType)],
    ['BackendData', a.backendData === undefined ? fc.constant(null) : fc.constant(a.backendData as Json)],
    ['BackendV6Data', fc.jsonValue({ maxDepth: 1 }).map((v) => v as Json)],
    ['Expiration', fc.constant('2026-01-01T00:00:00Z')],
  ];
  return fc
    .tuple(
      ...entries.map(([k, v]) => {
        const needed = k === 'PublicIP' || (k === 'BackendType' && a.backendType !== '') || (k === 'BackendData' && a.backendData !== undefined);
        return fc.tuple(fc.constant(k), v, needed ? fc.constant(true) : fc.boolean());
      }),
    )
    .chain((fields) => fc.shuffledSubarray(fields.filter(([, , keep]) => keep), { minLength: fields.filter(([, , keep]) => keep).length }))
    .chain((fields) => jsonTextArb(fc.constant(objectOf(fields.map(([k, v]) => [k, v] as const)))));
}

// ---------------------------------------------------------------------------
// Checks

/** Decodes any text: a LeaseError naming `where`, or attributes that hold the invariants and survive re-encoding. */
function checkAnyValue(text: string): void {
  const what = `decodeLeaseAttrs(${JSON.stringify(text.slice(0, 300))})`;
  const decoded = parseOutcome(() => decodeLeaseAttrs(text, WHERE), LeaseError, what);
  if (!decoded.ok) {
    assert.ok(decoded.error.message.startsWith(`${WHERE}:`), `${what}: the message does not start with where the value came from: ${decoded.error.message}`);
    return;
  }
  const a = decoded.value;
  assertUint32(a.publicIp, `${what}: publicIp`);
  assert.equal(typeof a.backendType, 'string', `${what}: backendType`);
  assert.ok(a.backendData !== null, `${what}: backendData null instead of absent`);
  assert.equal('backendData' in a, a.backendData !== undefined, `${what}: a backendData key holding undefined`);
  assertReencodes(a, what);
}

/** encode -> decode gives the same attributes, and encoding is stable (what LeaseView compares leases by). */
function assertReencodes(a: LeaseAttrs, what: string): void {
  let encoded = '';
  try {
    encoded = encodeLeaseAttrs(a);
  } catch (err) {
    assert.fail(`${what}: decoded, but encodeLeaseAttrs then threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  // compared field by field and by encoding: a deep comparison would itself overflow the stack on deep BackendData
  const again = decodeLeaseAttrs(encoded, WHERE);
  const changed = `${what}: encode -> decode changed the attributes (${encoded.slice(0, 200)})`;
  assert.equal(again.publicIp, a.publicIp, changed);
  assert.equal(again.backendType, a.backendType, changed);
  assert.equal(again.backendData === undefined, a.backendData === undefined, changed);
  assert.equal(encodeLeaseAttrs(again), encoded, `${what}: encoding is not stable`);
}

// ---------------------------------------------------------------------------
// Subnet key names: a reference by splitting

/** "a.b.c.d-len", optionally "&<IPv6 hex and colons>-<1..3 digits>" after it; no host bits, no leading zero in len. */
function refParseKey(name: string): { network: number; length: number } | undefined {
  const amp = name.indexOf('&');
  const v4 = amp < 0 ? name : name.slice(0, amp);
  if (amp >= 0) {
    const v6 = name.slice(amp + 1);
    const dash = v6.lastIndexOf('-');
    if (dash <= 0 || !/^[0-9a-fA-F:]+$/.test(v6.slice(0, dash)) || !/^[0-9]{1,3}$/.test(v6.slice(dash + 1))) return undefined;
  }
  const parts = v4.split('-');
  if (parts.length !== 2) return undefined;
  const network = refParseIpv4(parts[0] as string);
  const lenText = parts[1] as string;
  if (network === undefined || !/^[0-9]{1,2}$/.test(lenText) || String(Number(lenText)) !== lenText) return undefined;
  const length = Number(lenText);
  if (length > 32 || refMask(network, length) !== network) return undefined;
  return { network, length };
}

const keyNameArb: fc.Arbitrary<string> = fc.oneof(
  prefixArb().map((p) => `${refFormatIpv4(p.network)}-${p.length}`),
  prefixArb().map((p) => `${refFormatIpv4(p.network)}-${p.length}&fd00:10:244::-64`),
  mutatedTextArb(prefixArb().map((p) => `${refFormatIpv4(p.network)}-${p.length}`)),
  mutatedTextArb(fc.constant('10.5.31.0-24&fc00::-64')),
  fc.tuple(uint32Arb, fc.integer({ min: 0, max: 40 })).map(([a, l]) => `${refFormatIpv4(a)}-${l}`),
  garbageTextArb,
);

/** Keys for JSON mutations of a lease value: its own fields (other case too) and odd ones. */
const leaseKeyArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('PublicIP', 'publicip', 'PUBLICIP', 'BackendType', 'backendType', 'BackendData', 'PublicIPv6', '__proto__', ''),
  fc.string({ maxLength: 8 }),
);

describe('property: lease values', () => {
  it('attributes built from a model encode to flannel\'s exact bytes and decode back', () => {
    checkProperty(
      fc.property(leaseAttrsArb, (a) => {
        const text = encodeLeaseAttrs(a);
        assert.equal(text, refEncode(a), 'not flannel\'s bytes');
        assert.deepEqual(decodeLeaseAttrs(text, WHERE), a, `decode(encode) of ${text.slice(0, 200)}`);
      }),
      800,
    );
  });

  it('values other writers may store (any order, unknown fields, nulls, spacing) decode to the same attributes', () => {
    checkProperty(
      fc.property(leaseAttrsArb.chain((a) => fc.tuple(fc.constant(a), otherWriterArb(a))), ([a, text]) => {
        assert.deepEqual(decodeLeaseAttrs(text, WHERE), a, `decoding ${text.slice(0, 300)}`);
      }),
      500,
    );
  });

  it('mutated JSON (fields retyped, removed, added, renamed, wrapped): LeaseError, or attributes that re-encode unchanged', () => {
    const docArb = leaseAttrsArb.map((a) => JSON.parse(encodeLeaseAttrs(a)) as Json);
    checkProperty(fc.property(jsonTextArb(mutatedJsonArb(docArb, leaseKeyArb, 3)), checkAnyValue), 800);
  });

  it('mutated text and garbage: LeaseError, or attributes that re-encode unchanged', () => {
    checkProperty(
      fc.property(
        fc.oneof(
          mutatedTextArb(leaseAttrsArb.map(encodeLeaseAttrs), 4),
          garbageTextArb,
          fc.jsonValue().map((v) => JSON.stringify(v)),
          // numbers JSON allows and float64 does not hold: another writer (flannel keeps BackendData as raw bytes) may store them
          fc.constantFrom('1e400', '-1e400', '{"VNI":1e999,"VtepMAC":"0a:58:0a:f4:01:01"}', '[1, 2e308]', '12345678901234567890', '1.0')
            .map((data) => `{"PublicIP":"192.168.1.10","BackendType":"vxlan","BackendData":${data}}`),
        ),
        checkAnyValue,
      ),
      1000,
    );
  });

  it('a lease whose BackendData is nested deep decodes and re-encodes (LeaseView compares leases by their encoding)', () => {
    checkProperty(
      fc.property(fc.integer({ min: 1, max: 40_000 }), (depth) => {
        checkAnyValue(`{"PublicIP":"192.168.1.10","BackendType":"vxlan","BackendData":${nestedArrayText(depth)}}`);
      }),
      30,
    );
  });
});

describe('property: lease key names', () => {
  it('subnetKeyName and parseSubnetKeyName round-trip every masked prefix', () => {
    checkProperty(
      fc.property(prefixArb(), (p) => {
        const name = subnetKeyName(p);
        assert.equal(name, `${refFormatIpv4(p.network)}-${p.length}`);
        assert.deepEqual(parseSubnetKeyName(name), p, `parseSubnetKeyName(${name})`);
      }),
      500,
    );
  });

  it('parseSubnetKeyName agrees with the reference on random, mutated and garbage names, and gives masked prefixes', () => {
    checkProperty(
      fc.property(keyNameArb, (name) => {
        const got = parseSubnetKeyName(name);
        assert.deepEqual(got, refParseKey(name), `parseSubnetKeyName(${JSON.stringify(name)})`);
        if (got !== undefined) {
          assertMaskedPrefix(got, `key ${JSON.stringify(name)}`);
          assert.ok(name.startsWith(subnetKeyName(got)), `key ${JSON.stringify(name)} does not start with its canonical name`);
        }
      }),
      2000,
    );
  });
});
