/**
 * Install or adopt Kueue and JobSet (issue 19, item 3). The rule this relies on: kubernetes_manifest
 * reads its kind's CRD schema while planning, so no manifest may be of a kind whose CRD the same
 * apply installs. With 'install', the queue objects go in a Helm release (rendered and sent at apply
 * time) that depends on the Kueue and JobSet releases, which wait until ready; with 'existing', every
 * Kueue manifest depends on a plan-time check that its CRD is served.
 */
import 'cdktf/lib/testing/adapters/jest';
import { readFileSync } from 'fs';
import { join } from 'path';
import { TerraformStack } from 'cdktf';
import { GpuCluster, GpuClusterProps, KubernetesTarget, KubernetesTargetProps } from '../src';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider';
import { MlInfraError } from '../src/core/errors';
import { JOBSET_CHART, KUEUE_CHART, QUEUES_CHART_FILES } from '../src/constructs/gpu-cluster/kubernetes-install';
import { JOBSET_VERSION, KUEUE_VERSION } from '../src/constructs/gpu-cluster/kueue';
import { Policy } from '../src/aspects/policy/policy';
import { PolicyPack } from '../src/aspects/policy/pack';
import { crdErrors, loadCrd } from './kubernetes-crd-schema';
import { resources, synth, TerraformJson, testAgentBundle } from './helpers';

const BUNDLE = testAgentBundle();
const CRD: Record<string, ReturnType<typeof loadCrd>> = {
  ResourceFlavor: loadCrd('kueue-v0.19.2-resourceflavors.json'),
  ClusterQueue: loadCrd('kueue-v0.19.2-clusterqueues.json'),
  LocalQueue: loadCrd('kueue-v0.19.2-localqueues.json'),
};
/** Kinds whose CRDs Kueue and JobSet install. */
const CRD_KINDS = /^(ResourceFlavor|ClusterQueue|LocalQueue|Workload|AdmissionCheck|Cohort|WorkloadPriorityClass|Topology|JobSet)$/;

const build = (target: Partial<KubernetesTargetProps>, clusters: Array<Partial<GpuClusterProps>> = [{}], extra?: (s: TerraformStack) => void) => synth((stack) => {
  const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
  clusters.forEach((c, i) => new GpuCluster(stack, `c${i}`, { target: k8s, accelerator: 'L4', acceleratorsPerNode: 4, nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE, ...c }));
  extra?.(stack);
});
const releases = (json: TerraformJson): Record<string, any> => resources(json, 'helm_release') as Record<string, any>;
const ref = (type: string, key: string) => `${type}.${key}`;

