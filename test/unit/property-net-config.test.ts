/**
 * Property-based tests of net-conf.json (src/subnet/net-config.ts
 * parseNetConfig, then the backend registry's chooseBackend and each
 * backend's own parser): configurations built from a model parse back to the
 * model; mutated, retyped and garbage documents are refused with a
 * ConfigError that names the file, or accepted with every documented
 * invariant of a NetConfig holding.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { chooseBackend } from '../../src/backend/registry';
import { parseUdpConfig } from '../../src/backend/udp/udp-config';
import { parseVxlanConfig } from '../../src/backend/vxlan/vxlan-config';
import { ConfigError } from '../../src/errors';
import {
  isValidLeaseSubnet,
  parseNetConfig,
  subnetAt,
  subnetCount,
  type NetConfig,
} from '../../src/subnet';
import {
  assertMaskedPrefix,
  assertUint32,
  checkProperty,
  garbageTextArb,
  isJsonObject,
  jsonTextArb,
  mutatedJsonArb,
  mutatedTextArb,
  nestedArrayText,
  objectOf,
  parseOutcome,
  prefixArb,
  recaseArb,
  refFormatIpv4,
  refFormatPrefix,
  type Json,
  type JsonObject,
  type PrefixModel,
} from '../property';

const SRC = '/etc/kube-flannel/net-conf.json';

// ---------------------------------------------------------------------------
// The model

type BackendModel =
  | { readonly type: 'udp'; readonly port: number | undefined }
  | {
      readonly type: 'vxlan';
      readonly vni: number | undefined;
      readonly port: number | undefined;
      readonly mtu: number | undefined;
      readonly gbp: boolean | undefined;
      readonly learning: boolean | undefined;
      readonly directRouting: boolean | undefined;
    }
  | { readonly type: 'host-gw' };

/** How an optional field is written: left out, null (Go: not given), or a value. */
type Given<T> = { readonly how: 'absent' } | { readonly how: 'null' } | { readonly how: 'value'; readonly value: T };

interface NetConfModel {
  readonly network: PrefixModel;
  readonly subnetLen: Given<number>;
  /** Subnet numbers inside Network (0 = its first /subnetLen), or the zero address "0.0.0.0". */
  readonly subnetMin: Given<number | 'zero'>;
  readonly subnetMax: Given<number | 'zero'>;
  readonly enableIPv4: Given<true>;
  readonly enableIPv6: Given<false>;
  readonly enableNFTables: Given<boolean>;
  readonly backend: Given<BackendModel>;
  /** Unknown top-level and backend fields, ignored as flanneld ignores them. */
  readonly extra: ReadonlyArray<readonly [string, Json]>;
  readonly backendExtra: ReadonlyArray<readonly [string, Json]>;
}

const DEFAULT_SUBNET_LEN = 24;

function effectiveSubnetLen(m: NetConfModel): number {
  if (m.subnetLen.how === 'value' && m.subnetLen.value !== 0) return m.subnetLen.value;
  return m.network.length <= DEFAULT_SUBNET_LEN - 2 ? DEFAULT_SUBNET_LEN : m.network.length + 2;
}

/**
 * Subnet number of a bound: as given, or the default (flannel's: the second
 * subnet / the last one) when it is left out, null or the zero address (Go's
 * zero value: subnet 0 of a Network that starts at 0.0.0.0 counts as not given).
 */
function boundIndex(given: Given<number | 'zero'>, fallback: number, network: PrefixModel): number {
  return boundGiven(given, network) ?? fallback;
}

function boundGiven(given: Given<number | 'zero'>, network: PrefixModel): number | undefined {
  if (given.how !== 'value' || given.value === 'zero' || (given.value === 0 && network.network === 0)) return undefined;
  return given.value;
}

interface Expected {
  readonly network: PrefixModel;
  readonly subnetLen: number;
  readonly subnetMin: number;
  readonly subnetMax: number;
  readonly enableNFTables: boolean;
  readonly backendType: string;
  readonly backendConfig: Record<string, unknown>;
}

