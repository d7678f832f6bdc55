import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError } from '../../src/errors';
import { formatIpv4, formatPrefix, prefixMask, type Ipv4Prefix } from '../../src/net/ipv4';
import {
  isValidLeaseSubnet,
  parseNetConfig,
  subnetAt,
  subnetCount,
  subnetIndexOf,
  type NetConfig,
  type SubnetRange,
} from '../../src/subnet';
import { cidr, ip } from '../addresses';

const SRC = '/etc/kube-flannel/net-conf.json';

function parse(obj: unknown): NetConfig {
  return parseNetConfig(JSON.stringify(obj), SRC);
}

/** Asserts that `text` is refused with exactly this path, value and message. */
function rejectsText(text: string, path: string, value: unknown, message: string): void {
  assert.throws(
    () => parseNetConfig(text, SRC),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.equal(err.name, 'ConfigError');
      assert.equal(err.code, 'WEFT_ERR_CONFIG');
      assert.equal(err.message, message);
      assert.equal(err.path, path);
      assert.deepEqual(err.value, value);
      return true;
    },
  );
}

function rejects(obj: unknown, field: string, value: unknown, message: string): void {
  rejectsText(JSON.stringify(obj), field === '' ? SRC : `${SRC}: ${field}`, value, message);
}

/** A readable summary of the derived subnet range. */
function summary(cfg: NetConfig): string {
  return `${formatPrefix(cfg.network)} len ${cfg.subnetLen} min ${formatIpv4(cfg.subnetMin)} max ${formatIpv4(cfg.subnetMax)}`;
}

describe('parseNetConfig: Network and derived defaults', () => {
  const cases: Array<[string, string]> = [
    ['10.0.0.0/8', '10.0.0.0/8 len 24 min 10.0.1.0 max 10.255.255.0'],
    ['10.5.0.0/16', '10.5.0.0/16 len 24 min 10.5.1.0 max 10.5.255.0'],
    ['10.5.16.0/20', '10.5.16.0/20 len 24 min 10.5.17.0 max 10.5.31.0'],
    ['10.5.0.0/22', '10.5.0.0/22 len 24 min 10.5.1.0 max 10.5.3.0'],
    ['10.5.0.0/23', '10.5.0.0/23 len 25 min 10.5.0.128 max 10.5.1.128'],
    ['10.5.0.0/24', '10.5.0.0/24 len 26 min 10.5.0.64 max 10.5.0.192'],
    ['10.5.0.0/26', '10.5.0.0/26 len 28 min 10.5.0.16 max 10.5.0.48'],
    ['10.5.0.0/28', '10.5.0.0/28 len 30 min 10.5.0.4 max 10.5.0.12'],
    ['255.255.255.0/24', '255.255.255.0/24 len 26 min 255.255.255.64 max 255.255.255.192'],
  ];
  for (const [network, expected] of cases) {
    it(`Network ${network} -> ${expected}`, () => {
      assert.equal(summary(parse({ Network: network })), expected);
    });
  }

  it('counts subnets from SubnetMin to SubnetMax inclusive', () => {
    assert.equal(subnetCount(parse({ Network: '10.0.0.0/8' })), 65535);
    assert.equal(subnetCount(parse({ Network: '10.5.0.0/16' })), 255);
    assert.equal(subnetCount(parse({ Network: '10.5.0.0/22' })), 3);
    assert.equal(subnetCount(parse({ Network: '10.5.0.0/28' })), 3);
  });

  it('fills the other defaults: IPv4 on, IPv6 off, udp on 8285', () => {
    const cfg = parse({ Network: '10.244.0.0/16' });
    assert.equal(cfg.enableIPv4, true);
    assert.equal(cfg.enableIPv6, false);
    assert.equal(cfg.backend.type, 'udp');
  });

  it('refuses a network smaller than /28', () => {
    const msg = (n: string): string =>
      `${SRC}: Network "${n}" is too small: the prefix must be /28 or shorter so that it holds at least four subnets of four addresses`;
    rejects({ Network: '10.5.0.0/29' }, 'Network', '10.5.0.0/29', msg('10.5.0.0/29'));
    rejects({ Network: '10.5.0.0/32' }, 'Network', '10.5.0.0/32', msg('10.5.0.0/32'));
    rejects({ Network: '10.5.0.0/29', SubnetLen: 30 }, 'Network', '10.5.0.0/29', msg('10.5.0.0/29'));
  });

  it('refuses a missing, malformed or non-IPv4 Network', () => {
    rejects({}, 'Network', undefined, `${SRC}: Network is missing: it is required, e.g. "Network": "10.244.0.0/16"`);
    rejects(
      { Network: null },
      'Network',
      undefined,
      `${SRC}: Network is missing: it is required, e.g. "Network": "10.244.0.0/16"`,
    );
    for (const bad of ['', '10.5.0.0', '10.5.0.0/33', '10.5.0/16', 'fc00::/48', '10.05.0.0/16', ' 10.5.0.0/16']) {
      rejects(
        { Network: bad },
        'Network',
        bad,
        `${SRC}: Network ${JSON.stringify(bad)} is not an IPv4 CIDR: write address/prefix, e.g. "10.244.0.0/16"`,
      );
    }
  });

  it('refuses host bits in Network (flannel would silently mask them)', () => {
    rejects(
      { Network: '10.5.1.0/16' },
      'Network',
      '10.5.1.0/16',
      `${SRC}: Network "10.5.1.0/16" has host bits set: use "10.5.0.0/16"`,
    );
  });

  it('refuses the whole IPv4 space', () => {
    rejects(
      { Network: '0.0.0.0/0' },
      'Network',
      '0.0.0.0/0',
      `${SRC}: Network "0.0.0.0/0" is not allowed: the overlay cannot be the whole IPv4 space; use a private range such as "10.244.0.0/16"`,
    );
  });
});

