import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { StopReason } from './executor';
import { classifyExit, type ExitFacts } from './failure';
import type { JobUser, RunSlot } from './job-run';
import type { JobEnd, Journal } from './journal';
import type { LogStore } from './logs';
import type { Slots } from './slots';
import { joinUri, type Storage } from './storage/index';
import type { Failure, JobRecord, RunRecord, ShardRecord } from './types';

/** Typed events of the scheduler (metrics, autostop and logs listen to them). */
export interface SchedulerEvents {
  'job:submitted': [job: JobRecord];
  'job:started': [job: JobRecord];
  'job:requeued': [job: JobRecord];
  'job:finished': [job: JobRecord];
  'run:started': [info: { jobId: string; runId: number; shard: number | null; gpuIds: string }];
  'run:ended': [info: { jobId: string; runId: number; shard: number | null; failure: Failure | null; seconds: number }];
  'shard:done': [info: { jobId: string; idx: number }];
}

export interface SchedulerOptions {
  readonly dataDir: string;
  readonly gpus: number;
  readonly maxCpuJobs: number;
  readonly graceMs: number;
  readonly paused: boolean;
  readonly journal: Journal;
  readonly logs: LogStore;
  readonly storage: Storage;
  readonly logger: Logger;
  /** Environment every job starts from (the agent's, without its token). */
  readonly baseEnv: NodeJS.ProcessEnv;
  /** Jobs run as this user (serve --job-user). */
  readonly jobUser?: JobUser;
  /** Submits refused with 429 while this many jobs are queued. @default unbounded */
  readonly maxQueued?: number;
}

export type ActiveRun = RunSlot;

/** A run journaled before its spawn: its id, marker and slots. */
export interface RunStart {
  readonly runId: number;
  readonly marker: string;
  readonly shard: ShardRecord | null;
  readonly gpuSlots: number[];
  readonly gpuIds: string;
}

export interface Outcome {
  readonly facts: ExitFacts | null;
  readonly failure: Failure;
}

/** A job the scheduler is running (one attempt): its runs, and what decides how the attempt ends. */
export interface ActiveJob {
  job: JobRecord;
  readonly runs: Set<ActiveRun>;
  /** Batch: shards still to run in this attempt (null while the input is being listed). */
  pendingShards: ShardRecord[] | null;
  /** Set by cancel, preemption, shutdown and a disk fault before the spawn: decides the job's outcome whatever its runs report. */
  forced?: StopReason;
  /** The first failure of this attempt (a failed shard fails the attempt). */
  outcome?: Outcome;
  trainRunStarted: boolean;
  lastFacts?: ExitFacts;
}

/** What the scheduler may start, best first: shards of running batch jobs and queued jobs, by priority, then age. */
export function dispatchOrder(active: Iterable<ActiveJob>, queue: readonly JobRecord[]): Array<{ active?: ActiveJob; queued?: JobRecord }> {
  const out: Array<{ priority: number; seq: number; active?: ActiveJob; queued?: JobRecord }> = [];
  for (const a of active) {
    if (a.pendingShards && a.pendingShards.length > 0 && !a.forced && !a.outcome) out.push({ priority: a.job.spec.priority, seq: a.job.seq, active: a });
  }
  for (const q of queue) out.push({ priority: q.spec.priority, seq: q.seq, queued: q });
  return out.sort((x, y) => y.priority - x.priority || x.seq - y.seq);
}

/** Resolves the first time `done()` holds after one of `events` (the caller checked it does not hold now). */
export function once<E extends string>(em: { on(e: E, f: () => void): unknown; off(e: E, f: () => void): unknown }, done: () => boolean, ...events: E[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const check = (): void => {
      if (!done()) return;
      for (const e of events) em.off(e, check);
      resolve();
    };
    for (const e of events) em.on(e, check);
  });
}

/** Inserts a queued job behind those of higher priority, and behind older ones of its priority. */
export function insertByPriority(queue: JobRecord[], job: JobRecord): void {
  const at = queue.findIndex((x) => x.spec.priority < job.spec.priority || (x.spec.priority === job.spec.priority && x.seq > job.seq));
  if (at === -1) queue.push(job);
  else queue.splice(at, 0, job);
}

/**
 * The attempt of a job whose runs' supervisors outlived the previous agent, with those runs (they
 * keep their GPUs: `take`). A batch job's other unfinished shards run again in this attempt.
 */
