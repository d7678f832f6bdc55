/**
 * iproute2 batch mode: parseBatchErrors against stderr captured from
 * `ip -force -batch -` / `bridge -force -batch -` (iproute2 6.1.0, kernel
 * 6.18, in a throwaway network namespace with a vxlan device flannel.1 and
 * a down vxlan device flannel.2), and runBatch's checks that come before any
 * process is started.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CommandError } from '../../src/errors';
import { parseBatchErrors, runBatch } from '../../src/host/ip-batch';

/** Five commands, four failing in four ways; exit code 1. */
const SEVERAL_COMMANDS = [
  'route replace 10.244.20.0/24 via 10.244.20.0 dev flannel.1 onlink proto 87',
  'route del 10.244.99.0/24 proto 87',
  'route replace 10.244.21.0/24 via 10.244.21.0 dev nosuchdev onlink proto 87',
  'neigh replace 10.244.21.0 lladdr zz dev flannel.1 nud permanent',
  'route replace 10.244.22.0/24 via 172.31.0.1 proto 87',
];
const SEVERAL_STDERR = 'RTNETLINK answers: No such process\nCommand failed -:2\nCannot find device "nosuchdev"\nCommand failed -:3\n' +
  '"zz" is invalid lladdr.\nCommand failed -:4\nError: Nexthop has invalid gateway.\nCommand failed -:5\n';

/**
 * A failing line whose message spans several lines (ip's own warning before
 * the kernel's error), then another failure; exit code 1.
 */
const MULTILINE_COMMANDS = [
  'route replace 10.244.98.0/24 via 10.244.98.0 dev flannel.1 onlink proto 87',
  'addr del 10.244.1.0 dev flannel.1',
  'route del 10.244.97.0/24 proto 87',
];
const MULTILINE_STDERR = 'Warning: Executing wildcard deletion to stay compatible with old scripts.\n' +
  '         Explicitly specify the prefix length (10.244.1.0/32) to avoid this warning.\n' +
  '         This special behaviour is likely to disappear in further releases,\n' +
  '         fix your scripts!\n' +
  'Error: ipv4: Address not found.\nCommand failed -:2\nRTNETLINK answers: No such process\nCommand failed -:3\n';

/** `bridge -force -batch -`: exit code 1. */
const BRIDGE_COMMANDS = [
  'fdb replace 0e:40:40:40:40:40 dev flannel.1 dst 192.168.64.40 self permanent',
  'fdb del 0e:41:41:41:41:41 dev flannel.1 dst 192.168.64.41 self',
  'fdb replace 0e:42:42:42:42:42 dev nosuch dst 192.168.64.42 self permanent',
  'fdb replace 0e:43:43:43:43:43 dev flannel.1 dst 192.168.64.43 self permanent',
];
const BRIDGE_STDERR = 'RTNETLINK answers: No such file or directory\nCommand failed -:2\nCannot find device "nosuch"\nCommand failed -:3\n';

/**
 * A `neigh` command the kernel rejects makes ip exit(2) on the spot: no
 * "Command failed" line for it, and the lines after it never run (here line 7).
 */
const ABORTED_COMMANDS = [
  ...SEVERAL_COMMANDS,
  'neigh del 10.244.77.0 dev flannel.1',
  'route replace 10.244.30.0/24 via 10.244.30.0 dev flannel.1 onlink proto 87',
];
const ABORTED_STDERR = `${SEVERAL_STDERR}RTNETLINK answers: No such file or directory\n`;

/** Runs `fn` with an empty PATH, so that starting `ip` or `bridge` would fail. */
async function withoutPath<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env['PATH'];
  process.env['PATH'] = '';
  try {
    return await fn();
  } finally {
    process.env['PATH'] = saved;
  }
}

