import { randomBytes } from 'node:crypto';
import type { Journal } from './journal';
import type { JobRecord, JobSpec } from './types';

interface Pending {
  readonly id: string;
  readonly spec: JobSpec;
  readonly key?: string;
  readonly promise: Promise<JobRecord>;
  resolve(j: JobRecord): void;
  reject(e: Error): void;
}

/**
 * Journals submits: those that arrive in the same event-loop turn share one SQLite transaction, and
 * transactions committed while an fdatasync runs share the next one (Journal.sync: group commit, off
 * the event loop), which is what makes durable submits cheap. Each resolves (and its job is queued)
 * only once its job is on disk.
 */
export class SubmitBatch {
  private readonly pending: Pending[] = [];
  /** Committed, waiting for their fdatasync: not answered, not queued yet. */
  private readonly syncing = new Set<Pending>();
  private scheduled = false;

  constructor(
    private readonly journal: Journal,
    private readonly accepted: (jobs: JobRecord[]) => void,
    /** Maps a failed transaction to the error every submit of the batch gets. */
    private readonly failed: (e: unknown) => Error,
  ) {}

  get size(): number {
    return this.pending.length + this.syncing.size;
  }

  /** The job of an idempotency key: journaled, or in the batch not yet written or not yet synced (then once it is). */
  async byKey(key: string): Promise<JobRecord | undefined> {
    const waiting = this.pending.find((p) => p.key === key) ?? [...this.syncing].find((p) => p.key === key);
    if (waiting) return waiting.promise;
    return this.journal.jobByKey(key);
  }

  add(spec: JobSpec, key?: string): Promise<JobRecord> {
    const id = `j-${Date.now().toString(36)}-${randomBytes(5).toString('hex')}`;
    let settle!: { resolve: (j: JobRecord) => void; reject: (e: Error) => void };
    const promise = new Promise<JobRecord>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.pending.push({ id, spec, key, promise, ...settle });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return promise;
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending.splice(0);
    let jobs: JobRecord[];
    try {
      jobs = this.journal.transaction(() => batch.map((b) => this.journal.insertJob(b.id, b.spec, b.key)), 'deferred');
    } catch (e) {
      const err = this.failed(e);
      for (const b of batch) b.reject(err);
      return;
    }
    for (const b of batch) this.syncing.add(b);
    this.journal.sync().then(() => {
      for (const b of batch) this.syncing.delete(b);
      this.accepted(jobs);
      batch.forEach((b, i) => b.resolve(jobs[i]));
    }, (e: unknown) => {
      // the rows are committed but may not be on disk: answer the failure (a retry with the same
      // Idempotency-Key finds the job), and queue them (they are in the journal a restart reads)
      for (const b of batch) this.syncing.delete(b);
      this.accepted(jobs);
      const err = this.failed(e);
      for (const b of batch) b.reject(err);
    });
  }
}
