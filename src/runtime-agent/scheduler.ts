import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { badRequest, conflict, notFound } from './errors';
import { killGroup, procStartTime, runProcess, type RunHandle, type StopReason } from './executor';
import { classifyExit, type ExitFacts } from './failure';
import type { Journal } from './journal';
import type { LogStore } from './logs';
import { joinUri, localPathOf, schemeOf, type Storage } from './storage/index';
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
}

interface ActiveRun {
  readonly runId: number;
  readonly shard: ShardRecord | null;
  readonly gpuSlots: number[];
  readonly startedMs: number;
  handle?: RunHandle;
  stopReason?: StopReason;
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
  private readonly pendingSubmits: Array<{ id: string; spec: JobSpec; resolve: (j: JobRecord) => void; reject: (e: Error) => void }> = [];
  private flushScheduled = false;
  private readonly o: SchedulerOptions;

  constructor(o: SchedulerOptions) {
    super();
    this.o = o;
    this.paused = o.paused;
    this.freeGpus = new Set(Array.from({ length: o.gpus }, (_, i) => i));
  }

  get gpuCount(): number {
    return this.o.gpus;
  }

  stats(): { queued: number; running: number; gpusBusy: number; cpuBusy: number; draining: boolean; paused: boolean } {
    return {
      queued: this.queue.length,
      running: this.active.size,
      gpusBusy: this.o.gpus - this.freeGpus.size,
      cpuBusy: this.cpuInUse,
      draining: this.draining,
      paused: this.paused,
    };
  }

  isIdle(): boolean {
    return this.queue.length === 0 && this.active.size === 0;
  }

