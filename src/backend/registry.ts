/**
 * The backends weft can run, by net-conf.json's `Backend.Type` (flannel's
 * pkg/backend/manager.go keeps the same kind of map). Adding a backend means
 * adding it here; the agent only ever calls chooseBackend().
 */
import { ConfigError } from '../errors';
import type { BackendSection } from '../subnet/net-config';
import type { Backend, BackendContext, BackendFactory } from './backend';
import { HOST_GW_BACKEND_TYPE, HostGwBackend } from './host-gw/host-gw-backend';
import { parseUdpConfig } from './udp/udp-config';
import { UDP_BACKEND_TYPE, UdpBackend } from './udp/udp-backend';
import { parseVxlanConfig } from './vxlan/vxlan-config';
import { VXLAN_BACKEND_TYPE, VxlanBackend } from './vxlan/vxlan-backend';

/** A factory with its configuration type hidden: parse, then create with what was parsed. */
interface RegisteredBackend {
  readonly type: string;
  choose(fields: Readonly<Record<string, unknown>>, source: string): (ctx: BackendContext) => Backend;
}

function register<C>(factory: BackendFactory<C>): RegisteredBackend {
  return {
    type: factory.type,
    choose(fields, source) {
      const config = factory.parseConfig(fields, source);
      return (ctx) => factory.create(config, ctx);
    },
  };
}

const FACTORIES: readonly RegisteredBackend[] = [
  register({ type: UDP_BACKEND_TYPE, parseConfig: parseUdpConfig, create: (c, ctx) => new UdpBackend(c, ctx) }),
  register({ type: VXLAN_BACKEND_TYPE, parseConfig: parseVxlanConfig, create: (c, ctx) => new VxlanBackend(c, ctx) }),
  register({ type: HOST_GW_BACKEND_TYPE, parseConfig: () => ({}), create: (_c, ctx) => new HostGwBackend(ctx) }),
];

/** Backend types in the registry, in the order help texts list them. */
export function backendTypes(): string[] {
  return FACTORIES.map((f) => f.type);
}

function describeChoices(): string {
  const quoted = backendTypes().map((t) => `"${t}"`);
  return quoted.length <= 1 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} and ${quoted[quoted.length - 1] as string}`;
}

/** A backend type with its checked configuration, ready to be created. Pure: the host is not touched. */
export interface ChosenBackend {
  readonly type: string;
  create(ctx: BackendContext): Backend;
}

/**
 * Looks the type up and checks the backend's own fields. ConfigError naming
 * `<source>: Backend.<Field>` for an unknown type or a bad value.
 */
export function chooseBackend(section: BackendSection): ChosenBackend {
  const typePath = `${section.source}: Backend.Type`;
  const given = Object.entries(section.fields).find(([k]) => k.toLowerCase() === 'type')?.[1];
  if (section.type === '') {
    throw new ConfigError(typePath, given ?? undefined, `${typePath} is missing: set it to one of ${describeChoices()}`);
  }
  const factory = FACTORIES.find((f) => f.type === section.type);
  if (factory === undefined) {
    throw new ConfigError(typePath, given ?? section.type,
      `${typePath} ${JSON.stringify(given ?? section.type)} is not supported: weft supports ${describeChoices()}`);
  }
  return { type: factory.type, create: factory.choose(section.fields, section.source) };
}