describe('parseNetConfig: SubnetLen', () => {
  it('accepts every length from Network prefix + 2 to 30', () => {
    for (let len = 18; len <= 30; len++) {
      const cfg = parse({ Network: '10.5.0.0/16', SubnetLen: len });
      assert.equal(cfg.subnetLen, len);
      const size = 2 ** (32 - len);
      assert.equal(cfg.subnetMin, ip('10.5.0.0') + size);
      assert.equal(cfg.subnetMax, ip('10.6.0.0') - size);
    }
  });

  it('treats 0 and null as not given (Go zero value)', () => {
    assert.equal(parse({ Network: '10.5.0.0/16', SubnetLen: 0 }).subnetLen, 24);
    assert.equal(parse({ Network: '10.5.0.0/24', SubnetLen: null }).subnetLen, 26);
  });

  it('refuses lengths outside the range', () => {
    const msg = (v: number): string =>
      `${SRC}: SubnetLen ${v} is not allowed: it must be between 18 (Network prefix 16 + 2) and 30`;
    for (const v of [31, 32, 17, 16, 8, -1]) {
      rejects({ Network: '10.5.0.0/16', SubnetLen: v }, 'SubnetLen', v, msg(v));
    }
    rejects(
      { Network: '10.5.0.0/28', SubnetLen: 29 },
      'SubnetLen',
      29,
      `${SRC}: SubnetLen 29 is not allowed: it must be between 30 (Network prefix 28 + 2) and 30`,
    );
  });

  it('refuses the wrong JSON types', () => {
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: '24' },
      'SubnetLen',
      '24',
      `${SRC}: SubnetLen must be a whole number, got "24" (a string): write it without quotes, e.g. "SubnetLen": 24`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: 24.5 },
      'SubnetLen',
      24.5,
      `${SRC}: SubnetLen must be a whole number, got 24.5`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: true },
      'SubnetLen',
      true,
      `${SRC}: SubnetLen must be a whole number, got true (a boolean)`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: [24] },
      'SubnetLen',
      [24],
      `${SRC}: SubnetLen must be a whole number, got [24] (an array)`,
    );
  });
});

