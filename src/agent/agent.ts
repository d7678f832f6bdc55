/**
 * `weft agent`: one host of the overlay, flanneld's life cycle.
 *
 *  1. open the subnet manager (etcd, the embedded store, or static peers) and,
 *     with --healthz-port, serve /healthz at once;
 *  2. wait, retrying every second, until the store answers and the network
 *     configuration exists (flanneld waits too); /readyz says not ready;
 *  3. check everything the operator wrote: the backend's fields, the manager's
 *     own settings, the underlay interface — nothing on the host has changed yet;
 *  4. the backend prepares (vxlan: its device, whose MAC the lease publishes),
 *     the lease is acquired with the backend's attributes, the backend starts;
 *  5. masquerade/forward rules, then routes follow the other hosts' leases;
 *  6. subnet.env last (the CNI plugin acts on it), then ready: /readyz 200 and
 *     READY=1 to the service manager.
 *
 * `weft status` is answered on --status-socket from step 1 on: while start-up
 * waits it shows what is known so far.
 *
 * Every resource is registered as it is created; one shutdown path (signal,
 * lost lease, data-plane failure, start-up error) releases them in reverse.
 * A stop leaves what carries traffic in place (the kernel backends' devices
 * and routes, the iptables rules: pods keep talking while the agent restarts);
 * the udp backend's TUN goes with the process. `weft cleanup` removes it all.
 *
 * The agent never asks which backend or which lease store it runs.
 */
import { readFile } from 'node:fs/promises';
import { Counter, Gauge, Registry } from 'prom-client';
import { weftVersion } from '../build-info';
import type { Backend } from '../backend/backend';
import { chooseBackend } from '../backend/registry';
import type { UdpAgentOptions } from '../backend/udp/udp-options';
import { ConfigError, LeaseError, LeaseLostError } from '../errors';
import { HostLedger } from '../host/ledger';
import type { Logger } from '../log';
import { resolveUnderlay } from '../net/interfaces';
import { formatIpv4, formatPrefix } from '../net/ipv4';
import type { NetConfig } from '../subnet/net-config';
import { openSubnetManager, type SubnetManagerOptions } from '../subnet/open-subnet-manager';
import { readSubnetEnv, writeSubnetEnv } from '../subnet/subnet-env';
import type { SubnetManager } from '../subnet/subnet-manager';
import { createTrafficRules } from '../traffic/traffic-rules';
import { BlackholeRoute } from './blackhole-route';
import { DropLog } from './drop-log';
import { HealthServer } from './health-server';
import { PeerFeed, type IgnoredReason } from './peer-feed';
import { ServiceNotifier } from './service-notify';
import { StatusReport } from './status-report';
import { StatusServer } from './status-server';

export interface AgentOptions extends SubnetManagerOptions {
  readonly iface: readonly string[];
  readonly ifaceRegex: readonly string[];
  readonly ifaceCanReach?: string | undefined;
  readonly publicIp?: string | undefined;
  /** Where the host ledger (what weft created on this host) lives. */
  readonly stateDir: string;
  readonly ipMasq: boolean;
  readonly ipMasqRandomFullyDisable: boolean;
  readonly iptablesResyncSeconds: number;
  readonly iptablesForwardRules: boolean;
  readonly ipBlackholeRoute: boolean;
  readonly healthzIp: string;
  readonly healthzPort: number;
  /** Unix socket `weft status` talks to (root only, 0600); '' = none. */
  readonly statusSocket: string;
  /** The udp backend's data-plane flags (the other backends ignore them). */
  readonly udp: UdpAgentOptions;
  /** How often the kernel backends re-check their kernel objects (flanneld's host-gw: 10 s). */
  readonly kernelResyncSeconds: number;
  /** Pause between attempts while waiting for the store and the configuration (flanneld: 1 s). */
  readonly startRetryMs?: number;
}

/** Exit codes: 0 clean stop (a signal, or this host's lease revoked), 1 failure at run time, 2 bad configuration. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const START_RETRY_MS = 1000;

/** Thrown at a start-up checkpoint after a stop was asked for; never leaves runAgent. */
class StartAborted extends Error {}

