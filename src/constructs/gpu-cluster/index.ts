import { AssetType, Lazy, TerraformAsset, TerraformOutput, Token } from 'cdktf';
import { Construct } from 'constructs';
import { existsSync } from 'fs';
import { join } from 'path';
import { HostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { AcceleratorShape, offeredCounts, resolveAccelerator, isAcceleratorName, ACCELERATOR_NAMES, TargetKind } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { recordCost } from '../../core/facts';
import { Grant, grantOnce, GrantPrincipal, IGrantable } from '../../core/grants';
import { resourceName } from '../../core/naming';
import { packageRoot } from '../../core/package-root';
import { generatedSecret, SecretRef } from '../../core/secrets';
import { AwsTarget, GcpTarget, isCidr, Target, targetKind } from '../../core/targets';
import { lazyModule } from '../../core/lazy';
import { peerTokenFile, renderPeerTokenFetches } from './bootstrap';
import { importedGpuCluster } from './imported';
import { GpuClusterBackend, GpuClusterPlan, GpuClusterTarget, GpuClusterTargetRules } from './plan';
import { ClusterJobQueue, GpuClusterAttributes, GpuClusterProps, IGpuCluster, KubernetesJobRuntime, NodeRange } from './props';
import type { AwsGpuClusterResources } from './aws';
import type { GcpGpuClusterResources } from './gcp';
import type { KubernetesGpuClusterResources } from './kubernetes';
import { DEFAULT_AGENT_IMAGE, DEFAULT_NODE_VERSION } from './node-runtime';

export { ClusterJobQueue, GpuClusterAttributes, GpuClusterProps, IGpuCluster, KubernetesJobRuntime, NodeRange } from './props';
export type { AwsGpuClusterResources, GcpGpuClusterResources, KubernetesGpuClusterResources };

/**
 * One entry per target: its prop rules and builder (one file each). A backend and its provider
 * package load when a construct first uses their target.
 */
export const GPU_CLUSTER_TARGETS: Readonly<Record<TargetKind, () => GpuClusterTarget>> = {
  aws: lazyModule(() => (require('./aws') as typeof import('./aws')).AWS_GPU_CLUSTER),
  gcp: lazyModule(() => (require('./gcp') as typeof import('./gcp')).GCP_GPU_CLUSTER),
  kubernetes: lazyModule(() => (require('./kubernetes-target') as typeof import('./kubernetes-target')).KUBERNETES_GPU_CLUSTER),
};

const DEFAULTS = {
  nodes: { min: 0, max: 1 },
  idleStopMinutes: 30,
  diskGiB: 200,
  agentPort: 7070,
  agentImage: DEFAULT_AGENT_IMAGE,
  nodeVersion: DEFAULT_NODE_VERSION,
  nodeDistUrl: 'https://nodejs.org/dist',
  maxJobDurationSeconds: 72 * 3600,
  deadManMinutes: 30,
  idleGpuUtilPercent: 5,
};
const MAX_NODES = 1000;

/**
 * GPU hosts that scale with work, each running mlinfra-agent (the job runner) installed at boot.
 * - AWS: launch template (GPU AMI, IMDSv2, encrypted root; EFA on multi-node P4/P5), autoscaling group
 *   (spot through a mixed instances policy; scaled on the SQS jobs queue's backlog, busy hosts protected,
 *   a drain hook), SQS jobs and dead-letter queues, IAM role, security groups, internal NLB, KMS key,
 *   bucket, Secrets Manager token.
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
  public readonly watchKind = 'gpu-cluster' as const;
  /**
   * A cluster that exists already (made by another stack or app), from its attributes: pipelines
   * can be scheduled on it and monitors can watch it; nothing of it is created here. AWS.
   */
  public static fromGpuClusterAttributes(scope: Construct, id: string, attrs: GpuClusterAttributes): IGpuCluster {
    return importedGpuCluster(scope, id, attrs, GPU_CLUSTER_TARGETS);
  }

  public readonly target: Target;
  public readonly accelerator: AcceleratorShape;
  public readonly nodes: NodeRange;
  public readonly spot: boolean;
  public readonly idleStopMinutes: number;
  public readonly agentUrl: string;
  public readonly agentTokenSecret: SecretRef;
  public readonly artifactsUri: string;
  public readonly grantPrincipal: GrantPrincipal;
  public readonly hostGroup: HostGroup;
  public readonly jobRuntime?: KubernetesJobRuntime;
  public readonly jobQueue?: ClusterJobQueue;
  /** Escape hatches: the resources created on each target (only the one for `target` is set). */
  public readonly aws?: AwsGpuClusterResources;
  public readonly gcp?: GcpGpuClusterResources;
  public readonly kubernetes?: KubernetesGpuClusterResources;
  private readonly backend: GpuClusterBackend;
  private readonly targetBackend: GpuClusterTarget;
  private readonly peers: { name: string; ref: SecretRef }[] = [];

  constructor(scope: Construct, id: string, props: GpuClusterProps) {
    super(scope, id);
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target and accelerator');
    const kind = targetKind(this, 'target', props.target);
    this.targetBackend = GPU_CLUSTER_TARGETS[kind]();
    const { plan, rules } = this.plan(props, kind);
    this.target = props.target;
    this.accelerator = plan.shape;
    this.nodes = plan.nodes;
    this.spot = plan.spot;
    this.idleStopMinutes = plan.idleStopMinutes;

    const built = this.targetBackend.build(this, props.target, plan, rules);
    // The escape hatch of this target: `aws`, `gcp` or `kubernetes`.
    (this as { -readonly [K in TargetKind]?: unknown })[kind] = built.resources;
    this.backend = built;
    this.agentUrl = built.agentUrl;
    this.agentTokenSecret = built.agentTokenSecret;
    this.artifactsUri = built.artifactsUri;
    this.grantPrincipal = built.grantPrincipal;
    this.hostGroup = built.hostGroup;
    this.jobRuntime = built.jobRuntime;
    this.jobQueue = built.jobQueue;

    // The nodes' price, from the catalog: the same rule on every target.
    const s = plan.shape;
    recordCost(this, {
      item: `${s.instanceType ?? `${s.accelerator} x${s.count} share`} node (${s.accelerator} x${s.count})`,
      unitUsd: s.price.usdPerHour, per: 'hour', quantity: { min: plan.nodes.min, max: plan.nodes.max }, spot: true,
      source: s.price.source, asOf: s.price.asOf, estimate: s.explicitType || undefined,
      // The report adds the target's spot share and its source.
      note: plan.spot ? 'runs on spot' : 'runs on demand',
    });

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'agent-url', { value: this.agentUrl, description: `${this.node.path}: mlinfra-agent API` });
    new TerraformOutput(outputs, 'artifacts-uri', { value: this.artifactsUri, description: `${this.node.path}: artifacts and pipeline specs` });
    new TerraformOutput(outputs, 'agent-token-secret', {
      value: secretRefText(this.agentTokenSecret),
      description: `${this.node.path}: where the agent token is kept (a reference, not the token)`,
    });
    if (this.jobQueue) {
      new TerraformOutput(outputs, 'jobs-queue', {
        value: this.jobQueue.kind === 'sqs' ? this.jobQueue.url : this.jobQueue.topicId,
        description: `${this.node.path}: the durable jobs queue every host leases from`,
      });
    }
  }

  /** The host group's name, as host metrics carry it. */
  public get groupName(): string {
    return this.hostGroup.name;
  }

  /**
   * Lets this cluster's hosts submit to `peer`'s agent (a bigger cluster that takes steps which ran
   * out of memory): grants read of its token and fetches it at every agent start into
   * `/run/mlinfra/clusters/<name>/token`. AWS and GCP, peers on the same target.
   */
  public addPeerToken(peer: IGpuCluster, name: string): string {
    const none = this.targetBackend.noHostScripts;
    if (none) throw Errors.conflict(this, 'addPeerToken', name, none.peerToken, `is not supported on ${this.target.kind}`);
    if (peer.target !== this.target) {
      throw Errors.conflict(this, 'addPeerToken', peer.node?.path ?? name, `a cluster on this cluster's target (${this.target.node.path})`, 'names a cluster on another target');
    }
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) throw Errors.invalid(this, 'addPeerToken', name, 'a name of lower-case letters, digits and -');
    if (!this.peers.some((p) => p.name === name)) {
      peer.grantAgentAccess(this);
      this.peers.push({ name, ref: peer.agentTokenSecret });
    }
    return peerTokenFile(name);
  }

  /** Keeps an object in the cluster's bucket, encrypted like its other objects. AWS and GCP. */
  public storeObject(scope: Construct, id: string, options: StoreObjectOptions): StoredObject {
    if (!this.backend.storeObject) {
      throw Errors.conflict(this, 'storeObject', options.key, 'aws or gcp clusters (a Kubernetes cluster keeps specs in ConfigMaps)', `is not supported on ${this.target.kind}`);
    }
    return this.backend.storeObject(scope, id, options);
  }

  public grantAgentAccess(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'agent', (id) => this.backend.grantAgentAccess(grantee, id));
  }
  public grantArtifactsRead(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'artifacts-read', (id) => this.backend.grantArtifactsRead(grantee, id));
  }
  public grantArtifactsWrite(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'artifacts-write', (id) => this.backend.grantArtifactsWrite(grantee, id));
  }
  public grantScale(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'scale', (id) => this.backend.grantScale(grantee, id));
  }
  public grantEnqueue(grantee: IGrantable): Grant {
    const enqueue = this.backend.grantEnqueue;
    if (!enqueue) {
      throw Errors.conflict(this, 'grantEnqueue', grantee.grantPrincipal?.kind, 'aws or gcp clusters (Kubernetes jobs queue in Kueue)', `is not supported on ${this.target.kind}`);
    }
    return grantOnce(this, grantee, 'enqueue', (id) => enqueue.call(this.backend, grantee, id));
  }

  /**
   * Validates props and resolves the cloud-neutral plan; throws before any resource exists. The
   * target's own rules come from its backend; values that are Terraform references are left to the
   * provider at plan time.
   */
  private plan(props: GpuClusterProps, kind: TargetKind): { plan: GpuClusterPlan; rules: GpuClusterTargetRules } {
    if (props.accelerator === undefined) throw Errors.missing(this, 'accelerator', `one of ${ACCELERATOR_NAMES.join(', ')}`);
    if (!isAcceleratorName(props.accelerator)) throw Errors.unknown(this, 'accelerator', props.accelerator, ACCELERATOR_NAMES);
    const spot = props.spot ?? false;
    if (typeof spot !== 'boolean') throw Errors.invalid(this, 'spot', spot, 'true or false');
    const rules = this.targetBackend.checkProps(this, props);

    const count = props.acceleratorsPerNode ?? offeredCounts(props.accelerator, kind)[0] ?? 1;
    const shape = resolveAccelerator(kind, props.accelerator, count, {
      where: this.node.path, explicitType: rules.explicitType, explicitTypeProp: rules.explicitTypeProp,
    });

    const nodes = props.nodes ?? DEFAULTS.nodes;
    const int = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
    const token = (v: unknown) => Token.isUnresolved(v);
    if (!int(nodes.min) || nodes.min < 0 || nodes.min > MAX_NODES) {
      throw Errors.outOfRange(this, 'nodes.min', nodes.min, `an integer from 0 to ${MAX_NODES}`);
    }
    // A Terraform reference (e.g. a variable) is checked by the provider at plan time; targets that
    // compute from the max refuse one in their rules.
    const tokenMax = token(nodes.max);
    if (!tokenMax && (!int(nodes.max) || nodes.max < 1 || nodes.max > MAX_NODES)) {
      throw Errors.outOfRange(this, 'nodes.max', nodes.max, `an integer from 1 to ${MAX_NODES}`);
    }
    if (!tokenMax && nodes.max < nodes.min) {
      throw Errors.conflict(this, 'nodes.max', nodes.max, `an integer >= nodes.min (${nodes.min})`, 'is below nodes.min');
    }
    const onDemandBaseNodes = props.onDemandBaseNodes ?? 0;
    if (props.onDemandBaseNodes !== undefined) {
      if (!spot) throw Errors.conflict(this, 'onDemandBaseNodes', props.onDemandBaseNodes, 'set only with spot: true', 'has no effect without spot');
      if (!token(onDemandBaseNodes) && (!int(onDemandBaseNodes) || onDemandBaseNodes < 0 || (!tokenMax && onDemandBaseNodes > nodes.max))) {
        throw Errors.outOfRange(this, 'onDemandBaseNodes', onDemandBaseNodes, `an integer from 0 to nodes.max (${nodes.max})`);
      }
    }

    const idleStopMinutes = props.idleStopMinutes ?? DEFAULTS.idleStopMinutes;
    if (!int(idleStopMinutes) || idleStopMinutes < 0 || idleStopMinutes > 10080) {
      throw Errors.outOfRange(this, 'idleStopMinutes', props.idleStopMinutes, 'an integer number of minutes from 0 (never) to 10080 (7 days)');
    }
    const diskGiB = props.diskGiB ?? DEFAULTS.diskGiB;
    if (!token(diskGiB) && (!int(diskGiB) || diskGiB < 50 || diskGiB > 16384)) {
      throw Errors.outOfRange(this, 'diskGiB', props.diskGiB, 'an integer from 50 to 16384 (GPU images alone take ~40 GiB)');
    }
    const agentPort = props.agentPort ?? DEFAULTS.agentPort;
    if (!token(agentPort) && (!int(agentPort) || agentPort < 1024 || agentPort > 65535)) {
      throw Errors.outOfRange(this, 'agentPort', props.agentPort, 'an unprivileged port from 1024 to 65535');
    }
    if (props.allowedCidrs !== undefined) {
      if (!Array.isArray(props.allowedCidrs) || props.allowedCidrs.length === 0) {
        throw Errors.invalid(this, 'allowedCidrs', props.allowedCidrs, 'a non-empty list of IPv4 CIDR blocks, or leave unset for the network\'s own block');
      }
      for (const c of props.allowedCidrs) {
        if (token(c)) continue;
        if (!isCidr(c)) throw Errors.invalid(this, 'allowedCidrs', c, 'IPv4 CIDR blocks such as 10.0.0.0/8');
        if (c.endsWith('/0')) {
          throw Errors.invalid(this, 'allowedCidrs', c, 'CIDR blocks narrower than /0: the agent runs arbitrary commands for whoever holds its token', 'opens the agent to the whole internet');
        }
      }
    }
    const nodeVersion = props.nodeVersion ?? DEFAULTS.nodeVersion;
    const [major, minor] = nodeVersion.split('.').map(Number);
    // node:sqlite (the agent's journal) is unflagged from 22.13; the version picks pinned checksums, so no reference.
    if (!/^\d+\.\d+\.\d+$/.test(nodeVersion) || major < 22 || (major === 22 && minor < 13)) {
      throw Errors.invalid(this, 'nodeVersion', nodeVersion, 'an exact Node.js version 22.13.0 or later, e.g. 24.18.1');
    }
    const nodeDistUrl = props.nodeDistUrl ?? DEFAULTS.nodeDistUrl;
    if (!token(nodeDistUrl) && !/^https:\/\/[^\s'"$`\\]+$/.test(nodeDistUrl)) {
      throw Errors.invalid(this, 'nodeDistUrl', nodeDistUrl, 'an https:// URL without quotes, spaces or $');
    }
    const guards = this.guards(props);
    const agentImage = props.agentImage ?? DEFAULTS.agentImage;
    if (!token(agentImage) && !/^[a-z0-9][a-zA-Z0-9._/:@-]*$/.test(agentImage)) {
      throw Errors.invalid(this, 'agentImage', agentImage, 'a container image reference such as node:24.18.1-bookworm-slim');
    }

    const bundleDir = props.agentBundleDir ?? join(packageRoot(), 'dist', 'agent');
    // The bundle is self-contained (hosts run no npm install): the agent plus the object-store module the
    // target's URIs need, bundled with its SDK.
    const storageFile = rules.storageFile;
    const hostFiles = rules.hostFiles ?? [];
    for (const f of ['mlinfra-agent.js', ...(storageFile ? [storageFile] : []), ...hostFiles]) {
      if (!existsSync(join(bundleDir, f))) {
        throw Errors.missingFile(this, 'agentBundleDir', join(props.agentBundleDir ? bundleDir : 'dist/agent', f), 'run `npm run build:agent` first, or point agentBundleDir at a built agent');
      }
    }
    const bundleScope = new Construct(this, 'agent-bundle');
    const script = new TerraformAsset(bundleScope, 'script', { path: join(bundleDir, 'mlinfra-agent.js'), type: AssetType.FILE });
    const storage = storageFile
      ? { asset: new TerraformAsset(bundleScope, 'storage', { path: join(bundleDir, storageFile), type: AssetType.FILE }), fileName: storageFile }
      : undefined;
    const extras = hostFiles.map((f, i) => ({ asset: new TerraformAsset(bundleScope, `host-file-${i}`, { path: join(bundleDir, f), type: AssetType.FILE }), fileName: f }));
    const agentToken = generatedSecret(this, 'agent-token');

    return {
      rules,
      plan: {
        name: resourceName(this, { maxLength: 40 }),
        shape, nodes: { min: nodes.min, max: nodes.max }, spot, onDemandBaseNodes, idleStopMinutes, diskGiB, agentPort,
        allowedCidrs: props.allowedCidrs, machineImage: props.machineImage, agentImage, nodeVersion, nodeDistUrl,
        agentBundle: { script, storage, extras }, agentToken: agentToken.result, guards,
        peerTokenFetches: Lazy.stringValue({ produce: () => renderPeerTokenFetches(this.peers, (props.target as AwsTarget | GcpTarget).region) }),
        extraAgentArgs: ` --max-duration-seconds ${guards.maxJobDurationSeconds} --dead-man-minutes ${guards.deadManMinutes} --idle-gpu-util-percent ${guards.idleGpuUtilPercent}`,
      },
    };
  }

  /** The agent guards (issue 17 item 5): props with defaults, flags on AWS/GCP hosts only. */
  private guards(props: GpuClusterProps): GpuClusterPlan['guards'] {
    const none = this.targetBackend.noHostScripts;
    const check = (prop: 'maxJobDurationSeconds' | 'deadManMinutes' | 'idleGpuUtilPercent', min: number, max: number, allowed: string): number => {
      const v = props[prop];
      if (v === undefined) return DEFAULTS[prop];
      // Kubernetes jobs run as pods without this agent: activeDeadlineSeconds and Kueue take their place.
      if (none) throw Errors.conflict(this, prop, v, 'aws or gcp targets (hosts that run mlinfra-agent)', `does not apply to ${props.target.kind}`);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw Errors.outOfRange(this, prop, v, allowed);
      return v;
    };
    return {
      // 14 days: the queue keeps a message that long, so a longer job could not be re-queued.
      maxJobDurationSeconds: check('maxJobDurationSeconds', 60, 14 * 86400, 'an integer number of seconds from 60 to 1209600 (14 days)'),
      deadManMinutes: check('deadManMinutes', 0, 10080, 'an integer number of minutes from 0 (never) to 10080 (7 days)'),
      idleGpuUtilPercent: check('idleGpuUtilPercent', 0, 100, 'an integer percentage from 0 (the queue alone decides idleness) to 100'),
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
