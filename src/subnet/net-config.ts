/**
 * net-conf.json: the cluster-wide network configuration flanneld reads from
 * `--net-config-path` (kube mode) or `<etcd-prefix>/config`.
 *
 * parse (JSON) -> check types (what Go's json.Unmarshal would refuse) ->
 * check and normalize (flannel's `CheckNetworkConfig`, pkg/subnet/config.go)
 * -> a frozen `NetConfig`. Every rejection is a `ConfigError` whose `path` is
 * `<source>: <Field>` and whose message starts with that path, names the value
 * given and says what is allowed.
 *
 * Compatibility rules taken from flanneld (so that a file it accepts is
 * accepted here with the same meaning):
 * - field names match case-insensitively (Go's encoding/json does);
 * - `null` and Go zero values (`SubnetLen: 0`, `SubnetMin: "0.0.0.0"`,
 *   vxlan `Port: 0` / `MTU: 0`) mean "not given";
 * - unknown top-level fields are ignored;
 * - `Backend.Type` is case-insensitive; a missing `Backend` means udp.
 * Where weft is stricter, the message says why (IPv4 only, no host bits in
 * `Network`, SubnetMin <= SubnetMax). The rest of `Backend` belongs to the
 * backend it names: src/backend/registry.ts checks it.
 */

import { jsonValueProblem } from '../sys/json-limits';
import { ConfigError } from '../errors';
import { ConfigFields, isJsonObject, jsonKind, showJson } from './config-fields';
import {
  formatIpv4,
  formatPrefix,
  parseCidr,
  parseIpv4,
  prefixContains,
  prefixLast,
  prefixMask,
  prefixSize,
  type Ipv4Prefix,
} from '../net/ipv4';

/** Subnet length given to each host when the Network is a /22 or larger. */
export const DEFAULT_SUBNET_LEN = 24;
/** Longest subnet a host may get: four addresses (tunnel + bridge need room). */
export const MAX_SUBNET_LEN = 30;
/** Longest Network prefix: room for four /30 subnets. */
export const MAX_NETWORK_PREFIX_LEN = 28;
export const MIN_MTU_BYTES = 68;
export const MAX_MTU_BYTES = 65535;
export const MAX_PORT = 65535;
/** The backend flannel's code picks when net-conf.json has no `Backend`. */
export const DEFAULT_BACKEND_TYPE = 'udp';

/**
 * net-conf.json's `Backend` object, not yet interpreted: each backend checks
 * its own fields (src/backend/registry.ts), so that this module knows no
 * backend.
 */
export interface BackendSection {
  /** `Backend.Type` lower-cased (flanneld lower-cases it too); "" when missing. */
  readonly type: string;
  /** The object as written (deep-frozen); `{}` when `Backend` was omitted. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Where the configuration came from (a file path or an etcd key), for messages. */
  readonly source: string;
}

/** A checked, normalized, frozen net-conf.json. Addresses are unsigned 32-bit numbers. */
export interface NetConfig {
  /** The whole overlay network (host bits zero). */
  readonly network: Ipv4Prefix;
  /** Prefix length of each host's lease. */
  readonly subnetLen: number;
  /** First allocatable subnet address (aligned to subnetLen, inside network). */
  readonly subnetMin: number;
  /** Last allocatable subnet address (inclusive; aligned, inside network, >= subnetMin). */
  readonly subnetMax: number;
  /** Always true: weft refuses EnableIPv4 false. */
  readonly enableIPv4: boolean;
  /** Always false: weft refuses EnableIPv6 true. */
  readonly enableIPv6: boolean;
  /** `EnableNFTables`: masquerade and forward rules as nftables (flannel's) instead of iptables. */
  readonly enableNFTables: boolean;
  readonly backend: BackendSection;
  /** The JSON object as given (deep-frozen), to re-serialize it unchanged. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** The part of a NetConfig the subnet arithmetic needs. */
export type SubnetRange = Pick<NetConfig, 'network' | 'subnetLen' | 'subnetMin' | 'subnetMax'>;

/**
 * Parses and checks the text of a net-conf.json. `source` names where it came
 * from (a file path or an etcd key) and starts every error's path.
 */
export function parseNetConfig(text: string, source: string): NetConfig {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text; // tolerate a UTF-8 BOM
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw new ConfigError(source, text, `${source} is not valid JSON: ${describeJsonError(body, err)}`);
  }
  // first: describing a value nested thousands deep (showJson) would overflow the stack
  const problem = jsonValueProblem(parsed);
  if (problem !== undefined) throw new ConfigError(source, undefined, `${source} is not a network configuration: ${problem}`);
  if (!isJsonObject(parsed)) {
    throw new ConfigError(
      source,
      parsed,
      `${source} must hold a JSON object such as {"Network": "10.244.0.0/16"}, got ${showJson(parsed)} (${jsonKind(parsed)})`,
    );
  }
  return checkNetConfig(parsed, source);
}

