/**
 * net-conf.json's `Backend` for Type "udp": `Port` (default 8285), the UDP
 * port every host listens on and sends from, and weft's `FastPath` ("bpf" or
 * "off", the default; the --fast-path flag wins). Unknown fields are ignored, as
 * flanneld ignores them.
 */
import { ConfigError } from '../../errors';
import { ConfigFields } from '../../subnet/config-fields';
import { MAX_PORT } from '../../subnet/net-config';
import { FAST_PATH_MODES, type FastPathMode } from './udp-options';

export const DEFAULT_UDP_PORT = 8285;

export interface UdpBackendConfig {
  /** UDP port every node listens on and sends from. */
  readonly port: number;
  /** `FastPath` (weft's own): "bpf" or "off"; --fast-path wins. Undefined when absent. */
  readonly fastPath?: FastPathMode;
}

export function parseUdpConfig(backend: Readonly<Record<string, unknown>>, source: string): UdpBackendConfig {
  const fields = new ConfigFields(backend, `${source}: Backend.`);
  const port = fields.integer('Port') ?? DEFAULT_UDP_PORT;
  if (port < 1 || port > MAX_PORT) {
    const path = fields.path('Port');
    throw new ConfigError(path, port, `${path} ${port} is not allowed: it must be between 1 and ${MAX_PORT} (default ${DEFAULT_UDP_PORT})`);
  }
  const fastPath = fields.string('FastPath', '"bpf"');
  if (fastPath !== undefined && !(FAST_PATH_MODES as readonly string[]).includes(fastPath)) {
    const path = fields.path('FastPath');
    throw new ConfigError(path, fastPath, `${path} "${fastPath}" is not a fast path weft knows: use ${FAST_PATH_MODES.map((m) => `"${m}"`).join(' or ')}`);
  }
  return Object.freeze({ port, ...(fastPath === undefined ? {} : { fastPath: fastPath as FastPathMode }) });
}
