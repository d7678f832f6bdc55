/**
 * Property-based tests of the CNI plugin's parsers (native/cni: the network
 * config on stdin, subnet.env, the CNI_* environment), bin/weft-cni run as a
 * process. CNI_PATH is an empty temp directory, so an ADD that gets through
 * parsing and rendering stops at "the delegate plugin is not in CNI_PATH"
 * (CNI error 7) before it writes anything; the data directory never exists.
 *
 * Properties: whatever the input, the plugin exits 0 or 1 (never a signal,
 * never another status), and on 1 prints exactly one CNI error object
 * {cniVersion, code, msg[, details]} as valid UTF-8 JSON. Valid configs built
 * from a model get as far as the delegate lookup; subnet.env files that the
 * agent's parser (src/subnet/subnet-env.ts) accepts are accepted by the
 * plugin too; VERSION answers the same supported versions for any stdin.
 *
 * DEL, CHECK and GC get no mutated configs: a mutated dataDir could point them
 * at a real directory (they lock and read there). DEL and CHECK run only with
 * model configs, whose dataDir does not exist.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';

import { ConfigError } from '../../src/errors';
import { formatSubnetEnv, parseSubnetEnv, type SubnetEnvValues } from '../../src/subnet';
import {
  checkProperty,
  garbageTextArb,
  isJsonObject,
  jsonTextArb,
  mutatedJsonArb,
  mutatedTextArb,
  nestedArrayText,
  objectOf,
  parseOutcome,
  prefixArb,
  refFormatIpv4,
  refFormatPrefix,
  subnetEnvFileArb,
  uint32Arb,
  type Json,
  type JsonObject,
} from '../property';

// dist/test/unit -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const PLUGIN = path.join(ROOT, 'bin', 'weft-cni');
const SUPPORTED = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
const LATEST = '1.1.0';
const RUN_TIMEOUT_MS = 10_000;

const CNI_ERR_INCOMPATIBLE_VERSION = 1;
const CNI_ERR_UNKNOWN_CONTAINER = 3;
const CNI_ERR_INVALID_ENVIRONMENT = 4;
const CNI_ERR_INVALID_CONFIG = 7;
const CNI_ERR_NOT_AVAILABLE = 50;

let dir = '';
let binDir = '';
let subnetFile = '';
let dataDir = '';

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'weft-prop-cni-'));
  binDir = path.join(dir, 'bin'); // empty: no delegate
  subnetFile = path.join(dir, 'subnet.env');
  dataDir = path.join(dir, 'data-never-created');
  mkdirSync(binDir);
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Running the plugin

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

interface CniError {
  readonly cniVersion: string;
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;
}

type EnvChanges = Readonly<Record<string, string>>;

function runPlugin(command: string, stdin: string | Uint8Array, env: EnvChanges = {}): Run {
  const r = spawnSync(PLUGIN, [], {
    cwd: dir,
    env: {
      PATH: '/usr/bin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: 'weft-prop-ctr1',
      CNI_IFNAME: 'eth0',
      CNI_NETNS: '/var/run/netns/weft-prop-not-opened',
      CNI_PATH: binDir,
      ...env,
    },
    input: stdin,
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 1 << 20,
  });
  // EPIPE: the plugin exited before reading all of stdin (an unknown command does); its status still tells
  const epipe = (r.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE' && (r.status !== null || r.signal !== null);
  if (r.error !== undefined && !epipe) assert.fail(`weft-cni ${JSON.stringify(command)} could not run or timed out: ${r.error.message}`);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const describeRun = (r: Run): string =>
  `status ${r.status}, signal ${r.signal}\nstdout: ${r.stdout.toString('utf8').slice(0, 600)}\nstderr: ${r.stderr.toString('utf8').slice(0, 600)}`;

/** The process ended by itself with 0 or 1: no crash, no signal, no other status. */
function assertCleanExit(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}\n${describeRun(r)}`);
  assert.ok(r.status === 0 || r.status === 1, `${what}: exit status ${r.status}\n${describeRun(r)}`);
}

/** stdout as one JSON document in valid UTF-8. */
function stdoutJson(r: Run, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(r.stdout);
  } catch {
    return assert.fail(`${what}: stdout is not valid UTF-8\n${describeRun(r)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return assert.fail(`${what}: stdout is not one JSON document\n${describeRun(r)}`);
  }
}

