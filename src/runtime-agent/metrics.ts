import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Scheduler } from './scheduler';

/** Prometheus metrics of one agent (its own registry: no global state). */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'route' | 'status'>;

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
    scheduler.on('job:submitted', (j) => submitted.inc({ kind: j.spec.kind }));
    scheduler.on('job:finished', (j) => finished.inc({ state: j.state, failure_class: j.failure?.class ?? 'none' }));
    scheduler.on('job:requeued', () => retried.inc());
    scheduler.on('run:ended', (e) => runSeconds.observe({ outcome: e.failure?.class ?? 'succeeded' }, e.seconds));
    scheduler.on('shard:done', () => shards.inc());
  }
}
