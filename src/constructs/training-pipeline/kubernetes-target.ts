/**
 * TrainingPipeline's rules on Kubernetes, and the entry of its dispatch table. The CronJob and its
 * runner are built by kubernetes.ts (loaded with the Kubernetes provider on first use).
 */
import type { Construct } from 'constructs';
import { Errors } from '../../core/errors';
import { KubernetesTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { TrainingPipelineTarget } from './plan';

const backend = () => require('./kubernetes') as typeof import('./kubernetes');

/** Where job pods mount a file:// artifacts volume (gpu-cluster/kubernetes.ts ARTIFACTS_DIR). */
const VOLUME_DIR = '/var/lib/mlinfra/artifacts';

/**
 * `artifacts` must be where the cluster's job pods can write: the target's object store (its module and
 * credentials are mounted in every pod), or, without one, the cluster's single-node volume.
 */
function checkKubernetesArtifacts(pipeline: Construct, artifacts: string, cluster: IGpuCluster): void {
  const name = pipeline.node.id;
  const own = cluster.artifactsUri;
  const scheme = /^(s3|gs|file):\/\//.exec(own)?.[0];
  const bad = /\s/.test(artifacts) || artifacts.length <= (scheme?.length ?? 0) + 1;
  if (scheme === 'file://' || scheme === undefined) {
    if (/^(s3|gs):\/\//.test(artifacts)) {
      throw Errors.invalid(pipeline, 'artifacts', artifacts,
        `a file:// URI under ${VOLUME_DIR} (the cluster's single-node volume), or an s3:// or gs:// store given to the KubernetesTarget as artifactStore (uri, endpoint for S3-compatible stores, credentialsSecret): job pods mount only that store's credentials`,
        'is an object-store URI, but this cluster\'s target has no artifactStore');
    }
    if (!artifacts.startsWith(`file://${VOLUME_DIR}/`) || bad) {
      throw Errors.invalid(pipeline, 'artifacts', artifacts,
        `a file:// URI under ${VOLUME_DIR}, the volume job pods mount (single-node use), e.g. ${own}/pipelines/${name}; for several nodes give the KubernetesTarget an s3:// or gs:// artifactStore`);
    }
    return;
  }
  if (!artifacts.startsWith(scheme) || bad) {
    throw Errors.invalid(pipeline, 'artifacts', artifacts,
      `a ${scheme} URI in the KubernetesTarget's artifactStore (job pods carry its credentials), e.g. ${own}/pipelines/${name}`,
      artifacts.startsWith('file://') ? 'is a file:// URI, which no job pod shares with the runner when the target has an object store' : 'is not in the target\'s artifact store');
  }
}

/** TrainingPipeline on Kubernetes, for the dispatch table in index.ts. */
export const KUBERNETES_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 'file://',
  checkArtifacts: checkKubernetesArtifacts,
  checkSchedule: (pipeline, schedule, timezone) => {
    if (timezone !== 'UTC' && timezone !== 'Etc/UTC') {
      throw Errors.notOffered(pipeline, 'timezone', timezone,
        'a CronJob runs in the controller manager\'s time zone (the cron_job_v1 binding has no time_zone): write the cron in UTC', 'UTC');
    }
    // Fail now, not at the CronJob, when the rate has no cron form.
    schedule.toCron(pipeline.node.path, 'a Kubernetes CronJob');
  },
  // Runner pods mount the bigger cluster's token Secret here.
  oomTokenFile: (_cluster, _big, clusterName) => `${backend().ONOOM_TOKEN_DIR}/${clusterName}/token`,
  build: (pipeline, target, cluster, plan) => backend().buildKubernetesTrainingPipeline(pipeline, target as KubernetesTarget, cluster, plan),
};
