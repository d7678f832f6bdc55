/**
 * weft's CNI plugin (bin/weft-cni, native/cni) run as a runtime runs it, as a
 * process with the network config on stdin and the CNI_* environment, against
 * a recording fake delegate (fixtures/recording-delegate.sh) installed in a
 * temp CNI_PATH: what it checks, the delegate config it renders from
 * subnet.env, the record it saves and replays, and how it handles a delegate's
 * failures. Every test has its own temp directory (CNI_PATH, subnet.env, data
 * directory); no root, no network, nothing under /run or /var/lib. The real
 * bridge and host-local delegates are the end-to-end tests' part
 * (test/e2e/cni-plugin.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

// dist/test/integration -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const PLUGIN = path.join(ROOT, 'bin', 'weft-cni');
// a shell script, not compiled: taken from the source tree
const RECORDING_DELEGATE = path.join(ROOT, 'test', 'integration', 'fixtures', 'recording-delegate.sh');

const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const NETWORK_NAME = 'cbr0';
const CONTAINER_ID = 'ctr1';
const RUN_TIMEOUT_MS = 20_000;

const SUBNET_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n';
/** The IPAM rendered from SUBNET_ENV: routes to the cluster network via the lease's first address (host-local's gateway). */
const LEASE_IPAM: JsonObject = {
  type: 'host-local',
  ranges: [[{ subnet: '10.244.3.0/24' }]],
  routes: [{ dst: '10.244.0.0/16', gw: '10.244.3.1' }],
};

// ---- JSON ----------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject {
  [key: string]: Json;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return assert.fail(`${what} is not JSON: ${JSON.stringify(text)}`);
  }
}

function parseObject(text: string, what: string): JsonObject {
  const value = parseJson(text, what);
  assert.ok(isObject(value), `${what} should be a JSON object: ${text}`);
  return value;
}

