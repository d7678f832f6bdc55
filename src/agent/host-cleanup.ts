/**
 * `weft cleanup`: removes everything weft ever created on this host, for
 * uninstalling and for tests: every route with weft's routing protocol number
 * (peer routes of the kernel backends, the blackhole route), the devices the
 * host ledger lists (vxlan `flannel.<VNI>`, whose neighbour and FDB entries go
 * with it), the iptables rules/chains and nftables tables weft added, the
 * files it wrote (subnet.env), and finally the ledger itself. Nothing weft
 * did not create is touched: a rule or device a flanneld left stays.
 *
 * Run it after stopping the agent (a running agent would put things back).
 */
import { HostLedger } from '../host/ledger';
import { WEFT_ROUTE_PROTO, linkDetails, listWeftRoutes } from '../host/kernel-state';
import type { Logger } from '../log';
import { formatPrefix } from '../net/ipv4';
import { rm } from 'node:fs/promises';
import { ip } from '../sys/exec';
import { removeTrafficRules } from '../traffic/traffic-rules';

export interface CleanupReport {
  readonly routes: number;
  readonly links: readonly string[];
  readonly files: readonly string[];
}

export async function cleanupHost(stateDir: string, log: Logger): Promise<CleanupReport> {
  const ledger = await HostLedger.open(stateDir);
  const unlock = await ledger.lock(); // refuses while an agent holds the state directory
  try {
    return await cleanup(ledger, log);
  } finally {
    await unlock();
  }
}

async function cleanup(ledger: HostLedger, log: Logger): Promise<CleanupReport> {
  const routes = await listWeftRoutes();
  if (routes.length > 0) {
    await ip(['-4', 'route', 'flush', 'table', 'main', 'proto', String(WEFT_ROUTE_PROTO)]);
    log.info({ routes: routes.map((r) => `${r.type === 'unicast' ? '' : `${r.type} `}${formatPrefix(r.dst)}`) }, 'removed weft\'s routes');
  }
  const links: string[] = [];
  for (const link of ledger.list('link')) {
    const details = await linkDetails(link.name);
    if (details !== undefined && details.kind === link.linkKind) {
      await ip(['link', 'del', link.name]);
      links.push(link.name);
      log.info({ device: link.name }, 'removed device');
    } else if (details !== undefined) {
      log.warn({ device: link.name, kind: details.kind }, 'a device of that name exists but is not the one weft created; left alone');
    }
    await ledger.forget(link);
  }
  await removeTrafficRules(ledger, log);
  const files: string[] = [];
  for (const file of ledger.list('file')) {
    await rm(file.path, { force: true });
    files.push(file.path);
    await ledger.forget(file);
  }
  await ledger.erase();
  return { routes: routes.length, links, files };
}
