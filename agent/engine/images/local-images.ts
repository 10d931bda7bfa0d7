/** Images made on this node rather than pulled: imported from a tar, committed from a container. */
import { errors } from '../../../shared/errors.ts';
import { parseReference } from '../registry/reference.ts';
import { applyChanges, type RunConfig } from './dockerfile.ts';
import { stageLayer } from './layer-intake.ts';
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