/** A copy of `o` without `key`. */
function without(o: JsonObject, key: string): JsonObject {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

/** The delegate config weft-cni renders from SUBNET_ENV for a plain network config, with `changes` applied. */
function renderedBridge(changes: JsonObject = {}): JsonObject {
  return {
    type: 'bridge',
    name: NETWORK_NAME,
    mtu: 1450,
    ipMasq: true,
    isGateway: true,
    cniVersion: '1.0.0',
    ipam: LEASE_IPAM,
    ...changes,
  };
}

/** What the recording delegate prints for ADD, byte for byte. */
function addResult(cniVersion: string): string {
  return `{"cniVersion": "${cniVersion}", "ips": [{"address": "10.244.3.2/24", "gateway": "10.244.3.1"}]}\n`;
}

// ---- running the plugin ----------------------------------------------------------

/** Environment changes for one run: a value sets the variable, undefined removes it. */
type EnvChanges = Readonly<Record<string, string | undefined>>;

interface PluginRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface CniError {
  readonly cniVersion: string;
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;
}

/** One call of the recording delegate, from its log. */
interface DelegateCall {
  readonly plugin: string;
  readonly command: string;
  readonly containerId: string | null;
  readonly ifname: string | null;
  readonly netns: boolean;
  readonly config: JsonObject;
}

function describeRun(run: PluginRun): string {
  return `exit status ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
}

function assertOk(run: PluginRun): void {
  assert.equal(run.status, 0, `the plugin should succeed:\n${describeRun(run)}`);
}

function parseCniError(run: PluginRun): CniError {
  const o = parseObject(run.stdout, 'the CNI error on stdout');
  const { cniVersion, code, msg, details } = o;
  assert.ok(typeof cniVersion === 'string', `the error's cniVersion should be a string: ${run.stdout}`);
  assert.ok(typeof code === 'number', `the error's code should be a number: ${run.stdout}`);
  assert.ok(typeof msg === 'string', `the error's msg should be a string: ${run.stdout}`);
  assert.ok(details === undefined || typeof details === 'string', `the error's details should be a string: ${run.stdout}`);
  return { cniVersion, code, msg, details };
}

/** Asserts a CNI error (exit status 1) with `code` whose msg contains every one of `msgParts`. */
function assertCniError(run: PluginRun, code: number, msgParts: readonly string[] = []): CniError {
  assert.equal(run.status, 1, `the plugin should fail with a CNI error:\n${describeRun(run)}`);
  const error = parseCniError(run);
  assert.equal(error.code, code, `the error's code: ${run.stdout}`);
  for (const part of msgParts) {
    assert.ok(error.msg.includes(part), `the error's msg should mention ${JSON.stringify(part)}: ${error.msg}`);
  }
  return error;
}

function parseDelegateCall(line: string): DelegateCall {
  const o = parseObject(line, 'a line of the recording delegate log');
  const { plugin, command, containerId, ifname, netns, config } = o;
  assert.ok(typeof plugin === 'string' && typeof command === 'string' && typeof netns === 'boolean', `bad log line: ${line}`);
  assert.ok(typeof containerId === 'string' || containerId === null, `bad containerId in log line: ${line}`);
  assert.ok(typeof ifname === 'string' || ifname === null, `bad ifname in log line: ${line}`);
  assert.ok(isObject(config), `the delegate's stdin should be a JSON object: ${line}`);
  return { plugin, command, containerId, ifname, netns, config };
}

/** One test's world: a CNI_PATH with the recording delegate as `bridge`, a subnet.env, a data directory not yet created. */
class Lab {
  readonly binDir: string;
  readonly dataDir: string;
  readonly subnetFile: string;
  readonly logFile: string;
  /** Only a name: neither weft-cni nor the fake delegate opens it. */
  readonly netns: string;

  private constructor(readonly dir: string) {
    this.binDir = path.join(dir, 'bin');
    this.dataDir = path.join(dir, 'data', 'flannel');
    this.subnetFile = path.join(dir, 'subnet.env');
    this.logFile = path.join(dir, 'delegate.log');
    this.netns = path.join(dir, 'netns', 'ctr');
  }

  static create(): Lab {
    const lab = new Lab(mkdtempSync(path.join(tmpdir(), 'weft-cni-plugin-')));
    mkdirSync(lab.binDir);
    lab.installDelegate('bridge');
    lab.writeSubnetEnv(SUBNET_ENV);
    return lab;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  installDelegate(name: string, dir: string = this.binDir): void {
    const target = path.join(dir, name);
    copyFileSync(RECORDING_DELEGATE, target);
    chmodSync(target, 0o755);
  }

  writeSubnetEnv(text: string): void {
    writeFileSync(this.subnetFile, text);
  }

  /** A network config of type flannel over this lab's files, with `extra` members. */
  netconf(extra: JsonObject = {}): JsonObject {
    return {
      cniVersion: '1.0.0',
      name: NETWORK_NAME,
      type: 'flannel',
      subnetFile: this.subnetFile,
      dataDir: this.dataDir,
      ...extra,
    };
  }

  /** PATH, CNI_* (an attachment's for ADD, DEL and CHECK) and the delegate's log, with `changes`. */
  private env(command: string | undefined, changes: EnvChanges): Record<string, string> {
    const attachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
    const wanted: Record<string, string | undefined> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      CNI_COMMAND: command,
      CNI_PATH: this.binDir,
      RECORDING_DELEGATE_LOG: this.logFile,
      ...(attachment ? { CNI_CONTAINERID: CONTAINER_ID, CNI_IFNAME: 'eth0', CNI_NETNS: this.netns } : {}),
      ...changes,
    };
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(wanted)) if (value !== undefined) env[name] = value;
    return env;
  }

  /** Runs the plugin; `via` runs it through a launcher (e.g. `env --ignore-signal=CHLD`), which ends with the plugin's path. */
  run(command: string | undefined, config: JsonObject | string, changes: EnvChanges = {}, via: readonly string[] = []): PluginRun {
    const [file, ...args] = via.length > 0 ? [...via, PLUGIN] : [PLUGIN];
    const r = spawnSync(file as string, args, {
      cwd: this.dir,
      env: this.env(command, changes),
      input: typeof config === 'string' ? config : JSON.stringify(config),
      encoding: 'utf8',
      timeout: RUN_TIMEOUT_MS,
    });
    if (r.error !== undefined) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like run(), without waiting: for runs at the same time. */
  start(command: string, config: JsonObject, changes: EnvChanges = {}): Promise<PluginRun> {
    return new Promise((resolve, reject) => {
      const child = spawn(PLUGIN, [], { cwd: this.dir, env: this.env(command, changes), stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('error', reject);
      child.stdin.on('error', () => undefined); // a plugin that exits before reading stdin: its status tells
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
      child.stdin.end(JSON.stringify(config));
    });
  }

  /** A successful ADD of `id` as `ifname`; returns the delegate config it rendered. */
  add(id: string = CONTAINER_ID, ifname = 'eth0', extra: JsonObject = {}): JsonObject {
    const before = this.calls().length;
    const run = this.run('ADD', this.netconf(extra), { CNI_CONTAINERID: id, CNI_IFNAME: ifname });
    assertOk(run);
    const calls = this.calls().slice(before);
    assert.equal(calls.length, 1, `one delegate call for the ADD of ${id}: ${JSON.stringify(calls)}`);
    return calls[0].config;
  }

  calls(): DelegateCall[] {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map(parseDelegateCall);
  }

  /** "ADD ctr1 eth0" per call, for compact assertions. */
  callSummary(): string[] {
    return this.calls().map((c) => `${c.command} ${c.containerId ?? '-'} ${c.ifname ?? '-'}`);
  }

  /** The config of the only delegate call so far. */
  onlyCallConfig(): JsonObject {
    const calls = this.calls();
    assert.equal(calls.length, 1, `exactly one delegate call: ${JSON.stringify(this.callSummary())}`);
    return calls[0].config;
  }

  recordFile(id: string = CONTAINER_ID): string {
    return path.join(this.dataDir, id);
  }

  hasRecord(id: string = CONTAINER_ID): boolean {
    return existsSync(this.recordFile(id));
  }

  readRecord(id: string = CONTAINER_ID): JsonObject {
    return parseObject(readFileSync(this.recordFile(id), 'utf8'), `the record of ${id}`);
  }

  /** Everything under the lab directory, as relative paths. */
  tree(): string[] {
    return readdirSync(this.dir, { recursive: true, encoding: 'utf8' }).sort();
  }
}

async function withLab(body: (lab: Lab) => void | Promise<void>): Promise<void> {
  const lab = Lab.create();
  try {
    await body(lab);
  } finally {
    lab.remove();
  }
}

function assertDelegateNotRun(lab: Lab): void {
  assert.deepEqual(lab.callSummary(), [], 'the delegate should not have run');
}

// ---- the tests -----------------------------------------------------------------------

describe('weft-cni: VERSION and the environment', () => {
  it('VERSION answers the requested version and the supported ones', () =>
    withLab((lab) => {
      const run = lab.run('VERSION', { cniVersion: '1.0.0' });
      assertOk(run);
      assert.deepEqual(parseJson(run.stdout, 'the VERSION answer'), { cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS });
    }));

  it('VERSION with empty stdin answers the latest version', () =>
    withLab((lab) => {
      const run = lab.run('VERSION', '');
      assertOk(run);
      assert.deepEqual(parseJson(run.stdout, 'the VERSION answer'), { cniVersion: '1.1.0', supportedVersions: SUPPORTED_VERSIONS });
    }));

  it('without CNI_COMMAND it says what it is on stderr and exits 0', () =>
    withLab((lab) => {
      const run = lab.run(undefined, '');
      assertOk(run);
      assert.equal(run.stdout, '', 'nothing on stdout');
      assert.ok(run.stderr.includes('weft-cni CNI plugin'), `stderr: ${run.stderr}`);
    }));

  it('an unknown CNI_COMMAND is code 4', () =>
    withLab((lab) => {
      assertCniError(lab.run('FROB', lab.netconf()), 4, ['CNI_COMMAND', 'FROB']);
      assertDelegateNotRun(lab);
    }));

  for (const name of ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH', 'CNI_NETNS']) {
    it(`ADD without ${name} is code 4 naming it`, () =>
      withLab((lab) => {
        assertCniError(lab.run('ADD', lab.netconf(), { [name]: undefined }), 4, [name]);
        assertDelegateNotRun(lab);
        assert.equal(existsSync(lab.dataDir), false, 'no data directory');
      }));
  }

  it('DEL without CNI_NETNS is fine', () =>
    withLab((lab) => {
      lab.add();
      assertOk(lab.run('DEL', lab.netconf(), { CNI_NETNS: undefined }));
      const del = lab.calls()[1];
      assert.ok(del !== undefined && del.command === 'DEL', `the delegate's DEL ran: ${JSON.stringify(lab.callSummary())}`);
      assert.equal(del.netns, false, 'CNI_NETNS stays unset for the delegate');
      assert.equal(lab.hasRecord(), false, 'the record is removed');
    }));

  for (const id of ['../etc', 'a/b']) {
    it(`CNI_CONTAINERID ${JSON.stringify(id)} is code 4 and nothing is written`, () =>
      withLab((lab) => {
        const before = lab.tree();
        assertCniError(lab.run('ADD', lab.netconf(), { CNI_CONTAINERID: id }), 4, ['CNI_CONTAINERID']);
        assert.deepEqual(lab.tree(), before, 'the lab directory is unchanged');
      }));
  }

  it('CNI_IFNAME of 16 bytes is code 4; 15 bytes is fine', () =>
    withLab((lab) => {
      assertCniError(lab.run('ADD', lab.netconf(), { CNI_IFNAME: 'abcdefghijklmnop' }), 4, ['CNI_IFNAME']);
      assertDelegateNotRun(lab);
      lab.add(CONTAINER_ID, 'abcdefghijklmno');
    }));
});

describe('weft-cni: the network config', () => {
  it('invalid JSON is code 6 with the line and column', () =>
    withLab((lab) => {
      assertCniError(lab.run('ADD', '{"cniVersion": "1.0.0",\n  "name": }'), 6, ['line', 'column']);
      assertDelegateNotRun(lab);
    }));

  it('a JSON array is code 6', () =>
    withLab((lab) => {
      assertCniError(lab.run('ADD', '[{"cniVersion": "1.0.0"}]'), 6);
    }));

  it('a config without cniVersion is code 1', () =>
    withLab((lab) => {
      assertCniError(lab.run('ADD', without(lab.netconf(), 'cniVersion')), 1, ['cniVersion']);
      assertDelegateNotRun(lab);
    }));

  for (const version of ['0.2.0', '9.9.9']) {
    it(`cniVersion ${version} is code 1 listing the supported versions`, () =>
      withLab((lab) => {
        assertCniError(lab.run('ADD', lab.netconf({ cniVersion: version })), 1, [version, ...SUPPORTED_VERSIONS]);
        assertDelegateNotRun(lab);
      }));
  }

  it('CHECK with cniVersion 0.3.1 is code 1', () =>
    withLab((lab) => {
      const config = lab.netconf({ cniVersion: '0.3.1', prevResult: { cniVersion: '0.3.1', ips: [] } });
      assertCniError(lab.run('CHECK', config), 1, ['CHECK', '0.4.0']);
      assertDelegateNotRun(lab);
    }));

  for (const command of ['STATUS', 'GC']) {
    it(`${command} with cniVersion 1.0.0 is code 1`, () =>
      withLab((lab) => {
        const config = lab.netconf({ 'cni.dev/valid-attachments': [] });
        assertCniError(lab.run(command, config), 1, [command, '1.1.0']);
        assertDelegateNotRun(lab);
      }));
  }

  const badMembers: Array<[string, JsonObject, string]> = [
    ['a relative subnetFile', { subnetFile: 'run/flannel/subnet.env' }, 'subnetFile'],
    ['a subnetFile that is not a string', { subnetFile: 5 }, 'subnetFile'],
    ['a delegate that is not an object', { delegate: 'bridge' }, 'delegate'],
  ];
  for (const [what, extra, field] of badMembers) {
    it(`${what} is code 7`, () =>
      withLab((lab) => {
        assertCniError(lab.run('ADD', lab.netconf(extra)), 7, [field]);
        assertDelegateNotRun(lab);
      }));
  }
});

describe('weft-cni: subnet.env', () => {
  it('a missing subnet.env is code 11 naming the file', () =>
    withLab((lab) => {
      rmSync(lab.subnetFile);
      assertCniError(lab.run('ADD', lab.netconf()), 11, [lab.subnetFile]);
      assertDelegateNotRun(lab);
    }));

  const badFiles: Array<[string, string, readonly string[]]> = [
    ['without FLANNEL_MTU', 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_IPMASQ=false\n', ['FLANNEL_MTU']],
    ['with FLANNEL_MTU=abc', SUBNET_ENV.replace('FLANNEL_MTU=1450', 'FLANNEL_MTU=abc'), ['FLANNEL_MTU', 'abc']],
    ['with FLANNEL_IPMASQ=maybe', SUBNET_ENV.replace('FLANNEL_IPMASQ=false', 'FLANNEL_IPMASQ=maybe'), ['FLANNEL_IPMASQ', 'maybe']],
  ];
  for (const [what, text, msgParts] of badFiles) {
    it(`a subnet.env ${what} is code 7`, () =>
      withLab((lab) => {
        lab.writeSubnetEnv(text);
        assertCniError(lab.run('ADD', lab.netconf()), 7, msgParts);
        assertDelegateNotRun(lab);
      }));
  }

  it('comments, blank lines, export and quoted values are accepted', () =>
    withLab((lab) => {
      lab.writeSubnetEnv(
        [
          '# written by weft',
          'export FLANNEL_NETWORK="10.244.0.0/16"',
          '',
          "FLANNEL_SUBNET='10.244.3.1/24'   ",
          '   FLANNEL_MTU=1450 # the overlay MTU',
          'export FLANNEL_IPMASQ="true"',
          '',
        ].join('\n'),
      );
      const config = lab.add();
      assert.deepEqual(config, renderedBridge({ ipMasq: false }));
    }));

  it('FLANNEL_NETWORK with two networks gives a route to each', () =>
    withLab((lab) => {
      lab.writeSubnetEnv(SUBNET_ENV.replace('FLANNEL_NETWORK=10.244.0.0/16', 'FLANNEL_NETWORK=10.244.0.0/16,10.96.0.0/12'));
      const config = lab.add();
      assert.deepEqual(config['ipam'], { ...LEASE_IPAM, routes: [{ dst: '10.244.0.0/16', gw: '10.244.3.1' }, { dst: '10.96.0.0/12', gw: '10.244.3.1' }] });
    }));

  it('the IPv6 keys add a second range and a route', () =>
    withLab((lab) => {
      lab.writeSubnetEnv(`${SUBNET_ENV}FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\n`);
      const config = lab.add();
      assert.deepEqual(config['ipam'], {
        type: 'host-local',
        ranges: [[{ subnet: '10.244.3.0/24' }], [{ subnet: 'fd00:10:244:3::/64' }]],
        routes: [{ dst: '10.244.0.0/16', gw: '10.244.3.1' }, { dst: 'fd00:10:244::/56', gw: 'fd00:10:244:3::1' }],
      });
    }));
});

describe('weft-cni ADD: the rendered delegate config', () => {
  it("renders flannel's bridge config from subnet.env, and prints the delegate's result exactly", () =>
    withLab((lab) => {
      const run = lab.run('ADD', lab.netconf());
      assertOk(run);
      assert.equal(run.stdout, addResult('1.0.0'), "stdout is the delegate's result");
      const [call] = lab.calls();
      assert.ok(call !== undefined, 'the delegate ran');
      assert.deepEqual(
        { plugin: call.plugin, command: call.command, containerId: call.containerId, ifname: call.ifname, netns: call.netns },
        { plugin: 'bridge', command: 'ADD', containerId: CONTAINER_ID, ifname: 'eth0', netns: true },
      );
      assert.deepEqual(call.config, renderedBridge(), 'the delegate config (and no weftAttachment)');
    }));

  it("the delegate gets the network config's cniVersion", () =>
    withLab((lab) => {
      const run = lab.run('ADD', lab.netconf({ cniVersion: '0.4.0' }));
      assertOk(run);
      assert.equal(run.stdout, addResult('0.4.0'));
      assert.deepEqual(lab.onlyCallConfig(), renderedBridge({ cniVersion: '0.4.0' }));
    }));

  it('FLANNEL_IPMASQ=true turns ipMasq off', () =>
    withLab((lab) => {
      lab.writeSubnetEnv(SUBNET_ENV.replace('FLANNEL_IPMASQ=false', 'FLANNEL_IPMASQ=true'));
      assert.deepEqual(lab.add(), renderedBridge({ ipMasq: false }));
    }));

  it("the user's delegate keys are kept and win", () =>
    withLab((lab) => {
      const delegate = { hairpinMode: true, isDefaultGateway: true, mtu: 1400, ipMasq: false, isGateway: false };
      assert.deepEqual(lab.add(CONTAINER_ID, 'eth0', { delegate }), renderedBridge(delegate));
    }));

  it('a top-level ipam is merged: its keys kept, its routes before the networks', () =>
    withLab((lab) => {
      const config = lab.add(CONTAINER_ID, 'eth0', { ipam: { dataDir: '/x', routes: [{ dst: '192.168.0.0/24' }] } });
      assert.deepEqual(config['ipam'], {
        type: 'host-local',
        dataDir: '/x',
        ranges: [[{ subnet: '10.244.3.0/24' }]],
        routes: [{ dst: '192.168.0.0/24' }, { dst: '10.244.0.0/16', gw: '10.244.3.1' }],
      });
    }));

  it('a delegate of another type (ipvlan) runs that plugin and gets no isGateway', () =>
    withLab((lab) => {
      lab.installDelegate('ipvlan');
      const run = lab.run('ADD', lab.netconf({ delegate: { type: 'ipvlan', master: 'eth0' } }));
      assertOk(run);
      const [call] = lab.calls();
      assert.ok(call !== undefined && call.plugin === 'ipvlan', `ipvlan ran: ${JSON.stringify(lab.calls())}`);
      assert.deepEqual(call.config, without(renderedBridge({ type: 'ipvlan', master: 'eth0' }), 'isGateway'));
    }));

  it('runtimeConfig is passed on', () =>
    withLab((lab) => {
      const runtimeConfig = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
      assert.deepEqual(lab.add(CONTAINER_ID, 'eth0', { runtimeConfig }), renderedBridge({ runtimeConfig }));
    }));

  it('the delegate is found in a later directory of CNI_PATH', () =>
    withLab((lab) => {
      const empty = path.join(lab.dir, 'empty-bin');
      mkdirSync(empty);
      assertOk(lab.run('ADD', lab.netconf(), { CNI_PATH: `${empty}:${lab.binDir}` }));
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
    }));
});

describe('weft-cni ADD: rejected delegates', () => {
  const cases: Array<[string, JsonObject, readonly string[]]> = [
    ['a delegate with "name"', { name: 'other' }, ['"name"']],
    ['a delegate with "ipam"', { ipam: { type: 'host-local' } }, ['"ipam"']],
    ['a delegate type that is not a string', { type: 5 }, ['type']],
    ['a delegate type with a "/"', { type: '../bridge' }, ['type']],
  ];
  for (const [what, delegate, msgParts] of cases) {
    it(`${what} is code 7; no record, no delegate run`, () =>
      withLab((lab) => {
        lab.installDelegate('bridge', lab.dir); // what "../bridge" would reach
        assertCniError(lab.run('ADD', lab.netconf({ delegate })), 7, msgParts);
        assertDelegateNotRun(lab);
        assert.equal(lab.hasRecord(), false, 'no record');
      }));
  }

  it('a delegate missing from CNI_PATH is code 7 naming it, with CNI_PATH in the details', () =>
    withLab((lab) => {
      const error = assertCniError(lab.run('ADD', lab.netconf({ delegate: { type: 'macvlan' } })), 7, ['macvlan']);
      assert.ok(error.details?.includes(`CNI_PATH=${lab.binDir}`), `details: ${error.details}`);
      assertDelegateNotRun(lab);
      assert.equal(lab.hasRecord(), false, 'no record');
    }));
});

describe('weft-cni ADD: the saved record', () => {
  it('is the delegate config plus weftAttachment, 0600 in a 0700 directory, with no temp files left', () =>
    withLab((lab) => {
      const config = lab.add(CONTAINER_ID, 'net1');
      assert.equal(statSync(lab.recordFile()).mode & 0o777, 0o600, 'record mode');
      assert.equal(statSync(lab.dataDir).mode & 0o777, 0o700, 'data directory mode');
      assert.deepEqual(lab.readRecord(), { ...config, weftAttachment: { ifname: 'net1' } });
      const entries = readdirSync(lab.dataDir);
      assert.ok(entries.includes(CONTAINER_ID), `entries: ${entries.join(', ')}`);
      assert.deepEqual(entries.filter((name) => name.endsWith('.tmp')), [], 'no temp files');
    }));
});

describe('weft-cni ADD: delegate failures', () => {
  it("a delegate's CNI error keeps its code; the delegate's DEL undoes the ADD and the record goes", () =>
    withLab((lab) => {
      const run = lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD' });
      assertCniError(run, 7, ['boom']);
      const calls = lab.calls();
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
      assert.deepEqual(calls[1]?.config, calls[0]?.config, 'DEL gets the config ADD got');
      assert.equal(lab.hasRecord(), false, 'no record');
    }));

  it('a delegate printing no JSON and exiting 2 is code 999 with its output in the details', () =>
    withLab((lab) => {
      const run = lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD', RECORDING_DELEGATE_FAIL_MODE: 'garbage' });
      const error = assertCniError(run, 999);
      assert.ok(error.details?.includes('delegate exploded: not JSON'), `details: ${error.details}`);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
      assert.equal(lab.hasRecord(), false, 'no record');
    }));

  it('a delegate ADD that succeeds without a JSON result is code 6, undone like a failure', () =>
    withLab((lab) => {
      const run = lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD', RECORDING_DELEGATE_FAIL_MODE: 'no-result' });
      const error = assertCniError(run, 6, ['no JSON result']);
      assert.ok(error.details?.includes('all done, no result'), `details: ${error.details}`);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
      assert.equal(lab.hasRecord(), false, 'no record');
    }));

  it("when the undoing DEL fails too, the error says so and the record is kept for the runtime's DEL", () =>
    withLab((lab) => {
      const error = assertCniError(lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD DEL' }), 7, ['boom']);
      assert.ok(error.details?.includes('failed too'), `details: ${error.details}`);
      assert.ok(lab.hasRecord(), 'the record is kept');
      assertOk(lab.run('DEL', lab.netconf()));
      assert.equal(lab.hasRecord(), false, "the runtime's DEL removes it");
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
    }));

  it('a failed repeated ADD of the same attachment does not undo it and keeps the record', () =>
    withLab((lab) => {
      lab.add();
      assertCniError(lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD' }), 7, ['boom']);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `ADD ${CONTAINER_ID} eth0`], 'no DEL');
      assert.deepEqual(lab.readRecord()['weftAttachment'], { ifname: 'eth0' }, 'the record is kept');
    }));

  it('ADD of a container attached as another interface is code 7 "already attached"', () =>
    withLab((lab) => {
      lab.add();
      const record = lab.readRecord();
      assertCniError(lab.run('ADD', lab.netconf(), { CNI_IFNAME: 'eth1' }), 7, ['already attached']);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`], 'the delegate did not run again');
      assert.deepEqual(lab.readRecord(), record, 'the record is unchanged');
    }));
});

describe('weft-cni DEL', () => {
  it('replays the saved config after subnet.env is gone, and removes the record', () =>
    withLab((lab) => {
      const added = lab.add();
      rmSync(lab.subnetFile);
      assertOk(lab.run('DEL', lab.netconf()));
      const del = lab.calls()[1];
      assert.ok(del !== undefined && del.command === 'DEL', `DEL ran: ${JSON.stringify(lab.callSummary())}`);
      assert.deepEqual(del.config, added, 'the saved config without weftAttachment');
      assert.equal(del.netns, true, 'CNI_NETNS passed on');
      assert.equal(lab.hasRecord(), false, 'the record is removed');
    }));

  it('replays the saved config after subnet.env changed to another subnet', () =>
    withLab((lab) => {
      const added = lab.add();
      lab.writeSubnetEnv(SUBNET_ENV.replace('10.244.3.1/24', '10.244.9.1/24'));
      assertOk(lab.run('DEL', lab.netconf()));
      assert.deepEqual(lab.calls()[1]?.config, added);
      assert.equal(lab.hasRecord(), false, 'the record is removed');
    }));

  it('a second DEL succeeds without running the delegate', () =>
    withLab((lab) => {
      lab.add();
      assertOk(lab.run('DEL', lab.netconf()));
      assertOk(lab.run('DEL', lab.netconf()));
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
    }));

  it('DEL of an unknown container succeeds without running the delegate', () =>
    withLab((lab) => {
      lab.add();
      assertOk(lab.run('DEL', lab.netconf(), { CNI_CONTAINERID: 'unknown' }));
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
      assert.ok(lab.hasRecord(), "the other container's record is kept");
    }));

  it('DEL without a data directory succeeds and does not create it', () =>
    withLab((lab) => {
      assertOk(lab.run('DEL', lab.netconf()));
      assertDelegateNotRun(lab);
      assert.equal(existsSync(lab.dataDir), false, 'no data directory');
    }));

  it('DEL of another interface of the container does nothing', () =>
    withLab((lab) => {
      lab.add();
      assertOk(lab.run('DEL', lab.netconf(), { CNI_IFNAME: 'eth1' }));
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
      assert.ok(lab.hasRecord(), 'the record is kept');
    }));

  it("a delegate DEL failure is an error with the delegate's code, and the record is kept for a retry", () =>
    withLab((lab) => {
      lab.add();
      const failing = { RECORDING_DELEGATE_FAIL_ON: 'DEL', RECORDING_DELEGATE_FAIL_CODE: '11', RECORDING_DELEGATE_FAIL_MSG: 'busy' };
      assertCniError(lab.run('DEL', lab.netconf(), failing), 11, ['busy']);
      assert.ok(lab.hasRecord(), 'the record is kept');
      assertOk(lab.run('DEL', lab.netconf()));
      assert.equal(lab.hasRecord(), false, 'the retry removes it');
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`, `DEL ${CONTAINER_ID} eth0`]);
    }));

  it('a corrupt record: DEL exits 0 and says so on stderr', () =>
    withLab((lab) => {
      mkdirSync(lab.dataDir, { recursive: true, mode: 0o700 });
      writeFileSync(lab.recordFile(), 'not json {', { mode: 0o600 });
      const run = lab.run('DEL', lab.netconf());
      assertOk(run);
      assert.equal(run.stdout, '', 'nothing on stdout');
      assert.ok(run.stderr.includes(lab.recordFile()) && run.stderr.includes('nothing to replay'), `stderr: ${run.stderr}`);
      assertDelegateNotRun(lab);
    }));
});

describe('weft-cni CHECK', () => {
  const prevResult = parseObject(addResult('1.0.0'), 'the ADD result');

  it('CHECK without prevResult is code 7', () =>
    withLab((lab) => {
      lab.add();
      assertCniError(lab.run('CHECK', lab.netconf()), 7, ['prevResult']);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
    }));

  it('CHECK of an unknown container is code 3', () =>
    withLab((lab) => {
      assertCniError(lab.run('CHECK', lab.netconf({ prevResult })), 3, [CONTAINER_ID]);
      assertDelegateNotRun(lab);
      assert.equal(existsSync(lab.dataDir), false, 'CHECK does not create the data directory');
    }));

  it("the delegate checks the saved config with prevResult and the network config's cniVersion", () =>
    withLab((lab) => {
      const added = lab.add(CONTAINER_ID, 'eth0', { cniVersion: '0.4.0' });
      const run = lab.run('CHECK', lab.netconf({ prevResult }));
      assertOk(run);
      assert.equal(run.stdout, '', 'nothing on stdout');
      const check = lab.calls()[1];
      assert.ok(check !== undefined && check.command === 'CHECK', `CHECK ran: ${JSON.stringify(lab.callSummary())}`);
      assert.deepEqual(check.config, { ...added, cniVersion: '1.0.0', prevResult });
    }));

  it('CHECK after the lease changed is code 7 "re-create the container", without the delegate', () =>
    withLab((lab) => {
      lab.add();
      lab.writeSubnetEnv(SUBNET_ENV.replace('10.244.3.1/24', '10.244.9.1/24'));
      assertCniError(lab.run('CHECK', lab.netconf({ prevResult })), 7, ['re-create the container']);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
    }));

  it("a delegate CHECK failure is passed through", () =>
    withLab((lab) => {
      lab.add();
      const failing = { RECORDING_DELEGATE_FAIL_ON: 'CHECK', RECORDING_DELEGATE_FAIL_CODE: '101', RECORDING_DELEGATE_FAIL_MSG: 'no eth0 here' };
      assertCniError(lab.run('CHECK', lab.netconf({ prevResult }), failing), 101, ['no eth0 here']);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `CHECK ${CONTAINER_ID} eth0`]);
    }));
});

describe('weft-cni STATUS', () => {
  it('with a valid subnet.env and the delegate in CNI_PATH: exit 0, nothing on stdout', () =>
    withLab((lab) => {
      const run = lab.run('STATUS', lab.netconf({ cniVersion: '1.1.0' }));
      assertOk(run);
      assert.equal(run.stdout, '');
    }));

  it('without subnet.env: code 50', () =>
    withLab((lab) => {
      rmSync(lab.subnetFile);
      assertCniError(lab.run('STATUS', lab.netconf({ cniVersion: '1.1.0' })), 50, [lab.subnetFile]);
    }));

  it('without the delegate in CNI_PATH: code 50', () =>
    withLab((lab) => {
      rmSync(path.join(lab.binDir, 'bridge'));
      assertCniError(lab.run('STATUS', lab.netconf({ cniVersion: '1.1.0' })), 50, ['bridge']);
    }));

  for (const type of [5, '../bridge']) {
    it(`a delegate type ${JSON.stringify(type)} is code 7, as ADD reports it, even with a file where it points`, () =>
      withLab((lab) => {
        lab.installDelegate('bridge', lab.dir); // what "../bridge" would reach
        assertCniError(lab.run('STATUS', lab.netconf({ cniVersion: '1.1.0', delegate: { type } })), 7, ['type']);
      }));
  }
});

describe('weft-cni GC', () => {
  function gcConfig(lab: Lab, valid: ReadonlyArray<{ containerID: string; ifname: string }>): JsonObject {
    return lab.netconf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid.map((a) => ({ ...a })) });
  }

  it('GC without cni.dev/valid-attachments is code 7', () =>
    withLab((lab) => {
      lab.add();
      assertCniError(lab.run('GC', lab.netconf({ cniVersion: '1.1.0' })), 7, ['cni.dev/valid-attachments']);
      assert.ok(lab.hasRecord(), 'the record is kept');
    }));

  it('releases the attachments not in the valid list, replaying their DEL without CNI_NETNS', () =>
    withLab((lab) => {
      lab.add('ctr-a', 'eth0');
      lab.add('ctr-b', 'net1');
      lab.add('ctr-c', 'eth0');
      const configB = lab.readRecord('ctr-b');
      const valid = [{ containerID: 'ctr-a', ifname: 'eth0' }, { containerID: 'ctr-c', ifname: 'eth1' }];
      // a runtime would not set these for GC; they must not leak into the delegate's DELs
      assertOk(lab.run('GC', gcConfig(lab, valid), { CNI_NETNS: lab.netns, CNI_CONTAINERID: 'ctr-a', CNI_IFNAME: 'eth0' }));
      const dels = lab.calls().filter((c) => c.command === 'DEL');
      assert.deepEqual(dels.map((c) => `${c.containerId} ${c.ifname} netns=${c.netns}`).sort(), [
        'ctr-b net1 netns=false',
        'ctr-c eth0 netns=false',
      ]);
      assert.deepEqual(dels.find((c) => c.containerId === 'ctr-b')?.config, without(configB, 'weftAttachment'));
      assert.ok(lab.hasRecord('ctr-a'), 'ctr-a is kept');
      assert.equal(lab.hasRecord('ctr-b'), false, 'ctr-b is released');
      assert.equal(lab.hasRecord('ctr-c'), false, 'ctr-c (listed with another ifname) is released');
    }));

  it("a record without weftAttachment (flannel's) is matched on the container ID alone", () =>
    withLab((lab) => {
      for (const id of ['ctr-d', 'ctr-e']) {
        lab.add(id, 'eth0');
        writeFileSync(lab.recordFile(id), JSON.stringify(without(lab.readRecord(id), 'weftAttachment')));
      }
      assertOk(lab.run('GC', gcConfig(lab, [{ containerID: 'ctr-d', ifname: 'eth7' }])));
      assert.ok(lab.hasRecord('ctr-d'), 'ctr-d is kept');
      assert.equal(lab.hasRecord('ctr-e'), false, 'ctr-e is released');
      assert.deepEqual(lab.callSummary().filter((c) => c.startsWith('DEL')), ['DEL ctr-e eth0']);
    }));

  it('a delegate DEL failure is code 999 naming the container, whose record is kept; the others are released', () =>
    withLab((lab) => {
      for (const id of ['ctr-a', 'ctr-b', 'ctr-c']) lab.add(id);
      const run = lab.run('GC', gcConfig(lab, []), { RECORDING_DELEGATE_FAIL_ON: 'DEL', RECORDING_DELEGATE_FAIL_ID: 'ctr-b' });
      const error = assertCniError(run, 999);
      const details = error.details ?? '';
      assert.ok(details.includes('ctr-b') && details.includes('boom'), `details: ${details}`);
      assert.ok(!details.includes('ctr-a') && !details.includes('ctr-c'), `only ctr-b failed: ${details}`);
      assert.ok(lab.hasRecord('ctr-b'), 'ctr-b is kept');
      assert.equal(lab.hasRecord('ctr-a'), false, 'ctr-a is released');
      assert.equal(lab.hasRecord('ctr-c'), false, 'ctr-c is released');
    }));

  it('removes temp files older than 10 minutes and keeps fresh ones', () =>
    withLab((lab) => {
      mkdirSync(lab.dataDir, { recursive: true, mode: 0o700 });
      const stale = path.join(lab.dataDir, '.x.123.tmp');
      const fresh = path.join(lab.dataDir, '.y.456.tmp');
      writeFileSync(stale, '{}');
      writeFileSync(fresh, '{}');
      const elevenMinutesAgo = new Date(Date.now() - 11 * 60 * 1000);
      utimesSync(stale, elevenMinutesAgo, elevenMinutesAgo);
      assertOk(lab.run('GC', gcConfig(lab, [])));
      assert.equal(existsSync(stale), false, 'the stale temp file is removed');
      assert.ok(existsSync(fresh), 'the fresh temp file is kept');
    }));

  it('GC without a data directory succeeds and does not create it', () =>
    withLab((lab) => {
      assertOk(lab.run('GC', gcConfig(lab, [])));
      assert.equal(existsSync(lab.dataDir), false, 'no data directory');
    }));
});

