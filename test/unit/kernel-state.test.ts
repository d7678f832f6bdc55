/**
 * The iproute2 JSON parsers of src/host/kernel-state.ts, fed with output
 * captured from iproute2 6.1.0 (kernel 6.18) in a throwaway network namespace:
 *
 *   eth0 (veth, 192.168.64.3/24, fd00::1/64), default via 192.168.64.1
 *   flannel.1: vxlan id 1 local 192.168.64.3 dev eth0 dstport 8472 nolearning,
 *              address 0e:a1:b2:c3:d4:e5, 10.244.1.0/32, up
 *   flannel.2: vxlan id 4096 dev eth0 dstport 4789 learning gbp, mtu 1400, down
 *   routes:    10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink proto 87
 *              10.244.3.0/24 via 192.168.64.4 dev eth0 proto 87
 *              blackhole 10.244.1.0/24 proto 87 metric 100
 *              10.244.4.0/24 via 192.168.64.5 dev eth0            (proto boot)
 *              10.244.5.0/24 via 192.168.64.6 dev eth0 metric 50  (proto boot)
 *              10.244.6.5 via 192.168.64.7 dev eth0 proto 87      (a host route: no "/32")
 *              blackhole 10.244.9.0/24 proto 87
 *              unreachable 10.244.10.0/24 proto 87
 *              10.244.11.0/24 via 10.244.11.0 dev flannel.1 onlink (proto boot)
 *   neighbours on flannel.1: 10.244.2.0 and 10.244.7.0 (given as 0E:AA:..) nud permanent,
 *              10.244.8.0 reachable, 10.244.13.0 stale, 10.244.14.0 noarp, 10.244.15.0 failed
 *   fdb on flannel.1: permanent entries (one of them the all-zero MAC with two remotes),
 *              one "static" and one added "dynamic" (state "")
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatIpv4, formatPrefix } from '../../src/net/ipv4';
import {
  parseFdb, parseLinkDetails, parseNeighbours, parseRoutes, WEFT_ROUTE_PROTO,
  type KernelFdbEntry, type KernelNeighbour, type KernelRoute,
} from '../../src/host/kernel-state';

// `ip -N -j -d -4 route show`
const ROUTES_JSON = '[{"type":"1","dst":"default","gateway":"192.168.64.1","dev":"eth0","protocol":"3","scope":"0","flags":[]},{"type":"6","dst":"10.244.1.0/24","protocol":"87","scope":"0","metric":100,"flags":[]},{"type":"1","dst":"10.244.2.0/24","gateway":"10.244.2.0","dev":"flannel.1","protocol":"87","scope":"0","flags":["onlink"]},{"type":"1","dst":"10.244.3.0/24","gateway":"192.168.64.4","dev":"eth0","protocol":"87","scope":"0","flags":[]},{"type":"1","dst":"10.244.4.0/24","gateway":"192.168.64.5","dev":"eth0","protocol":"3","scope":"0","flags":[]},{"type":"1","dst":"10.244.5.0/24","gateway":"192.168.64.6","dev":"eth0","protocol":"3","scope":"0","metric":50,"flags":[]},{"type":"1","dst":"10.244.6.5","gateway":"192.168.64.7","dev":"eth0","protocol":"87","scope":"0","flags":[]},{"type":"6","dst":"10.244.9.0/24","protocol":"87","scope":"0","flags":[]},{"type":"7","dst":"10.244.10.0/24","protocol":"87","scope":"0","flags":[]},{"type":"1","dst":"10.244.11.0/24","gateway":"10.244.11.0","dev":"flannel.1","protocol":"3","scope":"0","flags":["onlink"]},{"type":"1","dst":"192.168.64.0/24","dev":"eth0","protocol":"2","scope":"253","prefsrc":"192.168.64.3","flags":[]}]\n';

// `ip -N -j -d -6 route show` (the same namespace): nothing here is an IPv4 route
const ROUTES6_JSON = '[{"type":"1","dst":"fd00::/64","dev":"eth0","protocol":"2","scope":"0","metric":256,"flags":[],"pref":"medium"},{"type":"1","dst":"fd00:1::/64","gateway":"fd00::2","dev":"eth0","protocol":"87","scope":"0","metric":1024,"flags":[],"pref":"medium"},{"type":"1","dst":"fe80::/64","dev":"eth0p","protocol":"2","scope":"0","metric":256,"flags":[],"pref":"medium"},{"type":"1","dst":"fe80::/64","dev":"eth0","protocol":"2","scope":"0","metric":256,"flags":[],"pref":"medium"},{"type":"1","dst":"fe80::/64","dev":"flannel.1","protocol":"2","scope":"0","metric":256,"flags":[],"pref":"medium"}]\n';

// `ip -N -j -d -4 route show table main root 172.16.0.0/16`: no route there
const EMPTY_JSON = '[]\n';

// `ip -j -4 neigh show dev flannel.1 nud permanent`
const NEIGH_PERMANENT_JSON = '[{"dst":"10.244.7.0","lladdr":"0e:aa:bb:cc:dd:ee","state":["PERMANENT"]},{"dst":"10.244.2.0","lladdr":"0e:11:22:33:44:55","state":["PERMANENT"]}]\n';

// `ip -j -4 neigh show dev flannel.1 nud all`: every state
const NEIGH_ALL_JSON = '[{"dst":"10.244.13.0","lladdr":"0e:13:13:13:13:13","state":["STALE"]},{"dst":"10.244.15.0","state":["FAILED"]},{"dst":"10.244.7.0","lladdr":"0e:aa:bb:cc:dd:ee","state":["PERMANENT"]},{"dst":"10.244.14.0","lladdr":"0e:14:14:14:14:14","state":["NOARP"]},{"dst":"10.244.8.0","lladdr":"0e:12:12:12:12:12","state":["REACHABLE"]},{"dst":"10.244.2.0","lladdr":"0e:11:22:33:44:55","state":["PERMANENT"]}]\n';

// `bridge -j fdb show dev flannel.1`
const FDB_JSON = '[{"mac":"0e:97:97:97:97:97","dst":"192.168.64.11","flags":["self"],"state":"static"},{"mac":"0e:98:98:98:98:98","dst":"192.168.64.10","flags":["self"],"state":""},{"mac":"0e:99:99:99:99:99","dst":"192.168.64.8","flags":["self"],"state":"permanent"},{"mac":"0e:aa:bb:cc:dd:ee","dst":"192.168.64.5","flags":["self"],"state":"permanent"},{"mac":"00:00:00:00:00:00","dst":"192.168.64.9","flags":["self"],"state":"permanent"},{"mac":"00:00:00:00:00:00","dst":"192.168.64.12","flags":["self"],"state":"permanent"},{"mac":"0e:11:22:33:44:55","dst":"192.168.64.4","flags":["self"],"state":"permanent"}]\n';

// `bridge -j fdb show` (all devices): the veth's multicast entries have no dst
const FDB_ALL_JSON = '[{"mac":"33:33:00:00:00:01","ifname":"eth0p","flags":["self"],"state":"permanent"},{"mac":"01:00:5e:00:00:01","ifname":"eth0p","flags":["self"],"state":"permanent"},{"mac":"33:33:ff:6c:fb:06","ifname":"eth0p","flags":["self"],"state":"permanent"},{"mac":"33:33:00:00:00:01","ifname":"eth0","flags":["self"],"state":"permanent"},{"mac":"01:00:5e:00:00:01","ifname":"eth0","flags":["self"],"state":"permanent"},{"mac":"33:33:ff:02:95:07","ifname":"eth0","flags":["self"],"state":"permanent"},{"mac":"33:33:ff:00:00:01","ifname":"eth0","flags":["self"],"state":"permanent"},{"mac":"0e:97:97:97:97:97","ifname":"flannel.1","dst":"192.168.64.11","flags":["self"],"state":"static"},{"mac":"0e:98:98:98:98:98","ifname":"flannel.1","dst":"192.168.64.10","flags":["self"],"state":""},{"mac":"0e:99:99:99:99:99","ifname":"flannel.1","dst":"192.168.64.8","flags":["self"],"state":"permanent"},{"mac":"0e:aa:bb:cc:dd:ee","ifname":"flannel.1","dst":"192.168.64.5","flags":["self"],"state":"permanent"},{"mac":"00:00:00:00:00:00","ifname":"flannel.1","dst":"192.168.64.9","flags":["self"],"state":"permanent"},{"mac":"0e:11:22:33:44:55","ifname":"flannel.1","dst":"192.168.64.4","flags":["self"],"state":"permanent"}]\n';

// `ip -d -j link show dev flannel.1`
const LINK_VXLAN_JSON = '[{"ifindex":4,"ifname":"flannel.1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"qdisc":"noqueue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"0e:a1:b2:c3:d4:e5","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"vxlan","info_data":{"id":1,"local":"192.168.64.3","link":"eth0","port_range":{"low":0,"high":0},"port":8472,"learning":false,"ttl":0,"df":"unset","ageing":300,"udp_csum":true,"udp_zero_csum6_tx":false,"udp_zero_csum6_rx":false}},"inet6_addr_gen_mode":"eui64","num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n';

// `ip -d -j link show dev flannel.2`: no local address, learning and GBP on, down
const LINK_VXLAN_GBP_JSON = '[{"ifindex":5,"ifname":"flannel.2","flags":["BROADCAST","MULTICAST"],"mtu":1400,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"0e:02:02:02:02:02","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"vxlan","info_data":{"id":4096,"link":"eth0","port_range":{"low":0,"high":0},"port":4789,"learning":true,"ttl":0,"df":"unset","ageing":300,"udp_csum":true,"udp_zero_csum6_tx":false,"udp_zero_csum6_rx":false,"gbp":true}},"inet6_addr_gen_mode":"eui64","num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n';

// `ip -d -j link show dev eth0` (a veth)
const LINK_VETH_JSON = '[{"ifindex":3,"link":"eth0p","ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"2a:3e:28:02:95:07","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"inet6_addr_gen_mode":"eui64","num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n';

// `ip -d -j link show dev lo`: no linkinfo at all
const LINK_LO_JSON = '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"inet6_addr_gen_mode":"eui64","num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n';

/** One line per route, every field, so that a mismatch shows what differs. */
function routeText(r: KernelRoute): string {
  return `${r.type} ${formatPrefix(r.dst)} gw=${r.gateway === undefined ? '-' : formatIpv4(r.gateway)} dev=${r.dev ?? '-'}` +
    ` onlink=${r.onlink} proto=${r.proto} metric=${r.metric}`;
}

