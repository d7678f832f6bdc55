/**
 * The two lease stores as the end-to-end tests see them: a real etcd
 * (Debian's etcd-server, in the lab's switch namespace) and the embedded
 * file store, each with the network configuration the test gives.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { EtcdServer } from '../../src/lab/etcd-server';
import type { Lab } from '../../src/lab/lab';
import { parseCidr, type Ipv4Prefix } from '../../src/net/ipv4';
import { FileLeaseStore } from '../../src/subnet/file-store';
import { decodeLeaseAttrs } from '../../src/subnet/lease';

export const ETCD_PREFIX = '/coreos.com/network';

export function prefixOf(text: string): Ipv4Prefix {
  const c = parseCidr(text);
  assert.ok(c !== undefined, text);
  return c.prefix;
}

/** What differs between the two stores, seen from the tests. */
export interface StoreFixture {
  readonly kind: 'etcd' | 'file';
  /** Arguments that point an agent at the store and the network configuration. */
  agentArgs(): string[];
  /** subnet key -> value, as an operator would list them. */
  leases(): Promise<Map<string, string>>;
  /** Writes a lease as an operator or flanneld would (no TTL: a reservation). */
  putByHand(subnetKey: string, value: string): Promise<void>;
  deleteByHand(subnetKey: string): Promise<void>;
  close(): Promise<void>;
}


export async function etcdFixture(lab: Lab, netConf: object): Promise<StoreFixture> {
  const host = await lab.addUnderlayServiceAddress();
  const server = await EtcdServer.start({ host, commandPrefix: ['ip', 'netns', 'exec', lab.underlayNs as string] });
  await server.etcdctl(['put', `${ETCD_PREFIX}/config`, JSON.stringify(netConf)]);
  return {
    kind: 'etcd',
    // the file does not exist: the configuration must come from <prefix>/config
    agentArgs: () => ['--etcd-endpoints', server.endpoint, '--net-config-path', path.join(lab.dir, 'absent-net-conf.json')],
    async leases() {
      const out = await server.etcdctl(['get', '--prefix', `${ETCD_PREFIX}/subnets/`]);
      const lines = out.split('\n').filter((l) => l !== '');
      const map = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) map.set((lines[i] as string).slice(`${ETCD_PREFIX}/subnets/`.length), lines[i + 1] as string);
      return map;
    },
    async putByHand(key, value) {
      await server.etcdctl(['put', `${ETCD_PREFIX}/subnets/${key}`, value]);
    },
    async deleteByHand(key) {
      await server.etcdctl(['del', `${ETCD_PREFIX}/subnets/${key}`]);
    },
    close: () => server.stop(),
  };
}

export async function fileFixture(lab: Lab, netConf: object): Promise<StoreFixture> {
  const leaseFile = path.join(lab.dir, 'leases.json');
  const confFile = path.join(lab.dir, 'net-conf.json');
  writeFileSync(confFile, JSON.stringify(netConf));
  const store = await FileLeaseStore.open({ path: leaseFile });
  return {
    kind: 'file',
    agentArgs: () => ['--lease-file', leaseFile, '--net-config-path', confFile],
    async leases() {
      // expired entries stay in the file until the next write; the store treats them as absent
      const file = JSON.parse(readFileSync(leaseFile, 'utf8')) as { leases: Record<string, { value: string; expires: number | null }> };
      const now = Date.now();
      return new Map(Object.entries(file.leases).filter(([, v]) => v.expires === null || v.expires > now).map(([k, v]) => [k, v.value]));
    },
    async putByHand(key, value) {
      // the store's own API is how an operator writes this file safely (it takes the lock)
      const subnet = prefixOf(key.replace('-', '/'));
      const created = await store.create(subnet, decodeLeaseAttrs(value, key), 3600);
      assert.ok(created !== undefined);
    },
    async deleteByHand(key) {
      await store.delete(prefixOf(key.replace('-', '/')));
    },
    close: () => store.close(),
  };
}

