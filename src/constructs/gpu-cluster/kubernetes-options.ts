/**
 * Kubernetes-only GpuCluster settings (`props.kubernetes`): the job image and the Kueue queue.
 * No provider imports here: index.ts validates these before any backend loads.
 */
import { Construct } from 'constructs';
import { Errors } from '../../core/errors';
import type { KubernetesTarget } from '../../core/targets';

/**
 * The image job containers run when `kubernetes.image` is unset: CUDA 12.4 + cuDNN 9 + PyTorch 2.5.1
 * (Ubuntu 22.04, glibc 2.35). Pinned: a moving tag would change training runs under the user.
 */
export const DEFAULT_JOB_IMAGE = 'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime';

export interface KubernetesKueueOptions {
  /**
   * Adopt this existing ClusterQueue (created by the platform team) instead of creating a
   * ResourceFlavor and a ClusterQueue. Its quota is then not known at synth.
   * @default - a ResourceFlavor and a ClusterQueue named after the cluster are created
   */
  readonly clusterQueue?: string;
  /**
   * Adopt this existing LocalQueue in the target's namespace; implies the ClusterQueue behind it is
   * the platform team's too.
   * @default - a LocalQueue named after the cluster, pointing at the ClusterQueue
   */
  readonly localQueue?: string;
}

export interface KubernetesClusterOptions {
  /**
   * The image job containers run. It needs the libraries jobs use (CUDA, PyTorch ...) and glibc 2.28+
   * (the agent's Node.js binary is copied in from `agentImage`); it does not need Node.js.
   * @default DEFAULT_JOB_IMAGE (CUDA 12.4 + PyTorch 2.5.1)
   */
  readonly image?: string;
  /** The Kueue queue jobs are admitted through. @default - created for this cluster */
  readonly kueue?: KubernetesKueueOptions;
}

/** What the Kubernetes backend needs, validated. */
export interface KubernetesClusterSettings {
  readonly image: string;
  readonly clusterQueue?: string;
  readonly localQueue?: string;
}

const IMAGE = /^[a-z0-9][a-zA-Z0-9._/:@-]*$/;
/** DNS-1123 subdomain: Kueue queue names are object names (metadata.name). */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function kubernetesClusterSettings(scope: Construct, o: KubernetesClusterOptions | undefined): KubernetesClusterSettings {
  const image = o?.image ?? DEFAULT_JOB_IMAGE;
  if (typeof image !== 'string' || !IMAGE.test(image)) {
    throw Errors.invalid(scope, 'kubernetes.image', image, 'a container image reference with CUDA and your framework, e.g. pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime');
  }
  if (/^(node|library\/node)(:|@|$)/.test(image)) {
    throw Errors.invalid(scope, 'kubernetes.image', image,
      'an image with CUDA and your training framework (e.g. pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime): jobs run in it, and the node image has neither; the agent brings its own Node.js',
      'is a Node.js image without CUDA');
  }
  for (const prop of ['clusterQueue', 'localQueue'] as const) {
    const v = o?.kueue?.[prop];
    if (v !== undefined && (typeof v !== 'string' || v.length > 253 || !OBJECT_NAME.test(v))) {
      throw Errors.invalid(scope, `kubernetes.kueue.${prop}`, v, 'the name of an existing Kueue object: a DNS-1123 subdomain of at most 253 characters');
    }
  }
  // Jobs name their LocalQueue in a label (kueue.x-k8s.io/queue-name), and label values stop at 63 characters.
  const lq = o?.kueue?.localQueue;
  if (lq !== undefined && lq.length > 63) {
    throw Errors.invalid(scope, 'kubernetes.kueue.localQueue', lq, 'a LocalQueue name of at most 63 characters: jobs carry it as a label value', 'is too long');
  }
  return { image, clusterQueue: o?.kueue?.clusterQueue, localQueue: o?.kueue?.localQueue };
}

/** The agent's object-store module job pods need for the target's artifact store (none for file://). */
export function kubernetesStorageFile(target: KubernetesTarget): 'storage-s3.js' | 'storage-gcs.js' | undefined {
  const uri = target.artifactStore?.uri;
  return uri?.startsWith('s3://') ? 'storage-s3.js' : uri?.startsWith('gs://') ? 'storage-gcs.js' : undefined;
}
