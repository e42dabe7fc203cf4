import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Autostop } from './autostop';
import { startLifecycleHook } from './cluster/aws-group';
import { startCluster, type ClusterWorker } from './cluster/index';
import { DRIFT_FILE, startLocalMetricsServer } from './drift';
import { detectGpus, type GpuInventory } from './gpus';
import { openDatabase } from './db';
import { startHostGuards } from './guards';
import { resolveJobUser } from './job-run';
import { Journal } from './journal';
import { LogStore } from './logs';
import { AgentMetrics } from './metrics';
import { resolveServeOptions, type ServeOptions, type ServeOptionsInput } from './options';
import { inProcessPipelineRunner } from './pipeline-on-start';
import { PreemptionWatcher, type PreemptionNotice } from './preemption';
import { registerModelRoutes } from './registry/routes';
import { Scheduler } from './scheduler';
import { buildServer } from './server';
import { Storage } from './storage/index';
import { version } from '../../package.json';

export const AGENT_VERSION: string = version;

interface AgentEvents {
  listening: [info: { url: string }];
  preempted: [notice: PreemptionNotice];
  closed: [];
}

/**
 * One mlinfra-agent: journal + scheduler + HTTP API (+ preemption watcher and idle autostop).
 *
 * Shutdown semantics (`close()`, wired to SIGTERM/SIGINT by the CLI): new submissions get 409 at once,
 * running jobs get SIGTERM (SIGKILL after `graceSeconds`) and are recorded `interrupted` with
 * `requeue`, so the next start re-queues them without charging a retry; then the HTTP server and the
 * journal close. Queued jobs stay queued on disk.
 */
export class Agent extends EventEmitter<AgentEvents> {
  private closing: Promise<void> | undefined;
  private preemptedBy: PreemptionNotice | null = null;
  /** Work outside the scheduler that keeps the host busy (an in-process pipeline run): holds off idle autostop. */
  private holds = 0;
  /** The cluster queue worker (serve --queue). */
  cluster: ClusterWorker | undefined;
  private constructor(
    readonly options: ServeOptions,
    readonly logger: Logger,
    readonly gpus: GpuInventory,
    readonly journal: Journal,
    readonly scheduler: Scheduler,
    private readonly logs: LogStore,
    private readonly releaseLock: () => void,
    private readonly app: FastifyInstance,
    private readonly watcher: PreemptionWatcher,
    private readonly autostop: Autostop,
    readonly url: string,
    readonly metrics: AgentMetrics,
    private readonly localMetrics: { readonly port: number; close(): Promise<void> } | undefined,
  ) {
    super();
  }

  /**
   * Starts an agent. Any failure unwinds what was set up so far, last first (the port closed, the
   * journal closed, the lock released; runs re-attached by recovery are left to their supervisors,
   * for the next start), then throws.
   */
  static async start(input: ServeOptionsInput, logger: Logger): Promise<Agent> {
    const o = resolveServeOptions(input);
    const undo: Array<() => unknown> = [];
    try {
      return await Agent.setUp(o, logger, undo);
    } catch (e) {
      const errors = await runAll(undo.reverse());
      for (const err of errors) logger.error({ err }, 'a step of the failed start could not be undone');
      throw e;
    }
  }

