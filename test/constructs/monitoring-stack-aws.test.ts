import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { Duration } from '../../src/core/duration';
import { AwsTarget } from '../../src/core/targets';
import { GpuCluster } from '../../src/constructs/gpu-cluster';
import { ModelEndpoint } from '../../src/constructs/model-endpoint';
import { MonitoringStack } from '../../src/constructs/monitoring-stack';
import { countByType, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const BUNDLE = testAgentBundle();

interface World { stack: TerraformStack; aws: AwsTarget; cluster: GpuCluster; endpoint: ModelEndpoint; ops: MonitoringStack }
const build = (extra?: (w: World) => void, watchAll = true) => synth((stack) => {
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, agentBundleDir: BUNDLE });
  const endpoint = new ModelEndpoint(stack, 'ltv-api', {
    target: aws, model: 's3://ml-models/ltv/v3', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv:1.0.0', accelerator: 'L4', replicas: { min: 1, max: 4 },
  });
  const ops = new MonitoringStack(stack, 'ops', { target: aws, notify: ['ml-oncall@example.com', 'lead@example.com'] });
  if (watchAll) {
    ops.watch(cluster)
      .watch({ watchKind: 'training-pipeline', pipelineName: 'ltv', cluster, schedulePeriodSeconds: 86400 }, { maxAge: Duration.hours(26) })
      .watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  }
  extra?.({ stack, aws, cluster, endpoint, ops });
});

// The monitoring stack's own alarms: a cluster also owns one (its scale-from-zero wake alarm).
const opsAlarms = (json: TerraformJson): any[] =>
  Object.values(resources(json, 'aws_cloudwatch_metric_alarm')).filter((a: any) => String(a.alarm_name).startsWith('test-ops-'));
const alarms = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(opsAlarms(json).map((a: any) => [a.alarm_name.replace(/^test-ops-/, '').replace(/-[0-9a-f]{8}$/, ''), a]));
const dashboard = (json: TerraformJson): any => JSON.parse((Object.values(resources(json, 'aws_cloudwatch_dashboard'))[0] as any).dashboard_body);

