/**
 * The Kueue objects a GpuCluster synthesizes on Kubernetes, checked against the CRD schemas of the
 * pinned Kueue release (test/fixtures/crds, from kubernetes-sigs/kueue v0.19.2) and the CEL rules
 * we rely on, each cited.
 */
import 'cdktf/lib/testing/adapters/jest';
import { GpuCluster, GpuClusterProps, KubernetesTarget, KubernetesTargetProps } from '../src';
import {
  FLAVOR_MAX_NODE_LABELS, KUEUE_API_VERSION, QUANTITY, renderClusterQueue, renderResourceFlavor,
} from '../src/constructs/gpu-cluster/kueue';
import { renderJob, renderJobSet } from '../src/runtime-agent/k8s/objects';
import { MlInfraError } from '../src/core/errors';
import { crdErrors, loadCrd } from './kubernetes-crd-schema';
import { resources, synth, TerraformJson, testAgentBundle } from './helpers';

const BUNDLE = testAgentBundle();
const CRD = {
  flavor: loadCrd('kueue-v0.19.2-resourceflavors.json'),
  clusterQueue: loadCrd('kueue-v0.19.2-clusterqueues.json'),
  localQueue: loadCrd('kueue-v0.19.2-localqueues.json'),
};

const build = (props: Partial<GpuClusterProps> = {}, target: Partial<KubernetesTargetProps> = {}) => synth((stack) => {
  const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
  new GpuCluster(stack, 'train', { target: k8s, accelerator: 'H100', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, agentBundleDir: BUNDLE, ...props });
}).json;

/** The kubernetes_manifest objects by kind. */
const manifests = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'kubernetes_manifest')).map((m: any) => [m.manifest.kind, m.manifest]));
/** References (namespace, names) as they resolve in a real plan: the namespace is "ml". */
const resolved = (o: unknown): any => JSON.parse(JSON.stringify(o).replace(/\$\{kubernetes_namespace_v1\.[^}]+\.metadata\[0\]\.name\}/g, 'ml'));

