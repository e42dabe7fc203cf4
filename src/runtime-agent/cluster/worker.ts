import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentError } from '../errors';
import { openQueue, type JobQueue, type LeasedMessage } from '../queue/index';
import type { Scheduler } from '../scheduler';
import type { Storage } from '../storage/index';
import type { JobRecord, JobSpec } from '../types';
import { saveCheckpoint, shipLog, type Lease } from './lease';
import type { ClusterOptions } from './options';
import { CLUSTER_JOB_ID, CLUSTER_TERMINAL, ClusterStore, newClusterJobId, type ClusterAttempt, type ClusterJob, type ClusterMessage } from './records';

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
    d.scheduler.on('job:finished', (job) => this.track(this.onFinished(job)));
    d.scheduler.on('job:started', (job) => this.foreign(job));
  }

  start(): void {
    this.loop ??= this.run();
    const tickMs = Math.max(100, Math.min(this.d.options.leaseSeconds / 3, this.d.options.logShipSeconds, this.d.options.checkpointSeconds) * 1000 / 2);
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

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
  async enqueue(spec: JobSpec): Promise<ClusterJob> {
    const id = newClusterJobId();
    const now = new Date().toISOString();
    const body = JSON.stringify({ v: 1, id, spec, submittedAt: now } satisfies ClusterMessage);
    const bytes = Buffer.byteLength(body);
    if (bytes > this.queue.maxMessageBytes) {
      throw new AgentError(413, 'payload_too_large', `the job is ${bytes} bytes as a queue message; the ${this.queue.kind} queue takes at most ${this.queue.maxMessageBytes}: put large inputs in the bucket and pass their URI`, 'body');
    }
    try {
      await this.queue.send(body);
    } catch (e) {
      throw new AgentError(503, 'queue_unavailable', `the cluster queue did not accept the job (nothing was enqueued; retry): ${(e as Error).message}`, undefined, { retryAfterSeconds: 5 });
    }
    const job: ClusterJob = { id, spec, state: 'queued', createdAt: now, updatedAt: now, attempts: [] };
    // The queue holds the job now. Its record is written here only if no host has leased it yet
    // (that host wrote a newer one); a lost record is written again by the host that leases the job.
    try {
      if (!(await this.store.exists(id))) await this.store.write(job);
    } catch (e) {
      this.d.logger.warn({ jobId: id, err: (e as Error).message }, 'cluster job record not written at submit');
    }
    return job;
  }

  async get(id: string): Promise<ClusterJob | null> {
    return CLUSTER_JOB_ID.test(id) ? this.store.read(id) : null;
  }

  /** Cancels through the bucket: a queued job is dropped when leased, a running one is stopped by its host's next tick. */
  async cancel(id: string): Promise<ClusterJob | null> {
    const job = await this.get(id);
    if (!job || CLUSTER_TERMINAL.includes(job.state)) return job;
    job.cancelRequested = true;
    if (job.state === 'queued') job.state = 'cancelled';
    await this.store.write(job);
    return job;
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
    let msg: ClusterMessage;
    try {
      msg = JSON.parse(m.body) as ClusterMessage;
      if (msg.v !== 1 || !CLUSTER_JOB_ID.test(msg.id) || !Array.isArray(msg.spec?.argv)) throw new Error('not a v1 cluster job');
    } catch (e) {
      await this.queue.deadLetter(m, `malformed message: ${(e as Error).message}`);
      return;
    }
    const now = new Date().toISOString();
    const job: ClusterJob = (await this.store.read(msg.id)) ?? { id: msg.id, spec: msg.spec, state: 'queued', createdAt: msg.submittedAt, updatedAt: now, attempts: [] };
    if (CLUSTER_TERMINAL.includes(job.state)) {
      // at-least-once delivery: it already ended (or was cancelled while queued)
      this.d.logger.info({ jobId: job.id, state: job.state, attempt: m.attempt }, 'cluster job already ended: message dropped');
      await this.queue.ack(m);
      return;
    }
    // attempts are counted by starts recorded in the bucket, not by deliveries: a host without free
    // GPUs that looks at a message and puts it back must not use up the job's attempts
    if (job.attempts.length >= o.maxAttempts) {
      const last = job.attempts[job.attempts.length - 1];
      const lost = job.attempts.filter((a) => !a.endedAt).length;
      const reason = `dead-lettered after ${job.attempts.length} attempts (--max-attempts ${o.maxAttempts}); ${lost} ended with their host lost; `
        + `the last on ${last.host} at ${last.startedAt}${last.outcome ? ` (${last.outcome}${last.failure ? `: ${last.failure.reason}` : ''})` : ' (host lost)'}`;
      Object.assign(job, { state: 'failed', failure: { class: 'dead-letter', reason } });
      await this.store.write(job);
      await this.queue.deadLetter(m, reason);
      this.d.logger.warn({ jobId: job.id, reason }, 'cluster job dead-lettered');
      return;
    }
    if (!this.fits(job.spec.gpus) || this.draining) {
      // another host (or this one, later) takes it; a short delay keeps this host from taking it back at once
      await this.queue.release(m, this.draining ? 0 : Math.min(2, o.pollSeconds));
      return;
    }
    const attempt: ClusterAttempt = { attempt: job.attempts.length + 1, host: this.host, startedAt: now, deliveries: m.attempt };
    job.state = 'running';
    job.attempts.push(attempt);
    await this.store.write(job);
    const ckpt = job.spec.checkpointDir !== undefined && !this.d.storage.isLocal(job.spec.checkpointDir) ? job.spec.checkpointDir : this.store.checkpointUri(job.id);
    const spec: JobSpec = {
      ...job.spec, retries: 0, checkpointDir: ckpt,
      env: { ...job.spec.env, MLINFRA_CLUSTER_JOB_ID: job.id, MLINFRA_CLUSTER_ATTEMPT: String(attempt.attempt) },
    };
    let local: JobRecord;
    this.starting.add(job.id);
    try {
      local = (await this.d.scheduler.submit(spec, `cluster:${job.id}:${attempt.attempt}`)).job;
    } catch (e) {
      this.starting.delete(job.id);
      if (e instanceof AgentError && e.statusCode === 400) {
        // no host can run what this host refuses as invalid (a bad URI, a relative cwd)
        await this.endJob({ msg: m, job, attempt } as Lease, 'failed', null, { class: 'exit', reason: `refused: ${e.message}` });
        return;
      }
      throw e;
    }
    const t = Date.now();
    const lease: Lease = { msg: m, job, attempt, localId: local.id, ckptUri: ckpt, lastExtendMs: 0, lastCheckpointMs: t, lastLogMs: t, logOffset: 0, logSeq: 0, busy: false };
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
        if (ckptDue && !(await saveCheckpoint(l, this.d.dataDir, this.d.storage, this.store, this.d.logger))) this.checkpointFailures++;
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
    const gone = /ReceiptHandleIsInvalid|MessageNotInflight|not a valid receipt handle|not in flight|INVALID_ARGUMENT|FAILED_PRECONDITION|NOT_FOUND/i.test(`${(e as Error).name} ${msg}`);
    if (gone) this.loseLease(l, msg);
    else this.d.logger.warn({ jobId: l.job.id, err: msg }, 'lease extension failed');
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
    const newer = rec.attempts.length > l.attempt.attempt || (CLUSTER_TERMINAL.includes(rec.state) && rec.attempts[l.attempt.attempt - 1]?.host !== this.host);
    if (newer) {
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
    if (local.state === 'succeeded') return this.endJob(l, 'succeeded', local.exitCode, null);
    if (local.state === 'cancelled' || l.job.cancelRequested) return this.endJob(l, 'cancelled', local.exitCode, failure);
    if (local.state === 'interrupted') {
      // a notice or shutdown: the final checkpoint is saved (executeRun uploads it before the job ends), so release now
      Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: 'interrupted', exitCode: local.exitCode, failure });
      l.job.state = 'queued';
      this.leases.delete(local.id);
      await this.store.write(l.job).catch((e: unknown) => this.d.logger.warn({ jobId: l.job.id, err: (e as Error).message }, 'cluster job record not written'));
      await this.queue.release(l.msg, 0);
      this.d.logger.info({ jobId: l.job.id, attempt: l.attempt.attempt }, 'cluster job released for another host');
      return;
    }
    const charged = l.job.attempts.filter((a) => a.outcome === 'failed').length + 1;
    if (charged <= l.job.spec.retries) {
      Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: 'failed', exitCode: local.exitCode, failure });
      l.job.state = 'queued';
      this.leases.delete(local.id);
      await this.store.write(l.job);
      await this.queue.release(l.msg, 0);
      return;
    }
    return this.endJob(l, 'failed', local.exitCode, failure);
  }

  /** Records the end in the bucket, then acks: a host lost in between leaves a delivery the next host drops. */
  private async endJob(l: Lease, state: 'succeeded' | 'failed' | 'cancelled', exitCode: number | null, failure: ClusterJob['failure']): Promise<void> {
    Object.assign(l.attempt, { endedAt: new Date().toISOString(), outcome: state, exitCode, failure });
    Object.assign(l.job, { state, exitCode, failure });
    this.leases.delete(l.localId);
    await this.store.write(l.job);
    await this.queue.ack(l.msg);
    this.d.logger.info({ jobId: l.job.id, state, attempt: l.attempt.attempt }, 'cluster job ended');
  }
}
