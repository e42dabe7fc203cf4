/** TrainingPipeline on AWS: the spec as an S3 object, an EventBridge Scheduler schedule that raises the group from zero. */
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import type { S3Object } from '@cdktf/provider-aws/lib/s3-object';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { Errors } from '../../core/errors';
import { recordAccess } from '../../core/grants';
import { AwsTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { checkHostSchedule, TrainingPipelineBackend, TrainingPipelinePlan, TrainingPipelineTarget } from './plan';

/** EventBridge Scheduler's universal target for the Auto Scaling API call, in `partition` (aws, aws-cn, aws-us-gov). */
export function setDesiredCapacityTarget(partition: string): string {
  return `arn:${partition}:scheduler:::aws-sdk:autoscaling:setDesiredCapacity`;
}

export interface AwsTrainingPipelineResources {
  readonly specObject: S3Object;
  readonly schedule?: SchedulerSchedule;
  /** Assumed by EventBridge Scheduler; may only set this cluster's desired capacity. */
  readonly schedulerRole?: IamRole;
}

/** TrainingPipeline on AWS, for the dispatch table in index.ts. */
export const AWS_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 's3://',
  checkSchedule: (pipeline, schedule, _timezone, cluster) => checkHostSchedule(pipeline, schedule, cluster),
  // Hosts fetch the bigger cluster's token at every agent start.
  oomTokenFile: (cluster, big, clusterName) => cluster.addPeerToken(big, clusterName),
  build: (pipeline, target, cluster, plan) => buildAwsTrainingPipeline(pipeline, target as AwsTarget, cluster, plan),
};

export function buildAwsTrainingPipeline(pipeline: Construct, target: AwsTarget, cluster: IGpuCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: AwsTrainingPipelineResources } {
  const group = cluster.hostGroup;
  if (group.kind !== 'aws-autoscaling-group') {
    throw Errors.invalid(pipeline, 'cluster', cluster.node.path, 'a GpuCluster on aws (an Auto Scaling group)', `has a ${group.kind}`);
  }
  const provider = target.provider;

  // ---- the spec: content-addressed, in the cluster's bucket under its key (written after the
  // bucket's versioning is on, so destroy removes every version of it)
  const stored = cluster.storeObject(pipeline, 'spec', { key: plan.specKey, content: plan.specJson, contentType: 'application/json' });
  const specObject = stored.resource as S3Object;
  const specUri = stored.uri;


  if (!plan.schedule) return { specUri, resources: { specObject } };

  // Hosts started from zero run the pipeline.
  cluster.addStartupPipeline(specUri);

  // ---- scheduler identity: exactly SetDesiredCapacity on exactly this group
  const scheduling = new Construct(pipeline, 'schedule');
  const name = plan.name;
  const assume = new DataAwsIamPolicyDocument(scheduling, 'assume', {
    provider,
    statement: [{
      effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['scheduler.amazonaws.com'] }],
      // Confused-deputy guard: only schedules of this account.
      condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [target.accountId] }],
    }],
  });
  const schedulerRole = new IamRole(scheduling, 'role', {
    provider, name: `${name}-scheduler`, assumeRolePolicy: assume.json, description: `${pipeline.node.path}: starts the cluster on schedule`,
  });
  const scale = new DataAwsIamPolicyDocument(scheduling, 'scale-doc', {
    provider, statement: [{ effect: 'Allow', actions: ['autoscaling:SetDesiredCapacity'], resources: [group.arn] }],
  });
  new IamRolePolicy(scheduling, 'scale', { provider, name: 'mlinfra-scale', role: schedulerRole.id, policy: scale.json });
  recordAccess(scheduling, 'scale', 'scale');

  const schedule = new SchedulerSchedule(scheduling, 'schedule', {
    provider, name, description: `${pipeline.node.path}: ${plan.schedule.text}`,
    scheduleExpression: plan.schedule.aws, scheduleExpressionTimezone: plan.schedule.timezone,
    flexibleTimeWindow: { mode: 'OFF' },
    target: {
      arn: setDesiredCapacityTarget(target.partition), roleArn: schedulerRole.arn,
      input: JSON.stringify({ AutoScalingGroupName: group.name, DesiredCapacity: plan.startNodes }),
      // A missed start is retried for an hour, then dropped: the next run comes with the next tick.
      retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 10 },
    },
  });
  return { specUri, scheduleName: schedule.name, resources: { specObject, schedule, schedulerRole } };
}
