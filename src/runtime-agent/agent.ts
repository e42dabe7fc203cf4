import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Autostop } from './autostop';
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
  private constructor(
    readonly options: ServeOptions,
    readonly logger: Logger,
    readonly gpus: GpuInventory,
    readonly journal: Journal,
    readonly scheduler: Scheduler,
    private readonly app: FastifyInstance,
    private readonly watcher: PreemptionWatcher,
    private readonly autostop: Autostop,
    readonly url: string,
  ) {
    super();
  }

  static async start(input: ServeOptionsInput, logger: Logger): Promise<Agent> {
    const o = resolveServeOptions(input);
    fs.mkdirSync(o.dataDir, { recursive: true });
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
    const watcher = new PreemptionWatcher({
      provider: o.preemption, awsImdsUrl: o.awsImdsUrl, gcpMetadataUrl: o.gcpMetadataUrl, pollSeconds: o.preemptionPollSeconds, logger,
    });
    const autostop = new Autostop({
      idleStopMinutes: o.idleStopMinutes, preStopCommand: o.preStopCommand, stopCommand: o.stopCommand, isIdle: () => scheduler.isIdle(), logger,
    });
    const a = new Agent(o, logger, gpus, journal, scheduler, app, watcher, autostop, address);
    ref.agent = a;
    watcher.on('notice', (n) => {
      a.preemptedBy = n;
      scheduler.preempt(o.graceSeconds * 1000);
      a.emit('preempted', n);
    });
    watcher.start();
    autostop.start();
    if (!o.paused) scheduler.resume();
    logger.info({ url: address, dataDir: o.dataDir, pid: process.pid, version: AGENT_VERSION }, 'listening');
    a.emit('listening', { url: address });
    return a;
  }

  /** Graceful shutdown (see the class comment). Safe to call more than once: later calls share the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.logger.info('shutting down');
      this.autostop.stop();
      this.watcher.stop();
      await this.scheduler.shutdown(this.options.graceSeconds * 1000);
      await this.app.close();
      this.journal.close();
      this.logger.info('shut down');
      this.emit('closed');
    })();
    return this.closing;
  }
}
