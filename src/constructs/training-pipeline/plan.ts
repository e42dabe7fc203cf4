/** The cloud-neutral plan a TrainingPipeline hands its backend, and what a backend hands back. */
import type { PipelineSpec } from '../../contracts/pipeline-spec';
import type { Construct } from 'constructs';
import type { IGpuCluster } from '../gpu-cluster';
import type { Schedule } from './schedule';
import type { Target } from '../../core/targets';
import { Errors } from '../../core/errors';

/** One target's part of TrainingPipeline (one file per target): its rules and its builder. */
export interface TrainingPipelineTarget {
  /** The URI scheme a pipeline's `artifacts` must use on this target (what its hosts read and write). */
  readonly artifactsScheme: string;
  /** This target's own rule on an explicit `artifacts` URI, in place of the scheme check. */
  checkArtifacts?(pipeline: Construct, artifacts: string, cluster: IGpuCluster): void;
  /** This target's rules on a schedule; throws before any resource exists. */
  checkSchedule(pipeline: Construct, schedule: Schedule, timezone: string, cluster: IGpuCluster): void;
  /** Where a step's onOom cluster's token is read from, arranging for it to be there. */
  oomTokenFile(cluster: IGpuCluster, big: IGpuCluster, clusterName: string): string;
  build(pipeline: Construct, target: Target, cluster: IGpuCluster, plan: TrainingPipelinePlan): TrainingPipelineBackend & { readonly resources: unknown };
}

/** AWS and GCP: hosts run the pipeline when they start, so a schedule needs a group that goes to zero. */
export function checkHostSchedule(pipeline: Construct, schedule: Schedule, cluster: IGpuCluster): void {
  if (cluster.nodes.min > 0) {
    throw Errors.conflict(pipeline, 'schedule', schedule.toString(), `a cluster with nodes.min 0 (here ${cluster.nodes.min}), or no schedule and \`mlinfra-agent run-pipeline\``,
      `starts the pipeline by starting hosts from zero, but cluster ${cluster.node.path} keeps ${cluster.nodes.min} up`);
  }
}

export interface TrainingPipelinePlan {
  /** Pipeline name: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  readonly spec: PipelineSpec;
  /** The spec as stored: canonical JSON (sorted keys), Terraform references unresolved. */
  readonly specJson: string;
  /** The stored spec's id: first 16 hex digits of the SHA-256 of the synthesized spec (contracts `specId`). */
  readonly specId: string;
  /** Object key (AWS, GCP) of the spec inside the cluster's bucket. */
  readonly specKey: string;
  /** Unset: no schedule, the pipeline runs only when started by hand. */
  readonly schedule?: {
    /** EventBridge Scheduler expression. */
    readonly aws: string;
    /** 5-field cron for Cloud Scheduler and CronJobs; undefined when the rate has none. */
    readonly cron: (target: string) => string;
    readonly timezone: string;
    readonly text: string;
  };
  /** Nodes a schedule asks for: max(1, nodes.min). */
  readonly startNodes: number;
  /** Clusters steps escalate to on OOM, by the name used in the spec. */
  readonly oomClusters: ReadonlyMap<string, IGpuCluster>;
  /** Upper bound of one run (seconds), when every run step has a timeout. */
  readonly maxRunSeconds?: number;
}

/** What every backend provides. */
export interface TrainingPipelineBackend {
  readonly specUri: string;
  /** The scheduler resource's name, when scheduled. */
  readonly scheduleName?: string;
}
