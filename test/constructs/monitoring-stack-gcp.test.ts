import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { Duration } from '../../src/core/duration';
import { GcpTarget } from '../../src/core/targets';
import { GpuCluster } from '../../src/constructs/gpu-cluster';
import { ModelEndpoint } from '../../src/constructs/model-endpoint';
import { MonitoringStack } from '../../src/constructs/monitoring-stack';
import { countByType, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const BUNDLE = testAgentBundle();

interface World { stack: TerraformStack; gcp: GcpTarget; cluster: GpuCluster; ops: MonitoringStack }
const build = (extra?: (w: World) => void) => synth((stack) => {
  const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1' });
  const cluster = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'A100-80GB', acceleratorsPerNode: 4, nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE });
  const endpoint = new ModelEndpoint(stack, 'ltv-api', {
    target: gcp, model: 'gs://ml-models/ltv/v3', image: 'us-docker.pkg.dev/ml-prod-123/serving/ltv:1.0.0', accelerator: 'L4', replicas: { min: 0, max: 4 },
  });
  const ops = new MonitoringStack(stack, 'ops', { target: gcp, notify: ['ml-oncall@example.com', 'https://hooks.example.com/mlinfra'] })
    .watch(cluster)
    .watch({ watchKind: 'training-pipeline', pipelineName: 'ltv', cluster, schedulePeriodSeconds: 86400 }, { maxAge: Duration.hours(26) })
    .watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  extra?.({ stack, gcp, cluster, ops });
});