describe('Kueue objects on Kubernetes', () => {
  const json = build();
  const m = resolved(manifests(json));

  test('a ResourceFlavor, a ClusterQueue and a LocalQueue, in kueue.x-k8s.io/v1beta2 (served and stored by the pinned v0.19.2)', () => {
    expect(Object.keys(m).sort()).toEqual(['ClusterQueue', 'LocalQueue', 'ResourceFlavor']);
    for (const crd of Object.values(CRD)) {
      expect(crd.served && crd.storage).toBe(true);
      expect(`${crd.group}/${crd.version}`).toBe(KUEUE_API_VERSION);
    }
  });

  test('each object passes its CRD schema (fields, types, enums, patterns, sizes, scope)', () => {
    expect(crdErrors(CRD.flavor, m.ResourceFlavor)).toEqual([]);
    expect(crdErrors(CRD.clusterQueue, m.ClusterQueue)).toEqual([]);
    expect(crdErrors(CRD.localQueue, m.LocalQueue)).toEqual([]);
  });

  test('the schema check fails on an unknown field, a bad enum and a bad quantity (it can fail)', () => {
    const bad = JSON.parse(JSON.stringify(m.ClusterQueue));
    bad.spec.queueingStrategy = 'Random';
    bad.spec.cohort = 'x';
    bad.spec.resourceGroups[0].flavors[0].resources[0].nominalQuota = 'lots';
    const errors = crdErrors(CRD.clusterQueue, bad);
    expect(errors).toEqual(expect.arrayContaining([
      expect.stringMatching(/^spec\.queueingStrategy: "Random" not in/),
      'spec.cohort: unknown field',
      expect.stringMatching(/^spec\.resourceGroups\[0\]\.flavors\[0\]\.resources\[0\]\.nominalQuota: "lots" does not match/),
    ]));
  });

  test('ResourceFlavor: the catalog\'s node labels and the GPU toleration', () => {
    expect(m.ResourceFlavor.spec).toEqual({
      nodeLabels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    });
    const gke = resolved(manifests(build({ spot: true }, { gpuNodeLabels: 'gke' })));
    expect(gke.ResourceFlavor.spec.nodeLabels).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-h100-80gb', 'cloud.google.com/gke-spot': 'true' });
    expect(gke.ResourceFlavor.spec.tolerations).toContainEqual({ key: 'cloud.google.com/gke-spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' });
    const none = resolved(manifests(build({}, { gpuNodeLabels: 'none' })));
    expect(none.ResourceFlavor.spec.nodeLabels).toBeUndefined();
    expect(crdErrors(CRD.flavor, gke.ResourceFlavor)).toEqual([]);
    expect(crdErrors(CRD.flavor, none.ResourceFlavor)).toEqual([]);
  });

  test('ResourceFlavor CEL rules: operator Equal|Exists only; a key-less toleration needs Exists; tolerationSeconds only with NoExecute', () => {
    // kueue.x-k8s.io_resourceflavors.yaml v1beta2 spec.tolerations x-kubernetes-validations.
    for (const t of m.ResourceFlavor.spec.tolerations) {
      expect(['Equal', 'Exists']).toContain(t.operator);
      if (!t.key) expect(t.operator).toBe('Exists');
      if (t.tolerationSeconds !== undefined) expect(t.effect).toBe('NoExecute');
    }
    expect(() => renderResourceFlavor('x', {}, Object.fromEntries([...Array(FLAVOR_MAX_NODE_LABELS + 1).keys()].map((i) => [`l${i}`, 'v'])), [])).toThrow(/nodeLabels is out of range \(got 9\); allowed: at most 8 node labels/);
  });

  test('ClusterQueue quota: nodes.max x acceleratorsPerNode GPUs, and nodes.max pods\' CPU and memory', () => {
    const rg = m.ClusterQueue.spec.resourceGroups;
    expect(rg).toHaveLength(1);
    expect(rg[0].coveredResources).toEqual(['cpu', 'memory', 'nvidia.com/gpu']);
    // H100 x8: one pod may use 192 CPUs and 1872Gi (gpu-cluster-kubernetes.test.ts); 4 nodes at most.
    expect(rg[0].flavors).toEqual([{
      name: m.ResourceFlavor.metadata.name,
      resources: [{ name: 'cpu', nominalQuota: '768' }, { name: 'memory', nominalQuota: '7488Gi' }, { name: 'nvidia.com/gpu', nominalQuota: '32' }],
    }]);
    const small = resolved(manifests(build({ accelerator: 'L4', acceleratorsPerNode: 1, nodes: { min: 0, max: 3 } })));
    expect(small.ClusterQueue.spec.resourceGroups[0].flavors[0].resources.find((r: any) => r.name === 'nvidia.com/gpu').nominalQuota).toBe('3');
  });

  test('ClusterQueue CEL rules: each flavor lists the covered resources, same size and order; no borrowingLimit without a cohort', () => {
    // clusterqueues.yaml v1beta2: resourceGroups[] rule "self.flavors.all(x, size(x.resources) == size(self.coveredResources))",
    // and spec rule "!has(self.cohortName) && has(self.resourceGroups) ? ... !has(r.borrowingLimit)".
    for (const g of m.ClusterQueue.spec.resourceGroups) {
      for (const f of g.flavors) expect(f.resources.map((r: any) => r.name)).toEqual(g.coveredResources);
    }
    expect(m.ClusterQueue.spec.cohortName).toBeUndefined();
    for (const f of m.ClusterQueue.spec.resourceGroups[0].flavors) for (const r of f.resources) expect(r.borrowingLimit).toBeUndefined();
  });

  test('quantities are canonical, so the API server stores them as written (kubernetes_manifest compares after apply)', () => {
    for (const r of m.ClusterQueue.spec.resourceGroups[0].flavors[0].resources) {
      expect(r.nominalQuota).toMatch(QUANTITY);
      expect(r.nominalQuota).toMatch(/^[1-9][0-9]*(Gi)?$/);
    }
  });

  test('ClusterQueue admits the cluster\'s namespace only (a null namespaceSelector admits none, {} all)', () => {
    expect(m.ClusterQueue.spec.namespaceSelector).toEqual({ matchLabels: { 'kubernetes.io/metadata.name': 'ml' } });
  });

  test('LocalQueue in the namespace, pointing at the ClusterQueue; cluster-scoped names carry the namespace', () => {
    expect(m.LocalQueue.metadata.namespace).toBe('ml');
    expect(m.LocalQueue.spec).toEqual({ clusterQueue: m.ClusterQueue.metadata.name });
    expect(m.ClusterQueue.metadata.name).toMatch(/^ml-/);
    expect(m.ResourceFlavor.metadata.namespace).toBeUndefined();
    // Created in order: flavor, queue, local queue.
    const raw = Object.values(resources(json, 'kubernetes_manifest')) as any[];
    const cq = raw.find((r) => r.manifest.kind === 'ClusterQueue');
    const lq = raw.find((r) => r.manifest.kind === 'LocalQueue');
    expect(cq.depends_on).toEqual([expect.stringMatching(/^kubernetes_manifest\.train_kueue_resource-flavor_/)]);
    expect(lq.depends_on).toEqual([expect.stringMatching(/^kubernetes_manifest\.train_kueue_cluster-queue_/)]);
  });

  test('adopts an existing ClusterQueue: only a LocalQueue is created, pointing at it', () => {
    const a = resolved(manifests(build({ kubernetes: { kueue: { clusterQueue: 'team-gpus' } } })));
    expect(Object.keys(a)).toEqual(['LocalQueue']);
    expect(a.LocalQueue.spec.clusterQueue).toBe('team-gpus');
    expect(crdErrors(CRD.localQueue, a.LocalQueue)).toEqual([]);
  });

  test('adopts an existing LocalQueue: no Kueue object is created', () => {
    const j = build({ kubernetes: { kueue: { localQueue: 'team-a', clusterQueue: 'team-gpus' } } });
    expect(resources(j, 'kubernetes_manifest')).toEqual({});
  });

  test('fails when an adopted queue name is not a Kubernetes object name', () => {
    expect(() => build({ kubernetes: { kueue: { localQueue: 'Team_A' } } })).toThrow(MlInfraError);
    expect(() => build({ kubernetes: { kueue: { localQueue: 'Team_A' } } })).toThrow(/kubernetes\.kueue\.localQueue.*Team_A.*DNS-1123/s);
  });

  test('fails when an adopted LocalQueue name cannot be a label value (over 63 characters)', () => {
    const long = `q${'a'.repeat(63)}`;
    expect(() => build({ kubernetes: { kueue: { localQueue: long } } })).toThrow(/kubernetes\.kueue\.localQueue.*at most 63 characters: jobs carry it as a label value/s);
    expect(() => build({ kubernetes: { kueue: { localQueue: 'a'.repeat(63) } } })).not.toThrow();
  });

  test('renderClusterQueue output validates for any catalog count', () => {
    for (const gpus of [1, 2, 4, 8]) {
      const cq = renderClusterQueue('q', {}, 'ml', 'f', { gpus, cpu: gpus * 4, memoryGiB: gpus * 16 });
      expect(crdErrors(CRD.clusterQueue, cq)).toEqual([]);
    }
  });
});

