/** TrainingPipeline on GCP: the spec as a GCS object, a Cloud Scheduler job that resizes the MIG from zero. */
import { Construct } from 'constructs';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import type { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object';
import { Errors } from '../../core/errors';
import { fitName } from '../../core/naming';
import { GcpTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { checkHostSchedule, TrainingPipelineBackend, TrainingPipelinePlan, TrainingPipelineTarget } from './plan';

export interface GcpTrainingPipelineResources {
  readonly specObject: StorageBucketObject;
  readonly job?: CloudSchedulerJob;
  /** The identity Cloud Scheduler calls the Compute API with; may only resize this cluster's group. */
  readonly serviceAccount?: ServiceAccount;
}

/** TrainingPipeline on GCP, for the dispatch table in index.ts. */
export const GCP_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 'gs://',
  checkSchedule: (pipeline, schedule, _timezone, cluster) => {
    checkHostSchedule(pipeline, schedule, cluster);
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
  const provider = target.provider;
  target.requireApis('storage.googleapis.com');

  const stored = cluster.storeObject(pipeline, 'spec', { key: plan.specKey, content: plan.specJson, contentType: 'application/json' });
  const specObject = stored.resource as StorageBucketObject;
  const specUri = stored.uri;


  if (!plan.schedule) return { specUri, resources: { specObject } };

  cluster.addStartupPipeline(specUri);
  // Cloud Scheduler calls the Compute API as its own service account.
  target.requireApis('cloudscheduler.googleapis.com', 'iam.googleapis.com', 'compute.googleapis.com');

  const scheduling = new Construct(pipeline, 'schedule');
  const serviceAccount = new ServiceAccount(scheduling, 'service-account', {
    provider, project: target.project, accountId: fitName(`${plan.name}-sch`, 30),
    displayName: `mlinfra ${plan.name} scheduler`, description: `${pipeline.node.path}: resizes the cluster's group on schedule`,
  });
  // The cluster's scale role, bound with a condition on its group only.
  cluster.grantScale({ grantPrincipal: { kind: 'gcp', email: serviceAccount.email, member: serviceAccount.member } });

  const job = new CloudSchedulerJob(scheduling, 'job', {
    provider, project: target.project, region: target.region, name: plan.name,
    description: `${pipeline.node.path}: ${plan.schedule.text}`,
    schedule: plan.schedule.cron('Cloud Scheduler'), timeZone: plan.schedule.timezone,
    attemptDeadline: '60s',
    httpTarget: {
      httpMethod: 'POST',
      // regionInstanceGroupManagers.resize: sets the group's target size.
      uri: `https://compute.googleapis.com/compute/v1/projects/${target.project}/regions/${target.region}/instanceGroupManagers/${group.name}/resize?size=${plan.startNodes}`,
      oauthToken: { serviceAccountEmail: serviceAccount.email, scope: 'https://www.googleapis.com/auth/cloud-platform' },
    },
    retryConfig: { retryCount: 5, minBackoffDuration: '30s', maxBackoffDuration: '600s', maxDoublings: 3, maxRetryDuration: '3600s' },
  });
  return { specUri, scheduleName: job.name, resources: { specObject, job, serviceAccount } };
}
