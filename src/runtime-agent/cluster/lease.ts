import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { LeasedMessage } from '../queue/index';
import type { Storage } from '../storage/index';
import type { ClusterAttempt, ClusterJob, ClusterStore } from './records';

/** One leased message turned into a local job. */
export interface Lease {
  readonly msg: LeasedMessage;
  readonly job: ClusterJob;
  readonly attempt: ClusterAttempt;
  readonly localId: string;
  readonly ckptUri: string;
  lastExtendMs: number;
  lastCheckpointMs: number;
  lastLogMs: number;
  logOffset: number;
  logSeq: number;
  busy: boolean;
  /** The queue said this lease is gone: the job is another host's now. */
  lost?: boolean;
}

/**
 * Uploads the job's local checkpoint dir (what executeRun restores and saves at exit). A failure is
 * logged and kept in the job record, never dropped; returns false then.
 */
export async function saveCheckpoint(l: Lease, dataDir: string, storage: Storage, store: ClusterStore, logger: Logger): Promise<boolean> {
  l.lastCheckpointMs = Date.now();
  const dir = path.join(dataDir, 'work', l.localId, 'checkpoint');
  // a file:// bucket (a shared mount) is written by the job directly: nothing to copy
  if (storage.isLocal(l.ckptUri) || !fs.existsSync(dir)) return true;
  try {
    const n = await storage.putDir(dir, l.ckptUri);
    if (n > 0) l.job.checkpoint = { ...l.job.checkpoint, savedAt: new Date().toISOString() };
  } catch (e) {
    const error = (e as Error).message;
    l.job.checkpoint = { ...l.job.checkpoint, error, errorAt: new Date().toISOString() };
    logger.error({ jobId: l.job.id, err: error }, 'checkpoint upload failed: the previous checkpoint stays the one a new attempt restores');
    await store.write(l.job).catch(() => undefined);
    return false;
  }
  await store.write(l.job).catch(() => undefined);
  return true;
}

/** Ships what the job's local log gained since the last chunk (at most 16 MiB a chunk). */
export async function shipLog(l: Lease, dataDir: string, store: ClusterStore, logger: Logger): Promise<void> {
  l.lastLogMs = Date.now();
  const file = path.join(dataDir, 'logs', `${l.localId}.log`);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(file, 'r');
    const { size } = await fh.stat();
    if (size < l.logOffset) l.logOffset = 0; // rotated
    if (size === l.logOffset) return;
    const buf = Buffer.alloc(Math.min(size - l.logOffset, 16 * 1024 * 1024));
    const { bytesRead } = await fh.read(buf, 0, buf.length, l.logOffset);
    await store.putLogChunk(l.job.id, l.attempt.attempt, l.logSeq, buf.subarray(0, bytesRead));
    l.logOffset += bytesRead;
    l.logSeq++;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ jobId: l.job.id, err: (e as Error).message }, 'log chunk not shipped: retried next time');
  } finally {
    await fh?.close();
  }
}
