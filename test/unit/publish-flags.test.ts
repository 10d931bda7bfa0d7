import test from 'ava';
import { networksAndAliases, parseExtraHost, parsePublish, publishKey } from '../../cli/publish-flags.ts';

test('-p takes Docker\'s short form, ranges and the long form', (t) => {
  t.deepEqual(parsePublish('8080:80'), [{ publishedPort: 8080, targetPort: 80, protocol: 'tcp', mode: 'ingress' }]);
  t.deepEqual(parsePublish('5353:53/udp'), [{ publishedPort: 5353, targetPort: 53, protocol: 'udp', mode: 'ingress' }]);
  t.deepEqual(parsePublish('8080-8081:80-81').map((p) => `${p.publishedPort}:${p.targetPort}`), ['8080:80', '8081:81']);
  t.deepEqual(parsePublish('published=8081,target=80,mode=host,protocol=udp'), [{ publishedPort: 8081, targetPort: 80, protocol: 'udp', mode: 'host' }]);
  t.deepEqual(parsePublish('198.18.0.1:8080:80', '--publish', { hostIp: true, mode: 'host' }), [{ publishedPort: 8080, targetPort: 80, protocol: 'tcp', mode: 'host', hostIp: '198.18.0.1' }]);
});

test('a service\'s -p with a target alone leaves the published port to the cluster (0), in ingress mode only', (t) => {
  t.deepEqual(parsePublish('80', '--publish', { assignable: true }), [{ publishedPort: 0, targetPort: 80, protocol: 'tcp', mode: 'ingress' }]);
  t.deepEqual(parsePublish('53/udp', '--publish', { assignable: true }), [{ publishedPort: 0, targetPort: 53, protocol: 'udp', mode: 'ingress' }]);
  t.deepEqual(parsePublish('target=80', '--publish', { assignable: true }), [{ publishedPort: 0, targetPort: 80, protocol: 'tcp', mode: 'ingress' }]);
  t.throws(() => parsePublish('target=80,mode=host', '--publish', { assignable: true }), { message: /the cluster picks one only in ingress mode/ });
});

test('bad -p values are refused naming the flag and the fix', (t) => {
  t.throws(() => parsePublish('80'), { message: /--publish: "80" names only the container's port; give the published port too \(8080:80\)/ });
  t.throws(() => parsePublish('80800:80'), { message: /published port "80800" is not a port from 1 to 65535/ });
  t.throws(() => parsePublish('8080:80/sctp'), { message: /sctp is not supported/ });
  t.throws(() => parsePublish('8080-8082:80-81'), { message: /ranges differ in length/ });
  t.throws(() => parsePublish('target=80'), { message: /no published port/ });
  t.throws(() => parsePublish('published=1,target=80,mode=local'), { message: /mode "local" is not ingress or host/ });
  t.throws(() => parsePublish('198.18.0.1:8080:80'), { message: /a service publishes on every address of its nodes/ });
});

test('--publish-rm names a port by number, with its protocol, or as a whole value', (t) => {
  t.is(publishKey('8080'), '8080/tcp');
  t.is(publishKey('53/udp'), '53/udp');
  t.is(publishKey('published=8081,target=80'), '8081/tcp');
});

test('--network name=N,alias=A gives the network and its aliases; --add-host takes name:address', (t) => {
  t.deepEqual(networksAndAliases(['app', 'name=back,alias=db,alias=cache']), { networks: ['app', 'back'], aliases: { back: ['db', 'cache'] } });
  t.throws(() => networksAndAliases(['name=back,driver-opt=x']), { message: /"driver-opt" is not name or alias/ });
  t.is(parseExtraHost('db=198.19.0.9', '--add-host'), 'db:198.19.0.9');
  t.throws(() => parseExtraHost('db', '--add-host'), { message: /--add-host: "db" is not NAME:ADDRESS/ });
});