/** Exit 1 with exactly a CNI error object on stdout. */
function assertCniError(r: Run, what: string): CniError {
  assertCleanExit(r, what);
  assert.equal(r.status, 1, `${what}: expected a CNI error (status 1)\n${describeRun(r)}`);
  const o = stdoutJson(r, what);
  assert.ok(isJsonObject(o), `${what}: the error is not a JSON object\n${describeRun(r)}`);
  const { cniVersion, code, msg, details, ...rest } = o;
  assert.deepEqual(Object.keys(rest), [], `${what}: unexpected members in the error\n${describeRun(r)}`);
  assert.ok(typeof cniVersion === 'string' && (SUPPORTED as readonly string[]).includes(cniVersion), `${what}: error cniVersion ${JSON.stringify(cniVersion)}`);
  assert.ok(typeof code === 'number' && Number.isInteger(code) && code > 0, `${what}: error code ${JSON.stringify(code)}`);
  assert.ok(typeof msg === 'string' && msg.trim() !== '', `${what}: error msg ${JSON.stringify(msg)}`);
  assert.ok(details === undefined || typeof details === 'string', `${what}: error details ${JSON.stringify(details)}`);
  return { cniVersion, code, msg, details };
}

/** An ADD that got through parsing and rendering: it stopped at the missing delegate. */
function assertReachedDelegate(r: Run, delegateType: string, what: string): void {
  const e = assertCniError(r, what);
  assert.equal(e.code, CNI_ERR_INVALID_CONFIG, `${what}: expected the missing-delegate error, got ${e.code}: ${e.msg}`);
  const wanted = `the delegate plugin ${JSON.stringify(delegateType)} is not in CNI_PATH`;
  assert.ok(e.msg.startsWith(wanted) || e.msg.startsWith('the delegate plugin "'), `${what}: expected ${JSON.stringify(wanted)}, got ${JSON.stringify(e.msg)}`);
}

const reachedDelegate = (e: CniError): boolean => e.code === CNI_ERR_INVALID_CONFIG && e.msg.includes('is not in CNI_PATH');

// ---------------------------------------------------------------------------
// The model: a network config of type flannel, a subnet.env

interface CniModel {
  readonly cniVersion: (typeof SUPPORTED)[number];
  readonly name: string;
  readonly delegate: JsonObject | undefined;
  readonly ipam: JsonObject | undefined;
  readonly runtimeConfig: JsonObject | undefined;
  readonly prevResult: JsonObject | undefined;
  readonly extra: ReadonlyArray<readonly [string, Json]>;
}

/** Text jansson takes (valid Unicode, no NUL): JSON.stringify writes a lone surrogate as an escape jansson refuses. */
const cleanTextArb = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }).filter((s) => !s.includes('\u0000'));

const pluginNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('bridge', 'ptp', 'macvlan', 'ipvlan', 'host-device', 'win-bridge', '...', 'a b', 'br\u00efdge', '-'),
  cleanTextArb(12).filter((s) => !s.includes('/') && s !== '.' && s !== '..'),
);

