/**
 * Secrets and configs in the store: created with their name claimed in the same transaction,
 * a secret's data sealed under the managers' seal key, removable only while no service uses
 * them, and resolved for a service's spec (name to id) so what a task gets cannot change.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { seal, unseal } from '../shared/pki/seal.ts';
import {
  type FileObjectCreate, type FileObjectKind, type FileObjectRecord, type FileObjectView, type FileReference, maxFileObjectBytes,
} from '../shared/secrets.ts';
import type { ServiceObject, ServiceSpec } from '../shared/services.ts';
import type { Store, Versioned } from '../shared/store/store.ts';

const now = () => new Date().toISOString();
const plural = (kind: FileObjectKind) => `${kind}s`;

/** What the API shows: a config's data, never a secret's. */
export function viewOf(record: FileObjectRecord): FileObjectView {
  const { sealed: _sealed, data, ...rest } = record;
  return { ...rest, ...(record.kind === 'config' && data !== undefined ? { data } : {}) };
}

/** The data of an object, as bytes: a secret's opened with the seal key. */
export function dataOf(record: FileObjectRecord, sealKey: Buffer | undefined): Buffer {
  if (record.kind === 'config') return Buffer.from(record.data ?? '', 'base64');
  if (!sealKey) throw errors.unavailable('this manager holds no seal key to open secrets with');
  return Buffer.from(unseal(sealKey, record.sealed ?? ''), 'base64');
}

export async function createFileObject(store: Store, kind: FileObjectKind, request: FileObjectCreate, sealKey: Buffer | undefined): Promise<{ object: FileObjectView; created: boolean }> {
  const bytes = Buffer.from(request.data, 'base64');
  if (bytes.length > maxFileObjectBytes[kind]) throw errors.invalid(`a ${kind} holds at most ${maxFileObjectBytes[kind] / 1024} KiB; this one is ${Math.ceil(bytes.length / 1024)} KiB`);
  if (kind === 'secret' && bytes.length === 0) throw errors.invalid('a secret cannot be empty');
  if (kind === 'secret' && !sealKey) throw errors.unavailable('this manager holds no seal key to seal secrets with');
  const existing = await store.get<string>(keys.fileObjectName(kind, request.name));
  const found = existing && (await store.get<FileObjectRecord>(keys.fileObject(kind, existing.value)));
  if (found) {
    if (request.reuse) {
      const held = dataOf(found.value, sealKey);
      if (held.length === bytes.length && timingSafeEqual(held, bytes)) return { object: viewOf(found.value), created: false };
      throw errors.conflict(`${kind} "${request.name}" exists with other data, and ${plural(kind)} cannot change`, `give the new value another name (such as ${request.name}_v2) and point the service at it`);
    }
    throw nameTaken(kind, request.name);
  }
  const id = randomBytes(12).toString('hex');
  const time = now();
  const record: FileObjectRecord = {
    id,
    kind,
    spec: { name: request.name, labels: request.labels },
    size: bytes.length,
    ...(kind === 'secret' ? { sealed: seal(sealKey!, request.data) } : { data: request.data }),
    createdAt: time,
    updatedAt: time,
  };
  const result = await store.commit([
    { op: 'create', key: keys.fileObjectName(kind, request.name), value: id },
    { op: 'create', key: keys.fileObject(kind, id), value: record },
  ]);
  if (!result.ok) throw nameTaken(kind, request.name);
  return { object: viewOf(record), created: true };
}

const nameTaken = (kind: FileObjectKind, name: string) => errors.conflict(`a ${kind} named "${name}" exists already`, `pick another name, or remove it first with \`shoal ${kind} rm ${name}\``);

export async function listFileObjects(store: Store, kind: FileObjectKind): Promise<Versioned<FileObjectRecord>[]> {
  return store.list<FileObjectRecord>(keys.fileObjects(kind));
}

/** By id, unique id prefix, or name. */
export async function findFileObject(store: Store, kind: FileObjectKind, reference: string): Promise<Versioned<FileObjectRecord>> {
  const all = await listFileObjects(store, kind);
  const exact = all.find((o) => o.value.id === reference || o.value.spec.name === reference);
  if (exact) return exact;
  const matches = all.filter((o) => o.value.id.startsWith(reference));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw errors.conflict(`"${reference}" matches ${matches.length} ${plural(kind)}`, 'use the full name');
  throw errors.notFound(kind, reference, `list them with \`shoal ${kind} ls\``);
}

/** The services whose spec (or previous spec, which a rollback returns to) uses an object. */
function usersOf(services: readonly ServiceObject[], kind: FileObjectKind, id: string): string[] {
  const uses = (spec: ServiceSpec | undefined) => (spec?.container[kind === 'secret' ? 'secrets' : 'configs'] ?? []).some((r) => r.id === id);
  return services.filter((s) => uses(s.spec) || uses(s.previousSpec)).map((s) => s.spec.name);
}

export async function removeFileObject(store: Store, kind: FileObjectKind, reference: string): Promise<FileObjectView> {
  const found = await findFileObject(store, kind, reference);
  const users = usersOf((await store.list<ServiceObject>(keys.services)).map((s) => s.value), kind, found.value.id);
  if (users.length > 0) {
    throw errors.conflict(`${kind} "${found.value.spec.name}" is in use by service${users.length > 1 ? 's' : ''} ${users.join(', ')}`, `remove it from ${users.length > 1 ? 'them' : 'it'} first (shoal service update --${kind}-rm ${found.value.spec.name} ${users[0]})`);
  }
  const result = await store.commit([
    { op: 'delete', key: found.key, version: found.version },
    { op: 'delete', key: keys.fileObjectName(kind, found.value.spec.name) },
  ]);
  if (!result.ok) throw errors.versionConflict(found.key);
  return viewOf(found.value);
}

/** A spec's secret and config references with the objects' ids; an unknown name is refused. */
export async function resolveFileReferences(store: Store, spec: ServiceSpec): Promise<ServiceSpec> {
  const resolve = async (kind: FileObjectKind, references: readonly FileReference[]) => {
    if (references.length === 0) return [];
    const all = (await listFileObjects(store, kind)).map((o) => o.value);
    const targets = new Set<string>();
    return references.map((reference) => {
      const found = all.find((o) => o.id === reference.id) ?? all.find((o) => o.spec.name === reference.source);
      if (!found) throw errors.notFound(kind, reference.source, `create it first with \`shoal ${kind} create ${reference.source} FILE\``);
      if (targets.has(reference.target)) throw errors.invalid(`two ${plural(kind)} have the target ${reference.target}`, 'give each its own target=');
      targets.add(reference.target);
      return { ...reference, source: found.spec.name, id: found.id };
    });
  };
  const secrets = await resolve('secret', spec.container.secrets);
  const configs = await resolve('config', spec.container.configs);
  const clash = secrets.find((s) => configs.some((c) => c.target === s.target));
  if (clash) throw errors.invalid(`a secret and a config both have the target ${clash.target}`, 'give each its own target=');
  return { ...spec, container: { ...spec.container, secrets, configs } };
}
