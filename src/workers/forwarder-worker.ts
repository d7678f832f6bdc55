/**
 * Entry point of a data-plane worker thread: wires one Forwarder to the
 * thread's event loop (native readiness watchers on the TUN queue and the UDP
 * socket) and obeys control messages. The main thread owns the descriptors;
 * the worker only borrows them and never closes them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadNative } from '../native';
import { Forwarder } from './forwarder';
import type { ControlMessage, WorkerInit, WorkerMessage } from './messages';

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
  // short while, so that a packet arriving within the window skips a wake-up
  const spinUs = init.busyPollMicros ?? 0;
  const spin = (): void => {
    for (;;) {
      const which = native.spinPoll(init.tunFd, init.udpFd, spinUs);
      if (which < 0) return;
      if (which === 0) forwarder.pumpTun();
      else forwarder.pumpUdp();
    }
  };
  const tunWatch = native.pollStart(init.tunFd, (status) => {
    tunFail(status);
    forwarder.pumpTun();
    if (spinUs > 0) spin();
  });
  const udpWatch = native.pollStart(init.udpFd, (status) => {
    udpFail(status);
    forwarder.pumpUdp();
    if (spinUs > 0) spin();
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
