import test from 'ava';
import { parseDuration } from '../../cli/duration.ts';
import { renderTable } from '../../cli/table.ts';

const columns = [
  { header: 'NAME', value: (r: { name: string; labels: string }) => r.name },
  { header: 'LABELS', value: (r: { name: string; labels: string }) => r.labels, shrinkable: true },
];

test('a table pads columns to their widest cell', (t) => {
  t.is(renderTable(columns, [{ name: 'h1', labels: 'a=b' }]), 'NAME   LABELS\nh1     a=b');
});

test('a table fits the terminal width by cutting shrinkable columns', (t) => {
  const out = renderTable(columns, [{ name: 'h1', labels: 'zone=a,'.repeat(20) }], 30);
  for (const line of out.split('\n')) t.true(line.length <= 30, line);
  t.true(out.includes('…'));
});

test('durations read like Docker\'s', (t) => {
  t.is(parseDuration('5s'), 5000);
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('2m'), 120_000);
  t.throws(() => parseDuration('five'), { message: /not a duration/ });
});
