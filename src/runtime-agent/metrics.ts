import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DriftMetrics } from './drift';
import type { Scheduler } from './scheduler';
import type { FailureClass } from './types';

/** The end of one pipeline run, as `POST /v1/pipeline-runs` takes it. */
export interface PipelineRunEnd {
  readonly pipeline: string;
  readonly state: 'succeeded' | 'failed';
  readonly runId: string;
  /** ISO 8601 time the run ended. */
  readonly endedAt: string;
}

/** Failure classes a failed job can carry (types.ts FailureClass), each a series from the start. */
const FAILURE_CLASSES: readonly FailureClass[] = ['exit', 'signal', 'oom', 'timeout', 'preempted', 'cancelled', 'disk'];

/** Runs remembered to ignore a repeated report of the same run (a client retry). */
const SEEN_RUNS_MAX = 1000;

/** Prometheus metrics of one agent (its own registry: no global state). */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'route' | 'status'>;
  /** `mlinfra_feature_drift_psi{feature}`, set from a finished job's drift.json. */
  readonly drift = new DriftMetrics(this.registry);
  /** `mlinfra_agent_autostop_total`: incremented when idle autostop fires. */
  readonly autostops: Counter;
  private readonly pipelineRuns: Counter<'pipeline' | 'state'>;
  private readonly pipelineLastSuccess: Gauge<'pipeline'>;
  private readonly seenRuns = new Set<string>();
  private readonly lastSuccess = new Map<string, number>();

  constructor(scheduler: Scheduler, gpus: number) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'mlinfra_agent_process_' });
    const submitted = new Counter({ name: 'mlinfra_agent_jobs_submitted_total', help: 'Jobs accepted (journaled).', labelNames: ['kind'], registers: [r] });
    const finished = new Counter({
      name: 'mlinfra_agent_jobs_finished_total', help: 'Jobs that reached a terminal state.', labelNames: ['state', 'failure_class'], registers: [r],
    });
    const retried = new Counter({ name: 'mlinfra_agent_jobs_retried_total', help: 'Failed attempts re-queued for a retry.', registers: [r] });
    const runSeconds = new Histogram({
      name: 'mlinfra_agent_run_duration_seconds', help: 'Duration of job processes (one per attempt, or per shard).', labelNames: ['outcome'],
      buckets: [0.1, 1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600], registers: [r],
    });
    const shards = new Counter({ name: 'mlinfra_agent_batch_shards_done_total', help: 'Batch shards finished.', registers: [r] });
    this.httpRequests = new Counter({ name: 'mlinfra_agent_http_requests_total', help: 'HTTP requests by route and status.', labelNames: ['route', 'status'], registers: [r] });
    new Gauge({ name: 'mlinfra_agent_gpus', help: 'GPU slots on this host.', registers: [r] }).set(gpus);
    new Gauge({
      name: 'mlinfra_agent_jobs_queued', help: 'Jobs waiting for a slot.', registers: [r],
      collect() { this.set(scheduler.stats().queued); },
    });
    new Gauge({
      name: 'mlinfra_agent_jobs_running', help: 'Jobs running now.', registers: [r],
      collect() { this.set(scheduler.stats().running); },
    });
    new Gauge({
      name: 'mlinfra_agent_gpus_busy', help: 'GPU slots assigned to running jobs.', registers: [r],
      collect() { this.set(scheduler.stats().gpusBusy); },
    });
    new Gauge({
      name: 'mlinfra_agent_draining', help: '1 while the agent stops dispatching (preemption notice or shutdown).', registers: [r],
      collect() { this.set(scheduler.stats().draining ? 1 : 0); },
    });
    this.autostops = new Counter({ name: 'mlinfra_agent_autostop_total', help: 'Idle autostop commands run.', registers: [r] });
    this.pipelineRuns = new Counter({
      name: 'mlinfra_pipeline_runs_total', help: 'Pipeline runs that ended, by outcome.', labelNames: ['pipeline', 'state'], registers: [r],
    });
    this.pipelineLastSuccess = new Gauge({
      name: 'mlinfra_pipeline_last_success_timestamp_seconds', help: 'End time (Unix seconds) of the latest successful run of a pipeline.',
      labelNames: ['pipeline'], registers: [r],
    });
    // Every series exists at 0 from the start: the CloudWatch agent turns counters into deltas and
    // drops each series' first sample, so a series born with its first increment would never count.
    finished.inc({ state: 'succeeded', failure_class: 'none' }, 0);
    for (const c of FAILURE_CLASSES) finished.inc({ state: 'failed', failure_class: c }, 0);
    this.autostops.inc(0);
    scheduler.on('job:submitted', (j) => submitted.inc({ kind: j.spec.kind }));
    scheduler.on('job:finished', (j) => finished.inc({ state: j.state, failure_class: j.failure?.class ?? 'none' }));
    scheduler.on('job:requeued', () => retried.inc());
    scheduler.on('run:ended', (e) => runSeconds.observe({ outcome: e.failure?.class ?? 'succeeded' }, e.seconds));
    scheduler.on('shard:done', () => shards.inc());
  }

  /**
   * Creates a pipeline's succeeded and failed series at 0 before its first run ends (call it when a
   * run starts or a spec is loaded), so that run's end is a change a delta-taking scraper sees.
   */
  declarePipeline(pipeline: string): void {
    for (const state of ['succeeded', 'failed'] as const) this.pipelineRuns.inc({ pipeline, state }, 0);
  }

  /**
   * Counts a pipeline run's end. The succeeded and failed series of a pipeline exist (at 0) from the
   * first report on, so alarms on them have data. A run reported again (same pipeline and run id) is
   * ignored. Returns whether it was counted.
   */
  recordPipelineRun(e: PipelineRunEnd): boolean {
    const key = `${e.pipeline}\u0000${e.runId}`;
    if (this.seenRuns.has(key)) return false;
    this.seenRuns.add(key);
    if (this.seenRuns.size > SEEN_RUNS_MAX) this.seenRuns.delete(this.seenRuns.values().next().value as string);
    this.declarePipeline(e.pipeline);
    this.pipelineRuns.inc({ pipeline: e.pipeline, state: e.state });
    if (e.state === 'succeeded') {
      const at = Date.parse(e.endedAt) / 1000;
      this.lastSuccess.set(e.pipeline, Math.max(this.lastSuccess.get(e.pipeline) ?? 0, at));
      this.pipelineLastSuccess.set({ pipeline: e.pipeline }, this.lastSuccess.get(e.pipeline)!);
    }
    return true;
  }
}
