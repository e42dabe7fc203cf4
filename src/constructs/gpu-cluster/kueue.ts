/**
 * The Kueue objects of a GpuCluster on Kubernetes, and the JobSet contract the gateway follows.
 * Versions pinned and fields checked against their CRDs (read from the tagged sources):
 * - Kueue v0.19.2, kueue.x-k8s.io/v1beta2 (served and stored since v0.15.0):
 *   config/components/crd/bases/kueue.x-k8s.io_{resourceflavors,clusterqueues,localqueues}.yaml
 * - JobSet v0.12.0, jobset.x-k8s.io/v1alpha2: config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml
 * The renderers are plain functions (no provider import) so tests and the gateway share them.
 */
import { Errors } from '../../core/errors';

export const KUEUE_VERSION = 'v0.19.2';
export const KUEUE_API_VERSION = 'kueue.x-k8s.io/v1beta2';
/** Oldest Kueue that serves v1beta2: adopted installations must be at least this. */
export const KUEUE_MIN_VERSION = 'v0.15.0';
export const JOBSET_VERSION = 'v0.12.0';
export const JOBSET_API_VERSION = 'jobset.x-k8s.io/v1alpha2';
/** The label Kueue reads to put a Job or JobSet in a LocalQueue (kueue.x-k8s.io/queue-name). */
export const QUEUE_NAME_LABEL = 'kueue.x-k8s.io/queue-name';
/** The extended resource the NVIDIA device plugin advertises. */
export const GPU_RESOURCE = 'nvidia.com/gpu';

/** CRD limits (ResourceFlavor v1beta2): nodeLabels maxProperties 8, tolerations maxItems 8. */
export const FLAVOR_MAX_NODE_LABELS = 8;
export const FLAVOR_MAX_TOLERATIONS = 8;
/** metadata.name / ClusterQueue flavor name / LocalQueue spec.clusterQueue: DNS-1123 subdomain, at most 253. */
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes quantity (the CRDs' nominalQuota pattern). */
export const QUANTITY = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

export interface Toleration {
  readonly key: string;
  readonly operator: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect: 'NoSchedule' | 'NoExecute';
}

export interface KueueQuota {
  readonly gpus: number;
  /** Whole CPUs. */
  readonly cpu: number;
  readonly memoryGiB: number;
}

/**
 * The ClusterQueue's quota: `nodes.max` nodes' worth of GPUs (x acceleratorsPerNode) and of the CPU
 * and memory one node's pod may use. Kueue admits by requests, so quota = what nodes.max pods request
 * at most; the autoscaler then creates the nodes the admitted pods ask for.
 */
export function kueueQuota(maxNodes: number, gpusPerNode: number, perNode: { cpu: number; memoryGiB: number }): KueueQuota {
  return { gpus: maxNodes * gpusPerNode, cpu: maxNodes * perNode.cpu, memoryGiB: maxNodes * perNode.memoryGiB };
}

/** ResourceFlavor: the catalog's node labels (Kueue injects them into admitted pods) and tolerations. */
export function renderResourceFlavor(name: string, labels: Record<string, string>, nodeLabels: Record<string, string>, tolerations: readonly Toleration[]): Record<string, unknown> {
  if (Object.keys(nodeLabels).length > FLAVOR_MAX_NODE_LABELS) {
    throw Errors.outOfRange(`ResourceFlavor ${name}`, 'nodeLabels', Object.keys(nodeLabels).length, `at most ${FLAVOR_MAX_NODE_LABELS} node labels (CRD maxProperties)`);
  }
  if (tolerations.length > FLAVOR_MAX_TOLERATIONS) {
    throw Errors.outOfRange(`ResourceFlavor ${name}`, 'tolerations', tolerations.length, `at most ${FLAVOR_MAX_TOLERATIONS} tolerations (CRD maxItems)`);
  }
  return {
    apiVersion: KUEUE_API_VERSION, kind: 'ResourceFlavor',
    metadata: { name, labels: { ...labels } },
    spec: {
      // Empty with gpuNodeLabels 'none': the flavor then matches any node (the device plugin's resource still gates GPUs).
      ...(Object.keys(nodeLabels).length ? { nodeLabels: { ...nodeLabels } } : {}),
      // spec.tolerations: added by Kueue to admitted pods; operator only Equal|Exists (CEL rule).
      tolerations: tolerations.map((t) => ({ ...t })),
    },
  };
}

/**
 * ClusterQueue: one resource group covering cpu, memory and nvidia.com/gpu with one flavor. Jobs
 * request all three, and Kueue does not admit a workload requesting a resource no group covers.
 * Only `namespace` may use it: a null namespaceSelector admits no namespace, `{}` every namespace.
 */
export function renderClusterQueue(name: string, labels: Record<string, string>, namespace: string, flavor: string, quota: KueueQuota): Record<string, unknown> {
  const covered = ['cpu', 'memory', GPU_RESOURCE];
  const nominal: Record<string, string> = { 'cpu': String(quota.cpu), 'memory': `${quota.memoryGiB}Gi`, [GPU_RESOURCE]: String(quota.gpus) };
  return {
    apiVersion: KUEUE_API_VERSION, kind: 'ClusterQueue',
    metadata: { name, labels: { ...labels } },
    spec: {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
      // Strict order would let one unadmittable job (e.g. a full node group) block every job behind it.
      queueingStrategy: 'BestEffortFIFO',
      // flavors[].resources must list coveredResources in the same order (CEL: same size).
      resourceGroups: [{
        coveredResources: covered,
        flavors: [{ name: flavor, resources: covered.map((r) => ({ name: r, nominalQuota: nominal[r] })) }],
      }],
      // No cohort (so no borrowing/lending limits: CEL rule) and no preemption block: the CRD defaults
      // nested fields there, which kubernetes_manifest reports as an inconsistent result after apply
      // (hashicorp/terraform-provider-kubernetes#1545, #2264). Platform teams adopt their own queue for those.
    },
  };
}

/** LocalQueue in the cluster's namespace; spec.clusterQueue is immutable (CEL self == oldSelf). */
export function renderLocalQueue(name: string, namespace: string, labels: Record<string, string>, clusterQueue: string): Record<string, unknown> {
  return {
    apiVersion: KUEUE_API_VERSION, kind: 'LocalQueue',
    metadata: { name, namespace, labels: { ...labels } },
    spec: { clusterQueue },
  };
}
