/** TrainingPipeline on AWS: the spec as an S3 object, an EventBridge Scheduler schedule that raises the group from zero. */
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { S3Object } from '@cdktf/provider-aws/lib/s3-object';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { versionedBucketName } from '../../core/aws-bucket';
import { AwsTarget } from '../../core/targets';
import { IPipelineCluster, TrainingPipelineBackend, TrainingPipelinePlan } from './plan';

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

export function buildAwsTrainingPipeline(pipeline: Construct, target: AwsTarget, cluster: IPipelineCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: AwsTrainingPipelineResources } {
  const res = cluster.aws;
  if (!res) throw new Error(`${pipeline.node.path}: cluster on aws has no aws resources`);
  const provider = target.provider;

  // ---- the spec: content-addressed, encrypted with the cluster's key like its other objects
  const specObject = new S3Object(pipeline, 'spec', {
    // Written after the bucket's versioning is on, so destroy removes every version of it.
    provider, bucket: versionedBucketName(res.bucket), key: plan.specKey, content: plan.specJson, contentType: 'application/json',
    kmsKeyId: res.key.arn, serverSideEncryption: 'aws:kms',
  });
  const specUri = `s3://${res.bucket.bucket}/${plan.specKey}`;


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
    provider, statement: [{ effect: 'Allow', actions: ['autoscaling:SetDesiredCapacity'], resources: [res.autoscalingGroup.arn] }],
  });
  new IamRolePolicy(scheduling, 'scale', { provider, name: 'mlinfra-scale', role: schedulerRole.id, policy: scale.json });

  const schedule = new SchedulerSchedule(scheduling, 'schedule', {
    provider, name, description: `${pipeline.node.path}: ${plan.schedule.text}`,
    scheduleExpression: plan.schedule.aws, scheduleExpressionTimezone: plan.schedule.timezone,
    flexibleTimeWindow: { mode: 'OFF' },
    target: {
      arn: setDesiredCapacityTarget(target.partition), roleArn: schedulerRole.arn,
      input: JSON.stringify({ AutoScalingGroupName: res.autoscalingGroup.name, DesiredCapacity: plan.startNodes }),
      // A missed start is retried for an hour, then dropped: the next run comes with the next tick.
      retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 10 },
    },
  });
  return { specUri, scheduleName: schedule.name, resources: { specObject, schedule, schedulerRole } };
}
