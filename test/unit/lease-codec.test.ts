/**
 * Lease keys and values exactly as flannel stores them in etcd:
 *   key    <prefix>/subnets/10.244.52.0-24
 *   value  {"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { LeaseError } from '../../src/errors';
import { parseIpv4, prefixMask } from '../../src/net/ipv4';
import {
  decodeLeaseAttrs,
  encodeLeaseAttrs,
  parseSubnetKeyName,
  subnetKeyName,
  type LeaseAttrs,
} from '../../src/subnet/lease';
import { seededRandom } from '../prng';

function ip(text: string): number {
  const value = parseIpv4(text);
  assert.ok(value !== undefined, `bad test address ${text}`);
  return value;
}

describe('subnetKeyName', () => {
  const cases: Array<[number, number, string]> = [
    [ip('10.244.52.0'), 24, '10.244.52.0-24'],
    [ip('10.5.0.0'), 16, '10.5.0.0-16'],
    [ip('192.168.1.252'), 30, '192.168.1.252-30'],
    [0, 0, '0.0.0.0-0'],
    [0xffffffff, 32, '255.255.255.255-32'],
  ];
  for (const [network, length, name] of cases) {
    it(`names ${name}`, () => {
      assert.equal(subnetKeyName({ network, length }), name);
    });
  }
});

describe('parseSubnetKeyName', () => {
  it('reads flannel key names', () => {
    assert.deepEqual(parseSubnetKeyName('10.244.52.0-24'), { network: ip('10.244.52.0'), length: 24 });
    assert.deepEqual(parseSubnetKeyName('10.5.52.0-24'), { network: 0x0a053400, length: 24 });
    assert.deepEqual(parseSubnetKeyName('10.5.0.0-16'), { network: 0x0a050000, length: 16 });
    assert.deepEqual(parseSubnetKeyName('192.168.1.252-30'), { network: ip('192.168.1.252'), length: 30 });
    assert.deepEqual(parseSubnetKeyName('10.1.2.3-32'), { network: ip('10.1.2.3'), length: 32 });
    assert.deepEqual(parseSubnetKeyName('0.0.0.0-0'), { network: 0, length: 0 });
    assert.deepEqual(parseSubnetKeyName('255.255.255.255-32'), { network: 0xffffffff, length: 32 });
  });

  it('refuses host bits set', () => {
    for (const name of ['10.244.52.1-24', '10.244.52.0-16', '10.5.1.0-8', '10.0.0.3-31', '0.0.0.1-0', '192.168.1.254-30']) {
      assert.equal(parseSubnetKeyName(name), undefined, name);
    }
  });

  it('refuses bad prefix lengths', () => {
    for (const name of ['10.0.0.0-33', '10.0.0.0-99', '10.0.0.0-123', '10.0.0.0-', '10.0.0.0--1', '10.0.0.0-2a', '10.0.0.0-+8']) {
      assert.equal(parseSubnetKeyName(name), undefined, name);
    }
  });

  it('refuses junk', () => {
    const junk = [
      '', 'config', '-', '10.0.0.0/24', '10.0.0.0_24', '10.0.0-24', '10.0.0.0.0-24', '256.0.0.0-8', '10.256.0.0-16',
      '010.0.0.0-8', '1e1.0.0.0-8', ' 10.0.0.0-24', '10.0.0.0-24 ', '10.0.0.0-24\n', 'x10.0.0.0-24', '10.0.0.0-24x',
      'subnets/10.0.0.0-24', '10.0.0.0-24/extra', '::1-128', 'fd00::-64',
    ];
    for (const name of junk) assert.equal(parseSubnetKeyName(name), undefined, JSON.stringify(name));
  });

  it('refuses a prefix length written with a leading zero (not a key weft or flannel writes)', () => {
    for (const name of ['10.0.0.0-08', '10.0.0.0-00', '10.0.0.0-024']) assert.equal(parseSubnetKeyName(name), undefined, name);
  });

  it("reads the IPv4 part of flannel's dual-stack keys", () => {
    assert.deepEqual(parseSubnetKeyName('10.5.31.0-24&fc00::-64'), { network: ip('10.5.31.0'), length: 24 });
    assert.deepEqual(parseSubnetKeyName('10.5.31.0-24&FC00:0:0:1::-64'), { network: ip('10.5.31.0'), length: 24 });
    for (const name of ['10.5.31.0-24&', '10.5.31.0-24&fc00::', '10.5.31.0-24&fc00::-', '10.5.31.0-24&zz::-64',
      '10.5.31.0-24&fc00::-1289', '10.5.31.1-24&fc00::-64', '10.5.31.0-24&fc00::-64&fd00::-64']) {
      assert.equal(parseSubnetKeyName(name), undefined, name);
    }
  });

  it('round-trips every prefix (randomized)', () => {
    const next = seededRandom(0x5eed);
    for (let i = 0; i < 5000; i++) {
      const length = next() % 33;
      const network = (next() & prefixMask(length)) >>> 0;
      const name = subnetKeyName({ network, length });
      assert.deepEqual(parseSubnetKeyName(name), { network, length }, name);
    }
  });
});

describe('encodeLeaseAttrs', () => {
  it('writes a udp lease byte for byte as flannel does', () => {
    assert.equal(
      encodeLeaseAttrs({ publicIp: ip('192.168.64.3'), backendType: 'udp' }),
      '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}',
    );
  });

  it('writes BackendData after BackendType', () => {
    assert.equal(
      encodeLeaseAttrs({ publicIp: ip('10.0.0.1'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } }),
      '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}',
    );
  });

  it('omits an empty BackendType', () => {
    assert.equal(encodeLeaseAttrs({ publicIp: ip('10.0.0.1'), backendType: '' }), '{"PublicIP":"10.0.0.1","PublicIPv6":null}');
  });

  it('omits a null BackendData', () => {
    assert.equal(
      encodeLeaseAttrs({ publicIp: ip('10.0.0.1'), backendType: 'udp', backendData: null }),
      '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"udp"}',
    );
  });

  it('writes the edge addresses', () => {
    assert.equal(encodeLeaseAttrs({ publicIp: 0, backendType: 'udp' }), '{"PublicIP":"0.0.0.0","PublicIPv6":null,"BackendType":"udp"}');
    assert.equal(
      encodeLeaseAttrs({ publicIp: 0xffffffff, backendType: 'udp' }),
      '{"PublicIP":"255.255.255.255","PublicIPv6":null,"BackendType":"udp"}',
    );
  });

  it('round-trips through decodeLeaseAttrs', () => {
    const samples: LeaseAttrs[] = [
      { publicIp: ip('192.168.64.3'), backendType: 'udp' },
      { publicIp: ip('10.0.0.1'), backendType: '' },
      { publicIp: ip('10.0.0.1'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } },
      { publicIp: ip('172.16.0.9'), backendType: 'host-gw', backendData: [1, 'two', { three: null }] },
    ];
    for (const attrs of samples) assert.deepEqual(decodeLeaseAttrs(encodeLeaseAttrs(attrs), 'k'), attrs);
  });
});

describe('decodeLeaseAttrs', () => {
  const WHERE = '/coreos.com/network/subnets/10.5.52.0-24';

  it('reads what flannel writes', () => {
    assert.deepEqual(
      decodeLeaseAttrs('{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"udp"}', WHERE),
      { publicIp: ip('192.168.64.3'), backendType: 'udp' },
    );
    assert.deepEqual(
      decodeLeaseAttrs('{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}', WHERE),
      { publicIp: ip('10.0.0.1'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } },
    );
  });

  it('tolerates any field order and whitespace', () => {
    assert.deepEqual(
      decodeLeaseAttrs('{"BackendType":"udp","PublicIPv6":null,"PublicIP":"192.168.64.3"}', WHERE),
      { publicIp: ip('192.168.64.3'), backendType: 'udp' },
    );
    assert.deepEqual(
      decodeLeaseAttrs('{\n  "BackendData": {"VNI": 7},\n  "BackendType": "vxlan",\n  "PublicIP": "10.0.0.2"\n}\n', WHERE),
      { publicIp: ip('10.0.0.2'), backendType: 'vxlan', backendData: { VNI: 7 } },
    );
  });

  it('ignores unknown fields and a PublicIPv6 of any kind', () => {
    assert.deepEqual(
      decodeLeaseAttrs('{"PublicIP":"1.2.3.4","PublicIPv6":"fd00::1","BackendType":"udp","BackendV6Data":{"x":[1]},"Future":7}', WHERE),
      { publicIp: ip('1.2.3.4'), backendType: 'udp' },
    );
  });

  it('reads a missing or null BackendType as ""', () => {
    assert.deepEqual(decodeLeaseAttrs('{"PublicIP":"1.2.3.4","PublicIPv6":null}', WHERE), { publicIp: ip('1.2.3.4'), backendType: '' });
    assert.deepEqual(decodeLeaseAttrs('{"PublicIP":"1.2.3.4"}', WHERE), { publicIp: ip('1.2.3.4'), backendType: '' });
    assert.deepEqual(decodeLeaseAttrs('{"PublicIP":"1.2.3.4","BackendType":null}', WHERE), { publicIp: ip('1.2.3.4'), backendType: '' });
  });

  it('leaves out a null BackendData (no backendData key at all)', () => {
    const attrs = decodeLeaseAttrs('{"PublicIP":"1.2.3.4","BackendType":"udp","BackendData":null}', WHERE);
    assert.deepEqual(attrs, { publicIp: ip('1.2.3.4'), backendType: 'udp' });
    assert.equal(Object.prototype.hasOwnProperty.call(attrs, 'backendData'), false);
  });

  /** Asserts a LeaseError with exactly `message`. */
  function rejects(text: string, message: string): void {
    assert.throws(() => decodeLeaseAttrs(text, WHERE), (err: unknown) => {
      assert.ok(err instanceof LeaseError, `expected a LeaseError, got ${String(err)}`);
      assert.equal(err.code, 'WEFT_ERR_LEASE');
      assert.equal(err.message, message);
      return true;
    });
  }

  /** The JavaScript engine's own JSON.parse message for `text`. */
  function jsonMessage(text: string): string {
    try {
      JSON.parse(text);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`${text} parsed`);
  }

  it('refuses text that is not JSON, quoting it', () => {
    for (const text of ['not json', '', '{"PublicIP":"1.2.3.4"', "{'PublicIP':'1.2.3.4'}"]) {
      rejects(text, `${WHERE}: the lease value is not JSON (${jsonMessage(text)}): ${text}`);
    }
  });

  it('quotes at most 200 characters of a long non-JSON value', () => {
    const text = `x${'y'.repeat(300)}`;
    rejects(text, `${WHERE}: the lease value is not JSON (${jsonMessage(text)}): x${'y'.repeat(199)}`);
  });

  it('refuses JSON that is not an object', () => {
    const message = `${WHERE}: the lease value must be a JSON object such as {"PublicIP":"192.168.1.10","BackendType":"udp"}`;
    for (const text of ['null', '[]', '[{"PublicIP":"1.2.3.4"}]', '"1.2.3.4"', '42', 'true']) rejects(text, message);
  });

  it('refuses a PublicIP that is not an IPv4 address', () => {
    rejects('{"PublicIP":"10.0.0","BackendType":"udp"}', `${WHERE}: the lease's PublicIP "10.0.0" is not an IPv4 address`);
    rejects('{"PublicIP":"fd00::1","BackendType":"udp"}', `${WHERE}: the lease's PublicIP "fd00::1" is not an IPv4 address`);
    rejects('{"PublicIP":"300.1.1.1"}', `${WHERE}: the lease's PublicIP "300.1.1.1" is not an IPv4 address`);
    rejects('{"PublicIP":""}', `${WHERE}: the lease's PublicIP "" is not an IPv4 address`);
    rejects('{"PublicIP":167772161}', `${WHERE}: the lease's PublicIP 167772161 is not an IPv4 address`);
    rejects('{"PublicIP":null}', `${WHERE}: the lease has no PublicIP; flannel's format is {"PublicIP":"192.168.1.10","BackendType":"udp"}`);
    rejects('{"PublicIP":["1.2.3.4"]}', `${WHERE}: the lease's PublicIP ["1.2.3.4"] is not an IPv4 address`);
    rejects('{"BackendType":"udp"}', `${WHERE}: the lease has no PublicIP; flannel's format is {"PublicIP":"192.168.1.10","BackendType":"udp"}`);
  });

  it('refuses a BackendType that is not a string', () => {
    rejects('{"PublicIP":"1.2.3.4","BackendType":5}', `${WHERE}: the lease's BackendType must be a string, got 5`);
    rejects('{"PublicIP":"1.2.3.4","BackendType":true}', `${WHERE}: the lease's BackendType must be a string, got true`);
    rejects('{"PublicIP":"1.2.3.4","BackendType":{"Type":"udp"}}', `${WHERE}: the lease's BackendType must be a string, got {"Type":"udp"}`);
    rejects('{"PublicIP":"1.2.3.4","BackendType":["udp"]}', `${WHERE}: the lease's BackendType must be a string, got ["udp"]`);
  });
});
