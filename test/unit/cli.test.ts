/**
 * The command line: Go-style flag normalization, the agent's help, and the
 * real `bin/weft` for the cases that fail at configuration, before the agent
 * creates anything (no root, no devices, no sockets, no network).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { buildProgram, normalizeArgv } from '../../src/cli/main';
import { agentCommand, parseAgent } from '../agent-options';

// dist/test/unit -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'weft');

describe('normalizeArgv', () => {
  const cases: Array<[string, string[], string[]]> = [
    ['Go-style -name=value', ['agent', '-iface=eth0'], ['agent', '--iface=eth0']],
    ['Go-style -name value', ['agent', '-iface', 'eth0'], ['agent', '--iface', 'eth0']],
    ['hyphenated names', ['agent', '-net-config-path=/etc/n.json', '-iface-regex=^en.*$'],
      ['agent', '--net-config-path=/etc/n.json', '--iface-regex=^en.*$']],
    ['a bare Go-style boolean', ['agent', '-ip-masq'], ['agent', '--ip-masq']],
    ['glog -v=N', ['agent', '-v=2'], ['agent', '-v', '2']],
    ['glog --v=N', ['agent', '--v=3'], ['agent', '-v', '3']],
    ['-v N is already fine', ['agent', '-v', '1'], ['agent', '-v', '1']],
    ['glog --v N', ['agent', '--v', '3'], ['agent', '-v', '3']],
    ['-v before the subcommand moves after it', ['-v=2', 'agent', '--iface', 'eth0'], ['agent', '-v', '2', '--iface', 'eth0']],
    ['an unknown single-dash word is a value, not a flag', ['agent', '--iface-regex', '-abc'], ['agent', '--iface-regex', '-abc']],
    ['--name value is unchanged', ['agent', '--iface', 'eth0'], ['agent', '--iface', 'eth0']],
    ['--name=value is unchanged', ['agent', '--iface=eth0'], ['agent', '--iface=eth0']],
    ['short help stays short', ['agent', '-h'], ['agent', '-h']],
    ['negative numbers are values, not flags', ['agent', '--healthz-port', '-1', '--workers', '-12'],
      ['agent', '--healthz-port', '-1', '--workers', '-12']],
    ['everything after -- is left alone, -- included', ['agent', '-iface=a', '--', '-iface=b', '-v=2', '--'],
      ['agent', '--iface=a', '--', '-iface=b', '-v=2', '--']],
    ['values after = are kept verbatim', ['agent', '-peer=10.244.2.0/24=192.168.1.12:8300'],
      ['agent', '--peer=10.244.2.0/24=192.168.1.12:8300']],
  ];
  for (const [what, input, expected] of cases) {
    it(what, () => {
      assert.deepEqual(normalizeArgv(input), expected);
    });
  }

  it('does not modify its input', () => {
    const input = Object.freeze(['agent', '-iface=eth0', '-v=2']);
    normalizeArgv(input);
    assert.deepEqual(input, ['agent', '-iface=eth0', '-v=2']);
  });
});

describe('buildProgram', () => {
  it('Go-style flags reach the agent as the options they name', () => {
    const o = parseAgent([
      '-iface=eth0', '-iface', 'eth1', '-v=2', '-subnet=10.244.1.0/24',
      '-peer=10.244.2.0/24=192.168.1.12', '--peer', '10.244.3.0/24=192.168.1.13:8300', '-healthz-port=9100',
    ]);
    assert.deepEqual(o['iface'], ['eth0', 'eth1']);
    assert.equal(o['verbosity'], 2);
    assert.equal(o['subnet'], '10.244.1.0/24');
    assert.deepEqual(o['peer'], ['10.244.2.0/24=192.168.1.12', '10.244.3.0/24=192.168.1.13:8300']);
    assert.equal(o['healthzPort'], 9100);
  });

  it('a negative number reaches the option parser as a value', () => {
    assert.throws(() => parseAgent(['--healthz-port', '-1']), {
      code: 'commander.invalidArgument',
      message: "error: option '--healthz-port <port>' argument '-1' is invalid. --healthz-port must be an integer from 0 to 65535",
    });
  });

  it('the agent has exactly the documented options, and its help lists every one of them', () => {
    const agent = agentCommand(buildProgram());
    assert.deepEqual(agent.options.filter((o) => !o.hidden).map((o) => o.long), [
      '--net-config-path', '--iface', '--iface-regex', '--iface-can-reach', '--public-ip',
      '--etcd-endpoints', '--etcd-prefix', '--etcd-keyfile', '--etcd-certfile', '--etcd-cafile', '--etcd-username', '--etcd-password',
      '--lease-file', '--subnet-lease-renew-margin', '--subnet-lease-ttl', '--subnet-file',
      '--subnet', '--peer', '--peers-file',
      '--ip-masq', '--ip-masq-fully-random-disable', '--ip-blackhole-route', '--iptables-resync', '--iptables-forward-rules',
      '--healthz-ip', '--healthz-port', '--status-socket', '--kernel-resync', '--state-dir',
      '--tun-name', '--workers', '--batch-size', '--tun-offload', '--udp-gso', '--udp-gso-runs', '--trust-outer-checksum', '--udp-gro', '--tun-coalesce',
      '--tun-coalesce-udp', '--tun-txqueuelen', '--socket-buffer', '--source-validation', '--peer-counters', '--spread-flows', '--adaptive-poll', '--fast-path', '--fast-path-static-peers', '--short-tun-reads', '--busy-poll-us', '--verbosity', '--log-format', '--version',
    ]);
    const help = agent.helpInformation();
    for (const option of agent.options.filter((o) => !o.hidden)) {
      assert.ok(help.includes(option.flags), `agent help does not show "${option.flags}":\n${help}`);
      assert.ok(option.description.length > 0, `${option.flags} has no description`);
    }
    assert.ok(help.includes('-h, --help'));
  });

  it('every flanneld flag can come from FLANNELD_<NAME>', () => {
    const agent = agentCommand(buildProgram());
    const flannelFlags = ['net-config-path', 'iface', 'iface-regex', 'iface-can-reach', 'public-ip', 'etcd-endpoints', 'etcd-prefix',
      'etcd-keyfile', 'etcd-certfile', 'etcd-cafile', 'etcd-username', 'etcd-password', 'subnet-lease-renew-margin', 'subnet-file',
      'ip-masq', 'ip-masq-fully-random-disable', 'ip-blackhole-route', 'iptables-resync', 'iptables-forward-rules', 'healthz-ip',
      'healthz-port'];
    for (const flag of flannelFlags) {
      const option = agent.options.find((o) => o.long === `--${flag}`);
      assert.equal(option?.envVar, `FLANNELD_${flag.toUpperCase().replace(/-/g, '_')}`, flag);
    }
  });
});

// ---- the real command --------------------------------------------------------

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs bin/weft with the environment minus FLANNELD_* (those would change option defaults).
 * `weft agent` runs get a backstop so a test can never reach the host: files in the
 * test's directory and an interface that does not exist (resolved before anything is created).
 */
