/**
 * Promotion through the endpoint's canary and stable Deployments, against a recording fake of the
 * Kubernetes API (Deployments GET and strategic-merge PATCH) on loopback. The fake rolls a Deployment
 * out after `rolloutPolls` GETs; a pod template whose MODEL_URI is in `crashing` never becomes
 * available and reports ProgressDeadlineExceeded, as a crash-looping model server does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelRegistry, RegistryError } from '../../src/runtime-agent/registry/registry';
import { rolloutKubernetes, type Deployment, type DeploymentApi, type KubernetesRolloutConfig } from '../../src/runtime-agent/registry/rollout-kubernetes';
import { Storage } from '../../src/runtime-agent/storage/index';

interface FakeKube { url: string; calls: { method: string; path: string; body?: any }[]; deployments: Map<string, Deployment & { polls: number }>; crashing: Set<string>; close(): Promise<void> }  

function deployment(name: string, replicas: number, uri: string, version: string): Deployment & { polls: number } {
  return {
    metadata: { name, generation: 1 }, polls: 0,
    spec: { replicas, template: { spec: { containers: [{ name: 'server', env: [{ name: 'PORT', value: '8080' }, { name: 'MODEL_URI', value: uri }, { name: 'MLINFRA_MODEL_VERSION', value: version }] }] } } },
    status: { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas },
  };
}

/** Strategic merge for what the rollout patches: replicas, containers by name, env by name. */
function merge(d: Deployment, p: any): void {  
  if (p.spec?.replicas !== undefined) d.spec.replicas = p.spec.replicas;
  for (const pc of p.spec?.template?.spec?.containers ?? []) {
    const c = d.spec.template.spec.containers.find((x) => x.name === pc.name)!;
    for (const pe of pc.env ?? []) {
      const e = (c.env ??= []).find((x) => x.name === pe.name);
      if (e) e.value = pe.value; else c.env.push(pe);
    }
  }
}

