/**
 * Addresses written as text in tests, parsed by weft's own parser; a typo in
 * a test is a test bug, said at once.
 */
import assert from 'node:assert/strict';
import { parseCidr, parseIpv4, type Ipv4Prefix } from '../src/net/ipv4';

export function ip(text: string): number {
  const addr = parseIpv4(text);
  assert.ok(addr !== undefined, `test bug: bad address ${text}`);
  return addr;
}

/** The prefix of "a.b.c.d/len" (host bits allowed: "10.244.3.1/24" is 10.244.3.0/24). */
export function cidr(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined, `test bug: bad CIDR ${text}`);
  return parsed.prefix;
}

/** Like cidr, for a network written without host bits ("10.244.3.0/24"). */
export function network(text: string): Ipv4Prefix {
  const parsed = parseCidr(text);
  assert.ok(parsed !== undefined && parsed.address === parsed.prefix.network, `test bug: bad CIDR ${text}`);
  return parsed.prefix;
}
