/**
 * The vxlan backend's pure parts (the VtepMAC of a lease, the device name, a
 * random VTEP MAC, when an existing device can be kept, the `ip link add`
 * argv), and what the vxlan and host-gw backends decide before touching the
 * host: which peers they accept, their MTU, and host-gw's refusal of NAT.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ACCEPTED, type BackendContext, type Peer } from '../../src/backend/backend';
import { HostGwBackend } from '../../src/backend/host-gw/host-gw-backend';
import { UDP_AGENT_DEFAULTS } from '../../src/backend/udp/udp-options';
import { VxlanBackend, vtepMacOf, vxlanDeviceName } from '../../src/backend/vxlan/vxlan-backend';
import type { VxlanBackendConfig } from '../../src/backend/vxlan/vxlan-config';
import { createCommand, randomVtepMac, vxlanIncompatibility, type VxlanDeviceSpec } from '../../src/backend/vxlan/vxlan-device';
import { ConfigError } from '../../src/errors';
import type { LinkDetails } from '../../src/host/kernel-state';
import { HostLedger } from '../../src/host/ledger';
import { silentLogger } from '../../src/log';
import type { Underlay } from '../../src/net/interfaces';
import { cidr, ip } from '../addresses';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

describe('vtepMacOf', () => {
  it('reads flannel\'s BackendData {"VNI":1,"VtepMAC":"..."}', () => {
    assert.deepEqual(vtepMacOf(JSON.parse('{"VNI":1,"VtepMAC":"0e:a1:b2:c3:d4:e5"}')), { mac: '0e:a1:b2:c3:d4:e5' });
  });

  it('matches the key case-insensitively, as Go\'s encoding/json does', () => {
    assert.deepEqual(vtepMacOf({ vni: 1, vtepmac: '0e:a1:b2:c3:d4:e5' }), { mac: '0e:a1:b2:c3:d4:e5' });
    assert.deepEqual(vtepMacOf({ VTEPMAC: '0e:a1:b2:c3:d4:e5' }), { mac: '0e:a1:b2:c3:d4:e5' });
  });

  it('normalizes upper case and dash-separated MACs to lower case with colons', () => {
    assert.deepEqual(vtepMacOf({ VtepMAC: '0E:A1:B2:C3:D4:E5' }), { mac: '0e:a1:b2:c3:d4:e5' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0e-a1-b2-c3-d4-e5' }), { mac: '0e:a1:b2:c3:d4:e5' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0E-A1-B2-C3-D4-E5' }), { mac: '0e:a1:b2:c3:d4:e5' });
  });

  it('no BackendData object at all', () => {
    const reason = 'its lease has no BackendData with a VtepMAC';
    for (const data of [undefined, null, 'VtepMAC', 42, true, ['0e:a1:b2:c3:d4:e5']]) {
      assert.deepEqual(vtepMacOf(data), { reason }, JSON.stringify(data));
    }
  });

  it('an object without a VtepMAC string', () => {
    const reason = 'its lease\'s BackendData has no VtepMAC';
    for (const data of [{}, { VNI: 1 }, { VtepMAC: null }, { VtepMAC: 42 }, { VtepMAC: ['0e:a1:b2:c3:d4:e5'] }, { VtepMACs: '0e:a1:b2:c3:d4:e5' }]) {
      assert.deepEqual(vtepMacOf(data), { reason }, JSON.stringify(data));
    }
  });

  it('a VtepMAC that is not a MAC address, quoted as given', () => {
    assert.deepEqual(vtepMacOf({ VtepMAC: 'garbage' }), { reason: 'its lease\'s VtepMAC "garbage" is not a MAC address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '' }), { reason: 'its lease\'s VtepMAC "" is not a MAC address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0e:a1:b2:c3:d4' }), { reason: 'its lease\'s VtepMAC "0e:a1:b2:c3:d4" is not a MAC address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0e:a1:b2:c3:d4:e5:f6' }), { reason: 'its lease\'s VtepMAC "0e:a1:b2:c3:d4:e5:f6" is not a MAC address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0EA1B2C3D4E5' }), { reason: 'its lease\'s VtepMAC "0EA1B2C3D4E5" is not a MAC address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: ' 0e:a1:b2:c3:d4:e5' }), { reason: 'its lease\'s VtepMAC " 0e:a1:b2:c3:d4:e5" is not a MAC address' });
  });

  it('a multicast or all-zero VtepMAC is not a unicast address (named normalized)', () => {
    assert.deepEqual(vtepMacOf({ VtepMAC: '01:00:5e:00:00:01' }), { reason: 'its lease\'s VtepMAC 01:00:5e:00:00:01 is not a unicast address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: 'FF-FF-FF-FF-FF-FF' }), { reason: 'its lease\'s VtepMAC ff:ff:ff:ff:ff:ff is not a unicast address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '0F:00:00:00:00:01' }), { reason: 'its lease\'s VtepMAC 0f:00:00:00:00:01 is not a unicast address' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '00:00:00:00:00:00' }), { reason: 'its lease\'s VtepMAC 00:00:00:00:00:00 is not a unicast address' });
  });

  it('a globally administered unicast MAC (a real NIC\'s) is fine', () => {
    assert.deepEqual(vtepMacOf({ VtepMAC: '00:00:00:00:00:01' }), { mac: '00:00:00:00:00:01' });
    assert.deepEqual(vtepMacOf({ VtepMAC: '52:54:00:12:34:56' }), { mac: '52:54:00:12:34:56' });
  });
});

describe('vxlanDeviceName', () => {
  it('is flannel.<VNI>', () => {
    assert.equal(vxlanDeviceName(1), 'flannel.1');
    assert.equal(vxlanDeviceName(0), 'flannel.0');
    assert.equal(vxlanDeviceName(4096), 'flannel.4096');
    assert.equal(vxlanDeviceName(16777215), 'flannel.16777215');
  });
});

describe('randomVtepMac', () => {
  it('clears the multicast bit and sets the locally administered bit of the first byte, keeps the rest', () => {
    assert.equal(randomVtepMac(Buffer.from([0x01, 0x23, 0x45, 0x67, 0x89, 0xab])), '02:23:45:67:89:ab');
    assert.equal(randomVtepMac(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 'fe:ff:ff:ff:ff:ff');
    assert.equal(randomVtepMac(Buffer.from([0x00, 0x00, 0x00, 0x00, 0x00, 0x00])), '02:00:00:00:00:00');
    assert.equal(randomVtepMac(Buffer.from([0x0e, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e])), '0e:0a:0b:0c:0d:0e');
  });

  it('uses the first six bytes and leaves the given buffer alone', () => {
    const bytes = Buffer.from([0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x08]);
    assert.equal(randomVtepMac(bytes), 'a2:b2:c3:d4:e5:f6');
    assert.deepEqual([...bytes], [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x08]);
  });

  it('1000 random MACs: all unicast, locally administered, accepted as a VtepMAC, and different', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const mac = randomVtepMac();
      assert.match(mac, MAC_RE);
      const first = parseInt(mac.slice(0, 2), 16);
      assert.equal(first & 0x01, 0, `${mac} is multicast`);
      assert.equal(first & 0x02, 0x02, `${mac} is not locally administered`);
      assert.deepEqual(vtepMacOf({ VtepMAC: mac }), { mac });
      seen.add(mac);
    }
    assert.ok(seen.size >= 999, `only ${seen.size} different MACs in 1000`);
  });
});

const SPEC: VxlanDeviceSpec = {
  name: 'flannel.1', vni: 1, port: 8472, gbp: false, learning: false, mtu: 1450, underlayName: 'eth0', local: ip('192.168.64.3'),
};

/** flannel.1 as `ip -d -j link show` describes the device SPEC makes (see kernel-state.test.ts). */
const DEVICE: LinkDetails = {
  name: 'flannel.1', index: 4, kind: 'vxlan', mac: '0e:a1:b2:c3:d4:e5', mtu: 1450, up: true,
  vxlan: { vni: 1, local: ip('192.168.64.3'), dev: 'eth0', port: 8472, learning: false, gbp: false }, addresses: ['10.244.1.0/32'],
};