// ---------------------------------------------------------------------------
// Checking and normalization

function checkNetConfig(root: Record<string, unknown>, source: string): NetConfig {
  const top = new ConfigFields(root, `${source}: `);
  const field = (name: string): string => `${source}: ${name}`;

  // Types first (what json.Unmarshal would refuse), then meaning.
  const enableIPv4 = top.boolean('EnableIPv4') ?? true;
  const enableIPv6 = top.boolean('EnableIPv6') ?? false;
  const enableNFTables = top.boolean('EnableNFTables') ?? false;
  const networkText = top.string('Network', '"10.244.0.0/16"');
  const subnetLenGiven = top.integer('SubnetLen');
  const subnetMinText = top.string('SubnetMin', '"10.244.1.0"');
  const subnetMaxText = top.string('SubnetMax', '"10.244.255.0"');
  const backendObject = top.object('Backend', '{"Type": "udp"}');

  if (!enableIPv4) {
    throw new ConfigError(
      field('EnableIPv4'),
      false,
      `${field('EnableIPv4')} false is not supported: weft is IPv4-only and needs EnableIPv4; ` +
        'remove the field or set it to true',
    );
  }
  if (enableIPv6) {
    throw new ConfigError(
      field('EnableIPv6'),
      true,
      `${field('EnableIPv6')} true is not supported: weft is IPv4-only; remove the field or set it to false`,
    );
  }

  const network = checkNetwork(networkText, field('Network'));
  const subnetLen = checkSubnetLen(subnetLenGiven, network, field('SubnetLen'));
  const size = prefixSize(subnetLen);
  const defaultMin = network.network + size;
  const defaultMax = prefixLast(network) + 1 - size;

  const subnetMin = checkBound(subnetMinText, defaultMin, network, subnetLen, field('SubnetMin'));
  const subnetMax = checkBound(subnetMaxText, defaultMax, network, subnetLen, field('SubnetMax'));
  if (subnetMin > subnetMax) {
    const minDesc = describeBound(subnetMinText, subnetMin);
    const maxDesc = describeBound(subnetMaxText, subnetMax);
    // Both defaults always leave room, so at least one bound was given; blame SubnetMin if it was.
    if (!givenNonZero(subnetMinText)) {
      throw new ConfigError(
        field('SubnetMax'),
        subnetMaxText,
        `${field('SubnetMax')} ${maxDesc} is below SubnetMin ${minDesc}: no subnet could be leased; ` +
          'SubnetMax must not be below SubnetMin',
      );
    }
    throw new ConfigError(
      field('SubnetMin'),
      subnetMinText,
      `${field('SubnetMin')} ${minDesc} is above SubnetMax ${maxDesc}: no subnet could be leased; ` +
        'SubnetMin must not be above SubnetMax',
    );
  }

  const backend = backendSection(backendObject, source);

  return Object.freeze({
    network: Object.freeze({ network: network.network, length: network.length }),
    subnetLen,
    subnetMin,
    subnetMax,
    enableIPv4: true,
    enableIPv6: false,
    enableNFTables,
    backend: Object.freeze(backend),
    raw: deepFreeze(root),
  });
}

