import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { JobQueue, LeasedMessage } from '../queue/index';
import type { Storage } from '../storage/index';
import { CLUSTER_TERMINAL, isPreconditionFailed, type ClusterAttempt, type ClusterJob, type ClusterStore } from './records';

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
  /** The record's version tag as this host last wrote or read it (see ClusterStore.put). */
  tag: string | null;
  /** This host's record writes for the job, one after another. */
  writes: Promise<unknown>;
  /** Ended or released: this host writes the record no more. */
  closed?: boolean;
}

/**
 * Uploads the job's local checkpoint dir (what executeRun restores and saves at exit). A failure is
 * logged and kept in the job record, never dropped; returns false then.
 */
export async function saveCheckpoint(l: Lease, dataDir: string, storage: Storage, commit: () => Promise<unknown>, logger: Logger): Promise<boolean> {
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
    await commit().catch(() => undefined);
    return false;
  }
  await commit().catch(() => undefined);
  return true;
}

/**
 * The upload at the job's end failed (the run ends with a setup or storage error): kept in the record
 * like a failed periodic upload, so `status` says which checkpoint a new attempt restores.
 */
export function noteFinalUploadFailure(l: Lease, failure: { reason?: string } | null | undefined): void {
  if (!failure?.reason?.startsWith('setup or storage error') || l.job.checkpoint?.error) return;
  l.job.checkpoint = { ...l.job.checkpoint, error: failure.reason, errorAt: new Date().toISOString() };
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

/** The record shows the job moved on without this attempt: a newer attempt, another host's, or an end. */
export function superseded(rec: ClusterJob, l: Lease, host: string): boolean {
  return rec.attempts.length > l.attempt.attempt || rec.attempts[l.attempt.attempt - 1]?.host !== host || CLUSTER_TERMINAL.includes(rec.state);
}

/**
 * Writes the lease's record, conditional on the version this host last saw, one write at a time.
 * A conflict is read: a cancel from another host is taken in and the write retried; a record that
 * moved on means the lease was lost (`onLost`), and nothing is written (false). `final` (the
 * attempt's end or release) is the last write: later periodic ones are dropped.
 */
export function commitLease(l: Lease, store: ClusterStore, host: string, onLost: (why: string) => void, final = false): Promise<boolean> {
  if (l.closed) return Promise.resolve(false);
  if (final) l.closed = true;
  const write = async (): Promise<boolean> => {
    for (let round = 0; ; round++) {
      try {
        l.tag = await store.put(l.job, l.tag);
        return true;
      } catch (e) {
        if (!isPreconditionFailed(e) || round >= 9) throw e;
        const cur = await store.readTagged(l.job.id);
        if (!cur || superseded(cur.job, l, host)) {
          onLost(cur ? `the job record shows attempt ${cur.job.attempts.length} (${cur.job.state})` : 'the job record is gone');
          return false;
        }
        if (cur.job.cancelRequested) l.job.cancelRequested = true;
        l.tag = cur.tag;
      }
    }
  };
  const p = l.writes.then(write, write);
  l.writes = p.catch(() => undefined);
  return p;
}

/** An attempt's timeout: the job's own, capped by `serve --max-duration-seconds` (absent: none). */
export function capDuration(own: number | undefined, cap: number | undefined): { timeoutSeconds?: number } {
  const t = Math.min(own ?? Infinity, cap ?? Infinity);
  return Number.isFinite(t) ? { timeoutSeconds: t } : {};
}

/** The queue says a lease is gone (it lapsed, or another host received the message since). */
export function leaseGone(e: unknown): boolean {
  return /ReceiptHandleIsInvalid|MessageNotInflight|not a valid receipt handle|not in flight|INVALID_ARGUMENT|FAILED_PRECONDITION|NOT_FOUND/i
    .test(`${(e as Error).name} ${(e as Error).message}`);
}

/**
 * Confirms a lease by extending it, before a start or a dead-letter is recorded: a receive answered
 * late (a busy host) or bucket reads that outlast the lease mean another host may hold the message
 * now (seen on a loaded 2-core machine: a poison job's attempt 1 started on two hosts). False: gone.
 */
export async function confirmLease(queue: JobQueue, m: LeasedMessage, leaseSeconds: number, logger: Logger): Promise<boolean> {
  try {
    await queue.extend(m, leaseSeconds);
    return true;
  } catch (e) {
    if (!leaseGone(e)) throw e;
    logger.warn({ messageId: m.messageId, err: (e as Error).message }, 'lease lapsed before the job was started: another host has the message');
    return false;
  }
}
