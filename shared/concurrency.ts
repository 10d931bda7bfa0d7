/** Runs `work` over the items with at most `limit` calls in flight; rejects with the first failure. */
export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Starts work nobody waits for, with its failure handed to `onFailure` (a log line, a task
 * state): the one way the code lets a promise go, so none is ever left to reject unhandled.
 */
export function inBackground(work: Promise<unknown>, onFailure: (error: unknown) => void): void {
  work.catch((error: unknown) => {
    try {
      onFailure(error);
    } catch {
      // A failing failure handler has nowhere left to report.
    }
  });
}
