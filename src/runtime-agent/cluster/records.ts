import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { joinUri, type Storage } from '../storage/index';
import type { Failure, JobSpec } from '../types';

export type ClusterJobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const CLUSTER_TERMINAL: readonly ClusterJobState[] = ['succeeded', 'failed', 'cancelled'];

export interface ClusterAttempt {
  /** 1, 2 ...: starts of the job on any host (MLINFRA_CLUSTER_ATTEMPT). */
  readonly attempt: number;
  /** The queue's delivery count when this attempt was leased (SQS ApproximateReceiveCount, Pub/Sub deliveryAttempt). */
  readonly deliveries: number;
  readonly host: string;
  readonly startedAt: string;
  endedAt?: string;
  /** succeeded, failed, cancelled, interrupted (released on a notice or shutdown). Absent: the host was lost. */
  outcome?: string;
  exitCode?: number | null;
  failure?: Failure | null;
}

/** A cluster job as kept in the bucket (`<artifacts>/jobs/<id>.json`): what `status` and `list` answer on any host. */
export interface ClusterJob {
  readonly id: string;
  readonly spec: JobSpec;
  state: ClusterJobState;
  readonly createdAt: string;
  updatedAt: string;
  attempts: ClusterAttempt[];
  failure?: (Omit<Failure, 'class'> & { class: Failure['class'] | 'dead-letter' }) | null;
  exitCode?: number | null;
  /** The last periodic checkpoint upload: when it worked, and its error when it did not. */
  checkpoint?: { savedAt?: string; error?: string; errorAt?: string };
  cancelRequested?: boolean;
}

/** What a queue message carries. */
export interface ClusterMessage {
  readonly v: 1;
  readonly id: string;
  readonly spec: JobSpec;
  readonly submittedAt: string;
}

/** A conditional write lost (checked by code: storage-s3.js and storage-gcs.js carry their own copy of the class). */
export function isPreconditionFailed(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'precondition_failed';
}

export const CLUSTER_JOB_ID = /^[a-z0-9]{8,12}-[a-f0-9]{12}$/;

/** Why a job went to the dead-letter queue, as `list` shows it. */
export function deadLetterReason(job: ClusterJob, maxAttempts: number): string {
  const last = job.attempts[job.attempts.length - 1];
  const lost = job.attempts.filter((a) => !a.endedAt).length;
  return `dead-lettered after ${job.attempts.length} attempts (--max-attempts ${maxAttempts}); ${lost} ended with their host lost; `
    + `the last on ${last.host} at ${last.startedAt}${last.outcome ? ` (${last.outcome}${last.failure ? `: ${last.failure.reason}` : ''})` : ' (host lost)'}`;
}

/** Time-sortable: base36 milliseconds, then 48 random bits. */
export function newClusterJobId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** What a host keeps of log chunks it has read (followers of a long job read them again every poll). */
const CHUNK_CACHE_BYTES = 16 * 1024 * 1024;

/** Job records, checkpoints and log chunks under the cluster's artifacts prefix, through the agent's storage backends. */
export class ClusterStore {
  constructor(private readonly storage: Storage, readonly artifacts: string, private readonly tmpDir: string) {
    fs.mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  }

  jobUri(id: string): string {
    return joinUri(this.artifacts, `jobs/${id}.json`);
  }

  checkpointUri(id: string): string {
    return joinUri(this.artifacts, `checkpoints/${id}`);
  }

  logPrefix(id: string): string {
    return joinUri(this.artifacts, `logs/${id}`);
  }

  exists(id: string): Promise<boolean> {
    return this.storage.exists(this.jobUri(id));
  }

  async read(id: string): Promise<ClusterJob | null> {
    return (await this.readTagged(id))?.job ?? null;
  }

  /** The record and its version tag (S3 ETag, GCS generation): the tag a `put` must name to replace it. */
  async readTagged(id: string): Promise<{ job: ClusterJob; tag: string } | null> {
    return this.readAt(this.jobUri(id));
  }

