/** The cloud-neutral plan a GpuCluster hands its backend, and what a backend hands back. */
import { TerraformAsset } from 'cdktf';
import { AcceleratorShape } from '../../core/accelerators';
import { AwsPolicyStatement, GrantPrincipal, IGrantable } from '../../core/grants';
import { SecretRef } from '../../core/secrets';

export interface NodeRange {
  readonly min: number;
  readonly max: number;
}

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
  readonly agentBundle: { readonly script: TerraformAsset; readonly storage?: { readonly asset: TerraformAsset; readonly fileName: string } };
  /** Serve arguments added after construction (startup pipelines), rendered at synth; AWS and GCP hosts. */
  readonly extraAgentArgs: string;
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
}

/** Adds statements for an AWS grantee, or explains why the grantee cannot take them. */
export function awsStatements(grantee: IGrantable, grantId: string, statements: AwsPolicyStatement[], what: string): void {
  const p = grantee.grantPrincipal;
  if (p.kind !== 'aws') throw new Error(`${what}: grantee is on ${p.kind}, the cluster on aws; grants do not cross clouds`);
  p.addToPolicy(grantId, statements);
}
