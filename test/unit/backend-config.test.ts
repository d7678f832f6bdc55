/**
 * net-conf.json's Backend as the registry reads it: the type picks the
 * backend, whose own parser checks its fields, with messages that name the
 * field and the value. Nothing here touches the host.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { backendTypes, chooseBackend } from '../../src/backend/registry';
import { parseUdpConfig } from '../../src/backend/udp/udp-config';
import { parseVxlanConfig } from '../../src/backend/vxlan/vxlan-config';
import { ConfigError } from '../../src/errors';
import { parseNetConfig } from '../../src/subnet';

const SRC = '/etc/kube-flannel/net-conf.json';

/** The backend's checked configuration, as the registry would create it: { type, ...config }. */
function backend(obj: unknown): Record<string, unknown> {
  const cfg = parseNetConfig(JSON.stringify(obj), SRC);
  const chosen = chooseBackend(cfg.backend); // the registry's own checks, and the backend's parser
  const parsers: Record<string, (f: Readonly<Record<string, unknown>>, s: string) => object> = {
    udp: parseUdpConfig, vxlan: parseVxlanConfig, 'host-gw': () => ({}),
  };
  const parser = parsers[chosen.type];
  assert.ok(parser !== undefined, `no parser in this test for ${chosen.type}`);
  return { type: chosen.type, ...parser(cfg.backend.fields, cfg.backend.source) };
}

function rejects(obj: unknown, field: string, value: unknown, message: string): void {
  assert.throws(
    () => backend(obj),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.equal(err.message, message);
      assert.equal(err.path, `${SRC}: ${field}`);
      assert.deepEqual(err.value, value);
      return true;
    },
  );
}

describe('backend registry', () => {
  it('lists udp, vxlan and host-gw', () => {
    assert.deepEqual(backendTypes(), ['udp', 'vxlan', 'host-gw']);
  });

  it("a backend's field given twice in different case is refused, as net-conf.json's own fields are", () => {
    rejects({ Network: '10.5.0.0/16', Backend: { Type: 'udp', port: 1, Port: 2 } }, 'Backend.Port', ['port', 'Port'],
      `${SRC}: Backend.Port is set more than once (keys "port" and "Port"; field names match case-insensitively, as in flanneld): keep only one`);
  });
});

