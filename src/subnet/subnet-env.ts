/**
 * subnet.env (`--subnet-file`, default /run/flannel/subnet.env): what the
 * flannel CNI plugin and Docker (`--bip=${FLANNEL_SUBNET}`) read.
 *
 *   FLANNEL_NETWORK=10.5.0.0/16
 *   FLANNEL_SUBNET=10.5.72.1/24     <- the lease's first address + 1, lease prefix
 *   FLANNEL_MTU=1472
 *   FLANNEL_IPMASQ=false
 *
 * Written atomically (temp file in the same directory, fsync, rename). Read
 * back on start so that a node asks for the subnet it had before.
 */

import { readFile, unlink } from 'node:fs/promises';

import { ConfigError, toSysError } from '../errors';
import { writeFileAtomic } from '../sys/atomic-file';
import { formatIpv4, formatPrefix, parseCidr, prefixMask, type Ipv4Prefix } from '../net/ipv4';
import { MAX_MTU_BYTES, MIN_MTU_BYTES } from './net-config';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const SUBNET_FILE_MODE = 0o644;
export const SUBNET_DIR_MODE = 0o755;

export interface SubnetEnvValues {
  /** The whole overlay network (FLANNEL_NETWORK). */
  readonly network: Ipv4Prefix;
  /** This node's lease (FLANNEL_SUBNET is its first address + 1 with this length). */
  readonly subnet: Ipv4Prefix;
  /** FLANNEL_MTU: the overlay MTU (underlay MTU - encapsulation overhead). */
  readonly mtu: number;
  /** FLANNEL_IPMASQ: whether weft masquerades traffic leaving the overlay. */
  readonly ipMasq: boolean;
}

export interface SubnetEnv extends SubnetEnvValues {
  /** FLANNEL_SUBNET's address as written (normally subnet.network + 1). */
  readonly address: number;
}

const REQUIRED_KEYS = ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'] as const;

/** The file's text, byte for byte as flanneld writes it. RangeError on values no reader would accept. */
export function formatSubnetEnv(values: SubnetEnvValues): string {
  const { network, subnet, mtu, ipMasq } = values;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU_BYTES || mtu > MAX_MTU_BYTES) {
    throw new RangeError(`subnet.env MTU ${mtu} is outside ${MIN_MTU_BYTES}..${MAX_MTU_BYTES}`);
  }
  if (!Number.isInteger(subnet.length) || subnet.length < 1 || subnet.length > 31) {
    throw new RangeError(`subnet.env lease length /${subnet.length} leaves no first address`);
  }
  const first = (((subnet.network & prefixMask(subnet.length)) >>> 0) + 1) >>> 0;
  const net: Ipv4Prefix = { network: (network.network & prefixMask(network.length)) >>> 0, length: network.length };
  return (
    `FLANNEL_NETWORK=${formatPrefix(net)}\n` +
    `FLANNEL_SUBNET=${formatIpv4(first)}/${subnet.length}\n` +
    `FLANNEL_MTU=${mtu}\n` +
    `FLANNEL_IPMASQ=${ipMasq ? 'true' : 'false'}\n`
  );
}

/**
 * Writes the file atomically (src/sys/atomic-file.ts): creates the parent
 * directory (0755) if needed, mode 0644 whatever the umask. On failure the old
 * file, if any, is left as it was.
 */
export async function writeSubnetEnv(path: string, values: SubnetEnvValues): Promise<void> {
  const text = formatSubnetEnv(values);
  try {
    await writeFileAtomic(path, text, { mode: SUBNET_FILE_MODE, dirMode: SUBNET_DIR_MODE });
  } catch (err) {
    throw toSysError(err, `cannot write the subnet file ${path}`, 'check --subnet-file and the permissions of its directory');
  }
}

/** Reads and checks the file; undefined when it does not exist. */
export async function readSubnetEnv(path: string): Promise<SubnetEnv | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toSysError(err, `cannot read the subnet file ${path}`);
  }
  return parseSubnetEnv(text, path);
}

