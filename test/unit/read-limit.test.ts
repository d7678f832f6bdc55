/**
 * The TUN read-limit policy (src/workers/read-limit.ts), with a made-up clock:
 * one packet per pass while packets come alone, back to full passes when the
 * watcher fires again at once or a backlog outlasts a few single passes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadLimit } from '../../src/workers/read-limit';

const OPTS = { awakeGapMicros: 10, maxSinglePasses: 4 };

describe('ReadLimit', () => {
  it('starts with full passes', () => {
    assert.equal(new ReadLimit(64, OPTS).start(0), 64);
  });

  it('reads one packet per pass after a full pass found one packet alone, while passes come after a sleep', () => {
    const r = new ReadLimit(64, OPTS);
    let t = 0;
    assert.equal(r.start(t), 64);
    r.end(1, (t += 5));
    const caps: number[] = [];
    for (let i = 0; i < 3; i++) {
      t += 100; // slept: the next packet came 100 µs later
      caps.push(r.start(t));
      r.end(1, (t += 5));
    }
    assert.deepEqual(caps, [1, 1, 1]);
  });

  it('goes back to full passes when the watcher fires again within the awake gap (packets were waiting)', () => {
    const r = new ReadLimit(64, OPTS);
    r.start(0);
    r.end(1, 5);
    assert.equal(r.start(105), 1);
    r.end(1, 110);
    assert.equal(r.start(113), 64, '3 µs after the last pass: the loop did not sleep');
    r.end(17, 130);
    assert.equal(r.start(500), 64, 'a full pass that read several stays full');
  });

  it('forces a full pass after maxSinglePasses single passes in a row, whatever the clock says', () => {
    const r = new ReadLimit(64, OPTS);
    let t = 0;
    r.start(t);
    r.end(1, (t += 1));
    const caps: number[] = [];
    for (let i = 0; i < 6; i++) {
      t += 50;
      const cap = r.start(t);
      caps.push(cap);
      r.end(cap === 1 ? 1 : 9, (t += 1)); // a backlog: the full pass finds nine
    }
    assert.deepEqual(caps, [1, 1, 1, 1, 64, 64]);
  });

  it('a single pass that found nothing (a spurious wake-up) does not count towards the forced full pass', () => {
    const r = new ReadLimit(64, OPTS);
    let t = 0;
    r.start(t);
    r.end(1, (t += 1));
    for (let i = 0; i < 10; i++) {
      t += 50;
      assert.equal(r.start(t), 1);
      r.end(0, (t += 1));
    }
  });

  it('a full pass that found nothing or a full batch does not expect singles', () => {
    const r = new ReadLimit(8, OPTS);
    r.start(0);
    r.end(0, 1);
    assert.equal(r.expectsSingle, false);
    r.start(100);
    r.end(8, 101);
    assert.equal(r.expectsSingle, false);
  });

  it('refuses a batch size that is not a positive integer', () => {
    assert.throws(() => new ReadLimit(0), RangeError);
    assert.throws(() => new ReadLimit(1.5), RangeError);
  });
});