function checkNetwork(text: string | undefined, path: string): Ipv4Prefix {
  if (text === undefined) {
    throw new ConfigError(path, undefined, `${path} is missing: it is required, e.g. "Network": "10.244.0.0/16"`);
  }
  const parsed = parseCidr(text);
  if (parsed === undefined) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is not an IPv4 CIDR: write address/prefix, e.g. "10.244.0.0/16"`,
    );
  }
  const { prefix } = parsed;
  if (parsed.address !== prefix.network) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} has host bits set: use ${JSON.stringify(formatPrefix(prefix))}`,
    );
  }
  if (prefix.length === 0) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is not allowed: the overlay cannot be the whole IPv4 space; ` +
        'use a private range such as "10.244.0.0/16"',
    );
  }
  if (prefix.length > MAX_NETWORK_PREFIX_LEN) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is too small: the prefix must be /${MAX_NETWORK_PREFIX_LEN} or shorter ` +
        'so that it holds at least four subnets of four addresses',
    );
  }
  return prefix;
}

function checkSubnetLen(given: number | undefined, network: Ipv4Prefix, path: string): number {
  if (given === undefined || given === 0) {
    // flannel: a /22 or larger gives each host a /24; smaller networks are split into four.
    return network.length <= DEFAULT_SUBNET_LEN - 2 ? DEFAULT_SUBNET_LEN : network.length + 2;
  }
  const min = network.length + 2;
  if (given < min || given > MAX_SUBNET_LEN) {
    throw new ConfigError(
      path,
      given,
      `${path} ${given} is not allowed: it must be between ${min} (Network prefix ${network.length} + 2) ` +
        `and ${MAX_SUBNET_LEN}`,
    );
  }
  return given;
}

/** SubnetMin or SubnetMax: absent or "0.0.0.0" -> the default; else inside Network and aligned. */
function checkBound(
  text: string | undefined,
  fallback: number,
  network: Ipv4Prefix,
  subnetLen: number,
  path: string,
): number {
  if (text === undefined) return fallback;
  const addr = parseIpv4(text);
  if (addr === undefined) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is not an IPv4 address: write a dotted quad such as ` +
        `${JSON.stringify(formatIpv4(fallback))}`,
    );
  }
  if (addr === 0) return fallback; // Go's zero value: flannel treats it as "not given"
  const first = network.network;
  const last = prefixLast(network) + 1 - prefixSize(subnetLen);
  if (!prefixContains(network, addr)) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is outside Network ${formatPrefix(network)}: ` +
        `it must be a /${subnetLen} subnet address between ${formatIpv4(first)} and ${formatIpv4(last)}`,
    );
  }
  const aligned = (addr & prefixMask(subnetLen)) >>> 0;
  if (aligned !== addr) {
    throw new ConfigError(
      path,
      text,
      `${path} ${JSON.stringify(text)} is not on a /${subnetLen} boundary (SubnetLen ${subnetLen}): ` +
        `use ${JSON.stringify(formatIpv4(aligned))}`,
    );
  }
  return addr;
}

function givenNonZero(text: string | undefined): boolean {
  return text !== undefined && parseIpv4(text) !== 0;
}

function describeBound(text: string | undefined, value: number): string {
  return givenNonZero(text) ? JSON.stringify(text) : `${formatIpv4(value)} (the default)`;
}

function backendSection(backend: Record<string, unknown> | undefined, source: string): BackendSection {
  if (backend === undefined) return { type: DEFAULT_BACKEND_TYPE, fields: deepFreeze({}), source };
  const type = new ConfigFields(backend, `${source}: Backend.`).string('Type', '"udp"') ?? '';
  return { type: type.toLowerCase(), fields: deepFreeze(backend), source };
}

// ---------------------------------------------------------------------------
// Subnet arithmetic (pure; used by lease allocation). Index 0 is SubnetMin.

/** Number of allocatable subnets, SubnetMin..SubnetMax inclusive. */
export function subnetCount(cfg: SubnetRange): number {
  return (cfg.subnetMax - cfg.subnetMin) / prefixSize(cfg.subnetLen) + 1;
}

/** The allocatable subnet number `index` (0 = SubnetMin). RangeError outside 0..subnetCount-1. */
export function subnetAt(cfg: SubnetRange, index: number): Ipv4Prefix {
  const count = subnetCount(cfg);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`subnet index ${index} is outside 0..${count - 1}`);
  }
  return { network: (cfg.subnetMin + index * prefixSize(cfg.subnetLen)) >>> 0, length: cfg.subnetLen };
}

