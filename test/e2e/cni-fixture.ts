/**
 * Shared pieces of the CNI plugin's end-to-end tests. The plugin is run as a
 * runtime runs it by src/lab/cni-call.ts.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { REFERENCE_CNI_PLUGINS, WEFT_CNI_BIN, type CniOutcome } from '../../src/lab/cni-call';
import type { Lab } from '../../src/lab/lab';

export { runCni, type CniOutcome } from '../../src/lab/cni-call';

/** Why the CNI tests cannot run here, or undefined. */
export function cniSkipReason(): string | undefined {
  if (!existsSync(WEFT_CNI_BIN)) return `${WEFT_CNI_BIN} is not built (npm install builds it)`;
  for (const plugin of ['bridge', 'host-local', 'portmap']) {
    if (!existsSync(path.join(REFERENCE_CNI_PLUGINS, plugin))) {
      return `the reference CNI plugins are not installed (${REFERENCE_CNI_PLUGINS}/${plugin}; apt-get install containernetworking-plugins)`;
    }
  }
  return undefined;
}

/** A failed call's error result: asserts the shape of a CNI error and returns it. */
export function cniError(outcome: CniOutcome): { code: number; msg: string; details?: string } {
  const j = outcome.json;
  if (outcome.code === 0 || j === undefined || typeof j['code'] !== 'number' || typeof j['msg'] !== 'string' || typeof j['cniVersion'] !== 'string') {
    throw new Error(`expected a CNI error result with a non-zero exit, got exit ${outcome.code}: ${outcome.stdout} ${outcome.stderr}`);
  }
  const details = j['details'];
  return { code: j['code'], msg: j['msg'], ...(typeof details === 'string' ? { details } : {}) };
}

/** The addresses host-local has handed out in its data dir for one network (files named after the address). */
export function allocatedAddresses(ipamDir: string, network: string): string[] {
  const dir = path.join(ipamDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
}

/** The names of veth devices in a namespace. */
export async function veths(lab: Lab, ns: string): Promise<string[]> {
  const out = await lab.exec(ns, 'ip', ['-j', 'link', 'show', 'type', 'veth']);
  return (JSON.parse(out === '' ? '[]' : out) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}
