import test from 'ava';
import fc from 'fast-check';
import { formatSelector, parseSelector, type Selector, SelectorError, selects } from '../../netplug/policy/selector.ts';

const db = { role: 'db', stack: 'shop', tier: 'back' };
const web = { role: 'web', stack: 'ops', 'com.docker.stack.namespace': 'ops' };

test('selectors select as Calico\'s: equality, sets, has, not, and before or, string matches', (t) => {
  const check = (text: string, labels: Record<string, string>) => selects(parseSelector(text), labels);
  t.true(check("role == 'db' && stack in {'shop','ops'}", db));
  t.false(check("role == 'db' && stack in {'shop','ops'}", web));
  t.true(check('has(tier)', db));
  t.false(check('has(tier)', web));
  t.true(check('!has(tier)', web));
  t.true(check("role != 'db'", {}), '!= selects a workload without the label, as Calico');
  t.false(check("role == 'db'", {}));
  t.true(check("stack not in {'shop'}", web));
  t.true(check("role == 'web' || role == 'db' && stack == 'nowhere'", web), '&& binds tighter than ||');
  t.false(check("(role == 'web' || role == 'db') && stack == 'nowhere'", web));
  t.true(check("role starts with 'w' && role ends with 'b' && role contains 'e'", web));
  t.true(check('all()', {}));
  t.true(check('com.docker.stack.namespace == "ops"', web), 'keys may hold dots and slashes; values either quote');
});

test('a bad selector says what is wrong at its column', (t) => {
  const error = (text: string) => t.throws(() => parseSelector(text), { instanceOf: SelectorError });
  t.is(error("role == db").message, 'expected a quoted value after ==, found "db" at column 9');
  t.is(error("role == 'db' &&").message, 'expected a label key, has(...), all(), "!" or "(", found the end at column 16');
  t.is(error("role = 'db'").message, 'unexpected character "=" at column 6');
  t.is(error("stack in {'a' 'b'}").message, 'expected "," or "}" in the set, found \'b\' at column 15');
  t.is(error("(role == 'db'").message, 'expected a closing ")", found the end at column 14');
  t.is(error("role == 'db").message, 'unterminated string (no closing \') at column 9');
  t.is(error("role starts 'w'").message, 'expected "with" after "starts", found \'w\' at column 13');
  t.is(error('').message, 'a selector cannot be empty (use all() to select every workload) at column 1');
  t.is(error("role == 'db' role").message, 'expected && or || or the end, found "role" at column 14');
});

const key = fc.stringMatching(/^[a-z][a-z0-9_./-]{0,8}$/).filter((k) => !['in', 'not', 'has', 'all', 'contains', 'starts', 'ends', 'with'].includes(k));
const value = fc.stringMatching(/^[a-z0-9 _.-]{0,6}$/);
const selector: fc.Arbitrary<Selector> = fc.letrec<{ node: Selector }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Selector>({ kind: 'all' }),
    key.map<Selector>((k) => ({ kind: 'has', key: k })),
    fc.record({ key, op: fc.constantFrom('==', '!=', 'contains', 'starts with', 'ends with' as const), value }).map<Selector>((r) => ({ kind: 'compare', ...r })),
    fc.record({ key, values: fc.array(value, { maxLength: 3 }), negated: fc.boolean() }).map<Selector>((r) => ({ kind: 'in', ...r })),
    tie('node').map<Selector>((inner) => ({ kind: 'not', inner })),
    fc.record({ kind: fc.constantFrom('and' as const, 'or' as const), left: tie('node'), right: tie('node') }),
  ),
})).node;

test('every selector, written out, parses back to itself and selects the same workloads', (t) => {
  fc.assert(
    fc.property(selector, fc.dictionary(key, value, { maxKeys: 4 }), (tree, labels) => {
      const again = parseSelector(formatSelector(tree));
      t.deepEqual(again, tree);
      return selects(again, labels) === selects(tree, labels);
    }),
    { numRuns: 300 },
  );
});
