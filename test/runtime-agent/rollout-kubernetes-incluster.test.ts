/**
 * A promotion from a pod (the pipeline runner) reaches Kubernetes endpoints: with the in-cluster
 * config (KUBERNETES_SERVICE_HOST/PORT, the service account's token, CA and namespace files) the
 * registry lists the endpoint record ConfigMaps by label in the pod's namespace and rolls the version
 * out through the canary, then the stable Deployment. The API server is the recording fake on
 * loopback behind a TLS front with a self-signed certificate, so the client's CA and bearer token are
 * the real ones it reads from the service account directory.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { inClusterClient } from '../../src/runtime-agent/k8s/kube-client';
import { PIPELINE_LABEL, readEndpoints, RECORD_LABEL, rolloutToAll } from '../../src/runtime-agent/registry/endpoints';
import { ModelRegistry, RegistryError } from '../../src/runtime-agent/registry/registry';
import { Storage } from '../../src/runtime-agent/storage/index';
import { describeWithTools, type Tool } from '../support/tools';
import { FakeApiServer } from './k8s-fake-apiserver';

const OPENSSL: Tool = { name: 'openssl', install: 'apt-get install -y --no-install-recommends openssl', present: () => fs.existsSync('/usr/bin/openssl') };
const NS = 'ml';
const TOKEN = 'runner-token-abc';
const UNBOUND = 'token-of-an-account-without-the-role';

function deployment(name: string, replicas: number, uri: string, version: string) {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NS, generation: 1 },
    spec: { replicas, template: { spec: { containers: [{ name: 'server', image: 'srv:1', env: [{ name: 'PORT', value: '8080' }, { name: 'MODEL_URI', value: uri }, { name: 'MLINFRA_MODEL_VERSION', value: version }] }] } } },
    status: { observedGeneration: 1, replicas, updatedReplicas: replicas, availableReplicas: replicas },
  };
}

function recordConfigMap(name: string, pipeline: string, rec: object) {
  return {
    metadata: { name: `${name}-endpoint-record`, namespace: NS, labels: { [RECORD_LABEL]: 'true', [PIPELINE_LABEL]: pipeline } },
    data: { [`${name}.json`]: JSON.stringify(rec) },
  };
}

describeWithTools([OPENSSL])('promotion from a pod rolls out to the Kubernetes endpoints it finds in its namespace', () => {
  let dir: string;
  let fake: FakeApiServer;
  let front: https.Server;
  let env: NodeJS.ProcessEnv;
  const contentTypes: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-incluster-'));
    const sa = path.join(dir, 'serviceaccount');
    fs.mkdirSync(sa);
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=kubernetes',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(sa, 'ca.crt')], { encoding: 'utf8' });
    if (gen.status !== 0) throw new Error(gen.stderr);
    fs.writeFileSync(path.join(sa, 'token'), `${TOKEN}\n`);
    fs.writeFileSync(path.join(sa, 'namespace'), NS);
    fake = new FakeApiServer(TOKEN);
    const backend = new URL(await fake.start());
    // TLS in front of the plain-HTTP fake, as the API server's own certificate would be.
    front = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(sa, 'ca.crt')) }, (req, res) => {
      if (req.method === 'PATCH') contentTypes.push(String(req.headers['content-type']));
      // RBAC's answer to an account no Role is bound to (the fake has no RBAC).
      if (req.headers.authorization === `Bearer ${UNBOUND}`) {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', status: 'Failure', code: 403, reason: 'Forbidden', message: `configmaps is forbidden: User "system:serviceaccount:${NS}:other" cannot list resource "configmaps"` }));
        return;
      }
      const up = http.request({ hostname: backend.hostname, port: backend.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String((front.address() as AddressInfo).port) };
  });
  afterAll(async () => {
    front?.closeAllConnections();
    await new Promise<void>((r) => (front ? front.close(() => r()) : r()));
    await fake?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function registry(name: string): Promise<{ reg: ModelRegistry; v1: string; v2: string }> {
    const reg = new ModelRegistry(new Storage(), `file://${dir}/${name}-artifacts`, name);
    const model = (t: string) => { const d = fs.mkdtempSync(path.join(dir, 'model-')); fs.writeFileSync(path.join(d, 'model.pt'), t); return d; };
    const v1 = (await reg.register({ runId: 'r1', modelDir: model('one') })).version;
    const v2 = (await reg.register({ runId: 'r2', modelDir: model('two') })).version;
    // v1 serves: moved by hand (no rollout), as a first apply's first promotion would leave it.
    await reg.promote(v1);
    return { reg, v1, v2 };
  }

  test('not in a pod (no KUBERNETES_SERVICE_HOST, or no token mounted): no cluster client', () => {
    expect(inClusterClient({}, path.join(dir, 'serviceaccount'))).toBeNull();
    expect(inClusterClient(env, path.join(dir, 'nowhere'))).toBeNull();
  });

  test('finds its record ConfigMap by label and moves the canary, then the stable Deployment, to the version', async () => {
    const { reg, v1, v2 } = await registry('ltv');
    const rec = { kind: 'kubernetes', name: 'ltv-api', namespace: NS, stable: 'ltv-api-stable', canary: 'ltv-api-canary', canaryReplicas: 1, container: 'server', bakeSeconds: 0 };
    fake.put('api/v1', 'configmaps', recordConfigMap('ltv-api', 'ltv', rec));
    // Another pipeline's endpoint in the same namespace: not this pipeline's to move.
    fake.put('api/v1', 'configmaps', recordConfigMap('churn-api', 'churn', { ...rec, name: 'churn-api', stable: 'churn-api-stable', canary: 'churn-api-canary' }));
    const oldUri = (await reg.show(v1)).modelUri;
    fake.put('apis/apps/v1', 'deployments', deployment('ltv-api-stable', 2, oldUri, v1));
    fake.put('apis/apps/v1', 'deployments', deployment('ltv-api-canary', 0, oldUri, v1));
    fake.calls.length = 0;
    contentTypes.length = 0;

    const cluster = inClusterClient(env, path.join(dir, 'serviceaccount'));
    expect(cluster?.namespace).toBe(NS);
    const endpoints = await readEndpoints(new Storage(), reg.artifactsUri, { pipeline: 'ltv', cluster });
    expect(endpoints).toEqual([rec]);
    await reg.promote(v2, { rollout: rolloutToAll(endpoints, { cluster }) });

    const next = await reg.show(v2);
    const envPatch = (uri: string, version: string, replicas?: number) => ({
      spec: { ...(replicas === undefined ? {} : { replicas }), template: { spec: { containers: [{ name: 'server', env: [{ name: 'MODEL_URI', value: uri }, { name: 'MLINFRA_MODEL_VERSION', value: version }] }] } } },
    });
    const dep = (n: string) => `/apis/apps/v1/namespaces/${NS}/deployments/${n}`;
    expect(fake.calls.map((c) => ({ method: c.method, path: c.path, ...(Object.keys(c.query).length ? { query: c.query } : {}), ...(c.body ? { body: c.body } : {}) }))).toEqual([
      { method: 'GET', path: `/api/v1/namespaces/${NS}/configmaps`, query: { labelSelector: `${RECORD_LABEL}=true,${PIPELINE_LABEL}=ltv` } },
      { method: 'GET', path: dep('ltv-api-stable') },
      { method: 'PATCH', path: dep('ltv-api-canary'), body: envPatch(next.modelUri, v2, 1) },
      { method: 'GET', path: dep('ltv-api-canary') },
      { method: 'GET', path: dep('ltv-api-canary') },
      { method: 'PATCH', path: dep('ltv-api-stable'), body: envPatch(next.modelUri, v2) },
      { method: 'GET', path: dep('ltv-api-stable') },
      { method: 'PATCH', path: dep('ltv-api-canary'), body: { spec: { replicas: 0 } } },
    ]);
    expect(contentTypes).toEqual(Array(3).fill('application/strategic-merge-patch+json'));
    const stable = fake.get('apis/apps/v1', 'deployments', NS, 'ltv-api-stable');
    // Merged by name: the image and the other env vars stay.
    expect(stable.spec.template.spec.containers[0]).toEqual({ name: 'server', image: 'srv:1', env: [{ name: 'PORT', value: '8080' }, { name: 'MODEL_URI', value: next.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: v2 }] });
    expect(fake.get('apis/apps/v1', 'deployments', NS, 'ltv-api-canary').spec.replicas).toBe(0);
    expect((await reg.state()).current).toBe(v2);
  });

  test('a record whose Deployment is missing leaves current unchanged and says which Deployment', async () => {
    const { reg, v1, v2 } = await registry('fraud');
    fake.put('api/v1', 'configmaps', recordConfigMap('fraud-api', 'fraud', { kind: 'kubernetes', name: 'fraud-api', namespace: NS, stable: 'fraud-api-stable', container: 'server', bakeSeconds: 0 }));
    fake.calls.length = 0;
    const cluster = inClusterClient(env, path.join(dir, 'serviceaccount'));
    const endpoints = await readEndpoints(new Storage(), reg.artifactsUri, { pipeline: 'fraud', cluster });
    const err = await reg.promote(v2, { rollout: rolloutToAll(endpoints, { cluster }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('rollout_failed');
    expect((err as Error).message).toBe(`rollout of ${v2} failed, ${v1} still serves: reading Deployment ${NS}/fraud-api-stable: not found (is the endpoint deployed in this namespace?)`);
    expect(fake.callsTo('PATCH', /./)).toEqual([]);
    const state = await reg.state();
    expect(state.current).toBe(v1);
    expect(state.history.at(-1)).toMatchObject({ version: v2, outcome: 'failed', from: v1 });
  });

  test('a stale token is refused (Unauthorized); an account no endpoint bound its Role to finds no records', async () => {
    const { reg, v1 } = await registry('bad');
    const saWith = (token: string) => {
      const sa = fs.mkdtempSync(path.join(dir, 'sa-'));
      fs.copyFileSync(path.join(dir, 'serviceaccount', 'ca.crt'), path.join(sa, 'ca.crt'));
      fs.writeFileSync(path.join(sa, 'token'), token);
      fs.writeFileSync(path.join(sa, 'namespace'), NS);
      return sa;
    };
    fake.put('api/v1', 'configmaps', recordConfigMap('bad-api', 'bad', { kind: 'kubernetes', name: 'bad-api', namespace: NS, stable: 'bad-api-stable', container: 'server', bakeSeconds: 0 }));
    await expect(readEndpoints(new Storage(), reg.artifactsUri, { pipeline: 'bad', cluster: inClusterClient(env, saWith('stale')) })).rejects.toThrow('Unauthorized');
    expect(await readEndpoints(new Storage(), reg.artifactsUri, { pipeline: 'bad', cluster: inClusterClient(env, saWith(UNBOUND)) })).toEqual([]);
    expect(await readEndpoints(new Storage(), reg.artifactsUri, { pipeline: 'bad', cluster: inClusterClient(env, path.join(dir, 'serviceaccount')) })).toHaveLength(1);
    expect((await reg.state()).current).toBe(v1);
  });
});
