/**
 * Secrets and configs, as Docker's: named blobs a service's tasks get as read-only files.
 * A secret is sealed in the store (AES-256-GCM under the managers' seal key) and reaches a
 * node only inside the assignment of a task that uses it, onto a tmpfs; a config is kept
 * plain. Both are immutable: a new value is a new object, rolled out by updating the service.
 */
import { z } from 'zod';
import { Labels } from './schemas.ts';

export const fileObjectKinds = ['secret', 'config'] as const;
export type FileObjectKind = (typeof fileObjectKinds)[number];

/** Docker's limits: 500 KiB for a secret, 1000 KiB for a config. */
export const maxFileObjectBytes: Record<FileObjectKind, number> = { secret: 500 * 1024, config: 1000 * 1024 };

const objectName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, 'a name is up to 64 letters, digits, "_", "." and "-", starting with a letter or digit');

/** POST /v1/secrets and /v1/configs: the data as base64. */
export const FileObjectCreate = z
  .object({
    name: objectName,
    labels: Labels.default({}),
    data: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'data is base64'),
    /** Stacks: an object of this name with the same data is fine (and returned); other data is a conflict. */
    reuse: z.boolean().default(false),
  })
  .strict();
export type FileObjectCreate = z.infer<typeof FileObjectCreate>;

/** What the API shows of a secret or config: never a secret's data. */
export interface FileObjectView {
  id: string;
  kind: FileObjectKind;
  spec: { name: string; labels: Labels };
  /** Bytes of the data. */
  size: number;
  /** A config's data, base64 (a secret's is never shown). */
  data?: string;
  createdAt: string;
  updatedAt: string;
}

/** As stored: a secret's data sealed, a config's plain (base64). */
export interface FileObjectRecord extends Omit<FileObjectView, 'data'> {
  sealed?: string;
  data?: string;
}

/**
 * A secret or config given to a service (`--secret source=db,target=password,mode=0400`).
 * Targets are absolute once parsed: a secret's relative target is under /run/secrets, a
 * config's under /.
 */
export const FileReference = z.object({
  source: objectName,
  target: z.string().startsWith('/', 'a target is an absolute path once resolved').regex(/^[^\0]*$/),
  uid: z.string().regex(/^\d+$/, 'uid is a number').default('0'),
  gid: z.string().regex(/^\d+$/, 'gid is a number').default('0'),
  mode: z.number().int().min(0).max(0o777).default(0o444),
  /** Filled in by the manager: the object's id, so a rename or removal cannot change what a task gets. */
  id: z.string().optional(),
});
export type FileReference = z.infer<typeof FileReference>;
export type FileReferenceInput = z.input<typeof FileReference>;

/** Where a reference's file lands when its target is not absolute. */
export function absoluteTarget(kind: FileObjectKind, target: string): string {
  if (target.startsWith('/')) return target;
  return kind === 'secret' ? `/run/secrets/${target}` : `/${target}`;
}

/** A file a task is given with its assignment: never stored, only sent to the node that runs the task. */
export interface TaskFile {
  target: string;
  uid: number;
  gid: number;
  mode: number;
  /** base64 */
  data: string;
}
