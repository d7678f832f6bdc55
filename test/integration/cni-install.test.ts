/**
 * `weft cni install`: the built plugin lands in a CNI bin directory as
 * `weft-cni` and `flannel`, runnable, replaced atomically on update, and a
 * `flannel` that is not weft's is left alone unless --force.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { builtPluginPath, identifyPlugin, installCniPlugin } from '../../src/cni/cni-install';
import { ConfigError, WeftError } from '../../src/errors';

const WEFT = path.resolve(__dirname, '..', '..', '..', 'bin', 'weft');
const skip = existsSync(builtPluginPath()) ? undefined : `${builtPluginPath()} is not built (npm install builds it)`;

describe('weft cni install', { skip }, () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'weft-cni-install-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('installs weft-cni and flannel, both runnable, mode 0755, and updates them in place', async () => {
    const bin = path.join(dir, 'a', 'bin');
    const first = await installCniPlugin({ dir: bin });
    assert.deepEqual(first.map((p) => [path.basename(p.path), p.replaced]), [['weft-cni', 'nothing'], ['flannel', 'nothing']]);
    for (const name of ['weft-cni', 'flannel']) {
      const file = path.join(bin, name);
      assert.equal(statSync(file).mode & 0o777, 0o755);
      assert.deepEqual(readFileSync(file), readFileSync(builtPluginPath()));
      const version = spawnSync(file, [], { input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
      assert.equal(version.status, 0);
      assert.deepEqual(JSON.parse(version.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    }
    const second = await installCniPlugin({ dir: bin });
    assert.deepEqual(second.map((p) => p.replaced), ['weft-cni', 'weft-cni']);
    assert.deepEqual(readdirSync(bin).sort(), ['flannel', 'weft-cni'], 'no temp file left');
  });

  test("leaves another plugin's flannel alone unless forced, and installs nothing then", async () => {
    const bin = path.join(dir, 'b');
    await installCniPlugin({ dir: bin }).then(() => rmSync(path.join(bin, 'weft-cni')));
    const foreign = path.join(bin, 'flannel');
    writeFileSync(foreign, '#!/bin/sh\necho flannel-io plugin\n');
    chmodSync(foreign, 0o755);
    assert.equal(await identifyPlugin(foreign), 'another plugin');
    await assert.rejects(installCniPlugin({ dir: bin }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /flannel is another CNI plugin, not weft's.*--force/);
      return true;
    });
    assert.equal(existsSync(path.join(bin, 'weft-cni')), false, 'nothing installed when refusing');
    assert.match(readFileSync(foreign, 'utf8'), /flannel-io plugin/);

    const cli = spawnSync(process.execPath, [WEFT, 'cni', 'install', '--dir', bin], { encoding: 'utf8' });
    assert.equal(cli.status, 2, 'a refusal is a usage/config error (exit 2)');
    assert.match(cli.stderr, /another CNI plugin/);

    const forced = spawnSync(process.execPath, [WEFT, 'cni', 'install', '--dir', bin, '--force'], { encoding: 'utf8' });
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(forced.stdout, /installed .*weft-cni/);
    assert.match(forced.stdout, /replaced another plugin with .*flannel/);
    assert.equal(await identifyPlugin(foreign), 'weft-cni');
  });

  test('says how to build the plugin when it is missing', async () => {
    await assert.rejects(installCniPlugin({ dir: path.join(dir, 'c'), source: path.join(dir, 'nope', 'build', 'Release', 'weft-cni') }), (err: unknown) => {
      assert.ok(err instanceof WeftError);
      assert.equal(err.code, 'WEFT_ERR_NATIVE_LOAD');
      assert.match(err.message, /not built.*npm install/);
      return true;
    });
    assert.equal(existsSync(path.join(dir, 'c')), false);
  });
});
