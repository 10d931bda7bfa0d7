import test from 'ava';
import { Writable } from 'node:stream';
import { createLogger, logLevelFrom } from '../../shared/log.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

test('log lines keep their JSON fields: time, level, component, message and the caller\'s fields', async (t) => {
  const { lines, destination } = capture();
  createLogger('agent', { destination }).child('session').warn('session lost', { peer: 'p1' });
  await new Promise((resolve) => setImmediate(resolve));
  t.is(lines.length, 1);
  const [line] = lines;
  t.like(line, { level: 'warn', component: 'agent.session', message: 'session lost', peer: 'p1' });
  t.regex(String(line!.time), /^\d{4}-\d\d-\d\dT/);
});

test('tokens and secrets are redacted, also nested', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger('manager', { destination });
  log.info('joined', { token: 'SHOAL-1-abc-w-secret', request: { headers: { authorization: 'Bearer xyz' } }, spec: { joinToken: 'SHOAL-1-m' } });
  await new Promise((resolve) => setImmediate(resolve));
  const text = JSON.stringify(lines);
  t.false(text.includes('SHOAL-1'), text);
  t.false(text.includes('Bearer'), text);
  t.is(lines[0]!.token, '[redacted]');
});

test('the level is set per daemon; lines below it are dropped; a wrong level is refused', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger('agent', { destination, level: 'warn' });
  log.info('not shown');
  log.debug('not shown');
  log.error('shown');
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(lines.map((l) => l.message), ['shown']);
  t.is(logLevelFrom('debug'), 'debug');
  t.is(logLevelFrom(undefined), 'info');
  t.throws(() => logLevelFrom('loud'), { message: /not one of debug, info, warn, error, silent/ });
});