const neighText = (n: KernelNeighbour): string => `${formatIpv4(n.ip)} ${n.mac}`;
const fdbText = (e: KernelFdbEntry): string => `${e.mac} ${formatIpv4(e.dst)}`;

describe('parseRoutes', () => {
  it('reads every IPv4 route of `ip -N -j -d -4 route show`, skipping "default"', () => {
    assert.deepEqual(parseRoutes(ROUTES_JSON).map(routeText), [
      'blackhole 10.244.1.0/24 gw=- dev=- onlink=false proto=87 metric=100',
      'unicast 10.244.2.0/24 gw=10.244.2.0 dev=flannel.1 onlink=true proto=87 metric=0',
      'unicast 10.244.3.0/24 gw=192.168.64.4 dev=eth0 onlink=false proto=87 metric=0',
      'unicast 10.244.4.0/24 gw=192.168.64.5 dev=eth0 onlink=false proto=3 metric=0',
      'unicast 10.244.5.0/24 gw=192.168.64.6 dev=eth0 onlink=false proto=3 metric=50',
      'unicast 10.244.6.5/32 gw=192.168.64.7 dev=eth0 onlink=false proto=87 metric=0',
      'blackhole 10.244.9.0/24 gw=- dev=- onlink=false proto=87 metric=0',
      '7 10.244.10.0/24 gw=- dev=- onlink=false proto=87 metric=0',
      'unicast 10.244.11.0/24 gw=10.244.11.0 dev=flannel.1 onlink=true proto=3 metric=0',
      'unicast 192.168.64.0/24 gw=- dev=eth0 onlink=false proto=2 metric=0',
    ]);
  });

  it('gives the exact objects: numbers for addresses, undefined for what is absent', () => {
    const routes = parseRoutes(ROUTES_JSON);
    assert.deepEqual(routes[1], {
      dst: { network: 0x0af40200, length: 24 }, type: 'unicast', gateway: 0x0af40200, dev: 'flannel.1',
      onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0,
    });
    assert.deepEqual(routes[0], {
      dst: { network: 0x0af40100, length: 24 }, type: 'blackhole', gateway: undefined, dev: undefined,
      onlink: false, proto: 87, metric: 100,
    });
  });

  it('a host route printed without "/32" is a /32', () => {
    const host = parseRoutes(ROUTES_JSON).find((r) => r.dst.network === 0x0af40605);
    assert.deepEqual(host?.dst, { network: 0x0af40605, length: 32 });
  });

  it('skips IPv6 routes', () => {
    assert.deepEqual(parseRoutes(ROUTES6_JSON), []);
  });

  it('empty output (no route, or nothing printed at all) is no route', () => {
    assert.deepEqual(parseRoutes(EMPTY_JSON), []);
    assert.deepEqual(parseRoutes(''), []);
    assert.deepEqual(parseRoutes('  \n'), []);
  });

  it('defaults: no type is unicast, no protocol is 0, no metric is 0, no flags is not onlink', () => {
    assert.deepEqual(parseRoutes('[{"dst":"10.1.0.0/16"}]'), [{
      dst: { network: 0x0a010000, length: 16 }, type: 'unicast', gateway: undefined, dev: undefined,
      onlink: false, proto: 0, metric: 0,
    }]);
  });

  it('throws on output that is not JSON (iproute2 without -j)', () => {
    assert.throws(() => parseRoutes('10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto 87 onlink\n'), SyntaxError);
  });
});

