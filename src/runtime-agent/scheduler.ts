import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentError, badRequest, conflict, notFound } from './errors';
import { DiskGuard, faultError, type Fault } from './faults';
import type { RunHandle, StopReason } from './executor';
import { classifyExit, type ExitFacts } from './failure';
import { executeRun, workDir, type JobUser, type RunSlot } from './job-run';
import type { Journal, JobEnd } from './journal';
import type { LogStore } from './logs';
import { recoverJournal } from './recovery';
import { joinUri, schemeOf, type Storage } from './storage/index';
import { TERMINAL_STATES, type Failure, type JobRecord, type JobSpec, type ShardRecord } from './types';

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

interface ActiveRun extends RunSlot {
  readonly runId: number;
  readonly startedMs: number;
}

interface Outcome {
  readonly facts: ExitFacts | null;
  readonly failure: Failure;
}

interface ActiveJob {
  job: JobRecord;
  readonly runs: Set<ActiveRun>;
  /** Batch: shards still to run in this attempt (null while the input is being listed). */
  pendingShards: ShardRecord[] | null;
  /** Set by cancel, preemption and shutdown: decides the job's outcome whatever its runs report. */
  forced?: StopReason;
  /** The first failure of this attempt (a failed shard fails the attempt). */
  outcome?: Outcome;
  trainRunStarted: boolean;
  lastFacts?: ExitFacts;
}