function withVxlan(change: Partial<NonNullable<LinkDetails['vxlan']>>): LinkDetails {
  return { ...DEVICE, vxlan: { ...(DEVICE.vxlan as NonNullable<LinkDetails['vxlan']>), ...change } };
}

describe('vxlanIncompatibility', () => {
  it('the device as specified can be kept', () => {
    assert.equal(vxlanIncompatibility(DEVICE, SPEC), undefined);
  });

  it('MTU, MAC and link state do not matter (the MTU is set in place, the MAC is kept)', () => {
    assert.equal(vxlanIncompatibility({ ...DEVICE, mtu: 1400, mac: '0e:00:00:00:00:01', up: false, index: 99 }, SPEC), undefined);
  });

  it('a device of another kind, or without one', () => {
    assert.equal(vxlanIncompatibility({ ...DEVICE, kind: 'veth', vxlan: undefined }, SPEC), 'it is a veth device, not vxlan');
    assert.equal(vxlanIncompatibility({ ...DEVICE, kind: '', vxlan: undefined }, SPEC), 'it is a device without a kind, not vxlan');
  });

  it('each vxlan attribute that differs, with its message', () => {
    const cases: Array<[Partial<NonNullable<LinkDetails['vxlan']>>, string]> = [
      [{ vni: 2 }, 'VNI 2, want 1'],
      [{ local: ip('192.168.64.9') }, 'local 192.168.64.9, want 192.168.64.3'],
      [{ local: undefined }, 'local unset, want 192.168.64.3'],
      [{ dev: 'eth1' }, 'device eth1, want eth0'],
      [{ dev: undefined }, 'device unset, want eth0'],
      [{ port: 4789 }, 'port 4789, want 8472'],
      [{ gbp: true }, 'GBP true, want false'],
      [{ learning: true }, 'learning true, want false'],
    ];
    for (const [change, message] of cases) {
      assert.equal(vxlanIncompatibility(withVxlan(change), SPEC), message, JSON.stringify(change));
    }
  });

  it('wanting learning or GBP on a device without them', () => {
    assert.equal(vxlanIncompatibility(DEVICE, { ...SPEC, learning: true }), 'learning false, want true');
    assert.equal(vxlanIncompatibility(DEVICE, { ...SPEC, gbp: true }), 'GBP false, want true');
  });

  it('names the first difference when several differ (VNI before local before device before port)', () => {
    assert.equal(vxlanIncompatibility(withVxlan({ port: 1, dev: 'eth1', vni: 7 }), SPEC), 'VNI 7, want 1');
    assert.equal(vxlanIncompatibility(withVxlan({ port: 1, dev: 'eth1' }), SPEC), 'device eth1, want eth0');
  });
});

