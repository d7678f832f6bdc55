/**
 * The flanneld flags `weft agent` refuses (src/cli/agent-command.ts): which
 * they are, and when a value given on the command line or as FLANNELD_<NAME>
 * counts as a request.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { refusedFlagValue, UNSUPPORTED_FLAGS } from '../../src/cli/agent-command';
import { buildProgram } from '../../src/cli/main';
import { agentCommand, parseAgent } from '../agent-options';

const NO_ENV: NodeJS.ProcessEnv = {};

describe('UNSUPPORTED_FLAGS', () => {
  it('lists exactly the flanneld flags weft refuses', () => {
    assert.deepEqual(Object.keys(UNSUPPORTED_FLAGS), [
      'kube-subnet-mgr', 'kube-api-url', 'kubeconfig-file', 'kube-annotation-prefix', 'public-ipv6', 'subnet-dir',
      'set-node-network-unavailable', 'vmodule', 'log_backtrace_at',
    ]);
  });

  it('gives each a reason that says what to do instead', () => {
    assert.equal(UNSUPPORTED_FLAGS['kube-subnet-mgr'],
      'weft has no Kubernetes subnet manager; keep leases in etcd (--etcd-endpoints) or the embedded store');
    assert.equal(UNSUPPORTED_FLAGS['public-ipv6'], 'weft is IPv4-only');
    assert.equal(UNSUPPORTED_FLAGS['vmodule'], 'weft has one log level for the whole agent: use -v');
    for (const [name, why] of Object.entries(UNSUPPORTED_FLAGS)) assert.ok(why.length > 10, name);
  });

  it('each is a hidden option of `weft agent` (so that it reaches the refusal instead of "unknown option")', () => {
    const agent = agentCommand(buildProgram());
    for (const name of Object.keys(UNSUPPORTED_FLAGS)) {
      const option = agent.options.find((o) => o.long === `--${name}`);
      assert.ok(option !== undefined, name);
      assert.equal(option.hidden, true, name);
    }
  });

  it('as the agent parses them: a bare flag is true, a value is the string given', () => {
    const o = parseAgent(['--kube-subnet-mgr', '--kube-api-url=https://10.0.0.1:6443', '-public-ipv6=fd00::1', '--log_backtrace_at', 'main.go:1']);
    assert.equal(o['kubeSubnetMgr'], true);
    assert.equal(o['kubeApiUrl'], 'https://10.0.0.1:6443');
    assert.equal(o['publicIpv6'], 'fd00::1');
    assert.equal(o['log_backtrace_at'], 'main.go:1');
    assert.equal(o['subnetDir'], undefined);
  });

  it('flanneld\'s single-dash spelling reaches the refusal for every refused flag', () => {
    assert.equal(parseAgent(['-log_backtrace_at=main.go:1'])['log_backtrace_at'], 'main.go:1');
  });
});

describe('refusedFlagValue', () => {
  it('nothing given anywhere: undefined', () => {
    assert.equal(refusedFlagValue('kube-subnet-mgr', undefined, NO_ENV), undefined);
  });

  it('a bare flag on the command line is "true"; a value is itself', () => {
    assert.equal(refusedFlagValue('kube-subnet-mgr', true, NO_ENV), 'true');
    assert.equal(refusedFlagValue('kube-api-url', 'https://10.0.0.1:6443', NO_ENV), 'https://10.0.0.1:6443');
    assert.equal(refusedFlagValue('kube-subnet-mgr', 'TRUE', NO_ENV), 'TRUE');
  });

  it('false, "false" (any case), "0" and "" on the command line are not a request', () => {
    for (const v of [false, 'false', 'False', 'FALSE', '0', '']) {
      assert.equal(refusedFlagValue('kube-subnet-mgr', v, NO_ENV), undefined, JSON.stringify(v));
    }
  });

  it('reads FLANNELD_<NAME> with dashes as underscores', () => {
    assert.equal(refusedFlagValue('kube-subnet-mgr', undefined, { FLANNELD_KUBE_SUBNET_MGR: 'true' }), 'true');
    assert.equal(refusedFlagValue('kubeconfig-file', undefined, { FLANNELD_KUBECONFIG_FILE: '/etc/kubeconfig' }), '/etc/kubeconfig');
    assert.equal(refusedFlagValue('set-node-network-unavailable', undefined, { FLANNELD_SET_NODE_NETWORK_UNAVAILABLE: '1' }), '1');
    assert.equal(refusedFlagValue('vmodule', undefined, { FLANNELD_VMODULE: 'main=2' }), 'main=2');
    assert.equal(refusedFlagValue('log_backtrace_at', undefined, { FLANNELD_LOG_BACKTRACE_AT: 'main.go:1' }), 'main.go:1');
  });

  it('only the flag\'s own variable counts', () => {
    const env = { FLANNELD_KUBE_SUBNET_MGR: 'true', KUBE_SUBNET_MGR: 'true', FLANNELD_KUBE_API_URL: 'https://x' };
    assert.equal(refusedFlagValue('public-ipv6', undefined, env), undefined);
    assert.equal(refusedFlagValue('kube-annotation-prefix', undefined, env), undefined);
    assert.equal(refusedFlagValue('kube-api-url', undefined, env), 'https://x');
    assert.equal(refusedFlagValue('kube-subnet-mgr', undefined, { 'FLANNELD_KUBE-SUBNET-MGR': 'true', flanneld_kube_subnet_mgr: 'true' }), undefined);
  });

  it('false, "0" and empty in the environment are not a request', () => {
    for (const v of ['false', 'False', '0', '']) {
      assert.equal(refusedFlagValue('kube-subnet-mgr', undefined, { FLANNELD_KUBE_SUBNET_MGR: v }), undefined, JSON.stringify(v));
    }
  });

  it('the command line beats the environment, both ways', () => {
    assert.equal(refusedFlagValue('kube-subnet-mgr', false, { FLANNELD_KUBE_SUBNET_MGR: 'true' }), undefined);
    assert.equal(refusedFlagValue('kube-subnet-mgr', 'false', { FLANNELD_KUBE_SUBNET_MGR: 'true' }), undefined);
    assert.equal(refusedFlagValue('kube-subnet-mgr', true, { FLANNELD_KUBE_SUBNET_MGR: 'false' }), 'true');
    assert.equal(refusedFlagValue('kube-api-url', 'https://a', { FLANNELD_KUBE_API_URL: 'https://b' }), 'https://a');
  });

  it('the other spellings of false that flanneld (Go\'s strconv.ParseBool) accepts are not a request either', () => {
    for (const v of ['f', 'F']) {
      assert.equal(refusedFlagValue('kube-subnet-mgr', undefined, { FLANNELD_KUBE_SUBNET_MGR: v }), undefined, v);
    }
  });
});

describe('--source-validation', () => {
  it('is on by default, and =false (or false as a separate word) turns it off', () => {
    assert.equal(parseAgent([])['sourceValidation'], true);
    assert.equal(parseAgent(['--source-validation'])['sourceValidation'], true);
    assert.equal(parseAgent(['--source-validation=false'])['sourceValidation'], false);
    assert.equal(parseAgent(['-source-validation=false'])['sourceValidation'], false);
  });
});
