import test from 'ava';
import fc from 'fast-check';
import { checkPolicies, stackPolicies } from '../../cli/policy-file.ts';
import { compileSandbox, setChanges, tableText } from '../../netplug/policy/compile.ts';
import { countersOf, parseConntrack } from '../../netplug/policy/enforcer.ts';
import { decide, type Flow } from '../../netplug/policy/evaluate.ts';
import { workloadLabels } from '../../netplug/policy/labels.ts';
import { PolicySpec, type PolicySpecInput } from '../../netplug/policy/model.ts';
import { policyTableFrom } from '../../manager/network/policy-table.ts';

const spec = (input: PolicySpecInput) => PolicySpec.parse(input);
const db = { address: '198.19.0.10', labels: { role: 'db', stack: 'shop' } };
const web = { address: '198.19.0.20', labels: { role: 'web', stack: 'shop' } };
const other = { address: '198.19.0.30', labels: { role: 'other' } };

const tcp = (source: { address: string; labels?: Record<string, string> }, destination: { address: string; labels?: Record<string, string> }, port = 80): Flow => ({
  protocol: 'tcp', source: { ...source, port: 40000 }, destination: { ...destination, port },
});

test('no policy selecting a workload allows everything; once one does, only what a rule allows passes', (t) => {
  t.deepEqual(decide([], 'ingress', tcp(other, db)), { allowed: true, reason: 'not selected' });
  const policies = [spec({ name: 'db', selector: "role == 'db'", ingress: [{ action: 'allow', protocol: 'tcp', source: { selector: "role == 'web'" }, destination: { ports: [80] } }] })];
  t.like(decide(policies, 'ingress', tcp(web, db)), { allowed: true, policy: 'db', rule: 0 });
  t.like(decide(policies, 'ingress', tcp(web, db, 443)), { allowed: false, reason: 'default deny' }, 'another port is not allowed');
  t.like(decide(policies, 'ingress', tcp(other, db)), { allowed: false, reason: 'default deny' });
  t.like(decide(policies, 'ingress', tcp({ address: '203.0.113.9' }, db)), { allowed: false }, 'an address outside the cluster matches no selector');
  t.like(decide(policies, 'egress', tcp(db, web)), { allowed: true, reason: 'not selected' }, 'a policy with ingress rules only does not govern egress');
});

test('order decides first, pass hands on to the next policy, log goes on, and notSelector and CIDRs match as Calico\'s', (t) => {
  const policies = [
    spec({ name: 'b-allow', order: 2, selector: "role == 'db'", ingress: [{ action: 'allow', source: { selector: "role == 'web'" } }] }),
    spec({ name: 'a-pass', order: 1, selector: "role == 'db'", ingress: [{ action: 'log' }, { action: 'pass', source: { selector: "role == 'web'" } }, { action: 'allow', source: { notSelector: "role == 'web'", notNets: ['198.19.0.30/32'] } }] }),
    spec({ name: 'deny-all', selector: "role == 'db'", ingress: [{ action: 'deny' }] }),
  ];
  t.like(decide(policies, 'ingress', tcp(web, db)), { allowed: true, policy: 'b-allow' }, 'web: passed on by order 1, allowed by order 2');
  t.like(decide(policies, 'ingress', tcp(other, db)), { allowed: false, policy: 'deny-all' }, 'other: excluded by notNets, denied by the unordered policy');
  t.like(decide(policies, 'ingress', tcp({ address: '203.0.113.9' }, db)), { allowed: true, policy: 'a-pass', rule: 2 });
});

test('egress is judged for the source, with the remote end\'s labels; types override Calico\'s default', (t) => {
  const policies = [spec({ name: 'quiet', selector: "role == 'web'", types: ['egress'] })];
  t.like(decide(policies, 'egress', tcp(web, db)), { allowed: false, reason: 'default deny' });
  t.like(decide(policies, 'ingress', tcp(db, web)), { allowed: true, reason: 'not selected' });
});