const routeDstArb: fc.Arbitrary<string> = fc.oneof(
  prefixArb().map(refFormatPrefix),
  fc.tuple(uint32Arb, fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${refFormatIpv4(a)}/${l}`),
  fc.constantFrom('fd00::/8', '::/0', '2001:db8::1/64'),
);

const jsonLeafArb: fc.Arbitrary<Json> = fc.oneof(fc.boolean(), fc.integer(), cleanTextArb(8), fc.constant(null));

const cniModelArb: fc.Arbitrary<CniModel> = fc.record({
  cniVersion: fc.constantFrom(...SUPPORTED),
  name: fc.oneof(fc.constantFrom('cbr0', 'weft', 'k8s-pod-network'), cleanTextArb(20)),
  delegate: fc.option(
    fc.record({
      type: fc.option(pluginNameArb, { nil: undefined }),
      isDefaultGateway: fc.option(fc.boolean(), { nil: undefined }),
      hairpinMode: fc.option(fc.boolean(), { nil: undefined }),
      mtu: fc.option(fc.integer({ min: 68, max: 9000 }), { nil: undefined }),
      ipMasq: fc.option(fc.boolean(), { nil: undefined }),
      forceAddress: fc.option(jsonLeafArb, { nil: undefined }),
    }).map((d) => objectOf(Object.entries(d).filter(([, v]) => v !== undefined) as Array<[string, Json]>)),
    { nil: undefined },
  ),
  ipam: fc.option(
    fc.record({
      type: fc.option(fc.constantFrom('host-local', 'static', 'dhcp'), { nil: undefined }),
      routes: fc.option(fc.array(routeDstArb.map((dst) => objectOf([['dst', dst]])), { maxLength: 3 }), { nil: undefined }),
      dataDir: fc.option(fc.constant('/var/lib/cni/networks-weft-prop'), { nil: undefined }),
    }).map((d) => objectOf(Object.entries(d).filter(([, v]) => v !== undefined) as Array<[string, Json]>)),
    { nil: undefined },
  ),
  runtimeConfig: fc.option(fc.constant(objectOf([['portMappings', [objectOf([['hostPort', 8080], ['containerPort', 80], ['protocol', 'tcp']])]]])), { nil: undefined }),
  prevResult: fc.option(fc.constant(objectOf([['cniVersion', '1.0.0'], ['interfaces', []], ['ips', []]])), { nil: undefined }),
  extra: fc.uniqueArray(fc.tuple(fc.constantFrom('args', 'capabilities', 'x-extra', 'forceAddress', 'plugins'), jsonLeafArb), { maxLength: 2, selector: ([k]) => k }),
});

/** The model as the JSON document a runtime writes on stdin, with this run's files. */
function documentOf(m: CniModel): JsonObject {
  const entries: Array<readonly [string, Json]> = [
    ['cniVersion', m.cniVersion],
    ['name', m.name],
    ['type', 'flannel'],
    ['subnetFile', subnetFile],
    ['dataDir', dataDir],
  ];
  if (m.delegate !== undefined) entries.push(['delegate', m.delegate]);
  if (m.ipam !== undefined) entries.push(['ipam', m.ipam]);
  if (m.runtimeConfig !== undefined) entries.push(['runtimeConfig', m.runtimeConfig]);
  if (m.prevResult !== undefined) entries.push(['prevResult', m.prevResult]);
  return objectOf([...entries, ...m.extra]);
}

const delegateTypeOf = (m: CniModel): string => {
  const t = m.delegate?.['type'];
  return typeof t === 'string' ? t : 'bridge';
};

const subnetValuesArb: fc.Arbitrary<SubnetEnvValues> = fc.record({
  network: prefixArb(8, 24),
  subnet: prefixArb(16, 30),
  mtu: fc.integer({ min: 68, max: 65535 }),
  ipMasq: fc.boolean(),
}, { noNullPrototype: true });

/**
 * A mutated config may name another subnetFile: skip it if that path exists
 * and is not a regular file (a FIFO or a device could block the read).
 */
function safeToRun(stdin: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch {
    return true;
  }
  if (!isJsonObject(parsed)) return true;
  const file = parsed['subnetFile'];
  if (typeof file !== 'string' || file === subnetFile || !file.startsWith('/')) return true;
  try {
    return !existsSync(file) || statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Keys for added and renamed members of a mutated config: its own and the delegate's, and odd ones. */
const cniKeyArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('cniVersion', 'name', 'type', 'delegate', 'ipam', 'routes', 'dst', 'runtimeConfig', 'prevResult', 'CNIVERSION', 'Name', 'isGateway', 'mtu', 'ipMasq', ''),
  cleanTextArb(6),
);

// ---------------------------------------------------------------------------

describe('property: weft-cni network config and subnet.env', () => {
  it('a model config with a model subnet.env: ADD reaches the delegate lookup; STATUS, DEL and CHECK answer as the spec says', () => {
    checkProperty(
      fc.property(cniModelArb, subnetValuesArb, (m, env) => {
        writeFileSync(subnetFile, formatSubnetEnv(env));
        const stdin = JSON.stringify(documentOf(m));
        const what = `config ${stdin.slice(0, 400)}`;
        const type = delegateTypeOf(m);
        const add = runPlugin('ADD', stdin);
        assertReachedDelegate(add, type, `ADD of ${what}`);
        assert.equal(assertCniError(add, what).cniVersion, m.cniVersion, `ADD of ${what}: the error's cniVersion is not the config's`);

        const status = assertCniError(runPlugin('STATUS', stdin), `STATUS of ${what}`);
        assert.equal(status.code, m.cniVersion === '1.1.0' ? CNI_ERR_NOT_AVAILABLE : CNI_ERR_INCOMPATIBLE_VERSION, `STATUS of ${what}: ${status.msg}`);

        const del = runPlugin('DEL', stdin); // the data directory does not exist: nothing was ever added
        assertCleanExit(del, `DEL of ${what}`);
        assert.equal(del.status, 0, `DEL of ${what}\n${describeRun(del)}`);
        assert.equal(del.stdout.length, 0, `DEL of ${what} printed something`);

        const check = assertCniError(runPlugin('CHECK', stdin), `CHECK of ${what}`);
        const wantCheck = m.cniVersion === '0.3.1' ? CNI_ERR_INCOMPATIBLE_VERSION
          : m.prevResult === undefined ? CNI_ERR_INVALID_CONFIG : CNI_ERR_UNKNOWN_CONTAINER;
        assert.equal(check.code, wantCheck, `CHECK of ${what}: ${check.msg}`);
        assert.ok(!existsSync(dataDir), `${what}: the data directory was created`);
      }),
      30,
    );
  });

  it('mutated network configs (JSON edits and text edits): ADD and STATUS exit 1 with a CNI error, never crash', () => {
    const docArb = cniModelArb.map((m) => documentOf(m) as Json);
    checkProperty(
      fc.property(
        fc.oneof(
          jsonTextArb(mutatedJsonArb(docArb, cniKeyArb, 3)),
          mutatedTextArb(docArb.map((d) => JSON.stringify(d)), 4),
          fc.constantFrom('', ' ', 'null', '[]', '{}', '"x"', '{"cniVersion": 1}', '\u0000', '{"cniVersion":"1.0.0","name":"\\ud800"}'),
          fc.integer({ min: 1, max: 5000 }).map((d) => `{"cniVersion":"1.0.0","name":"n","delegate":{"x":${nestedArrayText(d)}}}`),
          garbageTextArb,
        ),
        subnetValuesArb,
        fc.constantFrom('ADD', 'STATUS'),
        (stdin, env, command) => {
          fc.pre(safeToRun(stdin));
          writeFileSync(subnetFile, formatSubnetEnv(env));
          assertCniError(runPlugin(command, stdin), `${command} of ${JSON.stringify(stdin.slice(0, 400))}`);
        },
      ),
      60,
    );
  });

  it('mutated and garbage subnet.env files: ADD exits 1 with a CNI error; a file the agent\'s parser accepts, the plugin accepts too', () => {
    /** A subnet.env file's bytes, and whether the plugin must accept it (a file the agent or flanneld writes). */
    type EnvFile = { readonly content: string | Uint8Array; readonly valid: boolean };
    const envFileArb: fc.Arbitrary<EnvFile> = fc.oneof(
      { weight: 1, arbitrary: subnetValuesArb.map((v): EnvFile => ({ content: formatSubnetEnv(v), valid: true })) },
      { weight: 3, arbitrary: subnetEnvFileArb.map((f): EnvFile => ({ content: f.text, valid: true })) },
      { weight: 3, arbitrary: mutatedTextArb(subnetValuesArb.map(formatSubnetEnv), 3).map((t): EnvFile => ({ content: t, valid: false })) },
      { weight: 3, arbitrary: mutatedTextArb(subnetEnvFileArb.map((f) => f.text), 2).map((t): EnvFile => ({ content: t, valid: false })) },
      {
        // a hand-edited file: an earlier line of a key with a bad value, overridden by the file's own line for it
        weight: 1,
        arbitrary: fc
          .tuple(subnetEnvFileArb, fc.constantFrom('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'), fc.constantFrom('x', '', 'TODO', '10.0.0.0', '1500 bytes'))
          .map(([f, key, bad]): EnvFile => ({ content: `${key}=${bad}\n${f.text}`, valid: false })),
      },
      { weight: 1, arbitrary: garbageTextArb.map((t): EnvFile => ({ content: t, valid: false })) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b): EnvFile => ({ content: b, valid: false })) },
    );
    checkProperty(
      fc.property(envFileArb, ({ content, valid }) => {
        writeFileSync(subnetFile, content);
        const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile, dataDir });
        const shown = typeof content === 'string' ? JSON.stringify(content) : `bytes ${Buffer.from(content).toString('hex')}`;
        const what = `ADD with subnet.env ${shown}`;
        const e = assertCniError(runPlugin('ADD', stdin), what);
        if (valid) {
          assert.ok(reachedDelegate(e), `${what}: a valid subnet.env was refused: ${e.msg}`);
          return;
        }
        // the agent's reader and the plugin's must agree on what the agent may find (ASCII text without NUL)
        if (typeof content !== 'string' || !/^[\u0001-\u007f]*$/.test(content)) return;
        // the plugin also checks FLANNEL_IPV6_* (flanneld's dual stack); the agent ignores them
        if (content.includes('FLANNEL_IPV6_')) return;
        const agent = parseOutcome(() => parseSubnetEnv(content, subnetFile), ConfigError, `parseSubnetEnv(${shown})`);
        if (agent.ok) {
          assert.ok(reachedDelegate(e), `${what}: parseSubnetEnv accepts the file, weft-cni refuses it: ${e.msg}`);
        }
      }),
      120,
    );
  });

  it('VERSION answers the supported versions for any stdin, echoing a supported cniVersion it was given', () => {
    const docArb = cniModelArb.map((m) => documentOf(m) as Json);
    checkProperty(
      fc.property(
        fc.oneof(
          docArb.map((d) => ({ stdin: JSON.stringify(d), echo: (d as JsonObject)['cniVersion'] as string })),
          fc.constantFrom(...SUPPORTED, '0.2.0', '2.0.0', '').map((v) => ({ stdin: JSON.stringify({ cniVersion: v }), echo: (SUPPORTED as readonly string[]).includes(v) ? v : LATEST })),
          fc.oneof(mutatedTextArb(docArb.map((d) => JSON.stringify(d)), 4), garbageTextArb, fc.constantFrom('', '[]', 'null', '{"cniVersion":null}', '{"cniVersion":["1.0.0"]}'))
            .map((stdin) => ({ stdin, echo: undefined })),
        ),
        ({ stdin, echo }) => {
          const r = runPlugin('VERSION', stdin);
          const what = `VERSION with stdin ${JSON.stringify(stdin.slice(0, 300))}`;
          assertCleanExit(r, what);
          assert.equal(r.status, 0, `${what}\n${describeRun(r)}`);
          const o = stdoutJson(r, what);
          assert.ok(isJsonObject(o), `${what}: not an object`);
          assert.deepEqual(o['supportedVersions'], [...SUPPORTED], `${what}: supportedVersions`);
          const v = o['cniVersion'];
          assert.ok(typeof v === 'string' && (SUPPORTED as readonly string[]).includes(v), `${what}: cniVersion ${JSON.stringify(v)}`);
          if (echo !== undefined) assert.equal(v, echo, `${what}: cniVersion`);
        },
      ),
      40,
    );
  });

  it('random CNI_CONTAINERID, CNI_IFNAME and CNI_COMMAND values: a CNI error naming the bad variable, or the delegate lookup', () => {
    const envTextArb = fc.oneof(
      fc.constantFrom('', '.', '..', 'eth0', 'a', 'x'.repeat(15), 'x'.repeat(16), 'ctr-1', '-ctr', '_ctr', 'c/d', 'a:b', 'a b', 'é', '\u00ff', '\u007f', 'x'.repeat(239), 'x'.repeat(240), '%s%n', '\\"'),
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc.string({ unit: 'binary-ascii', maxLength: 20 }),
      fc.string({ maxLength: 20 }),
    ).map((s) => s.replace(/\u0000/g, '')); // an environment value cannot hold NUL
    checkProperty(
      fc.property(
        fc.record({ containerId: fc.option(envTextArb, { nil: undefined }), ifname: fc.option(envTextArb, { nil: undefined }), command: fc.option(envTextArb, { nil: undefined }) }),
        ({ containerId, ifname, command }) => {
          writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
          // only ADD, VERSION, STATUS or unknown commands: DEL, CHECK and GC would look into a data directory
          const cmd = command === undefined || ['DEL', 'CHECK', 'GC', ''].includes(command) ? 'ADD' : command;
          const changes: Record<string, string> = {};
          if (containerId !== undefined) changes['CNI_CONTAINERID'] = containerId;
          if (ifname !== undefined) changes['CNI_IFNAME'] = ifname;
          const stdin = JSON.stringify({ cniVersion: '1.1.0', name: 'cbr0', type: 'flannel', subnetFile, dataDir });
          const r = runPlugin(cmd, stdin, changes);
          const what = `${JSON.stringify(cmd)} with CNI_CONTAINERID=${JSON.stringify(containerId)} CNI_IFNAME=${JSON.stringify(ifname)}`;
          assertCleanExit(r, what);
          if (cmd === 'VERSION') return;
          const e = assertCniError(r, what);
          if (!['ADD', 'STATUS'].includes(cmd)) {
            assert.equal(e.code, CNI_ERR_INVALID_ENVIRONMENT, `${what}: unknown command, got ${e.code}: ${e.msg}`);
            return;
          }
          const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
          const idOk = (s: string): boolean => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s) && bytes(s).length <= 239;
          const ifOk = (s: string): boolean => /^[\u0021-\u007e]{1,15}$/.test(s) && !/[/:]/.test(s) && s !== '.' && s !== '..';
          const envOk = cmd === 'STATUS' || ((containerId === undefined || idOk(containerId)) && (ifname === undefined || ifOk(ifname)));
          if (envOk) {
            assert.ok(cmd === 'STATUS' ? e.code === CNI_ERR_NOT_AVAILABLE : reachedDelegate(e), `${what}: ${e.code} ${e.msg}`);
          } else {
            assert.equal(e.code, CNI_ERR_INVALID_ENVIRONMENT, `${what}: a bad variable gave ${e.code}: ${e.msg}`);
          }
        },
      ),
      40,
    );
  });
});