export function adoptedJob(job: JobRecord, runs: readonly RunRecord[], shards: readonly ShardRecord[], take: (gpuIds: number[]) => number[]): ActiveJob {
  const running = new Set(runs.map((r) => r.shard));
  const a: ActiveJob = {
    job, runs: new Set(), trainRunStarted: true,
    pendingShards: job.spec.kind === 'batch' ? shards.filter((s) => s.state !== 'done' && !running.has(s.idx)) : [],
  };
  for (const r of runs) {
    a.runs.add({
      runId: r.runId, marker: r.marker ?? '', shard: shards.find((s) => s.idx === r.shard) ?? null,
      gpuSlots: take(r.gpuIds ? r.gpuIds.split(',').map(Number) : []), startedMs: Date.parse(r.startedAt),
      attach: { pid: r.pid!, procStart: r.procStart },
    });
  }
  return a;
}

/** Whether nothing of the attempt runs or waits to run any more. */
export function attemptOver(a: ActiveJob): boolean {
  if (a.runs.size > 0 || a.pendingShards === null) return false;
  if (a.pendingShards.length > 0 && !a.forced && !a.outcome) return false;
  return !(a.job.spec.kind === 'train' && !a.trainRunStarted && !a.forced);
}

/** How an attempt that is over ends (state `queued`: it is retried). */
export function endOf(a: ActiveJob): JobEnd {
  const facts = a.outcome?.facts ?? a.lastFacts ?? null;
  const exitCode = facts?.exitCode ?? null;
  const signal = facts?.signal ?? null;
  if (a.forced === 'cancel') return { state: 'cancelled', exitCode, signal, charge: false, failure: { class: 'cancelled', reason: 'cancelled by request' } };
  if (a.forced === 'preemption' || a.forced === 'shutdown') {
    return { state: 'interrupted', exitCode, signal, charge: false, requeue: true, failure: classifyExit({ exitCode, signal, stderrTail: '', stoppedBy: a.forced }) };
  }
  if (a.forced === 'disk') {
    return { state: 'queued', exitCode, signal, charge: false, failure: { class: 'disk', reason: 'the run could not be journaled (disk fault): not started, re-queued' } };
  }
  if (!a.outcome) return { state: 'succeeded', exitCode: a.job.spec.kind === 'batch' ? 0 : exitCode, signal, charge: false, failure: null };
  const retry = a.job.charged + 1 <= a.job.spec.retries;
  return { state: retry ? 'queued' : 'failed', exitCode, signal, charge: true, failure: a.outcome.failure };
}

/** Takes a run's slots and journals it (marker included, before any spawn; not fsynced, see startJob). Releases the slots if that throws. */
export function recordRun(j: Journal, slots: Slots, job: JobRecord, shard: ShardRecord | null): RunStart {
  const gpuSlots = slots.take(job.spec.gpus);
  const gpuIds = gpuSlots.join(',');
  const marker = `${job.id}.${job.attempts}.${shard?.idx ?? 't'}.${randomBytes(6).toString('hex')}`;
  try {
    const runId = j.transaction(() => {
      const rid = j.insertRun(job.id, job.attempts, shard?.idx ?? null, gpuIds, marker);
      if (shard) j.shardAttempt(job.id, shard.idx);
      else j.setJobGpus(job.id, gpuIds);
      return rid;
    }, 'deferred');
    return { runId, marker, shard, gpuSlots, gpuIds };
  } catch (e) {
    slots.release(job.spec.gpus, gpuSlots);
    throw e;
  }
}

/** The job as it ends (what status shows while its journal write waits). */
export function endedRecord(job: JobRecord, end: JobEnd): JobRecord {
  return {
    ...job, state: end.state, exitCode: end.exitCode, signal: end.signal, failure: end.failure,
    charged: job.charged + (end.charge ? 1 : 0), requeue: Boolean(end.requeue), endedAt: new Date().toISOString(),
  };
}

/** A batch attempt's shards: listed (and journaled) once per job, then the ones not done yet. A listing error fails the attempt. */
export async function listShards(a: ActiveJob, o: { readonly journal: Journal; readonly storage: Storage; readonly logger: Logger }): Promise<void> {
  const { spec, id } = a.job;
  try {
    let shards = o.journal.shardsOf(id);
    if (shards.length === 0) {
      const objects = await o.storage.list(spec.input!);
      shards = o.journal.recordShards(id, objects.map((x) => ({ key: x.key, inputUri: x.uri, outputUri: joinUri(spec.output!, x.key) })));
    }
    const pending = shards.filter((s) => s.state !== 'done');
    o.logger.info({ jobId: id, shards: shards.length, pending: pending.length }, 'batch shards');
    a.pendingShards = a.forced ? [] : pending;
  } catch (e) {
    a.pendingShards = [];
    a.outcome ??= { facts: null, failure: { class: 'exit', reason: `could not list the batch input ${spec.input}: ${(e as Error).message}` } };
  }
}