describe('parseNeighbours', () => {
  it('reads `ip -j -4 neigh show dev D nud permanent`', () => {
    assert.deepEqual(parseNeighbours(NEIGH_PERMANENT_JSON).map(neighText), [
      '10.244.7.0 0e:aa:bb:cc:dd:ee',
      '10.244.2.0 0e:11:22:33:44:55',
    ]);
    assert.deepEqual(parseNeighbours(NEIGH_PERMANENT_JSON)[1], { ip: 0x0af40200, mac: '0e:11:22:33:44:55' });
  });

  it('keeps only permanent entries with an address (stale, failed, noarp, reachable are skipped)', () => {
    assert.deepEqual(parseNeighbours(NEIGH_ALL_JSON).map(neighText), [
      '10.244.7.0 0e:aa:bb:cc:dd:ee',
      '10.244.2.0 0e:11:22:33:44:55',
    ]);
  });

  it('lower-cases the MAC and skips IPv6 neighbours', () => {
    const text = '[{"dst":"10.244.3.0","lladdr":"0E:AB:CD:EF:01:23","state":["PERMANENT"]},' +
      '{"dst":"fe80::1","lladdr":"0e:ab:cd:ef:01:24","state":["PERMANENT"]}]';
    assert.deepEqual(parseNeighbours(text), [{ ip: 0x0af40300, mac: '0e:ab:cd:ef:01:23' }]);
  });

  it('empty output is no neighbour', () => {
    assert.deepEqual(parseNeighbours('[]\n'), []);
    assert.deepEqual(parseNeighbours(''), []);
  });
});

