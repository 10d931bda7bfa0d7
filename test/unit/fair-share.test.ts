import test from 'ava';
import fc from 'fast-check';
import { fairShares } from '../../manager/orchestrator/fair-share.ts';

test('a small claim is met in full beside a large one; the large one gets the rest', (t) => {
  t.deepEqual(fairShares([30_000, 3], 2_000), [1_997, 3]);
  t.deepEqual(fairShares([30_000, 30_000], 2_000), [1_000, 1_000]);
  t.deepEqual(fairShares([10, 20], 2_000), [10, 20]);
  t.deepEqual(fairShares([], 2_000), []);
});

test('shares never exceed their claims or the budget, and use all of it while any claim is unmet', (t) => {
  fc.assert(
    fc.property(fc.array(fc.nat(5_000), { maxLength: 50 }), fc.nat(20_000), (claims, budget) => {
      const shares = fairShares(claims, budget);
      const total = shares.reduce((a, b) => a + b, 0);
      const wanted = claims.reduce((a, b) => a + b, 0);
      if (!shares.every((s, i) => s >= 0 && s <= claims[i]!)) return false;
      if (total !== Math.min(budget, wanted)) return false;
      // Even: an unmet claim gets at least as much as any other share, less one.
      const max = Math.max(0, ...shares);
      return shares.every((s, i) => s === claims[i] || s >= max - 1);
    }),
  );
  t.pass();
});
