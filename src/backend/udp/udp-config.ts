/**
 * net-conf.json's `Backend` for Type "udp": `Port` (default 8285), the UDP
 * port every host listens on and sends from. Unknown fields are ignored, as
 * flanneld ignores them.
 */
import { ConfigError } from '../../errors';
import { ConfigFields } from '../../subnet/config-fields';
import { MAX_PORT } from '../../subnet/net-config';

export const DEFAULT_UDP_PORT = 8285;

export interface UdpBackendConfig {
  /** UDP port every node listens on and sends from. */
  readonly port: number;
}

export function parseUdpConfig(backend: Readonly<Record<string, unknown>>, source: string): UdpBackendConfig {
  const fields = new ConfigFields(backend, `${source}: Backend.`);
  const port = fields.integer('Port') ?? DEFAULT_UDP_PORT;
  if (port < 1 || port > MAX_PORT) {
    const path = fields.path('Port');
    throw new ConfigError(path, port, `${path} ${port} is not allowed: it must be between 1 and ${MAX_PORT} (default ${DEFAULT_UDP_PORT})`);
  }
  return Object.freeze({ port });
}
