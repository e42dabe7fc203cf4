/**
 * `kueueAndJobSet: 'install'`: Kueue and JobSet from their pinned Helm charts, and each GpuCluster's
 * queue objects (ResourceFlavor, ClusterQueue, LocalQueue) as a Helm release of a small local chart
 * that depends on both. Why a chart and not kubernetes_manifest: kubernetes_manifest reads a CRD's
 * schema while planning, so a CRD created by the same apply cannot be used; helm_release renders and
 * sends its objects at apply time, after the releases it depends on are ready (`wait`). This is how
 * the ecosystem orders CRDs before their objects (a second release, or a stack applied first).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AssetType, TerraformAsset, TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import type { Release } from '@cdktf/provider-helm/lib/release';
import { Errors } from '../../core/errors';
import { requireProvider } from '../../core/lazy';
import { resourceName } from '../../core/naming';
import { KubernetesTarget } from '../../core/targets';
import { JOBSET_VERSION, KUEUE_VERSION } from './kueue';

/** The charts `helm install` uses (Kueue's and JobSet's installation docs), pinned to the tested versions. */
export const KUEUE_CHART = { chart: 'oci://registry.k8s.io/kueue/charts/kueue', version: KUEUE_VERSION.slice(1), namespace: 'kueue-system' };
export const JOBSET_CHART = { chart: 'oci://registry.k8s.io/jobset/charts/jobset', version: JOBSET_VERSION.slice(1), namespace: 'jobset-system' };

/** A chart that renders the objects given in `values.objects`, one document each, as given. */
export const QUEUES_CHART_FILES: Readonly<Record<string, string>> = {
  'Chart.yaml': 'apiVersion: v2\nname: mlinfra-queues\ndescription: Kueue queue objects of mlinfra GpuClusters\ntype: application\nversion: 1.0.0\n',
  'templates/objects.yaml': '{{- range .Values.objects }}\n---\n{{ toYaml . }}\n{{- end }}\n',
  'values.yaml': 'objects: []\n',
};

export interface KueueInstall {
  readonly provider: TerraformProvider;
  readonly kueue: Release;
  readonly jobset: Release;
}

function loadRelease(): typeof import('@cdktf/provider-helm/lib/release') {
  return requireProvider('helm', () => require('@cdktf/provider-helm/lib/release') as typeof import('@cdktf/provider-helm/lib/release'));
}

/** The target's Helm provider and the Kueue and JobSet releases: one set per target. */
export function kueueInstall(target: KubernetesTarget): KueueInstall {
  const scope = (target.node.tryFindChild('mlinfra-kueue-install') as Construct | undefined) ?? new Construct(target, 'mlinfra-kueue-install');
  const done = scope.node.tryFindChild('kueue') as Release | undefined;
  if (done) return { provider: done.provider!, kueue: done, jobset: scope.node.findChild('jobset') as Release };
  let provider = target.helmProvider;
  if (!provider) {
    if (!target.kubeconfig) {
      throw Errors.missing(target, 'helmProvider', "a Helm provider for kueueAndJobSet 'install' when the target adopts its Kubernetes provider (the kubeconfig it reads is not known here)");
    }
    const { HelmProvider } = requireProvider('helm', () => require('@cdktf/provider-helm/lib/provider') as typeof import('@cdktf/provider-helm/lib/provider'));
    provider = new HelmProvider(scope, 'provider', {
      alias: `${resourceName(target, { maxLength: 40 }).replace(/-/g, '_')}_helm`,
      kubernetes: { configPath: target.kubeconfig.path, configContext: target.kubeconfig.context },
    });
  }
  const { Release: HelmRelease } = loadRelease();
  // wait: the controllers and their webhooks are ready before anything that depends on them applies.
  const release = (id: string, c: typeof KUEUE_CHART) => new HelmRelease(scope, id, {
    provider, name: id, chart: c.chart, version: c.version, namespace: c.namespace, createNamespace: true, wait: true, timeout: 600,
  });
  return { provider, kueue: release('kueue', KUEUE_CHART), jobset: release('jobset', JOBSET_CHART) };
}

/** The local chart on disk, written once per content (the asset copies it into the stack's output). */
function queuesChartDir(): string {
  const hash = createHash('sha256').update(JSON.stringify(QUEUES_CHART_FILES)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `mlinfra-queues-chart-${hash}`);
  if (existsSync(join(dir, 'Chart.yaml'))) return dir;
  const tmp = mkdtempSync(join(tmpdir(), 'mlinfra-queues-chart-'));
  for (const [file, text] of Object.entries(QUEUES_CHART_FILES)) {
    mkdirSync(join(tmp, file, '..'), { recursive: true });
    writeFileSync(join(tmp, file), text);
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // another process wrote the same content first
  }
  return dir;
}

/**
 * The cluster's queue objects as a release of the local chart, after Kueue and JobSet are installed.
 * `objects` are plain Kubernetes objects (the renderers in kueue.ts); Terraform references in them resolve.
 */
export function queuesRelease(scope: Construct, target: KubernetesTarget, name: string, objects: readonly Record<string, unknown>[]): Release {
  const install = kueueInstall(target);
  const chartScope = (target.node.tryFindChild('mlinfra-kueue-install') as Construct);
  const chart = (chartScope.node.tryFindChild('queues-chart') as TerraformAsset | undefined)
    ?? new TerraformAsset(chartScope, 'queues-chart', { path: queuesChartDir(), type: AssetType.DIRECTORY });
  const { Release: HelmRelease } = loadRelease();
  return new HelmRelease(scope, 'queues', {
    provider: install.provider, name: `${name}-queues`, chart: chart.path, namespace: target.namespace,
    // JSON is YAML: the values file Helm reads.
    values: [JSON.stringify({ objects })],
    wait: true, timeout: 300,
    dependsOn: [install.kueue, install.jobset],
  });
}
