import test from 'ava';
import { expandVariables } from '../../agent/engine/images/build.ts';

const values: Record<string, string> = { HOME: '/srv', EMPTY: '', NAME: 'app' };
const lookup = (name: string) => values[name];

test('instructions expand $VAR, ${VAR} and the :- and :+ forms as Docker does', (t) => {
  t.is(expandVariables('$HOME/data', lookup), '/srv/data');
  t.is(expandVariables('${NAME}-1', lookup), 'app-1');
  t.is(expandVariables('${MISSING:-fallback} ${EMPTY:-fallback} ${NAME:-fallback}', lookup), 'fallback fallback app');
  t.is(expandVariables('${NAME:+set} ${MISSING:+set}.', lookup), 'set .');
  t.is(expandVariables('\\$HOME stays', lookup), '$HOME stays');
  t.is(expandVariables('$MISSING', lookup), '');
});
