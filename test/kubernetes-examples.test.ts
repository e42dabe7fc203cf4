/**
 * The Kubernetes examples (issue 19): Kueue objects for every GpuCluster, no StatefulSet and no pod
 * requesting a GPU at apply time, every pipeline a CronJob that runs through its cluster's gateway,
 * and zero policy findings.
 */
import { exampleOutput } from './support/examples';

const K8S_STACKS: Array<[example: string, stack: string]> = [
  ['gpu-clusters', 'gpu-k8s'], ['training-pipeline', 'pipeline-k8s'], ['monitoring-stack', 'ops-k8s'], ['platform', 'platform-k8s'],
];

describe.each(K8S_STACKS)('example %s, stack %s', (example, id) => {
  const out = exampleOutput(example);
  const json = out.stacks[id];
  const all = (type: string): any[] => Object.values(json.resource?.[type] ?? {});

  test('a ResourceFlavor, ClusterQueue and LocalQueue per GpuCluster, after the CRD checks', () => {
    const kinds = all('kubernetes_manifest').map((m) => m.manifest.kind).filter((k) => /Flavor|Queue/.test(k)).sort();
    const gateways = all('kubernetes_deployment_v1').filter((d) => d.metadata.labels['app.kubernetes.io/component'] === 'gateway');
    expect(gateways.length).toBeGreaterThan(0);
    expect(kinds).toEqual(gateways.flatMap(() => ['ClusterQueue', 'LocalQueue', 'ResourceFlavor']).sort());
    expect(Object.keys(json.data?.kubernetes_resources ?? {}).length).toBeGreaterThan(0);
  });

  test('no StatefulSet, and no object that requests a GPU before a job does', () => {
    // (A feature store's Redis is a StatefulSet of its own.)
    expect(all('kubernetes_stateful_set_v1').filter((s) => s.metadata.labels['app.kubernetes.io/name'] === 'mlinfra-agent')).toEqual([]);
    for (const type of ['kubernetes_deployment_v1', 'kubernetes_cron_job_v1']) {
      for (const r of all(type)) {
        // Model endpoints serve on GPUs by design; training pods never hold one idle.
        if (r.metadata.labels?.['app.kubernetes.io/name'] === 'mlinfra-model-endpoint') continue;
        expect(JSON.stringify(r)).not.toContain('nvidia.com/gpu');
      }
    }
  });

  test('pipelines run through the gateway: the CronJob\'s runner names a gateway Service', () => {
    for (const cron of all('kubernetes_cron_job_v1')) {
      const cmd: string[] = cron.spec.job_template.spec.template.spec.container[0].command;
      expect(cmd.slice(2, 3)).toEqual(['run-pipeline']);
      expect(cmd[cmd.indexOf('--url') + 1]).toMatch(/^http:\/\/\$\{kubernetes_service_v1\.[a-z0-9_-]+_gateway_service_[A-Z0-9]+\.metadata\[0\]\.name\}\./);
    }
  });

  test('zero policy findings (suppressions carry their reason)', () => {
    expect(out.findings.filter((f) => f.path.startsWith(`${id}/`) && !f.suppressed).map((f) => `${f.ruleId} ${f.path}: ${f.detail}`)).toEqual([]);
  });
});
