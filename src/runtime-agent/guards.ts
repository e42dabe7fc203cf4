import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { sampleGpuUtilization } from './gpus';

/** A running job and the GPU indices it holds. */
export interface RunningGpus {
  readonly jobId: string;
  readonly gpus: readonly number[];
}

export interface HostGuardOptions {
  /** 0 disables. See ServeOptions.deadManMinutes. */
  readonly deadManMinutes: number;
  /** 0 disables. See ServeOptions.idleGpuUtilPercent. */
  readonly idleGpuUtilPercent: number;
  /** How long a job's GPUs must stay under the threshold before it is reported hung. */
  readonly idleWindowMinutes: number;
  /** Whether the queue's last receive failed; undefined without --queue (the dead-man switch is then off). */
  readonly queueFailing: () => boolean | undefined;
  /** Anything queued, running or held (pipeline runs): the dead-man switch waits for it. */
  readonly busy: () => boolean;
  readonly running: () => readonly RunningGpus[];
  /** The idle-stop path (Autostop.stopNow): resolves with the stop command's exit code, null when one is under way. */
  readonly stopNow: (reason: string) => Promise<number | null>;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly env?: NodeJS.ProcessEnv;
}

/** Checks a few times per window, at most once a second (dead man) and every 15 s (nvidia-smi). */
const every = (windowMs: number, maxMs: number): number => Math.max(50, Math.min(maxMs, windowMs / 10));

/**
 * Guards users cannot forget (issue 17 item 5): the dead-man switch (a host cut off from its queue,
 * with no work, stops itself so it does not bill forever) and hung-job reports (a running job whose
 * GPUs all idle under a threshold for the idle window). Hung jobs are only reported, never killed:
 * a job may be waiting on I/O or a barrier on purpose.
 */
export class HostGuards {
  private readonly timers: NodeJS.Timeout[] = [];
  private lastQueueOkMs = Date.now();
  private stopping = false;
  /** A stop ran (exit 0) for this outage: not again until the queue answers or work comes. */
  private fired = false;
  /** Per running job: since when all its GPUs read under the threshold. */
  private readonly lowSince = new Map<string, number>();
  private readonly hungJobs = new Set<string>();
  private sampling = false;
  private readonly deadManStops: Counter;
  private readonly hungReports: Counter;

  constructor(private readonly o: HostGuardOptions) {
    this.deadManStops = new Counter({ name: 'mlinfra_agent_dead_man_stops_total', help: 'Stops run because the cluster queue stayed unreachable with no work.', registers: [o.registry] });
    this.hungReports = new Counter({ name: 'mlinfra_agent_hung_jobs_total', help: 'Running jobs reported hung: all their GPUs under --idle-gpu-util-percent for the idle window.', registers: [o.registry] });
    const hung = this.hungJobs;
    new Gauge({ name: 'mlinfra_agent_jobs_hung', help: 'Running jobs reported hung now.', registers: [o.registry], collect() { this.set(hung.size); } });
    // series exist at 0 from the start (see metrics.ts: delta-taking scrapers drop a series' first sample)
    this.deadManStops.inc(0);
    this.hungReports.inc(0);
  }

  start(): void {
    if (this.o.deadManMinutes > 0) this.every(every(this.o.deadManMinutes * 60_000, 1000), () => this.checkDeadMan());
    if (this.o.idleGpuUtilPercent > 0) this.every(every(this.o.idleWindowMinutes * 60_000, 15_000), () => void this.checkGpus());
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
  }

