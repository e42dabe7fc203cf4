/** Promotion through Cloud Run revisions and traffic splits, against a recording fake of the Admin API v2. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelRegistry, RegistryError } from '../../src/runtime-agent/registry/registry';
import { revisionName, rolloutCloudRun, type CloudRunRolloutConfig } from '../../src/runtime-agent/registry/rollout-cloudrun';
import { Storage } from '../../src/runtime-agent/storage/index';
import { startFakeCloudRun, type FakeCloudRun } from '../support/fake-cloudrun';

const SERVICE = 'projects/p1/locations/us-central1/services/ltv-api';
let dir: string;
let fake: FakeCloudRun;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-cloudrun-'));
  fake = await startFakeCloudRun(SERVICE, 'ltv-api-00001-abc');
});
afterEach(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function registry(): Promise<ModelRegistry> {
  const reg = new ModelRegistry(new Storage(), `file://${path.join(dir, 'art')}`, 'ltv');
  for (const run of ['r1', 'r2']) {
    const m = fs.mkdtempSync(path.join(dir, 'model-'));
    fs.writeFileSync(path.join(m, 'model.pt'), run);
    await reg.register({ runId: run, modelDir: m });
  }
  return reg;
}
const slept: number[] = [];
const cfg = (): CloudRunRolloutConfig => ({ service: SERVICE, canaryPercent: 10, bakeSeconds: 300, apiUrl: fake.url, pollSeconds: 0 });
const rollout = (v: Parameters<typeof rolloutCloudRun>[1]) => rolloutCloudRun(cfg(), v, { token: async () => 'tok-1', sleep: async (ms) => { slept.push(ms); } });

test('revision names start with the service name and end with the version', () => {
  expect(revisionName(SERVICE, 'v3')).toBe('ltv-api-v3');
  expect(revisionName(`projects/p/locations/l/services/${'s'.repeat(70)}`, 'v3')).toHaveLength(63);
  // with the config's digest (lower-case hex): still the service's prefix, 63 characters at most
  expect(revisionName(SERVICE, 'v3', '0a1b2c3d')).toBe('ltv-api-v3-0a1b2c3d');
  const long = revisionName(`projects/p/locations/l/services/${'s'.repeat(70)}`, 'v12', '0a1b2c3d');
  expect(long).toHaveLength(63);
  expect(long).toMatch(/^s+-v12-0a1b2c3d$/);
});

test('a promotion creates the version\'s revision with a 10 % canary, bakes, then moves all traffic', async () => {
  const reg = await registry();
  slept.length = 0;
  await reg.promote('v1', { rollout });
  const v1 = await reg.show('v1');
  expect(fake.calls.map((c) => `${c.method} ${c.path.replace(/op-\d+/, 'op')}`)).toEqual([
    `GET ${SERVICE}`, `PATCH ${SERVICE}`, 'GET projects/p1/locations/us-central1/operations/op',
    `GET ${SERVICE}`, `PATCH ${SERVICE}`, 'GET projects/p1/locations/us-central1/operations/op',
  ]);
  expect(fake.calls.every((c) => c.auth === 'Bearer tok-1')).toBe(true);
  const first = fake.calls[1].body;
  expect(first.template.revision).toBe('ltv-api-v1');
  expect(first.template.containers[0].env).toEqual([
    { name: 'PORT_NAME', value: 'http1' }, { name: 'MLINFRA_MODEL_URI', value: v1.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: 'v1' },
  ]);
  expect(first.traffic).toEqual([
    { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: 'ltv-api-v1', percent: 10 },
    { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: 'ltv-api-00001-abc', percent: 90 },
  ]);
  expect(slept).toContain(300_000);
  expect(fake.calls[4].body.traffic).toEqual([{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: 'ltv-api-v1', percent: 100 }]);
  expect(fake.service().latestReadyRevision).toBe('ltv-api-v1');
  expect((await reg.state()).current).toBe('v1');
});

test('fails with the pointer and traffic unchanged when the new revision cannot start', async () => {
  const reg = await registry();
  await reg.promote('v1', { rollout });
  const before = fake.service();
  fake.failNextRevision = 'ltv-api-v2';
  let err: RegistryError | undefined;
  try {
    await reg.promote('v2', { rollout });
  } catch (e) {
    err = e as RegistryError;
  }
  expect(err?.code).toBe('rollout_failed');
  expect(err?.message).toMatch(/ltv-api-v2 did not become ready, traffic stays on ltv-api-v1: .*failed to start/);
  expect((await reg.state()).current).toBe('v1');
  expect(fake.service().traffic).toEqual(before.traffic);
});

test('fails when the API refuses the call (e.g. no permission), naming the status', async () => {
  const reg = await registry();
  const bad = { ...cfg(), service: 'projects/p1/locations/us-central1/services/other' };
  await expect(reg.promote('v1', { rollout: (v) => rolloutCloudRun(bad, v, { token: async () => 't', sleep: async () => undefined }) }))
    .rejects.toThrow(/Cloud Run GET .*other: 404/);
  expect((await reg.state()).current).toBeNull();
});

test('the record\'s image replaces the live one in the new revision (Terraform ignores the template the rollout owns)', async () => {
  const reg = await registry();
  const image = 'us-central1-docker.pkg.dev/p1/serving/ltv-server@sha256:' + 'b'.repeat(64);
  await reg.promote('v1', { rollout: (v) => rolloutCloudRun({ ...cfg(), image }, v, { token: async () => 'tok-1', sleep: async () => undefined }) });
  const patch = fake.calls.find((c) => c.method === 'PATCH')!;
  expect(patch.body.template.containers[0].image).toBe(image);
  expect(patch.body.template.revision).toBe('ltv-api-v1');
  // without an image in the record, the live template's image stays
  await reg.promote('v2', { rollout });
  const second = fake.calls.filter((c) => c.method === 'PATCH')[2].body;
  expect(second.template.revision).toBe('ltv-api-v2');
  expect(second.template.containers[0].image).toBe(image);
});

test('the record\'s template is what each revision runs; the same version with a changed template is a new revision, an unchanged one is left alone', async () => {
  const reg = await registry();
  const image = 'us-central1-docker.pkg.dev/p1/serving/ltv-server:2.1';
  const template = (memory: string) => ({
    serviceAccount: 'ltv-api@p1.iam.gserviceaccount.com', scaling: { minInstanceCount: 1, maxInstanceCount: 3 },
    containers: [{ name: 'server', image, env: [{ name: 'MLINFRA_MODEL_VERSION', value: 'none' }, { name: 'LOG_LEVEL', value: 'info' }],
      ports: [{ containerPort: 8080 }], resources: { limits: { cpu: '4', memory } } }],
  });
  const roll = (memory: string) => (v: Parameters<typeof rolloutCloudRun>[1]) =>
    rolloutCloudRun({ ...cfg(), canaryPercent: 100, image, template: template(memory) }, v, { token: async () => 't', sleep: async () => undefined });
  await reg.promote('v1', { rollout: roll('16Gi') });
  const v1 = await reg.show('v1');
  const first = fake.calls.find((c) => c.method === 'PATCH')!.body.template;
  const rev16 = first.revision as string;
  expect(rev16).toMatch(/^ltv-api-v1-[0-9a-f]{8}$/);
  // the record's template whole (the live one's PORT_NAME env is not kept), with the model's env
  expect(first).toEqual({
    ...template('16Gi'), revision: rev16,
    containers: [{ ...template('16Gi').containers[0], env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'MLINFRA_MODEL_URI', value: v1.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: 'v1' }] }],
  });
  // the same version and template again: one GET, nothing changed
  fake.calls.length = 0;
  expect(await roll('16Gi')(v1)).toEqual({ revision: rev16, previousRevision: rev16 });
  expect(fake.calls.map((c) => c.method)).toEqual(['GET']);
  // memory raised by a `cdktf deploy`: the same version as a new revision that runs it
  const r = await roll('32Gi')(v1);
  expect(r.previousRevision).toBe(rev16);
  expect(r.revision).toMatch(/^ltv-api-v1-[0-9a-f]{8}$/);
  expect(r.revision).not.toBe(rev16);
  expect(fake.service().template.containers[0].resources.limits.memory).toBe('32Gi');
  expect(fake.service().latestReadyRevision).toBe(r.revision);
});
