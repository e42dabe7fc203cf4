/** MonitoringStack on AWS: CloudWatch alarms and one dashboard, SNS (own KMS key) for notifications. */
import { Annotations, Lazy } from 'cdktf';
import { Construct } from 'constructs';
import { CloudwatchDashboard } from '@cdktf/provider-aws/lib/cloudwatch-dashboard';
import { CloudwatchCompositeAlarm } from '@cdktf/provider-aws/lib/cloudwatch-composite-alarm';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { CloudwatchLogMetricFilter } from '@cdktf/provider-aws/lib/cloudwatch-log-metric-filter';
import { CloudwatchMetricAlarm, CloudwatchMetricAlarmConfig } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicPolicy } from '@cdktf/provider-aws/lib/sns-topic-policy';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { Errors } from '../../core/errors';
import { resourceName } from '../../core/naming';
import { AwsTarget } from '../../core/targets';
import { AGENT_METRICS, awsHostLogGroups, HOST_METRICS } from '../../contracts/host-metrics';
import type { MetricRef, RollbackAlarm } from '../model-endpoint';
import { AwsNotifyDeliveryResources, buildAwsNotifyDelivery } from './aws-notify';
import { ALARMS, MonitoringBackend, NotifyPlan, WatchedCluster, WatchedEndpoint, WatchedPipeline } from './plan';

export interface AwsMonitoringResources {
  readonly key: KmsKey;
  readonly topic: SnsTopic;
  readonly subscriptions: readonly SnsTopicSubscription[];
  /** The delivery function for Slack, PagerDuty and webhooks, when notify has any. */
  readonly delivery?: AwsNotifyDeliveryResources;
  readonly dashboard: CloudwatchDashboard;
  /** Alarms by `<watch id>/<alarm>`, e.g. `train/gpu-idle-while-queued`. */
  readonly alarms: Readonly<Record<string, CloudwatchMetricAlarm>>;
}

const GPU = HOST_METRICS.awsGpuNamespace;
const AGENT = HOST_METRICS.awsAgentNamespace;
const DIM = HOST_METRICS.awsClusterDimension;
/** CloudWatch metric names of the CloudWatch agent's nvidia_gpu plugin. */
export const AWS_GPU_METRICS = {
  utilization: 'nvidia_smi_utilization_gpu', memoryUsed: 'nvidia_smi_memory_used', memoryTotal: 'nvidia_smi_memory_total',
  temperature: 'nvidia_smi_temperature_gpu', power: 'nvidia_smi_power_draw',
} as const;
/** Metric (per cluster) counting NVIDIA XID lines in the hosts' kernel log. */
export const xidMetricName = (clusterName: string) => `XidErrors-${clusterName}`;

type Widget = Record<string, unknown>;

