/**
 * The secrets and configs of the tasks a node runs, opened for their assignments: read once
 * per object (objects are immutable) and kept in the leader's memory only while a task
 * assigned somewhere still uses them. Nothing here is written to the store or logged.
 */
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/log.ts';
import type { FileObjectKind, FileObjectRecord, FileReference, TaskFile } from '../../shared/secrets.ts';
import type { ServiceSpec } from '../../shared/services.ts';
import type { Store } from '../../shared/store/store.ts';
import { dataOf } from '../secrets.ts';
import { unseal } from '../../shared/pki/seal.ts';
import { RegistryAuth } from '../../shared/registry-auth.ts';

type Container = Pick<ServiceSpec['container'], 'secrets' | 'configs'>;

export class TaskFileSource {
  private readonly opened = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly sealKey: Buffer | undefined,
    private readonly log: Logger,
  ) {}

  /** A service's registry login (`--with-registry-auth`), opened for an assignment; none when it cannot be. */
  registryAuthOf(service: { id: string; sealedRegistryAuth?: string } | undefined): RegistryAuth | undefined {
    if (!service?.sealedRegistryAuth || !this.sealKey) return undefined;
    try {
      return RegistryAuth.parse(JSON.parse(unseal(this.sealKey, service.sealedRegistryAuth)));
    } catch (error) {
      this.log.warn('a service\'s registry login could not be opened', { service: service.id, error: (error as Error).message });
      return undefined;
    }
  }

  /**
   * Each container's files in the order of its secrets then its configs; a container whose
   * objects cannot all be opened gets none (its agent rejects the task and says why).
   */
  async filesOf(containers: ReadonlyMap<string, Container>): Promise<Map<string, TaskFile[] | undefined>> {
    const wanted = new Map<string, { kind: FileObjectKind; id: string }>();
    for (const container of containers.values()) {
      for (const [kind, references] of [['secret', container.secrets ?? []], ['config', container.configs ?? []]] as const) {
        for (const r of references) if (r.id) wanted.set(`${kind}:${r.id}`, { kind, id: r.id });
      }
    }
    for (const key of this.opened.keys()) if (!wanted.has(key)) this.opened.delete(key);
    const missing = [...wanted].filter(([key]) => !this.opened.has(key));
    if (missing.length > 0) {
      const found = await this.store.getMany<FileObjectRecord>(missing.map(([, o]) => keys.fileObject(o.kind, o.id)));
      for (const { value } of found) {
        try {
          this.opened.set(`${value.kind}:${value.id}`, dataOf(value, this.sealKey).toString('base64'));
        } catch (error) {
          this.log.warn(`a ${value.kind} could not be opened for its tasks`, { id: value.id, name: value.spec.name, error: (error as Error).message });
        }
      }
    }
    const files = new Map<string, TaskFile[] | undefined>();
    for (const [taskId, container] of containers) {
      const list: TaskFile[] = [];
      let complete = true;
      const add = (kind: FileObjectKind, r: FileReference) => {
        const data = r.id ? this.opened.get(`${kind}:${r.id}`) : undefined;
        if (data === undefined) complete = false;
        else list.push({ target: r.target, uid: Number(r.uid), gid: Number(r.gid), mode: r.mode, data });
      };
      for (const r of container.secrets ?? []) add('secret', r);
      for (const r of container.configs ?? []) add('config', r);
      files.set(taskId, complete ? list : undefined);
    }
    return files;
  }
}