async function startFakeKube(rolloutPolls = 2): Promise<FakeKube> {
  const fake: FakeKube = { url: '', calls: [], deployments: new Map(), crashing: new Set(), close: () => new Promise((r) => srv.close(() => r())) };
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      const m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/?]+)$/.exec(req.url ?? '');
      const body = raw ? JSON.parse(raw) : undefined;
      fake.calls.push({ method: req.method ?? '', path: req.url ?? '', ...(body ? { body } : {}) });
      const d = m ? fake.deployments.get(`${m[1]}/${m[2]}`) : undefined;
      const send = (s: number, v: unknown) => res.writeHead(s, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (!d) return send(404, { kind: 'Status', reason: 'NotFound', message: `deployments.apps "${m?.[2]}" not found` });
      if (req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/strategic-merge-patch+json') return send(415, { reason: 'UnsupportedMediaType' });
        merge(d, body);
        d.metadata.generation = (d.metadata.generation ?? 1) + 1;
        d.polls = 0;
        return send(200, d);
      }
      const want = d.spec.replicas ?? 1;
      const uri = d.spec.template.spec.containers[0].env?.find((e) => e.name === 'MODEL_URI')?.value ?? '';
      if (d.status!.observedGeneration! < d.metadata.generation! && ++d.polls >= rolloutPolls) {
        d.status = fake.crashing.has(uri) && want > 0
          ? { observedGeneration: d.metadata.generation, replicas: want, updatedReplicas: want, availableReplicas: 0,
            conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${d.metadata.name}-7d9" has timed out progressing.` }] }
          : { observedGeneration: d.metadata.generation, replicas: want, updatedReplicas: want, availableReplicas: want };
      }
      return send(200, d);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return fake;
}

/** The Deployments API over HTTP, as the agent calls it. */
const apiOf = (url: string): DeploymentApi => ({
  getDeployment: async (ns, name) => (await fetch(`${url}/apis/apps/v1/namespaces/${ns}/deployments/${name}`)).json() as Promise<Deployment>,
  patchDeployment: async (ns, name, patch) => (await fetch(`${url}/apis/apps/v1/namespaces/${ns}/deployments/${name}`, {
    method: 'PATCH', headers: { 'content-type': 'application/strategic-merge-patch+json' }, body: JSON.stringify(patch),
  })).json() as Promise<Deployment>,
});

let dir: string;
let kube: FakeKube;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-k8s-rollout-'));
  kube = await startFakeKube();
  kube.deployments.set('ml/ltv-api-stable', deployment('ltv-api-stable', 3, 's3://art/models/versions/v0/model/', 'v0'));
  kube.deployments.set('ml/ltv-api-canary', deployment('ltv-api-canary', 0, 's3://art/models/versions/v0/model/', 'v0'));
});
afterEach(async () => {
  await kube.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const cfg: KubernetesRolloutConfig = { namespace: 'ml', stable: 'ltv-api-stable', canary: 'ltv-api-canary', canaryReplicas: 1, bakeSeconds: 120, pollSeconds: 0 };
async function registry(): Promise<ModelRegistry> {
  const reg = new ModelRegistry(new Storage(), `file://${path.join(dir, 'art')}`, 'ltv');
  const m = fs.mkdtempSync(path.join(dir, 'model-'));
  fs.writeFileSync(path.join(m, 'model.pt'), 'w');
  await reg.register({ runId: 'r1', modelDir: m });
  return reg;
}
const envOf = (name: string) => Object.fromEntries((kube.deployments.get(`ml/${name}`)!.spec.template.spec.containers[0].env ?? []).map((e) => [e.name, e.value]));

test('canary takes the version and bakes, then stable moves to it and the canary scales to zero', async () => {
  const reg = await registry();
  const slept: number[] = [];
  await reg.promote('v1', { rollout: (v) => rolloutKubernetes(apiOf(kube.url), cfg, v, { sleep: async (ms) => { slept.push(ms); } }) });
  const v1 = await reg.show('v1');
  const patches = kube.calls.filter((c) => c.method === 'PATCH').map((c) => [c.path.split('/').pop(), c.body]);
  expect(patches).toEqual([
    ['ltv-api-canary', { spec: { replicas: 1, template: { spec: { containers: [{ name: 'server', env: [{ name: 'MODEL_URI', value: v1.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: 'v1' }] }] } } } }],
    ['ltv-api-stable', { spec: { template: { spec: { containers: [{ name: 'server', env: [{ name: 'MODEL_URI', value: v1.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: 'v1' }] }] } } } }],
    ['ltv-api-canary', { spec: { replicas: 0 } }],
  ]);
  expect(slept).toContain(120_000);
  expect(envOf('ltv-api-stable')).toEqual({ PORT: '8080', MODEL_URI: v1.modelUri, MLINFRA_MODEL_VERSION: 'v1' });
  expect(kube.deployments.get('ml/ltv-api-canary')!.spec.replicas).toBe(0);
  expect((await reg.state()).current).toBe('v1');
});

test('fails with the pointer and the stable pods unchanged when the canary crash-loops', async () => {
  const reg = await registry();
  kube.crashing.add((await reg.show('v1')).modelUri);
  let err: RegistryError | undefined;
  try {
    await reg.promote('v1', { rollout: (v) => rolloutKubernetes(apiOf(kube.url), cfg, v, { sleep: async () => undefined }) });
  } catch (e) {
    err = e as RegistryError;
  }
  expect(err?.code).toBe('rollout_failed');
  expect(err?.message).toMatch(/canary of v1 failed, v0 keeps serving: .*ProgressDeadlineExceeded/);
  expect(envOf('ltv-api-stable')).toMatchObject({ MODEL_URI: 's3://art/models/versions/v0/model/', MLINFRA_MODEL_VERSION: 'v0' });
  expect(envOf('ltv-api-canary')).toMatchObject({ MODEL_URI: 's3://art/models/versions/v0/model/' });
  expect(kube.deployments.get('ml/ltv-api-canary')!.spec.replicas).toBe(0);
  expect(kube.calls.filter((c) => c.method === 'PATCH' && c.path.endsWith('ltv-api-stable'))).toHaveLength(0);
  expect((await reg.state()).current).toBeNull();
});

test('without a canary the stable Deployment is updated in place and moved back when it cannot become available', async () => {
  const reg = await registry();
  kube.crashing.add((await reg.show('v1')).modelUri);
  const inPlace = { ...cfg, canary: undefined };
  await expect(reg.promote('v1', { rollout: (v) => rolloutKubernetes(apiOf(kube.url), inPlace, v, { sleep: async () => undefined }) }))
    .rejects.toThrow(/stable Deployment did not take v1, moved back to v0/);
  expect(envOf('ltv-api-stable')).toMatchObject({ MLINFRA_MODEL_VERSION: 'v0' });
});