describe("kueueAndJobSet 'install'", () => {
  const { json } = build({ kueueAndJobSet: 'install' }, [{}, { accelerator: 'H100', acceleratorsPerNode: 8 }]);
  const all = releases(json);
  const key = (prefix: string) => Object.keys(all).find((k) => k.startsWith(prefix))!;

  test('Kueue and JobSet from their pinned charts, once per target, waiting until ready', () => {
    const installs = Object.entries(all).filter(([k]) => k.startsWith('k8s_mlinfra-kueue-install_')).map(([, r]) => r);
    expect(installs.map((r) => [r.name, r.chart, r.version, r.namespace, r.create_namespace, r.wait]).sort()).toEqual([
      ['jobset', 'oci://registry.k8s.io/jobset/charts/jobset', '0.12.0', 'jobset-system', true, true],
      ['kueue', 'oci://registry.k8s.io/kueue/charts/kueue', '0.19.2', 'kueue-system', true, true],
    ]);
    expect(KUEUE_CHART.version).toBe(KUEUE_VERSION.slice(1));
    expect(JOBSET_CHART.version).toBe(JOBSET_VERSION.slice(1));
    // The Helm provider reads the target's kubeconfig.
    expect(Object.values((json.provider as any).helm)).toEqual([expect.objectContaining({ kubernetes: { config_path: '~/.kube/config' } })]);
  });

  test('the rule: no manifest of a kind whose CRD this apply installs, and no plan-time CRD check', () => {
    const kinds = Object.values(resources(json, 'kubernetes_manifest')).map((m: any) => m.manifest.kind);
    expect(kinds.filter((k) => CRD_KINDS.test(k))).toEqual([]);
    expect(resources(json, 'data.kubernetes_resources' as string)).toEqual({});
    expect((json as any).data?.kubernetes_resources).toBeUndefined();
  });

  test('each cluster\'s queue objects: a release of the local chart after both installs, objects valid for the pinned CRDs', () => {
    for (const c of ['c0', 'c1']) {
      const r = all[key(`${c}_kueue_queues_`)];
      expect(r.depends_on.sort()).toEqual([ref('helm_release', key('k8s_mlinfra-kueue-install_kueue_')), ref('helm_release', key('k8s_mlinfra-kueue-install_jobset_'))].sort());
      expect(r.chart).toMatch(/^assets\/.+/);
      expect(r.namespace).toMatch(/kubernetes_namespace_v1/);
      const objects = JSON.parse(r.values[0].replace(/\$\{kubernetes_namespace_v1\.[^}]+\}/g, 'ml')).objects;
      expect(objects.map((o: any) => o.kind)).toEqual(['ResourceFlavor', 'ClusterQueue', 'LocalQueue']);
      for (const o of objects) expect({ kind: o.kind, errors: crdErrors(CRD[o.kind], o) }).toEqual({ kind: o.kind, errors: [] });
    }
    const h100 = JSON.parse(all[key('c1_kueue_queues_')].values[0]).objects[1];
    expect(h100.spec.resourceGroups[0].flavors[0].resources).toContainEqual({ name: 'nvidia.com/gpu', nominalQuota: '16' });
  });

  test('the local chart renders each object as one YAML document, unchanged', () => {
    expect(QUEUES_CHART_FILES['templates/objects.yaml']).toBe('{{- range .Values.objects }}\n---\n{{ toYaml . }}\n{{- end }}\n');
    expect(QUEUES_CHART_FILES['Chart.yaml']).toMatch(/^apiVersion: v2\nname: mlinfra-queues\n/);
    // The asset the release names holds exactly these files (the stack directory is its working directory).
    build({ kueueAndJobSet: 'install' }, [{}], (stack) => {
      const asset = stack.node.findAll().find((c) => c.node.id === 'queues-chart') as any;
      for (const [file, text] of Object.entries(QUEUES_CHART_FILES)) expect(readFileSync(join(asset.sourcePath ?? asset.path, file), 'utf8')).toBe(text);
    });
  });

  test('an adopted LocalQueue: Kueue and JobSet installed, no queue release', () => {
    const { json: j } = build({ kueueAndJobSet: 'install' }, [{ kubernetes: { kueue: { localQueue: 'team-a' } } }]);
    expect(Object.keys(releases(j)).filter((k) => k.includes('queues'))).toEqual([]);
    expect(Object.keys(releases(j))).toHaveLength(2);
  });

  test('an adopted Kubernetes provider needs helmProvider: an error naming it', () => {
    let err: unknown;
    try {
      synth((stack) => {
        const provider = new KubernetesProvider(stack, 'kube', { configPath: '/tmp/kubeconfig' });
        const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', provider, kueueAndJobSet: 'install' });
        new GpuCluster(stack, 'c', { target: k8s, accelerator: 'L4', agentBundleDir: BUNDLE });
      });
    } catch (e) { err = e; }
    expect(err).toBeInstanceOf(MlInfraError);
    expect(err).toMatchObject({ prop: 'helmProvider', path: 'test/k8s' });
  });

  test('zero policy findings', () => {
    const findings: string[] = [];
    build({ kueueAndJobSet: 'install' }, [{}], (s) => Policy.apply(s, { pack: PolicyPack.default(), reporter: (f) => findings.push(`${f.ruleId} ${f.path}`) }));
    expect(findings).toEqual([]);
  });
});

describe("kueueAndJobSet 'existing' (the default)", () => {
  const { json } = build({});

  test('no Helm release; every Kueue manifest waits for the plan-time CRD checks', () => {
    expect(releases(json)).toEqual({});
    const checks = Object.keys((json as any).data.kubernetes_resources).map((k) => `data.kubernetes_resources.${k}`).sort();
    expect(checks).toHaveLength(2);
    const manifests = resources(json, 'kubernetes_manifest') as Record<string, any>;
    const deps = (k: string): string[] => (manifests[k].depends_on ?? []).flatMap((d: string) => d.startsWith('data.') ? [d] : deps(d.split('.')[1]));
    for (const [k, m] of Object.entries(manifests)) {
      if (CRD_KINDS.test(m.manifest.kind)) expect(deps(k).sort()).toEqual(checks);
    }
  });

  test('fails on an unknown kueueAndJobSet', () => {
    expect(() => build({ kueueAndJobSet: 'helm' as any })).toThrow(MlInfraError);
  });
});
