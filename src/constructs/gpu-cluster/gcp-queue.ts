/**
 * GpuCluster on GCP: the cluster's durable job queue on Pub/Sub, exactly as the agent needs it
 * (src/runtime-agent/queue/README.md, "GCP"), and the MIG autoscaler that scales on its backlog.
 * Sources:
 * - Subscription fields (ack deadline 10-600 s, retention, expiration policy, dead-letter policy with
 *   5-100 delivery attempts): https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions
 *   and the provider's google_pubsub_subscription (`expiration_policy { ttl = "" }` never expires).
 * - Dead-lettering needs the Pub/Sub service agent service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com
 *   to publish to the dead-letter topic and subscribe to the source subscription, or it silently does
 *   nothing: https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions.
 * - CMEK topics: the same service agent encrypts with the key (roles/cloudkms.cryptoKeyEncrypterDecrypter
 *   on it): https://cloud.google.com/pubsub/docs/encryption#using-cmek.
 * - Autoscaler metric (AutoscalingPolicyCustomMetricUtilization, compute/docs/reference/rest/v1/autoscalers):
 *   the filter joins selectors with AND and compares with = only; a resource type other than gce_instance
 *   makes it a per-group metric; single_instance_assignment is the work one VM takes (never with
 *   utilization_target). Mode ONLY_SCALE_OUT: the autoscaler never removes a VM
 *   (compute/docs/autoscaler/managing-autoscalers#restrict_scale_in).
 */
import { Construct } from 'constructs';
import type { TerraformProvider } from 'cdktf';
import { ComputeRegionAutoscaler } from '@cdktf/provider-google/lib/compute-region-autoscaler';
import { DataGoogleProject } from '@cdktf/provider-google/lib/data-google-project';
import { KmsCryptoKeyIamMember } from '@cdktf/provider-google/lib/kms-crypto-key-iam-member';
import { PubsubSubscription } from '@cdktf/provider-google/lib/pubsub-subscription';
import { PubsubSubscriptionIamMember } from '@cdktf/provider-google/lib/pubsub-subscription-iam-member';
import { PubsubTopic } from '@cdktf/provider-google/lib/pubsub-topic';
import { PubsubTopicIamMember } from '@cdktf/provider-google/lib/pubsub-topic-iam-member';
import type { ClusterJobQueue } from './props';

/** The Pub/Sub metric the MIG autoscaler follows: messages not yet acknowledged on the jobs subscription. */
export const PUBSUB_BACKLOG_METRIC = 'pubsub.googleapis.com/subscription/num_undelivered_messages';
/** Pub/Sub's dead-letter backstop: well above the agent's own --max-attempts (counted in the bucket). */
export const PUBSUB_MAX_DELIVERY_ATTEMPTS = 100;
/** Seven days of backlog: a job waits through a long scale-from-zero (subscriptions take 10 minutes to 31 days). */
export const PUBSUB_RETENTION = '604800s';

/** The Pub/Sub service agent of a project (by number). */
export const pubsubServiceAgent = (projectNumber: string): string => `serviceAccount:service-${projectNumber}@gcp-sa-pubsub.iam.gserviceaccount.com`;

export interface GcpClusterQueueOptions {
  readonly provider: TerraformProvider;
  readonly project: string;
  /** The cluster's base name ([a-z][a-z0-9-], at most 40): topics and subscriptions are named after it. */
  readonly name: string;
  /** The hosts' service account member. */
  readonly hostMember: string;
  /** A Cloud KMS key for both topics. @default - Google-managed encryption */
  readonly kmsKeyName?: string;
}

export interface GcpClusterQueueResources {
  readonly jobsTopic: PubsubTopic;
  readonly jobsSubscription: PubsubSubscription;
  readonly deadLetterTopic: PubsubTopic;
  readonly deadLetterSubscription: PubsubSubscription;
  /** The project's number: names the Pub/Sub service agent. */
  readonly project: DataGoogleProject;
  /** Hosts' and the Pub/Sub service agent's grants, each on one topic, subscription or key. */
  readonly grants: readonly (PubsubTopicIamMember | PubsubSubscriptionIamMember | KmsCryptoKeyIamMember)[];
}

export interface GcpClusterQueue {
  readonly resources: GcpClusterQueueResources;
  /** The public attribute: what a schedule publishes to. */
  readonly jobQueue: ClusterJobQueue;
  /** `serve` arguments: --queue and --dead-letter-queue. */
  readonly agentArgs: readonly string[];
  /** Lets `member` publish to the jobs topic only. */
  grantEnqueue(scope: Construct, id: string, member: string): PubsubTopicIamMember;
}

