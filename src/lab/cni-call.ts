/**
 * Running weft's CNI plugin the way a container runtime does, for the demo
 * and the tests: inside a lab host's network namespace (nsenter --net, so the
 * bridge and veths are made there), with a minimal environment (PATH and the
 * CNI_* variables, as conmon's DEL has) and the network config on stdin.
 */
import * as path from 'node:path';
import { runWithInput, type RunResult } from '../sys/exec';

/** bin/weft-cni of this checkout (this file is dist/src/lab/cni-call.js). */
export const WEFT_CNI_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'weft-cni');
/** Where Debian's containernetworking-plugins puts the reference plugins. */
export const REFERENCE_CNI_PLUGINS = '/usr/lib/cni';

export interface CniCall {
  readonly command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  /** The host namespace the plugin runs in. */
  readonly hostNs: string;
  readonly config: object | string;
  readonly containerId?: string;
  /** The container's namespace name (CNI_NETNS=/run/netns/<name>); omitted for DEL after the container is gone. */
  readonly containerNs?: string;
  readonly ifname?: string;
  readonly cniPath?: string;
}

export interface CniOutcome extends RunResult {
  /** stdout parsed as a JSON object, or undefined when it is empty or not one. */
  readonly json: Record<string, unknown> | undefined;
}

export async function runCni(call: CniCall): Promise<CniOutcome> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_PATH: call.cniPath ?? REFERENCE_CNI_PLUGINS,
  };
  if (call.containerId !== undefined) env['CNI_CONTAINERID'] = call.containerId;
  if (call.containerNs !== undefined) env['CNI_NETNS'] = `/run/netns/${call.containerNs}`;
  if (call.command === 'ADD' || call.command === 'DEL' || call.command === 'CHECK') env['CNI_IFNAME'] = call.ifname ?? 'eth0';
  const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
  const r = await runWithInput('nsenter', [`--net=/run/netns/${call.hostNs}`, WEFT_CNI_BIN], input, { env, timeoutMs: 30_000 });
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(r.stdout);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    // empty or not JSON
  }
  return { ...r, json };
}

/** The first address (without its length) in an ADD result, or undefined. */
export function resultAddress(result: Record<string, unknown> | undefined): string | undefined {
  const ips = result?.['ips'];
  if (!Array.isArray(ips)) return undefined;
  const first: unknown = ips[0];
  const address = typeof first === 'object' && first !== null ? (first as Record<string, unknown>)['address'] : undefined;
  return typeof address === 'string' ? address.split('/')[0] : undefined;
}