describe('parseNetConfig: SubnetMin and SubnetMax', () => {
  it('takes valid bounds as given', () => {
    const cfg = parse({ Network: '10.0.0.0/8', SubnetLen: 20, SubnetMin: '10.10.0.0', SubnetMax: '10.99.0.0' });
    assert.equal(summary(cfg), '10.0.0.0/8 len 20 min 10.10.0.0 max 10.99.0.0');
    assert.equal(subnetCount(cfg), (ip('10.99.0.0') - ip('10.10.0.0')) / 4096 + 1);
  });

  it('allows the network address itself and a single-subnet range', () => {
    const cfg = parse({ Network: '10.5.0.0/16', SubnetMin: '10.5.0.0', SubnetMax: '10.5.0.0' });
    assert.equal(summary(cfg), '10.5.0.0/16 len 24 min 10.5.0.0 max 10.5.0.0');
    assert.equal(subnetCount(cfg), 1);
  });

  it('treats "0.0.0.0" and null as not given (Go zero value)', () => {
    const cfg = parse({ Network: '10.5.0.0/16', SubnetMin: '0.0.0.0', SubnetMax: null });
    assert.equal(summary(cfg), '10.5.0.0/16 len 24 min 10.5.1.0 max 10.5.255.0');
  });

  it('refuses malformed addresses', () => {
    rejects(
      { Network: '10.5.0.0/16', SubnetMin: '10.5.1' },
      'SubnetMin',
      '10.5.1',
      `${SRC}: SubnetMin "10.5.1" is not an IPv4 address: write a dotted quad such as "10.5.1.0"`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetMax: '10.5.255.0/24' },
      'SubnetMax',
      '10.5.255.0/24',
      `${SRC}: SubnetMax "10.5.255.0/24" is not an IPv4 address: write a dotted quad such as "10.5.255.0"`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetMin: 167837952 },
      'SubnetMin',
      167837952,
      `${SRC}: SubnetMin must be a string such as "10.244.1.0", got 167837952 (a number)`,
    );
  });

  it('refuses bounds outside the Network', () => {
    rejects(
      { Network: '10.5.0.0/16', SubnetMin: '10.6.0.0' },
      'SubnetMin',
      '10.6.0.0',
      `${SRC}: SubnetMin "10.6.0.0" is outside Network 10.5.0.0/16: it must be a /24 subnet address between 10.5.0.0 and 10.5.255.0`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: 20, SubnetMax: '10.4.240.0' },
      'SubnetMax',
      '10.4.240.0',
      `${SRC}: SubnetMax "10.4.240.0" is outside Network 10.5.0.0/16: it must be a /20 subnet address between 10.5.0.0 and 10.5.240.0`,
    );
  });

  it('refuses bounds not aligned to SubnetLen', () => {
    rejects(
      { Network: '10.5.0.0/16', SubnetMin: '10.5.1.7' },
      'SubnetMin',
      '10.5.1.7',
      `${SRC}: SubnetMin "10.5.1.7" is not on a /24 boundary (SubnetLen 24): use "10.5.1.0"`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetLen: 26, SubnetMax: '10.5.200.100' },
      'SubnetMax',
      '10.5.200.100',
      `${SRC}: SubnetMax "10.5.200.100" is not on a /26 boundary (SubnetLen 26): use "10.5.200.64"`,
    );
  });

  it('refuses SubnetMin above SubnetMax', () => {
    rejects(
      { Network: '10.5.0.0/16', SubnetMin: '10.5.9.0', SubnetMax: '10.5.3.0' },
      'SubnetMin',
      '10.5.9.0',
      `${SRC}: SubnetMin "10.5.9.0" is above SubnetMax "10.5.3.0": no subnet could be leased; SubnetMin must not be above SubnetMax`,
    );
    rejects(
      { Network: '10.5.0.0/16', SubnetMax: '10.5.0.0' },
      'SubnetMax',
      '10.5.0.0',
      `${SRC}: SubnetMax "10.5.0.0" is below SubnetMin 10.5.1.0 (the default): no subnet could be leased; SubnetMax must not be below SubnetMin`,
    );
  });
});