  /** Whether a running job is reported hung now. */
  isHung(jobId: string): boolean {
    return this.hungJobs.has(jobId);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private checkDeadMan(): void {
    const failing = this.o.queueFailing();
    if (failing === undefined) return;
    const now = Date.now();
    // work on the host (or a stop under way) holds it; the switch counts from the last good receive
    if (!failing || this.o.busy()) {
      if (!failing) this.lastQueueOkMs = now;
      this.fired = false;
      return;
    }
    const silentMs = now - this.lastQueueOkMs;
    if (this.stopping || this.fired || silentMs < this.o.deadManMinutes * 60_000) return;
    this.stopping = true;
    this.deadManStops.inc();
    this.o.logger.warn({ queueSilentSeconds: Math.round(silentMs / 1000), deadManMinutes: this.o.deadManMinutes }, 'dead-man switch: the cluster queue is unreachable and nothing runs: stopping this host');
    void this.o.stopNow('dead-man').then((exitCode) => {
      // a refused stop (the group at its minimum) is tried again after another full period
      if (exitCode === 0) this.fired = true;
      else this.lastQueueOkMs = Date.now();
    }).finally(() => {
      this.stopping = false;
    });
  }

  private async checkGpus(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const running = this.o.running().filter((r) => r.gpus.length > 0);
      const ids = new Set(running.map((r) => r.jobId));
      for (const id of [...this.lowSince.keys()]) if (!ids.has(id)) this.lowSince.delete(id);
      for (const id of [...this.hungJobs]) if (!ids.has(id)) this.hungJobs.delete(id);
      if (running.length === 0) return;
      const util = await sampleGpuUtilization(this.o.env);
      if (!util) return; // unknown is not idle: nothing is judged on a failed sample
      const now = Date.now();
      for (const r of running) {
        const readings = r.gpus.map((g) => util.get(g));
        if (readings.some((u) => u === undefined || u >= this.o.idleGpuUtilPercent)) {
          this.lowSince.delete(r.jobId);
          if (this.hungJobs.delete(r.jobId)) this.o.logger.info({ jobId: r.jobId, gpuUtil: readings }, 'job no longer looks hung: its GPUs are busy again');
          continue;
        }
        const since = this.lowSince.get(r.jobId) ?? now;
        this.lowSince.set(r.jobId, since);
        if (this.hungJobs.has(r.jobId) || now - since < this.o.idleWindowMinutes * 60_000) continue;
        this.hungJobs.add(r.jobId);
        this.hungReports.inc();
        this.o.logger.warn({
          jobId: r.jobId, gpus: r.gpus, gpuUtil: readings, thresholdPercent: this.o.idleGpuUtilPercent, lowSeconds: Math.round((now - since) / 1000),
        }, 'job looks hung: all its GPUs stayed under the idle threshold for the idle window (it keeps running)');
      }
    } finally {
      this.sampling = false;
    }
  }
}

/** What `startHostGuards` reads from the agent. */
export interface HostGuardDeps {
  readonly options: { readonly deadManMinutes: number; readonly idleGpuUtilPercent: number; readonly idleStopMinutes: number };
  readonly autostop: { stopNow(reason: string): Promise<number | null> };
  readonly scheduler: { isIdle(): boolean };
  readonly journal: { jobsInState(state: 'running'): ReadonlyArray<{ readonly id: string; readonly gpuIds: string | null }> };
  readonly cluster: () => { readonly receiveFailures: number } | undefined;
  /** Work held outside the scheduler (pipeline runs). */
  readonly held: () => boolean;
  readonly registry: Registry;
  readonly logger: Logger;
}

/** The idle window of hung-job reports when idle autostop is off: the constructs' default idle stop. */
export const DEFAULT_IDLE_WINDOW_MINUTES = 30;

/** Builds and starts the guards of one agent. */
export function startHostGuards(d: HostGuardDeps): HostGuards {
  const g = new HostGuards({
    deadManMinutes: d.options.deadManMinutes, idleGpuUtilPercent: d.options.idleGpuUtilPercent,
    idleWindowMinutes: d.options.idleStopMinutes > 0 ? d.options.idleStopMinutes : DEFAULT_IDLE_WINDOW_MINUTES,
    queueFailing: () => {
      const c = d.cluster();
      return c === undefined ? undefined : c.receiveFailures > 0;
    },
    busy: () => !d.scheduler.isIdle() || d.held(),
    running: () => d.journal.jobsInState('running').map((j) => ({ jobId: j.id, gpus: j.gpuIds ? j.gpuIds.split(',').map(Number) : [] })),
    stopNow: (reason) => d.autostop.stopNow(reason),
    registry: d.registry, logger: d.logger,
  });
  g.start();
  return g;
}
