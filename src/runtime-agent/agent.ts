import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Autostop } from './autostop';
import { DRIFT_FILE, startLocalMetricsServer } from './drift';
import { detectGpus, type GpuInventory } from './gpus';
import { Journal } from './journal';
import { LogStore } from './logs';
import { AgentMetrics } from './metrics';
import { resolveServeOptions, type ServeOptions, type ServeOptionsInput } from './options';
import { PreemptionWatcher, type PreemptionNotice } from './preemption';
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

  static async start(input: ServeOptionsInput, logger: Logger): Promise<Agent> {
    const o = resolveServeOptions(input);
    fs.mkdirSync(o.dataDir, { recursive: true });
    const releaseLock = acquireLock(o.dataDir);
    const gpus = detectGpus(o.gpus);
    const journal = new Journal(o.dataDir);
    const logs = new LogStore(path.join(o.dataDir, 'logs'), o.logMaxBytes);
    const storage = new Storage();
    const baseEnv: NodeJS.ProcessEnv = { ...process.env };
    delete baseEnv.MLINFRA_AGENT_TOKEN;
    const scheduler = new Scheduler({
      dataDir: o.dataDir, gpus: gpus.count, maxCpuJobs: o.maxCpuJobs, graceMs: o.graceSeconds * 1000, paused: true,
      journal, logs, storage, logger, baseEnv,
    });
    const recovered = await scheduler.recover();
    logger.info({ ...recovered, gpus: gpus.count, gpuSource: gpus.source }, 'journal recovered');
    const metrics = new AgentMetrics(scheduler, gpus.count);
    const ref: { agent?: Agent } = {};
    const app = await buildServer({
      token: o.token, bodyLimitBytes: o.bodyLimitBytes, logger, journal, scheduler, logs, metrics, version: AGENT_VERSION,
      health: () => ({ gpus: gpus.count, ...scheduler.stats(), preempted: Boolean(ref.agent?.preemptedBy) }),
    });
    const address = await app.listen({ host: o.host, port: o.port });
    // Token-free /metrics for the host's metrics agent: 127.0.0.1 only, whatever --host is.
    let localMetrics: Awaited<ReturnType<typeof startLocalMetricsServer>> | undefined;
    if (o.metricsLocalPort !== undefined) {
      try {
        localMetrics = await startLocalMetricsServer(metrics.registry, o.metricsLocalPort);
      } catch (e) {
        await app.close();
        journal.close();
        releaseLock();
        throw new Error(`cannot serve --metrics-local-port on 127.0.0.1:${o.metricsLocalPort}: ${(e as Error).message}`);
      }
    }
    const watcher = new PreemptionWatcher({
      provider: o.preemption, awsImdsUrl: o.awsImdsUrl, gcpMetadataUrl: o.gcpMetadataUrl, pollSeconds: o.preemptionPollSeconds, logger,
    });
    const autostop = new Autostop({
      idleStopMinutes: o.idleStopMinutes, preStopCommand: o.preStopCommand, stopCommand: o.stopCommand, isIdle: () => scheduler.isIdle() && !(ref.agent && ref.agent.holds > 0), logger,
    });
    const a = new Agent(o, logger, gpus, journal, scheduler, logs, releaseLock, app, watcher, autostop, address, metrics, localMetrics);
    ref.agent = a;
    autostop.on('stopping', () => metrics.autostops.inc());
    scheduler.on('job:finished', (job) => {
      if (job.state === 'succeeded') recordDrift(scheduler.artifactDir(job.id), job.id, metrics, logger);
    });
    watcher.on('notice', (n) => {
      a.preemptedBy = n;
      scheduler.preempt(o.graceSeconds * 1000);
      a.emit('preempted', n);
    });
    watcher.start();
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

  /** Graceful shutdown (see the class comment). Safe to call more than once: later calls share the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.logger.info('shutting down');
      this.autostop.stop();
      this.watcher.stop();
      await this.scheduler.shutdown(this.options.graceSeconds * 1000);
      this.logs.finishAll();
      await this.app.close();
      await this.localMetrics?.close();
      this.journal.close();
      this.releaseLock();
      this.logger.info('shut down');
      this.emit('closed');
    })();
    return this.closing;
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
 * One agent per data directory: `agent.lock` holds the owner's pid. A lock left by a dead process
 * (kill -9, crash) is taken over; one held by a live mlinfra-agent is refused.
 */
function acquireLock(dataDir: string): () => void {
  const file = path.join(dataDir, 'agent.lock');
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (pid && pid !== process.pid) {
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        // not running
      }
      if (cmdline.includes('mlinfra-agent') && cmdline.includes('serve')) {
        throw new Error(`another mlinfra-agent (pid ${pid}) is serving data dir ${dataDir}`);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
    } catch {
      // already gone
    }
  };
}