describe('parseNetConfig: Backend section', () => {
  it('keeps Backend for the backend to check: Type lower-cased, the fields as written', () => {
    const cfg = parse({ Network: '10.5.0.0/16', Backend: { Type: 'VXLAN', VNI: 7, Whatever: [1] } });
    assert.deepEqual(cfg.backend, { type: 'vxlan', fields: { Type: 'VXLAN', VNI: 7, Whatever: [1] }, source: SRC });
    assert.ok(Object.isFrozen(cfg.backend.fields));
  });

  it('an omitted or null Backend is udp (flannel picks udp), a Backend without Type has type ""', () => {
    assert.equal(parse({ Network: '10.5.0.0/16' }).backend.type, 'udp');
    assert.equal(parse({ Network: '10.5.0.0/16', Backend: null }).backend.type, 'udp');
    assert.equal(parse({ Network: '10.5.0.0/16', Backend: {} }).backend.type, '');
  });

  it('refuses a Backend that is not an object, and a Type that is not a string', () => {
    rejects({ Network: '10.5.0.0/16', Backend: 'udp' }, 'Backend', 'udp',
      `${SRC}: Backend must be an object such as {"Type": "udp"}, got "udp" (a string)`);
    rejects({ Network: '10.5.0.0/16', Backend: { Type: 1 } }, 'Backend.Type', 1,
      `${SRC}: Backend.Type must be a string such as "udp", got 1 (a number)`);
  });

  it('reads EnableNFTables (default false)', () => {
    assert.equal(parse({ Network: '10.5.0.0/16' }).enableNFTables, false);
    assert.equal(parse({ Network: '10.5.0.0/16', EnableNFTables: true }).enableNFTables, true);
    rejects({ Network: '10.5.0.0/16', EnableNFTables: 'yes' }, 'EnableNFTables', 'yes',
      `${SRC}: EnableNFTables must be true or false, got "yes" (a string)`);
  });
});

