/**
 * Shared pieces of the property-based tests (test/unit/property-*.test.ts):
 * arbitraries for addresses, prefixes and text, mutations of text and of
 * JSON values, and the check that a parser throws nothing but weft's own
 * errors.
 *
 * Reference arithmetic here is deliberately plain (division and modulo on
 * numbers, string splitting), independent of src/net/ipv4.ts.
 *
 * fast-check picks a new seed on every run and prints it (with the shrunk
 * counterexample) when a property fails; rerun one with
 * fc.assert(..., { seed, path }) as the failure message shows.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { WeftError } from '../src/errors';
import type { SubnetEnv } from '../src/subnet';

// ---------------------------------------------------------------------------
// Running properties

/**
 * fc.assert with an explicit run count and the failing assertion's message in
 * the report (node's test runner does not print an error's `cause`). No seed
 * is fixed: fast-check draws one per run and prints it with the shrunk
 * counterexample. To replay a failure, set WEFT_FC_SEED (and WEFT_FC_PATH)
 * to the seed and path it printed and run that one test file.
 */
export function checkProperty<Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>, numRuns: number): void {
  const seed = process.env['WEFT_FC_SEED'];
  const path = process.env['WEFT_FC_PATH'];
  fc.assert(property, {
    numRuns,
    includeErrorInReport: true,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
  });
}

// ---------------------------------------------------------------------------
// JSON values

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An object with exactly these entries; keys such as "__proto__" become own properties, as JSON.parse makes them. */
export function objectOf(entries: ReadonlyArray<readonly [string, Json]>): JsonObject {
  return Object.fromEntries(entries) as JsonObject;
}

// ---------------------------------------------------------------------------
// Errors

export type WeftErrorClass<E extends WeftError> = abstract new (...args: never[]) => E;

export type Outcome<T, E extends WeftError> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: E };

/**
 * Runs a parser. It may return, or throw an instance of `kind` (a WeftError
 * subclass) with a non-empty message; anything else thrown fails the
 * property with `what` and the stray error in the message.
 */
export function parseOutcome<T, E extends WeftError>(fn: () => T, kind: WeftErrorClass<E>, what: string): Outcome<T, E> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (!(err instanceof kind)) {
      const shown = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      assert.fail(`${what} threw ${shown}, not a ${kind.name}`);
    }
    assert.ok(err instanceof WeftError, `${what} threw a ${kind.name} that is not a WeftError`);
    assert.equal(typeof err.message, 'string', `${what}: the error message is not a string`);
    assert.ok(err.message.trim().length > 0, `${what} threw a ${kind.name} with an empty message`);
    assert.equal(typeof err.code, 'string', `${what}: the error has no code`);
    return { ok: false, error: err };
  }
}

// ---------------------------------------------------------------------------
// Numbers, addresses and prefixes (reference arithmetic)

export const TWO_32 = 0x1_0000_0000;

/** Unsigned 32-bit integers, edges often. */
export const uint32Arb: fc.Arbitrary<number> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x0a000000, 0xc0a80001) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) },
);

/** `addr` with the low 32-length bits cleared, by division (no bit operators). */
export function refMask(addr: number, length: number): number {
  const size = 2 ** (32 - length);
  return addr - (addr % size);
}

/** "a.b.c.d": four decimal octets 0..255, 1 to 3 ASCII digits, no leading zero (except "0" itself); by splitting. */
export function refParseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part) || (part.length > 1 && part[0] === '0') || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

/** "a.b.c.d" by division. */
export function refFormatIpv4(addr: number): string {
  return [3, 2, 1, 0].map((k) => Math.floor(addr / 256 ** k) % 256).join('.');
}

export interface PrefixModel {
  readonly network: number;
  readonly length: number;
}

