/**
 * The Kueue queue of a GpuCluster on Kubernetes: a ResourceFlavor, a ClusterQueue and a LocalQueue,
 * or existing ones adopted by name; and the plan-time checks that Kueue (and JobSet) are installed.
 */
import { Construct } from 'constructs';
import { DataKubernetesResources } from '@cdktf/provider-kubernetes/lib/data-kubernetes-resources';
import { Manifest } from '@cdktf/provider-kubernetes/lib/manifest';
import type { Release } from '@cdktf/provider-helm/lib/release';
import { KubernetesTarget } from '../../core/targets';
import { kueueInstall, KueueInstall, queuesRelease } from './kubernetes-install';
import { KubernetesClusterSettings } from './kubernetes-options';
import {
  JOBSET_API_VERSION, JOBSET_VERSION, KUEUE_API_VERSION, KUEUE_MIN_VERSION, KUEUE_VERSION, kueueQuota, KueueQuota,
  renderClusterQueue, renderLocalQueue, renderResourceFlavor, Toleration,
} from './kueue';
import { GpuClusterPlan } from './plan';

export interface KubernetesKueueResources {
  /** The LocalQueue jobs name in their `kueue.x-k8s.io/queue-name` label. */
  readonly localQueueName: string;
  /** The ClusterQueue behind it; undefined when an adopted LocalQueue's ClusterQueue was not named. */
  readonly clusterQueueName?: string;
  /** The quota of a ClusterQueue this cluster created (an adopted one's is not known at synth). */
  readonly quota?: KueueQuota;
  readonly resourceFlavor?: Manifest;
  readonly clusterQueue?: Manifest;
  readonly localQueue?: Manifest;
  /** Plan-time checks (one per target) that the Kueue and, for multi-node clusters, JobSet CRDs are installed ('existing'). */
  readonly crdChecks: readonly DataKubernetesResources[];
  /** kueueAndJobSet 'install': the Kueue and JobSet releases (shared by the target's clusters). */
  readonly install?: KueueInstall;
  /** kueueAndJobSet 'install': the queue objects, as a release applied after Kueue and JobSet. */
  readonly queuesRelease?: Release;
}

/** Creates the ResourceFlavor, ClusterQueue and LocalQueue, or adopts existing ones by name. */
export function buildKueue(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan, settings: KubernetesClusterSettings,
  nodeSelector: Record<string, string>, tolerations: readonly Toleration[], perPodLimits: Record<string, string>, labels: Record<string, string>): KubernetesKueueResources {
  if (target.kueueAndJobSet === 'install') return installedKueue(cluster, target, plan, settings, nodeSelector, tolerations, perPodLimits, labels);
  const provider = target.provider;
  const crdChecks = [requireCrd(target, 'kueue', 'clusterqueues.kueue.x-k8s.io', KUEUE_API_VERSION,
    `Kueue serving ${KUEUE_API_VERSION} (${KUEUE_MIN_VERSION} or later; tested with ${KUEUE_VERSION})`,
    `helm install kueue oci://registry.k8s.io/kueue/charts/kueue --version=${KUEUE_VERSION.slice(1)} --create-namespace --namespace=kueue-system`)];
  if (plan.nodes.max > 1) {
    crdChecks.push(requireCrd(target, 'jobset', 'jobsets.jobset.x-k8s.io', JOBSET_API_VERSION,
      `JobSet serving ${JOBSET_API_VERSION} (tested with ${JOBSET_VERSION}; multi-node jobs run as JobSets)`,
      `helm install jobset oci://registry.k8s.io/jobset/charts/jobset --version ${JOBSET_VERSION.slice(1)} --create-namespace --namespace=jobset-system`));
  }
  if (settings.localQueue) {
    return { localQueueName: settings.localQueue, clusterQueueName: settings.clusterQueue, crdChecks };
  }
  const scope = new Construct(cluster, 'kueue');
  // Cluster-scoped objects: the namespace in the name keeps two namespaces' clusters apart.
  const clusterScoped = `${target.namespace}-${plan.name}`;
  let clusterQueueName = settings.clusterQueue;
  let resourceFlavor: Manifest | undefined;
  let clusterQueue: Manifest | undefined;
  let quota: KueueQuota | undefined;
  if (!clusterQueueName) {
    quota = kueueQuota(plan.nodes.max, plan.shape.count, { cpu: Number(perPodLimits.cpu), memoryGiB: Number(perPodLimits.memory.replace(/Gi$/, '')) });
    resourceFlavor = new Manifest(scope, 'resource-flavor', {
      provider, manifest: renderResourceFlavor(clusterScoped, labels, nodeSelector, tolerations), dependsOn: crdChecks,
    });
    clusterQueueName = clusterScoped;
    clusterQueue = new Manifest(scope, 'cluster-queue', {
      provider, manifest: renderClusterQueue(clusterQueueName, labels, target.namespace, clusterScoped, quota),
      dependsOn: [resourceFlavor],
    });
  }
  const localQueue = new Manifest(scope, 'local-queue', {
    provider, manifest: renderLocalQueue(plan.name, target.namespace, labels, clusterQueueName),
    dependsOn: clusterQueue ? [clusterQueue] : crdChecks,
  });
  return { localQueueName: plan.name, clusterQueueName, quota, resourceFlavor, clusterQueue, localQueue, crdChecks };
}

