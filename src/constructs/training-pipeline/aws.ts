/** TrainingPipeline on AWS: the spec as an S3 object, an EventBridge Scheduler schedule that enqueues runs on the cluster's SQS queue. */
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import type { S3Object } from '@cdktf/provider-aws/lib/s3-object';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { Errors } from '../../core/errors';
import type { AwsPrincipal } from '../../core/grants';
import { AwsTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { TrainingPipelineBackend, TrainingPipelinePlan, TrainingPipelineTarget } from './plan';

/**
 * The queue message of one scheduled pipeline run (the agent's `pipeline-run` kind): fixed keys in a
 * fixed order, so the schedule's input is byte-stable.
 */
export function pipelineRunMessage(pipeline: string, specUri: string): string {
  return JSON.stringify({ v: 1, kind: 'pipeline-run', pipeline, spec: specUri });
}

function missingQueue(pipeline: Construct, cluster: IGpuCluster): Error {
  return Errors.missing(pipeline, 'cluster', `a cluster with a jobs queue: ${cluster.node.path} has none (an imported cluster takes aws.jobsQueueUrl and aws.jobsQueueArn)`);
}

/** The scheduler role as a grantee: each grant becomes one inline policy on it. */
function schedulerPrincipal(scope: Construct, target: AwsTarget, role: IamRole): AwsPrincipal {
  return {
    kind: 'aws', roleArn: role.arn, roleName: role.name,
    addToPolicy(grantId, statements) {
      const doc = new DataAwsIamPolicyDocument(scope, `${grantId}-doc`, {
        provider: target.provider, statement: statements.map((st) => ({ effect: 'Allow', actions: [...st.actions], resources: [...st.resources] })),
      });
      new IamRolePolicy(scope, grantId, { provider: target.provider, name: grantId, role: role.id, policy: doc.json });
    },
  };
}

export interface AwsTrainingPipelineResources {
  readonly specObject: S3Object;
  readonly schedule?: SchedulerSchedule;
  /** Assumed by EventBridge Scheduler; may only send to this cluster's jobs queue. */
  readonly schedulerRole?: IamRole;
}

/** TrainingPipeline on AWS, for the dispatch table in index.ts. */
export const AWS_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 's3://',
  // Runs are queued: any cluster with a jobs queue takes them, whatever its nodes.min.
  checkSchedule: (pipeline, _schedule, _timezone, cluster) => {
    if (cluster.jobQueue?.kind !== 'sqs') throw missingQueue(pipeline, cluster);
  },
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

  // ---- the schedule enqueues one run into the cluster's jobs queue; exactly one host leases it
  const queue = cluster.jobQueue;
  if (queue?.kind !== 'sqs') throw missingQueue(pipeline, cluster);
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
    provider, name: `${name}-scheduler`, assumeRolePolicy: assume.json, description: `${pipeline.node.path}: enqueues its scheduled runs`,
  });
  // sqs:SendMessage on exactly this queue (and its key), through the cluster's grant.
  cluster.grantEnqueue({ grantPrincipal: schedulerPrincipal(scheduling, target, schedulerRole) });

  const schedule = new SchedulerSchedule(scheduling, 'schedule', {
    provider, name, description: `${pipeline.node.path}: ${plan.schedule.text}`,
    scheduleExpression: plan.schedule.aws, scheduleExpressionTimezone: plan.schedule.timezone,
    flexibleTimeWindow: { mode: 'OFF' },
    target: {
      // A templated SQS target: the input is sent as the message body, as is
      // (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html).
      arn: queue.arn, roleArn: schedulerRole.arn,
      input: pipelineRunMessage(plan.spec.name, specUri),
      // A missed tick is retried for an hour, then dropped: the next run comes with the next tick.
      retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 10 },
    },
  });
  return { specUri, scheduleName: schedule.name, resources: { specObject, schedule, schedulerRole } };
}
