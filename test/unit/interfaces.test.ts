/**
 * The pure parts of picking the underlay interface (src/net/interfaces.ts):
 * `--iface-regex` matching, flanneld's way (addresses first, then names), and
 * interface-name validation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError } from '../../src/errors';
import { matchIfaceRegex, validateInterfaceName, type IfaceInfo } from '../../src/net/interfaces';
import { formatIpv4, parseIpv4 } from '../../src/net/ipv4';

function iface(name: string, ...addresses: string[]): IfaceInfo {
  return {
    name,
    addresses: addresses.map((a) => {
      const n = parseIpv4(a);
      assert.ok(n !== undefined, `test bug: bad address ${a}`);
      return n;
    }),
  };
}

/** The match as "name address", or 'none'. */
function match(interfaces: readonly IfaceInfo[], re: RegExp): string {
  const m = matchIfaceRegex(interfaces, re);
  return m === undefined ? 'none' : `${m.name} ${formatIpv4(m.address)}`;
}

const HOST: IfaceInfo[] = [
  iface('lo', '127.0.0.1'),
  iface('eth0', '10.0.0.5', '192.168.64.3'),
  iface('eth1', '192.168.65.3'),
  iface('docker0'),
  iface('flannel.1', '10.244.1.0'),
];

describe('matchIfaceRegex', () => {
  it('an address match returns the address that matched, not the interface\'s first', () => {
    assert.equal(match(HOST, /^192\.168\.64\./), 'eth0 192.168.64.3');
    assert.equal(match(HOST, /^10\.0\.0\.5$/), 'eth0 10.0.0.5');
  });

  it('a name match returns the interface\'s first address', () => {
    assert.equal(match(HOST, /^eth/), 'eth0 10.0.0.5');
    assert.equal(match(HOST, /^eth1$/), 'eth1 192.168.65.3');
    assert.equal(match(HOST, /^flannel\.1$/), 'flannel.1 10.244.1.0');
  });

  it('an address match wins over an earlier interface whose name matches', () => {
    const interfaces = [iface('eth1', '192.168.65.3'), iface('eth0', '10.0.0.5')];
    assert.equal(match(interfaces, /^eth1$|^10\.0\.0\.5$/), 'eth0 10.0.0.5');
  });

  it('among address matches, the first interface in order wins', () => {
    assert.equal(match(HOST, /^192\.168\./), 'eth0 192.168.64.3');
    assert.equal(match([iface('b', '192.168.2.1'), iface('a', '192.168.1.1')], /^192\.168\./), 'b 192.168.2.1');
  });

  it('interfaces without an IPv4 address are skipped for name matches', () => {
    assert.equal(match(HOST, /^docker/), 'none');
    assert.equal(match([iface('eth0'), iface('eth0.100', '172.16.0.1')], /^eth0/), 'eth0.100 172.16.0.1');
  });

  it('the regex is unanchored, as Go\'s regexp.MatchString', () => {
    assert.equal(match(HOST, /65/), 'eth1 192.168.65.3');
    assert.equal(match(HOST, /ker/), 'none');
    assert.equal(match(HOST, /lannel/), 'flannel.1 10.244.1.0');
  });

  it('no match, or no interfaces, is undefined', () => {
    assert.equal(matchIfaceRegex(HOST, /^wlan/), undefined);
    assert.equal(matchIfaceRegex([], /.*/), undefined);
  });

  it('returns the exact result object', () => {
    assert.deepEqual(matchIfaceRegex(HOST, /^192\.168\.64\.3$/), { name: 'eth0', address: 0xc0a84003 });
  });
});

describe('validateInterfaceName', () => {
  it('accepts 1 to 15 letters, digits, ".", "-" and "_"', () => {
    for (const name of ['eth0', 'flannel.1', 'flannel.0', 'a', '0', 'br-1_2.3', 'x'.repeat(15), 'ENS5', '1tun', '...', '_']) {
      assert.doesNotThrow(() => validateInterfaceName(name, '--tun-name'), name);
    }
  });

  it('refuses anything else with a ConfigError naming the flag and the value', () => {
    for (const name of ['', 'x'.repeat(16), 'eth 0', 'eth0/1', 'eth:0', '.', '..', 'tun@1', 'ünïcode', 'eth0\n', ' eth0']) {
      assert.throws(() => validateInterfaceName(name, '--tun-name'), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
        assert.equal(err.code, 'WEFT_ERR_CONFIG');
        assert.equal(err.path, '--tun-name');
        assert.equal(err.value, name);
        assert.equal(err.message,
          `--tun-name "${name}" is not a valid interface name: use 1 to 15 characters from letters, digits, '.', '-' and '_'`);
        return true;
      }, JSON.stringify(name));
    }
  });

  it('names the flag it was given', () => {
    assert.throws(() => validateInterfaceName('bad name', '--iface'), {
      name: 'ConfigError',
      path: '--iface',
      message: '--iface "bad name" is not a valid interface name: use 1 to 15 characters from letters, digits, \'.\', \'-\' and \'_\'',
    });
  });
});
