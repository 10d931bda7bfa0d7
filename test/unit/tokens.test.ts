import test from 'ava';
import { newJoinToken, parseJoinToken, roleForJoinToken } from '../../shared/tokens.ts';

test('a join token carries its cluster and role', (t) => {
  const token = newJoinToken('0123456789abcdef', 'manager');
  t.regex(token, /^SHOAL-1-0123456789abcdef-m-[0-9a-z]{32}$/);
  t.deepEqual(parseJoinToken(token), { clusterId: '0123456789abcdef', role: 'manager' });
});

test('malformed tokens do not parse', (t) => {
  t.is(parseJoinToken('SWMTKN-1-abc'), undefined);
  t.is(parseJoinToken(''), undefined);
});

test('only the current tokens grant a role; a rotated one grants none', (t) => {
  const current = { worker: newJoinToken('0123456789abcdef', 'worker'), manager: newJoinToken('0123456789abcdef', 'manager') };
  t.is(roleForJoinToken(current.worker, current), 'worker');
  t.is(roleForJoinToken(` ${current.manager}\n`, current), 'manager');
  const rotated = { ...current, worker: newJoinToken('0123456789abcdef', 'worker') };
  t.is(roleForJoinToken(current.worker, rotated), undefined);
  t.is(roleForJoinToken('SHOAL-1-0123456789abcdef-w-wrong', current), undefined);
});