describe('Kueue and JobSet are required, not installed: a plan-time check names what to install', () => {
  const json = build();
  // Kueue first, JobSet second (the synthesized JSON orders them by key).
  const checks = (Object.values((json as any).data?.kubernetes_resources ?? {}) as any[]).sort((a, b) => (a.field_selector.includes('kueue') ? -1 : 1) - (b.field_selector.includes('kueue') ? -1 : 1));

  test('one CRD check per CRD, listing it by name; the Kueue objects wait for them', () => {
    expect(checks.map((c) => [c.api_version, c.kind, c.field_selector])).toEqual([
      ['apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'metadata.name=clusterqueues.kueue.x-k8s.io'],
      // nodes.max 4: multi-node jobs are JobSets.
      ['apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'metadata.name=jobsets.jobset.x-k8s.io'],
    ]);
    const flavor = (Object.values(resources(json, 'kubernetes_manifest')) as any[]).find((r) => r.manifest.kind === 'ResourceFlavor');
    expect([...flavor.depends_on].sort()).toEqual([
      expect.stringMatching(/^data\.kubernetes_resources\.k8s_mlinfra-crd-checks_jobset_/),
      expect.stringMatching(/^data\.kubernetes_resources\.k8s_mlinfra-crd-checks_kueue_/),
    ]);
  });

  test('the postcondition requires the served version and says how to install the pinned release', () => {
    const [kueue, jobset] = checks.map((c) => c.lifecycle.postcondition[0]);
    expect(kueue.condition).toBe('${try(contains([for v in self.objects[0].spec.versions : v.name if v.served], "v1beta2"), false)}');
    expect(kueue.error_message).toContain('helm install kueue oci://registry.k8s.io/kueue/charts/kueue --version=0.19.2');
    expect(kueue.error_message).toContain('v0.15.0 or later');
    expect(jobset.condition).toContain('"v1alpha2"');
    expect(jobset.error_message).toContain('helm install jobset oci://registry.k8s.io/jobset/charts/jobset --version 0.12.0');
  });

  test('single-node clusters do not require JobSet; two clusters on one target share the checks', () => {
    const one = build({ nodes: { min: 0, max: 1 } });
    expect(Object.values((one as any).data.kubernetes_resources).map((c: any) => c.field_selector)).toEqual(['metadata.name=clusterqueues.kueue.x-k8s.io']);
    const two = synth((stack) => {
      const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
      new GpuCluster(stack, 'a', { target: k8s, accelerator: 'L4', nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE });
      new GpuCluster(stack, 'b', { target: k8s, accelerator: 'T4', nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE });
    }).json;
    expect(Object.keys((two as any).data.kubernetes_resources)).toHaveLength(2);
  });
});

describe('the gateway\'s jobs fit the ClusterQueue this cluster creates', () => {
  test('nodes.max pods of acceleratorsPerNode GPUs, rendered as the gateway renders them, are admissible: GPUs exactly, CPU and memory within', () => {
    for (const [accelerator, count, max] of [['H100', 8, 4], ['L4', 1, 3], ['A100-80GB', 4, 2]] as const) {
      let cluster: GpuCluster | undefined;
      const json = synth((stack) => {
        const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
        cluster = new GpuCluster(stack, 'train', { target: k8s, accelerator, acceleratorsPerNode: count, nodes: { min: 0, max }, agentBundleDir: BUNDLE });
      }).json;
      const cq = resolved(manifests(json)).ClusterQueue;
      const quota = Object.fromEntries(cq.spec.resourceGroups[0].flavors[0].resources.map((r: any) => [r.name, r.nominalQuota]));
      const config = { ...cluster!.kubernetes!.gatewayConfig, namespace: 'ml', jobServiceAccount: 'jobs' };
      expect(config.quotaGpus).toBe(count * max);
      const spec = { argv: ['torchrun', 'train.py'], env: {}, gpus: count, nodes: max, priority: 0, retries: 0, kind: 'train' as const };
      const js: any = max > 1 ? renderJobSet(config, 'j000000000001', spec) : renderJob(config, 'j000000000001', spec);
      const pod = max > 1 ? js.spec.replicatedJobs[0].template.spec.template.spec : js.spec.template.spec;
      // Kueue counts a pod as max(sum of containers, largest init container), per resource.
      const req = (r: string) => Math.max(
        pod.containers.reduce((n: number, c: any) => n + qty(c.resources.requests[r] ?? '0'), 0),
        ...pod.initContainers.map((c: any) => qty(c.resources.requests[r] ?? '0')));
      expect(req('nvidia.com/gpu') * max).toBe(qty(quota['nvidia.com/gpu']));
      expect(req('cpu') * max).toBeLessThanOrEqual(qty(quota.cpu));
      expect(req('memory') * max).toBeLessThanOrEqual(qty(quota.memory));
      expect(pod.nodeSelector).toEqual(resolved(manifests(json)).ResourceFlavor.spec.nodeLabels);
    }
  });
});

/** A Kubernetes quantity as a number (m, Ki..Ti, plain). */
function qty(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$/.exec(q);
  if (!m) throw new Error(`quantity ${q}`);
  const mult: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}