describe('backend registry: Backend.Type and each backend\'s fields', () => {
  const net = '10.5.0.0/16';

  it('defaults to udp on 8285 when Backend is omitted or null', () => {
    assert.deepEqual(backend({ Network: net }), { type: 'udp', port: 8285 });
    assert.deepEqual(backend({ Network: net, Backend: null }), { type: 'udp', port: 8285 });
  });

  it('reads udp', () => {
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp' } }), { type: 'udp', port: 8285 });
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp', Port: 7890 } }), {
      type: 'udp',
      port: 7890,
    });
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'UDP', port: 1 } }), { type: 'udp', port: 1 });
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp', Port: 65535 } }), {
      type: 'udp',
      port: 65535,
    });
  });

  it('reads udp\'s FastPath (weft\'s own field) and refuses one it does not know, naming the choices', () => {
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp', FastPath: 'bpf' } }), { type: 'udp', port: 8285, fastPath: 'bpf' });
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp', FastPath: 'off' } }), { type: 'udp', port: 8285, fastPath: 'off' });
    rejects({ Network: net, Backend: { Type: 'udp', FastPath: 'xdp' } }, 'Backend.FastPath', 'xdp',
      `${SRC}: Backend.FastPath "xdp" is not a fast path weft knows: use "off" or "bpf"`);
    rejects({ Network: net, Backend: { Type: 'udp', FastPath: true } }, 'Backend.FastPath', true,
      `${SRC}: Backend.FastPath must be a string such as "bpf", got true (a boolean)`);
  });

  it('reads vxlan with its defaults', () => {
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'vxlan' } }), {
      type: 'vxlan',
      vni: 1,
      port: 8472,
      gbp: false,
      learning: false,
      directRouting: false,
      mtu: undefined,
    });
    assert.deepEqual(
      backend({
        Network: net,
        Backend: { Type: 'vxlan', VNI: 4096, Port: 4789, GBP: true, DirectRouting: true, MTU: 1400 },
      }),
      { type: 'vxlan', vni: 4096, port: 4789, gbp: true, learning: false, directRouting: true, mtu: 1400 },
    );
    // Go zero values: Port 0 and MTU 0 mean "kernel default" / "interface MTU"; VNI 0 is a real VNI.
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'vxlan', VNI: 0, Port: 0, MTU: 0 } }), {
      type: 'vxlan',
      vni: 0,
      port: 8472,
      gbp: false,
      learning: false,
      directRouting: false,
      mtu: undefined,
    });
    assert.equal(backend({ Network: net, Backend: { Type: 'vxlan', VNI: 16777215 } })['vni'], 16777215);
  });

  it('reads host-gw', () => {
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'host-gw' } }), { type: 'host-gw' });
  });

  it('ignores fields the backend does not read, as flanneld does', () => {
    assert.deepEqual(
      backend({ Network: net, Backend: { Type: 'vxlan', Learning: true, MacPrefix: '0E:2A', Extra: [1] } }),
      { type: 'vxlan', vni: 1, port: 8472, gbp: false, learning: true, directRouting: false, mtu: undefined },
    );
    assert.deepEqual(backend({ Network: net, Backend: { Type: 'udp', VNI: 'x' } }), { type: 'udp', port: 8285 });
  });

  it('refuses unsupported and missing types', () => {
    for (const type of ['wireguard', 'ipip', 'alloc', 'extension', 'ipsec', 'aws-vpc', 'gce']) {
      rejects(
        { Network: net, Backend: { Type: type } },
        'Backend.Type',
        type,
        `${SRC}: Backend.Type "${type}" is not supported: weft supports "udp", "vxlan" and "host-gw"`,
      );
    }
    const missing = `${SRC}: Backend.Type is missing: set it to one of "udp", "vxlan" and "host-gw"`;
    rejects({ Network: net, Backend: {} }, 'Backend.Type', undefined, missing);
    rejects({ Network: net, Backend: { Type: '' } }, 'Backend.Type', '', missing);
    rejects(
      { Network: net, Backend: { Type: 1 } },
      'Backend.Type',
      1,
      `${SRC}: Backend.Type must be a string such as "udp", got 1 (a number)`,
    );
    rejects(
      { Network: net, Backend: 'udp' },
      'Backend',
      'udp',
      `${SRC}: Backend must be an object such as {"Type": "udp"}, got "udp" (a string)`,
    );
  });

  it('refuses out-of-range ports, VNIs and MTUs', () => {
    for (const port of [0, -1, 65536]) {
      rejects(
        { Network: net, Backend: { Type: 'udp', Port: port } },
        'Backend.Port',
        port,
        `${SRC}: Backend.Port ${port} is not allowed: it must be between 1 and 65535 (default 8285)`,
      );
    }
    rejects(
      { Network: net, Backend: { Type: 'vxlan', Port: 65536 } },
      'Backend.Port',
      65536,
      `${SRC}: Backend.Port 65536 is not allowed: it must be between 1 and 65535 (0 or omitted means the kernel default 8472)`,
    );
    for (const vni of [16777216, -1]) {
      rejects(
        { Network: net, Backend: { Type: 'vxlan', VNI: vni } },
        'Backend.VNI',
        vni,
        `${SRC}: Backend.VNI ${vni} is not allowed: it must be between 0 and 16777215 (24 bits; default 1)`,
      );
    }
    for (const mtu of [117, 65536]) {
      rejects(
        { Network: net, Backend: { Type: 'vxlan', MTU: mtu } },
        'Backend.MTU',
        mtu,
        `${SRC}: Backend.MTU ${mtu} is not allowed: it must be between 118 and 65535 (the device gets MTU - 50; 0 or omitted means the underlay interface's MTU)`,
      );
    }
    assert.equal(backend({ Network: net, Backend: { Type: 'vxlan', MTU: 118 } })['mtu'], 118);
  });

  it('refuses backend fields of the wrong JSON type', () => {
    rejects(
      { Network: net, Backend: { Type: 'udp', Port: '8285' } },
      'Backend.Port',
      '8285',
      `${SRC}: Backend.Port must be a whole number, got "8285" (a string): write it without quotes, e.g. "Port": 8285`,
    );
    rejects(
      { Network: net, Backend: { Type: 'vxlan', GBP: 'true' } },
      'Backend.GBP',
      'true',
      `${SRC}: Backend.GBP must be true or false, got "true" (a string): write it without quotes, e.g. "GBP": true`,
    );
    rejects(
      { Network: net, Backend: { Type: 'vxlan', DirectRouting: 1 } },
      'Backend.DirectRouting',
      1,
      `${SRC}: Backend.DirectRouting must be true or false, got 1 (a number)`,
    );
    rejects(
      { Network: net, Backend: { Type: 'vxlan', VNI: 1.5 } },
      'Backend.VNI',
      1.5,
      `${SRC}: Backend.VNI must be a whole number, got 1.5`,
    );
    rejects(
      { Network: net, Backend: { Type: 'vxlan', MTU: { v: 1 } } },
      'Backend.MTU',
      { v: 1 },
      `${SRC}: Backend.MTU must be a whole number, got {"v":1} (an object)`,
    );
  });
});

