/**
 * The overlay's TUN device (`flannel.0` by default; flannel itself uses
 * `flannel0`): created non-persistent, so the kernel removes it — with its
 * address and routes — when weft's descriptors close, even after a crash.
 *
 * Set-up, as flannel's udp backend does it:
 *   address  = this host's lease network address as /32 (no broadcast routes)
 *   MTU      = underlay MTU - 28
 *   link up, route for the whole cluster network via the device.
 * Plus, unlike flannel: accept_local=1 on the device so ICMP errors that weft
 * writes with the device's own address as source reach local pods, and IPv6
 * off on the device so the kernel does not feed it router solicitations.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { validateInterfaceName } from '../net/interfaces';
import { ConfigError, toSysError } from '../errors';
import type { NativeBinding } from '../native';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import { ip } from '../sys/exec';

export interface TunDeviceOptions {
  readonly name: string;
  /** The device's address (used as a /32). */
  readonly address: number;
  readonly mtu: number;
  /** Cluster network routed via the device. */
  readonly network: Ipv4Prefix;
  /** Queues (one fd each); > 1 needs IFF_MULTI_QUEUE. */
  readonly queues: number;
  /** Open with a virtio-net header (needed for offloads). */
  readonly vnetHdr: boolean;
  /** Packets the kernel may queue for weft to read before it drops (default 500). */
  readonly txQueueLen?: number;
}

export function validateTunName(name: string, flag = '--tun-name'): void {
  validateInterfaceName(name, flag);
}

export class TunDevice {
  readonly name: string;
  readonly fds: readonly number[];
  readonly options: TunDeviceOptions;
  private readonly native: NativeBinding;
  private closed = false;

  private constructor(native: NativeBinding, options: TunDeviceOptions, name: string, fds: number[]) {
    this.native = native;
    this.options = options;
    this.name = name;
    this.fds = fds;
  }

  /** Creates and configures the device. On any failure nothing is left behind. */
  static async create(native: NativeBinding, options: TunDeviceOptions): Promise<TunDevice> {
    validateTunName(options.name);
    if (existsSync(`/sys/class/net/${options.name}`)) {
      throw new ConfigError('--tun-name', options.name,
        `a network device named ${options.name} already exists on this host; ` +
        'stop whatever created it (another weft or flanneld?) or choose another --tun-name');
    }
    const flags = (options.vnetHdr ? native.TUN_VNET_HDR : 0) | (options.queues > 1 ? native.TUN_MULTI_QUEUE : 0);
    const fds: number[] = [];
    let name = options.name;
    try {
      for (let q = 0; q < options.queues; q++) {
        const handle = native.tunOpen(name, flags);
        fds.push(handle.fd);
        name = handle.name;
      }
    } catch (err) {
      for (const fd of fds) native.closeFd(fd);
      throw toSysError(err, `cannot create TUN device ${options.name}`,
        'weft needs root (CAP_NET_ADMIN) and /dev/net/tun (modprobe tun)');
    }
    const device = new TunDevice(native, options, name, fds);
    try {
      await device.configure();
    } catch (err) {
      device.close();
      throw err;
    }
    return device;
  }

  private async configure(): Promise<void> {
    const { name, address, mtu, network } = this.options;
    await writeSysctl(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1', true);
    await writeSysctl(`/proc/sys/net/ipv4/conf/${name}/accept_local`, '1', false);
    await ip(['addr', 'add', `${formatIpv4(address)}/32`, 'dev', name]);
    // with offloads, cap TSO bursts at the segments one split handles (the TUN allows 65535;
    // a small MSS would otherwise make super-packets weft must drop)
    const gso = this.options.vnetHdr ? ['gso_max_segs', String(this.native.GSO_MAX_SEGS)] : [];
    const queue = this.options.txQueueLen === undefined ? [] : ['txqueuelen', String(this.options.txQueueLen)];
    await ip(['link', 'set', 'dev', name, 'mtu', String(mtu), ...queue, ...gso, 'up']);
    await ip(['route', 'add', formatPrefix(network), 'dev', name], {
      hint: `is ${formatPrefix(network)} already routed on this host (another overlay)? \`ip route show ${formatPrefix(network)}\` tells`,
    });
  }

  /**
   * Asks the kernel for offloads (TUNSETOFFLOAD TUN_F_*): with them, reads may
   * be TSO super-packets and writes may be GSO packets. Throws SysError
   * (EINVAL when the kernel lacks a flag).
   */
  setOffload(flags: number): void {
    try {
      this.native.tunSetOffload(this.fds[0] as number, flags);
    } catch (err) {
      throw toSysError(err, `cannot set offloads 0x${flags.toString(16)} on ${this.name}`);
    }
  }

  /**
   * Closes every queue. The kernel then deletes the device together with its
   * address and routes. Safe to call twice.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds) {
      try {
        this.native.closeFd(fd);
      } catch {
        // already closed: nothing left to release
      }
    }
  }
}

async function writeSysctl(path: string, value: string, optional: boolean): Promise<void> {
  try {
    await writeFile(path, value);
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw toSysError(err, `cannot set ${path}`);
  }
}
