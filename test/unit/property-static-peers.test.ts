/**
 * Property-based tests of static peers (src/subnet/static-peers.ts):
 * `--peer CIDR=IP[:PORT]` and the peers file (one spec a line, `#` comments).
 * Peers built from a model, written with any spacing, comments and line
 * endings, parse back to the model; single specs agree with a reference
 * parser written here by splitting; mutated and garbage files are refused
 * with a ConfigError naming file:line, or give peers within their limits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { ConfigError } from '../../src/errors';
import { parsePeerSpec, parsePeersFile, type StaticPeer } from '../../src/subnet/static-peers';
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
  refParseIpv4,
  uint32Arb,
} from '../property';

const FILE = '/etc/weft/peers';

// ---------------------------------------------------------------------------
// Reference parsing, by splitting

/** CIDR=IP[:PORT]: split at the first "=", each side trimmed; no host bits; a port of 1..5 digits, 1..65535. */
function refParsePeer(text: string): StaticPeer | undefined {
  const eq = text.indexOf('=');
  if (eq < 0) return undefined;
  const cidr = text.slice(0, eq).trim().split('/');
  const target = text.slice(eq + 1).trim();
  if (cidr.length !== 2) return undefined;
  const address = refParseIpv4(cidr[0] as string);
  const lenText = cidr[1] as string;
  if (address === undefined || !/^[0-9]{1,2}$/.test(lenText) || Number(lenText) > 32) return undefined;
  const length = Number(lenText);
  if (refMask(address, length) !== address) return undefined;
  const colon = target.indexOf(':');
  const publicIp = refParseIpv4(colon < 0 ? target : target.slice(0, colon));
  if (publicIp === undefined) return undefined;
  if (colon < 0) return { subnet: { network: address, length }, publicIp, port: undefined };
  const portText = target.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return undefined;
  return { subnet: { network: address, length }, publicIp, port: Number(portText) };
}

// ---------------------------------------------------------------------------
// The model

const peerArb: fc.Arbitrary<StaticPeer> = fc.record({
  subnet: prefixArb(0, 32),
  publicIp: uint32Arb,
  port: fc.option(fc.oneof(fc.constantFrom(1, 8285, 8472, 65535), fc.integer({ min: 1, max: 65535 })), { nil: undefined }),
}, { noNullPrototype: true });

const spaceArb = fc.constantFrom('', ' ', '\t', '  ', ' \t ');

/** A spec as an operator may type it: spaces around the parts. */
function specTextArb(p: StaticPeer): fc.Arbitrary<string> {
  return fc
    .tuple(spaceArb, spaceArb, spaceArb, spaceArb)
    .map(([a, b, c, d]) => `${a}${refFormatPrefix(p.subnet)}${b}=${c}${refFormatIpv4(p.publicIp)}${p.port === undefined ? '' : `:${p.port}`}${d}`);
}

const commentArb = fc.oneof(fc.constant(''), fc.string({ unit: 'grapheme-ascii', maxLength: 15 }).map((t) => ` # ${t}`), fc.constant('#'));

/** A peers file for a list of peers: comment lines, blank lines, inline comments, LF or CRLF. */
const peersFileArb: fc.Arbitrary<{ peers: StaticPeer[]; text: string }> = fc
  .array(peerArb, { maxLength: 8 })
  .chain((peers) =>
    fc
      .tuple(
        fc.tuple(...peers.map((p) => fc.tuple(specTextArb(p), commentArb))),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom('', '   ', '# peers of the lab', '#10.244.9.0/24=1.2.3.4', '\t# indented')), { maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
      )
      .map(([lines, extras, crlf, finalNewline]) => {
        const out = lines.map(([spec, comment]) => `${spec}${comment}`);
        for (const [at, extra] of extras) out.splice(at % (out.length + 1), 0, extra);
        const eol = crlf ? '\r\n' : '\n';
        return { peers, text: out.join(eol) + (finalNewline ? eol : '') };
      }));

// ---------------------------------------------------------------------------
// Checks