/** Runs the agent until a signal or a fatal error; resolves with the exit code. */
export async function runAgent(opts: AgentOptions, log: Logger): Promise<number> {
  const cleanups: Array<{ what: string; run: () => Promise<void> | void }> = [];
  const onCleanup = (what: string, run: () => Promise<void> | void): void => {
    cleanups.push({ what, run });
  };
  const notifier = new ServiceNotifier(log);
  let ready = false;
  let started = false;
  /** Start-up has ended (ready, failed or aborted): from then on a stop drains at once. */
  let startupOver = false;
  let stopRequest: { readonly reason: string; readonly code: number } | undefined;
  let finishing: Promise<number> | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  let wake: () => void = () => undefined;

  /** Runs every registered clean-up, newest first, including ones registered while it runs. */
  const drain = async (): Promise<void> => {
    for (let c = cleanups.pop(); c !== undefined; c = cleanups.pop()) {
      try {
        await c.run();
      } catch (err) {
        log.error({ err: (err as Error).message, what: c.what }, 'clean-up step failed');
      }
    }
  };
  /** The one way out: undo what was set up, newest first, then resolve the exit code. */
  const finish = (reason: string, code: number): Promise<number> => {
    if (finishing !== undefined) return finishing;
    finishing = (async () => {
      // a start-up failure is reported once, by the caller; a stop asked for during start-up is said here
      if (started) (code === EXIT_OK ? log.info.bind(log) : log.error.bind(log))({ reason }, 'stopping');
      else if (code === EXIT_OK) log.info({ reason }, 'stopping during start-up');
      else log.debug({ reason }, 'start-up failed; undoing what was done');
      ready = false;
      notifier.stopping();
      await drain();
      if (started) log.info({ reason }, 'stopped');
      resolveExit(code);
      return code;
    })();
    return finishing;
  };
  /**
   * Asks the agent to stop. While start-up runs, nothing is undone under its
   * feet: the request is noted, a pause is cut short, and start-up gives up at
   * its next checkpoint and finishes then.
   */
  const shutdown = (reason: string, code: number): Promise<number> => {
    stopRequest ??= { reason, code };
    wake();
    return startupOver ? finish(stopRequest.reason, stopRequest.code) : exited;
  };
  const onSignal = (sig: NodeJS.Signals): void => void shutdown(`received ${sig}`, EXIT_OK);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  onCleanup('signal handlers', () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });

  /** Start-up stops at the next checkpoint once a stop was asked for (signal, lost lease, failure). */
  const checkpoint = (): void => {
    if (stopRequest !== undefined) throw new StartAborted();
  };
  /** Sleeps, but wakes at once when a stop is asked for. */
  const pause = (ms: number): Promise<void> => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });

  const registry = new Registry();
  const startedAt = new Date();
  let backend: Backend | undefined;
  let network: NetConfig['network'] | undefined;
  try {
    // --- the lease store (or static peers) and the health server, before anything can wait
    const ledger = await HostLedger.open(opts.stateDir);
    const unlock = await ledger.lock();
    onCleanup('state directory lock', unlock);
    const manager = await openSubnetManager(opts, log);
    onCleanup('subnet manager', () => manager.close());
    registerAgentMetrics(registry, () => ready, () => backend?.routes().length ?? 0, manager);
    if (opts.healthzPort > 0) {
      const health = await HealthServer.listen(opts.healthzIp, opts.healthzPort, {
        isReady: () => ready,
        registry,
        routes: () => backend?.routes() ?? [],
      });
      onCleanup('health server', () => health.close());
      log.info({ address: `${opts.healthzIp}:${health.port}` }, 'serving /healthz, /readyz, /metrics and /routes');
    }
    if (opts.statusSocket !== '') {
      const report = new StatusReport({
        version: weftVersion(), startedAt, manager, isReady: () => ready, network: () => network, backend: () => backend,
      });
      onCleanup('status report', () => report.close());
      const status = await StatusServer.listen(opts.statusSocket, report);
      onCleanup('status socket', () => status.close());
      log.info({ socket: status.path }, 'serving `weft status`');
    }
    checkpoint();

    // --- wait for the store and the network configuration, as flanneld does
    const retry: StartRetry = { every: opts.startRetryMs ?? START_RETRY_MS, log, notifier, pause, checkpoint, store: manager.description };
    const config = await waitForNetworkConfig(manager, retry);
    network = config.network;

    // --- check everything before the host is touched
    const chosen = chooseBackend(config.backend);
    const underlay = await resolveUnderlay({
      iface: opts.iface, ifaceRegex: opts.ifaceRegex, ifaceCanReach: opts.ifaceCanReach, publicIp: opts.publicIp, log,
    });
    backend = chosen.create({ network: config.network, underlay, ledger, log, udp: opts.udp, kernelResyncSeconds: opts.kernelResyncSeconds });
    await manager.checkConfig(config, backend);
    log.info({
      backend: chosen.type, store: manager.description, network: formatPrefix(config.network),
      iface: underlay.name, publicIp: formatIpv4(underlay.publicIp), mtu: backend.mtu,
    }, 'starting weft agent');
    await warnIfForwardingOff(log);
    checkpoint();

    // --- the backend and this host's lease
    const running: Backend = backend;
    onCleanup('backend', () => running.stop('keep'));
    running.onFatal = (err) => {
      log.error({ err }, 'data plane failed');
      void shutdown('data plane failure', EXIT_FAILURE);
    };
    const attrs = await running.prepare();
    checkpoint();
    const lease = await untilTheStoreAnswers('acquiring this host\'s lease', () => manager.acquireLease(config, attrs), retry);
    // renewed from now on, whatever start-up still waits for (a short TTL could run out before the watch opens)
    const lostLease = (reason: string): void => void shutdown(reason, EXIT_OK);
    const keeper = manager.keepLease(lease, attrs, lostLease);
    onCleanup('lease renewal', () => keeper.stop());
    checkpoint();
    await running.start(lease);
    running.registerMetrics(registry);
    const drops = new DropLog(log, () => running.dataPlane()?.drops ?? null);
    drops.start();
    onCleanup('drop log', () => drops.stop());
    checkpoint();

    // --- masquerade and forward rules (they stay on stop, as flanneld's do)
    if (opts.ipMasq || opts.iptablesForwardRules) {
      const previous = await readSubnetEnv(opts.subnetFile).catch(() => undefined);
      const rules = createTrafficRules(config.enableNFTables, {
        ipMasq: opts.ipMasq,
        forwardRules: opts.iptablesForwardRules,
        network: config.network,
        lease: lease.subnet,
        resyncSeconds: opts.iptablesResyncSeconds,
        randomFullyDisable: opts.ipMasqRandomFullyDisable,
        previous: previous === undefined ? undefined : { network: previous.network, lease: previous.subnet },
        ledger,
        log,
      });
      onCleanup('traffic rules', () => rules.stop());
      await rules.start();
      checkpoint();
    }
    if (opts.ipBlackholeRoute) {
      const blackhole = new BlackholeRoute(lease.subnet, opts.iptablesResyncSeconds, log);
      onCleanup('blackhole route', () => blackhole.stop());
      await blackhole.start();
    }

    // --- routes follow the other hosts' leases; this host's lease is kept alive
    const feed = new PeerFeed(running, {
      own: lease.subnet,
      network: config.network,
      ...(manager.leasesHaveSubnetLen ? { subnetLen: config.subnetLen } : {}),
      log,
    });
    registerIgnoredLeases(registry, feed, () => manager.unreadableLeaseValues());
    const watch = await untilTheStoreAnswers('reading the other hosts\' leases',
      () => manager.watchLeases(lease, { sink: (leases, why) => feed.apply(leases, why), onOwnLeaseLost: lostLease }), retry);
    onCleanup('lease watch', () => watch.stop());
    checkpoint();

    // --- subnet.env last: the CNI plugin may act on it at once
    await writeSubnetEnv(opts.subnetFile, { network: config.network, subnet: lease.subnet, mtu: running.mtu, ipMasq: opts.ipMasq });
    await ledger.record({ kind: 'file', path: opts.subnetFile });
    log.info({ file: opts.subnetFile, subnet: formatPrefix(lease.subnet), mtu: running.mtu }, 'subnet file written');
    checkpoint();
    started = true;
    startupOver = true;
    ready = true;
    notifier.ready();
    log.info({ backend: running.type, subnet: formatPrefix(lease.subnet) }, 'ready');
  } catch (err) {
    startupOver = true;
    // a stop asked for while starting (signal, lost lease) wins over whatever it interrupted
    const request = stopRequest;
    if (request !== undefined) {
      if (!(err instanceof StartAborted)) log.debug({ err: (err as Error).message }, 'start-up interrupted by the stop');
      return finish(request.reason, request.code);
    }
    await finish((err as Error).message, EXIT_FAILURE);
    throw err;
  }
  return exited;
}

