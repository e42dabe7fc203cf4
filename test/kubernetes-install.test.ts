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
import { renderJob, renderJobSet } from '../src/runtime-agent/k8s/objects';
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

/**
 * No validator runs Helm here (no Helm provider in the mirror), so each rule the install mode relies on
 * is a test, against facts read from the pinned charts (test/fixtures/crds/helm-charts-pinned.json).
 */
describe('Helm release rules, against the pinned charts', () => {
  const charts = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'crds', 'helm-charts-pinned.json'), 'utf8'));
  const { json } = build({ kueueAndJobSet: 'install' });
  const all = releases(json);
  const upstream = Object.values(all).filter((r: any) => r.chart.startsWith('oci://'));
  const byName = Object.fromEntries(upstream.map((r: any) => [r.name, r]));

  test('each chart is pinned to the version the install docs and its Chart.yaml name, from the documented OCI repository', () => {
    for (const name of ['kueue', 'jobset']) {
      const r = byName[name];
      expect(charts[name].chartVersion).toBe(r.version);
      expect(r.version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(charts[name].install).toContain(r.chart);
      expect(charts[name].install).toMatch(new RegExp(`--version[ =]"?${r.version.replace(/\./g, '\\.')}"?`));
    }
  });

  test('every release waits (controllers and webhooks ready before what depends on them), with a bounded timeout', () => {
    for (const r of Object.values(all) as any[]) {
      expect(r.wait).toBe(true);
      expect(r.timeout).toBeGreaterThan(0);
    }
  });

  test('values set on an upstream chart exist in its pinned values.yaml (today: none are set, the defaults are relied on)', () => {
    for (const r of upstream as any[]) {
      const keys = [...(r.values ?? []).flatMap((v: string) => Object.keys(JSON.parse(v))), ...(r.set ?? []).map((x: any) => String(x.name).split('.')[0])];
      expect({ chart: r.name, unknown: keys.filter((k) => !charts[r.name].topLevelValueKeys.includes(k)) }).toEqual({ chart: r.name, unknown: [] });
      expect(keys).toEqual([]);
    }
  });

  test('the defaults relied on: Kueue manages batch/v1 Jobs and JobSets, and only those labelled with a queue name', () => {
    expect(charts.kueue.defaultFrameworks).toEqual(expect.arrayContaining(['batch/job', 'jobset.x-k8s.io/jobset']));
    expect(charts.kueue.manageJobsWithoutQueueName).toMatch(/^commented out/);
    // The plain-pod integration is on by default: job pods must not carry the queue label, or Kueue would gate them twice.
    expect(charts.kueue.defaultFrameworks).toContain('pod');
    const cfg = { namespace: 'ml', cluster: 'c', localQueue: 'c', gpusPerNode: 1, maxNodes: 2, image: 'i', agentImage: 'a', bundleConfigMap: 'b', jobServiceAccount: 's',
      nodeSelector: {}, tolerations: [], cpuPerGpu: 1, memoryGiBPerGpu: 1, artifactsUri: 's3://b/c', labels: {} };
    const spec = { argv: ['x'], env: {}, gpus: 1, nodes: 2, priority: 0, retries: 0, kind: 'train' as const };
    const job = renderJob(cfg, 'j000000000001', { ...spec, nodes: 1 }) as any;
    const js = renderJobSet(cfg, 'j000000000002', spec) as any;
    expect(job.metadata.labels['kueue.x-k8s.io/queue-name']).toBe('c');
    expect(js.metadata.labels['kueue.x-k8s.io/queue-name']).toBe('c');
    expect(job.spec.template.metadata.labels['kueue.x-k8s.io/queue-name']).toBeUndefined();
    expect(js.spec.replicatedJobs[0].template.metadata.labels['kueue.x-k8s.io/queue-name']).toBeUndefined();
    expect(js.spec.replicatedJobs[0].template.spec.template.metadata.labels['kueue.x-k8s.io/queue-name']).toBeUndefined();
  });

  test('CRDs before objects: every kind the queue release renders is a CRD its dependencies install', () => {
    const r = Object.values(all).find((x: any) => x.name.endsWith('-queues')) as any;
    const kinds = JSON.parse(r.values[0]).objects.map((o: any) => o.kind);
    const installedBy = (kind: string) => ['kueue', 'jobset'].filter((c) => charts[c].crdKinds.includes(kind));
    for (const k of kinds) expect({ kind: k, by: installedBy(k) }).toEqual({ kind: k, by: ['kueue'] });
    expect(r.depends_on).toEqual(expect.arrayContaining(upstream.map((u: any) => expect.stringContaining(`helm_release.k8s_mlinfra-kueue-install_${u.name}_`))));
    // Kueue's CRDs are templates (applied, and upgraded, with the release); JobSet's are in crds/ (Helm installs them
    // before the templates on the first install and never upgrades them: a JobSet chart upgrade needs its CRD applied by hand).
    expect([charts.kueue.crdsIn, charts.jobset.crdsIn]).toEqual(['templates/crd', 'crds']);
    // The test's own list of CRD kinds covers what the pinned charts install.
    for (const k of [...charts.kueue.crdKinds, ...charts.jobset.crdKinds]) expect(CRD_KINDS.test(k) || /^(MultiKueue|ProvisioningRequestConfig)/.test(k)).toBe(true);
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