/** A masked prefix with a length in [minLength, maxLength]. */
export function prefixArb(minLength = 0, maxLength = 32): fc.Arbitrary<PrefixModel> {
  return fc
    .record({ addr: uint32Arb, length: fc.integer({ min: minLength, max: maxLength }) })
    .map(({ addr, length }) => ({ network: refMask(addr, length), length }));
}

export function refFormatPrefix(p: PrefixModel): string {
  return `${refFormatIpv4(p.network)}/${p.length}`;
}

/** Asserts that `n` is an unsigned 32-bit integer. */
export function assertUint32(n: unknown, what: string): void {
  assert.ok(typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < TWO_32, `${what} ${String(n)} is not an unsigned 32-bit integer`);
}

/** Asserts that a prefix has an integer length in [min, max] and no host bits. */
export function assertMaskedPrefix(p: PrefixModel, what: string, min = 0, max = 32): void {
  assertUint32(p.network, `${what} network`);
  assert.ok(Number.isInteger(p.length) && p.length >= min && p.length <= max, `${what} length ${p.length} is outside ${min}..${max}`);
  assert.equal(refMask(p.network, p.length), p.network, `${what} ${refFormatPrefix(p)} has host bits set`);
}

// ---------------------------------------------------------------------------
// Text

/** Characters that trip parsers: separators, quotes, whitespace of every kind, NUL, digits of other scripts, surrogates. */
export const noiseCharArb: fc.Arbitrary<string> = fc.constantFrom(
  '0', '1', '9', '.', '/', '=', ':', '-', '+', ',', ' ', '\t', '\n', '\r', '\r\n', '#', '"', "'", '\\', '{', '}', '[', ']',
  '\u0000', '\u000b', '\u00a0', '\ufeff', '\u2028', '\u3000', 'é', 'İ', 'ſ', '\u0663', '\uff11', '\ud83d\udca5', '\ud800', '\udfff',
  'e', 'x', 'E', 'export ',
);

/** Short noise: single tricky characters, random code points, or printable ASCII. */
export const noiseArb: fc.Arbitrary<string> = fc.oneof(
  noiseCharArb,
  fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 5 }),
  fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 3 }),
);

/** One edit of a text; `at` and `span` are reduced modulo the text's length when applied. */
export type TextEdit =
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'delete'; readonly at: number; readonly span: number }
  | { readonly kind: 'replace'; readonly at: number; readonly span: number; readonly text: string }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly span: number }
  | { readonly kind: 'case'; readonly at: number; readonly span: number };

export const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: noiseArb }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), span: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), span: fc.integer({ min: 1, max: 3 }), text: noiseArb }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), span: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('case' as const), at: fc.nat(), span: fc.integer({ min: 1, max: 8 }) }),
);

function swapCase(s: string): string {
  return [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
}

/** Applies one edit (positions are UTF-16 offsets, so an edit may split a surrogate pair: that is wanted). */
export function applyTextEdit(text: string, edit: TextEdit): string {
  const n = text.length;
  const at = n === 0 ? 0 : edit.at % (n + 1);
  switch (edit.kind) {
    case 'insert':
      return text.slice(0, at) + edit.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + edit.span);
    case 'replace':
      return text.slice(0, at) + edit.text + text.slice(at + edit.span);
    case 'flip': {
      if (at >= n) return text;
      const code = text.charCodeAt(at) ^ (1 << edit.bit);
      return text.slice(0, at) + String.fromCharCode(code) + text.slice(at + 1);
    }
    case 'truncate':
      return text.slice(0, at);
    case 'duplicate':
      return text.slice(0, at + edit.span) + text.slice(at, at + edit.span) + text.slice(at + edit.span);
    case 'case':
      return text.slice(0, at) + swapCase(text.slice(at, at + edit.span)) + text.slice(at + edit.span);
  }
}

export function applyTextEdits(text: string, edits: readonly TextEdit[]): string {
  return edits.reduce(applyTextEdit, text);
}

