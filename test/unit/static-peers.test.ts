import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { checkPeers, parsePeerSpec, parsePeersFile, type StaticPeer } from '../../src/subnet/static-peers';
import { ConfigError } from '../../src/errors';

// Addresses written out as numbers here, so that no expectation goes through src/net.
const NET_10_244_2_0 = 0x0af40200;
const NET_10_244_3_0 = 0x0af40300;
const IP_192_168_1_12 = 0xc0a8010c;
const IP_192_168_1_13 = 0xc0a8010d;

const EXAMPLE = 'expected CIDR=IP[:PORT], e.g. 10.244.2.0/24=192.168.1.12:8285';

function lease(network: number, length: number, publicIp: number, port: number | undefined): StaticPeer {
  return { subnet: { network, length }, publicIp, port };
}

/** Asserts that parsing throws a ConfigError with exactly this path, value and message. */
function rejects(parse: () => unknown, path: string, value: string, message: string): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'WEFT_ERR_CONFIG');
    assert.equal(err.path, path);
    assert.equal(err.value, value);
    assert.equal(err.message, message);
    return true;
  });
}

describe('parsePeerSpec: accepted forms', () => {
  it("CIDR=IP leaves the port to the network's Backend.Port", () => {
    assert.deepEqual(parsePeerSpec('10.244.2.0/24=192.168.1.12'), lease(NET_10_244_2_0, 24, IP_192_168_1_12, undefined));
  });

  it('CIDR=IP:PORT takes the given port', () => {
    assert.deepEqual(parsePeerSpec('10.244.3.0/24=192.168.1.13:8300'), lease(NET_10_244_3_0, 24, IP_192_168_1_13, 8300));
  });

  it('accepts ports 1 and 65535', () => {
    assert.equal(parsePeerSpec('10.244.2.0/24=192.168.1.12:1').port, 1);
    assert.equal(parsePeerSpec('10.244.2.0/24=192.168.1.12:65535').port, 65535);
  });

  it('ignores spaces around the CIDR and the target', () => {
    assert.deepEqual(parsePeerSpec('  10.244.2.0/24 =  192.168.1.12:8300 '), lease(NET_10_244_2_0, 24, IP_192_168_1_12, 8300));
  });

  it('accepts other prefix lengths, /32 included', () => {
    assert.deepEqual(parsePeerSpec('10.244.2.0/23=192.168.1.12'), lease(NET_10_244_2_0, 23, IP_192_168_1_12, undefined));
    assert.deepEqual(parsePeerSpec('10.244.2.7/32=192.168.1.12'), lease(NET_10_244_2_0 + 7, 32, IP_192_168_1_12, undefined));
  });
});

describe('parsePeerSpec: errors', () => {
  it('no "=" at all', () => {
    rejects(() => parsePeerSpec('10.244.2.0/24'), '--peer', '10.244.2.0/24',
      `--peer "10.244.2.0/24" is malformed: ${EXAMPLE}`);
    rejects(() => parsePeerSpec(''), '--peer', '', `--peer "" is malformed: ${EXAMPLE}`);
  });

  it('the left side is not a CIDR', () => {
    rejects(() => parsePeerSpec('10.244.2.0=192.168.1.12'), '--peer', '10.244.2.0=192.168.1.12',
      `--peer "10.244.2.0=192.168.1.12": "10.244.2.0" is not an IPv4 CIDR; ${EXAMPLE}`);
    rejects(() => parsePeerSpec('10.244.2.0/33=192.168.1.12'), '--peer', '10.244.2.0/33=192.168.1.12',
      `--peer "10.244.2.0/33=192.168.1.12": "10.244.2.0/33" is not an IPv4 CIDR; ${EXAMPLE}`);
    rejects(() => parsePeerSpec('=192.168.1.12'), '--peer', '=192.168.1.12',
      `--peer "=192.168.1.12": "" is not an IPv4 CIDR; ${EXAMPLE}`);
  });

  it('the CIDR has host bits set, and the message suggests the network', () => {
    rejects(() => parsePeerSpec('10.244.2.1/24=192.168.1.12'), '--peer', '10.244.2.1/24=192.168.1.12',
      '--peer "10.244.2.1/24=192.168.1.12": 10.244.2.1/24 has host bits set; did you mean 10.244.2.0/24?');
  });

  it('the right side is not an IPv4 address', () => {
    rejects(() => parsePeerSpec('10.244.2.0/24=node-b.example'), '--peer', '10.244.2.0/24=node-b.example',
      `--peer "10.244.2.0/24=node-b.example": "node-b.example" is not an IPv4 address; ${EXAMPLE}`);
    rejects(() => parsePeerSpec('10.244.2.0/24='), '--peer', '10.244.2.0/24=',
      `--peer "10.244.2.0/24=": "" is not an IPv4 address; ${EXAMPLE}`);
    rejects(() => parsePeerSpec('10.244.2.0/24=192.168.1.256:8285'), '--peer', '10.244.2.0/24=192.168.1.256:8285',
      `--peer "10.244.2.0/24=192.168.1.256:8285": "192.168.1.256" is not an IPv4 address; ${EXAMPLE}`);
  });

  it('an IPv6 target is named as such', () => {
    rejects(() => parsePeerSpec('10.244.2.0/24=fd00::2'), '--peer', '10.244.2.0/24=fd00::2',
      `--peer "10.244.2.0/24=fd00::2": "fd00::2" looks like an IPv6 address; weft's udp backend is IPv4-only`);
    rejects(() => parsePeerSpec('10.244.2.0/24=[fd00::2]:8285'), '--peer', '10.244.2.0/24=[fd00::2]:8285',
      `--peer "10.244.2.0/24=[fd00::2]:8285": "[fd00::2]:8285" looks like an IPv6 address; weft's udp backend is IPv4-only`);
  });

  for (const port of ['0', '65536', '123456', 'http', '', '-1', '8285:1']) {
    it(`port "${port}" is refused`, () => {
      const text = `10.244.2.0/24=192.168.1.12:${port}`;
      rejects(() => parsePeerSpec(text), '--peer', text,
        `--peer "${text}": port "${port}" must be a number from 1 to 65535`);
    });
  }

  it('names the place given by the caller', () => {
    rejects(() => parsePeerSpec('nonsense', 'peers.txt:4'), 'peers.txt:4', 'nonsense',
      `peers.txt:4 "nonsense" is malformed: ${EXAMPLE}`);
  });
});