export function buildGcpClusterQueue(scope: Construct, o: GcpClusterQueueOptions): GcpClusterQueue {
  const { provider, project } = o;
  const q = new Construct(scope, 'queue');
  const encryption = o.kmsKeyName ? { kmsKeyName: o.kmsKeyName } : {};
  const projectData = new DataGoogleProject(q, 'project', { provider, projectId: project });
  const agent = pubsubServiceAgent(projectData.number);

  const deadLetterTopic = new PubsubTopic(q, 'dead-letter-topic', { provider, project, name: `${o.name}-jobs-dlq`, ...encryption });
  // A message published to a topic with no subscription is dropped: the DLQ keeps its own.
  const deadLetterSubscription = new PubsubSubscription(q, 'dead-letter-subscription', {
    provider, project, name: `${o.name}-jobs-dlq`, topic: deadLetterTopic.id,
    messageRetentionDuration: PUBSUB_RETENTION, expirationPolicy: { ttl: '' },
  });
  const jobsTopic = new PubsubTopic(q, 'jobs-topic', { provider, project, name: `${o.name}-jobs`, ...encryption });
  // Pull only (no push config); the agent sets its own deadline per lease (modifyAckDeadline).
  const jobsSubscription = new PubsubSubscription(q, 'jobs-subscription', {
    provider, project, name: `${o.name}-jobs`, topic: jobsTopic.id,
    ackDeadlineSeconds: 60, messageRetentionDuration: PUBSUB_RETENTION, retainAckedMessages: false,
    // The default policy deletes a subscription idle for 31 days: a quiet cluster would lose its queue.
    expirationPolicy: { ttl: '' },
    deadLetterPolicy: { deadLetterTopic: deadLetterTopic.id, maxDeliveryAttempts: PUBSUB_MAX_DELIVERY_ATTEMPTS },
    // At-least-once: the agent dedups by the job record in the bucket.
    enableExactlyOnceDelivery: false,
  });

  const grants: (PubsubTopicIamMember | PubsubSubscriptionIamMember | KmsCryptoKeyIamMember)[] = [
    // Hosts: pull, extend, release and acknowledge (pubsub.subscriptions.consume) on the jobs subscription.
    new PubsubSubscriptionIamMember(q, 'host-consume', { provider, project, subscription: jobsSubscription.name, role: 'roles/pubsub.subscriber', member: o.hostMember }),
    // Hosts accept submits (any host enqueues) and dead-letter after --max-attempts.
    new PubsubTopicIamMember(q, 'host-publish', { provider, project, topic: jobsTopic.name, role: 'roles/pubsub.publisher', member: o.hostMember }),
    new PubsubTopicIamMember(q, 'host-dead-letter', { provider, project, topic: deadLetterTopic.name, role: 'roles/pubsub.publisher', member: o.hostMember }),
    // The Pub/Sub service agent forwards undeliverable messages: publish on the DLQ, subscribe on the source.
    new PubsubTopicIamMember(q, 'pubsub-agent-dead-letter', { provider, project, topic: deadLetterTopic.name, role: 'roles/pubsub.publisher', member: agent }),
    new PubsubSubscriptionIamMember(q, 'pubsub-agent-forward', { provider, project, subscription: jobsSubscription.name, role: 'roles/pubsub.subscriber', member: agent }),
  ];
  if (o.kmsKeyName) {
    grants.push(new KmsCryptoKeyIamMember(q, 'pubsub-agent-key', { provider, cryptoKeyId: o.kmsKeyName, role: 'roles/cloudkms.cryptoKeyEncrypterDecrypter', member: agent }));
  }

  return {
    resources: { jobsTopic, jobsSubscription, deadLetterTopic, deadLetterSubscription, project: projectData, grants },
    jobQueue: { kind: 'pubsub', topicId: jobsTopic.id },
    agentArgs: [
      '--queue', `pubsub://${project}/${jobsTopic.name}/${jobsSubscription.name}`,
      '--dead-letter-queue', `pubsub://${project}/${deadLetterTopic.name}`,
    ],
    grantEnqueue: (grantScope, id, member) => new PubsubTopicIamMember(grantScope, id, { provider, project, topic: jobsTopic.name, role: 'roles/pubsub.publisher', member }),
  };
}

export interface GcpQueueAutoscalerOptions {
  readonly provider: TerraformProvider;
  readonly project: string;
  readonly region: string;
  readonly name: string;
  /** The regional MIG (its id). */
  readonly group: string;
  readonly minNodes: number;
  readonly maxNodes: number;
  /** Queued messages one host takes: one per GPU (a host leases only what its free GPUs can run). */
  readonly messagesPerHost: number;
  readonly subscriptionName: string;
  readonly description: string;
}

/**
 * Scale out on backlog, never in: hosts leave by the agent's idle stop (deleteInstances through the
 * group, above nodes.min only), so a busy host is never removed by the autoscaler.
 */
export function buildGcpQueueAutoscaler(scope: Construct, o: GcpQueueAutoscalerOptions): ComputeRegionAutoscaler {
  return new ComputeRegionAutoscaler(scope, 'autoscaler', {
    provider: o.provider, project: o.project, region: o.region, name: o.name, target: o.group, description: o.description,
    autoscalingPolicy: {
      minReplicas: o.minNodes, maxReplicas: o.maxNodes, mode: 'ONLY_SCALE_OUT',
      metric: [{
        name: PUBSUB_BACKLOG_METRIC,
        // Per-group metric: exactly this subscription's series (AND and = only).
        filter: `resource.type = pubsub_subscription AND resource.labels.subscription_id = "${o.subscriptionName}"`,
        singleInstanceAssignment: o.messagesPerHost,
      }],
    },
  });
}
