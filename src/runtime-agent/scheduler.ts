import { EventEmitter } from 'node:events';
import { adoptedJob, attemptOver, dispatchOrder, endedRecord, endOf, insertByPriority, listShards, once, recordRun, type ActiveJob, type ActiveRun, type RunStart, type SchedulerEvents, type SchedulerOptions } from './active-job';
import { AgentError, conflict, notFound } from './errors';
import type { RunHandle, StopReason } from './executor';
import { EndReports } from './end-reports';
import { DiskGuard, faultError, type Fault } from './faults';
import { executeRun, workDir } from './job-run';
import { recoverJournal } from './recovery';
import { checkSpec, Slots } from './slots';
import { SubmitBatch } from './submit-batch';
import { RunLauncher } from './launcher';
import { FifoPool, RunDirTrash, runDirOf } from './supervisor';
import { TERMINAL_STATES, type JobRecord, type JobSpec, type RunRecord, type ShardRecord } from './types';

export type { SchedulerEvents, SchedulerOptions } from './active-job';

/** Assigns GPU and CPU slots to queued jobs, runs them, and records every transition in the journal. */
export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly queue: JobRecord[] = [];
  private readonly active = new Map<string, ActiveJob>();
  private readonly slots: Slots;
  private paused: boolean;
  private draining = false;
  private tickScheduled = false;
  private readonly batch: SubmitBatch;
  private readonly o: SchedulerOptions;
  /** Disk faults: held journal writes, refused submits, retries (see DiskGuard). */
  readonly guard: DiskGuard;
  /** What status answers for jobs whose end a disk fault keeps out of the journal, or whose end awaits its fdatasync. */
  private readonly unjournaled = new Map<string, JobRecord>();
  /** FIFO sets for the runs' supervisors (see supervisor.ts). */
  private readonly pool: FifoPool;
  /** Starts the runs' supervisors (see launcher.ts). */
  private readonly launcher: RunLauncher;
  /** Ends committed, reported once their fdatasync is done. */
  private readonly reports: EndReports;

  constructor(o: SchedulerOptions) {
    super();
    this.o = o;
    this.paused = o.paused;
    this.slots = new Slots(o.gpus, o.maxCpuJobs);
    this.pool = new FifoPool(o.dataDir);
    this.launcher = new RunLauncher(o.baseEnv);
    this.batch = new SubmitBatch(o.journal, (jobs) => {
      for (const job of jobs) {
        this.enqueue(job);
        this.emit('job:submitted', job);
      }
      this.scheduleTick();
    }, (e) => (this.guard.note(e) ? faultError(this.guard.fault!) : (e as Error)));
    this.guard = new DiskGuard({
      dataDir: o.dataDir, journal: o.journal, logger: o.logger,
      recover: async () => void (await this.recover()),
      cleared: () => {
        this.unjournaled.clear();
        this.scheduleTick();
      },
    });
    this.reports = new EndReports(o.journal, this.guard, o.logger, new RunDirTrash(o.dataDir));
  }

  get gpuCount(): number {
    return this.o.gpus;
  }

  stats(): { queued: number; running: number; gpusBusy: number; cpuBusy: number; draining: boolean; paused: boolean; fault: Fault | null } {
    const { gpusBusy, cpuBusy } = this.slots;
    return { queued: this.queue.length, running: this.active.size, gpusBusy, cpuBusy, draining: this.draining, paused: this.paused, fault: this.guard.fault };
  }

  /** A job as the API shows it: its journal record, or its end while a disk fault holds that write back. */
  view(job: JobRecord): JobRecord {
    return this.unjournaled.get(job.id) ?? job;
  }

  isIdle(): boolean {
    return this.queue.length === 0 && this.active.size === 0;
  }

  /** Crash recovery, before serving (see recoverJournal). */
  async recover(): Promise<{ orphansKilled: number; interrupted: number; requeued: number; reattached: number }> {
    const r = await recoverJournal(this.o.journal, this.o.dataDir);
    for (const job of r.queued) if (!this.queue.some((q) => q.id === job.id)) this.enqueue(job);
    let reattached = 0;
    for (const { job, runs } of r.attached) {
      if (this.active.has(job.id)) continue;
      this.adopt(job, runs);
      reattached += runs.length;
    }
    return { orphansKilled: r.orphansKilled, interrupted: r.interrupted, requeued: r.requeued, reattached };
  }

  /** Takes over a job whose runs' supervisors outlived the previous agent: their end is recorded as it happens (or happened). */
  private adopt(job: JobRecord, runs: RunRecord[]): void {
    const a = adoptedJob(job, runs, job.spec.kind === 'batch' ? this.o.journal.shardsOf(job.id) : [], (ids) => this.slots.takeExact(job.spec.gpus, ids));
    this.active.set(job.id, a);
    for (const run of a.runs) {
      this.o.logger.info({ jobId: job.id, runId: run.runId, pid: run.attach?.pid }, 're-attached to a run the previous agent started');
      this.execute(a, run).catch((e: unknown) => this.o.logger.error({ err: e, jobId: job.id }, 'run bookkeeping failed'));
    }
  }

  /** Validates and journals a job (see SubmitBatch); a known idempotency key answers its job. */
  async submit(spec: JobSpec, idempotencyKey?: string): Promise<{ job: JobRecord; created: boolean }> {
    if (idempotencyKey !== undefined) {
      const known = await this.batch.byKey(idempotencyKey);
      if (known) return { job: known, created: false };
    }
    if (this.draining) throw conflict('the agent is shutting down or its host is being preempted: no new jobs are accepted');
    if (this.guard.fault) throw faultError(this.guard.fault);
    if (this.o.maxQueued !== undefined && this.queue.length + this.batch.size >= this.o.maxQueued) {
      // about how long the queue takes to drain by a tenth
      const retryAfterSeconds = Math.min(60, Math.max(1, Math.ceil(this.queue.length / Math.max(1, this.o.maxCpuJobs + this.o.gpus) / 10)));
      throw new AgentError(429, 'queue_full', `${this.queue.length} jobs are queued (--max-queued ${this.o.maxQueued}): retry later`, undefined, { retryAfterSeconds });
    }
    checkSpec(spec, this.o.gpus);
    return { job: await this.batch.add(spec, idempotencyKey), created: true };
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
        if (this.guard.note(e)) throw faultError(this.guard.fault!);
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
    if (this.active.size > 0) {
      const allDone = once(this, () => this.active.size === 0, 'job:finished', 'job:requeued');
      for (const a of this.active.values()) this.force(a, 'shutdown', graceMs);
      await allDone;
    }
    this.launcher.close();
    await this.reports.drain(); // the journal closes next: every end is reported first
  }

  /**
   * Stops dispatching and watching without stopping any job (a start that failed after recovery):
   * the runs' supervisors record how they end, for the next agent.
   */
  detach(): void {
    this.draining = true;
    this.guard.close();
    for (const a of this.active.values()) for (const run of a.runs) run.handle?.detach();
    this.launcher.close();
  }

  private force(a: ActiveJob, reason: StopReason, graceMs: number): void {
    a.forced ??= reason;
    a.pendingShards = a.pendingShards === null ? null : [];
    for (const run of a.runs) {
      run.stopReason ??= reason;
      run.handle?.stop(reason, graceMs);
    }
    void this.maybeFinish(a);
  }

  private enqueue(job: JobRecord): void {
    insertByPriority(this.queue, job);
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

  /** Starts what fits, highest priority first (then oldest); smaller jobs may backfill free slots. */
  private tick(): void {
    if (this.paused || this.draining || this.guard.fault) return;
    for (const c of dispatchOrder(this.active.values(), this.queue)) {
      if (c.active) {
        const a = c.active;
        while (a.pendingShards!.length > 0 && this.slots.fits(a.job.spec.gpus)) this.startRun(a, a.pendingShards!.shift()!);
      } else if (c.queued && this.slots.fits(c.queued.spec.gpus)) {
        try {
          this.startJob(c.queued);
        } catch (e) {
          if (!this.guard.note(e)) throw e;
          return;
        }
      }
    }
  }

  private startJob(q: JobRecord): void {
    const j = this.o.journal;
    const train = q.spec.kind !== 'batch';
    let run: RunStart | undefined;
    let job: JobRecord | undefined;
    try {
      // a train job's start and its run's record are one transaction, not fsynced: it survives a kill
      // of the agent (page cache), and a power loss takes the job's processes with it (the job is then
      // still queued on disk and runs again, uncharged)
      job = j.transaction(() => {
        const started = j.startJob(q.id);
        if (started && train) run = recordRun(j, this.slots, started, null);
        return started;
      }, 'deferred');
    } catch (e) {
      if (run) this.slots.release(q.spec.gpus, run.gpuSlots);
      throw e; // tick notes the fault; the job stays queued
    }
    this.dequeue(q.id);
    if (!job) return;
    const a: ActiveJob = { job, runs: new Set(), pendingShards: train ? [] : null, trainRunStarted: false };
    this.active.set(job.id, a);
    this.emit('job:started', job);
    this.o.logger.info({ jobId: job.id, attempt: job.attempts, kind: job.spec.kind }, 'job started');
    if (!train) void this.listShards(a);
    else this.launch(a, run!);
  }

  private async listShards(a: ActiveJob): Promise<void> {
    await listShards(a, this.o);
    void this.maybeFinish(a);
    this.scheduleTick();
  }

  private startRun(a: ActiveJob, shard: ShardRecord): void {
    let run: RunStart;
    try {
      run = recordRun(this.o.journal, this.slots, a.job, shard);
    } catch (e) {
      if (!this.guard.note(e)) throw e;
      // nothing was spawned: the attempt ends without charging a retry once the disk recovers
      a.forced ??= 'disk';
      if (a.pendingShards) a.pendingShards = [];
      void this.maybeFinish(a);
      return;
    }
    this.launch(a, run);
  }

  private launch(a: ActiveJob, r: RunStart): void {
    const run: ActiveRun = { runId: r.runId, marker: r.marker, shard: r.shard, gpuSlots: r.gpuSlots, startedMs: Date.now() };
    a.runs.add(run);
    if (!r.shard) a.trainRunStarted = true;
    this.emit('run:started', { jobId: a.job.id, runId: r.runId, shard: r.shard?.idx ?? null, gpuIds: r.gpuIds });
    this.execute(a, run).catch((e: unknown) => this.o.logger.error({ err: e, jobId: a.job.id }, 'run bookkeeping failed'));
  }

  /** The job's `MLINFRA_ARTIFACT_DIR` (train runs and batch shards alike: a batch job's shards share it). */
  artifactDir(jobId: string): string {
    return workDir(this.o.dataDir, jobId, 'artifacts');
  }

  private async execute(a: ActiveJob, run: ActiveRun): Promise<void> {
    const { spec, id } = a.job;
    const ctx = {
      dataDir: this.o.dataDir, storage: this.o.storage, baseEnv: this.o.baseEnv, graceMs: this.o.graceMs, jobUser: this.o.jobUser,
      log: this.o.logs.live(id), pool: this.pool, launcher: this.launcher,
    };
    const res = await executeRun(ctx, a.job, run, (h: RunHandle) => {
      // not fsynced on its own: the marker journaled before the spawn already finds the run after a crash
      if (h.pid !== null) this.guard.durable(() => this.o.journal.setRunPid(run.runId, h.pid!, h.pgid!, h.procStart, false));
    });
    const { facts } = res;
    let failure = res.failure;
    if (facts?.diskError) this.guard.note(Object.assign(new Error(facts.diskError), { code: /EROFS/.test(facts.diskError) ? 'EROFS' : 'ENOSPC' }));
    if (!failure && run.shard) {
      try {
        this.o.journal.shardDone(id, run.shard.idx);
        this.emit('shard:done', { jobId: id, idx: run.shard.idx });
      } catch (e) {
        if (!this.guard.note(e)) throw e;
        failure = { class: 'disk', reason: `the shard's completion could not be journaled: ${(e as Error).message}` };
      }
    }
    this.slots.release(spec.gpus, run.gpuSlots);
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
    // the run's end and (when it was the last) the job's end are one transaction, made durable by a
    // shared fdatasync off the event loop before the end is reported (the slots are free already)
    const writes: Array<() => void> = [
      () => this.o.journal.endRun(run.runId, failure ? 'failed' : 'succeeded', facts?.exitCode ?? null, facts?.signal ?? null, failure),
    ];
    const synced = this.maybeFinish(a, writes);
    this.scheduleTick();
    await synced;
    // after the end is on disk: a restart between the two finds the status and no open run (stale dir, removed then)
    this.reports.removeDir(runDirOf(this.o.dataDir, run.runId));
  }

  /**
   * Ends the job when nothing of it runs any more. Journal writes go through `durable` (with the
   * run's end when `writes` is given: one transaction); the in-memory state moves on at once, so a
   * disk fault never leaves a slot taken or a shutdown waiting. The end is reported (`job:finished`,
   * followers ended) once it is on disk; the returned promise resolves then.
   */
  private maybeFinish(a: ActiveJob, writes: Array<() => void> = []): Promise<void> {
    let committed = false;
    const flush = (): void => {
      if (writes.length === 0) return;
      this.guard.durable(() => {
        this.o.journal.transaction(() => writes.forEach((w) => w()), 'deferred');
        committed = true;
      });
    };
    if (!this.active.has(a.job.id) || !attemptOver(a)) {
      flush();
      return committed ? this.reports.synced() : Promise.resolve();
    }
    this.active.delete(a.job.id);
    const j = this.o.journal;
    const id = a.job.id;
    const end = endOf(a);
    writes.push(() => {
      j.endJob(id, end);
      if (end.state === 'queued') j.requeueJob(id);
    });
    flush();
    const rec = endedRecord(a.job, end);
    if (this.guard.holding) this.unjournaled.set(id, rec);
    if (end.state === 'queued') {
      // not reported to anyone: the retry may start before the end is synced (a power loss loses both)
      this.o.logger.info({ jobId: id, failure: end.failure, retriesLeft: rec.spec.retries - rec.charged }, 'job failed, retrying');
      this.enqueue(rec);
      this.emit('job:requeued', rec);
      this.scheduleTick();
      return committed ? this.reports.synced() : Promise.resolve();
    }
    if (committed && !this.guard.holding) {
      // until it is on disk, status shows the job as it was (running), and followers keep following
      this.unjournaled.set(id, a.job);
      return this.reports.after(() => {
        if (this.unjournaled.get(id) === a.job) this.unjournaled.delete(id);
        this.finished(id, rec);
      });
    }
    this.finished(id, rec);
    return Promise.resolve();
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

