import { keys } from '../../shared/keys.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import type { CommitResult, WriteOp } from '../../shared/store/store.ts';

/** A store whose commits of tasks wait `slowMs` while `slow` is set (etcd under load). */
export class SlowStore extends MemoryStore {
  slow = false;
  constructor(private readonly slowMs = 0) {
    super();
  }
  override async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    if (this.slow && ops.some((op) => op.key.startsWith(keys.tasks))) await new Promise((resolve) => setTimeout(resolve, this.slowMs));
    return super.commit(ops);
  }
}