  /**
   * Crash recovery, before serving: kills the process groups of runs a previous agent left behind,
   * marks the jobs that were running `interrupted`, and re-queues those with retries left (and those
   * interrupted by preemption or a graceful shutdown, which do not count against retries).
   */
  async recover(): Promise<{ orphansKilled: number; interrupted: number; requeued: number }> {
    const j = this.o.journal;
    let orphansKilled = 0;
    const groups: number[] = [];
    for (const run of j.openRuns()) {
      if (run.pgid) {
        const start = procStartTime(run.pgid);
        const reused = start !== null && run.procStart !== null && start !== run.procStart;
        if (!reused && killGroup(run.pgid, 'SIGKILL')) {
          orphansKilled++;
          groups.push(run.pgid);
        }
      }
      j.endRun(run.runId, 'interrupted', null, null, { class: 'signal', reason: 'the agent restarted while this run was active; its process group was killed' });
    }
    const deadline = Date.now() + 5000;
    while (groups.some((g) => killGroup(g, 0 as unknown as NodeJS.Signals)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    let interrupted = 0;
    let requeued = 0;
    for (const job of j.jobsInState('running')) {
      interrupted++;
      const rec = j.endJob(job.id, {
        state: 'interrupted', exitCode: null, signal: null, charge: true,
        failure: { class: 'signal', reason: 'the agent stopped unexpectedly (crash, kill -9 or host reboot) while the job was running' },
      });
      if (rec.charged <= rec.spec.retries) {
        j.requeueJob(job.id);
        requeued++;
      }
    }
    for (const job of j.jobsInState('interrupted')) {
      if (job.requeue) {
        j.requeueJob(job.id);
        requeued++;
      }
    }
    for (const job of j.jobsInState('queued')) this.enqueue(job);
    return { orphansKilled, interrupted, requeued };
  }

  /**
   * Validates and journals a job. Resolves once the job is on disk: submits that arrive in the same
   * event-loop turn share one SQLite transaction (one fsync), which is what makes submits cheap.
   */
  submit(spec: JobSpec): Promise<JobRecord> {
    if (this.draining) throw conflict('the agent is shutting down or its host is being preempted: no new jobs are accepted');
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
    return new Promise((resolve, reject) => {
      this.pendingSubmits.push({ id, spec, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushSubmits());
      }
    });
  }

  private flushSubmits(): void {
    this.flushScheduled = false;
    const batch = this.pendingSubmits.splice(0);
    let jobs: JobRecord[];
    try {
      jobs = this.o.journal.transaction(() => batch.map((b) => this.o.journal.insertJob(b.id, b.spec)));
    } catch (e) {
      for (const b of batch) b.reject(e as Error);
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
    if (job.state === 'queued') {
      this.o.journal.cancelQueued(id, 'cancelled by request while queued');
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
    if (this.paused || this.draining) return;
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
        this.startJob(c.queued);
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
    const runId = j.transaction(() => {
      const rid = j.insertRun(a.job.id, a.job.attempts, shard?.idx ?? null, gpuIds);
      if (shard) j.shardAttempt(a.job.id, shard.idx);
      else j.setJobGpus(a.job.id, gpuIds);
      return rid;
    });
    const run: ActiveRun = { runId, shard, gpuSlots: slots, startedMs: Date.now() };
    a.runs.add(run);
    if (!shard) a.trainRunStarted = true;
    this.emit('run:started', { jobId: a.job.id, runId, shard: shard?.idx ?? null, gpuIds });
    void this.execute(a, run);
  }

  private workDir(jobId: string, ...parts: string[]): string {
    return path.join(this.o.dataDir, 'work', jobId, ...parts);
  }

  /** The job's `MLINFRA_ARTIFACT_DIR` (train runs and batch shards alike: a batch job's shards share it). */
  artifactDir(jobId: string): string {
    return this.workDir(jobId, 'artifacts');
  }

  private async execute(a: ActiveJob, run: ActiveRun): Promise<void> {
    const { spec, id } = a.job;
    const storage = this.o.storage;
    let facts: ExitFacts | null = null;
    let failure: Failure | null = null;
    try {
      const ckpt = spec.checkpointDir;
      const ckptRemote = ckpt !== undefined && !storage.isLocal(ckpt);
      const ckptDir = ckpt === undefined ? path.join(this.o.dataDir, 'checkpoints', id) : ckptRemote ? this.workDir(id, 'checkpoint') : localPathOf(ckpt);
      const artifactDir = this.artifactDir(id);
      await fs.promises.mkdir(ckptDir, { recursive: true });
      await fs.promises.mkdir(artifactDir, { recursive: true });
      if (ckptRemote && !run.shard) await storage.getDir(ckpt, ckptDir);
      const env: NodeJS.ProcessEnv = {
        ...this.o.baseEnv,
        ...spec.env,
        CUDA_VISIBLE_DEVICES: run.gpuSlots.join(','),
        MLINFRA_JOB_ID: id,
        MLINFRA_ATTEMPT: String(a.job.attempts),
        MLINFRA_GPUS: String(spec.gpus),
        MLINFRA_CHECKPOINT_DIR: ckptDir,
        MLINFRA_ARTIFACT_DIR: artifactDir,
      };
      let outputLocal: string | undefined;
      if (run.shard) {
        const s = run.shard;
        const base = path.basename(s.key);
        const inputLocal = storage.isLocal(s.inputUri) ? localPathOf(s.inputUri) : this.workDir(id, 'shards', String(s.idx), 'in', base);
        if (!storage.isLocal(s.inputUri)) await storage.get(s.inputUri, inputLocal);
        outputLocal = storage.isLocal(s.outputUri) ? localPathOf(s.outputUri) : this.workDir(id, 'shards', String(s.idx), 'out', base);
        await fs.promises.mkdir(path.dirname(outputLocal), { recursive: true });
        Object.assign(env, {
          MLINFRA_INPUT: inputLocal,
          MLINFRA_OUTPUT: outputLocal,
          MLINFRA_SHARD_INDEX: String(s.idx),
          MLINFRA_SHARD_KEY: s.key,
        });
      }
      if (spec.cwd !== undefined && !fs.existsSync(spec.cwd)) {
        facts = { exitCode: null, signal: null, stderrTail: '', spawnError: `the working directory ${spec.cwd} does not exist` };
      } else if (run.stopReason) {
        facts = { exitCode: null, signal: null, stderrTail: '', stoppedBy: run.stopReason };
      } else {
        const handle = runProcess({
          argv: spec.argv, env, cwd: spec.cwd, log: this.o.logs.live(id), timeoutSeconds: spec.timeoutSeconds, graceMs: this.o.graceMs,
        });
        run.handle = handle;
        if (handle.pid !== null) this.o.journal.setRunPid(run.runId, handle.pid, handle.pgid!, handle.procStart);
        facts = await handle.done;
      }
      failure = classifyExit(facts);
      if (!failure && run.shard) {
        const s = run.shard;
        if (!storage.isLocal(s.outputUri) && outputLocal && fs.existsSync(outputLocal)) await storage.put(outputLocal, s.outputUri);
        this.o.journal.shardDone(id, s.idx);
        this.emit('shard:done', { jobId: id, idx: s.idx });
      }
      if (!failure && !run.shard && spec.artifactUri) await storage.putDir(artifactDir, spec.artifactUri);
      if (ckptRemote && !run.shard) await storage.putDir(ckptDir, ckpt);
    } catch (e) {
      failure ??= { class: 'exit', reason: `setup or storage error: ${(e as Error).message}` };
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
    this.o.journal.transaction(() => {
      this.o.journal.endRun(run.runId, failure ? 'failed' : 'succeeded', facts?.exitCode ?? null, facts?.signal ?? null, failure);
      this.maybeFinish(a);
    });
    this.scheduleTick();
  }

  private maybeFinish(a: ActiveJob): void {
    if (!this.active.has(a.job.id) || a.runs.size > 0 || a.pendingShards === null) return;
    if (a.pendingShards.length > 0 && !a.forced && !a.outcome) return;
    if (a.job.spec.kind === 'train' && !a.trainRunStarted && !a.forced) return;
    this.active.delete(a.job.id);
    const j = this.o.journal;
    const id = a.job.id;
    const facts = a.outcome?.facts ?? a.lastFacts ?? null;
    const exitCode = facts?.exitCode ?? null;
    const signal = facts?.signal ?? null;
    if (a.forced === 'cancel') {
      j.endJob(id, { state: 'cancelled', exitCode, signal, charge: false, failure: { class: 'cancelled', reason: 'cancelled by request' } });
    } else if (a.forced === 'preemption') {
      j.endJob(id, { state: 'interrupted', exitCode, signal, charge: false, requeue: true, failure: classifyExit({ exitCode, signal, stderrTail: '', stoppedBy: 'preemption' }) });
    } else if (a.forced === 'shutdown') {
      j.endJob(id, { state: 'interrupted', exitCode, signal, charge: false, requeue: true, failure: classifyExit({ exitCode, signal, stderrTail: '', stoppedBy: 'shutdown' }) });
    } else if (!a.outcome) {
      j.endJob(id, { state: 'succeeded', exitCode: a.job.spec.kind === 'batch' ? 0 : exitCode, signal, charge: false, failure: null });
    } else {
      const retry = a.job.charged + 1 <= a.job.spec.retries;
      const rec = j.endJob(id, { state: retry ? 'queued' : 'failed', exitCode, signal, charge: true, failure: a.outcome.failure });
      if (retry) {
        this.o.logger.info({ jobId: id, failure: a.outcome.failure, retriesLeft: rec.spec.retries - rec.charged }, 'job failed, retrying');
        this.enqueue(rec);
        this.emit('job:requeued', rec);
        this.scheduleTick();
        return;
      }
    }
    this.finished(id);
  }

  private finished(id: string): JobRecord {
    const job = this.o.journal.getJob(id)!;
    this.o.logs.finish(id);
    this.o.logger.info({ jobId: id, state: job.state, exitCode: job.exitCode, failure: job.failure }, 'job finished');
    this.emit('job:finished', job);
    return job;
  }
}