/** Index of the allocatable subnet that contains `addr`, or -1 when none does. */
export function subnetIndexOf(cfg: SubnetRange, addr: number): number {
  const a = addr >>> 0;
  const size = prefixSize(cfg.subnetLen);
  if (a < cfg.subnetMin || a > cfg.subnetMax + size - 1) return -1;
  return Math.floor((a - cfg.subnetMin) / size);
}

/** True when `prefix` could be a lease: right length, aligned, inside Network, within [SubnetMin, SubnetMax]. */
export function isValidLeaseSubnet(cfg: SubnetRange, prefix: Ipv4Prefix): boolean {
  const addr = prefix.network >>> 0;
  return (
    prefix.length === cfg.subnetLen &&
    ((addr & prefixMask(cfg.subnetLen)) >>> 0) === addr &&
    prefixContains(cfg.network, addr) &&
    addr >= cfg.subnetMin &&
    addr <= cfg.subnetMax
  );
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

// ---------------------------------------------------------------------------
// JSON syntax errors with a line and column
//
// V8's JSON.parse messages give a position for some errors and not others, so
// when parsing fails a small RFC 8259 scanner finds the first error itself.

class JsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function describeJsonError(text: string, parseError: unknown): string {
  let found: JsonSyntaxError | undefined;
  try {
    scanJson(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) found = err;
    // anything else (e.g. stack overflow on absurd nesting): fall back to V8's text
  }
  if (found === undefined) return parseError instanceof Error ? parseError.message : String(parseError);
  const before = text.slice(0, found.offset);
  const line = before.split('\n').length;
  const column = found.offset - (before.lastIndexOf('\n') + 1) + 1;
  return `${found.reason} at line ${line}, column ${column}`;
}

function scanJson(text: string): void {
  let i = 0;
  const n = text.length;
  function fail(reason: string): never {
    throw new JsonSyntaxError(i, reason);
  }
  const here = (): string => (i < n ? `unexpected ${JSON.stringify(text[i])}` : 'unexpected end of input');
  const skipSpace = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const digits = (): number => {
    const start = i;
    while (i < n && text[i]! >= '0' && text[i]! <= '9') i++;
    return i - start;
  };

  const scanString = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in a string (escape it)');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i++;
        } else if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) {
            if (i >= n || !/[0-9a-fA-F]/.test(text[i]!)) fail('bad \\u escape (four hex digits expected)');
          }
        } else {
          fail('bad escape sequence in a string');
        }
      } else {
        i++;
      }
    }
  };

  const scanNumber = (): void => {
    if (text[i] === '-') i++;
    if (text[i] === '0') {
      i++;
      if (i < n && text[i]! >= '0' && text[i]! <= '9') fail('leading zero in a number');
    } else if (digits() === 0) {
      fail(`${here()}, expected a digit`);
    }
    if (text[i] === '.') {
      i++;
      if (digits() === 0) fail(`${here()}, expected a digit after the decimal point`);
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (digits() === 0) fail(`${here()}, expected a digit in the exponent`);
    }
  };

  const scanValue = (): void => {
    skipSpace();
    const c = text[i];
    if (c === undefined) fail('unexpected end of input, expected a value');
    if (c === '{') {
      i++;
      skipSpace();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        skipSpace();
        if (text[i] !== '"') fail(`${here()}, expected a double-quoted property name`);
        scanString();
        skipSpace();
        if (text[i] !== ':') fail(`${here()}, expected ':' after a property name`);
        i++;
        scanValue();
        skipSpace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`${here()}, expected ',' or '}' after a property value`);
      }
    }
    if (c === '[') {
      i++;
      skipSpace();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        scanValue();
        skipSpace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`${here()}, expected ',' or ']' after an array element`);
      }
    }
    if (c === '"') return scanString();
    if (c === '-' || (c >= '0' && c <= '9')) return scanNumber();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    fail(`${here()}, expected a value`);
  };

  scanValue();
  skipSpace();
  if (i < n) fail(`${here()} after the end of the JSON value`);
}
