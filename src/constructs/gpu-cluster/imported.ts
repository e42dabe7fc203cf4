/** A GpuCluster made elsewhere, seen through IGpuCluster: grants, its store and schedules on its ARNs. */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { HostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { AcceleratorShape, offeredCounts, resolveAccelerator, isAcceleratorName, ACCELERATOR_NAMES, TargetKind } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { Grant, grantOnce, GrantPrincipal, IGrantable } from '../../core/grants';
import { SecretRef } from '../../core/secrets';
import { Target, targetKind } from '../../core/targets';
import { GpuClusterBackend, GpuClusterTarget } from './plan';
import type { ClusterJobQueue, GpuClusterAttributes, IGpuCluster, NodeRange } from './props';

class ImportedGpuCluster extends Construct implements IGpuCluster {
  public readonly watchKind = 'gpu-cluster' as const;
  public readonly target: Target;
  public readonly accelerator: AcceleratorShape;
  public readonly nodes: NodeRange;
  public readonly agentUrl: string;
  public readonly agentTokenSecret: SecretRef;
  public readonly artifactsUri: string;
  public readonly grantPrincipal: GrantPrincipal;
  public readonly hostGroup: HostGroup;
  public readonly jobQueue?: ClusterJobQueue;
  private readonly backend: GpuClusterBackend;

  constructor(scope: Construct, id: string, attrs: GpuClusterAttributes, targets: Readonly<Record<TargetKind, () => GpuClusterTarget>>) {
    super(scope, id);
    if (!attrs) throw Errors.missing(this, 'attrs', 'the cluster\'s target, accelerator, nodes, agentUrl, agentTokenSecret, bucketName and groupName');
    const kind = targetKind(this, 'target', attrs.target);
    const t = targets[kind]();
    if (!t.importCluster) throw Errors.notOffered(this, 'target', kind, `importing a GpuCluster is not offered on ${kind}`, 'aws');
    if (!isAcceleratorName(attrs.accelerator)) throw Errors.unknown(this, 'accelerator', attrs.accelerator, ACCELERATOR_NAMES);
    const count = attrs.acceleratorsPerNode ?? offeredCounts(attrs.accelerator, kind)[0] ?? 1;
    this.accelerator = resolveAccelerator(kind, attrs.accelerator, count, { where: this.node.path, explicitTypeProp: 'instanceType' });
    const n = attrs.nodes;
    if (!n || !Number.isInteger(n.min) || n.min < 0 || (!Token.isUnresolved(n.max) && (!Number.isInteger(n.max) || n.max < n.min))) {
      throw Errors.invalid(this, 'nodes', n, 'the cluster\'s node range: { min, max }, integers with 0 <= min <= max');
    }
    for (const [prop, v] of [['agentUrl', attrs.agentUrl], ['bucketName', attrs.bucketName], ['groupName', attrs.groupName]] as const) {
      if (typeof v !== 'string' || v === '') throw Errors.missing(this, prop, `the cluster's ${prop} (an output or attribute of the GpuCluster that made it)`);
    }
    this.target = attrs.target;
    this.nodes = { min: n.min, max: n.max };
    const backend = t.importCluster(this, attrs.target, attrs);
    this.backend = backend;
    this.agentUrl = backend.agentUrl;
    this.agentTokenSecret = backend.agentTokenSecret;
    this.artifactsUri = backend.artifactsUri;
    this.grantPrincipal = backend.grantPrincipal;
    this.hostGroup = backend.hostGroup!;
    this.jobQueue = backend.jobQueue;
  }

  public get groupName(): string {
    return this.hostGroup.name;
  }

  public storeObject(scope: Construct, id: string, options: StoreObjectOptions): StoredObject {
    return this.backend.storeObject!(scope, id, options);
  }

  public addPeerToken(_peer: IGpuCluster, name: string): string {
    throw Errors.conflict(this, 'addPeerToken', name, 'a GpuCluster created in this app (an imported cluster\'s hosts are configured where it was made)',
      'cannot change the hosts of an imported cluster');
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
    if (!enqueue || !this.jobQueue) {
      throw Errors.missing(this, 'aws.jobsQueueUrl', 'the jobs queue\'s URL and ARN (aws: { jobsQueueUrl, jobsQueueArn }, outputs of the GpuCluster that made it)');
    }
    return grantOnce(this, grantee, 'enqueue', (id) => enqueue.call(this.backend, grantee, id));
  }
}

/** An imported cluster; its target's backend makes grants and objects on the attributes' ARNs. */
export function importedGpuCluster(scope: Construct, id: string, attrs: GpuClusterAttributes,
  targets: Readonly<Record<TargetKind, () => GpuClusterTarget>>): IGpuCluster {
  return new ImportedGpuCluster(scope, id, attrs, targets);
}