describe('weft-cni: concurrency', () => {
  it('20 ADDs at once all succeed and leave 20 records; a GC with an empty list releases all of them', () =>
    withLab(async (lab) => {
      const ids = Array.from({ length: 20 }, (_, i) => `ctr-${i}`);
      const runs = await Promise.all(ids.map((id) => lab.start('ADD', lab.netconf(), { CNI_CONTAINERID: id })));
      runs.forEach((run, i) => {
        assertOk(run);
        assert.equal(run.stdout, addResult('1.0.0'), `the result of ADD ${ids[i]}`);
      });
      assert.deepEqual(ids.filter((id) => !lab.hasRecord(id)), [], 'every ADD left its record');
      for (const id of ids) assert.deepEqual(lab.readRecord(id)['weftAttachment'], { ifname: 'eth0' }, `record of ${id}`);
      const added = lab.calls().filter((c) => c.command === 'ADD').map((c) => c.containerId ?? '-');
      assert.deepEqual(added.sort(), [...ids].sort(), 'one delegate ADD per container');

      assertOk(lab.run('GC', lab.netconf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] })));
      const deleted = lab.calls().filter((c) => c.command === 'DEL').map((c) => c.containerId ?? '-');
      assert.deepEqual(deleted.sort(), [...ids].sort(), 'one delegate DEL per container');
      assert.deepEqual(ids.filter((id) => lab.hasRecord(id)), [], 'every record is removed');
    }));
});

