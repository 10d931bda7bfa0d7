/** The etcd key layout, in one place. Every key Shoal writes lives under /shoal/v1/. */

const root = '/shoal/v1/';

export const keys = {
  root,
  cluster: `${root}cluster`,
  nodes: `${root}nodes/`,
  node: (id: string) => `${root}nodes/${id}`,
  managers: `${root}managers/`,
  manager: (id: string) => `${root}managers/${id}`,
  leaderElection: 'shoal-v1-leader',
  services: `${root}services/`,
  service: (id: string) => `${root}services/${id}`,
  /** One key per service name, created with the service: names stay unique. */
  serviceName: (name: string) => `${root}service-names/${name}`,
  tasks: `${root}tasks/`,
  task: (id: string) => `${root}tasks/${id}`,
  networks: `${root}networks/`,
  ipam: `${root}ipam/`,
  leases: `${root}leases/`,
  policies: `${root}policies/`,
  stacks: `${root}stacks/`,
  secrets: `${root}secrets/`,
  configs: `${root}configs/`,
  volumes: `${root}volumes/`,
} as const;

/** The last path segment of a key: the object's id. */
export function idOfKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