function expectedOf(m: NetConfModel): Expected {
  const len = effectiveSubnetLen(m);
  const count = 2 ** (len - m.network.length);
  const size = 2 ** (32 - len);
  const b = m.backend.how === 'value' ? m.backend.value : undefined;
  let backendConfig: Record<string, unknown>;
  if (b === undefined || b.type === 'udp') {
    backendConfig = { port: b?.port ?? 8285 };
  } else if (b.type === 'vxlan') {
    backendConfig = {
      vni: b.vni ?? 1,
      port: b.port === undefined || b.port === 0 ? 8472 : b.port,
      gbp: b.gbp ?? false,
      learning: b.learning ?? false,
      directRouting: b.directRouting ?? false,
      mtu: b.mtu === undefined || b.mtu === 0 ? undefined : b.mtu,
    };
  } else {
    backendConfig = {};
  }
  return {
    network: m.network,
    subnetLen: len,
    subnetMin: m.network.network + boundIndex(m.subnetMin, 1, m.network) * size,
    subnetMax: m.network.network + boundIndex(m.subnetMax, count - 1, m.network) * size,
    enableNFTables: m.enableNFTables.how === 'value' ? m.enableNFTables.value : false,
    backendType: b?.type ?? 'udp',
    backendConfig,
  };
}

const KNOWN_KEYS = ['network', 'subnetlen', 'subnetmin', 'subnetmax', 'enableipv4', 'enableipv6', 'enablenftables', 'backend', 'type', 'port', 'vni', 'mtu', 'gbp', 'learning', 'directrouting'];

/** Names of unknown fields: never a known one in any case. */
const unknownKeyArb: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom('Comment', 'EnableIPv6Masq', 'IPv6Network', 'SubnetLenV6', '__proto__', 'constructor', 'toString', '', ' Network', 'Network '),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 6 }),
  )
  .filter((k) => !KNOWN_KEYS.includes(k.toLowerCase()));

const extraFieldsArb = fc.uniqueArray(fc.tuple(unknownKeyArb, fc.jsonValue({ maxDepth: 2 }).map((v) => v as Json)), {
  maxLength: 3,
  selector: ([k]) => k,
});

function givenArb<T>(value: fc.Arbitrary<T>, weights: { absent: number; null: number; value: number }): fc.Arbitrary<Given<T>> {
  return fc.oneof(
    { weight: weights.absent, arbitrary: fc.constant<Given<T>>({ how: 'absent' }) },
    { weight: weights.null, arbitrary: fc.constant<Given<T>>({ how: 'null' }) },
    { weight: weights.value, arbitrary: value.map((v): Given<T> => ({ how: 'value', value: v })) },
  );
}

const backendModelArb: fc.Arbitrary<BackendModel> = fc.oneof(
  fc.record({ type: fc.constant('udp' as const), port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }) }),
  fc.record({
    type: fc.constant('vxlan' as const),
    vni: fc.option(fc.integer({ min: 0, max: 0xffffff }), { nil: undefined }),
    port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    mtu: fc.option(fc.oneof(fc.constant(0), fc.integer({ min: 118, max: 65535 })), { nil: undefined }),
    gbp: fc.option(fc.boolean(), { nil: undefined }),
    learning: fc.option(fc.boolean(), { nil: undefined }),
    directRouting: fc.option(fc.boolean(), { nil: undefined }),
  }),
  fc.constant({ type: 'host-gw' as const }),
);

