import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { HealthServer } from '../../src/agent/health-server';
import type { RouteView } from '../../src/backend/backend';
import { registerDataPlaneMetrics } from '../../src/backend/udp/udp-metrics';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4';
import { Counter, newCounterBlock } from '../../src/workers/counters';
import { NO_OFFLOADS } from '../../src/workers/forwarder';
import { parseMetrics } from '../e2e/helpers';

describe('health server: /healthz, /readyz, /metrics, /routes', () => {
  let server: HealthServer;
  let ready = false;
  const blocks = [newCounterBlock(), newCounterBlock()];
  const routes: RouteView[] = [];
  const registry = new Registry();
  registerDataPlaneMetrics(registry, { counterBlocks: () => blocks, workers: () => blocks.length, offloads: () => NO_OFFLOADS });
  const get = async (path: string): Promise<{ status: number; body: string; type: string | null }> => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
    return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
  };

  before(async () => {
    server = await HealthServer.listen('127.0.0.1', 0, { isReady: () => ready, registry, routes: () => routes });
  });
  after(async () => {
    await server.close();
  });

  it("/healthz answers 200 with flanneld's body while running, ready or not", async () => {
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'flanneld is running', type: 'text/plain' });
  });

  it("/readyz is 503 before the agent is ready and 200 after, with flanneld's bodies", async () => {
    assert.deepEqual(await get('/readyz'), { status: 503, body: 'flanneld is not ready yet', type: 'text/plain' });
    ready = true;
    assert.deepEqual(await get('/readyz'), { status: 200, body: 'flanneld is ready', type: 'text/plain' });
  });

  it('/metrics serves the registry: the workers\' counters summed, drops labelled by direction and reason', async () => {
    (blocks[0] as Float64Array)[Counter.UdpRxPackets] = 5;
    (blocks[1] as Float64Array)[Counter.UdpRxPackets] = 7;
    (blocks[1] as Float64Array)[Counter.DropBadChecksum] = 3;
    (blocks[0] as Float64Array)[Counter.DropTtlExpiredEncap] = 2;
    (blocks[1] as Float64Array)[Counter.DropTtlExpiredDecap] = 1;
    const r = await get('/metrics');
    assert.equal(r.status, 200);
    const m = parseMetrics(r.body);
    assert.equal(m.get('weft_udp_rx_packets_total'), 12);
    assert.equal(m.get('weft_dropped_packets_total{direction="decap",reason="bad_checksum"}'), 3);
    assert.equal(m.get('weft_dropped_packets_total{direction="encap",reason="ttl_expired"}'), 2);
    assert.equal(m.get('weft_dropped_packets_total{direction="decap",reason="ttl_expired"}'), 1);
  });

  it('/routes lists the backend\'s routes as JSON', async () => {
    routes.push({ subnet: parseCidr('10.244.2.0/24')?.prefix ?? { network: 0, length: 0 }, publicIp: parseIpv4('192.168.77.2') as number, via: 'udp', port: 8285 });
    routes.push({ subnet: parseCidr('10.244.3.0/24')?.prefix ?? { network: 0, length: 0 }, publicIp: parseIpv4('192.168.77.3') as number, via: 'vxlan' });
    const r = await get('/routes');
    assert.equal(r.type, 'application/json');
    assert.deepEqual(JSON.parse(r.body), [
      { subnet: '10.244.2.0/24', publicIp: '192.168.77.2', via: 'udp', port: 8285 },
      { subnet: '10.244.3.0/24', publicIp: '192.168.77.3', via: 'vxlan' },
    ]);
  });

  it('anything else is 404', async () => {
    assert.equal((await get('/nope')).status, 404);
  });
});
