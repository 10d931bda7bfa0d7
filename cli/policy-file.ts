/**
 * Network policies as users write them: in a policy file (`shoal policy create -f`), one
 * policy or a list of them, or in a stack's `x-shoal-policies`. Every problem carries its
 * file, line and column; a selector's also names its column in the selector.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { type PolicySpec, PolicySpec as PolicySpecSchema } from '../netplug/policy/model.ts';
import { formatSelector, parseSelector, selectorKeys } from '../netplug/policy/selector.ts';
import { readAll } from '../shared/streams.ts';
import { type ComposeProblem, nearestPosition, recordPositions } from './compose/load.ts';

type Positions = ReadonlyMap<string, Omit<ComposeProblem, 'message'>>;
type Path = Array<string | number>;

/** Checks a list of policies (or one) found at `path`, each against the one schema. */
export function checkPolicies(value: unknown, path: Path, positions: Positions): { policies: PolicySpec[]; problems: ComposeProblem[] } {
  const problems: ComposeProblem[] = [];
  const at = (where: Path, message: string) => void problems.push({ ...nearestPosition(positions, where), message });
  const items = Array.isArray(value) ? value.map((item, index) => ({ item, where: [...path, index] })) : [{ item: value, where: path }];
  const policies: PolicySpec[] = [];
  const names = new Set<string>();
  for (const { item, where } of items) {
    const parsed = PolicySpecSchema.safeParse(item);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const issuePath = [...where, ...issue.path.filter((p): p is string | number => typeof p !== 'symbol')];
        if (issue.code === 'unrecognized_keys') {
          for (const key of issue.keys) at([...issuePath, key], `"${key}" is not a field of a ${describePlace(issue.path)}`);
        } else at(issuePath, `${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
      }
      continue;
    }
    if (names.has(parsed.data.name)) at([...where, 'name'], `a second policy named "${parsed.data.name}"`);
    names.add(parsed.data.name);
    policies.push(parsed.data);
  }
  return { policies, problems };
}

const describePlace = (path: readonly PropertyKey[]) => {
  const last = [...path].reverse().find((p) => typeof p === 'string');
  return last === 'source' || last === 'destination' ? 'rule\'s source or destination (selector, notSelector, nets, notNets, ports, notPorts)'
    : last === 'ingress' || last === 'egress' ? 'rule (action, protocol, source, destination)'
    : 'policy (name, order, selector, types, ingress, egress, labels)';
};

/** Reads a policy file (or stdin for "-"). */
export async function loadPolicyFile(file: string): Promise<{ policies: PolicySpec[]; problems: ComposeProblem[] }> {
  const text = await (file === '-' ? readAll(process.stdin).then((b) => b.toString('utf8')) : readFile(file, 'utf8')).catch((error: NodeJS.ErrnoException) => {
    throw Object.assign(new Error(`${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`), { code: 'unreadable_file' });
  });
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { version: '1.2', merge: true, lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => lineCounter.linePos(offset);
  if (doc.errors.length > 0) {
    return { policies: [], problems: doc.errors.map((error) => {
      const pos = error.linePos?.[0] ?? at(error.pos[0]);
      return { file, line: pos.line, column: pos.col, message: error.message.split('\n')[0]! };
    }) };
  }
  if (!isMap(doc.contents) && !isSeq(doc.contents)) return { policies: [], problems: [{ file, line: 1, column: 1, message: 'a policy file holds a policy (name:, selector:, ingress:, ...) or a list of them' }] };
  const positions = new Map<string, Omit<ComposeProblem, 'message'>>();
  recordPositions(doc.contents, file, at, positions);
  return checkPolicies(doc.toJS({ maxAliasCount: 10_000 }), [], positions);
}

/**
 * A stack's policies in the cluster: named STACK_name, labelled with the stack, selecting only
 * the stack's workloads (as a Kubernetes namespace's); a rule's selector that says nothing of
 * `stack` sees only the stack's workloads too, one that names a stack sees what it names.
 */
export function stackPolicies(policies: readonly PolicySpec[], stack: string, stackLabel: string): PolicySpec[] {
  const own = { kind: 'compare' as const, key: 'stack', op: '==' as const, value: stack };
  const scoped = (text: string, always: boolean) => {
    const selector = parseSelector(text);
    if (!always && selectorKeys(selector).has('stack')) return text;
    return formatSelector(selector.kind === 'all' ? own : { kind: 'and', left: own, right: selector });
  };
  const peer = <T extends { selector?: string }>(p: T): T => (p.selector === undefined ? p : { ...p, selector: scoped(p.selector, false) });
  const rules = (list: PolicySpec['ingress']) => list.map((r) => ({ ...r, source: peer(r.source), destination: peer(r.destination) }));
  return policies.map((p) => ({
    ...p,
    name: `${stack}_${p.name}`,
    selector: scoped(p.selector, true),
    ingress: rules(p.ingress),
    egress: rules(p.egress),
    labels: { ...p.labels, [stackLabel]: stack },
  }));
}