/** Removes the file; a missing file is not an error. */
export async function removeSubnetEnv(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw toSysError(err, `cannot remove the subnet file ${path}`);
  }
}

/**
 * Parses subnet.env text. Accepts what a dotenv reader (flanneld uses godotenv)
 * accepts in practice: blank lines, `#` comments, `export KEY=...`, quoted
 * values, trailing ` # comments`, and extra keys such as FLANNEL_IPV6_*
 * (ignored). The last of repeated keys wins. All four FLANNEL_* keys above are
 * required, as the CNI plugin requires them.
 */
export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const vars = new Map<string, string>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)$/.exec(line);
    if (m === null) {
      const where = `${path}: line ${n + 1}`;
      throw new ConfigError(where, line, `${where} ${JSON.stringify(line)} is not KEY=VALUE`);
    }
    vars.set(m[1]!, unquote(m[2]!.trim()));
  }

  for (const key of REQUIRED_KEYS) {
    if (!vars.has(key)) {
      const where = `${path}: ${key}`;
      throw new ConfigError(
        where,
        undefined,
        `${where} is missing: a subnet file needs ${REQUIRED_KEYS.join(', ')} ` +
          '(delete the file and let weft write it again)',
      );
    }
  }
  const get = (key: (typeof REQUIRED_KEYS)[number]): string => vars.get(key) as string;

  const networkText = get('FLANNEL_NETWORK');
  const networkPath = `${path}: FLANNEL_NETWORK`;
  if (networkText.includes(',')) {
    throw new ConfigError(
      networkPath,
      networkText,
      `${networkPath} ${JSON.stringify(networkText)} lists several networks: weft supports exactly one`,
    );
  }
  const network = parseCidr(networkText);
  if (network === undefined) {
    throw new ConfigError(
      networkPath,
      networkText,
      `${networkPath} ${JSON.stringify(networkText)} is not an IPv4 CIDR such as 10.244.0.0/16`,
    );
  }

  const subnetText = get('FLANNEL_SUBNET');
  const subnetPath = `${path}: FLANNEL_SUBNET`;
  const subnet = parseCidr(subnetText);
  if (subnet === undefined) {
    throw new ConfigError(
      subnetPath,
      subnetText,
      `${subnetPath} ${JSON.stringify(subnetText)} is not an IPv4 address with a prefix length such as 10.244.3.1/24`,
    );
  }

  const mtuText = get('FLANNEL_MTU');
  const mtuPath = `${path}: FLANNEL_MTU`;
  const mtu = /^\d{1,5}$/.test(mtuText) ? Number(mtuText) : NaN;
  if (!(mtu >= MIN_MTU_BYTES && mtu <= MAX_MTU_BYTES)) {
    throw new ConfigError(
      mtuPath,
      mtuText,
      `${mtuPath} ${JSON.stringify(mtuText)} is not allowed: it must be a whole number between ` +
        `${MIN_MTU_BYTES} and ${MAX_MTU_BYTES}`,
    );
  }

  const ipMasqText = get('FLANNEL_IPMASQ');
  const ipMasqPath = `${path}: FLANNEL_IPMASQ`;
  const ipMasq = parseGoBool(ipMasqText);
  if (ipMasq === undefined) {
    throw new ConfigError(
      ipMasqPath,
      ipMasqText,
      `${ipMasqPath} ${JSON.stringify(ipMasqText)} is not allowed: it must be true or false`,
    );
  }

  return Object.freeze({
    network: Object.freeze({ ...network.prefix }),
    subnet: Object.freeze({ ...subnet.prefix }),
    address: subnet.address,
    mtu,
    ipMasq,
  });
}

/** `"x"` / `'x'` -> x; otherwise drops a trailing ` # comment`. */
function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.length >= 2) {
    const end = value.indexOf(q, 1);
    if (end > 0) return value.slice(1, end);
  }
  return value.replace(/\s+#.*$/, '');
}

/** Go's strconv.ParseBool, which the flannel CNI plugin uses for FLANNEL_IPMASQ. */
function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}