/**
 * Asks the manager for the configuration every `startRetryMs` until it has
 * one. A configuration that exists but is invalid is an error at once: the
 * operator has to fix it.
 */
/** How start-up steps that need the store wait for it: every second, logged, stoppable at checkpoints. */
interface StartRetry {
  readonly every: number;
  readonly log: Logger;
  readonly notifier: ServiceNotifier;
  readonly pause: (ms: number) => Promise<void>;
  readonly checkpoint: () => void;
  readonly store: string;
}

/** Logs why start-up waits, tells the service manager, then sleeps one retry period (a stop ends it). */
async function waitOnce(retry: StartRetry, attempt: number, why: string): Promise<void> {
  retry.log.warn({ attempt, retryMs: retry.every }, `${why}; waiting`);
  retry.notifier.status(`waiting: ${why}`);
  retry.checkpoint();
  await retry.pause(retry.every);
  retry.checkpoint();
}

async function waitForNetworkConfig(manager: SubnetManager, retry: StartRetry): Promise<NetConfig> {
  for (let attempt = 1; ; attempt++) {
    let why: string;
    try {
      const config = await manager.getNetworkConfig();
      if (config !== undefined) {
        if (attempt > 1) retry.log.info({ attempts: attempt }, 'found the network configuration');
        return config;
      }
      why = `no network configuration yet (looked in ${manager.configSources})`;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      why = `${retry.store} does not answer: ${(err as Error).message.split('\n')[0] ?? ''}`;
    }
    await waitOnce(retry, attempt, why);
  }
}

