/**
 * One model served on each target, mid-way through a canary of v2 (DESIGN §1, §5).
 * `npm run synth` writes cdktf.out/stacks/endpoint-aws, endpoint-gcp and endpoint-k8s.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack } from '../stack';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { AwsTarget, GcpTarget, KubernetesTarget, MetricRef, ModelArtifact, ModelEndpoint, Rollout } from '../../src';

export function build(app: App): TerraformStack[] {
  // AWS: SageMaker runs the canary itself: 10% of capacity first, the rest after a 15-minute bake
  // unless an alarm fires.
  const aws = exampleStack(app, 'endpoint-aws');
  const awsTarget = new AwsTarget(aws, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' } });
  const rollbackAlarms = { errors: 'ltv-api-5xx', latency: 'ltv-api-p99-latency' };
  const awsEndpoint = new ModelEndpoint(aws, 'ltv-api', {
    target: awsTarget, model: ModelArtifact.fromUri('s3://ml-platform-models/ltv/v2'),
    image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 2, max: 8 },
    rollout: Rollout.canary({ percent: 10, bakeMinutes: 15 }), rollbackAlarms: Object.values(rollbackAlarms),
  });
  // The alarms the canary rolls back on, on the endpoint's own SageMaker metrics.
  const metric = (m: MetricRef) => ({ namespace: m.namespace, metricName: m.name, dimensions: { ...m.dimensions } });
  new CloudwatchMetricAlarm(aws, 'rollback-5xx', {
    provider: awsTarget.provider, alarmName: rollbackAlarms.errors, alarmDescription: 'ltv-api: 5xx responses (canary rollback)',
    ...metric(awsEndpoint.metrics.errors), statistic: 'Sum', period: 60, evaluationPeriods: 2, threshold: 5,
    comparisonOperator: 'GreaterThanThreshold', treatMissingData: 'notBreaching',
  });
  new CloudwatchMetricAlarm(aws, 'rollback-p99', {
    provider: awsTarget.provider, alarmName: rollbackAlarms.latency, alarmDescription: 'ltv-api: p99 model latency above 500 ms (canary rollback)',
    // ModelLatency is in microseconds.
    ...metric(awsEndpoint.metrics.latency), extendedStatistic: 'p99', period: 60, evaluationPeriods: 3, threshold: 500_000,
    comparisonOperator: 'GreaterThanThreshold', treatMissingData: 'notBreaching',
  });

  // GCP: Cloud Run with one L4. Cloud Run splits traffic only to revisions that exist, so this first
  // deploy of v2 takes all traffic; the next version's deploy sets `revision: 'v3'` and
  // `previous: { revision: 'v2', deployed: true }` to send it 10% while v2 keeps 90%.
  const gcp = exampleStack(app, 'endpoint-gcp');
  const gcpTarget = new GcpTarget(gcp, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
  new ModelEndpoint(gcp, 'ltv-api', {
    target: gcpTarget, model: 'gs://ml-platform-models/ltv/v2', image: 'us-docker.pkg.dev/ml-platform-prod/serving/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 0, max: 4 },
    rollout: Rollout.canary({ percent: 10 }), revision: 'v2',
  });

  // Kubernetes: stable pods keep v1, one canary pod runs v2; the pods fetch the model with the
  // credentials of `model-reader` (e.g. an IRSA or Workload Identity service account).
  const k8s = exampleStack(app, 'endpoint-k8s');
  const k8sTarget = new KubernetesTarget(k8s, 'k8s', { namespace: 'ml-serving' });
  new ModelEndpoint(k8s, 'ltv-api', {
    target: k8sTarget, model: 's3://ml-platform-models/ltv/v2', image: 'ghcr.io/acme/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 4, max: 12 }, serviceAccountName: 'model-reader',
    rollout: Rollout.canary({ percent: 25 }), revision: 'v2',
    previous: { revision: 'v1', image: 'ghcr.io/acme/ltv-server:1.9.0', model: 's3://ml-platform-models/ltv/v1' },
  });
  return [aws, gcp, k8s];
}
