/**
 * One mode's topology, built fresh: two hosts joined by a veth underlay (MTU
 * 1500), a pod behind a bridge on each host, and the mode's way of carrying
 * pod traffic between the hosts:
 *   direct   host-gw: `ip route add <other pod subnet> via <other host>`
 *   vxlan    the kernel's vxlan set up exactly as flannel's vxlan backend does
 *   weft     a `weft agent` on each host (plus the mode's flags): udp in static
 *            mode; the kernel backends (vxlan, host-gw) lease from the embedded
 *            store, each host asking for its pod's subnet through subnet.env
 * close() stops the agents and deletes every namespace.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, LAB_NETWORK, randomLabPrefix, type LabHost } from '../../src/lab/lab';
import { LabAgent } from '../../src/lab/lab-agent';
import { formatIpv4, formatPrefix, parseCidr } from '../../src/net/ipv4';
import { readSubnetEnv, writeSubnetEnv } from '../../src/subnet/subnet-env';
import type { ModeSpec } from './modes';

export const UNDERLAY_MTU = 1500;
/** Namespace names start with `wbench-`. */
export const LAB_PREFIX = 'wbench';
/** Where each agent serves /metrics, inside its host namespace. */
export const AGENT_HEALTH_PORT = 9910;
export const WEFT_UDP_PORT = 8285;
/** flannel's vxlan defaults: VNI 1, UDP port 8472 (Linux's historical vxlan port, not IANA's 4789). */
export const VXLAN_VNI = 1;
export const VXLAN_PORT = 8472;
export const VXLAN_DEVICE = `flannel.${VXLAN_VNI}`;

export interface ModeLab {
  readonly lab: Lab;
  readonly client: LabHost;
  readonly server: LabHost;
  /** weft modes: the agents on host 1 (encapsulates pod 1's traffic) and host 2. */
  readonly agents: readonly LabAgent[];
  /** Whether the agents carry the packets (udp: /metrics has data-plane counters) or only program the kernel. */
  readonly dataPlaneAgents: boolean;
  close(): Promise<void>;
}

/** A fixed, locally administered VTEP MAC per host (flannel picks a random one). */
function vtepMac(index: number): string {
  return `0e:77:ee:00:00:${index.toString(16).padStart(2, '0')}`;
}

/** The subnet's network address (10.244.2.0 for 10.244.2.0/24): flannel's VTEP address and next hop. */
function networkAddress(subnet: string): string {
  const cidr = parseCidr(subnet);
  if (cidr === undefined) throw new Error(`not a CIDR: ${subnet}`);
  return formatIpv4(cidr.prefix.network);
}

async function setupDirect(lab: Lab, a: LabHost, b: LabHost): Promise<void> {
  for (const [me, other] of [[a, b], [b, a]] as const) {
    await lab.exec(me.ns, 'ip', ['route', 'add', other.podSubnet, 'via', other.underlayIp]);
  }
}

/**
 * flannel's vxlan backend (pkg/backend/vxlan): device flannel.1, VNI 1,
 * dstport 8472, no learning, local = the host's underlay address on eth0,
 * MTU = underlay - 50, address = the lease's network address /32; per other
 * host a route `subnet via <its .0> dev flannel.1 onlink`, a permanent ARP
 * entry for that .0 and an FDB entry sending its VTEP MAC to its underlay IP.
 */
async function setupVxlan(lab: Lab, a: LabHost, b: LabHost, mtu: number): Promise<void> {
  for (const me of [a, b]) {
    await lab.exec(me.ns, 'ip', ['link', 'add', VXLAN_DEVICE, 'address', vtepMac(me.index), 'mtu', String(mtu),
      'type', 'vxlan', 'id', String(VXLAN_VNI), 'local', me.underlayIp, 'dev', 'eth0', 'dstport', String(VXLAN_PORT), 'nolearning']);
    await lab.exec(me.ns, 'ip', ['addr', 'add', `${networkAddress(me.podSubnet)}/32`, 'dev', VXLAN_DEVICE]);
    await lab.exec(me.ns, 'ip', ['link', 'set', VXLAN_DEVICE, 'up']);
  }
  for (const [me, other] of [[a, b], [b, a]] as const) {
    const hop = networkAddress(other.podSubnet);
    await lab.exec(me.ns, 'ip', ['route', 'add', other.podSubnet, 'via', hop, 'dev', VXLAN_DEVICE, 'onlink']);
    await lab.exec(me.ns, 'ip', ['neigh', 'replace', hop, 'lladdr', vtepMac(other.index), 'dev', VXLAN_DEVICE, 'nud', 'permanent']);
    await lab.exec(me.ns, 'bridge', ['fdb', 'append', vtepMac(other.index), 'dev', VXLAN_DEVICE, 'dst', other.underlayIp]);
  }
}

