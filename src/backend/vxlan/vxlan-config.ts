/**
 * net-conf.json's `Backend` for Type "vxlan", flannel's fields and defaults
 * (pkg/backend/vxlan/vxlan.go): `VNI` (1), `Port` (0: the kernel's 8472),
 * `GBP`, `Learning`, `DirectRouting` (all false), `MTU` (0: the underlay
 * interface's MTU; the device and pods get MTU - 50). Go's zero values mean
 * "not given"; unknown fields are ignored.
 */
import { ConfigError } from '../../errors';
import { ConfigFields } from '../../subnet/config-fields';
import { MAX_MTU_BYTES, MAX_PORT, MIN_MTU_BYTES } from '../../subnet/net-config';

/** The Linux kernel's default VXLAN port (flannel passes 0 and lets the kernel choose it). */
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_VXLAN_VNI = 1;
/** VNIs are 24-bit. */
export const MAX_VXLAN_VNI = 0xffffff;
/** Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. */
export const VXLAN_OVERHEAD_BYTES = 50;

export interface VxlanBackendConfig {
  /** 0..16777215. The device is named `flannel.<vni>`. */
  readonly vni: number;
  /** UDP destination port of the device. */
  readonly port: number;
  readonly gbp: boolean;
  /** Learn remote VTEPs from received packets (flannel's default: off, the agent programs FDB entries). */
  readonly learning: boolean;
  /** Peers on this host's L2 segment get a plain route via their public IP instead of vxlan. */
  readonly directRouting: boolean;
  /** MTU the overlay is built from; undefined means "the underlay interface's MTU". */
  readonly mtu: number | undefined;
}

export function parseVxlanConfig(backend: Readonly<Record<string, unknown>>, source: string): VxlanBackendConfig {
  const fields = new ConfigFields(backend, `${source}: Backend.`);
  const vni = fields.integer('VNI') ?? DEFAULT_VXLAN_VNI;
  const port = fields.integer('Port') ?? 0;
  const mtu = fields.integer('MTU') ?? 0;
  const gbp = fields.boolean('GBP') ?? false;
  const learning = fields.boolean('Learning') ?? false;
  const directRouting = fields.boolean('DirectRouting') ?? false;
  if (vni < 0 || vni > MAX_VXLAN_VNI) {
    const path = fields.path('VNI');
    throw new ConfigError(path, vni,
      `${path} ${vni} is not allowed: it must be between 0 and ${MAX_VXLAN_VNI} (24 bits; default ${DEFAULT_VXLAN_VNI})`);
  }
  if (port < 0 || port > MAX_PORT) {
    const path = fields.path('Port');
    throw new ConfigError(path, port,
      `${path} ${port} is not allowed: it must be between 1 and ${MAX_PORT} (0 or omitted means the kernel default ${DEFAULT_VXLAN_PORT})`);
  }
  if (mtu !== 0 && (mtu < MIN_MTU_BYTES + VXLAN_OVERHEAD_BYTES || mtu > MAX_MTU_BYTES)) {
    const path = fields.path('MTU');
    throw new ConfigError(path, mtu,
      `${path} ${mtu} is not allowed: it must be between ${MIN_MTU_BYTES + VXLAN_OVERHEAD_BYTES} and ${MAX_MTU_BYTES} ` +
      `(the device gets MTU - ${VXLAN_OVERHEAD_BYTES}; 0 or omitted means the underlay interface's MTU)`);
  }
  return Object.freeze({
    vni,
    port: port === 0 ? DEFAULT_VXLAN_PORT : port,
    gbp,
    learning,
    directRouting,
    mtu: mtu === 0 ? undefined : mtu,
  });
}
