/**
 * Entry point of a data-plane worker thread: wires one Forwarder to the
 * thread's event loop (native readiness watchers on the TUN queue and the UDP
 * socket) and obeys control messages. The main thread owns the descriptors;
 * the worker only borrows them and never closes them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadNative } from '../native';
import { Forwarder } from './forwarder';
import { PollWindow } from './poll-window';
import { ReadLimit } from './read-limit';
import type { ControlMessage, WorkerInit, WorkerMessage } from './messages';

/** Longest stretch a worker polls without returning to its event loop. */
const SPIN_SESSION_MICROS = 2000;

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('forwarder-worker must run as a worker thread');
  const init = workerData as WorkerInit;
  const native = loadNative();
  const forwarder = new Forwarder(native, init);
  const post = (msg: WorkerMessage): void => port.postMessage(msg);

  const failOn = (what: string) => (status: number): void => {
    if (status < 0) throw new Error(`${what} watcher failed with libuv status ${status}`);
  };
  const tunFail = failOn('TUN');
  const udpFail = failOn('UDP');
  // --busy-poll-us: after handling packets, keep polling (without sleeping) for a
  // short while, so that a packet arriving within the window skips a wake-up;
  // --adaptive-poll: the same with a window that follows the traffic
  const spinUs = init.busyPollMicros ?? 0;
  const adaptive = spinUs === 0 && init.adaptivePoll === true ? new PollWindow() : null;
  /** A pass that hit this many packets stopped with more waiting: the watcher fires again at once, no need to poll. */
  const fullPass = init.batchSize * (init.maxBatchesPerWakeup ?? 8);
  const nowMicros = (): number => performance.now() * 1000;
  // no empty read ending each pass while packets come one at a time (polling modes read until empty)
  const readLimit = spinUs === 0 && adaptive === null && init.shortTunReads !== false ? new ReadLimit(init.batchSize) : null;
  /**
   * Polls both descriptors for up to `us` at a time, handling what arrives,
   * until a window passes empty, or SPIN_SESSION_MICROS have passed: then the
   * event loop runs (control messages: routes, stop) and the watchers carry on.
   */
  const spin = (us: number): void => {
    const until = nowMicros() + SPIN_SESSION_MICROS;
    for (;;) {
      const which = native.spinPoll(init.tunFd, init.udpFd, us);
      if (which < 0 || nowMicros() > until) return;
      if (which === 0) forwarder.pumpTun();
      else forwarder.pumpUdp();
    }
  };
  const afterPass = (handled: number): void => {
    if (spinUs > 0) {
      spin(spinUs);
    } else if (adaptive !== null) {
      if (handled < fullPass && adaptive.micros > 0) spin(adaptive.micros);
      adaptive.sleeping(nowMicros());
    }
  };
  const tunWatch = native.pollStart(init.tunFd, (status) => {
    tunFail(status);
    adaptive?.woke(nowMicros());
    if (readLimit !== null) {
      const read = forwarder.pumpTun(readLimit.start(nowMicros()));
      readLimit.end(read, nowMicros());
      afterPass(read);
    } else {
      afterPass(forwarder.pumpTun());
    }
  });
  const udpWatch = native.pollStart(init.udpFd, (status) => {
    udpFail(status);
    adaptive?.woke(nowMicros());
    afterPass(forwarder.pumpUdp());
  });

  port.on('message', (msg: ControlMessage) => {
    switch (msg.type) {
      case 'routes':
        forwarder.setRoutes(msg.snapshot, msg.peerCounters);
        post({ type: 'routes-applied', version: msg.snapshot.version });
        break;
      case 'stop':
        native.pollStop(tunWatch);
        native.pollStop(udpWatch);
        post({ type: 'stopped' });
        port.close();
        break;
    }
  });
  post({ type: 'ready' });
}

main();
