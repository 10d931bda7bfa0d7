/**
 * Splits `budget` among claims as evenly as they allow (water-filling): a claim smaller than
 * an even share gets all it asks, and what it leaves goes to the larger ones. The control loop
 * uses it so that one service of 30,000 replicas cannot hold a service of 3 behind it: each
 * pass creates at most its budget, and a small service's few tasks fit in the first pass.
 */
export function fairShares(claims: readonly number[], budget: number): number[] {
  const shares = claims.map(() => 0);
  const order = claims.map((_, i) => i).sort((a, b) => claims[a]! - claims[b]!);
  let left = Math.max(0, Math.floor(budget));
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const even = Math.floor(left / (order.length - k));
    // The last claims share the remainder one by one, so the whole budget is used.
    const share = Math.min(claims[i]!, Math.max(even, k === order.length - 1 ? left : even));
    shares[i] = share;
    left -= share;
  }
  return shares;
}
