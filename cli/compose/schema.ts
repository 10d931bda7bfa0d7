/**
 * The types of the compose keys Shoal maps onto its objects, as the Compose Specification
 * gives them (short and long syntax alike). Values interpolated from variables arrive as
 * strings, so numbers and booleans are also taken from their text, as compose does. Keys a
 * cluster ignores are left to cluster-fit.ts; objects stay open for `x-*` fields.
 */
import { z } from 'zod';

const truthy = /^(true|yes|on)$/i;
const falsy = /^(false|no|off)$/i;

export const bool = z.preprocess(
  (v) => (typeof v === 'string' && truthy.test(v) ? true : typeof v === 'string' && falsy.test(v) ? false : v),
  z.boolean({ error: 'expected true or false' }),
);
export const int = z.preprocess(
  (v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v),
  z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' }),
);
const text = z.string({ error: 'expected a string' });
/** A number or its text: ports, cpus, byte sizes. */
const textOrNumber = z.union([z.string(), z.number()], { error: 'expected a string or a number' });
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()], { error: 'expected a single value' });
/** `environment`, `labels`, `sysctls`: a list of NAME=value or a map. */
export const listOrMap = z.union([z.array(text), z.record(z.string(), scalar)], { error: 'expected a list of NAME=value or a map' });
const oneOrMany = z.union([text, z.array(text)], { error: 'expected a string or a list of strings' });
/** `command`, `entrypoint`, healthcheck `test`: a string (split as a shell would) or a list. */
const commandLine = z.union([text, z.array(textOrNumber.transform(String)), z.null()], { error: 'expected a string or a list of strings' });

const loose = <Shape extends z.ZodRawShape>(shape: Shape) => z.looseObject(shape);

export const ComposePort = z.union([
  z.number(),
  z.string(),
  loose({
    target: textOrNumber,
    published: textOrNumber.optional(),
    protocol: text.optional(),
    mode: z.enum(['ingress', 'host'], { error: 'mode is ingress or host' }).optional(),
    host_ip: text.optional(),
    name: text.optional(),
    app_protocol: text.optional(),
  }),
], { error: 'a port is "8080:80", a number, or a map with target: and published:' });
export type ComposePort = z.infer<typeof ComposePort>;

export const ComposeServiceVolume = z.union([
  z.string(),
  loose({
    type: z.enum(['bind', 'volume', 'tmpfs', 'npipe', 'cluster', 'image'], { error: 'type is bind, volume or tmpfs' }),
    source: text.optional(),
    target: text,
    read_only: bool.optional(),
    bind: loose({ propagation: text.optional(), create_host_path: bool.optional(), selinux: text.optional() }).optional(),
    volume: loose({ nocopy: bool.optional(), subpath: text.optional() }).optional(),
    tmpfs: loose({ size: textOrNumber.optional(), mode: textOrNumber.optional() }).optional(),
    consistency: text.optional(),
  }),
], { error: 'a volume is "SOURCE:TARGET[:ro]" or a map with type:, source: and target:' });
export type ComposeServiceVolume = z.infer<typeof ComposeServiceVolume>;

const fileReference = z.union([
  text,
  loose({ source: text, target: text.optional(), uid: textOrNumber.optional(), gid: textOrNumber.optional(), mode: textOrNumber.optional() }),
], { error: 'a secret or config is its name, or a map with source: and target:' });

const UpdateSettings = z.strictObject({
  parallelism: int.optional(),
  delay: text.optional(),
  failure_action: z.enum(['pause', 'continue', 'rollback'], { error: 'failure_action is pause, continue or rollback' }).optional(),
  monitor: text.optional(),
  max_failure_ratio: z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v), z.number({ error: 'expected a number from 0 to 1' })).optional(),
  order: z.enum(['stop-first', 'start-first'], { error: 'order is stop-first or start-first' }).optional(),
});

const ResourceSet = z.strictObject({
  cpus: textOrNumber.optional(),
  memory: textOrNumber.optional(),
  pids: int.optional(),
  generic_resources: z.array(z.unknown()).optional(),
  devices: z.array(z.unknown()).optional(),
});

export const ComposeDeploy = z.strictObject({
  mode: z.enum(['replicated', 'global', 'replicated-job', 'global-job'], { error: 'mode is replicated or global' }).optional(),
  replicas: int.optional(),
  labels: listOrMap.optional(),
  endpoint_mode: z.enum(['vip', 'dnsrr'], { error: 'endpoint_mode is vip or dnsrr' }).optional(),
  resources: z.strictObject({ limits: ResourceSet.optional(), reservations: ResourceSet.optional() }).optional(),
  placement: z.strictObject({
    constraints: z.array(text).optional(),
    preferences: z.array(z.strictObject({ spread: text })).optional(),
    max_replicas_per_node: int.optional(),
  }).optional(),
  restart_policy: z.strictObject({
    condition: z.enum(['none', 'on-failure', 'any'], { error: 'condition is none, on-failure or any' }).optional(),
    delay: text.optional(),
    max_attempts: int.optional(),
    window: text.optional(),
  }).optional(),
  update_config: UpdateSettings.optional(),
  rollback_config: UpdateSettings.optional(),
});
export type ComposeDeploy = z.infer<typeof ComposeDeploy>;

