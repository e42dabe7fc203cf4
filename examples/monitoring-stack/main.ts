/**
 * Monitoring of a GPU cluster and a model endpoint on each target (DESIGN §1, §5).
 * `npm run synth` writes cdktf.out/stacks/ops-aws, ops-gcp and ops-k8s.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack, sharedAwsNetwork } from '../stack';
import { AwsTarget, Duration, Notify, GcpTarget, GpuCluster, KubernetesTarget, ModelEndpoint, MonitoringStack, Schedule, Step, TrainingPipeline } from '../../src';

/** A nightly training pipeline on `cluster`: what the freshness and failure alarms watch. */
function nightly(stack: TerraformStack, cluster: GpuCluster): TrainingPipeline {
  return new TrainingPipeline(stack, 'ltv', {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [
      Step.run('features', ['python3', 'featurize.py'], { gpus: 0 }),
      Step.run('train', ['python3', 'train.py'], { after: ['features'], retries: 2 }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
    ],
  });
}

export function build(app: App): TerraformStack[] {
  // AWS: CloudWatch alarms to an SNS topic; hosts publish GPU and agent metrics with the CloudWatch agent.
  const aws = exampleStack(app, 'ops-aws');
  const awsTarget = new AwsTarget(aws, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) });
  const awsCluster = new GpuCluster(aws, 'train', { target: awsTarget, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true });
  const awsEndpoint = new ModelEndpoint(aws, 'ltv-api', {
    target: awsTarget, model: 's3://ml-platform-models/ltv/v2', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 1, max: 8 },
  });
  // Email through SNS; Slack through the SNS-triggered delivery function, which reads the webhook URL
  // from the Secrets Manager secret ml-slack-webhook when an alarm fires.
  new MonitoringStack(aws, 'ops', { target: awsTarget, notify: [Notify.email('ml-oncall@example.com'), Notify.slack({ webhookSecret: 'ml-slack-webhook' })] })
    .watch(awsCluster)
    .watch(nightly(aws, awsCluster), { maxAge: Duration.hours(26) })
    .watch(awsEndpoint, { p99LatencyMs: 250, errorRatePercent: 1 });

  // GCP: Cloud Monitoring alert policies to an email and a webhook channel; the Ops Agent on hosts.
  const gcp = exampleStack(app, 'ops-gcp');
  const gcpTarget = new GcpTarget(gcp, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
  const gcpCluster = new GpuCluster(gcp, 'train', { target: gcpTarget, accelerator: 'L4', acceleratorsPerNode: 1, nodes: { min: 0, max: 2 } });
  const gcpEndpoint = new ModelEndpoint(gcp, 'ltv-api', {
    target: gcpTarget, model: 'gs://ml-platform-models/ltv/v2', image: 'us-docker.pkg.dev/ml-platform-prod/serving/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 0, max: 4 },
  });
  new MonitoringStack(gcp, 'ops', { target: gcpTarget, notify: ['ml-oncall@example.com', 'https://hooks.example.com/mlinfra'] })
    .watch(gcpCluster, { gpuIdleMinutes: 20 })
    .watch(nightly(gcp, gcpCluster), { maxAge: Duration.hours(26) })
    .watch(gcpEndpoint, { p99LatencyMs: 400, errorRatePercent: 2 });

  // Kubernetes: Prometheus with alert rules, Alertmanager (SMTP relay, a webhook, and PagerDuty with its
  // key read from the Secret ml-pagerduty), the DCGM exporter.
  const k8s = exampleStack(app, 'ops-k8s');
  const k8sTarget = new KubernetesTarget(k8s, 'k8s', { namespace: 'ml-platform', artifactStore: { uri: 's3://ml-platform-artifacts' } });
  const k8sCluster = new GpuCluster(k8s, 'train', { target: k8sTarget, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 2 } });
  const k8sEndpoint = new ModelEndpoint(k8s, 'ltv-api', {
    target: k8sTarget, model: 's3://ml-platform-models/ltv/v2', image: 'ghcr.io/acme/ltv-server:2.0.0', accelerator: 'L4', replicas: { min: 2, max: 8 },
  });
  new MonitoringStack(k8s, 'ops', {
    target: k8sTarget, notify: ['ml-oncall@example.com', 'https://hooks.example.com/mlinfra', Notify.pagerDuty({ routingKeySecret: 'ml-pagerduty' })],
    kubernetes: { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' }, storageGiB: 100 },
  })
    .watch(k8sCluster)
    .watch(nightly(k8s, k8sCluster), { maxAge: Duration.hours(26) })
    .watch(k8sEndpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  return [aws, gcp, k8s];
}