describe('weft-cni: unusual callers, delegates and files', () => {
  it('a runtime that starts it with SIGCHLD ignored still gets the delegate failure', () =>
    withLab((lab) => {
      const failing = { RECORDING_DELEGATE_FAIL_ON: 'ADD DEL' };
      assertCniError(lab.run('ADD', lab.netconf(), failing, ['env', '--ignore-signal=CHLD']), 7, ['boom']);
      assert.equal(lab.hasRecord(), true, 'the undo DEL failed too, so the record stays for the runtime\'s DEL');
    }));

  it('names that are not UTF-8 still give an error with a msg', () =>
    withLab((lab) => {
      for (const variable of ['CNI_CONTAINERID', 'CNI_IFNAME']) {
        const launcher = ['sh', '-c', `${variable}="$(printf 'eth\\351')"; export ${variable}; exec "$0"`];
        const error = assertCniError(lab.run('ADD', lab.netconf(), {}, launcher), 4, [variable, 'eth?']);
        assert.ok(error.msg.length > 0);
      }
      assertDelegateNotRun(lab);
    }));

  it('a delegate that closes stdout before reading a large config does not hang the plugin', () =>
    withLab((lab) => {
      const script = path.join(lab.binDir, 'bridge');
      writeFileSync(script, '#!/bin/sh\nexec 1>&-\nsleep 0.2\ncat >/dev/null\nexit 0\n');
      chmodSync(script, 0o755);
      const big = { runtimeConfig: { blob: 'x'.repeat(200_000) } };
      const started = Date.now();
      assertCniError(lab.run('ADD', lab.netconf(big)), 6, ['no JSON result']);
      assert.ok(Date.now() - started < RUN_TIMEOUT_MS / 2, 'it finished');
      assert.equal(lab.hasRecord(), false, 'undone: its DEL succeeded');
    }));

  it('a repeated ADD that fails puts the earlier record back', () =>
    withLab((lab) => {
      lab.add();
      const earlier = lab.readRecord();
      lab.writeSubnetEnv(SUBNET_ENV.replace('10.244.3.1/24', '10.244.9.1/24'));
      assertCniError(lab.run('ADD', lab.netconf(), { RECORDING_DELEGATE_FAIL_ON: 'ADD' }), 7, ['boom']);
      assert.deepEqual(lab.readRecord(), earlier, 'DEL will replay what the earlier ADD did');
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`, `ADD ${CONTAINER_ID} eth0`], 'no undo DEL');
    }));

  it("GC leaves other networks' records in a shared data directory alone", () =>
    withLab((lab) => {
      lab.add();
      const valid = { 'cni.dev/valid-attachments': [] };
      assertOk(lab.run('GC', lab.netconf({ cniVersion: '1.1.0', name: 'another-network', ...valid })));
      assert.equal(lab.hasRecord(), true);
      assert.deepEqual(lab.callSummary(), [`ADD ${CONTAINER_ID} eth0`]);
      assertOk(lab.run('GC', lab.netconf({ cniVersion: '1.1.0', ...valid })));
      assert.equal(lab.hasRecord(), false, 'its own network\'s GC releases it');
    }));

  it('DEL accepts the old versions flannel\'s plugin accepts, so nothing is stranded; ADD does not', () =>
    withLab((lab) => {
      for (const cniVersion of ['0.2.0', undefined]) {
        lab.add();
        const conf = lab.netconf();
        if (cniVersion === undefined) delete conf['cniVersion'];
        else conf['cniVersion'] = cniVersion;
        assertOk(lab.run('DEL', conf));
        assert.equal(lab.hasRecord(), false, `DEL with cniVersion ${cniVersion ?? '(none)'} replayed the record`);
      }
      assertCniError(lab.run('ADD', lab.netconf({ cniVersion: '0.2.0' })), 1, ['0.2.0']);
    }));

  it('a subnet.env with a NUL byte is refused, not read up to it', () =>
    withLab((lab) => {
      lab.writeSubnetEnv(`${SUBNET_ENV}\0FLANNEL_SUBNET=10.244.9.1/24\n`);
      assertCniError(lab.run('ADD', lab.netconf()), 7, ['NUL']);
      assertDelegateNotRun(lab);
    }));

  it('a dataDir too long to hold a record path is refused', () =>
    withLab((lab) => {
      assertCniError(lab.run('ADD', lab.netconf({ dataDir: `/${'d'.repeat(3900)}` })), 7, ['dataDir', 'longer than']);
      assertDelegateNotRun(lab);
    }));

  it('a record that is not a regular file (a FIFO) does not block DEL', () =>
    withLab((lab) => {
      mkdirSync(lab.dataDir, { recursive: true });
      const fifo = spawnSync('mkfifo', [lab.recordFile()]);
      assert.equal(fifo.status, 0);
      const run = lab.run('DEL', lab.netconf());
      assertOk(run);
      assert.match(run.stderr, /not a regular file/);
      assertDelegateNotRun(lab);
    }));
});
