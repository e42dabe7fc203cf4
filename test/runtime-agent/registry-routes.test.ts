/**
 * /v1/models on a real agent process, over a file:// registry built with the registry module's own
 * register(): list, show, promote and rollback (the pointer on disk moves), and the error answers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelRegistry } from '../../src/runtime-agent/registry/registry';
import { Storage } from '../../src/runtime-agent/storage/index';
import { startAgent, stopAllAgents, tmpDir, type AgentHandle } from './helpers';

let agent: AgentHandle;
let root: string;

beforeAll(async () => {
  root = tmpDir('mlinfra-registry-routes-');
  agent = await startAgent();
}, 30_000);
afterAll(async () => {
  await stopAllAgents();
  fs.rmSync(root, { recursive: true, force: true });
});

let seq = 0;
/** A fresh registry with v1 and v2 registered (real model files) and v1 promoted; returns its artifacts URI. */
async function prepared(): Promise<{ uri: string; dir: string; reg: ModelRegistry }> {
  const dir = path.join(root, `art-${++seq}`);
  const uri = `file://${dir}`;
  const reg = new ModelRegistry(new Storage(), uri, 'train');
  for (const [run, acc] of [['run-1', 0.8], ['run-2', 0.9]] as const) {
    const m = fs.mkdtempSync(path.join(root, 'model-'));
    fs.writeFileSync(path.join(m, 'weights.bin'), `weights of ${run}`);
    await reg.register({ runId: run, modelDir: m, metrics: { accuracy: acc } });
  }
  await reg.promote('v1');
  return { uri, dir, reg };
}
const q = (uri: string): string => `artifacts=${encodeURIComponent(uri)}`;
const pointer = (dir: string): { current: string | null; history: Array<{ version: string; action: string; outcome: string; from: string | null }> } =>
  JSON.parse(fs.readFileSync(path.join(dir, 'models', 'registry.json'), 'utf8'));

test('list and show read the registry the CLI writes', async () => {
  const { uri } = await prepared();
  const list = await agent.api('GET', `/v1/models?${q(uri)}`);
  expect(list.status).toBe(200);
  expect(list.json.current).toBe('v1');
  expect(list.json.pending).toBeNull();
  expect(list.json.versions.map((v: { version: string }) => v.version)).toEqual(['v1', 'v2']);
  expect(list.json.history).toEqual([expect.objectContaining({ version: 'v1', action: 'promote', outcome: 'done', from: null })]);

  const show = await agent.api('GET', `/v1/models/v2?${q(uri)}`);
  expect(show.status).toBe(200);
  expect(show.json).toMatchObject({ version: 'v2', runId: 'run-2', metrics: { accuracy: 0.9 }, files: [expect.objectContaining({ key: 'weights.bin', bytes: 'weights of run-2'.length })] });
  expect(show.json.modelUri).toBe(`${uri}/models/versions/v2/model/`);
});

test('promote v2 then roll back to v1 (rollout false) moves the pointer in the store', async () => {
  const { uri, dir } = await prepared();
  const p = await agent.api('POST', '/v1/models/promote', { artifacts: uri, version: 'v2', rollout: false, reason: 'better accuracy' });
  expect(p.status).toBe(200);
  expect(p.json.current).toBe('v2');
  expect(pointer(dir).current).toBe('v2');
  expect(pointer(dir).history.at(-1)).toMatchObject({ version: 'v2', action: 'promote', from: 'v1', outcome: 'done', reason: 'better accuracy' });

  const again = await agent.api('POST', '/v1/models/promote', { artifacts: uri, version: 'v2', rollout: false });
  expect(again.status).toBe(400);
  expect(again.json.error.message).toMatch(/v2 already serves/);

  const r = await agent.api('POST', '/v1/models/rollback', { artifacts: uri, rollout: false });
  expect(r.status).toBe(200);
  expect(r.json.current).toBe('v1');
  expect(pointer(dir)).toMatchObject({ current: 'v1' });
  expect(pointer(dir).history.at(-1)).toMatchObject({ version: 'v1', action: 'rollback', from: 'v2', outcome: 'done' });
});

test('a failed rollout answers 502 with the reason and leaves current where it was', async () => {
  const { uri, dir } = await prepared();
  // a Kubernetes endpoint cannot roll out from outside a pod: the rollout throws before any change
  fs.mkdirSync(path.join(dir, 'models', 'endpoints'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'models', 'endpoints', 'web.json'), JSON.stringify({ kind: 'kubernetes', name: 'web', namespace: 'ml', deployment: 'web' }));
  const p = await agent.api('POST', '/v1/models/promote', { artifacts: uri, version: 'v2' });
  expect(p.status).toBe(502);
  expect(p.json.error.code).toBe('rollout_failed');
  expect(p.json.error.message).toMatch(/rollout of v2 failed, v1 still serves: endpoint web is on Kubernetes/);
  expect(pointer(dir).current).toBe('v1');
  expect(pointer(dir).history.at(-1)).toMatchObject({ version: 'v2', outcome: 'failed' });
});

test('another promotion holding the pointer answers 409', async () => {
  const { uri, dir } = await prepared();
  const s = pointer(dir);
  fs.writeFileSync(path.join(dir, 'models', 'registry.json'), JSON.stringify({ ...s, pending: { version: 'v2', action: 'promote', since: new Date().toISOString() } }));
  const p = await agent.api('POST', '/v1/models/promote', { artifacts: uri, version: 'v2', rollout: false });
  expect(p.status).toBe(409);
  expect(p.json.error.code).toBe('conflict');
  expect(pointer(dir).current).toBe('v1');
});

test('a missing version is 404, a bad artifacts URI is 400 naming the field, no token is 401', async () => {
  const { uri, dir } = await prepared();
  const missing = await agent.api('GET', `/v1/models/v9?${q(uri)}`);
  expect(missing.status).toBe(404);
  expect(missing.json.error).toMatchObject({ code: 'not_found' });
  expect(missing.json.error.message).toMatch(/v9 does not exist.*versions: v1, v2/);
  const missingPromote = await agent.api('POST', '/v1/models/promote', { artifacts: uri, version: 'v9', rollout: false });
  expect(missingPromote.status).toBe(404);

  for (const bad of ['http://example.com/art', '/abs/path', 'file://relative', 's3://']) {
    const r = await agent.api('GET', `/v1/models?${q(bad)}`);
    expect(r.status).toBe(400);
    expect(r.json.error.field).toBe('artifacts');
    const p = await agent.api('POST', '/v1/models/rollback', { artifacts: bad, rollout: false });
    expect(p.status).toBe(400);
    expect(p.json.error.field).toBe('artifacts');
  }
  const none = await agent.api('GET', '/v1/models');
  expect(none.status).toBe(400);
  expect(none.json.error.field).toBe('artifacts');
  const badVersion = await agent.api('GET', `/v1/models/latest?${q(uri)}`);
  expect(badVersion.status).toBe(400);

  const noToken = await fetch(`${agent.url}/v1/models?${q(uri)}`);
  expect(noToken.status).toBe(401);
  const noTokenPost = await fetch(`${agent.url}/v1/models/promote`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ artifacts: uri, version: 'v2', rollout: false }) });
  expect(noTokenPost.status).toBe(401);
  const wrong = await fetch(`${agent.url}/v1/models?${q(uri)}`, { headers: { authorization: 'Bearer wrong-token' } });
  expect(wrong.status).toBe(401);
  expect(pointer(dir).current).toBe('v1');
});