/** A valid configuration: SubnetLen, SubnetMin and SubnetMax chosen so that at least one subnet lies between the bounds. */
const netConfModelArb: fc.Arbitrary<NetConfModel> = prefixArb(1, 28)
  .chain((network) => {
    const lenArb = fc.integer({ min: network.length + 2, max: 30 });
    return fc.record({
      network: fc.constant(network),
      subnetLen: givenArb(fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 5, arbitrary: lenArb }), { absent: 2, null: 1, value: 4 }),
      minPick: givenArb(fc.oneof({ weight: 1, arbitrary: fc.constant<'zero'>('zero') }, { weight: 5, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) }), { absent: 3, null: 1, value: 3 }),
      maxPick: givenArb(fc.oneof({ weight: 1, arbitrary: fc.constant<'zero'>('zero') }, { weight: 5, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) }), { absent: 3, null: 1, value: 3 }),
      enableIPv4: givenArb(fc.constant(true as const), { absent: 4, null: 1, value: 1 }),
      enableIPv6: givenArb(fc.constant(false as const), { absent: 4, null: 1, value: 1 }),
      enableNFTables: givenArb(fc.boolean(), { absent: 2, null: 1, value: 2 }),
      backend: givenArb(backendModelArb, { absent: 1, null: 1, value: 6 }),
      extra: extraFieldsArb,
      backendExtra: extraFieldsArb,
    });
  })
  .map(({ minPick, maxPick, ...rest }) => {
    const partial = { ...rest, subnetMin: { how: 'absent' } as const, subnetMax: { how: 'absent' } as const };
    const count = 2 ** (effectiveSubnetLen(partial) - rest.network.length);
    const toIndex = (g: Given<number | 'zero'>): Given<number | 'zero'> =>
      g.how === 'value' && g.value !== 'zero' ? { how: 'value', value: Math.min(count - 1, Math.floor(g.value * count)) } : g;
    let subnetMin = toIndex(minPick);
    let subnetMax = toIndex(maxPick);
    // keep min <= max: swap two given bounds, or pull a single given one back inside the other's default
    // (the default max is the last subnet, so only a given max can be below min)
    const lo = boundIndex(subnetMin, 1, rest.network);
    const hi = boundIndex(subnetMax, count - 1, rest.network);
    if (lo > hi) {
      if (boundGiven(subnetMin, rest.network) !== undefined) [subnetMin, subnetMax] = [{ how: 'value', value: hi }, { how: 'value', value: lo }];
      else subnetMax = { how: 'value', value: lo };
    }
    return { ...partial, subnetMin, subnetMax };
  });

/** The JSON document of a model, keys in any case (Go's encoding/json matches them case-insensitively). */
function documentArb(m: NetConfModel): fc.Arbitrary<JsonObject> {
  const len = effectiveSubnetLen(m);
  const size = 2 ** (32 - len);
  const boundText = (v: number | 'zero'): string => (v === 'zero' ? '0.0.0.0' : refFormatIpv4(m.network.network + v * size));
  const entries: Array<readonly [string, fc.Arbitrary<string>, Json]> = [];
  const field = <T>(key: string, g: Given<T>, json: (v: T) => Json): void => {
    if (g.how === 'absent') return;
    entries.push([key, recaseArb(key), g.how === 'null' ? null : json(g.value)]);
  };
  field('Network', { how: 'value', value: m.network }, refFormatPrefix);
  field('SubnetLen', m.subnetLen, (v) => v);
  field('SubnetMin', m.subnetMin, boundText);
  field('SubnetMax', m.subnetMax, boundText);
  field('EnableIPv4', m.enableIPv4, (v) => v);
  field('EnableIPv6', m.enableIPv6, (v) => v);
  field('EnableNFTables', m.enableNFTables, (v) => v);
  const backendArb: fc.Arbitrary<Json> | undefined = m.backend.how === 'absent' ? undefined
    : m.backend.how === 'null' ? fc.constant(null) : backendDocumentArb(m.backend.value, m.backendExtra);
  return fc
    .tuple(
      fc.tuple(...entries.map(([, keyArb]) => keyArb)),
      backendArb === undefined ? fc.constant(undefined) : fc.tuple(recaseArb('Backend'), backendArb),
      fc.shuffledSubarray([...m.extra], { minLength: m.extra.length }),
    )
    .map(([keys, backend, extra]) => {
      const out: Array<readonly [string, Json]> = entries.map(([, , value], i) => [keys[i] as string, value] as const);
      if (backend !== undefined) out.push(backend);
      return objectOf([...out, ...extra]);
    });
}