export const ComposeService = loose({
  image: text.optional(),
  command: commandLine.optional(),
  entrypoint: commandLine.optional(),
  environment: listOrMap.optional(),
  env_file: z.union([text, z.array(z.union([text, loose({ path: text, required: bool.optional(), format: text.optional() })]))], { error: 'env_file is a path or a list of them' }).optional(),
  labels: listOrMap.optional(),
  user: textOrNumber.optional(),
  working_dir: text.optional(),
  hostname: text.optional(),
  domainname: text.optional(),
  dns: oneOrMany.optional(),
  dns_search: oneOrMany.optional(),
  dns_opt: z.array(text).optional(),
  extra_hosts: listOrMap.optional(),
  read_only: bool.optional(),
  init: bool.optional(),
  tmpfs: oneOrMany.optional(),
  restart: text.optional(),
  healthcheck: z.strictObject({
    test: commandLine.optional(),
    interval: text.optional(),
    timeout: text.optional(),
    retries: int.optional(),
    start_period: text.optional(),
    start_interval: text.optional(),
    disable: bool.optional(),
  }).optional(),
  stop_grace_period: text.optional(),
  stop_signal: text.optional(),
  cap_add: z.array(text).optional(),
  cap_drop: z.array(text).optional(),
  sysctls: listOrMap.optional(),
  pids_limit: int.optional(),
  ulimits: z.record(z.string(), z.union([int, z.strictObject({ soft: int, hard: int })])).optional(),
  logging: loose({ driver: text.optional(), options: z.record(z.string(), scalar).nullable().optional() }).optional(),
  ports: z.array(ComposePort).optional(),
  volumes: z.array(ComposeServiceVolume).optional(),
  networks: z.union([
    z.array(text),
    z.record(z.string(), z.union([z.null(), loose({ aliases: z.array(text).optional(), ipv4_address: text.optional(), ipv6_address: text.optional(), priority: int.optional() })])),
  ], { error: 'networks is a list of names or a map of them' }).optional(),
  secrets: z.array(fileReference).optional(),
  configs: z.array(fileReference).optional(),
  depends_on: z.union([
    z.array(text),
    z.record(z.string(), loose({ condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']).optional(), restart: bool.optional(), required: bool.optional() })),
  ], { error: 'depends_on is a list of services or a map of them' }).optional(),
  deploy: ComposeDeploy.nullable().optional(),
});
export type ComposeService = z.infer<typeof ComposeService>;

const external = z.union([bool, loose({ name: text.optional() })]).optional();

export const ComposeNetwork = z.union([
  z.null(),
  loose({
    name: text.optional(),
    driver: text.optional(),
    driver_opts: z.record(z.string(), textOrNumber).optional(),
    attachable: bool.optional(),
    internal: bool.optional(),
    external,
    labels: listOrMap.optional(),
    enable_ipv6: bool.optional(),
    ipam: loose({
      driver: text.optional(),
      config: z.array(loose({ subnet: text.optional(), gateway: text.optional(), ip_range: text.optional(), aux_addresses: z.unknown().optional() })).optional(),
      options: z.record(z.string(), text).optional(),
    }).optional(),
  }),
]);
export type ComposeNetwork = z.infer<typeof ComposeNetwork>;

export const ComposeVolume = z.union([
  z.null(),
  loose({ name: text.optional(), driver: text.optional(), driver_opts: z.record(z.string(), textOrNumber).optional(), external, labels: listOrMap.optional() }),
]);
export type ComposeVolume = z.infer<typeof ComposeVolume>;

/** A top-level secret or config: from a file, an environment variable, inline content, or made outside the stack. */
export const ComposeFileObject = loose({
  name: text.optional(),
  file: text.optional(),
  environment: text.optional(),
  content: text.optional(),
  external,
  labels: listOrMap.optional(),
  template_driver: text.optional(),
});
export type ComposeFileObject = z.infer<typeof ComposeFileObject>;

export const ComposeProject = loose({
  name: text.optional(),
  services: z.record(z.string(), ComposeService).optional(),
  networks: z.record(z.string(), ComposeNetwork).optional(),
  volumes: z.record(z.string(), ComposeVolume).optional(),
  secrets: z.record(z.string(), ComposeFileObject).optional(),
  configs: z.record(z.string(), ComposeFileObject).optional(),
});
export type ComposeProject = z.infer<typeof ComposeProject>;