describe('parseFdb', () => {
  it('reads the permanent entries of `bridge -j fdb show dev D`, both remotes of a MAC included', () => {
    assert.deepEqual(parseFdb(FDB_JSON).map(fdbText), [
      '0e:99:99:99:99:99 192.168.64.8',
      '0e:aa:bb:cc:dd:ee 192.168.64.5',
      '00:00:00:00:00:00 192.168.64.9',
      '00:00:00:00:00:00 192.168.64.12',
      '0e:11:22:33:44:55 192.168.64.4',
    ]);
    assert.deepEqual(parseFdb(FDB_JSON)[0], { mac: '0e:99:99:99:99:99', dst: 0xc0a84008 });
  });

  it('skips entries without a dst (other devices\' multicast entries) and non-permanent ones', () => {
    assert.deepEqual(parseFdb(FDB_ALL_JSON).map(fdbText), [
      '0e:99:99:99:99:99 192.168.64.8',
      '0e:aa:bb:cc:dd:ee 192.168.64.5',
      '00:00:00:00:00:00 192.168.64.9',
      '0e:11:22:33:44:55 192.168.64.4',
    ]);
  });

  it('lower-cases the MAC and skips IPv6 remotes', () => {
    const text = '[{"mac":"0E:AA:00:00:00:01","dst":"192.168.64.20","flags":["self"],"state":"permanent"},' +
      '{"mac":"0e:aa:00:00:00:02","dst":"fd00::2","flags":["self"],"state":"permanent"}]';
    assert.deepEqual(parseFdb(text), [{ mac: '0e:aa:00:00:00:01', dst: 0xc0a84014 }]);
  });

  it('empty output is no entry', () => {
    assert.deepEqual(parseFdb('[]\n'), []);
    assert.deepEqual(parseFdb(''), []);
  });
});