function backendDocumentArb(b: BackendModel, extra: ReadonlyArray<readonly [string, Json]>): fc.Arbitrary<Json> {
  const fields: Array<readonly [string, Json]> = [];
  const opt = (key: string, v: Json | undefined): void => {
    if (v !== undefined) fields.push([key, v]);
  };
  if (b.type === 'udp') opt('Port', b.port);
  if (b.type === 'vxlan') {
    opt('VNI', b.vni);
    opt('Port', b.port);
    opt('MTU', b.mtu);
    opt('GBP', b.gbp);
    opt('Learning', b.learning);
    opt('DirectRouting', b.directRouting);
  }
  return fc
    .tuple(recaseArb('Type'), recaseArb(b.type), fc.tuple(...fields.map(([k]) => recaseArb(k))))
    .map(([typeKey, typeValue, keys]) =>
      objectOf([[typeKey, typeValue], ...fields.map(([, v], i) => [keys[i] as string, v] as const), ...extra]));
}

const modelAndTextArb: fc.Arbitrary<{ model: NetConfModel; text: string }> = netConfModelArb.chain((model) =>
  fc.tuple(jsonTextArb(documentArb(model)), fc.boolean()).map(([text, bom]) => ({ model, text: bom ? `\uFEFF${text}` : text })));

// ---------------------------------------------------------------------------
// Checks

/** The backend's checked configuration, as the registry hands it to the backend. */
function backendConfigOf(cfg: NetConfig): Record<string, unknown> {
  const chosen = chooseBackend(cfg.backend);
  switch (chosen.type) {
    case 'udp': return { ...parseUdpConfig(cfg.backend.fields, cfg.backend.source) };
    case 'vxlan': return { ...parseVxlanConfig(cfg.backend.fields, cfg.backend.source) };
    default: return {};
  }
}

function describeCfg(cfg: NetConfig): string {
  return `${refFormatPrefix(cfg.network)} len ${cfg.subnetLen} min ${refFormatIpv4(cfg.subnetMin)} max ${refFormatIpv4(cfg.subnetMax)}`;
}

/** Every documented property of an accepted NetConfig. */
function assertNetConfigInvariants(cfg: NetConfig, text: string): void {
  const what = `config from ${JSON.stringify(text.slice(0, 200))}`;
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.network) && Object.isFrozen(cfg.backend), `${what}: not frozen`);
  assert.ok(Object.isFrozen(cfg.raw) && Object.isFrozen(cfg.backend.fields), `${what}: raw JSON not frozen`);
  assertMaskedPrefix(cfg.network, `${what}: Network`, 1, 28);
  const len = cfg.subnetLen;
  assert.ok(Number.isInteger(len) && len >= cfg.network.length + 2 && len <= 30, `${what}: SubnetLen ${len} outside ${cfg.network.length + 2}..30`);
  const size = 2 ** (32 - len);
  const end = cfg.network.network + 2 ** (32 - cfg.network.length);
  for (const [name, v] of [['SubnetMin', cfg.subnetMin], ['SubnetMax', cfg.subnetMax]] as const) {
    assertUint32(v, `${what}: ${name}`);
    assert.ok(v >= cfg.network.network && v + size <= end, `${what}: ${name} ${refFormatIpv4(v)} outside ${describeCfg(cfg)}`);
    assert.equal(v % size, 0, `${what}: ${name} ${refFormatIpv4(v)} not aligned to /${len}`);
  }
  assert.ok(cfg.subnetMin <= cfg.subnetMax, `${what}: SubnetMin above SubnetMax: ${describeCfg(cfg)}`);
  const count = subnetCount(cfg);
  assert.ok(Number.isInteger(count) && count >= 1, `${what}: ${count} subnets`);
  assert.deepEqual(subnetAt(cfg, 0), { network: cfg.subnetMin, length: len });
  assert.deepEqual(subnetAt(cfg, count - 1), { network: cfg.subnetMax, length: len });
  assert.ok(isValidLeaseSubnet(cfg, subnetAt(cfg, count - 1)), `${what}: the last subnet is not a valid lease`);
  assert.equal(cfg.enableIPv4, true);
  assert.equal(cfg.enableIPv6, false);
  assert.equal(typeof cfg.enableNFTables, 'boolean');
  assert.equal(typeof cfg.backend.type, 'string');
  assert.equal(cfg.backend.type, cfg.backend.type.toLowerCase(), `${what}: backend type not lower-cased`);
  assert.equal(cfg.backend.source, SRC);
}

