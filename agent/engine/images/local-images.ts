/** Images made on this node rather than pulled: imported from a tar, committed from a container. */
import { errors } from '../../../shared/errors.ts';
import { parseReference } from '../registry/reference.ts';
import { applyChanges, type RunConfig } from './dockerfile.ts';
import { type StagedLayer, stageLayer } from './layer-intake.ts';
import { ociArchitecture } from './oci.ts';
import type { ImageRecord, ImageStore } from './store.ts';

export interface ImportOptions {
  reference?: string;
  changes: readonly string[];
  message?: string;
}

/** A reference checked before any byte is taken, so a typo costs no upload. */
export function checkReference(images: ImageStore, reference: string | undefined): void {
  if (!reference) return;
  try {
    const parsed = parseReference(reference, images.defaultRegistry);
    if (parsed.digest) throw new Error('a digest cannot name a new image');
  } catch (error) {
    throw errors.invalid((error as Error).message, 'name it like repository:tag');
  }
}

/** `image import`: a filesystem tar (or tar.gz) as a one-layer image, its config from `--change` lines. */
export async function importImage(images: ImageStore, input: AsyncIterable<Buffer>, options: ImportOptions): Promise<ImageRecord> {
  checkReference(images, options.reference);
  const config: RunConfig = applyChanges({}, options.changes);
  const layer = await stageLayer(input, images.stagingPath());
  const created = new Date().toISOString();
  return images.addLocal(
    [layer],
    {
      architecture: ociArchitecture(),
      os: 'linux',
      created,
      config,
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created, created_by: 'shoal image import', ...(options.message ? { comment: options.message } : {}) }],
    },
    options.reference ? [options.reference] : [],
  );
}

export interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
}

/**
 * `image history`: the config's history, newest first, each step that made a layer given that
 * layer's size, as Docker shows it. An image without history (a bare config) shows its layers.
 */
export async function imageHistory(images: ImageStore, reference: string): Promise<HistoryRow[]> {
  const image = images.find(reference);
  if (!image) throw errors.notFound('image', reference, 'list images with `shoal image ls`');
  const raw = await images.rawConfig(image);
  type Step = { created?: string; created_by?: string; comment?: string; empty_layer?: boolean };
  const history = (Array.isArray(raw.history) ? raw.history : []) as Step[];
  const layers = [...image.layers];
  const rows: HistoryRow[] = (history.length > 0 ? history : layers.map((): Step => ({}))).map((step) => ({
    id: '<missing>',
    ...(step.created ? { created: step.created } : {}),
    createdBy: step.created_by ?? '',
    size: step.empty_layer ? 0 : (layers.shift()?.size ?? 0),
    comment: step.comment ?? '',
  }));
  rows.reverse();
  if (rows[0]) rows[0].id = image.id;
  return rows;
}

export interface CommitOptions {
  reference?: string;
  changes: readonly string[];
  message?: string;
  author?: string;
}

/** What the container was asked to run, over its image's config: Docker's commit keeps it. */
export interface ContainerConfigOverrides {
  cmd?: string[];
  entrypoint?: string[];
  env: readonly string[];
  workdir?: string;
  user?: string;
  labels: Record<string, string>;
}

/**
 * `container commit`: the base image's layers plus the container's changes as one more, its
 * config the container's own (its command, environment, working directory, user, labels) with
 * the `--change` lines applied, and a history step that says so.
 */
export async function commitImage(images: ImageStore, base: ImageRecord, baseConfig: Record<string, unknown>, layer: StagedLayer | undefined, container: ContainerConfigOverrides, options: CommitOptions): Promise<ImageRecord> {
  const raw = structuredClone(baseConfig);
  const config = commitConfig((raw.config ?? {}) as RunConfig, container, options.changes);
  const created = new Date().toISOString();
  const rootfs = raw.rootfs as { type: string; diff_ids: string[] };
  // A base without history (as the busybox image of build-base) gets a blank step per layer, so each step keeps its layer.
  const history = Array.isArray(raw.history) && raw.history.length > 0 ? (raw.history as object[]) : base.layers.map(() => ({}));
  const ran = [...(container.entrypoint ?? ((raw.config as RunConfig | undefined)?.Entrypoint ?? [])), ...(container.cmd ?? ((raw.config as RunConfig | undefined)?.Cmd ?? []))].join(' ');
  return images.addLocal(
    [...base.layers, ...(layer ? [layer] : [])],
    {
      ...raw,
      created,
      ...(options.author ? { author: options.author } : {}),
      config,
      rootfs: { ...rootfs, diff_ids: [...rootfs.diff_ids, ...(layer ? [layer.diffId] : [])] },
      history: [...history, { created, created_by: ran, ...(layer ? {} : { empty_layer: true }), ...(options.author ? { author: options.author } : {}), ...(options.message ? { comment: options.message } : {}) }],
    },
    options.reference ? [options.reference] : [],
  );
}

/** The committed image's config; checked before the layer is made, so a bad --change costs nothing. */
export function commitConfig(base: RunConfig, container: ContainerConfigOverrides, changes: readonly string[]): RunConfig {
  const env = new Map((base.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e]));
  for (const entry of container.env) env.set(entry.slice(0, entry.indexOf('=')), entry);
  const merged: RunConfig = {
    ...base,
    Env: [...env.values()],
    ...(container.cmd ? { Cmd: container.cmd } : {}),
    ...(container.entrypoint ? { Entrypoint: container.entrypoint } : {}),
    ...(container.workdir ? { WorkingDir: container.workdir } : {}),
    ...(container.user ? { User: container.user } : {}),
    ...(Object.keys(container.labels).length > 0 ? { Labels: { ...base.Labels, ...container.labels } } : {}),
  };
  return applyChanges(merged, changes);
}