  private static async setUp(o: ServeOptions, logger: Logger, undo: Array<() => unknown>): Promise<Agent> {
    fs.mkdirSync(o.dataDir, { recursive: true });
    const jobUser = o.jobUser === undefined ? undefined : resolveJobUser(o.jobUser);
    const releaseLock = acquireLock(o.dataDir);
    undo.push(releaseLock);
    const journal = new Journal(o.dataDir, { reset: o.resetJournal });
    undo.push(() => journal.close());
    const gpus = detectGpus(o.gpus);
    const logs = new LogStore(path.join(o.dataDir, 'logs'), o.logMaxBytes);
    undo.push(() => logs.finishAll());
    protectDataDir(o.dataDir);
    const storage = new Storage();
    const baseEnv: NodeJS.ProcessEnv = { ...process.env };
    delete baseEnv.MLINFRA_AGENT_TOKEN;
    const scheduler = new Scheduler({
      dataDir: o.dataDir, gpus: gpus.count, maxCpuJobs: o.maxCpuJobs, graceMs: o.graceSeconds * 1000, paused: true,
      journal, logs, storage, logger, baseEnv, jobUser, maxQueued: o.maxQueued,
    });
    undo.push(() => scheduler.detach());
    try {
      journal.markOpen();
      const recovered = await scheduler.recover();
      logger.info({ ...recovered, gpus: gpus.count, gpuSource: gpus.source, sqlite: journal.driver }, 'journal recovered');
      scheduler.guard.checkSpace();
    } catch (e) {
      // a full or read-only disk: serve status and refuse submits until writes work again
      scheduler.guard.holdRecovery(e);
      logger.error({ err: e }, 'journal recovery held back by a disk fault: serving status only until the disk accepts writes');
    }
    const metrics = new AgentMetrics(scheduler, gpus.count);
    const ref: { agent?: Agent } = {};
    const app = await buildServer({
      token: o.token, bodyLimitBytes: o.bodyLimitBytes, requestTimeoutMs: o.requestTimeoutSeconds * 1000, logger, journal, scheduler, logs, metrics, version: AGENT_VERSION,
      health: () => ({ gpus: gpus.count, ...scheduler.stats(), preempted: Boolean(ref.agent?.preemptedBy) }),
    });
    undo.push(() => app.close());
    registerModelRoutes(app, storage); // /v1/models: the registry, as `mlinfra-agent models` moves it
    const cluster = o.cluster ? startCluster(o.cluster, app, {
      scheduler, storage, logger, dataDir: o.dataDir, maxCpuJobs: o.maxCpuJobs,
      // pipeline-run messages (schedules, run-pipeline --queue) run in this agent
      runPipeline: inProcessPipelineRunner({
        agentUrl: () => ref.agent?.url, token: o.token, workDir: path.join(o.dataDir, 'pipeline-runs'), storage, env: process.env,
        holdBusy: () => ref.agent?.holdBusy() ?? (() => undefined), onSpecLoaded: (name) => metrics.declarePipeline(name),
      }),
    }) : undefined;
    if (cluster) undo.push(() => cluster.close());
    const address = await app.listen({ host: o.host, port: o.port });
    // Token-free /metrics for the host's metrics agent: 127.0.0.1 only, whatever --host is.
    let localMetrics: Awaited<ReturnType<typeof startLocalMetricsServer>> | undefined;
    if (o.metricsLocalPort !== undefined) {
      try {
        localMetrics = await startLocalMetricsServer(metrics.registry, o.metricsLocalPort);
      } catch (e) {
        throw new Error(`cannot serve --metrics-local-port on 127.0.0.1:${o.metricsLocalPort}: ${(e as Error).message}`);
      }
      undo.push(() => localMetrics?.close());
    }
    const watcher = new PreemptionWatcher({
      provider: o.preemption, awsImdsUrl: o.awsImdsUrl, gcpMetadataUrl: o.gcpMetadataUrl, pollSeconds: o.preemptionPollSeconds, logger,
    });
    const autostop = new Autostop({
      idleStopMinutes: o.idleStopMinutes, preStopCommand: o.preStopCommand, stopCommand: o.stopCommand, isIdle: () => scheduler.isIdle() && !(ref.agent && ref.agent.holds > 0), logger,
    });
    const a = new Agent(o, logger, gpus, journal, scheduler, logs, releaseLock, app, watcher, autostop, address, metrics, localMetrics);
    a.cluster = cluster;
    ref.agent = a;
    autostop.on('stopping', () => metrics.autostops.inc());
    // dead-man switch and hung-job reports (--dead-man-minutes, --idle-gpu-util-percent)
    const guards = startHostGuards({ options: o, autostop, scheduler, journal, cluster: () => cluster, held: () => a.holds > 0, registry: metrics.registry, logger });
    a.once('closed', () => guards.stop());
    scheduler.on('job:finished', (job) => {
      if (job.state === 'succeeded') recordDrift(scheduler.artifactDir(job.id), job.id, metrics, logger);
    });
    const onNotice = (n: PreemptionNotice): void => {
      a.preemptedBy = n;
      cluster?.drain();
      scheduler.preempt(o.graceSeconds * 1000);
      a.emit('preempted', n);
    };
    watcher.on('notice', onNotice);
    watcher.start();
    // --lifecycle-hook: scale-in protection while busy; a termination hook drains like a spot notice
    const group = startLifecycleHook(o, { scheduler, cluster, held: () => a.holds > 0, onNotice, logger });
    a.once('closed', () => group?.stop());
    autostop.start();
    if (!o.paused) scheduler.resume();
    logger.info({
      url: address, dataDir: o.dataDir, pid: process.pid, version: AGENT_VERSION,
      ...(localMetrics ? { metricsUrl: `http://127.0.0.1:${localMetrics.port}/metrics` } : {}),
    }, 'listening');
    a.emit('listening', { url: address });
    return a;
  }

