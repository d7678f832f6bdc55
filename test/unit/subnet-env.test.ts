import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError, SysError } from '../../src/errors';
import { formatIpv4, formatPrefix } from '../../src/net/ipv4';
import {
  formatSubnetEnv,
  parseSubnetEnv,
  readSubnetEnv,
  removeSubnetEnv,
  writeSubnetEnv,
  type SubnetEnv,
  type SubnetEnvValues,
} from '../../src/subnet';
import { cidr } from '../addresses';

const VALUES: SubnetEnvValues = {
  network: cidr('10.5.0.0/16'),
  subnet: cidr('10.5.72.0/24'),
  mtu: 1472,
  ipMasq: false,
};

const FLANNEL_TEXT = 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n';

/** A SubnetEnv as plain text fields, for readable comparisons. */
function show(env: SubnetEnv): Record<string, unknown> {
  return {
    network: formatPrefix(env.network),
    subnet: formatPrefix(env.subnet),
    address: formatIpv4(env.address),
    mtu: env.mtu,
    ipMasq: env.ipMasq,
  };
}

function rejectsText(text: string, path: string, value: unknown, message: string): void {
  assert.throws(
    () => parseSubnetEnv(text, '/run/flannel/subnet.env'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      assert.equal(err.code, 'WEFT_ERR_CONFIG');
      assert.equal(err.message, message);
      assert.equal(err.path, path);
      assert.deepEqual(err.value, value);
      return true;
    },
  );
}

