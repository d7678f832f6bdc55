/**
 * Readiness watchers (pollStart/pollStop, native/src/binding.c) across the
 * teardown of the environment that owns them: worker threads that start and
 * stop watchers and then end at once, in every order, many times.
 *
 * Each watcher's uv_close calls back later, and that callback reads the
 * environment's instance data; teardown must hold the environment until all
 * of them are done, whether teardown itself closed the watcher or JS stopped
 * it just before. A mistake here is a use after free: a crash or a corrupted
 * heap, which AddressSanitizer reports at once (native/fuzz/asan-tests runs
 * this file against an ASan build of the addon). In a normal build, that the
 * process survives and every worker ends as it should is what is checked.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';

const NATIVE = path.join(__dirname, '..', '..', 'src', 'native');
const ROUNDS = 30;

/**
 * The worker: opens UDP sockets on loopback, watches them, does `plan`, then
 * ends the way the plan says. Plans:
 *   stop-all-exit     stop every watcher, process.exit() at once
 *   stop-some-exit    stop every other watcher, process.exit() (teardown closes the rest)
 *   stop-none-exit    process.exit() with every watcher live
 *   stop-all-post     stop every watcher, tell the main thread, which terminates the worker
 *   churn-post        start and stop watchers 200 times without yielding, leave some live, then as above
 *   stop-in-callback  a datagram makes a watcher fire; its callback stops them all and exits
 *   throw-in-callback the callback stops its own watcher and throws (an uncaught exception ends the worker)
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const native = require(workerData.native).loadNative();
const plan = workerData.plan;
const socks = [];
for (let i = 0; i < 4; i++) socks.push(native.udpOpen(0x7f000001, 0, 0, 0, 0));
const noop = () => {};
let handles = socks.map((s) => native.pollStart(s.fd, noop));
switch (plan) {
  case 'stop-all-exit':
    for (const h of handles) native.pollStop(h);
    process.exit(0);
  case 'stop-some-exit':
    native.pollStop(handles[0]);
    native.pollStop(handles[2]);
    process.exit(0);
  case 'stop-none-exit':
    process.exit(0);
  case 'stop-all-post':
    for (const h of handles) native.pollStop(h);
    parentPort.postMessage('stopped');
    break;
  case 'churn-post':
    for (let i = 0; i < 200; i++) {
      const s = socks[i % socks.length];
      native.pollStop(handles[i % socks.length]);
      handles[i % socks.length] = native.pollStart(s.fd, noop);
    }
    native.pollStop(handles[1]);
    native.pollStop(handles[1]); // twice: harmless
    parentPort.postMessage('stopped');
    break;
  case 'stop-in-callback':
  case 'throw-in-callback': {
    // the addon cannot say which port the kernel chose: take the first free one from a random start
    let target, port = 20000 + Math.floor(Math.random() * 30000);
    for (;; port++) {
      try { target = native.udpOpen(0x7f000001, port, 0, 0, 0); break; } catch { /* in use */ }
    }
    const h = native.pollStart(target.fd, () => {
      native.pollStop(h);
      if (plan === 'throw-in-callback') throw new Error('planned');
      for (const x of handles) native.pollStop(x);
      process.exit(0);
    });
    const io = new Uint32Array(6);
    native.udpSendBatch(socks[0].fd, new Uint8Array(8), new Int32Array([0]), new Int32Array([8]),
      new Uint32Array([0x7f000001]), new Uint16Array([port]), 1, io);
    break;
  }
  default:
    throw new Error('unknown plan ' + plan);
}
`;

interface Ending {
  code: number;
  error?: string;
}

/** Runs one worker with `plan`; resolves with how it ended. */
function runWorker(plan: string): Promise<Ending> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { eval: true, workerData: { native: NATIVE, plan } });
    let error: string | undefined;
    const timer = setTimeout(() => reject(new Error(`${plan}: the worker did not end within 10 s`)), 10_000);
    w.on('message', () => {
      void w.terminate();
    });
    w.on('error', (err) => {
      error = err.message;
    });
    w.on('exit', (code) => {
      clearTimeout(timer);
      resolve(error === undefined ? { code } : { code, error });
    });
  });
}

/** Checks how a worker ended against its plan. */
function checkEnding(plan: string, got: Ending, what: string): void {
  if (plan.endsWith('-post')) {
    // terminate() ends it with 1, unless the worker, with nothing left to watch, ended by itself first
    assert.ok(got.error === undefined && (got.code === 0 || got.code === 1), `${what}: ${JSON.stringify(got)}`);
  } else if (plan === 'throw-in-callback') {
    assert.deepEqual(got, { code: 1, error: 'planned' }, what);
  } else {
    assert.deepEqual(got, { code: 0 }, what);
  }
}

describe('readiness watchers across worker teardown', () => {
  const plans = ['stop-all-exit', 'stop-some-exit', 'stop-none-exit', 'stop-all-post', 'churn-post', 'stop-in-callback', 'throw-in-callback'];
  for (const plan of plans) {
    test(`${plan}, ${ROUNDS} times: every worker ends as planned and the process survives`, async () => {
      for (let i = 0; i < ROUNDS; i++) checkEnding(plan, await runWorker(plan), `${plan}, round ${i}`);
    });
  }

  test('all plans at once, interleaved: 4 workers at a time', async () => {
    for (let i = 0; i < ROUNDS; i += 4) {
      const batch = [0, 1, 2, 3].map((k) => plans[(i + k) % plans.length] as string);
      const got = await Promise.all(batch.map((p) => runWorker(p)));
      got.forEach((g, k) => checkEnding(batch[k] as string, g, `${batch[k]}, round ${i}`));
    }
  });
});
