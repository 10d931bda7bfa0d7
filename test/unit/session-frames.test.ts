import test from 'ava';
import fc from 'fast-check';
import { decodeFrames, DetachWatcher, encodeFrame, frameTypes, parseDetachKeys } from '../../shared/session-frames.ts';

async function* pieces(bytes: Buffer, cuts: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    yield bytes.subarray(at, Math.max(at, cut));
    at = Math.max(at, cut);
  }
  yield bytes.subarray(at);
}

test('session frames come out whole however the stream is cut', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat({ max: 3000 }), { maxLength: 10 }), async (payloads, cuts) => {
      const bytes = Buffer.concat(payloads.map((p) => encodeFrame(frameTypes.data, Buffer.from(p))));
      const seen: Buffer[] = [];
      for await (const frame of decodeFrames(pieces(bytes, cuts))) seen.push(frame.payload);
      t.deepEqual(seen.map((b) => [...b]), payloads.map((p) => [...p]));
    }),
  );
});

test('a stream that is not session frames is refused', async (t) => {
  await t.throwsAsync(async () => {
    for await (const frame of decodeFrames(pieces(Buffer.from('GET / HTTP/1.1\r\n\r\n'), []))) void frame;
  }, { message: /is not one of Shoal's/ });
});

test('detach keys read as Docker writes them', (t) => {
  t.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [0x10, 0x11]);
  t.deepEqual([...parseDetachKeys('ctrl-@,a')], [0x00, 0x61]);
  t.throws(() => parseDetachKeys('ctrl-1'), { message: /not a control key/ });
  t.throws(() => parseDetachKeys('alt-x'), { message: /not a key/ });
});

test('the detach sequence is caught across chunks, and a broken one is sent on', (t) => {
  const watcher = new DetachWatcher(Buffer.from([0x10, 0x11]));
  t.deepEqual(watcher.feed(Buffer.from('ab\x10')), { send: Buffer.from('ab'), detach: false });
  t.deepEqual(watcher.feed(Buffer.from('c')), { send: Buffer.from('\x10c'), detach: false }, 'ctrl-p then c: both go');
  t.deepEqual(watcher.feed(Buffer.from('\x10\x10')), { send: Buffer.from('\x10'), detach: false }, 'a second ctrl-p may start it again');
  t.deepEqual(watcher.feed(Buffer.from('\x11rest')), { send: Buffer.alloc(0), detach: true });
  const single = new DetachWatcher(Buffer.from([0x1d]));
  t.true(single.feed(Buffer.from('x\x1d')).detach);
});
