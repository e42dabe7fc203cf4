import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentError } from '../errors';
import { openQueue, type JobQueue, type LeasedMessage } from '../queue/index';
import type { Scheduler } from '../scheduler';
import type { Storage } from '../storage/index';
import type { JobRecord, JobSpec } from '../types';
import { capDuration, commitLease, confirmLease, leaseGone, noteFinalUploadFailure, saveCheckpoint, shipLog, superseded, type Lease } from './lease';
import { gangLaunch, holdsGangRank } from './gang';
import type { ClusterOptions } from './options';
import { enqueueJob, enqueuePipelineRun } from './enqueue';
import { PipelineRuns, pipelineRunOf, type PipelineRunMessage, type PipelineRunner } from './pipeline-runs';
import { CLUSTER_JOB_ID, CLUSTER_TERMINAL, ClusterStore, deadLetterReason, isPreconditionFailed, type ClusterAttempt, type ClusterJob, type ClusterMessage } from './records';

export interface ClusterWorkerDeps {
  readonly options: ClusterOptions;
  readonly scheduler: Scheduler;
  readonly storage: Storage;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly maxCpuJobs: number;
  /** This host in job records (the default: hostname/pid). */
  readonly host?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Runs pipeline-run messages on this host. @default - none: such messages are released for another host */
  readonly runPipeline?: PipelineRunner;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Leases jobs from the cluster's queue when this host has free slots for them, runs them through
 * the local scheduler (whose journal keeps local execution state), extends the lease while they
 * run, saves checkpoints and ships logs to the bucket, and acks at the end. A notice or shutdown
 * stops leasing; each interrupted job is released as soon as its final checkpoint is saved.
 */
export class ClusterWorker {
  readonly queue: JobQueue;
  readonly store: ClusterStore;
  readonly pipelines: PipelineRuns;
  private readonly leases = new Map<string, Lease>();
  private readonly ended = new Map<string, JobRecord>();
  /** Messages between receive and their local submit (bucket reads and writes): extended too. */
  private readonly taking = new Map<LeasedMessage, { lastExtendMs: number }>();
  /** Cluster jobs between their local submit and their lease record. */
  private readonly starting = new Set<string>();
  private readonly pending = new Set<Promise<void>>();
  private draining = false;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly host: string;
  /** Consecutive receive failures: the queue is unreachable while it grows. */
  receiveFailures = 0;
  checkpointFailures = 0;

  constructor(private readonly d: ClusterWorkerDeps) {
    this.queue = openQueue(d.options.queue, d.options.deadLetterQueue, d.env);
    this.store = new ClusterStore(d.storage, d.options.artifacts, path.join(d.dataDir, 'cluster-tmp'));
    this.host = d.host ?? `${os.hostname()}/${process.pid}`;
    this.pipelines = new PipelineRuns({
      queue: this.queue, storage: d.storage, artifacts: d.options.artifacts, host: this.host, leaseSeconds: d.options.leaseSeconds, logger: d.logger,
      runner: d.runPipeline, draining: () => this.draining, track: (p) => this.track(p),
    });
    d.scheduler.on('job:finished', (job) => this.track(this.onFinished(job)));
    d.scheduler.on('job:started', (job) => this.foreign(job));
  }