/**
 * kueueAndJobSet 'install': the same objects, rendered by the same functions, in a Helm release that
 * depends on the Kueue and JobSet releases (kubernetes-install.ts says why not kubernetes_manifest).
 */
function installedKueue(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan, settings: KubernetesClusterSettings,
  nodeSelector: Record<string, string>, tolerations: readonly Toleration[], perPodLimits: Record<string, string>, labels: Record<string, string>): KubernetesKueueResources {
  const install = kueueInstall(target);
  if (settings.localQueue) return { localQueueName: settings.localQueue, clusterQueueName: settings.clusterQueue, crdChecks: [], install };
  const clusterScoped = `${target.namespace}-${plan.name}`;
  const objects: Record<string, unknown>[] = [];
  let quota: KueueQuota | undefined;
  const clusterQueueName = settings.clusterQueue ?? clusterScoped;
  if (!settings.clusterQueue) {
    quota = kueueQuota(plan.nodes.max, plan.shape.count, { cpu: Number(perPodLimits.cpu), memoryGiB: Number(perPodLimits.memory.replace(/Gi$/, '')) });
    objects.push(renderResourceFlavor(clusterScoped, labels, nodeSelector, tolerations), renderClusterQueue(clusterQueueName, labels, target.namespace, clusterScoped, quota));
  }
  objects.push(renderLocalQueue(plan.name, target.namespace, labels, clusterQueueName));
  const release = queuesRelease(new Construct(cluster, 'kueue'), target, plan.name, objects);
  return { localQueueName: plan.name, clusterQueueName, quota, crdChecks: [], install, queuesRelease: release };
}

/**
 * kueueAndJobSet 'existing': Kueue and JobSet are adopted: kubernetes_manifest reads a CRD's schema while
 * planning, so CRDs created in the same plan cannot be used (the provider's documented limit; the
 * ecosystem installs them in an earlier apply or stack). This data source lists the CRD by name
 * (metadata.name is a field selector every kind supports) and its postcondition stops the plan with
 * what to install, instead of the manifest's "no matches for kind". One per target and CRD.
 * Source: registry.terraform.io/providers/hashicorp/kubernetes docs, data-sources/resources.
 */
function requireCrd(target: KubernetesTarget, id: string, crd: string, version: string, what: string, install: string): DataKubernetesResources {
  const checks = (target.node.tryFindChild('mlinfra-crd-checks') as Construct | undefined) ?? new Construct(target, 'mlinfra-crd-checks');
  const existing = checks.node.tryFindChild(id) as DataKubernetesResources | undefined;
  if (existing) return existing;
  const served = version.slice(version.indexOf('/') + 1);
  return new DataKubernetesResources(checks, id, {
    provider: target.provider,
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', fieldSelector: `metadata.name=${crd}`,
    lifecycle: {
      postcondition: [{
        // try(): Terraform's && does not short-circuit, and objects is empty when the CRD is absent.
        condition: `\${try(contains([for v in self.objects[0].spec.versions : v.name if v.served], "${served}"), false)}`,
        errorMessage: `${what} must be installed in the cluster before this stack is planned (CRD ${crd} not found or not serving ${served}). Install it first, e.g. \`${install}\`, or from a stack applied before this one.`,
      }],
    },
  });
}
