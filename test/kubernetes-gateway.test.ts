/**
 * The gateway's Kubernetes objects (src/constructs/gpu-cluster/kubernetes-gateway.ts): least RBAC,
 * checked against every call the real gateway makes to a recording fake API server; the config it
 * reads; non-root, read-only pods; NetworkPolicy; and zero policy findings.
 */
import 'cdktf/lib/testing/adapters/jest';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Policy } from '../src/aspects/policy/policy';
import { PolicyPack } from '../src/aspects/policy/pack';
import { KubernetesTarget } from '../src';
import { buildKubernetesGateway, GATEWAY_RULES } from '../src/constructs/gpu-cluster/kubernetes-gateway';
import { buildGateway } from '../src/runtime-agent/k8s/gateway';
import { KubeClient } from '../src/runtime-agent/k8s/kube-client';
import { readGatewayConfig } from '../src/runtime-agent/k8s/main';
import { only, resources, synth } from './helpers';
import { FakeApiServer } from './runtime-agent/k8s-fake-apiserver';

const CONFIG = {
  cluster: 'train', localQueue: 'train', quotaGpus: 16, gpusPerNode: 8, maxNodes: 2,
  image: 'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime', agentImage: 'node:24-bookworm-slim', bundleConfigMap: 'train-agent',
  nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-L4' }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists' as const, effect: 'NoSchedule' as const }],
  cpuPerGpu: 2, memoryGiBPerGpu: 8, artifactsUri: 's3://acme-ml/train', labels: { 'app.kubernetes.io/managed-by': 'cdktf-mlinfra' },
};

const findings: string[] = [];
const { json } = synth((stack) => {
  const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
  buildKubernetesGateway(stack, k8s, {
    name: 'train', labels: { 'app.kubernetes.io/managed-by': 'cdktf-mlinfra' }, agentImage: 'node:24-bookworm-slim', port: 7070,
    bundleConfigMap: 'train-agent', tokenSecret: 'train-agent-token', config: CONFIG, clientLabel: 'mlinfra.dev/agent-client',
  });
  Policy.apply(stack, { pack: PolicyPack.default(), reporter: (f) => findings.push(`${f.ruleId} ${f.path}: ${f.detail}`) });
});
const NS = /\$\{kubernetes_namespace_v1\.[^}]+\.metadata\[0\]\.name\}/g;