/** Assigns GPU and CPU slots to queued jobs, runs them, and records every transition in the journal. */
export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly queue: JobRecord[] = [];
  private readonly active = new Map<string, ActiveJob>();
  private readonly freeGpus: Set<number>;
  private cpuInUse = 0;
  private paused: boolean;
  private draining = false;
  private tickScheduled = false;
  private readonly pendingSubmits: Array<{
    id: string; spec: JobSpec; key?: string; promise: Promise<JobRecord>; resolve: (j: JobRecord) => void; reject: (e: Error) => void;
  }> = [];
  private flushScheduled = false;
  private readonly o: SchedulerOptions;
  private readonly guard: DiskGuard;

  constructor(o: SchedulerOptions) {
    super();
    this.o = o;
    this.paused = o.paused;
    this.freeGpus = new Set(Array.from({ length: o.gpus }, (_, i) => i));
    this.guard = new DiskGuard({
      dataDir: o.dataDir, journal: o.journal, logger: o.logger,
      recover: async () => void (await this.recover()),
      cleared: () => this.scheduleTick(),
    });
  }

  get gpuCount(): number {
    return this.o.gpus;
  }

  stats(): { queued: number; running: number; gpusBusy: number; cpuBusy: number; draining: boolean; paused: boolean; fault: Fault | null } {
    return {
      queued: this.queue.length,
      running: this.active.size,
      gpusBusy: this.o.gpus - this.freeGpus.size,
      cpuBusy: this.cpuInUse,
      draining: this.draining,
      paused: this.paused,
      fault: this.guard.fault,
    };
  }

  get fault(): Fault | null {
    return this.guard.fault;
  }

  isIdle(): boolean {
    return this.queue.length === 0 && this.active.size === 0;
  }

  /** See DiskGuard.note. */
  noteFault(e: unknown): boolean {
    return this.guard.note(e);
  }

  private durable(fn: () => void): void {
    this.guard.durable(fn);
  }

  /** Start on a full or read-only disk: serve status, refuse submits, recover when writes work again. */
  holdRecovery(e: unknown): void {
    this.guard.holdRecovery(e);
  }

  /** Crash recovery, before serving (see recoverJournal). */
  async recover(): Promise<{ orphansKilled: number; interrupted: number; requeued: number }> {
    const r = await recoverJournal(this.o.journal);
    for (const job of r.queued) if (!this.queue.some((q) => q.id === job.id)) this.enqueue(job);
    return { orphansKilled: r.orphansKilled, interrupted: r.interrupted, requeued: r.requeued };
  }

  /**
   * Validates and journals a job. Resolves once the job is on disk: submits that arrive in the same
   * event-loop turn share one SQLite transaction (one fsync), which is what makes submits cheap.
   */
  async submit(spec: JobSpec, idempotencyKey?: string): Promise<{ job: JobRecord; created: boolean }> {
    if (idempotencyKey !== undefined) {
      const known = this.o.journal.jobByKey(idempotencyKey) ?? await this.pendingSubmits.find((p) => p.key === idempotencyKey)?.promise;
      if (known) return { job: known, created: false };
    }
    if (this.draining) throw conflict('the agent is shutting down or its host is being preempted: no new jobs are accepted');
    if (this.guard.fault) throw faultError(this.guard.fault);
    if (this.o.maxQueued !== undefined && this.queue.length + this.pendingSubmits.length >= this.o.maxQueued) {
      throw new AgentError(429, 'queue_full', `${this.queue.length} jobs are queued (--max-queued ${this.o.maxQueued}): retry later`, undefined,
        { retryAfterSeconds: this.retryAfterSeconds() });
    }
    if (spec.gpus > this.o.gpus) {
      throw badRequest(`the job wants ${spec.gpus} GPUs but this host has ${this.o.gpus}`, 'gpus');
    }
    if (spec.kind === 'batch') {
      if (!spec.input) throw badRequest('a batch job needs an input prefix', 'input');
      if (!spec.output) throw badRequest('a batch job needs an output prefix', 'output');
    }
    for (const field of ['input', 'output', 'artifactUri', 'checkpointDir'] as const) {
      const v = spec[field];
      if (v === undefined) continue;
      try {
        schemeOf(v);
      } catch (e) {
        throw badRequest((e as Error).message, field);
      }
    }
    if (spec.cwd !== undefined && !path.isAbsolute(spec.cwd)) throw badRequest('cwd must be an absolute path', 'cwd');
    const id = `j-${Date.now().toString(36)}-${randomBytes(5).toString('hex')}`;
    let settle!: { resolve: (j: JobRecord) => void; reject: (e: Error) => void };
    const promise = new Promise<JobRecord>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.pendingSubmits.push({ id, spec, key: idempotencyKey, promise, ...settle });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushSubmits());
    }
    return { job: await promise, created: true };
  }

  /** A Retry-After for a full queue: about how long the queue takes to drain by one slot's worth. */
  private retryAfterSeconds(): number {
    return Math.min(60, Math.max(1, Math.ceil(this.queue.length / Math.max(1, this.o.maxCpuJobs + this.o.gpus) / 10)));
  }

  private flushSubmits(): void {
    this.flushScheduled = false;
    const batch = this.pendingSubmits.splice(0);
    let jobs: JobRecord[];
    try {
      jobs = this.o.journal.transaction(() => batch.map((b) => this.o.journal.insertJob(b.id, b.spec, b.key)));
    } catch (e) {
      const err = this.noteFault(e) ? faultError(this.guard.fault!) : (e as Error);
      for (const b of batch) b.reject(err);
      return;
    }
    batch.forEach((b, i) => {
      this.enqueue(jobs[i]);
      this.emit('job:submitted', jobs[i]);
      b.resolve(jobs[i]);
    });
    this.scheduleTick();
  }

  cancel(id: string): JobRecord {
    const job = this.o.journal.getJob(id);
    if (!job) throw notFound(`no job ${id}`);
    if (TERMINAL_STATES.includes(job.state)) throw conflict(`job ${id} already ended (${job.state})`);
    if (job.state === 'queued' && !this.active.has(id)) {
      if (this.guard.fault) throw faultError(this.guard.fault);
      try {
        this.o.journal.cancelQueued(id, 'cancelled by request while queued');
      } catch (e) {
        if (this.noteFault(e)) throw faultError(this.guard.fault!);
        throw e;
      }
      this.dequeue(id);
      return this.finished(id);
    }
    const a = this.active.get(id);
    if (a) this.force(a, 'cancel', this.o.graceMs);
    return this.o.journal.getJob(id)!;
  }

  /** Spot/preemption notice: stop dispatching and give every running job SIGTERM, SIGKILL after grace. */
  preempt(graceMs: number): void {
    this.draining = true;
    for (const a of this.active.values()) this.force(a, 'preemption', graceMs);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.scheduleTick();
  }

  /**
   * Graceful shutdown: stop dispatching, SIGTERM every running job (SIGKILL after the grace period),
   * record them `interrupted` so the next start re-queues them, and resolve when all have ended.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.draining = true;
    this.guard.close();
    if (this.active.size === 0) return;
    const allDone = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.active.size === 0) {
          this.off('job:finished', check);
          this.off('job:requeued', check);
          resolve();
        }
      };
      this.on('job:finished', check);
      this.on('job:requeued', check);
    });
    for (const a of this.active.values()) this.force(a, 'shutdown', graceMs);
    await allDone;
  }

  private force(a: ActiveJob, reason: StopReason, graceMs: number): void {
    a.forced ??= reason;
    a.pendingShards = a.pendingShards === null ? null : [];
    for (const run of a.runs) {
      run.stopReason ??= reason;
      run.handle?.stop(reason, graceMs);
    }
    this.maybeFinish(a);
  }

  private enqueue(job: JobRecord): void {
    const before = (x: JobRecord): boolean => x.spec.priority < job.spec.priority || (x.spec.priority === job.spec.priority && x.seq > job.seq);
    const at = this.queue.findIndex(before);
    if (at === -1) this.queue.push(job);
    else this.queue.splice(at, 0, job);
  }

  private dequeue(id: string): void {
    const at = this.queue.findIndex((x) => x.id === id);
    if (at !== -1) this.queue.splice(at, 1);
  }

  private scheduleTick(): void {
    if (this.tickScheduled) return;
    this.tickScheduled = true;
    setImmediate(() => {
      this.tickScheduled = false;
      this.tick();
    });
  }

  private fits(gpus: number): boolean {
    return gpus === 0 ? this.cpuInUse < this.o.maxCpuJobs : this.freeGpus.size >= gpus;
  }

  private take(gpus: number): number[] {
    if (gpus === 0) {
      this.cpuInUse++;
      return [];
    }
    const slots = [...this.freeGpus].sort((a, b) => a - b).slice(0, gpus);
    for (const s of slots) this.freeGpus.delete(s);
    return slots;
  }

  private release(gpus: number, slots: number[]): void {
    if (gpus === 0) this.cpuInUse--;
    for (const s of slots) this.freeGpus.add(s);
  }

  /** Starts what fits, highest priority first (then oldest); smaller jobs may backfill free slots. */
  private tick(): void {
    if (this.paused || this.draining || this.guard.fault) return;
    type Candidate = { priority: number; seq: number; active?: ActiveJob; queued?: JobRecord };
    const candidates: Candidate[] = [];
    for (const a of this.active.values()) {
      if (a.pendingShards && a.pendingShards.length > 0 && !a.forced && !a.outcome) {
        candidates.push({ priority: a.job.spec.priority, seq: a.job.seq, active: a });
      }
    }
    for (const q of this.queue) candidates.push({ priority: q.spec.priority, seq: q.seq, queued: q });
    candidates.sort((x, y) => y.priority - x.priority || x.seq - y.seq);
    for (const c of candidates) {
      if (c.active) {
        const a = c.active;
        while (a.pendingShards!.length > 0 && this.fits(a.job.spec.gpus)) this.startRun(a, a.pendingShards!.shift()!);
      } else if (c.queued && this.fits(c.queued.spec.gpus)) {
        try {
          this.startJob(c.queued);
        } catch (e) {
          if (!this.noteFault(e)) throw e;
          return;
        }
      }
    }
  }

  private startJob(q: JobRecord): void {
    this.dequeue(q.id);
    const job = this.o.journal.startJob(q.id);
    if (!job) return;
    const a: ActiveJob = { job, runs: new Set(), pendingShards: job.spec.kind === 'batch' ? null : [], trainRunStarted: false };
    this.active.set(job.id, a);
    this.emit('job:started', job);
    this.o.logger.info({ jobId: job.id, attempt: job.attempts, kind: job.spec.kind }, 'job started');
    if (job.spec.kind === 'batch') void this.listShards(a);
    else this.startRun(a, null);
  }

  private async listShards(a: ActiveJob): Promise<void> {
    const { spec, id } = a.job;
    try {
      let shards = this.o.journal.shardsOf(id);
      if (shards.length === 0) {
        const objects = await this.o.storage.list(spec.input!);
        shards = this.o.journal.recordShards(id, objects.map((o) => ({ key: o.key, inputUri: o.uri, outputUri: joinUri(spec.output!, o.key) })));
      }
      const pending = shards.filter((s) => s.state !== 'done');
      this.o.logger.info({ jobId: id, shards: shards.length, pending: pending.length }, 'batch shards');
      a.pendingShards = a.forced ? [] : pending;
    } catch (e) {
      a.pendingShards = [];
      a.outcome ??= { facts: null, failure: { class: 'exit', reason: `could not list the batch input ${spec.input}: ${(e as Error).message}` } };
    }
    this.maybeFinish(a);
    this.scheduleTick();
  }

  private startRun(a: ActiveJob, shard: ShardRecord | null): void {
    const gpus = a.job.spec.gpus;
    const slots = this.take(gpus);
    const gpuIds = slots.join(',');
    const j = this.o.journal;
    const marker = `${a.job.id}.${a.job.attempts}.${shard?.idx ?? 't'}.${randomBytes(6).toString('hex')}`;
    let runId: number;
    try {
      runId = j.transaction(() => {
        const rid = j.insertRun(a.job.id, a.job.attempts, shard?.idx ?? null, gpuIds, marker);
        if (shard) j.shardAttempt(a.job.id, shard.idx);
        else j.setJobGpus(a.job.id, gpuIds);
        return rid;
      });
    } catch (e) {
      this.release(gpus, slots);
      if (!this.noteFault(e)) throw e;
      // nothing was spawned: the attempt ends without charging a retry once the disk recovers
      a.forced ??= 'disk';
      if (a.pendingShards) a.pendingShards = [];
      this.maybeFinish(a);
      return;
    }
    const run: ActiveRun = { runId, marker, shard, gpuSlots: slots, startedMs: Date.now() };
    a.runs.add(run);
    if (!shard) a.trainRunStarted = true;
    this.emit('run:started', { jobId: a.job.id, runId, shard: shard?.idx ?? null, gpuIds });
    this.execute(a, run).catch((e: unknown) => this.o.logger.error({ err: e, jobId: a.job.id }, 'run bookkeeping failed'));
  }

  /** The job's `MLINFRA_ARTIFACT_DIR` (train runs and batch shards alike: a batch job's shards share it). */
  artifactDir(jobId: string): string {
    return workDir(this.o.dataDir, jobId, 'artifacts');
  }

  private async execute(a: ActiveJob, run: ActiveRun): Promise<void> {
    const { spec, id } = a.job;
    const ctx = { dataDir: this.o.dataDir, storage: this.o.storage, baseEnv: this.o.baseEnv, graceMs: this.o.graceMs, jobUser: this.o.jobUser, log: this.o.logs.live(id) };
    const res = await executeRun(ctx, a.job, run, (h: RunHandle) => {
      if (h.pid !== null) this.durable(() => this.o.journal.setRunPid(run.runId, h.pid!, h.pgid!, h.procStart));
    });
    const { facts } = res;
    let failure = res.failure;
    if (facts?.diskError) this.noteFault(Object.assign(new Error(facts.diskError), { code: /EROFS/.test(facts.diskError) ? 'EROFS' : 'ENOSPC' }));
    if (!failure && run.shard) {
      try {
        this.o.journal.shardDone(id, run.shard.idx);
        this.emit('shard:done', { jobId: id, idx: run.shard.idx });
      } catch (e) {
        if (!this.noteFault(e)) throw e;
        failure = { class: 'disk', reason: `the shard's completion could not be journaled: ${(e as Error).message}` };
      }
    }
    this.release(spec.gpus, run.gpuSlots);
    a.runs.delete(run);
    this.emit('run:ended', { jobId: id, runId: run.runId, shard: run.shard?.idx ?? null, failure, seconds: (Date.now() - run.startedMs) / 1000 });
    if (failure && !a.outcome) {
      a.outcome = { facts, failure };
      // a failed shard fails the attempt: stop the job's other shards (finished shards stay recorded)
      if (a.pendingShards) a.pendingShards = [];
      for (const other of a.runs) {
        other.stopReason ??= 'cancel';
        other.handle?.stop('cancel', this.o.graceMs);
      }
    }
    if (!run.shard && facts) a.lastFacts = facts;
    // the run's end and (when it was the last) the job's end are one transaction: one fsync
    const writes: Array<() => void> = [
      () => this.o.journal.endRun(run.runId, failure ? 'failed' : 'succeeded', facts?.exitCode ?? null, facts?.signal ?? null, failure),
    ];
    this.maybeFinish(a, writes);
    this.scheduleTick();
  }

  /**
   * Ends the job when nothing of it runs any more. Journal writes go through `durable` (with the
   * run's end when `writes` is given: one transaction); the in-memory state moves on at once, so a
   * disk fault never leaves a slot taken or a shutdown waiting.
   */
  private maybeFinish(a: ActiveJob, writes: Array<() => void> = []): void {
    const flush = (): void => {
      if (writes.length > 0) this.durable(() => this.o.journal.transaction(() => writes.forEach((w) => w())));
    };
    if (!this.active.has(a.job.id) || a.runs.size > 0 || a.pendingShards === null
      || (a.pendingShards.length > 0 && !a.forced && !a.outcome)
      || (a.job.spec.kind === 'train' && !a.trainRunStarted && !a.forced)) {
      flush();
      return;
    }
    this.active.delete(a.job.id);
    const j = this.o.journal;
    const id = a.job.id;
    const facts = a.outcome?.facts ?? a.lastFacts ?? null;
    const exitCode = facts?.exitCode ?? null;
    const signal = facts?.signal ?? null;
    let end: JobEnd;
    if (a.forced === 'cancel') {
      end = { state: 'cancelled', exitCode, signal, charge: false, failure: { class: 'cancelled', reason: 'cancelled by request' } };
    } else if (a.forced === 'preemption' || a.forced === 'shutdown') {
      end = { state: 'interrupted', exitCode, signal, charge: false, requeue: true, failure: classifyExit({ exitCode, signal, stderrTail: '', stoppedBy: a.forced }) };
    } else if (a.forced === 'disk') {
      end = { state: 'queued', exitCode, signal, charge: false, failure: { class: 'disk', reason: 'the run could not be journaled (disk fault): not started, re-queued' } };
    } else if (!a.outcome) {
      end = { state: 'succeeded', exitCode: a.job.spec.kind === 'batch' ? 0 : exitCode, signal, charge: false, failure: null };
    } else {
      const retry = a.job.charged + 1 <= a.job.spec.retries;
      end = { state: retry ? 'queued' : 'failed', exitCode, signal, charge: true, failure: a.outcome.failure };
    }
    writes.push(() => {
      j.endJob(id, end);
      if (end.state === 'queued') j.requeueJob(id);
    });
    flush();
    const rec: JobRecord = {
      ...a.job, state: end.state, exitCode: end.exitCode, signal: end.signal, failure: end.failure,
      charged: a.job.charged + (end.charge ? 1 : 0), requeue: Boolean(end.requeue), endedAt: new Date().toISOString(),
    };
    if (end.state === 'queued') {
      this.o.logger.info({ jobId: id, failure: end.failure, retriesLeft: rec.spec.retries - rec.charged }, 'job failed, retrying');
      this.enqueue(rec);
      this.emit('job:requeued', rec);
      this.scheduleTick();
      return;
    }
    this.finished(id, rec);
  }

  /** `rec`: the job as it ends when its journal write is held back by a disk fault. */
  private finished(id: string, rec?: JobRecord): JobRecord {
    const job = this.guard.holding && rec ? rec : this.o.journal.getJob(id)!;
    this.o.logs.finish(id);
    this.o.logger.info({ jobId: id, state: job.state, exitCode: job.exitCode, failure: job.failure }, 'job finished');
    this.emit('job:finished', job);
    return job;
  }
}

