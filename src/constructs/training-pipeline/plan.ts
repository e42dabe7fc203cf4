/** The cloud-neutral plan a TrainingPipeline hands its backend, and what a backend hands back. */
import type { PipelineSpec } from '../../runtime-agent/pipeline-spec';
import { IGpuCluster } from '../gpu-cluster';
import type { AwsGpuClusterResources } from '../gpu-cluster/aws';
import type { GcpGpuClusterResources } from '../gpu-cluster/gcp';
import type { KubernetesGpuClusterResources } from '../gpu-cluster/kubernetes';

/**
 * The cluster a pipeline runs on (a GpuCluster): its public surface, the escape hatch of its target
 * (where the spec object and the group to scale live), and the hook that makes hosts started from
 * zero run the pipeline.
 */
export interface IPipelineCluster extends IGpuCluster {
  readonly aws?: AwsGpuClusterResources;
  readonly gcp?: GcpGpuClusterResources;
  readonly kubernetes?: KubernetesGpuClusterResources;
  /** AWS/GCP: hosts start the agent with `serve --pipeline-on-start <specUri>`. */
  addStartupPipeline(specUri: string): void;
  /** AWS/GCP: hosts fetch `peer`'s agent token; returns the file it lands in. */
  addPeerToken(peer: IGpuCluster, name: string): string;
}

export interface TrainingPipelinePlan {
  /** Pipeline name: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  readonly spec: PipelineSpec;
  /** The spec as stored: canonical JSON (sorted keys), Terraform references unresolved. */
  readonly specJson: string;
  /** First 16 hex digits of the SHA-256 of the synthesized spec. */
  readonly specHash: string;
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
  readonly oomClusters: ReadonlyMap<string, IPipelineCluster>;
  /** Upper bound of one run (seconds), when every run step has a timeout. */
  readonly maxRunSeconds?: number;
}

/** What every backend provides. */
export interface TrainingPipelineBackend {
  readonly specUri: string;
  /** The scheduler resource's name, when scheduled. */
  readonly scheduleName?: string;
}
