/**
 * Property-based tests of subnet.env (src/subnet/subnet-env.ts):
 * formatSubnetEnv -> parseSubnetEnv gives the values back and the text is
 * stable; files written the many ways a dotenv reader accepts (comments,
 * export, quotes, spacing, CRLF, extra and repeated keys) parse to the same
 * values; mutated and garbage files are refused with a ConfigError naming the
 * file, or parse into values within their documented limits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { ConfigError } from '../../src/errors';
import { formatSubnetEnv, parseSubnetEnv, type SubnetEnv, type SubnetEnvValues } from '../../src/subnet';
import {
  assertMaskedPrefix,
  assertUint32,
  checkProperty,
  garbageTextArb,
  mutatedTextArb,
  parseOutcome,
  prefixArb,
  refFormatIpv4,
  refFormatPrefix,
  refMask,
  subnetEnvFileArb,
  uint32Arb,
  type PrefixModel,
} from '../property';

const FILE = '/run/flannel/subnet.env';

// ---------------------------------------------------------------------------
// The model

const valuesArb: fc.Arbitrary<SubnetEnvValues> = fc.record({
  network: prefixArb(0, 32),
  subnet: prefixArb(1, 31),
  mtu: fc.oneof(fc.constantFrom(68, 1400, 1450, 1472, 8950, 65535), fc.integer({ min: 68, max: 65535 })),
  ipMasq: fc.boolean(),
}, { noNullPrototype: true });

/** What parsing the formatted file must give: the lease's first address + 1 as the address. */
function expectedOf(v: SubnetEnvValues): SubnetEnv {
  return {
    network: { network: refMask(v.network.network, v.network.length), length: v.network.length },
    subnet: v.subnet,
    address: v.subnet.network + 1,
    mtu: v.mtu,
    ipMasq: v.ipMasq,
  };
}

/** The values as parsed, for comparisons (plain objects, not frozen ones). */
const plain = (e: SubnetEnv): SubnetEnv => ({
  network: { ...e.network }, subnet: { ...e.subnet }, address: e.address, mtu: e.mtu, ipMasq: e.ipMasq,
});

// ---------------------------------------------------------------------------
// Checks

function assertSubnetEnvInvariants(e: SubnetEnv, what: string): void {
  assert.ok(Object.isFrozen(e) && Object.isFrozen(e.network) && Object.isFrozen(e.subnet), `${what}: not frozen`);
  assertMaskedPrefix(e.network, `${what}: FLANNEL_NETWORK`);
  assertMaskedPrefix(e.subnet, `${what}: FLANNEL_SUBNET`);
  assertUint32(e.address, `${what}: FLANNEL_SUBNET address`);
  assert.equal(refMask(e.address, e.subnet.length), e.subnet.network, `${what}: the address is outside its subnet`);
  assert.ok(Number.isInteger(e.mtu) && e.mtu >= 68 && e.mtu <= 65535, `${what}: MTU ${e.mtu} outside 68..65535`);
  assert.equal(typeof e.ipMasq, 'boolean', `${what}: ipMasq`);
}

/** Parses any text: a ConfigError naming the file, or values within their limits that can be written back. */
function checkAnyText(text: string): void {
  const what = `parseSubnetEnv(${JSON.stringify(text.slice(0, 300))})`;
  const parsed = parseOutcome(() => parseSubnetEnv(text, FILE), ConfigError, what);
  if (!parsed.ok) {
    const err = parsed.error;
    assert.ok(err.path.startsWith(`${FILE}: `), `${what}: error path ${JSON.stringify(err.path)} does not name the file`);
    assert.ok(err.message.startsWith(err.path), `${what}: message ${JSON.stringify(err.message)} does not start with its path`);
    return;
  }
  const e = parsed.value;
  assertSubnetEnvInvariants(e, what);
  assertRewritable(e, what);
}

