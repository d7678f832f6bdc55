/**
 * flanneld's health endpoints on --healthz-ip:--healthz-port, plus metrics:
 *   /healthz  200 "flanneld is running" from the moment the agent starts, also while it waits for its store
 *   /readyz   200 "flanneld is ready" once routes, rules and subnet.env are in place, 503 "flanneld is not ready yet" before
 *   /metrics  Prometheus text: whatever the agent and its backend registered (prom-client)
 *   /routes   JSON: the peers as the backend routes them [{subnet, publicIp, via, port?}]
 * The bodies are flanneld's, so probes written for flanneld keep working.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { RouteView } from '../backend/backend';
import { toSysError } from '../errors';
import { formatIpv4, formatPrefix } from '../net/ipv4';

export const HEALTHZ_BODY = 'flanneld is running';
export const READY_BODY = 'flanneld is ready';
export const NOT_READY_BODY = 'flanneld is not ready yet';

export interface HealthSource {
  isReady(): boolean;
  /** The agent's metrics registry (the backend adds its series once it runs). */
  readonly registry: Registry;
  /** The routes the backend has in place now. */
  routes(): readonly RouteView[];
}

export class HealthServer {
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
  }

  static async listen(host: string, port: number, source: HealthSource): Promise<HealthServer> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(HEALTHZ_BODY);
      } else if (path === '/readyz') {
        const ready = source.isReady();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? READY_BODY : NOT_READY_BODY);
      } else if (path === '/metrics') {
        source.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': source.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(`${err.message}\n`),
        );
      } else if (path === '/routes') {
        const body = source.routes().map((r) => ({
          subnet: formatPrefix(r.subnet), publicIp: formatIpv4(r.publicIp), via: r.via, ...(r.port === undefined ? {} : { port: r.port }),
        }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(toSysError(err, `cannot serve health checks on ${host}:${port}`,
        'choose another --healthz-port or --healthz-ip')));
      server.listen(port, host, () => resolve());
    });
    return new HealthServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
