/** TrainingPipeline on GCP: the spec as a GCS object, a Cloud Scheduler job that resizes the MIG from zero. */
import { Construct } from 'constructs';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object';
import { fitName } from '../../core/naming';
import { GcpTarget } from '../../core/targets';
import { IPipelineCluster, TrainingPipelineBackend, TrainingPipelinePlan } from './plan';

export interface GcpTrainingPipelineResources {
  readonly specObject: StorageBucketObject;
  readonly job?: CloudSchedulerJob;
  /** The identity Cloud Scheduler calls the Compute API with; may only resize this cluster's group. */
  readonly serviceAccount?: ServiceAccount;
}

/** Fits a service account id (6-30 characters) from a name, keeping the start. */
export function buildGcpTrainingPipeline(pipeline: Construct, target: GcpTarget, cluster: IPipelineCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: GcpTrainingPipelineResources } {
  const res = cluster.gcp;
  if (!res) throw new Error(`${pipeline.node.path}: cluster on gcp has no gcp resources`);
  const provider = target.provider;
  target.requireApis('storage.googleapis.com');

  const specObject = new StorageBucketObject(pipeline, 'spec', {
    provider, bucket: res.bucket.name, name: plan.specKey, content: plan.specJson, contentType: 'application/json',
  });
  const specUri = `gs://${res.bucket.name}/${plan.specKey}`;


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

  const mig = res.instanceGroupManager;
  const job = new CloudSchedulerJob(scheduling, 'job', {
    provider, project: target.project, region: target.region, name: plan.name,
    description: `${pipeline.node.path}: ${plan.schedule.text}`,
    schedule: plan.schedule.cron('Cloud Scheduler'), timeZone: plan.schedule.timezone,
    attemptDeadline: '60s',
    httpTarget: {
      httpMethod: 'POST',
      // regionInstanceGroupManagers.resize: sets the group's target size.
      uri: `https://compute.googleapis.com/compute/v1/projects/${target.project}/regions/${target.region}/instanceGroupManagers/${mig.name}/resize?size=${plan.startNodes}`,
      oauthToken: { serviceAccountEmail: serviceAccount.email, scope: 'https://www.googleapis.com/auth/cloud-platform' },
    },
    retryConfig: { retryCount: 5, minBackoffDuration: '30s', maxBackoffDuration: '600s', maxDoublings: 3, maxRetryDuration: '3600s' },
  });
  return { specUri, scheduleName: job.name, resources: { specObject, job, serviceAccount } };
}
