import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FileObjectCreate, type FileObjectKind, fileObjectKinds } from '../../shared/secrets.ts';
import { createFileObject, findFileObject, listFileObjects, removeFileObject, viewOf } from '../secrets.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const Ref = z.object({ ref: z.string().min(1) });

/** /v1/secrets and /v1/configs: the same routes for both kinds. */
export function registerFileObjectRoutes(app: FastifyInstance, context: ApiContext): void {
  const { store } = context;
  const sealKey = () => context.clusterKeys?.sealKey;
  for (const kind of fileObjectKinds as readonly FileObjectKind[]) {
    const base = `/v1/${kind}s`;
    app.post(base, async (request, reply) => {
      const { object, created } = await createFileObject(store, kind, parseInput(FileObjectCreate, request.body, kind), sealKey());
      reply.code(created ? 201 : 200);
      return object;
    });
    app.get(base, async () => (await listFileObjects(store, kind)).map((o) => viewOf(o.value)).sort((a, b) => a.spec.name.localeCompare(b.spec.name)));
    app.get(`${base}/:ref`, async (request) => viewOf((await findFileObject(store, kind, parseInput(Ref, request.params, kind).ref)).value));
    app.delete(`${base}/:ref`, async (request) => removeFileObject(store, kind, parseInput(Ref, request.params, kind).ref));
  }
}
