import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { errors } from '../../shared/errors.ts';
import { policiesSelecting } from '../../netplug/policy/evaluate.ts';
import type { SandboxPolicyStatus } from '../../netplug/policy/enforcer.ts';
import { directionsOf, PolicySpec, policyDirections } from '../../netplug/policy/model.ts';
import { listNodes } from '../nodes.ts';
import { applyPolicy, createPolicy, findPolicy, listPolicies, policyView, removePolicy } from '../policies.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const Name = z.object({ name: z.string().min(1) });

/** What `policy inspect` shows of one host: the local workloads the policy selects, with its rules' counters there. */
export interface PolicyHostView {
  node: string;
  hostname: string;
  workloads: Array<{
    name: string;
    address: string;
    directions: string[];
    rules: Array<{ direction: string; rule: number; action: string; packets: number; bytes: number }>;
    /** What no rule of any governing policy decided, dropped (per direction). */
    defaultDeny: Array<{ direction: string; packets: number; bytes: number }>;
  }>;
  error?: string;
}

/** /v1/policies: network policies (create, apply, list, inspect with each host's counters, remove). */
export function registerPolicyRoutes(app: FastifyInstance, context: ApiContext): void {
  const { store } = context;
  app.post('/v1/policies', async (request, reply) => {
    const { replace } = parseInput(z.object({ replace: z.enum(['true', 'false']).optional() }), request.query, 'query');
    const spec = parseInput(PolicySpec, request.body, 'policy');
    if (replace === 'true') {
      const { policy, outcome } = await applyPolicy(store, spec);
      reply.code(outcome === 'created' ? 201 : 200);
      return { ...policy, outcome };
    }
    reply.code(201);
    return { ...(await createPolicy(store, spec)), outcome: 'created' };
  });

  app.put('/v1/policies/:name', async (request, reply) => {
    const { name } = parseInput(Name, request.params, 'policy');
    const spec = parseInput(PolicySpec, request.body, 'policy');
    if (spec.name !== name) throw errors.invalid(`the policy in the body is named "${spec.name}", the path "${name}"`, 'name it the same in both');
    const { policy, outcome } = await applyPolicy(store, spec);
    reply.code(outcome === 'created' ? 201 : 200);
    return { ...policy, outcome };
  });

  app.get('/v1/policies', async () => (await listPolicies(store)).map(policyView).sort((a, b) => a.spec.name.localeCompare(b.spec.name)));

  app.get('/v1/policies/:name', async (request) => {
    const { name } = parseInput(Name, request.params, 'policy');
    const { verbose } = parseInput(z.object({ verbose: z.enum(['true', 'false']).optional() }), request.query, 'query');
    const policy = policyView(await findPolicy(store, name));
    if (verbose !== 'true' || !context.engines) return policy;
    const ready = (await listNodes(store)).map((n) => n.value).filter((n) => n.status.state === 'ready');
    const answers = await context.engines.fanOut<SandboxPolicyStatus[] | null>(ready, 'policy.status', {});
    const hosts: PolicyHostView[] = answers.map(({ node, value, error }) => ({
      node: node.id,
      hostname: node.description.hostname,
      workloads: (value ?? []).flatMap((sandbox) => sandbox.endpoints.flatMap((endpoint) => {
        const directions = policyDirections.filter((d) => directionsOf(policy.spec).includes(d) && policiesSelecting([policy.spec], endpoint.labels, d).length > 0);
        if (directions.length === 0) return [];
        const mine = sandbox.rules.filter((r) => r.endpoint === endpoint.address);
        return [{
          name: sandbox.name,
          address: endpoint.address,
          directions,
          rules: mine.filter((r) => r.policy === policy.spec.name).map((r) => ({ direction: r.direction, rule: r.rule ?? 0, action: r.action, packets: r.packets, bytes: r.bytes })),
          defaultDeny: mine.filter((r) => r.action === 'default-deny' && directions.includes(r.direction)).map((r) => ({ direction: r.direction, packets: r.packets, bytes: r.bytes })),
        }];
      })),
      ...(error ? { error: error.message } : value?.find((s) => s.error) ? { error: value.find((s) => s.error)!.error } : {}),
    }));
    return { ...policy, hosts: hosts.sort((a, b) => a.hostname.localeCompare(b.hostname)) };
  });

  app.delete('/v1/policies/:name', async (request) => removePolicy(store, parseInput(Name, request.params, 'policy').name));
}