const policies = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'google_monitoring_alert_policy')).map((p: any) => [p.display_name.replace(/^test\/ops\//, ''), p]));
const dashboard = (json: TerraformJson): any => JSON.parse((Object.values(resources(json, 'google_monitoring_dashboard'))[0] as any).dashboard_json);

describe('MonitoringStack on GCP', () => {
  const { text, json } = build();
  const p = policies(json);

  test('notification channels: email and token-auth webhook, on every policy', () => {
    const channels = Object.values(resources(json, 'google_monitoring_notification_channel')) as any[];
    expect(channels.map((c) => [c.type, c.labels])).toEqual([
      ['email', { email_address: 'ml-oncall@example.com' }], ['webhook_tokenauth', { url: 'https://hooks.example.com/mlinfra' }],
    ]);
    expect(Object.keys(p).sort()).toEqual([
      'ltv-api: error-rate', 'ltv-api: p99-latency', 'ltv: pipeline-failed', 'ltv: pipeline-stale',
      'train: agent-down', 'train: feature-drift', 'train: gpu-idle-while-queued', 'train: gpu-xid-errors',
    ]);
    for (const policy of Object.values(p)) {
      expect(policy.notification_channels).toHaveLength(2);
      expect(policy.project).toBe('ml-prod-123');
    }
  });

  test('GPU idle while queued: two threshold conditions combined with AND', () => {
    const idle = p['train: gpu-idle-while-queued'];
    expect(idle.combiner).toBe('AND');
    const [queued, util] = idle.conditions.map((c: any) => c.condition_threshold);
    expect(queued.filter).toContain('metric.type="prometheus.googleapis.com/mlinfra_agent_jobs_queued/gauge"');
    expect(queued.filter).toMatch(/metric\.labels\.mlinfra_cluster="\$\{google_compute_region_instance_group_manager\..+\.name\}"/);
    expect(queued).toMatchObject({ comparison: 'COMPARISON_GT', threshold_value: 0, duration: '1800s' });
    expect(util.filter).toContain('metric.type="agent.googleapis.com/gpu/utilization"');
    expect(util.filter).toContain('metadata.user_labels."mlinfra-cluster"=');
    expect(util).toMatchObject({ comparison: 'COMPARISON_LT', threshold_value: 10, duration: '1800s' });
    expect(util.aggregations[0]).toMatchObject({ alignment_period: '60s', per_series_aligner: 'ALIGN_MEAN' });
  });

  test('XID errors: a log-match condition on syslog with a rate limit', () => {
    const xid = p['train: gpu-xid-errors'];
    expect(xid.conditions[0].condition_matched_log.filter).toContain('textPayload:"NVRM: Xid"');
    expect(xid.alert_strategy.notification_rate_limit).toEqual({ period: '300s' });
  });

  test('agent down, drift, pipelines: PromQL on the scraped agent metrics', () => {
    const q = (name: string) => p[name].conditions[0].condition_prometheus_query_language;
    expect(q('train: agent-down')).toMatchObject({ duration: '900s', query: expect.stringMatching(/^up\{mlinfra_cluster=".+"\} == 0$/) });
    expect(q('train: feature-drift').query).toMatch(/^max by \(feature\) \(mlinfra_feature_drift_psi\{mlinfra_cluster=".+"\}\) > 0\.2$/);
    expect(q('ltv: pipeline-failed').query).toContain('state="failed"');
    expect(q('ltv: pipeline-stale').query).toContain('> 93600) or on() absent_over_time(mlinfra_pipeline_last_success_timestamp_seconds{');
  });

  test('endpoint: p99 of Cloud Run request latencies (ms), 5xx ratio', () => {
    const p99 = p['ltv-api: p99-latency'].conditions[0].condition_threshold;
    expect(p99.filter).toBe('metric.type="run.googleapis.com/request_latencies" AND resource.type="cloud_run_revision" AND resource.labels.service_name="' + p99.filter.split('service_name="')[1]);
    expect(p99).toMatchObject({ threshold_value: 250, duration: '300s', comparison: 'COMPARISON_GT' });
    expect(p99.aggregations[0].per_series_aligner).toBe('ALIGN_PERCENTILE_99');
    const err = p['ltv-api: error-rate'].conditions[0].condition_threshold;
    expect(err.threshold_value).toBe(0.01);
    expect(err.filter).toContain('metric.labels.response_code_class = "5xx"');
    expect(err.denominator_filter).not.toContain('5xx');
    expect(err.denominator_aggregations[0].per_series_aligner).toBe('ALIGN_RATE');
  });

  test('the dashboard: one chart per metric group', () => {
    const d = dashboard(json);
    expect(d.gridLayout.widgets.map((w: any) => w.title)).toEqual([
      'train: GPU utilisation (%)', 'train: GPU memory used (bytes)', 'train: jobs queued and running, GPUs busy',
      'train: job failures by class, autostops', 'train: feature drift (PSI)', 'ltv: pipeline runs',
      'ltv-api: latency (milliseconds)', 'ltv-api: requests and 5xx errors (per second)',
    ]);
    expect(d.gridLayout.widgets[2].xyChart.dataSets[0].timeSeriesQuery.prometheusQuery).toMatch(/^max\(mlinfra_agent_jobs_queued\{mlinfra_cluster=".+"\}\)$/);
    expect(d.gridLayout.widgets[6].xyChart.thresholds).toEqual([{ value: 250 }]);
  });

  test('hosts carry the cluster label and scrape the agent\'s local /metrics with the Ops Agent', () => {
    const tpl = Object.values(resources(json, 'google_compute_instance_template'))[0] as any;
    expect(tpl.labels['mlinfra-cluster']).toMatch(/^test-train-/);
    const script = tpl.metadata['startup-script'] as string;
    expect(script).toContain('add-google-cloud-ops-agent-repo.sh --also-install');
    expect(script).toContain('mlinfra_cluster: test-train-');
    expect(script).toContain('--metrics-local-port 9464');
  });

  test('watching one more cluster adds exactly 4 alert policies', () => {
    const { json: two } = build(({ stack, gcp, ops }) => {
      ops.watch(new GpuCluster(stack, 'batch', { target: gcp, accelerator: 'T4', agentBundleDir: BUNDLE }));
    });
    expect(countByType(two).google_monitoring_alert_policy - countByType(json).google_monitoring_alert_policy).toBe(4);
    expect(countByType(two).google_monitoring_dashboard).toBe(1);
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