function assertBackendInvariants(type: string, c: Record<string, unknown>, what: string): void {
  const port = c['port'];
  if (type === 'udp' || type === 'vxlan') {
    assert.ok(typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535, `${what}: port ${String(port)}`);
  }
  if (type === 'vxlan') {
    const vni = c['vni'];
    const mtu = c['mtu'];
    assert.ok(typeof vni === 'number' && Number.isInteger(vni) && vni >= 0 && vni <= 0xffffff, `${what}: VNI ${String(vni)}`);
    assert.ok(mtu === undefined || (typeof mtu === 'number' && Number.isInteger(mtu) && mtu >= 118 && mtu <= 65535), `${what}: MTU ${String(mtu)}`);
    for (const k of ['gbp', 'learning', 'directRouting']) assert.equal(typeof c[k], 'boolean', `${what}: ${k}`);
  }
}

/** A ConfigError names the file (path `<source>` or `<source>: <Field>`) and its message starts with that path. */
function assertConfigErrorShape(err: ConfigError, text: string): void {
  assert.ok(err.path === SRC || err.path.startsWith(`${SRC}: `), `error path ${JSON.stringify(err.path)} does not name the file, for ${JSON.stringify(text.slice(0, 200))}`);
  assert.ok(err.message.startsWith(err.path), `message ${JSON.stringify(err.message)} does not start with its path ${JSON.stringify(err.path)}`);
}

/** Parses any text: a ConfigError of the right shape, or a config (and backend config) with every invariant. */
function checkAnyText(text: string): void {
  const parsed = parseOutcome(() => parseNetConfig(text, SRC), ConfigError, `parseNetConfig(${JSON.stringify(text.slice(0, 300))})`);
  if (!parsed.ok) {
    assertConfigErrorShape(parsed.error, text);
    return;
  }
  const cfg = parsed.value;
  assertNetConfigInvariants(cfg, text);
  const backend = parseOutcome(() => backendConfigOf(cfg), ConfigError, `the backend of ${JSON.stringify(text.slice(0, 300))}`);
  if (!backend.ok) {
    assertConfigErrorShape(backend.error, text);
    return;
  }
  assertBackendInvariants(cfg.backend.type, backend.value, `backend of ${JSON.stringify(text.slice(0, 200))}`);
  // the raw object re-serialized parses to the same configuration
  const again = parseNetConfig(JSON.stringify(cfg.raw), SRC);
  assert.deepEqual(strip(again), strip(cfg), 'parse -> JSON.stringify(raw) -> parse is not stable');
}

/**
 * A config without `raw`, its backend fields as JSON would carry them: a
 * number beyond float64 (1e400) parses to Infinity, which JSON writes as
 * null, so only the JSON form of ignored fields can survive a re-serialization.
 */
const strip = (cfg: NetConfig): unknown => {
  const { raw: _raw, backend, ...rest } = cfg;
  return { ...rest, backend: { ...backend, fields: JSON.parse(JSON.stringify(backend.fields)) as unknown } };
};

// ---------------------------------------------------------------------------
// Mutation sources

/** Keys for added and renamed fields: known ones in any case (so duplicates), and odd ones. */
const mutationKeyArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('Network', 'SubnetLen', 'SubnetMin', 'SubnetMax', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Backend', 'Type', 'Port', 'VNI', 'MTU', 'GBP', 'Learning', 'DirectRouting')
    .chain(recaseArb),
  fc.constantFrom('__proto__', 'constructor', '', 'ſubnetLen', 'SUBNETLEN\u0000'),
  fc.string({ maxLength: 8 }),
);

const validDocumentArb: fc.Arbitrary<Json> = netConfModelArb.chain(documentArb);

