/** The cloud-neutral plan a GpuCluster hands its backend, and what a backend hands back. */
import type { KubernetesJobRuntime } from './props';
import { TerraformAsset } from 'cdktf';
import { Construct } from 'constructs';
import { HostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { AcceleratorShape } from '../../core/accelerators';
import { AwsPolicyStatement, GrantPrincipal, IGrantable, principalOn } from '../../core/grants';
import { SecretRef } from '../../core/secrets';
import type { Target } from '../../core/targets';
import type { ClusterJobQueue, GpuClusterAttributes, GpuClusterProps, NodeRange } from './props';

export type { NodeRange } from './props';

export interface GpuClusterPlan {
  /** Base name for cloud resources: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  readonly shape: AcceleratorShape;
  readonly nodes: NodeRange;
  readonly spot: boolean;
  readonly onDemandBaseNodes: number;
  /** 0 = never stop on idle. */
  readonly idleStopMinutes: number;
  readonly diskGiB: number;
  readonly agentPort: number;
  /** Who may reach the agent port; undefined = the target network's own CIDR block. */
  readonly allowedCidrs?: readonly string[];
  /** AWS AMI id or GCP image; undefined = the backend's GPU image default. */
  readonly machineImage?: string;
  /** Kubernetes: container image that runs the agent. */
  readonly agentImage: string;
  readonly nodeVersion: string;
  readonly nodeDistUrl: string;
  /** The built agent and the manifest of what it needs beside it. */
  /** The agent and, on AWS/GCP, its object-store module (loaded by the agent for s3:// or gs:// URIs). */
  readonly agentBundle: {
    readonly script: TerraformAsset;
    readonly storage?: { readonly asset: TerraformAsset; readonly fileName: string };
    /** Other files the agent loads beside it on this target's hosts (GpuClusterTargetRules.hostFiles). */
    readonly extras: readonly { readonly asset: TerraformAsset; readonly fileName: string }[];
  };
  /** Serve arguments every AWS/GCP host's agent takes, each with a leading space: the guards' flags. */
  readonly extraAgentArgs: string;
  /** Guards passed to every host's agent (issue 17 item 5); AWS and GCP hosts. */
  readonly guards: { readonly maxJobDurationSeconds: number; readonly deadManMinutes: number; readonly idleGpuUtilPercent: number };
  /** Token fetcher lines for peer clusters (addPeerToken), rendered at synth; AWS and GCP hosts. */
  readonly peerTokenFetches: string;
  /** A generated agent token: a reference resolved at apply time, written only to a secret store. */
  readonly agentToken: string;
}

/** What every backend provides: the cluster's public surface on its target. */
export interface GpuClusterBackend {
  readonly agentUrl: string;
  readonly agentTokenSecret: SecretRef;
  readonly grantPrincipal: GrantPrincipal;
  /** Where the cluster keeps artifacts and pipeline specs (s3://, gs://, or file:// on the pods' volume). */
  readonly artifactsUri: string;
  grantAgentAccess(grantee: IGrantable, grantId: string): void;
  grantArtifactsRead(grantee: IGrantable, grantId: string): void;
  grantArtifactsWrite(grantee: IGrantable, grantId: string): void;
  grantScale(grantee: IGrantable, grantId: string): void;
  /** The durable jobs queue hosts lease from (AWS, GCP). */
  readonly jobQueue?: ClusterJobQueue;
  /** Lets `grantee` enqueue into `jobQueue` only (AWS, GCP). */
  grantEnqueue?(grantee: IGrantable, grantId: string): void;
  /** The group of hosts, as schedulers and monitors name it. @default - kubernetes: `plan.name` in the target's namespace */
  readonly hostGroup?: HostGroup;
  /** Keeps an object in the cluster's store, created in `scope` (AWS, GCP). */
  storeObject?(scope: Construct, id: string, options: StoreObjectOptions): StoredObject;
  /** Kubernetes: how job pods run (IGpuCluster.jobRuntime). */
  readonly jobRuntime?: KubernetesJobRuntime;
}

/** What a target's backend checks before anything is built. */
export interface GpuClusterTargetRules {
  /** The explicit instance / machine type the catalog is overridden with, and the prop that set it. */
  readonly explicitType?: string;
  readonly explicitTypeProp: string;
  /** Object-store module the agent loads on this target's hosts (beside mlinfra-agent.js). */
  readonly storageFile?: string;
  /** Further files from the agent bundle the hosts need beside the agent (queue client, rollouts); each must exist. */
  readonly hostFiles?: readonly string[];
  /** Anything else the builder needs from the checks (Kubernetes settings). */
  readonly extra?: unknown;
}

/**
 * One target's part of GpuCluster (one file per target): its prop rules, checked before any resource
 * exists, and the builder of its resources.
 */
export interface GpuClusterTarget {
  /** Throws MlInfraError for props this target does not take or takes with its own limits. */
  checkProps(cluster: Construct, props: GpuClusterProps): GpuClusterTargetRules;
  build(cluster: Construct, target: Target, plan: GpuClusterPlan, rules: GpuClusterTargetRules): GpuClusterBackend & { readonly hostGroup: HostGroup; readonly resources: unknown };
  /** Set where hosts have no start-up script: what to say instead of adding a peer token (startupPipeline: unused, kept for existing tables). */
  readonly noHostScripts?: { readonly startupPipeline?: string; readonly peerToken: string };
  /** An existing cluster from its attributes, where the target supports importing one. */
  importCluster?(scope: Construct, target: Target, attrs: GpuClusterAttributes): GpuClusterBackend;
}

/** Adds statements for an AWS grantee, or explains why the grantee cannot take them. */
export function awsStatements(where: Construct, grantee: IGrantable, grantId: string, statements: AwsPolicyStatement[], method: string): void {
  principalOn(where, method, grantee, 'aws', 'the cluster').addToPolicy(grantId, statements);
}
