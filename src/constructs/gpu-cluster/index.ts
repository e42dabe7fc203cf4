import { AssetType, Lazy, TerraformAsset, TerraformOutput, Token } from 'cdktf';
import { Construct } from 'constructs';
import { existsSync } from 'fs';
import { join } from 'path';
import { AcceleratorName, AcceleratorShape, offeredCounts, resolveAccelerator, isAcceleratorName, ACCELERATOR_NAMES } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { recordGrant } from '../../core/graph';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { resourceName } from '../../core/naming';
import { packageRoot } from '../../core/package-root';
import { generatedSecret, SecretRef } from '../../core/secrets';
import { AwsTarget, GcpTarget, isCidr, KubernetesTarget, Target, targetKind } from '../../core/targets';
import { peerTokenFile, renderPeerTokenFetches } from './bootstrap';
import { GpuClusterBackend, GpuClusterPlan, NodeRange } from './plan';
import type { AwsGpuClusterResources } from './aws';
import type { GcpGpuClusterResources } from './gcp';
import type { KubernetesGpuClusterResources } from './kubernetes';
import { KubernetesClusterOptions, KubernetesClusterSettings, kubernetesClusterSettings } from './kubernetes-options';
import { lazyFunction } from '../../core/lazy';
import { DEFAULT_AGENT_IMAGE, DEFAULT_NODE_VERSION } from './node-runtime';

// Backends (and their provider packages) load when a construct first uses their target.
const buildAwsGpuCluster = lazyFunction(() => (require('./aws') as typeof import('./aws')).buildAwsGpuCluster);
const buildGcpGpuCluster = lazyFunction(() => (require('./gcp') as typeof import('./gcp')).buildGcpGpuCluster);
const buildKubernetesGpuCluster = lazyFunction(() => (require('./kubernetes') as typeof import('./kubernetes')).buildKubernetesGpuCluster);

export { NodeRange } from './plan';

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
}

/** A GPU cluster as other constructs see it. */
export interface IGpuCluster extends IGrantable {
  readonly target: Target;
  /** The agent's HTTP address (an internal load balancer or Service: reachable inside the network). */
  readonly agentUrl: string;
  /** Where the agent token is kept: a reference, never the value. */
  readonly agentTokenSecret: SecretRef;
  readonly accelerator: AcceleratorShape;
  readonly nodes: NodeRange;
  readonly artifactsUri: string;
  /** Lets `grantee` read the agent token, and so call the agent's API. */
  grantAgentAccess(grantee: IGrantable): void;
  grantArtifactsRead(grantee: IGrantable): void;
  grantArtifactsWrite(grantee: IGrantable): void;
  /** Lets `grantee` change the number of nodes (scale from zero for a schedule). */
  grantScale(grantee: IGrantable): void;
}

const DEFAULTS = {
  nodes: { min: 0, max: 1 },
  idleStopMinutes: 30,
  diskGiB: 200,
  agentPort: 7070,
  agentImage: DEFAULT_AGENT_IMAGE,
  nodeVersion: DEFAULT_NODE_VERSION,
  nodeDistUrl: 'https://nodejs.org/dist',
};
const MAX_NODES = 1000;

/**
 * GPU hosts that scale with work, each running mlinfra-agent (the job runner) installed at boot.
 * - AWS: launch template (GPU AMI, IMDSv2, encrypted root), autoscaling group (spot through a mixed
 *   instances policy), IAM role, security groups, internal NLB, KMS key, bucket, Secrets Manager token.
 * - GCP: instance template (guest accelerator, SPOT, shielded VM), regional MIG, internal load balancer,
 *   service account, firewall, bucket, Secret Manager token.
 * - Kubernetes: agent pods requesting `nvidia.com/gpu` with the catalog's node selectors and tolerations,
 *   Services, NetworkPolicy, RBAC and a token Secret.
 *
 * @example
 * const cluster = new GpuCluster(stack, 'train', {
 *   target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true });
 * new TerraformOutput(stack, 'agent-url', { value: cluster.agentUrl });
 */