  private async readAt(uri: string): Promise<{ job: ClusterJob; tag: string } | null> {
    for (let i = 0; ; i++) {
      const v = await this.storage.readVersioned(uri);
      if (!v) return null;
      try {
        return { job: JSON.parse(v.text) as ClusterJob, tag: v.tag };
      } catch (e) {
        // a torn read of a write in progress (s3rver's PUT is not atomic; S3's and GCS's are): read again
        if (i >= 3) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * Writes the record only if it still carries `tag` (null: only if absent) and returns the new tag;
   * throws PreconditionFailed when another writer got there first. Every record write is conditional:
   * a host whose lease lapsed (or who released it) can never overwrite the new holder's record.
   */
  put(job: ClusterJob, tag: string | null): Promise<string> {
    job.updatedAt = new Date().toISOString();
    return this.storage.writeIf(this.jobUri(job.id), `${JSON.stringify(job)}\n`, tag);
  }

  /** Asks for a cancel in the record (a queued job ends cancelled at once), retrying when the lease holder wrote meanwhile. */
  async requestCancel(id: string): Promise<ClusterJob | null> {
    for (let round = 0; ; round++) {
      const cur = await this.readTagged(id);
      if (!cur || CLUSTER_TERMINAL.includes(cur.job.state)) return cur?.job ?? null;
      cur.job.cancelRequested = true;
      if (cur.job.state === 'queued') cur.job.state = 'cancelled';
      try {
        await this.put(cur.job, cur.tag);
        return cur.job;
      } catch (e) {
        if (!isPreconditionFailed(e) || round >= 9) throw e;
      }
    }
  }

  /**
   * Every job record, newest first. A torn read (a write in progress) is read again; a record removed
   * meanwhile is left out; one that still cannot be read is named in `unreadable`, never dropped unsaid.
   */
  async list(): Promise<{ jobs: ClusterJob[]; unreadable: { key: string; error: string }[] }> {
    const objects = await this.storage.list(joinUri(this.artifacts, 'jobs'));
    const jobs: ClusterJob[] = [];
    const unreadable: { key: string; error: string }[] = [];
    for (const o of objects) {
      if (!o.key.endsWith('.json')) continue;
      try {
        const r = await this.readAt(o.uri);
        if (r) jobs.push(r.job);
      } catch (e) {
        unreadable.push({ key: o.key, error: (e as Error).message });
      }
    }
    return { jobs: jobs.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)), unreadable };
  }

  /** Uploads one log chunk: `<artifacts>/logs/<id>/<attempt>-<seq>.log`, names that sort in order. */
  async putLogChunk(id: string, attempt: number, seq: number, chunk: Buffer): Promise<void> {
    const name = `${String(attempt).padStart(4, '0')}-${String(seq).padStart(6, '0')}.log`;
    await this.putBytes(joinUri(this.logPrefix(id), name), chunk);
  }

  /**
   * The job's log across attempts and hosts, chunk after chunk, as bytes (a character split between
   * two chunks stays whole). Chunks are written once under names never reused, so each is fetched
   * once: a follower polling a long job costs one listing and its new chunks, not the whole log.
   */
  async logs(id: string): Promise<Buffer> {
    const chunks = await this.storage.list(this.logPrefix(id));
    const parts: Buffer[] = [];
    for (const c of chunks) {
      let bytes = this.chunks.get(c.uri);
      if (!bytes) {
        bytes = await this.getBytes(c.uri);
        this.remember(c.uri, bytes);
      }
      parts.push(bytes);
    }
    return Buffer.concat(parts);
  }

  /** Log chunks read so far, oldest first, up to CHUNK_CACHE_BYTES. */
  private readonly chunks = new Map<string, Buffer>();
  private chunkBytes = 0;

  private remember(uri: string, bytes: Buffer): void {
    this.chunks.set(uri, bytes);
    this.chunkBytes += bytes.length;
    for (const [k, v] of this.chunks) {
      if (this.chunkBytes <= CHUNK_CACHE_BYTES) break;
      this.chunks.delete(k);
      this.chunkBytes -= v.length;
    }
  }

  private tmp(): string {
    return path.join(this.tmpDir, randomBytes(8).toString('hex'));
  }

  private async getBytes(uri: string): Promise<Buffer> {
    const f = this.tmp();
    try {
      await this.storage.get(uri, f);
      return await fs.promises.readFile(f);
    } finally {
      await fs.promises.rm(f, { force: true });
    }
  }

  private async putBytes(uri: string, bytes: Buffer): Promise<void> {
    const f = this.tmp();
    try {
      await fs.promises.writeFile(f, bytes, { mode: 0o600 });
      await this.storage.put(f, uri);
    } finally {
      await fs.promises.rm(f, { force: true });
    }
  }
}
