import type { Command } from 'commander';
import { ShoalError } from '../../shared/errors.ts';
import type { PolicyHostView } from '../../manager/api/policies.ts';
import { directionsOf, type PolicyObject } from '../../netplug/policy/model.ts';
import { formatAge } from '../duration.ts';
import { formatProblem } from '../compose/load.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { checkInspectFormat, parseFormat, printList, printObject } from '../output.ts';
import { loadPolicyFile } from '../policy-file.ts';
import { collect, connect, type GlobalOptions, getEach } from './common.ts';

type PolicyDetail = PolicyObject & { hosts?: PolicyHostView[] };

/** One rule as a line: `allow tcp from role == 'web' to ports 5432`. */
function describeRule(rule: PolicyObject['spec']['ingress'][number]): string {
  const side = (peer: typeof rule.source) => [
    peer.selector && `${peer.selector}`,
    peer.notSelector && `not ${peer.notSelector}`,
    peer.nets && `nets ${peer.nets.join(',')}`,
    peer.notNets && `not nets ${peer.notNets.join(',')}`,
    peer.ports && `ports ${peer.ports.join(',')}`,
    peer.notPorts && `not ports ${peer.notPorts.join(',')}`,
  ].filter(Boolean).join(' ');
  const from = side(rule.source);
  const to = side(rule.destination);
  return [rule.action, rule.protocol, from && `from ${from}`, to && `to ${to}`].filter(Boolean).join(' ');
}

function pretty(policy: PolicyDetail): string {
  const lines = [
    `Name:        ${policy.spec.name}`,
    `Order:       ${policy.spec.order ?? '(none: after every ordered policy)'}`,
    `Selector:    ${policy.spec.selector}`,
    `Types:       ${directionsOf(policy.spec).join(', ')}`,
  ];
  for (const direction of ['ingress', 'egress'] as const) {
    if (!directionsOf(policy.spec).includes(direction)) continue;
    lines.push(`${direction[0]!.toUpperCase()}${direction.slice(1)} rules:`);
    policy.spec[direction].forEach((rule, index) => lines.push(`  ${index}  ${describeRule(rule)}`));
    lines.push(`  -  deny what no rule allowed (default deny)`);
  }
  for (const host of policy.hosts ?? []) {
    lines.push(`Host ${host.hostname}:${host.error ? ` (${host.error})` : ''}${host.workloads.length === 0 ? ' selects no workload here' : ''}`);
    for (const workload of host.workloads) {
      lines.push(`  ${workload.name} ${workload.address} (${workload.directions.join(', ')})`);
      for (const rule of workload.rules) lines.push(`    ${rule.direction} rule ${rule.rule} ${rule.action}: ${rule.packets} packets, ${rule.bytes} bytes${rule.action === 'deny' && rule.packets > 0 ? '  <- dropping' : ''}`);
      for (const deny of workload.defaultDeny) lines.push(`    ${deny.direction} default deny: ${deny.packets} packets, ${deny.bytes} bytes${deny.packets > 0 ? '  <- dropping' : ''}`);
    }
  }
  return lines.join('\n');
}

/** `shoal policy`: network policies (Calico's model) enforced on every driver. */
export function registerPolicyCommands(program: Command, globals: () => GlobalOptions): void {
  const command = program.command('policy').description('Network policies: who may talk to whom, by workload labels');

  command
    .command('create')
    .description('Create policies from a file (one policy or a list of them), or stdin with -f -')
    .requiredOption('-f, --file <file>', 'the policy file (YAML), or - for stdin')
    .option('--replace', 'replace policies of the same names instead of refusing them')
    .action(async (options: { file: string; replace?: boolean }) => {
      const { policies, problems } = await loadPolicyFile(options.file).catch((error: Error) => {
        throw new ShoalError('invalid', 'unreadable_file', error.message);
      });
      if (problems.length > 0) {
        throw new ShoalError('invalid', 'invalid_policy_file', `the policy file has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
          hint: 'fix them and run the command again; no policy was created (docs/networking.md shows a policy file)',
        });
      }
      const client = await connect(globals());
      for (const policy of policies) {
        const made = await client.call<PolicyObject & { outcome: string }>('POST', `/v1/policies${options.replace ? '?replace=true' : ''}`, policy);
        process.stdout.write(`${made.spec.name}${made.outcome === 'created' ? '' : ` (${made.outcome})`}\n`);
      }
    });

  command
    .command('ls')
    .alias('list')
    .description('List policies in evaluation order')
    .option('-f, --filter <key=value>', 'name=, label= (repeatable)', collect, [])
    .option('-q, --quiet', 'only names')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { filter: string[]; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, ['name', 'label']);
      const order = (p: PolicyObject) => p.spec.order ?? Number.POSITIVE_INFINITY;
      const policies = keep(await (await connect(globals())).call<PolicyObject[]>('GET', '/v1/policies'), filters, {
        name: (p, v) => p.spec.name.startsWith(v),
        label: (p, v) => labelMatches(p.spec.labels, v),
      }).sort((a, b) => order(a) - order(b) || a.spec.name.localeCompare(b.spec.name));
      if (options.quiet) return void process.stdout.write(policies.map((p) => `${p.spec.name}\n`).join(''));
      printList(policies, [
        { header: 'NAME', value: (p) => p.spec.name, shrinkable: true },
        { header: 'ORDER', value: (p) => (p.spec.order === undefined ? '-' : String(p.spec.order)) },
        { header: 'SELECTOR', value: (p) => p.spec.selector, shrinkable: true },
        { header: 'TYPES', value: (p) => directionsOf(p.spec).join(',') },
        { header: 'RULES', value: (p) => `${p.spec.ingress.length} in, ${p.spec.egress.length} out` },
        { header: 'CREATED', value: (p) => formatAge(p.createdAt) },
      ], format);
    });

  command
    .command('inspect')
    .description('Show policies as JSON, with each host\'s selected workloads and rule counters')
    .argument('<name...>')
    .option('--pretty', 'a readable summary instead of JSON')
    .option('-f, --format <format>', 'json (the default)')
    .action(async (names: string[], options: { pretty?: boolean; format?: string }) => {
      checkInspectFormat(options.format, true);
      const client = await connect(globals());
      const found = await getEach<PolicyDetail>(client, '/v1/policies', names, '?verbose=true');
      if (!options.pretty) return printObject(found);
      process.stdout.write(`${found.map(pretty).join('\n\n')}\n`);
    });

  command
    .command('rm')
    .alias('remove')
    .description('Remove policies (what they denied passes again at once)')
    .argument('<name...>')
    .action(async (names: string[]) => {
      const client = await connect(globals());
      // As Docker's rm: every name is tried; the failures are told at the end.
      const failed: string[] = [];
      for (const name of names) {
        try {
          const removed = await client.call<PolicyObject>('DELETE', `/v1/policies/${encodeURIComponent(name)}`);
          process.stdout.write(`${removed.spec.name}\n`);
        } catch (error) {
          failed.push((error as Error).message);
        }
      }
      if (failed.length > 0) throw new ShoalError('not_found', 'policy_rm_failed', failed.join('\n'));
    });
}