describe('property: net-conf.json', () => {
  it('a configuration built from a model parses back to the model (any key case, order, spacing, BOM, unknown fields)', () => {
    checkProperty(
      fc.property(modelAndTextArb, ({ model, text }) => {
        const want = expectedOf(model);
        const cfg = parseNetConfig(text, SRC);
        assert.deepEqual(
          {
            network: { network: cfg.network.network, length: cfg.network.length },
            subnetLen: cfg.subnetLen,
            subnetMin: cfg.subnetMin,
            subnetMax: cfg.subnetMax,
            enableNFTables: cfg.enableNFTables,
            backendType: cfg.backend.type,
            backendConfig: backendConfigOf(cfg),
          },
          want,
          `parsed ${describeCfg(cfg)}, expected ${refFormatPrefix(want.network)} len ${want.subnetLen} min ${refFormatIpv4(want.subnetMin)} max ${refFormatIpv4(want.subnetMax)}`,
        );
        assertNetConfigInvariants(cfg, text);
        assert.deepEqual(strip(parseNetConfig(JSON.stringify(cfg.raw), SRC)), strip(cfg), 're-serialized raw JSON parses differently');
      }),
      400,
    );
  });

  it('documents with fields retyped, removed, added (duplicates in other case too), renamed or wrapped: ConfigError or a valid config', () => {
    checkProperty(
      fc.property(jsonTextArb(mutatedJsonArb(validDocumentArb, mutationKeyArb, 3)), checkAnyText),
      1000,
    );
  });

  it('texts with characters inserted, deleted, flipped, duplicated, recased or cut: ConfigError or a valid config', () => {
    checkProperty(
      fc.property(mutatedTextArb(modelAndTextArb.map(({ text }) => text), 4), checkAnyText),
      1000,
    );
  });

  it('garbage: random text and random JSON values: ConfigError or a valid config', () => {
    checkProperty(
      fc.property(
        fc.oneof(garbageTextArb, fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))),
        checkAnyText,
      ),
      500,
    );
  });

  it('deeply nested values (in an ignored field, or in Backend) are refused with a ConfigError or accepted, never a stack overflow', () => {
    checkProperty(
      fc.property(
        fc.integer({ min: 1, max: 40_000 }),
        fc.constantFrom('Comment', 'Backend'),
        (depth, key) => {
          const nested = key === 'Backend' ? `{"Type": "udp", "Extra": ${nestedArrayText(depth)}}` : nestedArrayText(depth);
          const text = `{"Network": "10.244.0.0/16", ${JSON.stringify(key)}: ${nested}}`;
          const what = `a net-conf.json with a value nested ${depth} deep in ${key}`;
          const parsed = parseOutcome(() => parseNetConfig(text, SRC), ConfigError, what);
          if (parsed.ok) parseOutcome(() => backendConfigOf(parsed.value), ConfigError, `${what}: its backend`);
        },
      ),
      30,
    );
  });

  it('every top-level field replaced by a value of another type: ConfigError naming that field, or a valid config', () => {
    const fields = ['Network', 'SubnetLen', 'SubnetMin', 'SubnetMax', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Backend'];
    checkProperty(
      fc.property(validDocumentArb, fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 1 }), (doc, field, value) => {
        assert.ok(isJsonObject(doc));
        const entries = Object.entries(doc).filter(([k]) => k.toLowerCase() !== field.toLowerCase());
        const text = JSON.stringify(objectOf([...entries, [field, value as Json]]));
        const parsed = parseOutcome(() => parseNetConfig(text, SRC), ConfigError, `parseNetConfig(${text})`);
        if (!parsed.ok) {
          assertConfigErrorShape(parsed.error, text);
          // the error names the replaced field, or a field whose check depends on it (the bounds depend on Network and SubnetLen)
          const named = parsed.error.path.slice(`${SRC}: `.length);
          const dependents: Record<string, string[]> = { Network: ['SubnetLen', 'SubnetMin', 'SubnetMax'], SubnetLen: ['SubnetMin', 'SubnetMax'], SubnetMin: ['SubnetMax'], SubnetMax: ['SubnetMin'] };
          assert.ok(named === field || (dependents[field] ?? []).includes(named), `replacing ${field} with ${JSON.stringify(value)} gave an error about ${named}: ${parsed.error.message}`);
        } else {
          assertNetConfigInvariants(parsed.value, text);
        }
      }),
      600,
    );
  });
});