describe('createCommand', () => {
  it('flannel\'s device: no learning, no GBP', () => {
    assert.deepEqual(createCommand(SPEC, '0e:a1:b2:c3:d4:e5'), [
      'link', 'add', 'flannel.1', 'address', '0e:a1:b2:c3:d4:e5', 'mtu', '1450', 'type', 'vxlan', 'id', '1',
      'local', '192.168.64.3', 'dev', 'eth0', 'dstport', '8472', 'nolearning',
    ]);
  });

  it('with learning and GBP', () => {
    const spec: VxlanDeviceSpec = { ...SPEC, name: 'flannel.4096', vni: 4096, port: 4789, learning: true, gbp: true, mtu: 8950, underlayName: 'ens5', local: ip('10.0.0.7') };
    assert.deepEqual(createCommand(spec, '0e:00:00:00:00:01'), [
      'link', 'add', 'flannel.4096', 'address', '0e:00:00:00:00:01', 'mtu', '8950', 'type', 'vxlan', 'id', '4096',
      'local', '10.0.0.7', 'dev', 'ens5', 'dstport', '4789', 'learning', 'gbp',
    ]);
  });

  it('GBP without learning', () => {
    assert.deepEqual(createCommand({ ...SPEC, gbp: true }, '0e:a1:b2:c3:d4:e5').slice(-2), ['nolearning', 'gbp']);
  });
});

// ---------------------------------------------------------------------------
// The backends, built but never prepared or started (the constructors touch nothing).

const NETWORK = cidr('10.244.0.0/16');

function underlay(u: Partial<Underlay> = {}): Underlay {
  return { name: 'eth0', ifaceAddress: ip('192.168.64.3'), publicIp: ip('192.168.64.3'), mtu: 1500, ...u };
}

function context(u: Partial<Underlay> = {}): BackendContext {
  return { network: NETWORK, underlay: underlay(u), ledger: HostLedger.inMemory(), log: silentLogger(), udp: UDP_AGENT_DEFAULTS, kernelResyncSeconds: 10 };
}

const VXLAN_CONFIG: VxlanBackendConfig = { vni: 1, port: 8472, gbp: false, learning: false, directRouting: false, mtu: undefined };

function peer(backendType: string, backendData?: unknown): Peer {
  return { subnet: cidr('10.244.2.0/24'), publicIp: ip('192.168.64.4'), backendType, backendData };
}

