/**
 * Endpoints that do not serve the registry's current version get it: one added after the last
 * promotion (Terraform starts it with no model), one a failed promotion left on another version.
 * Each rollout notes `models/serving/<endpoint>.json`; endpoints whose note names the current
 * version are not touched; a Cloud Run endpoint whose record's template changed gets it again. Real
 * file:// store and registry; an in-memory Deployments API that rolls a patched Deployment out at once
 * (rollout-kubernetes.test.ts covers the rollout itself) and the Cloud Run API fake.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildCli } from '../../src/runtime-agent/cli';
import { type EndpointRollout, rolloutToAll, servingUri, syncEndpoints } from '../../src/runtime-agent/registry/endpoints';
import { ModelRegistry } from '../../src/runtime-agent/registry/registry';
import type { Deployment, DeploymentApi } from '../../src/runtime-agent/registry/rollout-kubernetes';
import { localPathOf, Storage } from '../../src/runtime-agent/storage/index';
import { startFakeCloudRun } from '../support/fake-cloudrun';
import { tmpDir } from './helpers';

function fakeDeployments(names: string[]): DeploymentApi & { patched: string[]; version(name: string): string | undefined } {
  const ds = new Map<string, Deployment>(names.map((n) => [n, {
    metadata: { name: n, generation: 1 },
    spec: { replicas: 1, template: { spec: { containers: [{ name: 'server', env: [{ name: 'MLINFRA_MODEL_VERSION', value: 'none' }] }] } } },
    status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
  }]));
  const patched: string[] = [];
  const get = (name: string): Deployment => {
    const d = ds.get(name);
    if (!d) throw Object.assign(new Error(`deployments.apps "${name}" not found`), { status: 404 });
    return d;
  };
  return {
    patched,
    version: (name) => ds.get(name)?.spec.template.spec.containers[0].env?.find((e) => e.name === 'MLINFRA_MODEL_VERSION')?.value,
    getDeployment: async (_ns, name) => structuredClone(get(name)),
    patchDeployment: async (_ns, name, patch) => {
      const d = get(name);
      patched.push(name);
      for (const pc of (patch as { spec?: { template?: { spec?: { containers?: { name: string; env?: { name: string; value?: string }[] }[] } } } }).spec?.template?.spec?.containers ?? []) {
        const c = d.spec.template.spec.containers.find((x) => x.name === pc.name)!;
        for (const pe of pc.env ?? []) {
          const e = (c.env ??= []).find((x) => x.name === pe.name);
          if (e) e.value = pe.value;
          else c.env.push(pe);
        }
      }
      d.metadata.generation = (d.metadata.generation ?? 1) + 1;
      d.status = { observedGeneration: d.metadata.generation, replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
      return structuredClone(d);
    },
  };
}

const endpoint = (name: string): EndpointRollout => ({ kind: 'kubernetes', name, namespace: 'ml', stable: name, bakeSeconds: 0, pollSeconds: 0 });

async function registryWith(versions: number): Promise<{ reg: ModelRegistry; artifactsUri: string; storage: Storage }> {
  const root = tmpDir();
  const storage = new Storage();
  const artifactsUri = `file://${root}/art`;
  const reg = new ModelRegistry(storage, artifactsUri, 'ltv');
  for (let i = 1; i <= versions; i++) {
    const m = path.join(root, `model-${i}`);
    fs.mkdirSync(m);
    fs.writeFileSync(path.join(m, 'model.pt'), `weights ${i}`);
    await reg.register({ runId: `r${i}`, modelDir: m });
  }
  return { reg, artifactsUri, storage };
}

const noted = (artifactsUri: string, name: string): string | null => {
  const f = localPathOf(servingUri(artifactsUri, name));
  return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as { version: string }).version : null;
};

test('an endpoint added after the promotion gets the current version; one already serving it is not touched', async () => {
  const { reg, artifactsUri, storage } = await registryWith(1);
  const kube = fakeDeployments(['a', 'b']);
  const notes = { storage, artifactsUri };
  await reg.promote('v1', { rollout: rolloutToAll([endpoint('a')], { kubernetes: () => kube, notes }) });
  expect(noted(artifactsUri, 'a')).toBe('v1');
  expect(kube.version('a')).toBe('v1');
  expect(kube.version('b')).toBe('none'); // deployed after the promotion: no model

  kube.patched.length = 0;
  const current = (await reg.current())!;
  const synced = await syncEndpoints([endpoint('a'), endpoint('b')], current, notes, { kubernetes: () => kube });
  expect(synced).toEqual([{ endpoint: 'b', from: null, to: 'v1' }]);
  expect(kube.patched).toEqual(['b']);
  expect(kube.version('b')).toBe('v1');
  expect(noted(artifactsUri, 'b')).toBe('v1');

  // an endpoint that serves the version but has no note (rolled out before notes were kept): noted, not rolled again
  const d = fakeDeployments(['d']);
  await d.patchDeployment('ml', 'd', { spec: { template: { spec: { containers: [{ name: 'server', env: [{ name: 'MODEL_URI', value: current.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: 'v1' }] }] } } } });
  d.patched.length = 0;
  expect(await syncEndpoints([endpoint('d')], current, notes, { kubernetes: () => d })).toEqual([{ endpoint: 'd', from: null, to: 'v1' }]);
  expect(d.patched).toEqual([]);
  expect(noted(artifactsUri, 'd')).toBe('v1');

  // nothing left to do
  kube.patched.length = 0;
  expect(await syncEndpoints([endpoint('a'), endpoint('b')], current, notes, { kubernetes: () => kube })).toEqual([]);
  expect(kube.patched).toEqual([]);
});

test('a failed promotion leaves the pointer; the next sync brings the endpoint it reached back to the current version, and a missing one is reported, not thrown', async () => {
  const { reg, artifactsUri, storage } = await registryWith(2);
  const kube = fakeDeployments(['a']);
  const notes = { storage, artifactsUri };
  await reg.promote('v1', { rollout: rolloutToAll([endpoint('a')], { kubernetes: () => kube, notes }) });
  // v2 reaches a, then fails on c (no such Deployment): the pointer stays on v1, a serves v2
  await expect(reg.promote('v2', { rollout: rolloutToAll([endpoint('a'), endpoint('c')], { kubernetes: () => kube, notes }) })).rejects.toThrow(/c/);
  expect((await reg.current())!.version).toBe('v1');
  expect(kube.version('a')).toBe('v2');
  expect(noted(artifactsUri, 'a')).toBe('v2');

  const synced = await syncEndpoints([endpoint('a'), endpoint('c')], (await reg.current())!, notes, { kubernetes: () => kube });
  expect(synced).toEqual([
    { endpoint: 'a', from: 'v2', to: 'v1' },
    { endpoint: 'c', from: null, to: 'v1', error: expect.stringContaining('not found') },
  ]);
  expect(kube.version('a')).toBe('v1');
  expect(noted(artifactsUri, 'a')).toBe('v1');
  expect(noted(artifactsUri, 'c')).toBeNull();
});

test('models sync: a Kubernetes endpoint outside its cluster is reported (exit 1); a registry with nothing promoted syncs nothing (exit 0)', async () => {
  const run = async (artifactsUri: string) => {
    let out = '';
    let err = '';
    let code = -1;
    const io = { env: {}, stdout: { write: (s: string) => { out += s; return true; } }, stderr: { write: (s: string) => { err += s; return true; } }, exit: (c: number) => { code = c; } };
    await buildCli(io as never).parseAsync(['node', 'mlinfra-agent', 'models', 'sync', '--artifacts', artifactsUri, '--pipeline', 'ltv']);
    return { out, err, code };
  };
  const { reg, artifactsUri } = await registryWith(1);
  const empty = await run(artifactsUri);
  expect(empty).toMatchObject({ code: 0 });
  expect(JSON.parse(empty.out)).toEqual({ synced: [] });

  await reg.promote('v1');
  fs.mkdirSync(path.join(localPathOf(artifactsUri), 'models', 'endpoints'), { recursive: true });
  fs.writeFileSync(path.join(localPathOf(artifactsUri), 'models', 'endpoints', 'b.json'), JSON.stringify(endpoint('b')));
  const res = await run(artifactsUri);
  expect(res.code).toBe(1);
  const e = JSON.parse(res.err).error;
  expect(e.code).toBe('rollout_failed');
  expect(e.message).toContain('endpoint b does not serve v1');
  expect(e.message).toContain('from a pod in the cluster');
});

test('a Cloud Run endpoint whose template changed (a cdktf deploy) gets the current version again with it; an unchanged one is not touched', async () => {
  const { reg, artifactsUri, storage } = await registryWith(1);
  const service = 'projects/p1/locations/us-central1/services/ltv-api';
  const fake = await startFakeCloudRun(service, 'ltv-api-00001-abc');
  try {
    const run = (memory: string): EndpointRollout => ({
      kind: 'cloudrun', name: 'ltv-api', service, canaryPercent: 100, bakeSeconds: 0, apiUrl: fake.url, pollSeconds: 0, image: 'img:1',
      template: { containers: [{ name: 'server', image: 'img:1', env: [], resources: { limits: { memory } } }] },
    });
    const notes = { storage, artifactsUri };
    const deps = { cloudRun: { token: async () => 't', sleep: async () => undefined } };
    await reg.promote('v1', { rollout: rolloutToAll([run('16Gi')], { ...deps, notes }) });
    const current = (await reg.current())!;
    const first = fake.service().latestReadyRevision as string;
    expect(await syncEndpoints([run('16Gi')], current, notes, deps)).toEqual([]);
    expect(fake.calls.filter((c) => c.method === 'PATCH')).toHaveLength(1);

    expect(await syncEndpoints([run('32Gi')], current, notes, deps)).toEqual([{ endpoint: 'ltv-api', from: 'v1', to: 'v1', configChanged: true }]);
    expect(fake.service().template.containers[0].resources.limits.memory).toBe('32Gi');
    expect(fake.service().latestReadyRevision).not.toBe(first);
    expect(noted(artifactsUri, 'ltv-api')).toBe('v1');
    expect(await syncEndpoints([run('32Gi')], current, notes, deps)).toEqual([]);
  } finally {
    await fake.close();
  }
});
