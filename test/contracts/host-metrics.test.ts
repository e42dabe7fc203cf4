// The metric contract: every name the hosts' configs and the monitoring backends use is a series the
// agent's registry exports (or one the contract says comes from elsewhere), on every target.
import { EventEmitter } from 'events';
import { AGENT_METRICS, HOST_METRICS } from '../../src/contracts/host-metrics';
import { AgentMetrics } from '../../src/runtime-agent/metrics';
import type { Scheduler } from '../../src/runtime-agent/scheduler';
import { exampleOutput } from '../support/examples';

/** The agent's registry, as a fresh agent on a host with 2 GPUs has it. */
async function agentSeries(): Promise<Set<string>> {
  const scheduler = Object.assign(new EventEmitter(), {
    stats: () => ({ queued: 0, running: 0, gpusBusy: 0, cpuBusy: 0, draining: false, paused: false, fault: null }),
  }) as unknown as Scheduler;
  const metrics = new AgentMetrics(scheduler, 2);
  return new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
}

/** Names that are in the contract but not agent series, and why. */
const NOT_AGENT_SERIES = new Map<string, string>([
  [HOST_METRICS.hostMetricsFailed, 'published by the start-up script when the CloudWatch agent fails'],
  [HOST_METRICS.gcpClusterLabel, 'a label the scrape config adds, not a series'],
  [HOST_METRICS.gcpReceiver, 'the Ops Agent receiver of the agent scrape'],
  [HOST_METRICS.gatewayJobPods, 'served by the Kubernetes gateway (runtime-agent/k8s/gateway.ts), not the agent registry'],
]);

/** Every mlinfra_* word in a synthesized stack (resource arguments, locals with host scripts, rules), custom IAM role ids aside. */
function namesIn(json: any): Set<string> {
  const { google_project_iam_custom_role: _roles, ...resource } = json.resource ?? {};
  return new Set(JSON.stringify({ ...json, resource }).match(/\bmlinfra_[a-z0-9_]+/g) ?? []);
}

describe('host metrics contract', () => {
  let series: Set<string>;
  beforeAll(async () => { series = await agentSeries(); });

  test('every agent metric the contract names is in the agent registry', () => {
    const named = [...Object.values(AGENT_METRICS), ...HOST_METRICS.agentGauges, ...HOST_METRICS.agentCounters,
      HOST_METRICS.pipelineRuns, HOST_METRICS.pipelineLastSuccess, HOST_METRICS.driftPsi];
    expect(named.filter((n) => !series.has(n))).toEqual([]);
    expect(series.has(HOST_METRICS.hostMetricsFailed)).toBe(false);
  });

  test.each(['monitoring-stack', 'gpu-clusters', 'training-pipeline'])('every mlinfra_* name example %s synthesizes is an agent series or in the contract', (example) => {
    const { stacks } = exampleOutput(example);
    for (const [id, json] of Object.entries(stacks)) {
      const unknown = [...namesIn(json)].filter((n) => !series.has(n) && !NOT_AGENT_SERIES.has(n)
        // Prometheus and Cloud Monitoring add suffixes to histogram and counter series.
        && !series.has(n.replace(/_(bucket|sum|count)$/, '')));
      expect({ id, unknown }).toEqual({ id, unknown: [] });
    }
  });

  test('the monitors alarm on the series hosts publish: queue depth, drift, pipeline runs', () => {
    const names = new Set(Object.values(exampleOutput('monitoring-stack').stacks).flatMap((j) => [...namesIn(j)]));
    for (const n of [AGENT_METRICS.jobsQueued, AGENT_METRICS.driftPsi, AGENT_METRICS.pipelineRuns]) expect(names.has(n)).toBe(true);
  });
});
