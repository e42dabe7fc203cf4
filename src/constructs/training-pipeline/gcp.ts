/**
 * TrainingPipeline on GCP: the spec as a GCS object, and a Cloud Scheduler job that publishes one
 * pipeline run to the cluster's Pub/Sub jobs topic per tick; exactly one agent leases and runs it, and
 * the group's autoscaler starts a host when none is up. Nothing resizes the group.
 * Sources:
 * - Pub/Sub target: `topic_name` is the full topic name (projects/P/topics/T) in the job's project, and
 *   `data` is the base64 message payload (scheduler/docs/reference/rest/v1/projects.locations.jobs#PubsubTarget).
 *   `attempt_deadline` is ignored for Pub/Sub targets, so it is not set.
 * - Cloud Scheduler publishes as its service agent, service-NUMBER@gcp-sa-cloudscheduler.iam.gserviceaccount.com
 *   (its agent role can publish to any topic of the project: scheduler/docs/access-control; projects that
 *   enabled the API before 2019-03-19 lack that role). We grant roles/pubsub.publisher on the jobs topic
 *   itself, so publishing never depends on a project-wide role.
 */
import { Fn, Token } from 'cdktf';
import { Construct } from 'constructs';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job';
import { DataGoogleProject } from '@cdktf/provider-google/lib/data-google-project';
import type { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object';
import { Errors } from '../../core/errors';
import type { Grant } from '../../core/grants';
import { GcpTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { TrainingPipelineBackend, TrainingPipelinePlan, TrainingPipelineTarget } from './plan';

export interface GcpTrainingPipelineResources {
  readonly specObject: StorageBucketObject;
  readonly job?: CloudSchedulerJob;
  /** The Cloud Scheduler service agent's publish grant on the cluster's jobs topic. */
  readonly publishGrant?: Grant;
}

/** The Cloud Scheduler service agent of a project (by number): the identity Pub/Sub targets publish as. */
export const cloudSchedulerAgent = (projectNumber: string): string => `service-${projectNumber}@gcp-sa-cloudscheduler.iam.gserviceaccount.com`;

/**
 * The queue message of one scheduled run, as the agent reads it (src/runtime-agent/queue/README.md):
 * exactly these keys in this order. `pipeline` is [a-z0-9-] and the spec URI has no quotes (TrainingPipeline
 * checks both), so the text needs no escaping.
 */
export function pipelineRunMessage(pipeline: string, specUri: string): string {
  return `{"v":1,"kind":"pipeline-run","pipeline":"${pipeline}","spec":"${specUri}"}`;
}

/**
 * The message as Cloud Scheduler's `data` (base64), encoded by Terraform: the spec URI holds the bucket's
 * name, known at apply. The quoted literal parts go in as raw strings (cdktf refuses bare quotes in
 * function arguments); the URI, which holds the reference, goes in as it is.
 */
export function pipelineRunData(pipeline: string, specUri: string): string {
  return Fn.base64encode(Fn.join('', fragmentsOf(pipelineRunMessage(pipeline, specUri))));
}

/** `text` as join() parts: literal text as raw strings, each reference as itself (no template inside the call). */
function fragmentsOf(text: string): string[] {
  // cdktf writes each unresolved value into a string as one ${TfToken[...]} marker.
  return text.split(/(\$\{TfToken\[[^\]]+\]\})/).filter((p) => p !== '')
    .map((p) => (Token.isUnresolved(p) ? p : Fn.rawString(p)));
}

/** TrainingPipeline on GCP, for the dispatch table in index.ts. */
export const GCP_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 'gs://',
  // A run is enqueued, not started by raising the group: any nodes.min works.
  checkSchedule: (pipeline, schedule) => {
    // Fail now, not at the job, when the rate has no cron form.
    schedule.toCron(pipeline.node.path, 'Cloud Scheduler');
  },
  // Hosts fetch the bigger cluster's token at every agent start.
  oomTokenFile: (cluster, big, clusterName) => cluster.addPeerToken(big, clusterName),
  build: (pipeline, target, cluster, plan) => buildGcpTrainingPipeline(pipeline, target as GcpTarget, cluster, plan),
};

export function buildGcpTrainingPipeline(pipeline: Construct, target: GcpTarget, cluster: IGpuCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: GcpTrainingPipelineResources } {
  const group = cluster.hostGroup;
  if (group.kind !== 'gcp-instance-group-manager') {
    throw Errors.invalid(pipeline, 'cluster', cluster.node.path, 'a GpuCluster on gcp (a managed instance group)', `has a ${group.kind}`);
  }
  const queue = cluster.jobQueue;
  if (plan.schedule && queue?.kind !== 'pubsub') {
    throw Errors.invalid(pipeline, 'cluster', cluster.node.path, 'a GpuCluster on gcp with its Pub/Sub jobs queue (jobQueue)', 'has no Pub/Sub jobs queue to enqueue scheduled runs on');
  }
  const provider = target.provider;
  target.requireApis('storage.googleapis.com');

  const stored = cluster.storeObject(pipeline, 'spec', { key: plan.specKey, content: plan.specJson, contentType: 'application/json' });
  const specObject = stored.resource as StorageBucketObject;
  const specUri = stored.uri;

  if (!plan.schedule || queue?.kind !== 'pubsub') return { specUri, resources: { specObject } };

  target.requireApis('cloudscheduler.googleapis.com', 'pubsub.googleapis.com', 'cloudresourcemanager.googleapis.com');
  const scheduling = new Construct(pipeline, 'schedule');
  // Waits for the enabled APIs (the target's aspect), so the service agent exists when it is granted.
  const project = new DataGoogleProject(scheduling, 'project', { provider, projectId: target.project });
  const agentEmail = cloudSchedulerAgent(project.number);
  const publishGrant = cluster.grantEnqueue({ grantPrincipal: { kind: 'gcp', email: agentEmail, member: `serviceAccount:${agentEmail}` } });

  const job = new CloudSchedulerJob(scheduling, 'job', {
    provider, project: target.project, region: target.region, name: plan.name,
    description: `${pipeline.node.path}: ${plan.schedule.text}`,
    schedule: plan.schedule.cron('Cloud Scheduler'), timeZone: plan.schedule.timezone,
    // One message per tick: {"v":1,"kind":"pipeline-run",...}, base64 as the API takes data.
    pubsubTarget: { topicName: queue.topicId, data: pipelineRunData(plan.name, specUri) },
    retryConfig: { retryCount: 5, minBackoffDuration: '30s', maxBackoffDuration: '600s', maxDoublings: 3, maxRetryDuration: '3600s' },
  });
  return { specUri, scheduleName: job.name, resources: { specObject, job, publishGrant } };
}
