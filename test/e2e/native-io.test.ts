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
});