describe('parseNetConfig: IPv4/IPv6 switches', () => {
  it('accepts the explicit defaults and ignores IPv6 fields while IPv6 is off', () => {
    const cfg = parse({ Network: '10.5.0.0/16', EnableIPv4: true, EnableIPv6: false, IPv6Network: 'fc00::/48' });
    assert.equal(summary(cfg), '10.5.0.0/16 len 24 min 10.5.1.0 max 10.5.255.0');
  });

  it('refuses EnableIPv6 true and EnableIPv4 false', () => {
    rejects(
      { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fc00::/48' },
      'EnableIPv6',
      true,
      `${SRC}: EnableIPv6 true is not supported: weft is IPv4-only; remove the field or set it to false`,
    );
    rejects(
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fc00::/48' },
      'EnableIPv4',
      false,
      `${SRC}: EnableIPv4 false is not supported: weft is IPv4-only and needs EnableIPv4; remove the field or set it to true`,
    );
  });

  it('refuses non-boolean switches', () => {
    rejects(
      { Network: '10.5.0.0/16', EnableIPv6: 'false' },
      'EnableIPv6',
      'false',
      `${SRC}: EnableIPv6 must be true or false, got "false" (a string): write it without quotes, e.g. "EnableIPv6": false`,
    );
    rejects(
      { Network: '10.5.0.0/16', EnableIPv4: 0 },
      'EnableIPv4',
      0,
      `${SRC}: EnableIPv4 must be true or false, got 0 (a number)`,
    );
  });
});

describe('parseNetConfig: JSON and key matching', () => {
  it('matches field names case-insensitively, like Go', () => {
    const cfg = parse({ network: '10.5.0.0/24', subnetlen: 28, SUBNETMIN: '10.5.0.32', backend: { type: 'host-gw' } });
    assert.equal(summary(cfg), '10.5.0.0/24 len 28 min 10.5.0.32 max 10.5.0.240');
    assert.equal(cfg.backend.type, 'host-gw');
  });

  it('refuses a field given twice in different case', () => {
    rejects(
      { network: '10.5.0.0/16', Network: '10.6.0.0/16' },
      'Network',
      ['network', 'Network'],
      `${SRC}: Network is set more than once (keys "network" and "Network"; field names match case-insensitively, as in flanneld): keep only one`,
    );
    rejects(
      { Network: '10.5.0.0/16', Backend: { type: 'udp', Type: 'vxlan' } },
      'Backend.Type',
      ['type', 'Type'],
      `${SRC}: Backend.Type is set more than once (keys "type" and "Type"; field names match case-insensitively, as in flanneld): keep only one`,
    );
  });

  it('reports invalid JSON with a line and column', () => {
    const cases: Array<[string, string]> = [
      ['', 'unexpected end of input, expected a value at line 1, column 1'],
      ['{"Network": "10.5.0.0/16",}', 'unexpected "}", expected a double-quoted property name at line 1, column 27'],
      ['{\n  "Network": "10.5.0.0/16"\n  "SubnetLen": 24\n}', `unexpected "\\"", expected ',' or '}' after a property value at line 3, column 3`],
      ['{\n  "SubnetLen": 024\n}', 'leading zero in a number at line 2, column 17'],
      ['{"Network": "10.5.0.0/16"}}', 'unexpected "}" after the end of the JSON value at line 1, column 27'],
      ['{"Network": "10.5.0.0/16', 'unterminated string at line 1, column 25'],
      ["{'Network': '10.5.0.0/16'}", `unexpected "'", expected a double-quoted property name at line 1, column 2`],
      ['{"Network" "10.5.0.0/16"}', `unexpected "\\"", expected ':' after a property name at line 1, column 12`],
      ['{"SubnetLen": tru}', 'unexpected "t", expected a value at line 1, column 15'],
      ['{"A": [1,]}', 'unexpected "]", expected a value at line 1, column 10'],
      ['{"A": [1 2]}', `unexpected "2", expected ',' or ']' after an array element at line 1, column 10`],
      ['{"A": "\\x"}', 'bad escape sequence in a string at line 1, column 9'],
      ['{"A": "\\u12"}', 'bad \\u escape (four hex digits expected) at line 1, column 12'],
      ['{"A": "a\tb"}', 'control character in a string (escape it) at line 1, column 9'],
      ['{"A": -}', 'unexpected "}", expected a digit at line 1, column 8'],
      ['{"A": 1.}', 'unexpected "}", expected a digit after the decimal point at line 1, column 9'],
      ['{"A": 1e}', 'unexpected "}", expected a digit in the exponent at line 1, column 9'],
    ];
    for (const [text, detail] of cases) {
      rejectsText(text, SRC, text, `${SRC} is not valid JSON: ${detail}`);
    }
  });

  it('refuses JSON that is not an object', () => {
    for (const [text, shown] of [
      ['[1]', '[1] (an array)'],
      ['"10.5.0.0/16"', '"10.5.0.0/16" (a string)'],
      ['null', 'null (null)'],
      ['42', '42 (a number)'],
    ] as const) {
      rejectsText(
        text,
        SRC,
        JSON.parse(text),
        `${SRC} must hold a JSON object such as {"Network": "10.244.0.0/16"}, got ${shown}`,
      );
    }
  });

  it('uses the source it is given (e.g. an etcd key) in every error', () => {
    assert.throws(() => parseNetConfig('{"Network": "10.5.0.0/16", "SubnetLen": 31}', '/coreos.com/network/config'), {
      name: 'ConfigError',
      path: '/coreos.com/network/config: SubnetLen',
      message:
        '/coreos.com/network/config: SubnetLen 31 is not allowed: it must be between 18 (Network prefix 16 + 2) and 30',
    });
  });

  it('tolerates a UTF-8 byte order mark and whitespace', () => {
    const cfg = parseNetConfig('\uFEFF \n{"Network": "10.5.0.0/16"}\n\n', SRC);
    assert.equal(formatPrefix(cfg.network), '10.5.0.0/16');
  });

  it('returns a frozen config whose raw object re-serializes unchanged', () => {
    const original = {
      Network: '10.244.0.0/16',
      Custom: { nested: [1, 2] },
      Backend: { Type: 'vxlan', VNI: 1, Learning: false },
    };
    const cfg = parse(original);
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.network));
    assert.ok(Object.isFrozen(cfg.backend));
    assert.ok(Object.isFrozen(cfg.raw));
    assert.ok(Object.isFrozen(cfg.raw['Backend']));
    assert.ok(Object.isFrozen((cfg.raw['Custom'] as { nested: number[] }).nested));
    assert.equal(JSON.stringify(cfg.raw), JSON.stringify(original));
  });
});

// ---------------------------------------------------------------------------
// Subnet arithmetic against a naive enumeration

