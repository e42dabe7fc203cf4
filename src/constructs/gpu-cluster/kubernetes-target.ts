/**
 * GpuCluster's rules on Kubernetes, and the entry of its dispatch table. The resources are built by
 * kubernetes.ts; this file holds what only this target checks, before anything is built.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { Errors } from '../../core/errors';
import { KubernetesTarget, Target } from '../../core/targets';
import { KubernetesClusterSettings, kubernetesClusterSettings, kubernetesStorageFile } from './kubernetes-options';
import { GpuClusterTarget, GpuClusterTargetRules } from './plan';
import type { GpuClusterProps } from './props';

/** Error texts for capabilities a Kubernetes cluster does not have (its pods have no start-up script). */
export const KUBERNETES_NO_HOST_SCRIPTS = {
  startupPipeline: 'aws or gcp clusters (Kubernetes pipelines run from a CronJob)',
  peerToken: 'aws or gcp clusters (Kubernetes pods mount peer Secrets)',
};

function checkKubernetesProps(cluster: Construct, props: GpuClusterProps): GpuClusterTargetRules {
  if (props.instanceType !== undefined) {
    throw Errors.conflict(cluster, 'instanceType', props.instanceType, 'no explicit type on kubernetes', 'applies to aws targets only, not kubernetes');
  }
  if (props.machineType !== undefined) {
    throw Errors.conflict(cluster, 'machineType', props.machineType, 'no explicit type on kubernetes', 'applies to gcp targets only, not kubernetes');
  }
  if (props.onDemandBaseNodes !== undefined && props.spot) {
    throw Errors.conflict(cluster, 'onDemandBaseNodes', props.onDemandBaseNodes, 'aws targets only', 'is not supported on kubernetes');
  }
  if (props.nodes !== undefined && Token.isUnresolved(props.nodes.max)) {
    throw Errors.invalid(cluster, 'nodes.max', props.nodes.max, 'an integer from 1 to 1000 (a Terraform reference is supported on aws targets only)', 'is a Terraform reference');
  }
  const target = props.target as KubernetesTarget;
  if (props.spot && target.gpuNodeLabels !== 'gke') {
    throw Errors.conflict(cluster, 'spot', props.spot,
      `spot on kubernetes with a target whose gpuNodeLabels is 'gke' (spot node pools are chosen by cloud.google.com/gke-spot); here it is '${target.gpuNodeLabels}'`,
      'cannot choose spot nodes on this kubernetes target');
  }
  const settings = kubernetesClusterSettings(cluster, props.kubernetes);
  if (props.machineImage !== undefined) {
    throw Errors.conflict(cluster, 'machineImage', props.machineImage, 'aws or gcp targets (use agentImage on kubernetes)', 'does not apply to kubernetes');
  }
  // Job pods load the object-store module of the target's artifact store (none for file://).
  return { explicitTypeProp: 'machineType', extra: settings, storageFile: kubernetesStorageFile(target) };
}

/** GpuCluster on Kubernetes, for the dispatch table in index.ts; the builder loads with its provider. */
export const KUBERNETES_GPU_CLUSTER: GpuClusterTarget & { readonly noHostScripts: typeof KUBERNETES_NO_HOST_SCRIPTS } = {
  checkProps: checkKubernetesProps,
  build: (cluster: Construct, target: Target, plan, rules) => {
    const t = target as KubernetesTarget;
    const built = (require('./kubernetes') as typeof import('./kubernetes')).buildKubernetesGpuCluster(cluster, t, plan, rules.extra as KubernetesClusterSettings);
    // Job pods and the gateway carry the cluster's name (plan.name) as the metrics' cluster label.
    return { ...built, hostGroup: built.hostGroup ?? { kind: 'kubernetes', name: plan.name, namespace: t.namespace } };
  },
  noHostScripts: KUBERNETES_NO_HOST_SCRIPTS,
};