/**
 * Runs a start-up step that needs the store, again every second until it
 * succeeds, as flanneld retries its lease: the configuration may come from a
 * local file while etcd is not up yet. Only the store's errors (LeaseError)
 * are retried; anything else is final.
 */
async function untilTheStoreAnswers<T>(what: string, step: () => Promise<T>, retry: StartRetry): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await step();
      if (attempt > 1) retry.log.info({ attempts: attempt }, `${what}: done`);
      return value;
    } catch (err) {
      // only the store's trouble is waited out; a bug or a backend failure is not the store's
      if (!(err instanceof LeaseError) || err instanceof LeaseLostError) throw err;
      await waitOnce(retry, attempt, `${what} failed: ${err.message.split('\n')[0] ?? ''}`);
    }
  }
}

function registerAgentMetrics(registry: Registry, isReady: () => boolean, routeCount: () => number, manager: SubnetManager): void {
  new Gauge({
    name: 'weft_build_info',
    help: 'Always 1; labels say which weft and Node.js run',
    labelNames: ['version', 'node_version'],
    registers: [registry],
  }).set({ version: weftVersion(), node_version: process.versions.node }, 1);
  new Gauge({
    name: 'weft_store_connected',
    help: 'Whether the lease store answered the last time it was used (watch, renewal): 1 yes, 0 no; always 1 for static peers',
    registers: [registry],
    collect() {
      this.set(manager.state().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_lease_expiry_timestamp_seconds',
    help: 'When this host\'s lease runs out unless renewed (Unix time); absent for a static subnet and before the lease',
    registers: [registry],
    collect() {
      this.reset();
      const expires = manager.state().lease?.expiration;
      if (expires !== undefined) this.set(expires.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'weft_lease_last_renewal_timestamp_seconds',
    help: 'When this host\'s lease was last renewed (Unix time); absent before the first renewal',
    registers: [registry],
    collect() {
      this.reset();
      const at = manager.state().lastRenewal;
      if (at !== undefined) this.set(at.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'weft_ready',
    help: '1 once routes, rules and subnet.env are in place (as /readyz), else 0',
    registers: [registry],
    collect() {
      this.set(isReady() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_routes',
    help: 'Peers the backend routes to now',
    registers: [registry],
    collect() {
      this.set(routeCount());
    },
  });
}

/** weft_leases_ignored{reason}: other hosts' leases left out of the routes now, and why. */
function registerIgnoredLeases(registry: Registry, feed: PeerFeed, unreadable: () => number): void {
  let counted = 0;
  new Counter({
    name: 'weft_lease_values_unreadable_total',
    help: 'Lease values in the store skipped because they are not flannel\'s lease JSON (each named in a warning)',
    registers: [registry],
    collect() {
      const now = unreadable();
      if (now > counted) this.inc(now - counted);
      counted = now;
    },
  });
  const reasons: readonly IgnoredReason[] = [
    'outside_network', 'overlaps_own_subnet', 'subnet_length', 'bogus_public_ip', 'overlaps_other_lease', 'unusable_by_backend',
    'too_many_leases',
  ];
  new Gauge({
    name: 'weft_leases_ignored',
    help: 'Leases of other hosts that are not routed, by reason (each is named once in the log)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const now = feed.ignored();
      for (const reason of reasons) this.set({ reason }, now.get(reason) ?? 0);
    },
  });
}

async function warnIfForwardingOff(log: Logger): Promise<void> {
  try {
    const v = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
    if (v !== '1') {
      log.warn('net.ipv4.ip_forward is 0 on this host: pods behind it will not reach the overlay until it is 1 (sysctl -w net.ipv4.ip_forward=1)');
    }
  } catch {
    // not Linux procfs: nothing to say
  }
}