test('the compiled table jumps per endpoint, counts every rule, leaves out rules whose local end cannot match, and names remote sets', (t) => {
  const policies = [spec({
    name: 'db', order: 1, selector: "role == 'db'",
    ingress: [
      { action: 'allow', protocol: 'tcp', source: { selector: "role == 'web'" }, destination: { ports: [80, '8000:8080'] } },
      { action: 'deny', destination: { selector: "role == 'cache'" } },
      { action: 'pass', source: { nets: ['203.0.113.0/24'] } },
    ],
  })];
  const compiled = compileSandbox([db], policies, [db, web, other]);
  t.regex(compiled.structure, /ip daddr vmap \{ 198\.19\.0\.10 : jump e0-ingress \}/);
  t.regex(compiled.structure, /meta l4proto tcp ip saddr @w-[0-9a-f]{12} tcp dport \{ 80, 8000-8080 \} counter accept comment "198\.19\.0\.10\|ingress\|db\|0\|allow"/);
  t.notRegex(compiled.structure, /\|1\|deny/, 'the rule for role == cache cannot match db: left out');
  t.regex(compiled.structure, /ip saddr \{ 203\.0\.113\.0\/24 \} counter return/);
  t.regex(compiled.structure, /counter drop comment "198\.19\.0\.10\|ingress\|\|\|default-deny"/);
  t.notRegex(compiled.structure, /chain egress/, 'no egress chain when nothing governs egress');
  t.deepEqual([...compiled.sets.values()], [['198.19.0.20']]);
  t.deepEqual(compiled.rules.map((r) => r.action), ['allow', 'pass', 'default-deny']);
  const text = tableText(compiled);
  t.true(text.startsWith('table inet shoal-policy {}\ndelete table inet shoal-policy\ntable inet shoal-policy {\n'), 'one transaction replaces the table');
  t.regex(text, /elements = \{ 198\.19\.0\.20 \}/);
  t.deepEqual(compileSandbox([other], policies, [db, web, other]).rules, [], 'a sandbox no policy governs gets no table');
  t.is(tableText(compileSandbox([other], policies, [])), 'table inet shoal-policy {}\ndelete table inet shoal-policy\n');
});

test('a workload coming or going changes set elements only, and the structure stays', (t) => {
  const policies = [spec({ name: 'db', selector: "role == 'db'", ingress: [{ action: 'allow', source: { selector: "role == 'web'" } }] })];
  const before = compileSandbox([db], policies, [db, web]);
  const second = { address: '198.19.0.21', labels: { role: 'web' } };
  const after = compileSandbox([db], policies, [db, second]);
  t.is(after.structure, before.structure);
  const name = [...after.sets.keys()][0]!;
  t.is(setChanges(before.sets, after.sets), `add element inet shoal-policy ${name} { 198.19.0.21 }\ndelete element inet shoal-policy ${name} { 198.19.0.20 }\n`);
  t.is(setChanges(after.sets, after.sets), '');
});

test('the compiled rules and the evaluator agree on which rules can match an endpoint (property)', (t) => {
  const roles = ['db', 'web', 'other'];
  fc.assert(fc.property(
    fc.array(fc.record({ action: fc.constantFrom('allow' as const, 'deny' as const, 'pass' as const), local: fc.constantFrom(...roles), remote: fc.constantFrom(...roles) }), { maxLength: 6 }),
    fc.constantFrom(...roles),
    (rules, role) => {
      const policy = spec({ name: 'p', selector: 'all()', ingress: rules.map((r) => ({ action: r.action, source: { selector: `role == '${r.remote}'` }, destination: { selector: `role == '${r.local}'` } })) });
      const endpoint = { address: '198.19.0.1', labels: { role } };
      const installed = compileSandbox([endpoint], [policy], []).rules.filter((r) => r.action !== 'default-deny').map((r) => r.rule);
      const possible = rules.flatMap((r, index) => (r.local === role ? [index] : []));
      return JSON.stringify(installed) === JSON.stringify(possible);
    },
  ));
  t.pass();
});

test('workload labels: service and container labels, with service, stack, network and node set by Shoal', (t) => {
  t.deepEqual(workloadLabels({ containerLabels: { a: '1', node: 'spoofed' }, serviceLabels: { role: 'db', 'com.docker.stack.namespace': 'shop' }, service: 'shop_db', network: 'shop_default', node: 'h1' }), {
    a: '1', role: 'db', 'com.docker.stack.namespace': 'shop', service: 'shop_db', stack: 'shop', network: 'shop_default', node: 'h1',
  });
});

