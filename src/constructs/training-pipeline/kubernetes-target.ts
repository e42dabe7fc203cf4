/**
 * TrainingPipeline's rules on Kubernetes, and the entry of its dispatch table. The CronJob and its
 * runner are built by kubernetes.ts (loaded with the Kubernetes provider on first use).
 */
import { Errors } from '../../core/errors';
import { KubernetesTarget } from '../../core/targets';
import { TrainingPipelineTarget } from './plan';

const backend = () => require('./kubernetes') as typeof import('./kubernetes');

/** TrainingPipeline on Kubernetes, for the dispatch table in index.ts. */
export const KUBERNETES_TRAINING_PIPELINE: TrainingPipelineTarget = {
  artifactsScheme: 'file://',
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