describe('gateway objects', () => {
  test('zero policy findings', () => {
    expect(findings).toEqual([]);
  });

  test('the config the construct writes is the config the gateway reads', () => {
    const cm = Object.values(resources(json, 'kubernetes_config_map_v1')).find((c: any) => c.data['config.json']) as any;
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-gwcfg-'));
    try {
      // References resolve in a real apply: the namespace and the job service account's name.
      const text = cm.data['config.json'].replace(NS, 'ml').replace(/\$\{kubernetes_service_account_v1\.[^}]+\.metadata\[0\]\.name\}/, 'train-jobs');
      writeFileSync(join(dir, 'config.json'), text);
      expect(readGatewayConfig(join(dir, 'config.json'))).toEqual({ ...CONFIG, namespace: 'ml', jobServiceAccount: 'train-jobs', pipelineRunsConfigMap: 'train-pipeline-runs' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('pods: non-root, read-only root with a /tmp volume, the gateway command, the token from its Secret', () => {
    const d = only(json, 'kubernetes_deployment_v1') as any;
    const pod = d.spec.template.spec;
    const c = pod.container[0];
    expect(c.command).toEqual(['node', '/opt/mlinfra/agent/mlinfra-agent.js', 'gateway', '--host', '0.0.0.0', '--port', '7070',
      '--config', '/etc/mlinfra/gateway/config.json', '--token-file', '/var/run/mlinfra/token']);
    expect(c.security_context).toMatchObject({ run_as_non_root: true, read_only_root_filesystem: true, allow_privilege_escalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.volume_mount).toContainEqual({ name: 'tmp', mount_path: '/tmp' });
    expect(pod.volume).toContainEqual({ name: 'token', secret: { secret_name: 'train-agent-token', default_mode: '0400', items: [{ key: 'token', path: 'token' }] } });
    expect(d.spec.replicas).toBe('2');
    const accounts = Object.values(resources(json, 'kubernetes_service_account_v1')) as any[];
    expect(accounts.map((a) => [a.metadata.name, a.automount_service_account_token]).sort()).toEqual([['train-gateway', true], ['train-jobs', false]]);
  });

  test('NetworkPolicy: the API port from client-labelled pods only', () => {
    const np = only(json, 'kubernetes_network_policy_v1') as any;
    expect(np.spec.ingress).toEqual([{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/agent-client': 'true' } } }], ports: [{ port: '7070', protocol: 'TCP' }] }]);
  });

  test('RBAC: a namespaced Role only, on exact kinds and verbs', () => {
    expect(resources(json, 'kubernetes_cluster_role_v1')).toEqual({});
    const role = only(json, 'kubernetes_role_v1') as any;
    expect(role.rule).toEqual(GATEWAY_RULES('train', 'train-pipeline-runs').map((r) => ({
      api_groups: r.apiGroups, resources: r.resources, verbs: r.verbs, ...(r.resourceNames ? { resource_names: r.resourceNames } : {}),
    })));
  });
});

describe('the Role allows every call the gateway makes, and nothing it does not make', () => {
  test('a session of submit, status, list, logs, cancel (Job and JobSet) against the fake API server', async () => {
    const fake = new FakeApiServer('sa');
    await fake.start();
    fake.put('apis/kueue.x-k8s.io/v1beta2', 'localqueues', { metadata: { name: 'train', namespace: 'ml' }, spec: { clusterQueue: 'q' } });
    fake.put('api/v1', 'configmaps', { metadata: { name: 'train-pipeline-runs', namespace: 'ml', resourceVersion: '1' }, data: { 'runs.json': '{}' } });
    const app = await buildGateway({ config: { ...CONFIG, namespace: 'ml', jobServiceAccount: 'train-jobs', pipelineRunsConfigMap: 'train-pipeline-runs' }, kube: new KubeClient({ server: fake.url, token: () => 'sa' }), token: 'gateway-token-0123456789', version: 't' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const call = (method: string, path: string, body?: unknown) => fetch(`${url}${path}`, {
      method, headers: { 'authorization': 'Bearer gateway-token-0123456789', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then((r) => r.json() as Promise<any>);
    try {
      const job = await call('POST', '/v1/jobs', { argv: ['true'], gpus: 1 });
      const set = await call('POST', '/v1/jobs', { argv: ['torchrun', 'x.py'], gpus: 8, nodes: 2 });
      fake.put('api/v1', 'pods', { metadata: { name: `${job.id}-p`, namespace: 'ml', labels: { 'mlinfra.dev/cluster': 'train', 'mlinfra.dev/job-id': job.id } }, status: { phase: 'Running' } });
      for (const id of [job.id, set.id]) {
        await call('GET', `/v1/jobs/${id}`);
        await fetch(`${url}/v1/jobs/${id}/logs`, { headers: { authorization: 'Bearer gateway-token-0123456789' } }).then((r) => r.text());
      }
      await call('GET', '/v1/jobs');
      expect(await call('POST', '/v1/pipeline-runs', { pipeline: 'ltv', state: 'succeeded', runId: 'r1', endedAt: '2026-01-01T03:00:00Z' })).toEqual({ recorded: true });
      await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer gateway-token-0123456789' } }).then((r) => r.text());
      expect((await call('POST', `/v1/jobs/${job.id}/cancel`)).state).toBe('cancelled');
      expect((await call('POST', `/v1/jobs/${set.id}/cancel`)).state).toBe('cancelled');
    } finally {
      await app.close();
      await fake.stop();
    }
    // Each API call as (group, resource, verb, name) the way RBAC sees it.
    const used = fake.calls.map((c) => {
      const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/ml\/([^/]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(c.path)!;
      const [, group = '', plural, name, sub] = m;
      const verb = c.method === 'POST' ? 'create' : c.method === 'DELETE' ? 'delete' : c.method === 'PUT' ? 'update' : name ? 'get' : 'list';
      return { group, resource: sub ? `${plural}/${sub}` : plural, verb, name };
    });
    const rules = GATEWAY_RULES('train', 'train-pipeline-runs');
    const allows = (u: typeof used[number]) => rules.some((r) => r.apiGroups.includes(u.group) && r.resources.includes(u.resource) && r.verbs.includes(u.verb)
      && (!r.resourceNames || (u.name !== undefined && r.resourceNames.includes(u.name))));
    expect(used.filter((u) => !allows(u))).toEqual([]);
    // Least privilege: every verb granted was used.
    for (const r of rules) {
      for (const v of r.verbs) {
        expect({ rule: r.resources[0], verb: v, used: used.some((u) => r.resources.includes(u.resource) && u.verb === v) }).toEqual({ rule: r.resources[0], verb: v, used: true });
      }
    }
  });
});

describe('pipeline run ends: counted in the cluster\'s ConfigMap, shared by every gateway replica', () => {
  test('two replicas record concurrently without losing a count; a repeated report counts once; /metrics serves the series', async () => {
    const fake = new FakeApiServer('sa');
    await fake.start();
    fake.put('api/v1', 'configmaps', { metadata: { name: 'train-pipeline-runs', namespace: 'ml', resourceVersion: '1' }, data: { 'runs.json': '{}' } });
    const config = { ...CONFIG, namespace: 'ml', jobServiceAccount: 'train-jobs', pipelineRunsConfigMap: 'train-pipeline-runs' };
    const replicas = await Promise.all([0, 1].map(async () => {
      const app = await buildGateway({ config, kube: new KubeClient({ server: fake.url, token: () => 'sa' }), token: 'gateway-token-0123456789', version: 't' });
      return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) };
    }));
    const report = (i: number, body: unknown) => fetch(`${replicas[i % 2].url}/v1/pipeline-runs`, {
      method: 'POST', headers: { 'authorization': 'Bearer gateway-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() as any }));
    try {
      const runs = Array.from({ length: 6 }, (_, i) => ({ pipeline: 'ltv', state: i === 5 ? 'failed' : 'succeeded', runId: `r${i}`, endedAt: `2026-01-0${i + 1}T03:00:00Z` }));
      const answers = await Promise.all(runs.map((b, i) => report(i, b)));
      expect(answers.map((a) => a.body.recorded)).toEqual([true, true, true, true, true, true]);
      // Some writes met a newer resourceVersion and were retried on it.
      expect(fake.callsTo('PUT', /configmaps/).length).toBeGreaterThanOrEqual(6);
      expect((await report(0, runs[2])).body).toEqual({ recorded: false });
      expect((await report(0, { ...runs[0], state: 'ok' })).status).toBe(400);
      const metrics = await fetch(`${replicas[1].url}/metrics`, { headers: { authorization: 'Bearer gateway-token-0123456789' } }).then((r) => r.text());
      expect(metrics).toContain('mlinfra_pipeline_runs_total{pipeline="ltv",state="succeeded"} 5\n');
      expect(metrics).toContain('mlinfra_pipeline_runs_total{pipeline="ltv",state="failed"} 1\n');
      expect(metrics).toContain(`mlinfra_pipeline_last_success_timestamp_seconds{pipeline="ltv"} ${Date.parse('2026-01-05T03:00:00Z') / 1000}\n`);
    } finally {
      for (const r of replicas) await r.app.close();
      await fake.stop();
    }
  });
});