test('the leader\'s policy table lists every workload endpoint with its current service labels, and is empty without policies', (t) => {
  const policy = { spec: spec({ name: 'p' }), createdAt: '', updatedAt: '' };
  const service = { id: 's1', spec: { name: 'web', labels: { role: 'web' } } } as never;
  const task = { id: 't1', serviceId: 's1', serviceName: 'web', spec: { labels: { role: 'old' }, container: { labels: {} } } } as never;
  const node = { id: 'n1', description: { hostname: 'h1' } } as never;
  const network = { id: 'net1', spec: { name: 'front' } } as never;
  const leases = [
    { networkId: 'net1', address: '198.19.0.5', owner: 't1', nodeId: 'n1', allocatedAt: '' },
    { networkId: 'net1', address: '198.19.0.6', owner: 'c1', nodeId: 'n1', labels: { team: 'ops' }, allocatedAt: '' },
    { networkId: 'net1', address: '198.19.0.2', owner: 'vip:s1', allocatedAt: '' },
  ];
  const table = policyTableFrom({ policies: [policy], services: [service], tasks: [task], leases, nodes: [node], networks: [network] });
  t.deepEqual(table.workloads, [
    { address: '198.19.0.5', labels: { role: 'web', service: 'web', network: 'front', node: 'h1' } },
    { address: '198.19.0.6', labels: { team: 'ops', network: 'front', node: 'h1' } },
  ]);
  t.deepEqual(policyTableFrom({ policies: [], services: [service], tasks: [task], leases, nodes: [node], networks: [network] }), { policies: [], workloads: [] });
});

test('conntrack listings and nft counters are read back', (t) => {
  const listing = [
    'tcp      6 431999 ESTABLISHED src=198.19.0.20 dst=198.19.0.2 sport=40000 dport=80 src=198.19.0.10 dst=198.19.0.20 sport=80 dport=40000 [ASSURED] mark=0 use=1',
    'icmp     1 29 src=198.19.0.20 dst=198.19.0.10 type=8 code=0 id=7 src=198.19.0.10 dst=198.19.0.20 type=0 code=0 id=7 mark=0 use=1',
  ].join('\n');
  t.deepEqual(parseConntrack(listing), [
    { protocol: 'tcp', source: '198.19.0.20', destination: '198.19.0.2', sport: 40000, dport: 80, replySource: '198.19.0.10', replySport: 80 },
    { protocol: 'icmp', source: '198.19.0.20', destination: '198.19.0.10', replySource: '198.19.0.10' },
  ]);
  const json = JSON.stringify({ nftables: [{ metainfo: {} }, { rule: { comment: '198.19.0.10|ingress|db|0|allow', expr: [{ match: {} }, { counter: { packets: 3, bytes: 180 } }, { accept: null }] } }, { rule: { comment: 'not ours', expr: [] } }] });
  t.deepEqual(countersOf(json), [{ endpoint: '198.19.0.10', direction: 'ingress', policy: 'db', rule: 0, action: 'allow', packets: 3, bytes: 180 }]);
});

test('policy files: each problem at its path, a selector\'s column named, ports without a protocol refused, two of one name refused', (t) => {
  const positions = new Map([['0.selector', { file: 'p.yaml', line: 2, column: 3 }], ['0.ingres', { file: 'p.yaml', line: 3, column: 3 }], ['1.name', { file: 'p.yaml', line: 5, column: 3 }], ['1.ingress.0.destination.ports', { file: 'p.yaml', line: 8, column: 9 }], ['3.name', { file: 'p.yaml', line: 10, column: 3 }]]);
  const { policies, problems } = checkPolicies([{ name: 'a', selector: "role = 'db'", ingres: [] }, { name: 'b', ingress: [{ action: 'allow', destination: { ports: [80] } }] }, { name: 'c' }, { name: 'c' }], [], positions);
  t.deepEqual(policies.map((p) => p.name), ['c', 'c'], 'the valid ones come back (the caller refuses the file while problems remain)');
  const said = problems.map((p) => `${p.line}:${p.column} ${p.message}`);
  t.true(said.some((p) => /^2:3 selector: selector "role = 'db'": .* at column 6$/.test(p)), said.join('\n'));
  t.true(said.includes('3:3 "ingres" is not a field of a policy (name, order, selector, types, ingress, egress, labels)'), said.join('\n'));
  t.true(said.includes('8:9 ingress.0.destination.ports: ports need protocol: tcp, udp or sctp'), said.join('\n'));
  t.true(said.includes('10:3 a second policy named "c"'), said.join('\n'));
});

test('a stack\'s policies are named, labelled and scoped to the stack; a rule naming a stack keeps it', (t) => {
  const [scoped] = stackPolicies([spec({ name: 'db', selector: "role == 'db'", ingress: [{ action: 'allow', source: { selector: "role == 'web'" } }, { action: 'allow', source: { selector: "stack == 'ops'" } }] })], 'shop', 'com.docker.stack.namespace');
  t.is(scoped!.name, 'shop_db');
  t.is(scoped!.selector, "(stack == 'shop' && role == 'db')");
  t.is(scoped!.ingress[0]!.source.selector, "(stack == 'shop' && role == 'web')");
  t.is(scoped!.ingress[1]!.source.selector, "stack == 'ops'");
  t.deepEqual(scoped!.labels, { 'com.docker.stack.namespace': 'shop' });
});