export class GpuCluster extends Construct implements IGpuCluster {
  public readonly target: Target;
  public readonly accelerator: AcceleratorShape;
  public readonly nodes: NodeRange;
  public readonly spot: boolean;
  public readonly idleStopMinutes: number;
  public readonly agentUrl: string;
  public readonly agentTokenSecret: SecretRef;
  public readonly artifactsUri: string;
  public readonly grantPrincipal: GrantPrincipal;
  /** Escape hatches: the resources created on each target (only the one for `target` is set). */
  public readonly aws?: AwsGpuClusterResources;
  public readonly gcp?: GcpGpuClusterResources;
  public readonly kubernetes?: KubernetesGpuClusterResources;
  private readonly backend: GpuClusterBackend;
  private readonly startupPipelines: string[] = [];
  private readonly peers: { name: string; ref: SecretRef }[] = [];
  private grants = 0;
  private kubernetesSettings?: KubernetesClusterSettings;

  constructor(scope: Construct, id: string, props: GpuClusterProps) {
    super(scope, id);
    const plan = this.plan(props);
    this.target = props.target;
    this.accelerator = plan.shape;
    this.nodes = plan.nodes;
    this.spot = plan.spot;
    this.idleStopMinutes = plan.idleStopMinutes;

    const t = props.target;
    let backend: GpuClusterBackend & { resources: unknown };
    if (t instanceof AwsTarget) {
      const b = buildAwsGpuCluster(this, t, plan);
      this.aws = b.resources;
      backend = b;
    } else if (t instanceof GcpTarget) {
      const b = buildGcpGpuCluster(this, t, plan);
      this.gcp = b.resources;
      backend = b;
    } else {
      const b = buildKubernetesGpuCluster(this, t as KubernetesTarget, plan, this.kubernetesSettings!);
      this.kubernetes = b.resources;
      backend = b;
    }
    this.backend = backend;
    this.agentUrl = backend.agentUrl;
    this.agentTokenSecret = backend.agentTokenSecret;
    this.artifactsUri = backend.artifactsUri;
    this.grantPrincipal = backend.grantPrincipal;

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'agent-url', { value: this.agentUrl, description: `${this.node.path}: mlinfra-agent API` });
    new TerraformOutput(outputs, 'artifacts-uri', { value: this.artifactsUri, description: `${this.node.path}: artifacts and pipeline specs` });
    new TerraformOutput(outputs, 'agent-token-secret', {
      value: secretRefText(this.agentTokenSecret),
      description: `${this.node.path}: where the agent token is kept (a reference, not the token)`,
    });
  }

  /**
   * Runs the pipeline spec at `specUri` (s3://, gs://) when a host starts, so a schedule that raises
   * the group from zero gets its run. The agent skips a pipeline whose last run is recent, so agent
   * restarts do not repeat it. AWS and GCP; on Kubernetes a CronJob runs pipelines.
   */
  public addStartupPipeline(specUri: string): void {
    if (this.target instanceof KubernetesTarget) {
      throw Errors.conflict(this, 'addStartupPipeline', specUri, 'aws or gcp clusters (Kubernetes pipelines run from a CronJob)', 'is not supported on kubernetes');
    }
    if (!Token.isUnresolved(specUri) && !/^(s3|gs):\/\/[^\s'"$`\\]+$/.test(specUri)) {
      throw Errors.invalid(this, 'addStartupPipeline', specUri, 'an s3:// or gs:// object URI without spaces or quotes');
    }
    this.startupPipelines.push(specUri);
  }

  /**
   * Lets this cluster's hosts submit to `peer`'s agent (a bigger cluster that takes steps which ran
   * out of memory): grants read of its token and fetches it at every agent start into
   * `/run/mlinfra/clusters/<name>/token`. AWS and GCP, peers on the same target.
   */
  public addPeerToken(peer: IGpuCluster, name: string): string {
    if (this.target instanceof KubernetesTarget) {
      throw Errors.conflict(this, 'addPeerToken', name, 'aws or gcp clusters (Kubernetes pods mount peer Secrets)', 'is not supported on kubernetes');
    }
    if (peer.target !== this.target) {
      throw Errors.conflict(this, 'addPeerToken', (peer as unknown as Construct).node?.path ?? name, `a cluster on this cluster's target (${this.target.node.path})`, 'names a cluster on another target');
    }
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) throw Errors.invalid(this, 'addPeerToken', name, 'a name of lower-case letters, digits and -');
    if (!this.peers.some((p) => p.name === name)) {
      peer.grantAgentAccess(this);
      this.peers.push({ name, ref: peer.agentTokenSecret });
    }
    return peerTokenFile(name);
  }

  public grantAgentAccess(grantee: IGrantable): void {
    this.backend.grantAgentAccess(grantee, this.nextGrantId(grantee, 'agent'));
  }
  public grantArtifactsRead(grantee: IGrantable): void {
    this.backend.grantArtifactsRead(grantee, this.nextGrantId(grantee, 'artifacts-read'));
  }
  public grantArtifactsWrite(grantee: IGrantable): void {
    this.backend.grantArtifactsWrite(grantee, this.nextGrantId(grantee, 'artifacts-write'));
  }
  public grantScale(grantee: IGrantable): void {
    this.backend.grantScale(grantee, this.nextGrantId(grantee, 'scale'));
  }

  /** A unique id for one grant; records the grant for the stack picture. */
  private nextGrantId(grantee: IGrantable, kind: string): string {
    recordGrant(this, grantee, kind);
    this.grants += 1;
    return `${resourceName(this, { maxLength: 40 })}-${kind}-${this.grants}`;
  }

  /** Validates props and resolves the cloud-neutral plan; throws before any resource exists. */
  private plan(props: GpuClusterProps): GpuClusterPlan {
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target and accelerator');
    const kind = targetKind(this, 'target', props.target);
    if (props.accelerator === undefined) throw Errors.missing(this, 'accelerator', `one of ${ACCELERATOR_NAMES.join(', ')}`);
    if (!isAcceleratorName(props.accelerator)) throw Errors.unknown(this, 'accelerator', props.accelerator, ACCELERATOR_NAMES);

    if (props.instanceType !== undefined && kind !== 'aws') {
      throw Errors.conflict(this, 'instanceType', props.instanceType, kind === 'gcp' ? 'machineType on a gcp target' : 'no explicit type on kubernetes', `applies to aws targets only, not ${kind}`);
    }
    if (props.machineType !== undefined && kind !== 'gcp') {
      throw Errors.conflict(this, 'machineType', props.machineType, kind === 'aws' ? 'instanceType on an aws target' : 'no explicit type on kubernetes', `applies to gcp targets only, not ${kind}`);
    }
    if (props.instanceType !== undefined && !/^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9-]+$/.test(props.instanceType)) {
      throw Errors.invalid(this, 'instanceType', props.instanceType, 'an EC2 instance type such as g5.2xlarge');
    }
    if (props.machineType !== undefined && !/^[a-z][a-z0-9]*-[a-z0-9-]+$/.test(props.machineType)) {
      throw Errors.invalid(this, 'machineType', props.machineType, 'a Compute Engine machine type such as a2-highgpu-1g');
    }
    const explicitType = props.instanceType ?? props.machineType;
    const count = props.acceleratorsPerNode ?? offeredCounts(props.accelerator, kind)[0] ?? 1;
    const shape = resolveAccelerator(kind, props.accelerator, count, {
      where: this.node.path, explicitType, explicitTypeProp: kind === 'aws' ? 'instanceType' : 'machineType',
    });

    const nodes = props.nodes ?? DEFAULTS.nodes;
    const int = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
    if (!int(nodes.min) || nodes.min < 0 || nodes.min > MAX_NODES) {
      throw Errors.outOfRange(this, 'nodes.min', nodes.min, `an integer from 0 to ${MAX_NODES}`);
    }
    // A Terraform reference (e.g. a variable) is checked by the provider at plan time; AWS only,
    // where it is the group's max_size and nothing else is computed from it.
    const tokenMax = Token.isUnresolved(nodes.max);
    if (tokenMax && kind !== 'aws') {
      throw Errors.invalid(this, 'nodes.max', nodes.max, `an integer from 1 to ${MAX_NODES} (a Terraform reference is supported on aws targets only)`, 'is a Terraform reference');
    }
    if (!tokenMax && (!int(nodes.max) || nodes.max < 1 || nodes.max > MAX_NODES)) {
      throw Errors.outOfRange(this, 'nodes.max', nodes.max, `an integer from 1 to ${MAX_NODES}`);
    }
    if (!tokenMax && nodes.max < nodes.min) {
      throw Errors.conflict(this, 'nodes.max', nodes.max, `an integer >= nodes.min (${nodes.min})`, 'is below nodes.min');
    }

    const spot = props.spot ?? false;
    if (typeof spot !== 'boolean') throw Errors.invalid(this, 'spot', spot, 'true or false');
    const onDemandBaseNodes = props.onDemandBaseNodes ?? 0;
    if (props.onDemandBaseNodes !== undefined) {
      if (!spot) throw Errors.conflict(this, 'onDemandBaseNodes', props.onDemandBaseNodes, 'set only with spot: true', 'has no effect without spot');
      if (kind !== 'aws') throw Errors.conflict(this, 'onDemandBaseNodes', props.onDemandBaseNodes, 'aws targets only', `is not supported on ${kind}`);
      if (!int(onDemandBaseNodes) || onDemandBaseNodes < 0 || (!tokenMax && onDemandBaseNodes > nodes.max)) {
        throw Errors.outOfRange(this, 'onDemandBaseNodes', onDemandBaseNodes, `an integer from 0 to nodes.max (${nodes.max})`);
      }
    }
    if (spot && props.target instanceof KubernetesTarget && props.target.gpuNodeLabels !== 'gke') {
      throw Errors.conflict(this, 'spot', spot,
        `spot on kubernetes with a target whose gpuNodeLabels is 'gke' (spot node pools are chosen by cloud.google.com/gke-spot); here it is '${props.target.gpuNodeLabels}'`,
        'cannot choose spot nodes on this kubernetes target');
    }

    const idleStopMinutes = props.idleStopMinutes ?? DEFAULTS.idleStopMinutes;
    if (!int(idleStopMinutes) || idleStopMinutes < 0 || idleStopMinutes > 10080) {
      throw Errors.outOfRange(this, 'idleStopMinutes', props.idleStopMinutes, 'an integer number of minutes from 0 (never) to 10080 (7 days)');
    }
    const diskGiB = props.diskGiB ?? DEFAULTS.diskGiB;
    if (!int(diskGiB) || diskGiB < 50 || diskGiB > 16384) {
      throw Errors.outOfRange(this, 'diskGiB', props.diskGiB, 'an integer from 50 to 16384 (GPU images alone take ~40 GiB)');
    }
    const agentPort = props.agentPort ?? DEFAULTS.agentPort;
    if (!int(agentPort) || agentPort < 1024 || agentPort > 65535) {
      throw Errors.outOfRange(this, 'agentPort', props.agentPort, 'an unprivileged port from 1024 to 65535');
    }
    if (props.allowedCidrs !== undefined) {
      if (!Array.isArray(props.allowedCidrs) || props.allowedCidrs.length === 0) {
        throw Errors.invalid(this, 'allowedCidrs', props.allowedCidrs, 'a non-empty list of IPv4 CIDR blocks, or leave unset for the network\'s own block');
      }
      for (const c of props.allowedCidrs) {
        if (Token.isUnresolved(c)) continue;
        if (!isCidr(c)) throw Errors.invalid(this, 'allowedCidrs', c, 'IPv4 CIDR blocks such as 10.0.0.0/8');
        if (c.endsWith('/0')) {
          throw Errors.invalid(this, 'allowedCidrs', c, 'CIDR blocks narrower than /0: the agent runs arbitrary commands for whoever holds its token', 'opens the agent to the whole internet');
        }
      }
    }
    const nodeVersion = props.nodeVersion ?? DEFAULTS.nodeVersion;
    const [major, minor] = nodeVersion.split('.').map(Number);
    // node:sqlite (the agent's journal) is unflagged from 22.13.
    if (!/^\d+\.\d+\.\d+$/.test(nodeVersion) || major < 22 || (major === 22 && minor < 13)) {
      throw Errors.invalid(this, 'nodeVersion', nodeVersion, 'an exact Node.js version 22.13.0 or later, e.g. 24.18.1');
    }
    const nodeDistUrl = props.nodeDistUrl ?? DEFAULTS.nodeDistUrl;
    if (!/^https:\/\/[^\s'"$`\\]+$/.test(nodeDistUrl)) {
      throw Errors.invalid(this, 'nodeDistUrl', nodeDistUrl, 'an https:// URL without quotes, spaces or $');
    }
    const agentImage = props.agentImage ?? DEFAULTS.agentImage;
    if (props.agentImage !== undefined && kind !== 'kubernetes') {
      throw Errors.conflict(this, 'agentImage', props.agentImage, 'kubernetes targets only (hosts on aws/gcp run the agent with Node.js directly)', `does not apply to ${kind}`);
    }
    if (!/^[a-z0-9][a-zA-Z0-9._/:@-]*$/.test(agentImage)) {
      throw Errors.invalid(this, 'agentImage', agentImage, 'a container image reference such as node:24.18.1-bookworm-slim');
    }
    if (props.kubernetes !== undefined && kind !== 'kubernetes') {
      throw Errors.conflict(this, 'kubernetes', 'set', 'kubernetes targets only', `does not apply to ${kind}`);
    }
    if (kind === 'kubernetes') this.kubernetesSettings = kubernetesClusterSettings(this, props.kubernetes);
    if (props.machineImage !== undefined && kind === 'kubernetes') {
      throw Errors.conflict(this, 'machineImage', props.machineImage, 'aws or gcp targets (use agentImage on kubernetes)', 'does not apply to kubernetes');
    }

    const bundleDir = props.agentBundleDir ?? join(packageRoot(), 'dist', 'agent');
    // The bundle is self-contained (hosts run no npm install): the agent plus the object-store module the
    // target's URIs need, bundled with its SDK.
    const storageFile = ({ aws: 'storage-s3.js', gcp: 'storage-gcs.js', kubernetes: undefined } as const)[kind];
    for (const f of ['mlinfra-agent.js', ...(storageFile ? [storageFile] : [])]) {
      if (!existsSync(join(bundleDir, f))) {
        throw Errors.missingFile(this, 'agentBundleDir', join(props.agentBundleDir ? bundleDir : 'dist/agent', f), 'run `npm run build:agent` first, or point agentBundleDir at a built agent');
      }
    }
    const bundleScope = new Construct(this, 'agent-bundle');
    const script = new TerraformAsset(bundleScope, 'script', { path: join(bundleDir, 'mlinfra-agent.js'), type: AssetType.FILE });
    const storage = storageFile
      ? { asset: new TerraformAsset(bundleScope, 'storage', { path: join(bundleDir, storageFile), type: AssetType.FILE }), fileName: storageFile }
      : undefined;
    const token = generatedSecret(this, 'agent-token');

    return {
      name: resourceName(this, { maxLength: 40 }),
      shape, nodes: { min: nodes.min, max: nodes.max }, spot, onDemandBaseNodes, idleStopMinutes, diskGiB, agentPort,
      allowedCidrs: props.allowedCidrs, machineImage: props.machineImage, agentImage, nodeVersion, nodeDistUrl,
      agentBundle: { script, storage }, agentToken: token.result,
      peerTokenFetches: Lazy.stringValue({ produce: () => renderPeerTokenFetches(this.peers, (props.target as AwsTarget | GcpTarget).region) }),
      extraAgentArgs: Lazy.stringValue({ produce: () => this.startupPipelines.map((u) => ` --pipeline-on-start ${u}`).join('') }),
    };
  }
}

/** A secret reference as one line of text, for outputs and messages. */
export function secretRefText(ref: SecretRef): string {
  switch (ref.store) {
    case 'aws-secrets-manager': return ref.arn;
    case 'gcp-secret-manager': return `projects/${ref.project}/secrets/${ref.secretId}`;
    case 'kubernetes-secret': return `${ref.namespace}/${ref.name}#${ref.key}`;
  }
}