/** xorshift32: deterministic test randomness. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Every allocatable subnet start, found by walking every aligned address in the network. */
function naiveSubnets(cfg: SubnetRange): number[] {
  const out: number[] = [];
  const size = 2 ** (32 - cfg.subnetLen);
  const end = cfg.network.network + 2 ** (32 - cfg.network.length);
  for (let a = cfg.network.network; a < end; a += size) {
    if (a >= cfg.subnetMin && a <= cfg.subnetMax) out.push(a);
  }
  return out;
}

function naiveIndexOf(subnets: number[], len: number, addr: number): number {
  const size = 2 ** (32 - len);
  return subnets.findIndex((s) => addr >= s && addr < s + size);
}

describe('subnet arithmetic', () => {
  const configs: Array<Record<string, unknown>> = [
    { Network: '10.5.0.0/24', SubnetLen: 28 },
    { Network: '10.5.0.0/24', SubnetLen: 30, SubnetMin: '10.5.0.100', SubnetMax: '10.5.0.200' },
    { Network: '10.5.0.0/16' },
    { Network: '192.168.0.0/16', SubnetLen: 20, SubnetMin: '192.168.16.0', SubnetMax: '192.168.224.0' },
    { Network: '10.0.0.0/8', SubnetLen: 24 },
    { Network: '255.255.255.0/24', SubnetLen: 30 },
    { Network: '128.0.0.0/2', SubnetLen: 12 },
    { Network: '10.5.0.0/28' },
  ];

  for (const conf of configs) {
    it(`matches a naive enumeration for ${JSON.stringify(conf)}`, () => {
      const cfg = parse(conf);
      const subnets = naiveSubnets(cfg);
      assert.equal(subnetCount(cfg), subnets.length);
      for (let i = 0; i < subnets.length; i++) {
        const sn = subnetAt(cfg, i);
        assert.equal(sn.network, subnets[i]);
        assert.equal(sn.length, cfg.subnetLen);
        assert.equal(subnetIndexOf(cfg, sn.network), i);
        assert.equal(isValidLeaseSubnet(cfg, sn), true);
      }
      const next = rng(subnets.length * 7919 + cfg.subnetLen);
      const netSize = 2 ** (32 - cfg.network.length);
      for (let k = 0; k < 3000; k++) {
        // half the probes inside the network, half anywhere
        const addr = k % 2 === 0 ? (cfg.network.network + (next() % netSize)) >>> 0 : next();
        assert.equal(subnetIndexOf(cfg, addr), naiveIndexOf(subnets, cfg.subnetLen, addr), formatIpv4(addr));
        const len = k % 3 === 0 ? cfg.subnetLen : next() % 33;
        const probe: Ipv4Prefix = { network: (addr & prefixMask(len)) >>> 0, length: len };
        const expected = len === cfg.subnetLen && subnets.includes(probe.network);
        assert.equal(isValidLeaseSubnet(cfg, probe), expected, formatPrefix(probe));
      }
    });
  }

  it('refuses misaligned, wrong-length and out-of-range lease subnets', () => {
    const cfg = parse({ Network: '10.5.0.0/16', SubnetMin: '10.5.10.0', SubnetMax: '10.5.20.0' });
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.5.10.0/24')), true);
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.5.20.0/24')), true);
    assert.equal(isValidLeaseSubnet(cfg, { network: ip('10.5.10.1'), length: 24 }), false);
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.5.10.0/25')), false);
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.5.9.0/24')), false);
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.5.21.0/24')), false);
    assert.equal(isValidLeaseSubnet(cfg, cidr('10.6.10.0/24')), false);
    assert.equal(subnetIndexOf(cfg, ip('10.5.20.255')), 10);
    assert.equal(subnetIndexOf(cfg, ip('10.5.21.0')), -1);
    assert.equal(subnetIndexOf(cfg, ip('10.5.9.255')), -1);
  });

  it('throws RangeError for indexes outside the range', () => {
    const cfg = parse({ Network: '10.5.0.0/22' });
    assert.equal(formatPrefix(subnetAt(cfg, 0)), '10.5.1.0/24');
    assert.equal(formatPrefix(subnetAt(cfg, 2)), '10.5.3.0/24');
    for (const bad of [-1, 3, 1.5, Number.NaN]) {
      assert.throws(() => subnetAt(cfg, bad), { name: 'RangeError', message: `subnet index ${bad} is outside 0..2` });
    }
  });
});
