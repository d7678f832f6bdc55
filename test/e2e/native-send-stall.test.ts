/**
 * The native send loops (native/src/udp.c) when the kernel keeps refusing a
 * send for want of buffer space while poll(2) says the socket is writable.
 *
 * How the kernel is made to do that, honestly and every time: a UDP socket
 * whose send buffer is the kernel's minimum (SO_SNDBUFFORCE 1 gives about
 * 4.6 KB) sends a 60000-byte datagram over a 1500-byte MTU. IP fragments it
 * in __ip_append_data, and every fragment after the first is allocated only
 * while the socket's write memory stays under twice its send buffer, else
 * -ENOBUFS; the partial datagram is freed at once, so the buffer is empty
 * again and poll reports POLLOUT. Before the retries were bounded, such a
 * send never returned. Each case runs in a child process in a fresh network
 * namespace (unshare --net: loopback with MTU 1500) under a timeout, so a
 * hang is a test failure rather than a stuck test run.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { describe, test } from 'node:test';
import { loadNative } from '../../src/native';
import { vnetTcpPacket } from './fixtures/tso-packet';
import { e2eSkipReason } from './helpers';

const LOOPBACK = 0x7f000001;
const ENOBUFS = constants.errno.ENOBUFS;
/** How long a case may take before it counts as hung. */
const CASE_TIMEOUT_MS = 10_000;

interface Outcome {
  sent: number;
  failed: number;
  errno: number;
  datagrams?: number;
  ms: number;
}

/** Runs one case in this process (inside the child's namespace) and returns what the native call reported. */
function runCase(name: string): Outcome {
  execFileSync('ip', ['link', 'set', 'lo', 'mtu', '1500', 'up']);
  const native = loadNative();
  // 'roomy': the same sends with a normal buffer, to show the refusals come from the tiny one
  const sndbuf = name === 'roomy' ? 1 << 22 : 1;
  const udp = native.udpOpen(LOOPBACK, 0, 0, 0, sndbuf);
  const io = new Uint32Array(6);
  const to = (n: number): [Uint32Array, Uint16Array] => [new Uint32Array(n).fill(LOOPBACK), new Uint16Array(n).fill(9)];
  const t0 = process.hrtime.bigint();
  let sent: number;
  switch (name) {
    case 'sendBatch':
    case 'roomy': {
      // big, small, big: the small one goes, each big one is given up
      const sizes = [60_000, 100, 60_000];
      const offsets = new Int32Array(sizes.length);
      for (let i = 1; i < sizes.length; i++) offsets[i] = (offsets[i - 1] as number) + (sizes[i - 1] as number);
      const slab = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
      sent = native.udpSendBatch(udp.fd, slab, offsets, new Int32Array(sizes), ...to(sizes.length), sizes.length, io);
      break;
    }
    case 'vnetPlain': {
      // a 60000-byte packet without GSO, then a small one
      const big = vnetTcpPacket(60_000 - 40, 0);
      const small = vnetTcpPacket(60, 0);
      const slab = Buffer.concat([big, small]);
      sent = native.udpSendVnetBatch(udp.fd, slab, new Int32Array([0, big.length]), new Int32Array([big.length, small.length]),
        ...to(2), 2, false, io);
      break;
    }
    case 'vnetGsoFallback': {
      // 3 segments of 20000 bytes: UDP_SEGMENT is refused (segment > MTU), the one-by-one fallback meets ENOBUFS
      const sp = vnetTcpPacket(60_000, 20_000);
      sent = native.udpSendVnetBatch(udp.fd, sp, new Int32Array([0]), new Int32Array([sp.length]), ...to(1), 1, true, io);
      break;
    }
    default:
      throw new Error(`unknown case ${name}`);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  native.closeFd(udp.fd);
  return { sent, failed: io[1] as number, errno: io[2] as number, datagrams: io[4] as number, ms };
}

/** Runs a case in a child process in a new network namespace; a hang becomes an assertion failure. */
function inNamespace(name: string): Outcome {
  const r = spawnSync('unshare', ['--net', '--', process.execPath, __filename, '--case', name], {
    encoding: 'utf8', timeout: CASE_TIMEOUT_MS, killSignal: 'SIGKILL',
  });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
    assert.fail(`${name}: the native send did not return within ${CASE_TIMEOUT_MS} ms (killed): it retries a refused send forever`);
  }
  assert.equal(r.status, 0, `${name}: child exited with ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Outcome;
}

if (process.argv[2] === '--case') {
  process.stdout.write(`${JSON.stringify(runCase(process.argv[3] as string))}\n`);
} else {
  describe('native sends the kernel keeps refusing (ENOBUFS while poll says writable)', { skip: e2eSkipReason(['ip', 'unshare']) }, () => {
    test('control: with a normal send buffer the same datagrams all go', () => {
      const o = inNamespace('roomy');
      assert.deepEqual({ sent: o.sent, failed: o.failed }, { sent: 3, failed: 0 });
    });

    test('udpSendBatch gives up the refused datagrams, sends the rest, and returns promptly', () => {
      const o = inNamespace('sendBatch');
      assert.deepEqual({ sent: o.sent, failed: o.failed, errno: o.errno }, { sent: 1, failed: 2, errno: ENOBUFS });
      assert.ok(o.ms < 1000, `took ${o.ms} ms`);
    });

    test('udpSendVnetBatch (no GSO) gives up the refused packet and sends the next one', () => {
      const o = inNamespace('vnetPlain');
      assert.deepEqual({ sent: o.sent, failed: o.failed, errno: o.errno }, { sent: 1, failed: 1, errno: ENOBUFS });
      assert.ok(o.ms < 1000, `took ${o.ms} ms`);
    });

    test('udpSendVnetBatch: the one-by-one fallback after a refused UDP_SEGMENT send is bounded too', () => {
      const o = inNamespace('vnetGsoFallback');
      assert.deepEqual({ sent: o.sent, failed: o.failed, errno: o.errno }, { sent: 0, failed: 3, errno: ENOBUFS });
      assert.ok(o.ms < 1000, `took ${o.ms} ms`);
    });
  });
}
