import test from 'ava';
import { describeIssues, NodeUpdateRequest } from '../../shared/schemas.ts';

test('a node update accepts availability and labels', (t) => {
  const parsed = NodeUpdateRequest.parse({ availability: 'drain', labelAdd: { zone: 'a' }, labelRm: ['old'] });
  t.is(parsed.availability, 'drain');
  t.deepEqual(parsed.labelAdd, { zone: 'a' });
});

test('a node update with an unknown availability says which field is wrong', (t) => {
  const parsed = NodeUpdateRequest.safeParse({ availability: 'sleep' });
  t.false(parsed.success);
  if (!parsed.success) t.regex(describeIssues(parsed.error), /^availability: /);
});

test('a node update refuses fields it does not know', (t) => {
  t.false(NodeUpdateRequest.safeParse({ availabilty: 'drain' }).success);
});

test('label keys must be plain words', (t) => {
  t.false(NodeUpdateRequest.safeParse({ labelAdd: { 'bad key': 'x' } }).success);
});