function assertPeerInvariants(p: StaticPeer, what: string): void {
  assertMaskedPrefix(p.subnet, `${what}: subnet`);
  assertUint32(p.publicIp, `${what}: public IP`);
  assert.ok(p.port === undefined || (Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535), `${what}: port ${String(p.port)}`);
}

const formatPeer = (p: StaticPeer): string =>
  `${refFormatPrefix(p.subnet)}=${refFormatIpv4(p.publicIp)}${p.port === undefined ? '' : `:${p.port}`}`;

function checkAnyFile(text: string): void {
  const what = `parsePeersFile(${JSON.stringify(text.slice(0, 300))})`;
  const parsed = parseOutcome(() => parsePeersFile(text, FILE), ConfigError, what);
  if (!parsed.ok) {
    const err = parsed.error;
    assert.match(err.path, /^\/etc\/weft\/peers:[1-9][0-9]*$/, `${what}: error path ${JSON.stringify(err.path)} is not file:line`);
    assert.ok(err.message.startsWith(err.path), `${what}: message ${JSON.stringify(err.message)} does not start with its path`);
    return;
  }
  parsed.value.forEach((p, i) => assertPeerInvariants(p, `${what}: peer ${i}`));
  const again = parsePeersFile(parsed.value.map(formatPeer).join('\n'), FILE);
  assert.deepEqual(again, parsed.value, `${what}: written back and parsed again, the peers differ`);
}

const specLikeArb: fc.Arbitrary<string> = fc.oneof(
  peerArb.chain(specTextArb),
  mutatedTextArb(peerArb.chain(specTextArb), 3),
  fc.tuple(uint32Arb, fc.integer({ min: 0, max: 40 }), uint32Arb, fc.oneof(fc.constant(''), fc.integer({ min: -1, max: 70000 }).map((n) => `:${n}`), fc.constantFrom(':', '::1', ':0080', ':8285:1')))
    .map(([a, l, ip, port]) => `${refFormatIpv4(a)}/${l}=${refFormatIpv4(ip)}${port}`),
  fc.constantFrom('10.244.2.0/24=[fd00::1]:8285', '10.244.2.0/24=fd00::1', '10.244.2.0/24=::', '=', '10.244.2.0/24=', '/=:', '10.244.2.0/24==1.2.3.4'),
  garbageTextArb,
);

describe('property: static peers', () => {
  it('a peers file written from a model (spacing, comments, blank lines, LF or CRLF) parses back to the model', () => {
    checkProperty(
      fc.property(peersFileArb, ({ peers, text }) => {
        const got = parsePeersFile(text, FILE);
        assert.deepEqual(got, peers, `parsing ${JSON.stringify(text)}`);
      }),
      600,
    );
  });

  it('parsePeerSpec agrees with the reference on random, mutated and garbage specs, and throws only ConfigError', () => {
    checkProperty(
      fc.property(specLikeArb, (text) => {
        const what = `parsePeerSpec(${JSON.stringify(text)})`;
        const got = parseOutcome(() => parsePeerSpec(text), ConfigError, what);
        const want = refParsePeer(text);
        if (want === undefined) {
          assert.equal(got.ok, false, `${what} accepted what the reference refuses: ${got.ok ? JSON.stringify(got.value) : ''}`);
          if (!got.ok) assert.equal(got.error.path, '--peer');
          return;
        }
        assert.ok(got.ok, `${what} refused what the reference accepts: ${got.ok ? '' : got.error.message}`);
        assert.deepEqual(got.value, want, what);
        assertPeerInvariants(got.value, what);
      }),
      2500,
    );
  });

  it('mutated and garbage peers files: ConfigError naming file:line, or peers within their limits that round-trip', () => {
    checkProperty(
      fc.property(fc.oneof(mutatedTextArb(peersFileArb.map((f) => f.text), 4), garbageTextArb, fc.array(specLikeArb, { maxLength: 4 }).map((l) => l.join('\n'))), checkAnyFile),
      1500,
    );
  });
});
