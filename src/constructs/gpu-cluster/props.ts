/** GpuCluster's props, its interface as other constructs see it, and what importing one takes. */
import { IConstruct } from 'constructs';
import { HostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { AcceleratorName, AcceleratorShape } from '../../core/accelerators';
import { Grant, IGrantable } from '../../core/grants';
import { SecretRef } from '../../core/secrets';
import { Target } from '../../core/targets';
import type { GatewayConfig } from '../../runtime-agent/k8s/objects';
import { KubernetesClusterOptions } from './kubernetes-options';

export interface NodeRange {
  readonly min: number;
  readonly max: number;
}

export interface GpuClusterProps {
  /** Where the cluster runs. */
  readonly target: Target;
  /** GPU model, from the accelerator catalog. */
  readonly accelerator: AcceleratorName;
  /**
   * GPUs per node.
   * @default - the smallest count the target offers for `accelerator`
   */
  readonly acceleratorsPerNode?: number;
  /**
   * Node count bounds. `min: 0` scales to zero between jobs.
   * @default { min: 0, max: 1 }
   */
  readonly nodes?: NodeRange;
  /**
   * Run on spot / preemptible capacity. The agent gives jobs SIGTERM on a preemption notice.
   * AWS: mixed instances policy, price-capacity-optimized; GCP: SPOT provisioning; Kubernetes: GKE spot nodes.
   * @default false
   */
  readonly spot?: boolean;
  /**
   * AWS, with `spot`: nodes always bought on demand before any spot node.
   * @default 0
   */
  readonly onDemandBaseNodes?: number;
  /**
   * Minutes with nothing queued or running after which a host removes itself (never below `nodes.min`).
   * 0 keeps hosts up.
   * @default 30
   */
  readonly idleStopMinutes?: number;
  /**
   * AWS: an explicit instance type; overrides the catalog (the GPU count is taken on trust).
   * @default - the catalog's type for accelerator x acceleratorsPerNode
   */
  readonly instanceType?: string;
  /**
   * GCP: an explicit machine type; overrides the catalog.
   * @default - the catalog's type for accelerator x acceleratorsPerNode
   */
  readonly machineType?: string;
  /**
   * Root (AWS, GCP) or data volume (Kubernetes) size.
   * @default 200
   */
  readonly diskGiB?: number;
  /**
   * Port the agent listens on.
   * @default 7070
   */
  readonly agentPort?: number;
  /**
   * IPv4 CIDR blocks allowed to reach the agent port (AWS security group, GCP firewall, Kubernetes NetworkPolicy).
   * @default - the target network's own CIDR block (AWS, GCP); pods labelled `mlinfra.dev/agent-client: "true"` (Kubernetes)
   */
  readonly allowedCidrs?: string[];
  /**
   * AWS AMI id or GCP image for hosts. Must carry NVIDIA drivers and the cloud's CLI (aws / gcloud).
   * @default - AWS: the Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) from its SSM public parameter;
   *            GCP: the Deep Learning VM common-cu124 image family
   */
  readonly machineImage?: string;
  /**
   * Kubernetes: the image agent pods run; needs Node.js 22.13+ (for `node:sqlite`).
   * @default 'node:24.18.1-bookworm-slim' (Node.js 24 LTS)
   */
  readonly agentImage?: string;
  /**
   * Node.js version installed on AWS/GCP hosts (22.13 or later: the agent's journal uses `node:sqlite`).
   * The default's tarballs are pinned by sha256; another version is checked against its release's
   * SHASUMS256.txt.
   * @default '24.18.1' (Node.js 24 LTS)
   */
  readonly nodeVersion?: string;
  /**
   * Where hosts download Node.js from (a mirror of nodejs.org/dist, with SHASUMS256.txt).
   * @default 'https://nodejs.org/dist'
   */
  readonly nodeDistUrl?: string;
  /**
   * Directory holding the built agent (`mlinfra-agent.js`, `storage-s3.js`, `storage-gcs.js`).
   * @default - this package's dist/agent, written by `npm run build:agent`
   */
  readonly agentBundleDir?: string;
  /**
   * Kubernetes only: the image jobs run in (CUDA + PyTorch by default) and the Kueue queue.
   * @default - DEFAULT_JOB_IMAGE, and a ResourceFlavor, ClusterQueue and LocalQueue for this cluster
   */
  readonly kubernetes?: KubernetesClusterOptions;
  /**
   * AWS, GCP: longest a job may run (seconds) before the agent stops it (SIGTERM, then SIGKILL after
   * the grace period); a job's own `maxDurationSeconds` is capped by it. Agent flag `--max-duration-seconds`.
   * @default 259200 (72 hours)
   */
  readonly maxJobDurationSeconds?: number;
  /**
   * AWS, GCP: a host that cannot reach its queue for this many minutes while no job runs stops itself
   * (through the idle stop), so a host cut off from its work stops billing. 0 disables. Agent flag `--dead-man-minutes`.
   * @default 30
   */
  readonly deadManMinutes?: number;
  /**
   * AWS, GCP: GPU utilisation (%) under which a running job counts as idle for the idle window: the agent
   * reports it as hung (metric and log), and a host whose GPUs sit idle with nothing queued leaves.
   * 0 counts only the queue. Agent flag `--idle-gpu-util-percent`.
   * @default 5
   */
  readonly idleGpuUtilPercent?: number;
}

/**
 * The cluster's durable jobs queue (issue 17; src/runtime-agent/queue/README.md): what submits and
 * schedules enqueue into, and every host leases from.
 */
export type ClusterJobQueue =
  | {
    readonly kind: 'sqs';
    /** The jobs queue's URL (what the agent and SendMessage take) and ARN (what policies name). */
    readonly url: string;
    readonly arn: string;
    /** The KMS key the queue is encrypted with: senders need kms:GenerateDataKey and kms:Decrypt on it. */
    readonly keyArn?: string;
  }
  | {
    readonly kind: 'pubsub';
    /** `projects/PROJECT/topics/TOPIC`: what Cloud Scheduler publishes to. */
    readonly topicId: string;
  };

/**
 * A GPU cluster as other constructs see it: plain attributes and capabilities, never provider
 * resources. A GpuCluster and an imported one (`GpuCluster.fromGpuClusterAttributes`) both have it.
 */
/** How a Kubernetes cluster's job pods run: the gateway's configuration, plain values. */
export type KubernetesJobRuntime = Omit<GatewayConfig, 'jobServiceAccount' | 'namespace'>;

export interface IGpuCluster extends IGrantable, IConstruct {
  /** What MonitoringStack watches it as. */
  readonly watchKind: 'gpu-cluster';
  readonly target: Target;
  /** The agent's HTTP address (an internal load balancer or Service: reachable inside the network). */
  readonly agentUrl: string;
  /** Where the agent token is kept: a reference, never the value. */
  readonly agentTokenSecret: SecretRef;
  readonly accelerator: AcceleratorShape;
  readonly nodes: NodeRange;
  readonly artifactsUri: string;
  /** The group of hosts (ASG, MIG, Kubernetes workload): what a schedule resizes and host metrics name. */
  readonly hostGroup: HostGroup;
  /** The group's name, as host metrics carry it (`ClusterName`, `mlinfra_cluster`). */
  readonly groupName: string;
  /**
   * Kubernetes: how this cluster's job pods run (image, bundle ConfigMap, artifact store, queue), plain
   * values for a pod that runs the agent beside them (a pipeline runner). Undefined elsewhere.
   */
  readonly jobRuntime?: KubernetesJobRuntime;
  /** Lets `grantee` read the agent token, and so call the agent's API. */
  grantAgentAccess(grantee: IGrantable): Grant;
  grantArtifactsRead(grantee: IGrantable): Grant;
  grantArtifactsWrite(grantee: IGrantable): Grant;
  /** Lets `grantee` change the number of nodes. */
  grantScale(grantee: IGrantable): Grant;
  /**
   * Keeps an object in the cluster's store (its bucket, under its key), created in `scope` with id
   * `id`. AWS and GCP.
   */
  storeObject(scope: IConstruct, id: string, options: StoreObjectOptions): StoredObject;
  /**
   * AWS, GCP: the durable queue hosts lease jobs from; a pipeline schedule enqueues its runs here.
   * Undefined on Kubernetes (Kueue queues the Jobs).
   */
  readonly jobQueue?: ClusterJobQueue;
  /** AWS, GCP: lets `grantee` enqueue into `jobQueue` (SQS SendMessage, Pub/Sub publish) and nothing else. */
  grantEnqueue(grantee: IGrantable): Grant;
  /** AWS/GCP: hosts fetch `peer`'s agent token at every agent start; returns the file it lands in. */
  addPeerToken(peer: IGpuCluster, name: string): string;
}

/** An existing cluster's attributes, for `GpuCluster.fromGpuClusterAttributes` (AWS). */
export interface GpuClusterAttributes {
  /** Where the cluster runs. */
  readonly target: Target;
  readonly accelerator: AcceleratorName;
  /** @default - the smallest count the target offers for `accelerator` */
  readonly acceleratorsPerNode?: number;
  readonly nodes: NodeRange;
  /** The agent's HTTP address. */
  readonly agentUrl: string;
  readonly agentTokenSecret: SecretRef;
  /** Name of the cluster's bucket (artifacts and pipeline specs). */
  readonly bucketName: string;
  /** The host group's name (ASG). */
  readonly groupName: string;
  /** AWS: the hosts' role, the bucket's KMS key and the group's ARN. */
  readonly aws?: {
    readonly hostRoleArn: string;
    readonly hostRoleName: string;
    readonly kmsKeyArn: string;
    readonly autoscalingGroupArn: string;
    /** CloudWatch dimensions of the agent's NLB, for the agent-down alarm. @default - no agent-down alarm data */
    readonly targetGroupArnSuffix?: string;
    readonly loadBalancerArnSuffix?: string;
    /** The jobs queue (SQS) the cluster's hosts lease from: URL and ARN. @default - no jobQueue: pipelines cannot be scheduled on it */
    readonly jobsQueueUrl?: string;
    readonly jobsQueueArn?: string;
  };
}