/** Texts from `base` with 1..maxEdits random edits applied. */
export function mutatedTextArb(base: fc.Arbitrary<string>, maxEdits = 4): fc.Arbitrary<string> {
  return fc
    .tuple(base, fc.array(textEditArb, { minLength: 1, maxLength: maxEdits }))
    .map(([text, edits]) => applyTextEdits(text, edits));
}

/** Random text: noise pieces glued together, or arbitrary code points. */
export const garbageTextArb: fc.Arbitrary<string> = fc.oneof(
  fc.array(noiseArb, { maxLength: 20 }).map((parts) => parts.join('')),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ maxLength: 60 }),
);

/** Key casing as Go's encoding/json accepts it: same letters, any case. */
export function recaseArb(key: string): fc.Arbitrary<string> {
  return fc.array(fc.boolean(), { minLength: key.length, maxLength: key.length })
    .map((upper) => [...key].map((c, i) => (upper[i] === true ? c.toUpperCase() : c.toLowerCase())).join(''));
}

// ---------------------------------------------------------------------------
// JSON mutations

/** Values that replace a field in a mutated JSON document: every type, huge and odd numbers, tricky strings. */
export const weirdJsonArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null, true, false, 0, -1, 1, 0.5, -0.5, 1e21, -1e21, 1e308, -1e308, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 4294967295,
    '', ' ', '0', '1', 'true', 'null', '0.0.0.0', '10.0.0.0/8', '255.255.255.255/32', '\u0000', '\ufeff', '\ud800', 'İ',
    [], {}, [null], { '': null },
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => v as Json),
);

/**
 * One change somewhere in a JSON document: `path` picks children (index
 * modulo the number of children) until it runs out or reaches a scalar.
 */
export type JsonEdit =
  | { readonly kind: 'set'; readonly path: readonly number[]; readonly value: Json }
  | { readonly kind: 'remove'; readonly path: readonly number[] }
  | { readonly kind: 'add'; readonly path: readonly number[]; readonly key: string; readonly value: Json }
  | { readonly kind: 'rename'; readonly path: readonly number[]; readonly key: string }
  | { readonly kind: 'wrap'; readonly path: readonly number[]; readonly asArray: boolean };

const jsonPathArb = fc.array(fc.nat(), { maxLength: 4 });

export function jsonEditArb(keyArb: fc.Arbitrary<string>): fc.Arbitrary<JsonEdit> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), path: jsonPathArb, value: weirdJsonArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), path: jsonPathArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('add' as const), path: jsonPathArb, key: keyArb, value: weirdJsonArb }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename' as const), path: jsonPathArb, key: keyArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), path: jsonPathArb, asArray: fc.boolean() }) },
  );
}

function children(v: Json): number {
  if (Array.isArray(v)) return v.length;
  if (isJsonObject(v)) return Object.keys(v).length;
  return 0;
}

/** Applies `edit` to the value at `path` (relative); returns a new document (the input is not changed). */
function editAt(doc: Json, path: readonly number[], edit: JsonEdit): Json {
  const n = children(doc);
  // Stop here when the path ends or there is nothing below; a container edits a child of itself.
  const [head, ...rest] = path;
  const stopHere = head === undefined || n === 0;
  if (!stopHere && rest.length > 0 && children(childAt(doc, head % n)) > 0) {
    return replaceChild(doc, head % n, editAt(childAt(doc, head % n), rest, edit));
  }
  const index = head === undefined || n === 0 ? 0 : head % n;
  switch (edit.kind) {
    case 'set':
      return n === 0 ? edit.value : replaceChild(doc, index, edit.value);
    case 'remove':
      return n === 0 ? doc : removeChild(doc, index);
    case 'add':
      if (Array.isArray(doc)) return [...doc, edit.value];
      if (isJsonObject(doc)) return objectOf([...Object.entries(doc), [edit.key, edit.value]]);
      return doc;
    case 'rename':
      if (!isJsonObject(doc) || n === 0) return doc;
      return objectOf(Object.entries(doc).map(([k, v], i) => [i === index ? edit.key : k, v] as const));
    case 'wrap': {
      const target = n === 0 ? doc : childAt(doc, index);
      const wrapped: Json = edit.asArray ? [target] : objectOf([['value', target]]);
      return n === 0 ? wrapped : replaceChild(doc, index, wrapped);
    }
  }
}

