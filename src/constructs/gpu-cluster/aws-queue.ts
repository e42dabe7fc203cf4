/**
 * GpuCluster on AWS, issue 17: the durable jobs queue (SQS + dead-letter queue), scaling on its
 * backlog, scale-in protection and the drain hook. What the agent needs is listed in
 * src/runtime-agent/queue/README.md; each argument below follows it.
 */
import { Fn } from 'cdktf';
import { Construct } from 'constructs';
import type { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group';
import { AutoscalingLifecycleHook } from '@cdktf/provider-aws/lib/autoscaling-lifecycle-hook';
import { AutoscalingPolicy } from '@cdktf/provider-aws/lib/autoscaling-policy';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { SqsQueuePolicy } from '@cdktf/provider-aws/lib/sqs-queue-policy';
import { SqsQueueRedriveAllowPolicy } from '@cdktf/provider-aws/lib/sqs-queue-redrive-allow-policy';
import type { AwsPolicyStatement } from '../../core/grants';
import type { AwsTarget } from '../../core/targets';
import type { GpuClusterPlan } from './plan';

/** 14 days, SQS's maximum: a job waits through a long scale-from-zero. */
export const QUEUE_RETENTION_SECONDS = 1_209_600;
/** The queue's own redrive is a backstop only: the agent counts attempts by starts in the bucket (README). */
export const QUEUE_MAX_RECEIVE_COUNT = 100;
/** Waiting jobs per in-service host the group tracks: one job no host could take asks for one more host. */
export const BACKLOG_PER_HOST = 1;
/** How long a terminating host may drain (stop leasing, checkpoint, release) before it goes anyway. */
export const DRAIN_HEARTBEAT_SECONDS = 600;

export interface AwsJobQueue {
  readonly jobs: SqsQueue;
  readonly deadLetter: SqsQueue;
}

/**
 * The jobs queue and its dead-letter queue, encrypted with the cluster's key, TLS only.
 * Arguments: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
 */
export function buildAwsJobQueue(cluster: Construct, target: AwsTarget, plan: GpuClusterPlan, keyArn: string): AwsJobQueue {
  const provider = target.provider;
  const scope = new Construct(cluster, 'queue');
  // SSE with the cluster's key (CMEK): senders need kms:GenerateDataKey and kms:Decrypt on it.
  const sse = { kmsMasterKeyId: keyArn, kmsDataKeyReusePeriodSeconds: 300 };
  const deadLetter = new SqsQueue(scope, 'dead-letter', {
    provider, name: `${plan.name}-jobs-dlq`, messageRetentionSeconds: QUEUE_RETENTION_SECONDS, ...sse, tags: target.tags,
  });
  // Standard, not FIFO: no 300 msg/s cap, and the agent drops duplicate deliveries by the job's record.
  const jobs = new SqsQueue(scope, 'jobs', {
    provider, name: `${plan.name}-jobs`,
    // The agent sets its own lease on every receive; this applies only to other readers.
    visibilityTimeoutSeconds: 60,
    messageRetentionSeconds: QUEUE_RETENTION_SECONDS,
    receiveWaitTimeSeconds: 20,
    // 256 KiB, the maximum: the agent answers 413 to a bigger job before sending it.
    maxMessageSize: 262_144,
    ...sse,
    redrivePolicy: Fn.jsonencode({ deadLetterTargetArn: deadLetter.arn, maxReceiveCount: QUEUE_MAX_RECEIVE_COUNT }),
    tags: target.tags,
  });
  // Only this cluster's jobs queue may move messages to its dead-letter queue.
  new SqsQueueRedriveAllowPolicy(scope, 'dead-letter-allow', {
    provider, queueUrl: deadLetter.url,
    redriveAllowPolicy: Fn.jsonencode({ redrivePermission: 'byQueue', sourceQueueArns: [jobs.arn] }),
  });
  for (const [id, q] of [['jobs', jobs], ['dead-letter', deadLetter]] as const) {
    const doc = new DataAwsIamPolicyDocument(scope, `${id}-tls-doc`, {
      provider,
      statement: [{
        sid: 'DenyInsecureTransport', effect: 'Deny', actions: ['sqs:*'], resources: [q.arn],
        principals: [{ type: '*', identifiers: ['*'] }],
        condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
      }],
    });
    new SqsQueuePolicy(scope, `${id}-tls`, { provider, queueUrl: q.url, policy: doc.json });
  }
  return { jobs, deadLetter };
}

/** What hosts do with the queues (README "Grants"): lease, extend, release, delete and submit; dead-letter. */
export function hostQueueStatements(q: AwsJobQueue): AwsPolicyStatement[] {
  return [
    { actions: ['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:SendMessage'], resources: [q.jobs.arn] },
    { actions: ['sqs:SendMessage'], resources: [q.deadLetter.arn] },
  ];
}

/** What a sender (a schedule, a client) needs to enqueue: SendMessage on the jobs queue, and its key. */
export function enqueueStatements(queueArn: string, keyArn?: string): AwsPolicyStatement[] {
  return [
    { actions: ['sqs:SendMessage'], resources: [queueArn] },
    ...(keyArn ? [{ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [keyArn] }] : []),
  ];
}

/** What hosts do with their group: protect themselves while busy, complete the drain hook. */
export function hostGroupStatements(groupArn: string): AwsPolicyStatement[] {
  return [{
    actions: ['autoscaling:SetInstanceProtection', 'autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
    resources: [groupArn],
  }];
}

export interface AwsBacklogScaling {
  readonly backlog: AutoscalingPolicy;
  readonly wake: AutoscalingPolicy;
  readonly wakeAlarm: CloudwatchMetricAlarm;
  readonly drainHook: AutoscalingLifecycleHook;
}

/**
 * Scale on backlog, never kill busy hosts:
 * - target tracking on visible messages per in-service host (metric math), scale-in disabled: hosts
 *   leave by the agent's idle stop
 *   (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-target-tracking-metric-math.html);
 * - a wake alarm for the empty group: target tracking scales in proportion to the current capacity,
 *   so from zero hosts one simple step adds the first;
 * - a termination lifecycle hook: a host leaving for any reason (rebalancing, a manual scale-in) first
 *   drains (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html).
 * Busy hosts also set their own scale-in protection (the group launches them protected).
 */
export function buildBacklogScaling(cluster: Construct, target: AwsTarget, plan: GpuClusterPlan, group: AutoscalingGroup, q: AwsJobQueue): AwsBacklogScaling {
  const provider = target.provider;
  const scope = new Construct(cluster, 'scaling');
  const visible = {
    id: 'visible', label: 'jobs waiting', returnData: false,
    metricStat: { stat: 'Sum', metric: { namespace: 'AWS/SQS', metricName: 'ApproximateNumberOfMessagesVisible', dimensions: [{ name: 'QueueName', value: q.jobs.name }] } },
  };
  const hosts = {
    id: 'hosts', label: 'hosts in service', returnData: false,
    metricStat: { stat: 'Average', metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupInServiceInstances', dimensions: [{ name: 'AutoScalingGroupName', value: group.name }] } },
  };
  const backlog = new AutoscalingPolicy(scope, 'backlog', {
    provider, name: `${plan.name}-backlog`, autoscalingGroupName: group.name, policyType: 'TargetTrackingScaling',
    // Hosts install the driver wait, Node.js and the agent before they lease: count them after that.
    estimatedInstanceWarmup: 600,
    targetTrackingConfiguration: {
      targetValue: BACKLOG_PER_HOST,
      disableScaleIn: true,
      customizedMetricSpecification: {
        metrics: [visible, hosts, { id: 'backlog', label: 'jobs waiting per host', expression: 'IF(hosts > 0, visible / hosts, visible)', returnData: true }],
      },
    },
  });
  const wake = new AutoscalingPolicy(scope, 'wake', {
    provider, name: `${plan.name}-wake`, autoscalingGroupName: group.name, policyType: 'SimpleScaling',
    adjustmentType: 'ChangeInCapacity', scalingAdjustment: 1, cooldown: 300,
  });
  const wakeAlarm = new CloudwatchMetricAlarm(scope, 'wake-alarm', {
    provider, alarmName: `${plan.name}-wake`, alarmDescription: `${cluster.node.path}: jobs wait and the group has no host`,
    comparisonOperator: 'GreaterThanOrEqualToThreshold', threshold: 1, evaluationPeriods: 1, treatMissingData: 'notBreaching',
    metricQuery: [
      { id: 'visible', returnData: false, metric: { namespace: 'AWS/SQS', metricName: 'ApproximateNumberOfMessagesVisible', stat: 'Maximum', period: 60, dimensions: { QueueName: q.jobs.name } } },
      // Desired, not in service: a host that is booting already answers the backlog.
      { id: 'desired', returnData: false, metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupDesiredCapacity', stat: 'Maximum', period: 60, dimensions: { AutoScalingGroupName: group.name } } },
      { id: 'wake', label: 'jobs wait on an empty group', expression: 'IF(desired == 0 AND visible > 0, 1, 0)', returnData: true },
    ],
    alarmActions: [wake.arn],
    tags: target.tags,
  });
  const drainHook = new AutoscalingLifecycleHook(scope, 'drain', {
    provider, name: `${plan.name}-drain`, autoscalingGroupName: group.name,
    lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
    // The agent completes the action when it has drained; without it the host goes after the timeout.
    heartbeatTimeout: DRAIN_HEARTBEAT_SECONDS, defaultResult: 'CONTINUE',
  });
  return { backlog, wake, wakeAlarm, drainHook };
}