describe('VxlanBackend before prepare', () => {
  it('is the vxlan backend on flannel.<VNI>', () => {
    const backend = new VxlanBackend({ ...VXLAN_CONFIG, vni: 7 }, context());
    assert.equal(backend.type, 'vxlan');
    assert.equal(backend.device, 'flannel.7');
  });

  it('MTU: the underlay\'s minus 50, or the configured MTU minus 50', () => {
    assert.equal(new VxlanBackend(VXLAN_CONFIG, context()).mtu, 1450);
    assert.equal(new VxlanBackend(VXLAN_CONFIG, context({ mtu: 9001 })).mtu, 8951);
    assert.equal(new VxlanBackend({ ...VXLAN_CONFIG, mtu: 1400 }, context({ mtu: 9001 })).mtu, 1350);
  });

  it('accepts a vxlan lease with a usable VtepMAC', () => {
    const backend = new VxlanBackend(VXLAN_CONFIG, context());
    assert.equal(backend.accepts(peer('vxlan', { VNI: 1, VtepMAC: '0e:a1:b2:c3:d4:e5' })), ACCEPTED);
    assert.equal(backend.accepts(peer('vxlan', { vni: 1, vtepmac: '0E-A1-B2-C3-D4-E5' })), ACCEPTED);
  });

  it('refuses leases of other types, as flanneld does', () => {
    const backend = new VxlanBackend(VXLAN_CONFIG, context());
    assert.deepEqual(backend.accepts(peer('udp')), {
      ok: false, reason: 'its BackendType is "udp"; the vxlan backend uses only vxlan leases (as flanneld does)',
    });
    assert.deepEqual(backend.accepts(peer('host-gw', { VNI: 1, VtepMAC: '0e:a1:b2:c3:d4:e5' })), {
      ok: false, reason: 'its BackendType is "host-gw"; the vxlan backend uses only vxlan leases (as flanneld does)',
    });
  });

  it('refuses vxlan leases without a usable VtepMAC, with vtepMacOf\'s reason', () => {
    const backend = new VxlanBackend(VXLAN_CONFIG, context());
    assert.deepEqual(backend.accepts(peer('vxlan')), { ok: false, reason: 'its lease has no BackendData with a VtepMAC' });
    assert.deepEqual(backend.accepts(peer('vxlan', { VNI: 1 })), { ok: false, reason: 'its lease\'s BackendData has no VtepMAC' });
    assert.deepEqual(backend.accepts(peer('vxlan', { VtepMAC: '01:00:5e:00:00:01' })), {
      ok: false, reason: 'its lease\'s VtepMAC 01:00:5e:00:00:01 is not a unicast address',
    });
  });

  it('routes nothing yet', () => {
    assert.deepEqual(new VxlanBackend(VXLAN_CONFIG, context()).routes(), []);
  });
});

describe('HostGwBackend before start', () => {
  it('MTU is the underlay\'s (no encapsulation)', () => {
    assert.equal(new HostGwBackend(context()).mtu, 1500);
    assert.equal(new HostGwBackend(context({ mtu: 9001 })).mtu, 9001);
    assert.equal(new HostGwBackend(context()).type, 'host-gw');
  });

  it('accepts host-gw leases only', () => {
    const backend = new HostGwBackend(context());
    assert.equal(backend.accepts(peer('host-gw')), ACCEPTED);
    assert.deepEqual(backend.accepts(peer('vxlan', { VNI: 1, VtepMAC: '0e:a1:b2:c3:d4:e5' })), {
      ok: false, reason: 'its BackendType is "vxlan"; the host-gw backend uses only host-gw leases (as flanneld does)',
    });
    assert.deepEqual(backend.accepts(peer('udp')), {
      ok: false, reason: 'its BackendType is "udp"; the host-gw backend uses only host-gw leases (as flanneld does)',
    });
  });

  it('prepare refuses a --public-ip that is not the interface\'s address (NAT)', async () => {
    const backend = new HostGwBackend(context({ publicIp: ip('203.0.113.7') }));
    await assert.rejects(backend.prepare(), (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.equal(err.code, 'WEFT_ERR_CONFIG');
      assert.equal(err.path, '--public-ip');
      assert.equal(err.value, '203.0.113.7');
      assert.equal(err.message,
        '--public-ip 203.0.113.7 differs from eth0\'s address 192.168.64.3, which means NAT; ' +
        'the host-gw backend routes to peers\' interface addresses directly and cannot work through NAT (flanneld refuses this too): ' +
        'drop --public-ip, or use the vxlan or udp backend');
      return true;
    });
  });

  it('prepare publishes the interface address as a host-gw lease when there is no NAT', async () => {
    assert.deepEqual(await new HostGwBackend(context()).prepare(), { publicIp: ip('192.168.64.3'), backendType: 'host-gw' });
  });
});