function weft(...args: string[]): Run {
  return weftWithEnv({}, ...args);
}

function weftWithEnv(extraEnv: NodeJS.ProcessEnv, ...args: string[]): Run {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLANNELD_') && !k.startsWith('WEFT_')) env[k] = v;
  Object.assign(env, extraEnv);
  if (args[0] === 'agent' && !args.includes('--help') && !args.includes('--version')) args.push(...BACKSTOP);
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, timeout: 20_000 });
  assert.equal(r.error, undefined, `could not run ${BIN}: ${String(r.error)}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SAFE_DIR = path.join(tmpdir(), `weft-cli-safe-${process.pid}`);
/** Files in the test's directory and an interface that does not exist: resolved before anything is created. */
const BACKSTOP = ['--iface', 'weft-nonexistent0', '--lease-file', path.join(SAFE_DIR, 'leases.json'),
  '--subnet-file', path.join(SAFE_DIR, 'subnet.env'), '--state-dir', path.join(SAFE_DIR, 'state'), '--tun-name', 'weft-cli-test',
  '--status-socket', path.join(SAFE_DIR, 'status.sock')];

/** The line the CLI prints for an error (the agent may have logged JSON lines before it). */
function errorLines(r: Run): string[] {
  return stderrLines(r).filter((line) => line.startsWith('weft: '));
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLANNELD_') && !k.startsWith('WEFT_')) env[k] = v;
  return env;
}

function stderrLines(r: Run): string[] {
  return r.stderr.split('\n').filter((line) => line !== '');
}

describe('bin/weft', () => {
  let dir = '';
  const file = (name: string): string => path.join(dir, name);

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'weft-cli-test-'));
    writeFileSync(file('bad-subnetlen.json'), JSON.stringify({ Network: '10.244.0.0/16', SubnetLen: 8, Backend: { Type: 'udp' } }));
    writeFileSync(file('ok.json'), JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } }));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(SAFE_DIR, { recursive: true, force: true });
  });

  it('--help exits 0 and lists the subcommands', () => {
    const r = weft('--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: weft /);
    assert.match(r.stdout, /^ {2}agent \[options\]/m);
    assert.match(r.stdout, /^ {2}demo \[options\]/m);
  });

  it('--version prints the package version', () => {
    const r = weft('--version');
    assert.equal(r.status, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('agent --help exits 0 and lists the main options', () => {
    const r = weft('agent', '--help');
    assert.equal(r.status, 0, r.stderr);
    for (const flag of ['--net-config-path <file>', '--iface <name-or-ip>', '--public-ip <ip>', '--subnet <cidr>',
      '--peer <cidr=ip[:port]>', '--tun-name <name>']) {
      assert.ok(r.stdout.includes(flag), `agent --help does not list ${flag}:\n${r.stdout}`);
    }
    for (const refused of ['--kube-subnet-mgr', '--public-ipv6']) assert.ok(r.stdout.includes(refused), `agent --help does not name ${refused}`);
  });

  it('agent with a net-conf file that does not exist yet waits for it, retrying every second, and stops on SIGTERM with 0', async () => {
    const missing = file('missing.json');
    const child = spawn(process.execPath, [BIN, 'agent', `-net-config-path=${missing}`, '--subnet', '10.244.1.0/24', ...BACKSTOP],
      { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    const exited = once(child, 'exit');
    const waitingLines = (): Array<{ msg: string; attempt: number }> => stderr.split('\n').filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; attempt: number }).filter((r) => r.msg.includes('no network configuration yet'));
    const deadline = Date.now() + 10_000;
    while (waitingLines().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const [code] = await exited;
    const lines = waitingLines();
    assert.ok(lines.length >= 2, `expected at least two attempts, got:\n${stderr}`);
    assert.deepEqual(lines.slice(0, 2).map((l) => l.attempt), [1, 2]);
    assert.ok(lines[0]?.msg.includes(`(looked in ${missing})`), lines[0]?.msg);
    assert.equal(code, 0, stderr);
    assert.equal(existsSync(path.join(SAFE_DIR, 'subnet.env')), false, 'no subnet file was written');
  });

  it('agent refuses an unknown Backend.Type before touching anything, naming the field and the value', () => {
    const conf = file('wireguard.json');
    writeFileSync(conf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'wireguard' } }));
    const r = weft('agent', '--net-config-path', conf, '--subnet', '10.244.1.0/24');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [`weft: ${conf}: Backend.Type "wireguard" is not supported: weft supports "udp", "vxlan" and "host-gw"`]);
  });

  it('agent refuses an out-of-range VNI and Port before touching anything, naming the field and the value', () => {
    const vni = file('vni.json');
    writeFileSync(vni, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 16777216 } }));
    const r = weft('agent', '--net-config-path', vni);
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [`weft: ${vni}: Backend.VNI 16777216 is not allowed: it must be between 0 and 16777215 (24 bits; default 1)`]);
    const port = file('port.json');
    writeFileSync(port, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', Port: 70000 } }));
    const p = weft('agent', '--net-config-path', port);
    assert.equal(p.status, 2, p.stderr);
    assert.deepEqual(errorLines(p), [
      `weft: ${port}: Backend.Port 70000 is not allowed: it must be between 1 and 65535 (0 or omitted means the kernel default 8472)`,
    ]);
    assert.equal(existsSync(path.join(SAFE_DIR, 'state', 'host-state.json')), false, 'nothing was recorded: nothing was created');
  });

  it('agent refuses static mode with the vxlan backend before touching anything: static peers have no VtepMAC', () => {
    const conf = file('static-vxlan.json');
    writeFileSync(conf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
    const r = weft('agent', '--net-config-path', conf, '--subnet', '10.244.1.0/24', '--peer', '10.244.2.0/24=192.168.1.12', '--iface', 'lo');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [
      'weft: static mode (--subnet, --peer, --peers-file) cannot run the vxlan backend: it needs what other hosts publish in their ' +
        'leases (its lease has no BackendData with a VtepMAC) and a static peer has no lease; use a lease store (--etcd-endpoints ' +
        'or the embedded store), or a backend that needs only the peer\'s address (udp, host-gw)',
    ]);
    assert.equal(existsSync(path.join(SAFE_DIR, 'subnet.env')), false, 'no subnet file was written');
  });

  it('agent refuses --fast-path-static-peers outside static mode, and a --fast-path it does not know, before touching anything', () => {
    const r = weft('agent', '--fast-path', 'bpf', '--fast-path-static-peers');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [
      'weft: --fast-path-static-peers is for static mode (--subnet, --peer): with a lease store, each host\'s lease says whether it runs the fast path',
    ]);
    const bad = weft('agent', '--fast-path', 'xdp');
    assert.equal(bad.status, 1, bad.stderr); // commander's own usage errors exit 1, as for any unknown choice
    assert.match(bad.stderr, /--fast-path <mode>' argument 'xdp' is invalid\. Allowed choices are off, bpf/);
    assert.equal(existsSync(path.join(SAFE_DIR, 'state', 'host-state.json')), false, 'nothing was recorded: nothing was created');
  });

  it('agent --version prints the version, as flanneld --version does', () => {
    const r = weft('agent', '--version');
    assert.equal(r.status, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('agent refuses a refused flanneld flag given as FLANNELD_* too, and lets a false one pass', () => {
    const r = weftWithEnv({ FLANNELD_KUBE_SUBNET_MGR: 'true' }, 'agent', '--net-config-path', file('ok.json'));
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [
      'weft: --kube-subnet-mgr is not supported (from FLANNELD_KUBE_SUBNET_MGR=true): weft has no Kubernetes subnet manager; ' +
        'keep leases in etcd (--etcd-endpoints) or the embedded store',
    ]);
    const ok = weftWithEnv({ FLANNELD_KUBE_SUBNET_MGR: 'false' }, 'agent', '--net-config-path', file('ok.json'));
    assert.match(errorLines(ok)[0] ?? '', /no interface with an IPv4 address matches --iface weft-nonexistent0/);
  });

  it('agent with a net-conf whose SubnetLen is out of range exits 2 with the parser\'s message', () => {
    const conf = file('bad-subnetlen.json');
    const r = weft('agent', '--net-config-path', conf, '--subnet', '10.244.1.0/24');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [
      `weft: ${conf}: SubnetLen 8 is not allowed: it must be between 18 (Network prefix 16 + 2) and 30`,
    ]);
  });

  it('agent with --peer but no --subnet exits 2 and says why', () => {
    const r = weft('agent', '--net-config-path', file('ok.json'), '--peer', '10.244.2.0/24=192.168.1.12');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(stderrLines(r), [
      "weft: --peer and --peers-file belong to static mode and need --subnet; with a lease store, routes come from the other hosts' leases",
    ]);
  });

  it('agent with --subnet and --etcd-endpoints exits 2 and says why', () => {
    const r = weft('agent', '--net-config-path', file('ok.json'), '--subnet', '10.244.1.0/24', '--etcd-endpoints', 'http://127.0.0.1:1');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(stderrLines(r), [
      'weft: --subnet (static mode) and --etcd-endpoints cannot be combined: with etcd the subnet is leased; drop one of them',
    ]);
  });

  it('agent refuses a flanneld flag it cannot honour', () => {
    const r = weft('agent', '--net-config-path', file('ok.json'), '--kube-subnet-mgr');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(errorLines(r), [
      'weft: --kube-subnet-mgr is not supported: weft has no Kubernetes subnet manager; keep leases in etcd (--etcd-endpoints) or the embedded store',
    ]);
  });

  it('agent in lease mode with an unknown interface fails before touching anything', () => {
    const r = weft('agent', '--net-config-path', file('ok.json'));
    assert.equal(r.status, 2, r.stderr);
    assert.match(errorLines(r)[0] ?? '', /^weft: no interface with an IPv4 address matches --iface weft-nonexistent0; interfaces here: /);
    assert.equal(existsSync(path.join(SAFE_DIR, 'leases.json')), false, 'no lease was written');
    assert.equal(existsSync(path.join(SAFE_DIR, 'subnet.env')), false, 'no subnet file was written');
  });

  it('agent with a malformed --peer exits 2 with the peer parser\'s message', () => {
    const r = weft('agent', '--net-config-path', file('ok.json'), '--subnet', '10.244.1.0/24', '--peer', '10.244.2.0/24');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(stderrLines(r), [
      'weft: --peer "10.244.2.0/24" is malformed: expected CIDR=IP[:PORT], e.g. 10.244.2.0/24=192.168.1.12:8285',
    ]);
  });

  it('an unknown subcommand exits non-zero and names it', () => {
    const r = weft('frobnicate');
    assert.notEqual(r.status, 0);
    assert.notEqual(r.status, null, 'killed by a signal or timed out');
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });
});