/**
 * What was read can be written again and reads back the same (the address
 * normalized to the lease's first + 1). A lease of /0 or /32 is accepted by
 * parseSubnetEnv but has no "first address + 1": formatSubnetEnv refuses it
 * with a RangeError, by design.
 */
function assertRewritable(e: SubnetEnv, what: string): void {
  if (e.subnet.length === 0 || e.subnet.length === 32) {
    assert.throws(() => formatSubnetEnv(e), RangeError, `${what}: a /${e.subnet.length} lease was written`);
    return;
  }
  const text = formatSubnetEnv(e);
  assert.deepEqual(plain(parseSubnetEnv(text, FILE)), { ...plain(e), address: e.subnet.network + 1 }, `${what}: rewritten as ${JSON.stringify(text)}`);
}

describe('property: subnet.env', () => {
  it('formatSubnetEnv -> parseSubnetEnv gives the values back, and format(parse(text)) is the same text', () => {
    checkProperty(
      fc.property(valuesArb, (v) => {
        const text = formatSubnetEnv(v);
        const e = parseSubnetEnv(text, FILE);
        assert.deepEqual(plain(e), expectedOf(v), `parsing ${JSON.stringify(text)}`);
        assertSubnetEnvInvariants(e, text);
        assert.equal(formatSubnetEnv(e), text, 'format(parse(text)) is not the text');
      }),
      800,
    );
  });

  it('files written in any dotenv style (comments, export, quotes, spacing, CRLF, extra and repeated keys) parse to the values', () => {
    checkProperty(
      fc.property(subnetEnvFileArb, ({ expected, text }) => {
        const e = parseSubnetEnv(text, FILE);
        assert.deepEqual(plain(e), expected, `parsing ${JSON.stringify(text)}`);
        assertSubnetEnvInvariants(e, text);
      }),
      800,
    );
  });

  it('mutated files: ConfigError naming the file, or values within their limits that can be written back', () => {
    checkProperty(
      fc.property(
        fc.oneof(mutatedTextArb(valuesArb.map(formatSubnetEnv), 4), mutatedTextArb(subnetEnvFileArb.map((w) => w.text), 3)),
        checkAnyText,
      ),
      1500,
    );
  });

  it('garbage, and lines of random KEY=value pairs with the right keys: ConfigError or values within their limits', () => {
    const keyArb = fc.constantFrom('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ', 'flannel_mtu', 'FLANNEL_MTU ', ' FLANNEL_MTU');
    const valueArb = fc.oneof(
      garbageTextArb,
      fc.constantFrom('', '0', '67', '68', '65535', '65536', '99999', '1e3', '0x5dc', '-1', '1472.0', ' 1472', '"1472', "'1472'", '10.0.0.0/8,10.1.0.0/16', '10.0.0.1/33', '10.0.0.1/032', '256.0.0.0/8', 'yes', 'TRUE ', 'tRuE'),
      prefixArb().map(refFormatPrefix),
    );
    const fileArb = fc.array(fc.tuple(keyArb, valueArb).map(([k, v]) => `${k}=${v}`), { maxLength: 6 }).map((lines) => lines.join('\n'));
    checkProperty(fc.property(fc.oneof(garbageTextArb, fileArb), checkAnyText), 1000);
  });

  it('any FLANNEL_SUBNET prefix length parses; the file is rewritable unless the lease is /0 or /32', () => {
    checkProperty(
      fc.property(valuesArb, uint32Arb, fc.integer({ min: 0, max: 32 }), (v, address, length) => {
        const text = formatSubnetEnv(v).replace(/FLANNEL_SUBNET=.*\n/, `FLANNEL_SUBNET=${refFormatIpv4(address)}/${length}\n`);
        const e = parseSubnetEnv(text, FILE);
        const lease: PrefixModel = { network: refMask(address, length), length };
        assert.deepEqual({ ...e.subnet }, lease);
        assert.equal(e.address, address);
        assertRewritable(e, text);
      }),
      300,
    );
  });
});