export function buildAwsMonitoring(scope: Construct, target: AwsTarget, notify: NotifyPlan): MonitoringBackend & { readonly dashboard: string; readonly resources: AwsMonitoringResources } {
  const provider = target.provider;
  const region = target.region;

  // ---- notifications: SNS topic under our own key. CloudWatch cannot publish to a topic under the
  // AWS-managed aws/sns key (its key policy does not admit cloudwatch.amazonaws.com).
  const ns = new Construct(scope, 'notifications');
  const keyPolicy = new DataAwsIamPolicyDocument(ns, 'key-policy', {
    provider,
    statement: [
      {
        sid: 'AccountAdmin', effect: 'Allow', actions: ['kms:*'], resources: ['*'],
        principals: [{ type: 'AWS', identifiers: [`arn:${target.partition}:iam::${target.accountId}:root`] }],
      },
      {
        sid: 'CloudWatchAlarms', effect: 'Allow', actions: ['kms:Decrypt', 'kms:GenerateDataKey*'], resources: ['*'],
        principals: [{ type: 'Service', identifiers: ['cloudwatch.amazonaws.com'] }],
        condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [target.accountId] }],
      },
    ],
  });
  const key = new KmsKey(ns, 'key', {
    provider, description: `${scope.node.path}: alarm notifications`, enableKeyRotation: true, deletionWindowInDays: 30, policy: keyPolicy.json,
  });
  const topic = new SnsTopic(ns, 'topic', { provider, name: resourceName(scope, { maxLength: 256 }), kmsMasterKeyId: key.arn, displayName: 'mlinfra alarms' });
  const topicPolicy = new DataAwsIamPolicyDocument(ns, 'topic-policy', {
    provider,
    statement: [{
      sid: 'CloudWatchAlarms', effect: 'Allow', actions: ['sns:Publish'], resources: [topic.arn],
      principals: [{ type: 'Service', identifiers: ['cloudwatch.amazonaws.com'] }],
      condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [target.accountId] }],
    }],
  });
  new SnsTopicPolicy(ns, 'policy', { provider, arn: topic.arn, policy: topicPolicy.json });
  const subscriptions = notify.emails.map((email, i) => new SnsTopicSubscription(ns, `email-${i}`, { provider, topicArn: topic.arn, protocol: 'email', endpoint: email }));
  // Slack, PagerDuty and webhooks: an SNS-triggered function that reads their secrets at run time.
  const delivery = buildAwsNotifyDelivery(ns, target, topic, notify);

  // ---- one dashboard, filled as constructs are watched
  const widgets: Widget[] = [];
  const widget = (title: string, properties: Record<string, unknown>) => {
    const i = widgets.length;
    widgets.push({ type: 'metric', x: (i % 2) * 12, y: Math.floor(i / 2) * 6, width: 12, height: 6, properties: { title, region, view: 'timeSeries', period: 300, ...properties } });
  };
  const dashboard = new CloudwatchDashboard(scope, 'dashboard', {
    provider, dashboardName: resourceName(scope, { maxLength: 255 }),
    dashboardBody: Lazy.stringValue({ produce: () => JSON.stringify({ widgets }) }),
  });

  const alarms: Record<string, CloudwatchMetricAlarm> = {};
  const alarm = (watch: Construct, id: string, name: string, description: string, config: Omit<CloudwatchMetricAlarmConfig, 'alarmName' | 'comparisonOperator' | 'evaluationPeriods'> & Partial<CloudwatchMetricAlarmConfig>) => {
    const a = new CloudwatchMetricAlarm(watch, name, {
      provider, alarmName: resourceName(watch, { maxLength: 255, suffix: name }), alarmDescription: `${scope.node.path}: ${description}`,
      alarmActions: [topic.arn], okActions: [topic.arn],
      comparisonOperator: 'GreaterThanThreshold', evaluationPeriods: 1,
      ...config,
    });
    alarms[`${id}/${name}`] = a;
    return a;
  };
  const search = (expr: string, stat: string, period = 300) => [{ expression: `SEARCH('${expr}', '${stat}', ${period})`, id: `e${widgets.length}`, label: '' }];

  return {
    watchCluster(w: WatchedCluster) {
      const watch = new Construct(scope, w.id);
      const t = w.thresholds;
      const group = w.cluster.hostGroup;
      const hosts = w.cluster.grantPrincipal;
      if (group.kind !== 'aws-autoscaling-group' || hosts.kind !== 'aws') {
        throw Errors.invalid(scope, 'watch(cluster)', w.cluster.node.path, 'a GpuCluster on aws (an Auto Scaling group whose hosts have an IAM role)', `has a ${group.kind}`);
      }
      const name = w.clusterName;
      const dims = { [DIM]: name };

      // Hosts write GPU metrics, the agent's metrics (EMF) and their kernel log; the role may write
      // only into our namespaces (PutMetricData has no resource ARNs) and these log groups.
      const groups = awsHostLogGroups(name);
      const kernel = new CloudwatchLogGroup(watch, 'kernel-log', { provider, name: groups.kernel, retentionInDays: 30 });
      const emf = new CloudwatchLogGroup(watch, 'metrics-log', { provider, name: groups.prometheus, retentionInDays: 7 });
      const doc = new DataAwsIamPolicyDocument(watch, 'host-metrics-doc', {
        provider,
        statement: [
          {
            effect: 'Allow', actions: ['cloudwatch:PutMetricData'], resources: ['*'],
            condition: [{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: [GPU, AGENT] }],
          },
          {
            effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
            resources: [`${kernel.arn}:*`, `${emf.arn}:*`],
          },
        ],
      });
      new IamRolePolicy(watch, 'host-metrics', { provider, name: 'mlinfra-host-metrics', role: hosts.roleName, policy: doc.json });
      new CloudwatchLogMetricFilter(watch, 'xid-filter', {
        provider, name: 'nvidia-xid', logGroupName: kernel.name, pattern: '"NVRM: Xid"',
        metricTransformation: { name: xidMetricName(name), namespace: GPU, value: '1', defaultValue: '0' },
      });

      alarm(watch, w.id, ALARMS.gpuIdle, `GPUs under ${t.gpuIdlePercent}% busy for ${t.gpuIdleMinutes} min while jobs are queued`, {
        threshold: 0, evaluationPeriods: t.gpuIdleMinutes, datapointsToAlarm: t.gpuIdleMinutes, treatMissingData: 'notBreaching',
        metricQuery: [
          { id: 'queued', metric: { namespace: AGENT, metricName: AGENT_METRICS.jobsQueued, dimensions: dims, period: 60, stat: 'Maximum' }, returnData: false },
          { id: 'util', metric: { namespace: GPU, metricName: AWS_GPU_METRICS.utilization, dimensions: dims, period: 60, stat: 'Average' }, returnData: false },
          { id: 'idle', expression: `IF(queued > 0 AND util < ${t.gpuIdlePercent}, 1, 0)`, label: 'idle while queued', returnData: true },
        ],
      });
      alarm(watch, w.id, ALARMS.xid, 'NVIDIA XID error in a host kernel log', {
        namespace: GPU, metricName: xidMetricName(name), statistic: 'Sum', period: 300, threshold: 0, treatMissingData: 'notBreaching',
      });
      // The start-up script publishes this when the CloudWatch agent could not be set up: without it
      // the GPU, XID, drift and pipeline alarms above and below see nothing.
      alarm(watch, w.id, 'host-metrics-failed', 'a host could not start its CloudWatch agent (no GPU, XID or agent metrics from it)', {
        namespace: AGENT, metricName: HOST_METRICS.hostMetricsFailed, dimensions: dims, statistic: 'Sum', period: 300, threshold: 0, treatMissingData: 'notBreaching',
      });
      if (group.health) {
        alarm(watch, w.id, ALARMS.agentDown, `an agent failed its health check for ${t.agentDownMinutes} min`, {
          namespace: 'AWS/NetworkELB', metricName: 'UnHealthyHostCount', statistic: 'Maximum', period: 60, threshold: 0,
          evaluationPeriods: t.agentDownMinutes, datapointsToAlarm: t.agentDownMinutes, treatMissingData: 'notBreaching',
          dimensions: { TargetGroup: group.health.targetGroupArnSuffix, LoadBalancer: group.health.loadBalancerArnSuffix },
        });
      } else {
        Annotations.of(watch).addWarning(`${w.cluster.node.path}: no load balancer dimensions (targetGroupArnSuffix, loadBalancerArnSuffix): no ${ALARMS.agentDown} alarm`);
      }
      alarm(watch, w.id, ALARMS.drift, `a feature's PSI is above ${t.driftPsi}`, {
        namespace: AGENT, metricName: HOST_METRICS.driftPsi, dimensions: dims, statistic: 'Maximum', period: 300, threshold: t.driftPsi, treatMissingData: 'notBreaching',
      });

      widget(`${w.id}: GPU utilisation (%)`, { stat: 'Average', metrics: [[GPU, AWS_GPU_METRICS.utilization, DIM, name]] });
      widget(`${w.id}: GPU memory used (MiB), temperature (C), power (W)`, {
        stat: 'Average',
        metrics: [[GPU, AWS_GPU_METRICS.memoryUsed, DIM, name], [GPU, AWS_GPU_METRICS.temperature, DIM, name, { yAxis: 'right' }], [GPU, AWS_GPU_METRICS.power, DIM, name, { yAxis: 'right' }]],
      });
      widget(`${w.id}: jobs queued and running, GPUs busy`, {
        stat: 'Maximum',
        metrics: [[AGENT, AGENT_METRICS.jobsQueued, DIM, name], [AGENT, AGENT_METRICS.jobsRunning, DIM, name], [AGENT, AGENT_METRICS.gpusBusy, DIM, name]],
      });
      widget(`${w.id}: job failures by class, autostops, XID errors`, {
        stat: 'Sum',
        metrics: [
          search(`{${AGENT},${DIM},failure_class} MetricName="${AGENT_METRICS.jobsFinished}" ${DIM}="${name}"`, 'Sum'),
          [AGENT, AGENT_METRICS.autostops, DIM, name], [GPU, xidMetricName(name)],
        ],
      });
      widget(`${w.id}: feature drift (PSI)`, {
        stat: 'Maximum',
        metrics: [search(`{${AGENT},${DIM},feature} MetricName="${HOST_METRICS.driftPsi}" ${DIM}="${name}"`, 'Maximum')],
        annotations: { horizontal: [{ label: 'alarm', value: t.driftPsi }] },
      });
    },

    watchPipeline(w: WatchedPipeline) {
      const watch = new Construct(scope, w.id);
      const p = w.pipeline.pipelineName;
      const maxAge = w.thresholds.maxAgeSeconds;
      const runs = (state: string) => ({ namespace: AGENT, metricName: HOST_METRICS.pipelineRuns, dimensions: { [DIM]: w.clusterName, pipeline: p, state } });
      alarm(watch, w.id, ALARMS.pipelineFailed, `a run of pipeline ${p} failed`, {
        ...runs('failed'), statistic: 'Sum', period: 300, threshold: 0, treatMissingData: 'notBreaching',
      });
      // Stale: no successful run in any period covering maxAge. Hosts scaled to zero publish
      // nothing, so missing data is breaching: silence is what a stale pipeline looks like.
      const period = maxAge >= 2 * 3600 ? 3600 : 300;
      const periods = Math.ceil(maxAge / period);
      alarm(watch, w.id, ALARMS.pipelineStale, `no successful run of pipeline ${p} in ${maxAge} s`, {
        ...runs('succeeded'), statistic: 'Sum', period, evaluationPeriods: periods, datapointsToAlarm: periods,
        comparisonOperator: 'LessThanThreshold', threshold: 1, treatMissingData: 'breaching',
      });
      widget(`${w.id}: pipeline runs`, { stat: 'Sum', period: 3600, metrics: [[AGENT, HOST_METRICS.pipelineRuns, DIM, w.clusterName, 'pipeline', p, 'state', 'succeeded'], [AGENT, HOST_METRICS.pipelineRuns, DIM, w.clusterName, 'pipeline', p, 'state', 'failed']] });
    },

    watchEndpoint(w: WatchedEndpoint) {
      const watch = new Construct(scope, w.id);
      const m = w.endpoint.metrics;
      const t = w.thresholds;
      const metric = (r: MetricRef) => ({ namespace: r.namespace, metricName: r.name, dimensions: { ...r.dimensions } });
      // SageMaker's ModelLatency is in microseconds.
      const scale = m.latency.unit === 'microseconds' ? 1000 : m.latency.unit === 'seconds' ? 0.001 : 1;
      // The endpoint's own rollback alarm, when it watches the same condition: a composite alarm on it
      // carries this stack's notifications (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create_Composite_Alarm.html).
      const notifyOn = (name: string, own: RollbackAlarm, description: string) => new CloudwatchCompositeAlarm(watch, name, {
        provider, alarmName: resourceName(watch, { maxLength: 255, suffix: name }), alarmDescription: `${scope.node.path}: ${description} (endpoint alarm ${own.name})`,
        alarmRule: `ALARM("${own.name}")`, alarmActions: [topic.arn], okActions: [topic.arn],
      });
      const latencyText = `p99 latency above ${t.p99LatencyMs} ms for ${t.evaluationMinutes} min`;
      const errorText = `more than ${t.errorRatePercent}% of requests failed (5xx) for ${t.evaluationMinutes} min`;
      if (w.reuse?.p99Latency) notifyOn(ALARMS.p99, w.reuse.p99Latency, latencyText);
      else alarm(watch, w.id, ALARMS.p99, latencyText, {
        ...metric(m.latency), extendedStatistic: 'p99', period: 60, threshold: t.p99LatencyMs * scale,
        evaluationPeriods: t.evaluationMinutes, datapointsToAlarm: t.evaluationMinutes, treatMissingData: 'notBreaching',
      });
      if (w.reuse?.errorRate) notifyOn(ALARMS.errorRate, w.reuse.errorRate, errorText);
      else alarm(watch, w.id, ALARMS.errorRate, errorText, {
        threshold: t.errorRatePercent, evaluationPeriods: t.evaluationMinutes, datapointsToAlarm: t.evaluationMinutes, treatMissingData: 'notBreaching',
        metricQuery: [
          { id: 'errors', metric: { ...metric(m.errors), period: 60, stat: 'Sum' }, returnData: false },
          { id: 'requests', metric: { ...metric(m.invocations), period: 60, stat: 'Sum' }, returnData: false },
          { id: 'rate', expression: 'IF(requests > 0, 100 * errors / requests, 0)', label: '5xx %', returnData: true },
        ],
      });
      const row = (r: MetricRef, extra: Record<string, unknown> = {}) => [r.namespace, r.name, ...Object.entries(r.dimensions).flat(), extra];
      widget(`${w.id}: latency (${m.latency.unit})`, {
        metrics: [row(m.latency, { stat: 'p50' }), row(m.latency, { stat: 'p99' })],
        annotations: { horizontal: [{ label: 'p99 alarm', value: t.p99LatencyMs * scale }] },
      });
      widget(`${w.id}: requests and 5xx errors`, { stat: 'Sum', period: 60, metrics: [row(m.invocations), row(m.errors)] });
    },
    dashboard: dashboard.dashboardName,
    resources: { key, topic, subscriptions, delivery, dashboard, alarms },
  };
}
