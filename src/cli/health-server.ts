/**
 * flanneld's health endpoints on --healthz-ip:--healthz-port, plus metrics:
 *   /healthz  200 while the agent runs
 *   /readyz   200 once routes are in place and subnet.env is written, 503 before
 *   /metrics  Prometheus text: the data plane's counters (prom-client)
 *   /routes   JSON: the peer routes in the data plane [{subnet, publicIp, port}]
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter as PromCounter, Gauge, Registry } from 'prom-client';
import type { PeerLease } from '../backend/backend';
import { toSysError } from '../errors';
import { formatIpv4, formatPrefix } from '../net/ipv4';
import { COUNTER_COUNT, COUNTER_INFO, type CounterInfo } from '../workers/counters';

export interface HealthSource {
  isReady(): boolean;
  /** Each worker's counter block. */
  counterBlocks(): readonly Float64Array[];
  /** The routes in the data plane now. */
  routes(): readonly PeerLease[];
}

export function buildRegistry(source: HealthSource): Registry {
  const registry = new Registry();
  const byMetric = new Map<string, { help: string; indexes: number[]; labelNames: Set<string> }>();
  for (let i = 0; i < COUNTER_COUNT; i++) {
    const info = COUNTER_INFO[i] as CounterInfo;
    const entry = byMetric.get(info.metric) ?? { help: info.help, indexes: [], labelNames: new Set<string>() };
    entry.indexes.push(i);
    for (const k of Object.keys(info.labels ?? {})) entry.labelNames.add(k);
    byMetric.set(info.metric, entry);
  }
  for (const [name, entry] of byMetric) {
    const metric: PromCounter<string> = new PromCounter({
      name,
      help: entry.help,
      labelNames: [...entry.labelNames],
      registers: [registry],
      collect() {
        metric.reset();
        const blocks = source.counterBlocks();
        for (const i of entry.indexes) {
          let total = 0;
          for (const b of blocks) total += b[i] as number;
          metric.inc({ ...(COUNTER_INFO[i] as CounterInfo).labels }, total);
        }
      },
    });
  }
  const routes: Gauge<string> = new Gauge({
    name: 'weft_routes',
    help: 'Peer routes installed in the data plane',
    registers: [registry],
    collect() {
      routes.set(source.routes().length);
    },
  });
  return registry;
}

export class HealthServer {
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
  }

  static async listen(host: string, port: number, source: HealthSource): Promise<HealthServer> {
    const registry = buildRegistry(source);
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = source.isReady();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
      } else if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(`${err.message}\n`),
        );
      } else if (path === '/routes') {
        const body = source.routes().map((r) => ({ subnet: formatPrefix(r.subnet), publicIp: formatIpv4(r.publicIp), port: r.port }));
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