  start(): void {
    this.loop ??= this.run();
    const tickMs = Math.max(100, Math.min(this.d.options.leaseSeconds / 3, this.d.options.logShipSeconds, this.d.options.checkpointSeconds) * 1000 / 2);
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  /** Leases held now (scale-in protection stays on while any is). */
  get leaseCount(): number { return this.leases.size; }

  /** Stops leasing (a notice, a shutdown): running jobs keep their leases until they end. */
  drain(): void {
    this.draining = true;
  }

  /** After the scheduler has stopped every job: waits for the last releases and uploads. Safe to call twice. */
  async close(): Promise<void> {
    this.draining = true;
    await this.loop;
    clearInterval(this.timer);
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Enqueues a job for the cluster. Throws 413 for a message the queue cannot take, 503 when the queue did not take it. */
  enqueue(spec: JobSpec): Promise<ClusterJob> {
    return enqueueJob(this.queue, this.store, spec, this.d.logger);
  }

  /** Enqueues one run of a pipeline (what its schedule sends). */
  enqueuePipelineRun(pipeline: string, spec: string): Promise<{ messageId: string }> {
    return enqueuePipelineRun(this.queue, pipeline, spec);
  }

  async get(id: string): Promise<ClusterJob | null> {
    return CLUSTER_JOB_ID.test(id) ? this.store.read(id) : null;
  }

  /** Cancels through the bucket: a queued job is dropped when leased, a running one is stopped by its host's next tick. */
  cancel(id: string): Promise<ClusterJob | null> {
    return CLUSTER_JOB_ID.test(id) ? this.store.requestCancel(id) : Promise.resolve(null);
  }

  private track(p: Promise<void>): void {
    const q = p.catch((e: unknown) => this.d.logger.error({ err: e }, 'cluster bookkeeping failed')).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  /** GPU and CPU slots neither running nor promised to a leased job. */
  private free(): { gpus: number; cpu: number } {
    const s = this.d.scheduler.stats();
    let leasedGpus = 0;
    let leasedCpu = 0;
    for (const l of this.leases.values()) {
      if (l.job.spec.gpus > 0) leasedGpus += l.job.spec.gpus;
      else leasedCpu++;
    }
    return { gpus: this.d.scheduler.gpuCount - Math.max(s.gpusBusy, leasedGpus), cpu: this.d.maxCpuJobs - Math.max(s.cpuBusy, leasedCpu) };
  }

  private fits(gpus: number): boolean {
    const f = this.free();
    return gpus === 0 ? f.cpu > 0 : f.gpus >= gpus;
  }

  private async run(): Promise<void> {
    const o = this.d.options;
    while (!this.draining) {
      const f = this.free();
      const st = this.d.scheduler.stats();
      // a paused host (maintenance) or one with a disk fault leases nothing
      if ((f.gpus <= 0 && f.cpu <= 0) || st.fault || st.paused) {
        await sleep(200);
        continue;
      }
      let msgs: LeasedMessage[];
      try {
        msgs = await this.queue.receive(1, o.leaseSeconds, o.pollSeconds);
        this.receiveFailures = 0;
      } catch (e) {
        this.receiveFailures++;
        this.d.logger.warn({ err: (e as Error).message, failures: this.receiveFailures }, 'cluster queue receive failed');
        await sleep(Math.max(500, o.pollSeconds * 1000));
        continue;
      }
      for (const m of msgs) {
        this.taking.set(m, { lastExtendMs: Date.now() });
        try {
          await this.take(m);
        } catch (e) {
          this.d.logger.error({ err: e, messageId: m.messageId }, 'leased message not started: released');
          await this.queue.release(m, 0).catch(() => undefined);
        } finally {
          this.taking.delete(m);
        }
      }
    }
  }

  private async take(m: LeasedMessage): Promise<void> {
    const o = this.d.options;
    let run: PipelineRunMessage | undefined;
    let msg: ClusterMessage | undefined;
    try {
      run = pipelineRunOf(m.body);
      msg = run ? undefined : JSON.parse(m.body) as ClusterMessage;
      if (msg && (msg.v !== 1 || !CLUSTER_JOB_ID.test(msg.id) || !Array.isArray(msg.spec?.argv))) throw new Error('not a v1 cluster job');
    } catch (e) {
      await this.queue.deadLetter(m, `malformed message: ${(e as Error).message}`);
      return;
    }
    if (!msg) return this.pipelines.take(m, run!);
    // record writes are conditional: when another writer got in between (the submitter, a cancel), decide again
    for (let round = 0; ; round++) {
      const conflict = (e: unknown): boolean => isPreconditionFailed(e) && round < 4;
      const now = new Date().toISOString();
      const cur = await this.store.readTagged(msg.id);
      const job: ClusterJob = cur?.job ?? { id: msg.id, spec: msg.spec, state: 'queued', createdAt: msg.submittedAt, updatedAt: now, attempts: [] };
      if (CLUSTER_TERMINAL.includes(job.state)) {
        // at-least-once delivery: it already ended (or was cancelled while queued)
        this.d.logger.info({ jobId: job.id, state: job.state, attempt: m.attempt }, 'cluster job already ended: message dropped');
        await this.queue.ack(m);
        return;
      }
      // attempts are counted by starts recorded in the bucket, not by deliveries: a host without free
      // GPUs that looks at a message and puts it back must not use up the job's attempts
      if (job.attempts.length >= o.maxAttempts) {
        const reason = deadLetterReason(job, o.maxAttempts);
        if (!(await confirmLease(this.queue, m, o.leaseSeconds, this.d.logger))) return;
        Object.assign(job, { state: 'failed', failure: { class: 'dead-letter', reason } });
        const wrote = await this.store.put(job, cur?.tag ?? null).then(() => true, (e: unknown) => { if (conflict(e)) return false; throw e; });
        if (!wrote) continue;
        await this.queue.deadLetter(m, reason);
        this.d.logger.warn({ jobId: job.id, reason }, 'cluster job dead-lettered');
        return;
      }
      // one rank of a gang per host (gang.ts)
      if (!this.fits(job.spec.gpus) || this.draining || holdsGangRank(job.spec, this.leases.values())) {
        // another host (or this one, later) takes it; a short delay keeps this host from taking it back at once
        await this.queue.release(m, this.draining ? 0 : Math.min(2, o.pollSeconds));
        return;
      }
      if (!(await confirmLease(this.queue, m, o.leaseSeconds, this.d.logger))) return;
      const attempt: ClusterAttempt = { attempt: job.attempts.length + 1, host: this.host, startedAt: now, deliveries: m.attempt };
      job.state = 'running';
      job.attempts.push(attempt);
      let tag: string;
      try {
        tag = await this.store.put(job, cur?.tag ?? null);
      } catch (e) {
        if (conflict(e)) continue;
        throw e;
      }
      return this.startLocal(m, job, attempt, tag);
    }
  }

  /** Runs a leased attempt (already recorded in the bucket) through the local scheduler. */
  private async startLocal(m: LeasedMessage, job: ClusterJob, attempt: ClusterAttempt, tag: string): Promise<void> {
    const ckpt = job.spec.checkpointDir !== undefined && !this.d.storage.isLocal(job.spec.checkpointDir) ? job.spec.checkpointDir : this.store.checkpointUri(job.id);
    const spec: JobSpec = {
      ...job.spec, retries: 0, checkpointDir: ckpt, ...capDuration(job.spec.timeoutSeconds, this.d.options.maxDurationSeconds),
      env: { ...job.spec.env, MLINFRA_CLUSTER_JOB_ID: job.id, MLINFRA_CLUSTER_ATTEMPT: String(attempt.attempt) },
    };
    let local: JobRecord;
    this.starting.add(job.id);
    try {
      local = (await this.d.scheduler.submit(gangLaunch(spec), `cluster:${job.id}:${attempt.attempt}`)).job;
    } catch (e) {
      this.starting.delete(job.id);
      if (e instanceof AgentError && e.statusCode === 400) {
        // no host can run what this host refuses as invalid (a bad URI, a relative cwd)
        await this.endJob({ msg: m, job, attempt, tag, writes: Promise.resolve() } as Lease, 'failed', null, { class: 'exit', reason: `refused: ${e.message}` });
        return;
      }
      throw e;
    }
    const t = Date.now();
    const lease: Lease = { msg: m, job, attempt, localId: local.id, ckptUri: ckpt, lastExtendMs: 0, lastCheckpointMs: t, lastLogMs: t, logOffset: 0, logSeq: 0, busy: false, tag, writes: Promise.resolve() };
    this.leases.set(local.id, lease);
    this.starting.delete(job.id);
    this.d.logger.info({ jobId: job.id, localId: local.id, attempt: attempt.attempt, deliveries: m.attempt }, 'cluster job leased');
    const early = this.ended.get(local.id);
    if (early) this.track(this.onFinished(early));
  }

  /**
   * A cluster job this host holds no lease for (the local journal re-queued it after a restart):
   * the queue owns it and another host may run it now, so it is cancelled here.
   */
  private foreign(local: JobRecord): void {
    const clusterId = local.spec.env.MLINFRA_CLUSTER_JOB_ID;
    if (clusterId === undefined || this.leases.has(local.id) || this.starting.has(clusterId)) return;
    this.d.logger.warn({ jobId: clusterId, localId: local.id }, 'cluster job without a lease on this host (re-queued by the local journal): cancelled, the queue owns it');
    try {
      this.d.scheduler.cancel(local.id);
    } catch {
      // it ended meanwhile
    }
  }

  /** Extends leases, saves checkpoints, ships logs, and stops jobs cancelled through the bucket. */
  private tick(): void {
    const o = this.d.options;
    const now = Date.now();
    const every = (o.leaseSeconds * 1000) / 3;
    this.pipelines.tick(now);
    for (const [m, t] of this.taking) {
      if (now - t.lastExtendMs < every) continue;
      t.lastExtendMs = now;
      this.queue.extend(m, o.leaseSeconds).catch((e: unknown) => this.d.logger.warn({ messageId: m.messageId, err: (e as Error).message }, 'lease extension failed'));
    }
    for (const l of this.leases.values()) {
      if (now - l.lastExtendMs >= every && !l.lost) {
        l.lastExtendMs = now;
        this.queue.extend(l.msg, o.leaseSeconds).catch((e: unknown) => this.leaseError(l, e));
      }
      if (l.busy) continue;
      const ckptDue = now - l.lastCheckpointMs >= o.checkpointSeconds * 1000;
      const logDue = now - l.lastLogMs >= o.logShipSeconds * 1000;
      if (!ckptDue && !logDue) continue;
      l.busy = true;
      this.track((async () => {
        // before this host writes the record again (with the checkpoint time), so a cancel is not overwritten
        await this.checkCancelled(l);
        if (logDue) await shipLog(l, this.d.dataDir, this.store, this.d.logger);
        if (ckptDue && !(await saveCheckpoint(l, this.d.dataDir, this.d.storage, () => this.commit(l), this.d.logger))) this.checkpointFailures++;
      })().finally(() => {
        l.busy = false;
      }));
    }
  }

  /**
   * The queue refused to extend: when it says the lease is gone (it lapsed and another host may run
   * the job now), this host stops its run and leaves the job to the new lease holder.
   */
  private leaseError(l: Lease, e: unknown): void {
    const msg = (e as Error).message;
    if (leaseGone(e)) this.loseLease(l, msg);
    else this.d.logger.warn({ jobId: l.job.id, err: msg }, 'lease extension failed');
  }

  private commit(l: Lease, final = false): Promise<boolean> {
    return commitLease(l, this.store, this.host, (why) => this.loseLease(l, why), final);
  }

  private loseLease(l: Lease, why: string): void {
    if (l.lost) return;
    l.lost = true;
    this.d.logger.warn({ jobId: l.job.id, attempt: l.attempt.attempt, why }, 'lease lost: stopping the local run, another host owns the job now');
    try {
      this.d.scheduler.cancel(l.localId);
    } catch {
      // it ended meanwhile
    }
  }

  /**
   * Reads the job's record: a cancel stops the run; so does a newer attempt or an end written by
   * another host (this host's lease lapsed unseen: Pub/Sub accepts an expired ack id silently).
   */
  private async checkCancelled(l: Lease): Promise<void> {
    const rec = await this.store.read(l.job.id).catch(() => null);
    if (!rec || !this.leases.has(l.localId) || l.lost) return;
    if (superseded(rec, l, this.host)) {
      this.loseLease(l, `the job record shows attempt ${rec.attempts.length} (${rec.state}) on ${rec.attempts[rec.attempts.length - 1]?.host}`);
      return;
    }
    if (rec.cancelRequested) {
      l.job.cancelRequested = true;
      try {
        this.d.scheduler.cancel(l.localId);
      } catch {
        // it ended meanwhile
      }
    }
  }

  private async onFinished(local: JobRecord): Promise<void> {
    const l = this.leases.get(local.id);
    if (!l) {
      const clusterId = local.spec.env.MLINFRA_CLUSTER_JOB_ID;
      if (clusterId !== undefined && this.starting.has(clusterId)) this.ended.set(local.id, local);
      return;
    }
    this.ended.delete(local.id);
    await shipLog(l, this.d.dataDir, this.store, this.d.logger);
    if (l.lost) {
      this.leases.delete(local.id);
      this.d.logger.warn({ jobId: l.job.id, attempt: l.attempt.attempt }, 'run stopped after its lease was lost: not recorded, the new lease holder records the job');
      return;
    }
    const failure = local.failure;
    noteFinalUploadFailure(l, failure);
    if (local.state === 'succeeded') return this.endJob(l, 'succeeded', local.exitCode, null);
    if (local.state === 'cancelled' || l.job.cancelRequested) return this.endJob(l, 'cancelled', local.exitCode, failure);
    if (local.state === 'interrupted') {
      // a notice or shutdown: the final checkpoint is saved (executeRun uploads it before the job ends), so release now
      Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: 'interrupted', exitCode: local.exitCode, failure });
      l.job.state = 'queued';
      this.leases.delete(local.id);
      const ours = await this.commit(l, true).catch((e: unknown) => {
        this.d.logger.warn({ jobId: l.job.id, err: (e as Error).message }, 'cluster job record not written');
        return true;
      });
      if (!ours) return;
      await this.queue.release(l.msg, 0);
      this.d.logger.info({ jobId: l.job.id, attempt: l.attempt.attempt }, 'cluster job released for another host');
      return;
    }
    const charged = l.job.attempts.filter((a) => a.outcome === 'failed').length + 1;
    if (charged <= l.job.spec.retries) {
      Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: 'failed', exitCode: local.exitCode, failure });
      l.job.state = 'queued';
      this.leases.delete(local.id);
      if (await this.commit(l, true)) await this.queue.release(l.msg, 0);
      return;
    }
    return this.endJob(l, 'failed', local.exitCode, failure);
  }

  /** Records the end in the bucket, then acks: a host lost in between leaves a delivery the next host drops. */
  private async endJob(l: Lease, state: 'succeeded' | 'failed' | 'cancelled', exitCode: number | null, failure: ClusterJob['failure']): Promise<void> {
    Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: state, exitCode, failure });
    Object.assign(l.job, { state, exitCode, failure });
    this.leases.delete(l.localId);
    // another host holds the job now: the message is its to ack
    if (!(await this.commit(l, true))) return;
    await this.queue.ack(l.msg);
    this.d.logger.info({ jobId: l.job.id, state, attempt: l.attempt.attempt }, 'cluster job ended');
  }
}
