import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobUser } from './job-run';
import { localPathOf, type Storage } from './storage/index';
import type { JobRecord, ShardRecord } from './types';

/**
 * Attempt staging: where a run's checkpoint, artifact and shard files live, fetching them before
 * the run and uploading them after it. Kept apart from the scheduler (which only journals) and the
 * executor (which only runs processes).
 */
export interface StagingContext {
  readonly dataDir: string;
  readonly storage: Storage;
  readonly jobUser?: JobUser;
}

export interface RunPaths {
  readonly ckptDir: string;
  /** The checkpoint dir is a storage URI: fetched before a train run, uploaded after it. */
  readonly ckptRemote: boolean;
  readonly artifactDir: string;
  /** Batch shards: where the shard's input and output are on this host. */
  readonly inputLocal?: string;
  readonly outputLocal?: string;
}

export function workDir(dataDir: string, jobId: string, ...parts: string[]): string {
  return path.join(dataDir, 'work', jobId, ...parts);
}

/** The run's local paths (pure: the same for a run started now and one re-attached after a restart). */
export function runPaths(ctx: StagingContext, job: JobRecord, shard: ShardRecord | null): RunPaths {
  const { spec, id } = job;
  const { storage, dataDir } = ctx;
  const ckpt = spec.checkpointDir;
  const ckptRemote = ckpt !== undefined && !storage.isLocal(ckpt);
  const ckptDir = ckpt === undefined ? path.join(dataDir, 'checkpoints', id) : ckptRemote ? workDir(dataDir, id, 'checkpoint') : localPathOf(ckpt);
  const artifactDir = workDir(dataDir, id, 'artifacts');
  if (!shard) return { ckptDir, ckptRemote, artifactDir };
  const base = path.basename(shard.key);
  const inputLocal = storage.isLocal(shard.inputUri) ? localPathOf(shard.inputUri) : workDir(dataDir, id, 'shards', String(shard.idx), 'in', base);
  const outputLocal = storage.isLocal(shard.outputUri) ? localPathOf(shard.outputUri) : workDir(dataDir, id, 'shards', String(shard.idx), 'out', base);
  return { ckptDir, ckptRemote, artifactDir, inputLocal, outputLocal };
}

/** Creates a directory the job user can write (the agent may run as root). */
async function jobDir(dir: string, user: JobUser | undefined): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  if (user) await fs.promises.chown(dir, user.uid, user.gid);
}

/** Before a run: its directories, the checkpoint (train) or the shard's input (batch). */
export async function stageIn(ctx: StagingContext, job: JobRecord, shard: ShardRecord | null, p: RunPaths): Promise<void> {
  // side by side: a mkdir can cost a millisecond on some disks, and these are on every job's way to start
  await Promise.all([jobDir(p.ckptDir, ctx.jobUser), jobDir(p.artifactDir, ctx.jobUser)]);
  if (p.ckptRemote && !shard) await ctx.storage.getDir(job.spec.checkpointDir!, p.ckptDir);
  if (shard) {
    if (!ctx.storage.isLocal(shard.inputUri)) await ctx.storage.get(shard.inputUri, p.inputLocal!);
    await jobDir(path.dirname(p.outputLocal!), ctx.jobUser);
  }
}

/** After a run: the shard's output, the artifacts (on success) and the checkpoint (train) go to storage. */
export async function stageOut(ctx: StagingContext, job: JobRecord, shard: ShardRecord | null, p: RunPaths, succeeded: boolean): Promise<void> {
  const { storage } = ctx;
  const { spec } = job;
  if (succeeded && shard && !storage.isLocal(shard.outputUri) && p.outputLocal && fs.existsSync(p.outputLocal)) {
    await storage.put(p.outputLocal, shard.outputUri);
  }
  if (succeeded && !shard && spec.artifactUri) await storage.putDir(p.artifactDir, spec.artifactUri);
  if (p.ckptRemote && !shard) await storage.putDir(p.ckptDir, spec.checkpointDir!);
}
