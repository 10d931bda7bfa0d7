import test from 'ava';
import { Batches } from '../../shared/concurrency.ts';

/** A batch function that holds each batch until the test lets it go. */
function heldBatches(maxBatch?: number) {
  const seen: number[][] = [];
  const releases: (() => void)[] = [];
  const batches = new Batches<number, number>(async (items) => {
    seen.push(items);
    await new Promise<void>((resolve) => releases.push(resolve));
    if (items.includes(-1)) throw new Error('refused');
    return items.map((n) => n * 10);
  }, maxBatch);
  return { batches, seen, release: () => releases.shift()?.() };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a call alone goes at once; calls made while a batch is in flight go together in the next', async (t) => {
  const { batches, seen, release } = heldBatches();
  const first = batches.add(1);
  await settle();
  t.deepEqual(seen, [[1]]);
  const later = [batches.add(2), batches.add(3), batches.add(4)];
  await settle();
  t.deepEqual(seen, [[1]], 'the others wait for the batch in flight');
  release();
  t.is(await first, 10);
  await settle();
  t.deepEqual(seen, [[1], [2, 3, 4]]);
  release();
  t.deepEqual(await Promise.all(later), [20, 30, 40]);
});

test('a batch holds at most maxBatch items, and a failed batch fails only its own calls', async (t) => {
  const { batches, seen, release } = heldBatches(2);
  const first = batches.add(1);
  const rest = [batches.add(2), batches.add(-1), batches.add(5)];
  await settle();
  release();
  await first;
  await settle();
  t.deepEqual(seen, [[1], [2, -1]]);
  release();
  await t.throwsAsync(rest[0]!, { message: 'refused' });
  await t.throwsAsync(rest[1]!, { message: 'refused' });
  await settle();
  release();
  t.is(await rest[2]!, 50);
  t.deepEqual(seen, [[1], [2, -1], [5]]);
});