describe('parsePeersFile', () => {
  it('reads one spec per line, skipping blank lines and # comments, tolerating CRLF', () => {
    const text = [
      '# peers of host a',
      '',
      '10.244.2.0/24=192.168.1.12',
      '   10.244.3.0/24=192.168.1.13:8300   # host c, custom port',
      '\t',
      '#10.244.4.0/24=192.168.1.14',
      '10.244.5.0/24=192.168.1.15\r',
    ].join('\n');
    assert.deepEqual(parsePeersFile(text, '/etc/weft/peers'), [
      lease(NET_10_244_2_0, 24, IP_192_168_1_12, undefined),
      lease(NET_10_244_3_0, 24, IP_192_168_1_13, 8300),
      lease(0x0af40500, 24, 0xc0a8010f, undefined),
    ]);
  });

  it('an empty file or a file of comments gives no peers', () => {
    assert.deepEqual(parsePeersFile('', 'p'), []);
    assert.deepEqual(parsePeersFile('# nothing yet\n\n', 'p'), []);
  });

  it('a bad line is reported with the file name and its 1-based line number', () => {
    const text = '# header\n10.244.2.0/24=192.168.1.12\n10.244.3.1/24=192.168.1.13\n';
    rejects(() => parsePeersFile(text, '/etc/weft/peers'), '/etc/weft/peers:3', '10.244.3.1/24=192.168.1.13',
      '/etc/weft/peers:3 "10.244.3.1/24=192.168.1.13": 10.244.3.1/24 has host bits set; did you mean 10.244.3.0/24?');
  });

  it('the value in the error is the line without its comment', () => {
    rejects(() => parsePeersFile('10.244.2.0/24 # forgot the target\n', 'peers'), 'peers:1', '10.244.2.0/24',
      `peers:1 "10.244.2.0/24" is malformed: ${EXAMPLE}`);
  });
});

describe('checkPeers', () => {
  const network = { network: 0x0af40000, length: 16 }; // 10.244.0.0/16
  const own = { network: 0x0af40100, length: 24 }; // 10.244.1.0/24
  const peer = (text: string) => parsePeerSpec(text);

  it('accepts distinct peers inside the network', () => {
    checkPeers(network, own, [peer('10.244.2.0/24=192.168.1.2'), peer('10.244.3.0/24=192.168.1.3')], ['--peer', '--peer']);
  });

  it('refuses a peer outside the network', () => {
    rejects(() => checkPeers(network, own, [peer('10.5.2.0/24=192.168.1.2')], ['--peer']), '--peer', '10.5.2.0/24',
      '--peer: peer subnet 10.5.2.0/24 is outside the cluster network 10.244.0.0/16');
  });

  it("refuses a peer overlapping this host's subnet", () => {
    rejects(() => checkPeers(network, own, [peer('10.244.1.0/25=192.168.1.2')], ['f:1']), 'f:1', '10.244.1.0/25',
      "f:1: peer subnet 10.244.1.0/25 overlaps this host's own subnet 10.244.1.0/24");
  });

  it('refuses a subnet given twice, naming both places', () => {
    rejects(() => checkPeers(network, own, [peer('10.244.2.0/24=192.168.1.2'), peer('10.244.2.0/24=192.168.1.9')], ['--peer', '/etc/peers']),
      '/etc/peers', '10.244.2.0/24',
      '/etc/peers: peer subnet 10.244.2.0/24 is already given by --peer; list each subnet once');
  });
});
