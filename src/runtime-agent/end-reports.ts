import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { DiskGuard } from './faults';
import type { Journal } from './journal';
import type { RunDirTrash } from './supervisor';

/**
 * Reports of ends committed with a deferred fsync (see WalSync): each runs once the journal's shared
 * fdatasync has put the end on disk. Shutdown waits for them (the journal closes after).
 */
export class EndReports {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly journal: Journal, private readonly guard: DiskGuard, private readonly logger: Logger, private readonly trash: RunDirTrash) {}

  /** Waits for the journal's fdatasync; a failed one is a disk fault (noted) or logged: the commit stands either way. */
  synced(): Promise<void> {
    return this.journal.sync().catch((e: unknown) => {
      if (!this.guard.note(e)) this.logger.error({ err: e }, 'journal fdatasync failed');
    });
  }

  /** Runs `report` once what is committed now is on disk. */
  after(report: () => void): Promise<void> {
    const p: Promise<void> = this.synced().then(report).finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  /** Resolves when every report has run. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled(this.pending);
  }

  /** Removes a finished run's directory (see RunDirTrash; held and retried through the guard on a disk fault). */
  removeDir(dir: string): void {
    try {
      this.trash.discard(dir);
    } catch {
      this.guard.durable(() => fs.rmSync(dir, { recursive: true, force: true }));
    }
  }
}
