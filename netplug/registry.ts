/**
 * The one table of network drivers. Each driver's folder under netplug/drivers/ exports
 * `register(registry)`, which adds its definition: its type (the folder's name), the scopes it
 * can take, the options it accepts with their checks, whether its endpoints take addresses, a
 * manager-side allocator and an agent-side factory. Nothing outside a driver's folder names a
 * concrete driver: managers and agents ask the registry what a type can do.
 */
import { errors } from '../shared/errors.ts';
import type { NetworkDriver } from './driver.ts';
import type { HostNamespace } from './host.ts';
import type { HostLocalIpam } from './ipam/host-local.ts';
import type { NetworkObject, NetworkScope, NetworkSpec } from './model.ts';
import type { Underlay } from './underlay.ts';

/** An option's check: undefined when the value is fine, else what is wrong with it. */
export type OptionCheck = (value: string) => string | undefined;

/** A problem with a whole network spec, said as the API says errors. */
export interface SpecProblem {
  message: string;
  hint?: string;
}

/** What a manager asks of a driver when a network is made (libnetwork's NetworkAllocate). */
export interface NetworkAllocator {
  /**
   * The driver's data for a new network, and the cluster-wide resources it claims (each at
   * most once across networks: a VNI, a macvlan parent). `claimed` holds those taken already.
   */
  network?(spec: NetworkSpec, claimed: ReadonlyMap<string, string>): { data: Record<string, string>; claims: string[] };
  /**
   * For drivers that split the pool per host (host-gw): the prefix length of each node's
   * subnet. The manager leases one to a node when it first gets an endpoint on the network.
   */
  nodeSubnetLength?(network: NetworkObject): number;
  /**
   * Whether a node whose share is full may lease another (calico's blocks: a workload is a /32,
   * so its share need not be one subnet); host-gw's subnet is its bridge's, one per host.
   */
  moreSharesPerNode?: boolean;
}

/** What an agent hands a driver's factory. */
export interface AgentContext {
  host: HostNamespace;
  underlay: Underlay;
  /** Prefix of the namespaces the agent makes (the lab's, or none). */
  netnsPrefix: string;
  /** This node's hostname: options may name it (`parent.HOSTNAME=`). */
  nodeName: string;
  hostIpam: HostLocalIpam;
  /** A folder of the agent's own for a driver's files (calico's BIRD configuration). */
  stateDir: string;
}

export interface DriverDefinition {
  /** The name users give with `-d`, and of the driver's folder. */
  type: string;
  /** The scopes a network of the driver can take; the first is the default. */
  scopes: readonly NetworkScope[];
  /** Users may create networks with it (host and null exist once, made by the cluster). */
  creatable: boolean;
  /** Its endpoints take addresses: from the cluster's IPAM on swarm networks, the host's on local ones. */
  addressed: boolean;
  /** Each option it accepts, with its check. */
  options: Readonly<Record<string, OptionCheck>>;
  /** Options named `PREFIX.something` (macvlan's `parent.NODE`), checked alike. */
  optionPrefixes?: Readonly<Record<string, OptionCheck>>;
  /** Checks the spec as a whole (an option that is required, a subnet that must be given). */
  validate?(spec: NetworkSpec, scope: NetworkScope): SpecProblem | undefined;
  /** May be the routing mesh's network (`--ingress`). */
  ingress?: boolean;
  /** Its hosts meet over VXLAN: `network trace` sends a probe frame through the tunnel (the agent driver is VxlanProbeable). */
  vxlanProbe?: boolean;
  /** Bytes its encapsulation adds to each packet on the underlay (overlay's VXLAN: 50); none by default. */
  overhead?: number;
  /**
   * How its endpoints reach the world: a default route of their own (`own`), or the hosts'
   * gateway bridge beside it (`gateway-bridge`, as Docker's overlay uses docker_gwbridge).
   */
  egress?: 'own' | 'gateway-bridge';
  /** Tasks on it run in the host's own namespace, alone (Docker's host network). */
  hostNamespace?: boolean;
  /** The network the cluster makes of this driver at start (Docker's bridge, host, none). */
  builtin?: { name: string };
  allocator?: NetworkAllocator;
  /** The agent's data plane; absent for drivers with none (host, null). */
  agent?(context: AgentContext): NetworkDriver;
}

export class DriverRegistry {
  private readonly definitions = new Map<string, DriverDefinition>();

  register(definition: DriverDefinition): void {
    if (this.definitions.has(definition.type)) throw new Error(`network driver "${definition.type}" is registered twice`);
    this.definitions.set(definition.type, definition);
  }

  get(type: string): DriverDefinition | undefined {
    return this.definitions.get(type);
  }

  /** The definition, or a clear error naming the drivers there are. */
  require(type: string): DriverDefinition {
    const definition = this.definitions.get(type);
    if (!definition) throw errors.invalid(`unknown network driver "${type}"`, `use one of: ${this.creatable().join(', ')}`);
    return definition;
  }

  list(): DriverDefinition[] {
    return [...this.definitions.values()];
  }

  /** The types users may create networks with. */
  creatable(): string[] {
    return this.list()
      .filter((d) => d.creatable)
      .map((d) => d.type);
  }

  /** The check of option `key` on driver `definition`, plain or by prefix. */
  static optionCheck(definition: DriverDefinition, key: string): OptionCheck | undefined {
    if (Object.hasOwn(definition.options, key)) return definition.options[key];
    const prefix = key.includes('.') ? key.slice(0, key.indexOf('.')) : undefined;
    return prefix && definition.optionPrefixes && Object.hasOwn(definition.optionPrefixes, prefix) ? definition.optionPrefixes[prefix] : undefined;
  }
}

/** The process's registry: filled by netplug/drivers/index.ts, which the entry points import. */
export const driverRegistry = new DriverRegistry();

export const booleanOption: OptionCheck = (value) => (['true', 'false'].includes(value) ? undefined : 'must be true or false');
export const mtuOption: OptionCheck = (value) => (/^\d+$/.test(value) && Number(value) >= 576 && Number(value) <= 9000 ? undefined : 'must be a number from 576 to 9000');
export const interfaceOption: OptionCheck = (value) => (/^[A-Za-z0-9_.-]{1,15}$/.test(value) ? undefined : 'must be an interface name (1-15 letters, digits, ".", "_" or "-")');
