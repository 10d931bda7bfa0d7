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

/**
 * One pass of `work` at a time: asked while a pass runs, it runs once more after it (however
 * many times it was asked), so the last ask is always served. A failed pass goes to `onFailure`.
 */
export class SerialPasses {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly onFailure: (error: unknown) => void,
  ) {}

  request(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.work()
      .catch((error: unknown) => this.onFailure(error))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.request();
        }
      });
  }

  /** Resolves once no pass runs or is asked for. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }
}

/**
 * Group commit: the first call runs `work` at once with its item alone; calls that arrive while
 * a batch is in flight wait and go together in the next one (up to `maxBatch`). Under a burst
 * (a thousand nodes joining) this turns a round trip per call into one per batch, and alone a
 * call waits for nothing. `work` answers each item in order; its failure fails the whole batch.
 */
export class Batches<T, R> {
  private waiting: { item: T; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  private inFlight = false;

  constructor(
    private readonly work: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 100,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.inFlight || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.inFlight = true;
    this.work(batch.map((w) => w.item))
      .then(
        (results) => batch.forEach((w, i) => w.resolve(results[i]!)),
        (error: unknown) => batch.forEach((w) => w.reject(error)),
      )
      .finally(() => {
        this.inFlight = false;
        this.next();
      });
  }
}