function childAt(doc: Json, index: number): Json {
  if (Array.isArray(doc)) return doc[index] as Json;
  if (isJsonObject(doc)) return (Object.entries(doc)[index] as [string, Json])[1];
  return doc;
}

function replaceChild(doc: Json, index: number, value: Json): Json {
  if (Array.isArray(doc)) return doc.map((v, i) => (i === index ? value : v));
  if (isJsonObject(doc)) return objectOf(Object.entries(doc).map(([k, v], i) => [k, i === index ? value : v] as const));
  return value;
}

function removeChild(doc: Json, index: number): Json {
  if (Array.isArray(doc)) return doc.filter((_, i) => i !== index);
  if (isJsonObject(doc)) return objectOf(Object.entries(doc).filter((_, i) => i !== index));
  return doc;
}

export function applyJsonEdits(doc: Json, edits: readonly JsonEdit[]): Json {
  return edits.reduce((d, e) => editAt(d, e.path, e), doc);
}

/** Documents from `base` with 1..maxEdits structural edits (types changed, fields dropped, added, renamed, wrapped). */
export function mutatedJsonArb(base: fc.Arbitrary<Json>, keyArb: fc.Arbitrary<string>, maxEdits = 3): fc.Arbitrary<Json> {
  return fc
    .tuple(base, fc.array(jsonEditArb(keyArb), { minLength: 1, maxLength: maxEdits }))
    .map(([doc, edits]) => applyJsonEdits(doc, edits));
}

/** JSON text of a document: compact or indented, sometimes with a BOM-free leading/trailing whitespace. */
export function jsonTextArb(doc: fc.Arbitrary<Json>): fc.Arbitrary<string> {
  return fc
    .tuple(doc, fc.constantFrom<number | string>(0, 2, '\t'), fc.constantFrom('', ' ', '\n', '\r\n\t'))
    .map(([d, indent, ws]) => `${ws}${JSON.stringify(d, null, indent)}${ws}`);
}

/** `value` nested `depth` arrays deep, as text (built as text so that the test itself never recurses). */
export function nestedArrayText(depth: number, inner = '0'): string {
  return `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
}

// ---------------------------------------------------------------------------
// subnet.env files

/** A subnet.env file and what it must parse to. */
export interface SubnetEnvFile {
  readonly expected: SubnetEnv;
  readonly text: string;
}

const TRUE_TEXTS = ['1', 't', 'T', 'TRUE', 'true', 'True'] as const;
const FALSE_TEXTS = ['0', 'f', 'F', 'FALSE', 'false', 'False'] as const;

/** One KEY=value line in one of the styles dotenv readers accept. */
function lineArb(key: string, value: string): fc.Arbitrary<string> {
  const ws = fc.constantFrom('', ' ', '\t', '  ');
  return fc
    .record({
      export: fc.boolean(),
      before: ws,
      aroundEq: fc.tuple(ws, ws),
      quote: fc.constantFrom('', '"', "'"),
      comment: fc.constantFrom('', ' # the overlay', '\t#x', ' #'),
      after: ws,
      cr: fc.boolean(),
    })
    .map((s) => {
      const quoted = `${s.quote}${value}${s.quote}`;
      return `${s.before}${s.export ? 'export ' : ''}${key}${s.aroundEq[0]}=${s.aroundEq[1]}${quoted}${s.comment}${s.after}${s.cr ? '\r' : ''}`;
    });
}

const noiseLineArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', '   ', '# written by flanneld', '#FLANNEL_MTU=1', '\r', 'FLANNEL_IPV6_NETWORK=fd00:10:244::/56', 'FLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64', 'OTHER_KEY=whatever value', 'export FLANNEL_EXTRA=1', 'lower_case.key=x'),
  fc.string({ unit: 'grapheme-ascii', maxLength: 20 }).map((t) => `# ${t}`),
);

