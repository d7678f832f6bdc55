/**
 * `weft status`'s human view: what a person reads off one frame, the rate
 * formatting, and a peers table whose columns line up.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { STATUS_SCHEMA_VERSION, type AgentStatus } from '../../src/agent/agent-status';
import { formatDuration, formatRate, renderStatus } from '../../src/cli/status-command';

const STATUS: AgentStatus = {
  schema: STATUS_SCHEMA_VERSION,
  version: '0.1.0',
  pid: 4242,
  startedAt: '2025-01-01T10:00:00.000Z',
  now: '2025-01-01T12:03:00.000Z',
  ready: true,
  network: '10.244.0.0/16',
  lease: { subnet: '10.244.1.0/24', publicIp: '192.168.77.1', expiresAt: '2025-01-02T12:02:00.000Z' },
  backend: { type: 'udp', mtu: 1472, workers: 2, offloads: { 'tun-offload': true, 'udp-gso': true, 'udp-gro': false } },
  store: { description: 'etcd http://127.0.0.1:2379', connected: true, lastRenewal: '2025-01-01T12:02:48.000Z' },
  drops: { 'decap/source_not_owned': 3, 'encap/no_route': 0 },
  peers: [
    {
      subnet: '10.244.2.0/24', publicIp: '192.168.77.2', via: 'udp', port: 8285,
      tx: { packets: 1000, bytes: 1_400_000, packetsPerSecond: 1234, bitsPerSecond: 45_600_000 },
      rx: { packets: 10, bytes: 1000, packetsPerSecond: 0, bitsPerSecond: 999 },
      drops: { 'decap/bad_checksum': 2, 'encap/ttl_expired': 5 },
    },
    {
      subnet: '10.244.13.0/24', publicIp: '10.0.0.13', via: 'vxlan', port: null,
      tx: null, rx: null, drops: null,
    },
  ],
};

describe('formatRate', () => {
  const cases: Array<[number, string]> = [
    [0, '0'], [7, '7'], [999, '999'], [1000, '1.00 k'], [1234, '1.23 k'], [45_600_000, '45.6 M'],
    [999_700, '1.00 M'], [1.5e9, '1.50 G'], [0.5, '0.5'],
  ];
  for (const [n, text] of cases) {
    it(`${n} -> "${text}"`, () => assert.equal(formatRate(n), text));
  }
});

describe('formatDuration', () => {
  it('shows the two largest units', () => {
    assert.equal(formatDuration(12_000), '12s');
    assert.equal(formatDuration(303_000), '5m 3s');
    assert.equal(formatDuration((23 * 60 + 59) * 60_000), '23h 59m');
    assert.equal(formatDuration((3 * 24 + 4) * 3_600_000), '3d 4h');
  });
});

describe('renderStatus', () => {
  const text = renderStatus(STATUS);
  const lines = text.split('\n');

  it('shows the agent, its lease, backend, offloads in effect, store and nonzero drops', () => {
    assert.match(text, /^agent: +weft 0\.1\.0, pid 4242, up 2h 3m$/m);
    assert.match(text, /^ready: +yes$/m);
    assert.match(text, /^network: +10\.244\.0\.0\/16$/m);
    assert.match(text, /^lease: +10\.244\.1\.0\/24 on 192\.168\.77\.1, expires in 23h 59m$/m);
    assert.match(text, /^backend: +udp, MTU 1472, 2 workers$/m);
    assert.match(text, /^offloads: +tun-offload, udp-gso$/m);
    assert.match(text, /^store: +etcd http:\/\/127\.0\.0\.1:2379, connected, last renewal 12s ago$/m);
    assert.match(text, /^drops: +decap\/source_not_owned 3$/m);
  });

  it('has one row per peer with its rates formatted and its drops summed, "-" where the backend keeps no figures', () => {
    const udp = lines.find((l) => l.startsWith('10.244.2.0/24'));
    assert.ok(udp !== undefined, text);
    assert.deepEqual(udp.split(/ {2,}/), ['10.244.2.0/24', '192.168.77.2', 'udp:8285', '1.23 k', '45.6 M', '0', '999', '7']);
    const vxlan = lines.find((l) => l.startsWith('10.244.13.0/24'));
    assert.ok(vxlan !== undefined, text);
    assert.deepEqual(vxlan.split(/ {2,}/), ['10.244.13.0/24', '10.0.0.13', 'vxlan', '-', '-', '-', '-', '-']);
  });

  it('keeps the peers table aligned: every row starts each column where the header does', () => {
    const header = lines.findIndex((l) => l.startsWith('SUBNET'));
    assert.ok(header >= 0, text);
    const rows = lines.slice(header, header + 3);
    const starts = (line: string): number[] => [...line.matchAll(/(?:^| {2})(\S)/g)].map((m) => (m.index ?? 0) + m[0].length - 1);
    const columns = ['SUBNET', 'PUBLIC IP', 'VIA', 'TX pkt/s', 'TX bit/s', 'RX pkt/s', 'RX bit/s', 'DROPS'].map((c) => (rows[0] as string).indexOf(c));
    assert.deepEqual(starts(rows[0] as string), columns);
    for (const row of rows.slice(1)) assert.deepEqual(starts(row), columns, `misaligned:\n${rows.join('\n')}`);
  });

  it('says so when there are no peers, and copes with a document from before the lease and the backend', () => {
    const early = renderStatus({
      ...STATUS, ready: false, network: null, lease: null, backend: null, drops: null, peers: [],
      store: { description: 'static', connected: true, lastRenewal: null },
    });
    assert.match(early, /^ready: +no$/m);
    assert.match(early, /^lease: +none yet$/m);
    assert.match(early, /^backend: +not running yet$/m);
    assert.match(early, /^store: +static, connected$/m);
    assert.match(early, /^no peers$/m);
    assert.doesNotMatch(early, /SUBNET|^drops:/m);
  });

  it('cuts lines at the given width so a redraw does not wrap', () => {
    for (const line of renderStatus(STATUS, { width: 40 }).split('\n')) assert.ok(line.length <= 40, line);
  });
});
