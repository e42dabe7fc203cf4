/**
 * A GPU cluster made by another stack (here: the gpu-clusters example's `gpu-aws`), imported by its
 * attributes, with a nightly TrainingPipeline scheduled on it and a MonitoringStack watching both.
 * Nothing of the cluster is created here: the spec goes into its bucket under its key, the schedule
 * resizes its Auto Scaling group, and the monitor grants its host role the metric writes.
 * `npm run synth` writes cdktf.out/stacks/imported-aws.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack, sharedAwsNetwork } from '../stack';
import { AwsTarget, Duration, GpuCluster, MonitoringStack, Schedule, Step, TrainingPipeline } from '../../src';

/** What `cdktf output` of the stack that made the cluster gives (its outputs and resource attributes). */
const TRAIN = {
  name: 'gpu-aws-train-8d1c9d6e',
  account: '123456789012',
  region: 'us-east-1',
};

export function build(app: App): TerraformStack[] {
  const stack = exampleStack(app, 'imported-aws');
  const target = new AwsTarget(stack, 'aws', { region: TRAIN.region, tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) });
  const arn = (service: string, resource: string) => `arn:aws:${service}:${TRAIN.region}:${TRAIN.account}:${resource}`;
  const cluster = GpuCluster.fromGpuClusterAttributes(stack, 'train', {
    target, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 },
    agentUrl: `http://internal-${TRAIN.name}.elb.${TRAIN.region}.amazonaws.com:7070`,
    agentTokenSecret: { store: 'aws-secrets-manager', arn: arn('secretsmanager', `secret:mlinfra/${TRAIN.name}/agent-token-AbCdEf`), name: `mlinfra/${TRAIN.name}/agent-token` },
    bucketName: `${TRAIN.name}-${TRAIN.account}`,
    groupName: TRAIN.name,
    aws: {
      hostRoleArn: `arn:aws:iam::${TRAIN.account}:role/${TRAIN.name}-host`,
      hostRoleName: `${TRAIN.name}-host`,
      kmsKeyArn: arn('kms', 'key/1234abcd-12ab-34cd-56ef-1234567890ab'),
      autoscalingGroupArn: arn('autoscaling', `autoScalingGroup:6d5af669-eb3b-4530-894b-e314a667f2e7:autoScalingGroupName/${TRAIN.name}`),
      targetGroupArnSuffix: `targetgroup/${TRAIN.name.slice(0, 29)}-tg/0123456789abcdef`,
      loadBalancerArnSuffix: `net/${TRAIN.name.slice(0, 32)}/0123456789abcdef`,
      // The jobs queue the hosts lease from: what the pipeline's schedule enqueues into.
      jobsQueueUrl: `https://sqs.${TRAIN.region}.amazonaws.com/${TRAIN.account}/${TRAIN.name}-jobs`,
      jobsQueueArn: arn('sqs', `${TRAIN.name}-jobs`),
    },
  });

  const nightly = new TrainingPipeline(stack, 'ltv', {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [
      Step.run('features', ['python3', 'featurize.py'], { gpus: 0 }),
      Step.run('train', ['python3', 'train.py'], { after: ['features'], retries: 2 }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
    ],
  });

  new MonitoringStack(stack, 'ops', { target, notify: ['ml-oncall@example.com'] })
    .watch(cluster)
    .watch(nightly, { maxAge: Duration.hours(26) });
  return [stack];
}