/** `ip -d -j addr show dev flannel.1` (iproute2 6.1): the link details plus its addresses. */
const ADDR_VXLAN_JSON = '[{"ifindex":4,"ifname":"flannel.1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,' +
  '"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"ether","address":"0e:11:22:33:44:55",' +
  '"broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"vxlan",' +
  '"info_data":{"id":1,"local":"192.168.77.1","link":"eth0","port_range":{"low":0,"high":0},"port":8472,"learning":false,' +
  '"ttl":0,"df":"unset","ageing":300,"udp_csum":true,"udp_zero_csum6_tx":false,"udp_zero_csum6_rx":false}},"num_tx_queues":1,' +
  '"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,' +
  '"addr_info":[{"family":"inet","local":"10.244.1.0","prefixlen":32,"scope":"global","label":"flannel.1",' +
  '"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::c11:22ff:fe33:4455",' +
  '"prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]\n';

describe('parseLinkDetails', () => {
  it('reads `ip -d -j addr show` too: the same details plus the IPv4 addresses', () => {
    assert.deepEqual(parseLinkDetails(ADDR_VXLAN_JSON), {
      name: 'flannel.1', index: 4, kind: 'vxlan', mac: '0e:11:22:33:44:55', mtu: 1450, up: true,
      vxlan: { vni: 1, local: 0xc0a84d01, dev: 'eth0', port: 8472, learning: false, gbp: false }, addresses: ['10.244.1.0/32'],
    });
  });

  it('reads a vxlan device flannel made', () => {
    assert.deepEqual(parseLinkDetails(LINK_VXLAN_JSON), {
      name: 'flannel.1', index: 4, kind: 'vxlan', mac: '0e:a1:b2:c3:d4:e5', mtu: 1450, up: true,
      vxlan: { vni: 1, local: 0xc0a84003, dev: 'eth0', port: 8472, learning: false, gbp: false }, addresses: [],
    });
  });

  it('reads learning, GBP, a missing local address and a device that is down', () => {
    assert.deepEqual(parseLinkDetails(LINK_VXLAN_GBP_JSON), {
      name: 'flannel.2', index: 5, kind: 'vxlan', mac: '0e:02:02:02:02:02', mtu: 1400, up: false,
      vxlan: { vni: 4096, local: undefined, dev: 'eth0', port: 4789, learning: true, gbp: true }, addresses: [],
    });
  });

  it('a device of another kind has no vxlan details', () => {
    assert.deepEqual(parseLinkDetails(LINK_VETH_JSON), {
      name: 'eth0', index: 3, kind: 'veth', mac: '2a:3e:28:02:95:07', mtu: 1500, up: true, vxlan: undefined, addresses: [],
    });
  });

  it('a device without linkinfo has the kind ""', () => {
    assert.deepEqual(parseLinkDetails(LINK_LO_JSON), {
      name: 'lo', index: 1, kind: '', mac: '00:00:00:00:00:00', mtu: 65536, up: true, vxlan: undefined, addresses: [],
    });
  });

  it('lower-cases the MAC', () => {
    const text = LINK_VXLAN_JSON.replace('"0e:a1:b2:c3:d4:e5"', '"0E:A1:B2:C3:D4:E5"');
    assert.equal(parseLinkDetails(text)?.mac, '0e:a1:b2:c3:d4:e5');
  });

  it('no device in the output is undefined', () => {
    assert.equal(parseLinkDetails('[]\n'), undefined);
    assert.equal(parseLinkDetails(''), undefined);
    assert.equal(parseLinkDetails('[{"ifindex":9}]'), undefined);
  });
});