/**
 * subnet.env files as a dotenv reader (flanneld's godotenv, weft's agent, weft-cni) accepts
 * them, with the values they must parse to: the four keys in any order and style
 * (export, quotes, spacing, ` # comments`, CRLF), comment and blank lines, extra keys,
 * earlier lines of a key overridden by the last; host bits in FLANNEL_NETWORK,
 * leading zeros in FLANNEL_MTU, every spelling of FLANNEL_IPMASQ that Go's ParseBool takes.
 */
export const subnetEnvFileArb: fc.Arbitrary<SubnetEnvFile> = fc
  .record({
    network: prefixArb(0, 32),
    /** FLANNEL_NETWORK may carry host bits: they are masked */
    networkAddress: uint32Arb,
    networkHostBits: fc.boolean(),
    subnetLength: fc.integer({ min: 0, max: 32 }),
    address: uint32Arb,
    mtu: fc.integer({ min: 68, max: 65535 }),
    mtuZeros: fc.integer({ min: 0, max: 4 }),
    ipMasq: fc.boolean(),
    ipMasqText: fc.nat(5),
    /** repeated keys: an earlier line with another valid value, overridden by the last one */
    repeats: fc.uniqueArray(fc.constantFrom('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'), { maxLength: 2 }),
  })
  .chain((m) => {
    const networkText = m.networkHostBits
      ? `${refFormatIpv4(m.networkAddress)}/${m.network.length}`
      : refFormatPrefix(m.network);
    const networkAddr = m.networkHostBits ? refMask(m.networkAddress, m.network.length) : m.network.network;
    const mtuText = `${'0'.repeat(Math.max(0, Math.min(m.mtuZeros, 5 - String(m.mtu).length)))}${m.mtu}`;
    const values: Record<string, string> = {
      FLANNEL_NETWORK: networkText,
      FLANNEL_SUBNET: `${refFormatIpv4(m.address)}/${m.subnetLength}`,
      FLANNEL_MTU: mtuText,
      FLANNEL_IPMASQ: (m.ipMasq ? TRUE_TEXTS : FALSE_TEXTS)[m.ipMasqText] as string,
    };
    const earlier: Record<string, string> = { FLANNEL_NETWORK: '10.0.0.0/8', FLANNEL_SUBNET: '10.0.0.1/24', FLANNEL_MTU: '1500', FLANNEL_IPMASQ: m.ipMasq ? 'false' : 'true' };
    const expected: SubnetEnv = {
      network: { network: networkAddr, length: m.network.length },
      subnet: { network: refMask(m.address, m.subnetLength), length: m.subnetLength },
      address: m.address,
      mtu: m.mtu,
      ipMasq: m.ipMasq,
    };
    const keyLines = Object.entries(values).map(([k, v]) => lineArb(k, v));
    const repeatLines = m.repeats.map((k) => lineArb(k, earlier[k] as string));
    return fc
      .tuple(fc.tuple(...keyLines), fc.tuple(...repeatLines.concat(fc.constant('# end'))), fc.array(noiseLineArb, { maxLength: 4 }), fc.boolean())
      .chain(([lines, repeated, noise, finalNewline]) =>
        // repeated (older) lines first, then the four keys in any order, noise anywhere
        fc.shuffledSubarray([...lines, ...noise], { minLength: lines.length + noise.length }).map((shuffled) => {
          const body = [...repeated.slice(0, -1), ...shuffled];
          return { expected, text: body.join('\n') + (finalNewline ? '\n' : '') };
        }));
  });
