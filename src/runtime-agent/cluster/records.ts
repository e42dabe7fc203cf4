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

export const CLUSTER_JOB_ID = /^[a-z0-9]{8,12}-[a-f0-9]{12}$/;

/** Time-sortable: base36 milliseconds, then 48 random bits. */
export function newClusterJobId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

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
    const uri = this.jobUri(id);
    if (!(await this.storage.exists(uri))) return null;
    return JSON.parse(await this.getText(uri)) as ClusterJob;
  }

  async write(job: ClusterJob): Promise<void> {
    job.updatedAt = new Date().toISOString();
    await this.putText(this.jobUri(job.id), `${JSON.stringify(job)}\n`);
  }

  /** Every job record, newest first. A record that cannot be read is skipped. */
  async list(): Promise<ClusterJob[]> {
    const objects = await this.storage.list(joinUri(this.artifacts, 'jobs'));
    const out: ClusterJob[] = [];
    for (const o of objects) {
      if (!o.key.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(await this.getText(o.uri)) as ClusterJob);
      } catch {
        // written half by a host that died, or removed meanwhile
      }
    }
    return out.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  /** Uploads one log chunk: `<artifacts>/logs/<id>/<attempt>-<seq>.log`, names that sort in order. */
  async putLogChunk(id: string, attempt: number, seq: number, chunk: Buffer): Promise<void> {
    const name = `${String(attempt).padStart(4, '0')}-${String(seq).padStart(6, '0')}.log`;
    await this.putBytes(joinUri(this.logPrefix(id), name), chunk);
  }

  /** The job's log across attempts and hosts, chunk after chunk. */
  async logs(id: string): Promise<string> {
    const chunks = await this.storage.list(this.logPrefix(id));
    let out = '';
    for (const c of chunks) out += await this.getText(c.uri);
    return out;
  }

  private tmp(): string {
    return path.join(this.tmpDir, randomBytes(8).toString('hex'));
  }

  private async getText(uri: string): Promise<string> {
    const f = this.tmp();
    try {
      await this.storage.get(uri, f);
      return await fs.promises.readFile(f, 'utf8');
    } finally {
      await fs.promises.rm(f, { force: true });
    }
  }

  private putText(uri: string, text: string): Promise<void> {
    return this.putBytes(uri, Buffer.from(text));
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
