/**
 * Typed access to the fields of one JSON object from a configuration file
 * (net-conf.json and its `Backend` section), with flanneld's key matching:
 * keys match case-insensitively, as Go's encoding/json does; two keys that
 * differ only in case are refused; `null` reads as "not given". Every
 * rejection is a ConfigError whose path is `<prefix><Field>` and whose message
 * names the value and what is allowed.
 */
import { ConfigError } from '../errors';

export class ConfigFields {
  constructor(
    private readonly obj: Readonly<Record<string, unknown>>,
    /** e.g. "net-conf.json: " or "net-conf.json: Backend." */
    readonly pathPrefix: string,
  ) {}

  /** The path of a field for messages, e.g. "net-conf.json: Backend.VNI". */
  path(name: string): string {
    return this.pathPrefix + name;
  }

  private lookup(name: string): unknown {
    const wanted = name.toLowerCase();
    const keys = Object.keys(this.obj).filter((k) => k.toLowerCase() === wanted);
    if (keys.length > 1) {
      const path = this.path(name);
      throw new ConfigError(
        path,
        keys,
        `${path} is set more than once (keys ${keys.map((k) => JSON.stringify(k)).join(' and ')}; ` +
          'field names match case-insensitively, as in flanneld): keep only one',
      );
    }
    const key = keys[0];
    if (key === undefined) return undefined;
    const value = this.obj[key];
    return value === null ? undefined : value;
  }

  string(name: string, example: string): string | undefined {
    const value = this.lookup(name);
    if (value === undefined || typeof value === 'string') return value;
    const path = this.path(name);
    const message = `${path} must be a string such as ${example}, got ${showJson(value)} (${jsonKind(value)})`;
    throw new ConfigError(path, value, message);
  }

  integer(name: string): number | undefined {
    const value = this.lookup(name);
    if (value === undefined || (typeof value === 'number' && Number.isInteger(value))) return value;
    const path = this.path(name);
    let message = `${path} must be a whole number, got ${showJson(value)}`;
    if (typeof value !== 'number') message += ` (${jsonKind(value)})`;
    if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) {
      message += `: write it without quotes, e.g. "${name}": ${value.trim()}`;
    }
    throw new ConfigError(path, value, message);
  }

  boolean(name: string): boolean | undefined {
    const value = this.lookup(name);
    if (value === undefined || typeof value === 'boolean') return value;
    const path = this.path(name);
    let message = `${path} must be true or false, got ${showJson(value)} (${jsonKind(value)})`;
    if (value === 'true' || value === 'false') message += `: write it without quotes, e.g. "${name}": ${value}`;
    throw new ConfigError(path, value, message);
  }

  object(name: string, example: string): Record<string, unknown> | undefined {
    const value = this.lookup(name);
    if (value === undefined || isJsonObject(value)) return value;
    const path = this.path(name);
    const message = `${path} must be an object such as ${example}, got ${showJson(value)} (${jsonKind(value)})`;
    throw new ConfigError(path, value, message);
  }
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "a string", "a number", ... for messages. */
export function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

const SHOW_MAX_CHARS = 60;

/** A JSON value as it would be written, shortened. */
export function showJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= SHOW_MAX_CHARS ? text : `${text.slice(0, SHOW_MAX_CHARS - 3)}...`;
}