describe('MonitoringStack on AWS', () => {
  const { text, json } = build();
  const a = alarms(json);

  test('one alarm per condition, each notifying the topic on alarm and on recovery', () => {
    expect(Object.keys(a).sort()).toEqual([
      'ltv-api-error-rate', 'ltv-api-p99-latency', 'ltv-pipeline-failed', 'ltv-pipeline-stale',
      'train-agent-down', 'train-feature-drift', 'train-gpu-idle-while-queued', 'train-gpu-xid-errors', 'train-host-metrics-failed',
    ]);
    for (const alarm of Object.values(a)) {
      expect(alarm.alarm_actions).toEqual([expect.stringMatching(/^\$\{aws_sns_topic\..+\.arn\}$/)]);
      expect(alarm.ok_actions).toEqual(alarm.alarm_actions);
    }
  });

  test('endpoint: p99 of ModelLatency in microseconds, error rate by metric math', () => {
    const p99 = a['ltv-api-p99-latency'];
    expect(p99).toMatchObject({
      namespace: 'AWS/SageMaker', metric_name: 'ModelLatency', extended_statistic: 'p99', threshold: 250_000, period: 60,
      evaluation_periods: 5, comparison_operator: 'GreaterThanThreshold', treat_missing_data: 'notBreaching',
    });
    expect(Object.keys(p99.dimensions).sort()).toEqual(['EndpointName', 'VariantName']);
    const err = a['ltv-api-error-rate'];
    expect(err.threshold).toBe(1);
    const q = Object.fromEntries(err.metric_query.map((m: any) => [m.id, m]));
    expect(q.errors.metric).toMatchObject({ namespace: 'AWS/SageMaker', metric_name: 'Invocation5XXErrors', stat: 'Sum', period: 60 });
    expect(q.requests.metric).toMatchObject({ metric_name: 'Invocations', stat: 'Sum' });
    expect(q.rate).toMatchObject({ expression: 'IF(requests > 0, 100 * errors / requests, 0)', return_data: true });
  });

  test('cluster: GPU idle while queued, XIDs from the kernel log, agent health, drift', () => {
    const idle = a['train-gpu-idle-while-queued'];
    const q = Object.fromEntries(idle.metric_query.map((m: any) => [m.id, m]));
    expect(q.queued.metric).toMatchObject({ namespace: 'MLInfra/Agent', metric_name: 'mlinfra_agent_jobs_queued', dimensions: { ClusterName: expect.stringMatching(/^\$\{aws_autoscaling_group\.train_compute_group_[0-9A-F]+\.name\}$/) } });
    expect(q.util.metric).toMatchObject({ namespace: 'MLInfra/GPU', metric_name: 'nvidia_smi_utilization_gpu', stat: 'Average', period: 60 });
    expect(q.idle.expression).toBe('IF(queued > 0 AND util < 10, 1, 0)');
    expect(idle).toMatchObject({ evaluation_periods: 30, datapoints_to_alarm: 30, threshold: 0 });
    const xid = a['train-gpu-xid-errors'];
    expect(xid).toMatchObject({ namespace: 'MLInfra/GPU', statistic: 'Sum', threshold: 0, period: 300 });
    const filter = Object.values(resources(json, 'aws_cloudwatch_log_metric_filter'))[0] as any;
    expect(filter.pattern).toBe('"NVRM: Xid"');
    expect(filter.metric_transformation).toMatchObject({ name: xid.metric_name, namespace: 'MLInfra/GPU', value: '1' });
    expect(a['train-agent-down']).toMatchObject({ namespace: 'AWS/NetworkELB', metric_name: 'UnHealthyHostCount', evaluation_periods: 15 });
    expect(a['train-agent-down'].dimensions.TargetGroup).toMatch(/aws_lb_target_group\..+\.arn_suffix/);
    expect(a['train-feature-drift']).toMatchObject({ namespace: 'MLInfra/Agent', metric_name: 'mlinfra_feature_drift_psi', statistic: 'Maximum', threshold: 0.2 });
  });

  test('pipeline: failures, and staleness with missing data breaching over maxAge', () => {
    expect(a['ltv-pipeline-failed']).toMatchObject({ metric_name: 'mlinfra_pipeline_runs_total', dimensions: expect.objectContaining({ pipeline: 'ltv', state: 'failed' }), threshold: 0 });
    expect(a['ltv-pipeline-stale']).toMatchObject({
      metric_name: 'mlinfra_pipeline_runs_total', dimensions: expect.objectContaining({ pipeline: 'ltv', state: 'succeeded' }),
      statistic: 'Sum', period: 3600, evaluation_periods: 26, datapoints_to_alarm: 26, comparison_operator: 'LessThanThreshold', threshold: 1, treat_missing_data: 'breaching',
    });
  });

  test('SNS: own KMS key that admits CloudWatch, email subscriptions', () => {
    const topic = Object.values(resources(json, 'aws_sns_topic'))[0] as any;
    expect(topic.kms_master_key_id).toMatch(/^\$\{aws_kms_key\..+\.arn\}$/);
    const subs = Object.values(resources(json, 'aws_sns_topic_subscription')) as any[];
    expect(subs.map((s) => [s.protocol, s.endpoint])).toEqual([['email', 'ml-oncall@example.com'], ['email', 'lead@example.com']]);
    const docs = Object.entries(json.data!.aws_iam_policy_document!) as [string, any][];
    const key = docs.find(([k]) => k.includes('key-policy'))![1];
    expect(key.statement.find((s: any) => s.sid === 'CloudWatchAlarms').principals).toEqual([{ type: 'Service', identifiers: ['cloudwatch.amazonaws.com'] }]);
  });

  test('hosts may put metrics only into our namespaces, and logs only into the cluster\'s groups', () => {
    const docs = Object.entries(json.data!.aws_iam_policy_document!) as [string, any][];
    const doc = docs.find(([k]) => k.includes('host-metrics-doc'))![1];
    const put = doc.statement.find((s: any) => s.actions.includes('cloudwatch:PutMetricData'));
    expect(put.condition).toEqual([{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: ['MLInfra/GPU', 'MLInfra/Agent'] }]);
    const logs = doc.statement.find((s: any) => s.actions.includes('logs:PutLogEvents'));
    for (const r of logs.resources) expect(r).toMatch(/^\$\{aws_cloudwatch_log_group\..+\.arn\}:\*$/);
    const policy = Object.values(resources(json, 'aws_iam_role_policy')).find((p: any) => p.name === 'mlinfra-host-metrics') as any;
    expect(policy.role).toMatch(/aws_iam_role\.train_iam_role_.+\.name/);
  });

  test('the dashboard: a widget per metric group, on the alarms\' metrics', () => {
    const d = dashboard(json);
    expect(d.widgets.map((w: any) => w.properties.title)).toEqual([
      'train: GPU utilisation (%)', 'train: GPU memory used (MiB), temperature (C), power (W)', 'train: jobs queued and running, GPUs busy',
      'train: job failures by class, autostops, XID errors', 'train: feature drift (PSI)', 'ltv: pipeline runs',
      'ltv-api: latency (microseconds)', 'ltv-api: requests and 5xx errors',
    ]);
    for (const w of d.widgets) expect(w).toMatchObject({ type: 'metric', width: 12, height: 6, properties: { region: 'us-east-1' } });
    expect(d.widgets[0].properties.metrics).toEqual([['MLInfra/GPU', 'nvidia_smi_utilization_gpu', 'ClusterName', expect.stringMatching(/^\$\{aws_autoscaling_group\.train_compute_group_[0-9A-F]+\.name\}$/)]]);
    expect(d.widgets[6].properties.annotations.horizontal[0].value).toBe(250_000);
  });

  test('the host start-up script configures the CloudWatch agent to match the alarms', () => {
    const local = Object.values((json as any).locals as Record<string, string>).find((v) => v.includes('amazon-cloudwatch-agent'))!;
    const cfg = JSON.parse(/mlinfra\.json <<'MLINFRA_EOF'\n([\s\S]*?)\nMLINFRA_EOF/.exec(local)![1]);
    expect(cfg.metrics.namespace).toBe('MLInfra/GPU');
    expect(cfg.metrics.aggregation_dimensions).toEqual([['ClusterName']]);
    expect(cfg.metrics.metrics_collected.nvidia_gpu.measurement).toEqual(expect.arrayContaining(['utilization_gpu', 'memory_used', 'temperature_gpu', 'power_draw']));
    // The agent's schema takes prometheus under logs.metrics_collected only.
    expect(cfg.logs.metrics_collected.prometheus.emf_processor.metric_namespace).toBe('MLInfra/Agent');
    expect(local).toContain('--metrics-local-port 9464');
    expect(local).toContain("targets: ['127.0.0.1:9464']");
  });

  test('watching one more cluster adds exactly 5 alarms, 2 log groups, 1 filter, 1 policy', () => {
    const { json: two } = build(({ stack, aws, ops }) => {
      ops.watch(new GpuCluster(stack, 'batch', { target: aws, accelerator: 'T4', agentBundleDir: BUNDLE }));
    });
    const before = countByType(json);
    const after = countByType(two);
    expect(opsAlarms(two).length - opsAlarms(json).length).toBe(5);
    expect(after.aws_cloudwatch_log_group - before.aws_cloudwatch_log_group).toBe(2);
    expect(after.aws_cloudwatch_log_metric_filter - before.aws_cloudwatch_log_metric_filter).toBe(1);
    expect(after.aws_cloudwatch_dashboard).toBe(1);
    expect(dashboard(two).widgets).toHaveLength(dashboard(json).widgets.length + 5);
  });

  test('nothing watched: topic, key, subscriptions and an empty dashboard', () => {
    const { json: none } = build(undefined, false);
    expect(opsAlarms(none)).toEqual([]);
    expect(dashboard(none).widgets).toEqual([]);
    expect(Object.keys(resources(none, 'aws_sns_topic_subscription'))).toHaveLength(2);
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
