/**
 * Kernel edge cases of the native addon, each checked in a fresh network
 * namespace (see fixtures/native-checks.ts for what each one does).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../../src/lab/lab';
import { e2eSkipReason, leftoverNamespaces } from './helpers';

const skip = e2eSkipReason(['ip']);

interface Checks {
  gsoFallback: { sent: number; failed: number; received: number };
  truncated: number;
  spinOnError: number;
  stalePollStop: number;
  denseRead: { packets: number[][]; capped: number[] };
  packedRuns: {
    runs: { received: Record<string, string[]>; sent: number; syscalls: number; failed: number; perPacket: number[][] };
    refused: { received: Record<string, string[]>; sent: number; syscalls: number; failed: number; perPacket: number[][] };
  };
  error?: string;
}

describe('native addon edge cases in a namespace', { skip }, () => {
  let lab: Lab;
  let checks: Checks;

  before(async () => {
    lab = await Lab.create({ hosts: 1, pods: false });
    const out = await lab.exec(lab.host(1).ns, process.execPath, [path.join(__dirname, 'fixtures', 'native-checks.js')], { timeoutMs: 20_000 });
    checks = JSON.parse(out) as Checks;
  });

  after(async () => {
    const prefix = lab?.prefix;
    await lab?.destroy();
    if (prefix !== undefined) assert.deepEqual(await leftoverNamespaces(prefix), []);
  });

  test('a UDP_SEGMENT send the path refuses still delivers every datagram, one by one', () => {
    assert.equal(checks.error, undefined);
    assert.deepEqual(checks.gsoFallback, { sent: 40, failed: 0, received: 40 });
  });

  test('a TUN packet larger than the read slot is reported as -1, not as a packet', () => {
    assert.equal(checks.truncated, -1);
  });

  test('spinPoll on a descriptor in error says so instead of "readable"', () => {
    assert.equal(checks.spinOnError, -2);
  });

  test('stopping stale watcher handles leaves newer watchers running', () => {
    assert.equal(checks.stalePollStop, 10);
  });

  test('a dense TUN read packs packets of several sizes on 64-byte boundaries, each intact; a read capped at one makes one read', () => {
    const { packets, capped } = checks.denseRead;
    assert.deepEqual(packets.map((p) => p[2]), [10, 100, 1000, 30, 1300, 64], 'every datagram, in order');
    assert.ok(packets.every((p) => p[3] === 1), 'each payload is the bytes sent');
    for (const p of packets) assert.equal((p[0] as number) % 64, 0, `offset ${p[0]} is on a 64-byte boundary`);
    // after the capped first read, the rest came in full reads: packed back to back (next = this + length rounded up to 64)
    const dense = packets.slice(1);
    for (let i = 1; i < dense.length; i++) {
      const prev = dense[i - 1] as number[];
      const cur = dense[i] as number[];
      if ((cur[0] as number) === 0) continue; // a new read call starts again at 0
      assert.equal(cur[0], (prev[0] as number) + Math.ceil((prev[1] as number) / 64) * 64);
    }
    assert.ok(dense.some((p) => (p[0] as number) > 0 && (p[0] as number) < 1408), 'at least two packets shared one slot\'s room');
    assert.deepEqual(capped, [1, 1], 'one packet, one read(2)');
  });

  test('runs of equal-size packets to one peer leave as one UDP_SEGMENT message each, and arrive as the same datagrams', () => {
    const { runs } = checks.packedRuns;
    assert.equal(runs.sent, 12);
    assert.equal(runs.failed, 0);
    assert.equal(runs.syscalls, 1, 'three messages, one sendmmsg');
    // a plain socket (no UDP_GRO) gets one datagram per packet, in order, each the packet it was
    assert.deepEqual(runs.received['9300'], ['200:1', '200:2', '200:3', '200:4', '200:5', '200:6', '150:7', '200:11', '200:12']);
    assert.deepEqual(runs.received['9301'], ['200:8', '200:9', '200:10']);
    assert.deepEqual(runs.perPacket, [...Array.from({ length: 6 }, () => [1, 200, 0]), [1, 150, 0], ...Array.from({ length: 5 }, () => [1, 200, 0])]);
  });

  test('a run the path refuses as one message still delivers every packet, one by one', () => {
    const { refused } = checks.packedRuns;
    assert.equal(refused.sent, 4);
    assert.equal(refused.failed, 0);
    assert.deepEqual(refused.received['9302'], ['1300:1', '1300:2', '1300:3', '1300:4']);
    assert.deepEqual(refused.perPacket, Array.from({ length: 4 }, () => [1, 1300, 0]));
  });
});
