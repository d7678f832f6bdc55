/**
 * The adaptive polling policy (src/workers/poll-window.ts), with a made-up
 * clock: the window grows while the worker is woken soon after it sleeps,
 * shrinks to nothing when it sleeps long, and an idle worker never polls.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PollWindow } from '../../src/workers/poll-window';

describe('PollWindow', () => {
  it('starts at 0: a worker that has not seen traffic does not poll', () => {
    assert.equal(new PollWindow({ startMicros: 20, maxMicros: 200 }).micros, 0);
  });

  it('grows from the start value, doubling, up to the maximum, while wake-ups come soon after sleeping', () => {
    const w = new PollWindow({ startMicros: 20, maxMicros: 200 });
    const seen: number[] = [];
    let t = 0;
    for (let i = 0; i < 6; i++) {
      w.sleeping(t);
      t += 50; // woken 50 µs later: a 200 µs window would have caught it
      w.woke(t);
      seen.push(w.micros);
    }
    assert.deepEqual(seen, [20, 40, 80, 160, 200, 200]);
  });

  it('halves after a long sleep and drops to 0 below the start value', () => {
    const w = new PollWindow({ startMicros: 20, maxMicros: 200 });
    let t = 0;
    for (let i = 0; i < 5; i++) {
      w.sleeping(t);
      w.woke((t += 10));
    }
    assert.equal(w.micros, 200);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      w.sleeping(t);
      w.woke((t += 10_000)); // idle for 10 ms
      seen.push(w.micros);
    }
    assert.deepEqual(seen, [100, 50, 25, 0, 0, 0]);
  });

  it('a wake-up without a sleep before it (the first, or after a poll that caught the packet) changes nothing', () => {
    const w = new PollWindow({ startMicros: 20, maxMicros: 200 });
    w.woke(5);
    assert.equal(w.micros, 0);
    w.sleeping(0);
    w.woke(10);
    assert.equal(w.micros, 20);
    w.woke(20); // no sleeping() in between
    assert.equal(w.micros, 20);
  });

  it('refuses a window with no room', () => {
    assert.throws(() => new PollWindow({ startMicros: 0, maxMicros: 10 }), RangeError);
    assert.throws(() => new PollWindow({ startMicros: 50, maxMicros: 10 }), RangeError);
  });
});