  /**
   * Marks the host busy (idle autostop waits) until the returned function is called, e.g. while a
   * `--pipeline-on-start` run decides and uploads between its jobs.
   */
  holdBusy(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (!released) this.holds--;
      released = true;
    };
  }

  /**
   * Graceful shutdown (see the class comment). Every step runs even when an earlier one throws (the
   * journal is closed and the lock released whatever happened before); the errors are logged and
   * the first is rethrown at the end. Safe to call more than once: later calls share the first.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.logger.info('shutting down');
      const errors = await runAll([
        () => this.autostop.stop(),
        () => this.watcher.stop(),
        () => this.cluster?.drain(),
        () => this.scheduler.shutdown(this.options.graceSeconds * 1000),
        () => this.cluster?.close(),
        () => this.logs.finishAll(),
        () => this.logs.drained(1000),
        () => this.app.close(),
        () => this.localMetrics?.close(),
        () => this.journal.close(),
        () => this.releaseLock(),
      ]);
      for (const err of errors) this.logger.error({ err }, 'a shutdown step failed (the others ran)');
      this.logger.info('shut down');
      this.emit('closed');
      if (errors.length > 0) throw errors[0];
    })();
    return this.closing;
  }
}

/** Runs every step in order, each even when one before it threw; returns the errors. */
export async function runAll(steps: ReadonlyArray<() => unknown>): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      errors.push(e);
    }
  }
  return errors;
}

/**
 * Jobs (run as --job-user, or any local user) may cross the data dir to their work and checkpoint
 * dirs, but not list it nor read the journal, the lock or other jobs' logs.
 */
function protectDataDir(dataDir: string): void {
  const modes: Array<[string, number]> = [[dataDir, 0o711], [path.join(dataDir, 'logs'), 0o700]];
  for (const f of ['journal.sqlite', 'journal.sqlite-wal', 'journal.sqlite-shm', 'agent.lock', 'agent.lock.db']) modes.push([path.join(dataDir, f), 0o600]);
  for (const [f, mode] of modes) {
    try {
      fs.chmodSync(f, mode);
    } catch {
      // missing, or a read-only disk: nothing to protect or nothing we can change
    }
  }
}

/** Largest drift.json read; a bigger one is ignored with a warning. */
const DRIFT_MAX_BYTES = 8 * 1024 * 1024;

/**
 * After a job succeeded (a batch job: after all its shards): exports the scores of `drift.json` in its
 * artifact dir. Synchronous, so the gauge is set before the job shows as succeeded. A missing file is
 * nothing; a malformed one is logged (warn) and ignored: the job's state does not change.
 */
function recordDrift(artifactDir: string, jobId: string, metrics: AgentMetrics, logger: Logger): void {
  const file = path.join(artifactDir, DRIFT_FILE);
  try {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) return;
    if (!st.isFile() || st.size > DRIFT_MAX_BYTES) throw new Error(`not a regular file of at most ${DRIFT_MAX_BYTES} bytes`);
    const scores = metrics.drift.record(fs.readFileSync(file, 'utf8'));
    logger.info({ jobId, scores }, 'drift scores recorded');
  } catch (e) {
    logger.warn({ jobId, file, err: (e as Error).message }, 'drift.json ignored: malformed');
  }
}

/**
 * One agent per data directory: an exclusive SQLite (fcntl) lock on `agent.lock.db`, taken
 * atomically and dropped by the kernel when the owner dies (kill -9 included), whatever the
 * program's name. `agent.lock` holds the owner's pid for people and error messages.
 */
function acquireLock(dataDir: string): () => void {
  const pidFile = path.join(dataDir, 'agent.lock');
  const db = openDatabase(path.join(dataDir, 'agent.lock.db'));
  try {
    db.exec('PRAGMA busy_timeout = 0');
    db.exec('PRAGMA journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    let owner = '';
    try {
      owner = ` (pid ${fs.readFileSync(pidFile, 'utf8').trim().slice(0, 20)})`;
    } catch {
      // no pid recorded
    }
    if (/locked|busy/i.test((e as Error).message)) throw new Error(`another mlinfra-agent${owner} is serving data dir ${dataDir}`);
    throw e;
  }
  try {
    fs.writeFileSync(pidFile, `${process.pid}\n`);
  } catch {
    // a full disk: the lock itself holds; the pid is only informative
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) fs.unlinkSync(pidFile);
    } catch {
      // already gone
    }
    try {
      db.exec('ROLLBACK');
    } catch {
      // nothing to roll back
    }
    db.close();
  };
}