/** Starts an agent on each host, into `agents` as they start (so a failure still stops the first); `env`: theirs (default ours). */
async function startAgents(lab: Lab, a: LabHost, b: LabHost, spec: ModeSpec, agents: LabAgent[], env?: NodeJS.ProcessEnv): Promise<void> {
  const netConf = path.join(lab.dir, 'net-conf.json');
  const backend = spec.backend === 'udp' ? { Type: 'udp', Port: WEFT_UDP_PORT } : { Type: spec.backend };
  writeFileSync(netConf, JSON.stringify({ Network: LAB_NETWORK, Backend: backend }));
  for (const [me, other] of [[a, b], [b, a]] as const) {
    const common = ['--net-config-path', netConf, '--iface', 'eth0', '--healthz-ip', '127.0.0.1', '--healthz-port', String(AGENT_HEALTH_PORT)];
    if (spec.backend === 'udp') {
      agents.push(new LabAgent(lab, me.ns, [...common, '--subnet', me.podSubnet, '--peer', `${other.podSubnet}=${other.underlayIp}`, ...spec.agentFlags], env));
      continue;
    }
    // a lease from the embedded store; the previous subnet.env asks for the pod's subnet (flannel's allocation order)
    const subnetFile = path.join(lab.dir, `${me.ns}.subnet.env`);
    const [pod, network] = [parseCidr(me.podSubnet), parseCidr(LAB_NETWORK)];
    if (pod === undefined || network === undefined) throw new Error(`not a CIDR: ${me.podSubnet} or ${LAB_NETWORK}`);
    await writeSubnetEnv(subnetFile, { network: network.prefix, subnet: pod.prefix, mtu: spec.podMtu, ipMasq: false });
    agents.push(new LabAgent(lab, me.ns, [...common, '--subnet-file', subnetFile, ...spec.agentFlags], env));
  }
  for (const agent of agents) await agent.waitReady(20_000);
  if (spec.backend !== 'udp') {
    for (const [agent, host] of [[agents[0], a], [agents[1], b]] as const) {
      const env = await readSubnetEnv((agent as LabAgent).subnetFile);
      if (env === undefined || formatPrefix(env.subnet) !== host.podSubnet || env.mtu !== spec.podMtu) {
        throw new Error(`the ${spec.backend} agent on ${host.ns} leased ${env === undefined ? 'nothing' : `${formatPrefix(env.subnet)} (MTU ${env.mtu})`}, ` +
          `not its pod's ${host.podSubnet} (MTU ${spec.podMtu})`);
      }
    }
  }
}

/** Pings pod 2 from pod 1 until one reply comes back (ARP, agents' routes), or throws. */
async function waitConnected(lab: Lab, from: LabHost, to: LabHost, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await lab.execResult(from.podNs as string, 'ping', ['-c', '1', '-W', '1', to.podIp], { timeoutMs: 5000 });
    if (r.code === 0) return;
    last = (r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ');
  }
  throw new Error(`pod ${from.podIp} cannot reach pod ${to.podIp} after ${timeoutMs} ms (${last})`);
}

/** `agentEnv`: the weft agents' environment (bench --profile adds NODE_OPTIONS); default ours. */
export async function buildModeLab(spec: ModeSpec, progress: (line: string) => void, agentEnv?: NodeJS.ProcessEnv): Promise<ModeLab> {
  const lab = await Lab.create({
    prefix: randomLabPrefix(LAB_PREFIX),
    hosts: 2,
    underlay: 'veth',
    underlayMtu: UNDERLAY_MTU,
    podMtu: spec.podMtu,
  });
  const agents: LabAgent[] = [];
  const close = async (): Promise<void> => {
    for (const agent of agents) await agent.stop('SIGTERM', 5000).catch(() => undefined);
    await lab.destroy();
  };
  try {
    const [a, b] = [lab.host(1), lab.host(2)];
    if (spec.kind === 'direct') await setupDirect(lab, a, b);
    else if (spec.kind === 'vxlan') await setupVxlan(lab, a, b, spec.podMtu);
    else {
      progress(`starting weft ${spec.backend} agents${spec.agentFlags.length > 0 ? ` with ${spec.agentFlags.join(' ')}` : ''}`);
      await startAgents(lab, a, b, spec, agents, agentEnv);
    }
    await waitConnected(lab, a, b);
    return { lab, client: a, server: b, agents, dataPlaneAgents: spec.kind === 'weft' && spec.backend === 'udp', close };
  } catch (err) {
    await close();
    throw err;
  }
}