describe('formatSubnetEnv', () => {
  it("writes flanneld's format byte for byte", () => {
    assert.equal(formatSubnetEnv(VALUES), FLANNEL_TEXT);
  });

  it('writes the first address of the lease with the lease length, and ipMasq true', () => {
    assert.equal(
      formatSubnetEnv({ network: cidr('10.5.0.0/24'), subnet: cidr('10.5.0.64/26'), mtu: 1450, ipMasq: true }),
      'FLANNEL_NETWORK=10.5.0.0/24\nFLANNEL_SUBNET=10.5.0.65/26\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('masks host bits in the prefixes it is given', () => {
    assert.equal(
      formatSubnetEnv({ ...VALUES, network: { network: 0x0a050101, length: 16 }, subnet: { network: 0x0a054807, length: 24 } }),
      FLANNEL_TEXT,
    );
  });

  it('refuses values no reader would accept', () => {
    assert.throws(() => formatSubnetEnv({ ...VALUES, mtu: 0 }), {
      name: 'RangeError',
      message: 'subnet.env MTU 0 is outside 68..65535',
    });
    assert.throws(() => formatSubnetEnv({ ...VALUES, mtu: 1472.5 }), {
      name: 'RangeError',
      message: 'subnet.env MTU 1472.5 is outside 68..65535',
    });
    assert.throws(() => formatSubnetEnv({ ...VALUES, subnet: cidr('10.5.72.1/32') }), {
      name: 'RangeError',
      message: 'subnet.env lease length /32 leaves no first address',
    });
  });
});

describe('parseSubnetEnv', () => {
  const P = '/run/flannel/subnet.env';

  it("reads flanneld's format", () => {
    assert.deepEqual(show(parseSubnetEnv(FLANNEL_TEXT, P)), {
      network: '10.5.0.0/16',
      subnet: '10.5.72.0/24',
      address: '10.5.72.1',
      mtu: 1472,
      ipMasq: false,
    });
  });

  it('tolerates comments, blank lines, export, quotes, CRLF, extra keys and key order', () => {
    const text = [
      '# written by flanneld',
      '',
      'FLANNEL_IPMASQ=true\r',
      'export FLANNEL_NETWORK="10.42.0.0/16"',
      "FLANNEL_SUBNET='10.42.3.9/24'",
      'FLANNEL_IPV6_NETWORK=2001:cafe:42::/56',
      'FLANNEL_IPV6_SUBNET=2001:cafe:42::1/64',
      '   FLANNEL_MTU = 1450   # the overlay MTU',
      '',
    ].join('\n');
    assert.deepEqual(show(parseSubnetEnv(text, P)), {
      network: '10.42.0.0/16',
      subnet: '10.42.3.0/24',
      address: '10.42.3.9',
      mtu: 1450,
      ipMasq: true,
    });
  });

  it("accepts Go's ParseBool spellings for FLANNEL_IPMASQ (the CNI plugin uses it)", () => {
    for (const [text, value] of [
      ['1', true],
      ['True', true],
      ['T', true],
      ['0', false],
      ['FALSE', false],
      ['f', false],
    ] as const) {
      const env = parseSubnetEnv(FLANNEL_TEXT.replace('FLANNEL_IPMASQ=false', `FLANNEL_IPMASQ=${text}`), P);
      assert.equal(env.ipMasq, value, text);
    }
  });

  it('returns frozen values', () => {
    const env = parseSubnetEnv(FLANNEL_TEXT, P);
    assert.ok(Object.isFrozen(env));
    assert.ok(Object.isFrozen(env.network));
    assert.ok(Object.isFrozen(env.subnet));
  });

  it('refuses missing keys', () => {
    for (const key of ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ']) {
      const text = FLANNEL_TEXT.split('\n')
        .filter((l) => !l.startsWith(`${key}=`))
        .join('\n');
      rejectsText(
        text,
        `${P}: ${key}`,
        undefined,
        `${P}: ${key} is missing: a subnet file needs FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ (delete the file and let weft write it again)`,
      );
    }
  });

  it('refuses lines that are not KEY=VALUE', () => {
    rejectsText(
      `${FLANNEL_TEXT}garbage here\n`,
      `${P}: line 5`,
      'garbage here',
      `${P}: line 5 "garbage here" is not KEY=VALUE`,
    );
    rejectsText('1FLANNEL=x\n', `${P}: line 1`, '1FLANNEL=x', `${P}: line 1 "1FLANNEL=x" is not KEY=VALUE`);
  });

  it('refuses malformed values', () => {
    const bad = (key: string, value: string): string =>
      FLANNEL_TEXT.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${value}`);
    for (const v of ['10.5.0.0', '10.5.0.0/33', 'abc', '']) {
      rejectsText(
        bad('FLANNEL_NETWORK', v),
        `${P}: FLANNEL_NETWORK`,
        v,
        `${P}: FLANNEL_NETWORK ${JSON.stringify(v)} is not an IPv4 CIDR such as 10.244.0.0/16`,
      );
    }
    rejectsText(
      bad('FLANNEL_NETWORK', '10.5.0.0/16,10.6.0.0/16'),
      `${P}: FLANNEL_NETWORK`,
      '10.5.0.0/16,10.6.0.0/16',
      `${P}: FLANNEL_NETWORK "10.5.0.0/16,10.6.0.0/16" lists several networks: weft supports exactly one`,
    );
    for (const v of ['10.5.72.1', '10.5.72.256/24', 'fc00::1/64']) {
      rejectsText(
        bad('FLANNEL_SUBNET', v),
        `${P}: FLANNEL_SUBNET`,
        v,
        `${P}: FLANNEL_SUBNET ${JSON.stringify(v)} is not an IPv4 address with a prefix length such as 10.244.3.1/24`,
      );
    }
    for (const v of ['abc', '67', '65536', '1e3', '-1', '1472.0', '']) {
      rejectsText(
        bad('FLANNEL_MTU', v),
        `${P}: FLANNEL_MTU`,
        v,
        `${P}: FLANNEL_MTU ${JSON.stringify(v)} is not allowed: it must be a whole number between 68 and 65535`,
      );
    }
    for (const v of ['yes', 'no', '']) {
      rejectsText(
        bad('FLANNEL_IPMASQ', v),
        `${P}: FLANNEL_IPMASQ`,
        v,
        `${P}: FLANNEL_IPMASQ ${JSON.stringify(v)} is not allowed: it must be true or false`,
      );
    }
  });
});

describe('subnet.env files', () => {
  let root = '';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-subnet-env-'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('round-trips through write and read, creating missing directories', async () => {
    const path = join(root, 'rt', 'run', 'flannel', 'subnet.env');
    await writeSubnetEnv(path, VALUES);
    assert.equal(await readFile(path, 'utf8'), FLANNEL_TEXT);
    const env = await readSubnetEnv(path);
    assert.ok(env !== undefined);
    assert.deepEqual(show(env), {
      network: '10.5.0.0/16',
      subnet: '10.5.72.0/24',
      address: '10.5.72.1',
      mtu: 1472,
      ipMasq: false,
    });
    assert.deepEqual(await readdir(join(root, 'rt', 'run', 'flannel')), ['subnet.env']);
    assert.equal((await stat(join(root, 'rt', 'run'))).isDirectory(), true);
  });

  it('writes mode 0644 whatever the umask', async () => {
    const path = join(root, 'mode', 'subnet.env');
    const old = process.umask(0o077);
    try {
      await writeSubnetEnv(path, VALUES);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(path)).mode & 0o777, 0o644);
  });

  it('replaces an existing file and leaves no temp file behind', async () => {
    const dir = join(root, 'replace');
    const path = join(dir, 'subnet.env');
    await mkdir(dir);
    await writeFile(path, 'FLANNEL_NETWORK=10.9.0.0/16\nOLD=1\n', { mode: 0o600 });
    const values: SubnetEnvValues = { ...VALUES, subnet: cidr('10.5.3.0/24'), ipMasq: true };
    await writeSubnetEnv(path, values);
    assert.equal(
      await readFile(path, 'utf8'),
      'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n',
    );
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    await writeSubnetEnv(path, VALUES);
    assert.equal(await readFile(path, 'utf8'), FLANNEL_TEXT);
    assert.deepEqual(await readdir(dir), ['subnet.env']);
  });

  it('removes its temp file when the rename fails, leaving the target alone', async () => {
    const dir = join(root, 'fail-rename');
    const path = join(dir, 'subnet.env');
    await mkdir(join(path, 'occupied'), { recursive: true }); // the target is a non-empty directory
    await assert.rejects(writeSubnetEnv(path, VALUES), (err: unknown) => {
      assert.ok(err instanceof SysError, `expected a SysError, got ${String(err)}`);
      assert.equal(err.syscall, 'rename');
      assert.ok(['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.errno), err.errno);
      assert.ok(err.message.startsWith(`cannot write the subnet file ${path}: rename failed with ${err.errno}`), err.message);
      assert.ok(err.message.endsWith('. check --subnet-file and the permissions of its directory'), err.message);
      return true;
    });
    assert.deepEqual(await readdir(dir), ['subnet.env']);
    assert.deepEqual(await readdir(path), ['occupied']);
  });

  it('fails cleanly when the parent is a file', async () => {
    const parent = join(root, 'not-a-dir');
    await writeFile(parent, 'x');
    await assert.rejects(writeSubnetEnv(join(parent, 'subnet.env'), VALUES), (err: unknown) => {
      assert.ok(err instanceof SysError, `expected a SysError, got ${String(err)}`);
      assert.ok(['ENOTDIR', 'EEXIST'].includes(err.errno), err.errno);
      return true;
    });
    assert.equal(await readFile(parent, 'utf8'), 'x');
  });

  it('does not write anything for values it refuses', async () => {
    const dir = join(root, 'refused');
    await assert.rejects(writeSubnetEnv(join(dir, 'subnet.env'), { ...VALUES, mtu: 10 }), { name: 'RangeError' });
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });

  it('reads a missing file (or directory) as undefined', async () => {
    assert.equal(await readSubnetEnv(join(root, 'missing.env')), undefined);
    assert.equal(await readSubnetEnv(join(root, 'no-such-dir', 'subnet.env')), undefined);
  });

  it('reports malformed files with the file path', async () => {
    const path = join(root, 'bad.env');
    await writeFile(path, FLANNEL_TEXT.replace('10.5.72.1/24', '10.5.72.1'));
    await assert.rejects(readSubnetEnv(path), {
      name: 'ConfigError',
      path: `${path}: FLANNEL_SUBNET`,
      message: `${path}: FLANNEL_SUBNET "10.5.72.1" is not an IPv4 address with a prefix length such as 10.244.3.1/24`,
    });
  });

  it('removes the file, and ignores a missing one', async () => {
    const path = join(root, 'remove', 'subnet.env');
    await writeSubnetEnv(path, VALUES);
    await removeSubnetEnv(path);
    assert.equal(await readSubnetEnv(path), undefined);
    await removeSubnetEnv(path);
    await removeSubnetEnv(join(root, 'no-such-dir', 'subnet.env'));
  });
});