describe('parseBatchErrors', () => {
  it('maps each "Command failed -:N" to command N-1 with the message printed before it', () => {
    assert.deepEqual(parseBatchErrors(SEVERAL_STDERR, SEVERAL_COMMANDS).failures, [
      { index: 1, command: SEVERAL_COMMANDS[1], error: 'RTNETLINK answers: No such process' },
      { index: 2, command: SEVERAL_COMMANDS[2], error: 'Cannot find device "nosuchdev"' },
      { index: 3, command: SEVERAL_COMMANDS[3], error: '"zz" is invalid lladdr.' },
      { index: 4, command: SEVERAL_COMMANDS[4], error: 'Error: Nexthop has invalid gateway.' },
    ]);
  });

  it('joins a message of several lines with single spaces, trimmed', () => {
    assert.deepEqual(parseBatchErrors(MULTILINE_STDERR, MULTILINE_COMMANDS).failures, [
      {
        index: 1,
        command: 'addr del 10.244.1.0 dev flannel.1',
        error: 'Warning: Executing wildcard deletion to stay compatible with old scripts. ' +
          'Explicitly specify the prefix length (10.244.1.0/32) to avoid this warning. ' +
          'This special behaviour is likely to disappear in further releases, fix your scripts! ' +
          'Error: ipv4: Address not found.',
      },
      { index: 2, command: 'route del 10.244.97.0/24 proto 87', error: 'RTNETLINK answers: No such process' },
    ]);
  });

  it('reads bridge\'s batch errors the same way', () => {
    assert.deepEqual(parseBatchErrors(BRIDGE_STDERR, BRIDGE_COMMANDS).failures, [
      { index: 1, command: BRIDGE_COMMANDS[1], error: 'RTNETLINK answers: No such file or directory' },
      { index: 2, command: BRIDGE_COMMANDS[2], error: 'Cannot find device "nosuch"' },
    ]);
  });

  it('no error output is no failure', () => {
    assert.deepEqual(parseBatchErrors('', SEVERAL_COMMANDS).failures, []);
    assert.deepEqual(parseBatchErrors('\n', SEVERAL_COMMANDS).failures, []);
  });

  it('a failure without a message says "failed"; a line number past the commands has the command ""', () => {
    assert.deepEqual(parseBatchErrors('Command failed -:1\nCommand failed -:9\n', ['route del 10.244.2.0/24 proto 87']).failures, [
      { index: 0, command: 'route del 10.244.2.0/24 proto 87', error: 'failed' },
      { index: 8, command: '', error: 'failed' },
    ]);
  });

  it('a message that no "Command failed" follows belongs to no command: the batch was abandoned', () => {
    // what ip prints when the batch itself cannot go on (an unparsable argument: exit 255)
    assert.deepEqual(parseBatchErrors('Error: either "to" is duplicate, or "frobnicate" is a garbage.\n', ['route frobnicate']),
      { failures: [], abandoned: 'Error: either "to" is duplicate, or "frobnicate" is a garbage.' });
  });

  it('reports a batch that ip abandoned part-way (a rejected neigh command: exit 2, no "Command failed" line)', () => {
    const r = parseBatchErrors(ABORTED_STDERR, ABORTED_COMMANDS);
    assert.deepEqual(r.failures, parseBatchErrors(SEVERAL_STDERR, SEVERAL_COMMANDS).failures, 'the lines that failed before it');
    assert.equal(r.abandoned, 'RTNETLINK answers: No such file or directory');
    assert.equal(parseBatchErrors(SEVERAL_STDERR, SEVERAL_COMMANDS).abandoned, undefined);
  });
});

describe('runBatch before it starts anything', () => {
  it('resolves an empty list with no commands and no failures, without starting the tool', async () => {
    const result = await withoutPath(() => runBatch('ip', []));
    assert.deepEqual(result, { commands: 0, failures: [] });
    assert.deepEqual(await withoutPath(() => runBatch('bridge', [])), { commands: 0, failures: [] });
  });

  it('rejects a command containing a newline with a RangeError naming it, without starting the tool', async () => {
    await withoutPath(() => assert.rejects(
      runBatch('ip', ['route del 10.244.2.0/24 proto 87', 'route del 10.244.3.0/24\nroute flush all']),
      (err: unknown) => {
        assert.ok(err instanceof RangeError, `expected a RangeError, got ${String(err)}`);
        assert.equal(err.message, 'a batch command may not contain a newline: "route del 10.244.3.0/24\\nroute flush all"');
        return true;
      },
    ));
  });

  it('(control) with the empty PATH a non-empty batch does try to start the tool and fails with CommandError', async () => {
    await withoutPath(() => assert.rejects(runBatch('bridge', ['fdb show']), (err: unknown) => {
      assert.ok(err instanceof CommandError, `expected a CommandError, got ${String(err)}`);
      assert.equal(err.exitCode, 127);
      assert.equal(err.message,
        '`bridge -force -batch - (1 commands)` failed (exit 127): bridge is not installed or not on PATH. ' +
        'weft needs iproute2\'s bridge tool (apt-get install iproute2)');
      return true;
    }));
  });
});
