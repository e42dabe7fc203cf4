/**
 * The model registry on each store the agent supports: file:// (real disk), s3:// (s3rver with S3's
 * conditional PutObject added in front: test/support/s3-conditional.ts) and gs:// (the GCS fake, which
 * checks ifGenerationMatch). The same scenarios run on all three.
 */
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelRegistry, RegistryError } from '../../src/runtime-agent/registry/registry';
import { PreconditionFailed, Storage } from '../../src/runtime-agent/storage/index';
import { addConditionalWrites } from '../support/s3-conditional';
import { startFakeGcs, type FakeGcs } from './fake-gcs';

let dir: string;
let s3rver: { close(): Promise<void> } | undefined;
let gcs: FakeGcs;
const saved: Record<string, string | undefined> = {};
const ENV_KEYS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'AWS_ENDPOINT_URL_S3', 'STORAGE_EMULATOR_HOST', 'GOOGLE_CLOUD_PROJECT'];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-registry-'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver');
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: 'art' }] });
  addConditionalWrites(server);
  const addr = (await server.run()) as AddressInfo;
  s3rver = server;
  gcs = await startFakeGcs();
  for (const k of ENV_KEYS) saved[k] = process.env[k];
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${addr.port}`,
    STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_CLOUD_PROJECT: 'test',
  });
});
afterAll(async () => {
  for (const k of ENV_KEYS) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  await s3rver?.close();
  await gcs?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
const STORES: [string, () => string][] = [
  ['file://', () => `file://${path.join(dir, `fs-${++seq}`)}`],
  ['s3://', () => `s3://art/p${++seq}`],
  ['gs://', () => `gs://art/p${++seq}`],
];

/** A run's model directory with real files. */
function modelDir(content: string): string {
  const d = fs.mkdtempSync(path.join(dir, 'model-'));
  fs.mkdirSync(path.join(d, 'sub'));
  fs.writeFileSync(path.join(d, 'weights.bin'), content);
  fs.writeFileSync(path.join(d, 'sub', 'config.json'), JSON.stringify({ content }));
  return d;
}

async function caughtAsync(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (e) {
    return e as RegistryError;
  }
  throw new Error('expected a rejection');
}

describe.each(STORES)('model registry on %s', (_name, root) => {
  test('conditional writes: create-if-absent and replace-if-unchanged refuse a stale writer', async () => {
    const storage = new Storage();
    const uri = `${root()}/obj.json`;
    const t1 = await storage.writeIf(uri, '{"a":1}', null);
    await expect(storage.writeIf(uri, '{"a":2}', null)).rejects.toBeInstanceOf(PreconditionFailed);
    const t2 = await storage.writeIf(uri, '{"a":2}', t1);
    expect(t2).not.toBe(t1);
    await expect(storage.writeIf(uri, '{"a":3}', t1)).rejects.toBeInstanceOf(PreconditionFailed);
    expect(await storage.readVersioned(uri)).toEqual({ text: '{"a":2}', tag: t2 });
    expect(await storage.readVersioned(`${root()}/absent.json`)).toBeNull();
  });

  test('register, promote, promote, roll back: versions are immutable, the pointer keeps history', async () => {
    const base = root();
    const reg = new ModelRegistry(new Storage(), base, 'ltv');
    const v1 = await reg.register({ runId: 'r1', modelDir: modelDir('one'), metrics: { val_auc: 0.8 }, codeVersion: 'abc', pipelineSpecHash: 'h1' });
    const v2 = await reg.register({ runId: 'r2', modelDir: modelDir('two'), metrics: { val_auc: 0.9 } });
    expect([v1.version, v2.version]).toEqual(['v1', 'v2']);
    expect(v1.files.map((f) => [f.key, f.bytes])).toEqual([['sub/config.json', 17], ['weights.bin', 3]]);
    expect(v1.modelUri).toBe(`${base}/models/versions/v1/model/`);
    expect((await new Storage().list(v1.modelUri)).map((o) => o.key)).toEqual(['sub/config.json', 'weights.bin']);
    expect((await reg.list()).map((v) => [v.version, v.runId, v.metrics.val_auc])).toEqual([['v1', 'r1', 0.8], ['v2', 'r2', 0.9]]);
    expect(await reg.current()).toBeNull();

    const calls: string[] = [];
    const rollout = async (v: { version: string }, from: { version: string } | null) => { calls.push(`${from?.version ?? '-'}->${v.version}`); };
    await reg.promote('v1', { rollout });
    await reg.promote('v2', { rollout, reason: 'val_auc 0.9 > 0.8' });
    expect((await reg.current())?.version).toBe('v2');
    await reg.rollback({ rollout });
    const s = await reg.state();
    expect(s.current).toBe('v1');
    expect(s.history.map((m) => [m.action, m.from, m.version, m.outcome])).toEqual([
      ['promote', null, 'v1', 'done'], ['promote', 'v1', 'v2', 'done'], ['rollback', 'v2', 'v1', 'done'],
    ]);
    expect(calls).toEqual(['-->v1', 'v1->v2', 'v2->v1']);
    // A second registration never reuses a number, and version records are never rewritten.
    expect((await reg.register({ runId: 'r3', modelDir: modelDir('three') })).version).toBe('v3');
    expect((await reg.show('v1')).runId).toBe('r1');
  });

  test('fails with a clear error and an unchanged pointer when: the version does not exist, its files are missing, the rollout fails', async () => {
    const base = root();
    const storage = new Storage();
    const reg = new ModelRegistry(storage, base, 'ltv');
    await reg.register({ runId: 'r1', modelDir: modelDir('one') });
    await reg.promote('v1');
    const before = await reg.state();

    const missing = await caughtAsync(reg.promote('v9'));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toContain('model version v9 does not exist');
    expect(missing.message).toContain('versions: v1');

    expect((await caughtAsync(reg.promote('latest'))).code).toBe('bad_request');

    // v2's record exists but one of its files is gone from the store.
    const v2 = await reg.register({ runId: 'r2', modelDir: modelDir('two') });
    await removeObject(storage, `${v2.modelUri}weights.bin`);
    const gone = await caughtAsync(reg.promote('v2'));
    expect(gone.code).toBe('missing_files');
    expect(gone.message).toContain('weights.bin');

    const v3 = await reg.register({ runId: 'r3', modelDir: modelDir('three') });
    const failed = await caughtAsync(reg.promote(v3.version, { rollout: async () => { throw new Error('UpdateEndpoint: ValidationException'); } }));
    expect(failed.code).toBe('rollout_failed');
    expect(failed.message).toContain('v1 still serves');
    const after = await reg.state();
    expect(after.current).toBe(before.current);
    expect(after.pending).toBeUndefined();
    expect(after.history.at(-1)).toMatchObject({ version: 'v3', outcome: 'failed', reason: 'UpdateEndpoint: ValidationException' });
    // Nothing to roll back to from the first version.
    expect((await caughtAsync(reg.rollback())).code).toBe('not_found');
  });

  test('two hosts promoting at once: exactly one wins and rolls out, the other is refused', async () => {
    const base = root();
    const a = new ModelRegistry(new Storage(), base, 'ltv');
    const b = new ModelRegistry(new Storage(), base, 'ltv');
    await a.register({ runId: 'r1', modelDir: modelDir('one') });
    await a.register({ runId: 'r2', modelDir: modelDir('two') });
    const rolled: string[] = [];
    const slow = async (v: { version: string }) => { rolled.push(v.version); await new Promise((r) => setTimeout(r, 50)); };
    const results = await Promise.allSettled([a.promote('v1', { rollout: slow }), b.promote('v2', { rollout: slow })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0].reason as RegistryError).code).toBe('conflict');
    expect(rolled).toHaveLength(1);
    expect((await a.state()).current).toBe(rolled[0]);
  });

  test('concurrent registrations each get their own version number', async () => {
    const base = root();
    const regs = [0, 1, 2, 3].map(() => new ModelRegistry(new Storage(), base, 'ltv'));
    const out = await Promise.all(regs.map((r, i) => r.register({ runId: `r${i}`, modelDir: modelDir(`m${i}`) })));
    expect(out.map((v) => v.version).sort()).toEqual(['v1', 'v2', 'v3', 'v4']);
    const list = await regs[0].list();
    expect(new Set(list.map((v) => v.runId))).toEqual(new Set(['r0', 'r1', 'r2', 'r3']));
  });

  test('fails when the pointer object is not a registry', async () => {
    const base = root();
    const storage = new Storage();
    const reg = new ModelRegistry(storage, base, 'ltv');
    await storage.writeIf(reg.stateUri, 'not json', null);
    const e = await caughtAsync(reg.current());
    expect(e.code).toBe('unreadable');
    expect(e.message).toContain('registry.json is not JSON');
  });
});

async function removeObject(storage: Storage, uri: string): Promise<void> {
  if (uri.startsWith('file://')) return fs.promises.rm(new URL(uri));
  if (uri.startsWith('gs://')) {
    gcs.objects.delete(uri.slice('gs://'.length));
    return;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const [bucket, ...key] = uri.slice('s3://'.length).split('/');
  await new sdk.S3Client({ endpoint: process.env.AWS_ENDPOINT_URL_S3, forcePathStyle: true, region: 'us-east-1' })
    .send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key.join('/') }));
  void storage;
}

describe('mlinfra-agent models (CLI)', () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { buildCli } = require('../../src/runtime-agent/cli') as typeof import('../../src/runtime-agent/cli');
    const { PassThrough } = await import('node:stream');
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d: Buffer) => { out += d.toString(); });
    stderr.on('data', (d: Buffer) => { err += d.toString(); });
    let code = -1;
    await buildCli({ env: {}, stdout, stderr, exit: (c) => { code = c; } }).parseAsync(['node', 'mlinfra-agent', ...args]);
    return { code, out, err };
  }

  test('list, show, promote, rollback on a file:// store; bad input is JSON on stderr with exit 2', async () => {
    const base = `file://${path.join(dir, 'cli-store')}`;
    const reg = new ModelRegistry(new Storage(), base, 'ltv');
    await reg.register({ runId: 'r1', modelDir: modelDir('one'), metrics: { val_auc: 0.81 } });
    await reg.register({ runId: 'r2', modelDir: modelDir('two'), metrics: { val_auc: 0.92 } });
    expect(await cli(['models', 'promote', 'v1', '--artifacts', base])).toMatchObject({ code: 0 });
    expect(await cli(['models', 'promote', 'v2', '--artifacts', base, '--reason', 'better'])).toMatchObject({ code: 0 });
    const list = await cli(['models', 'list', '--artifacts', base]);
    expect(list.code).toBe(0);
    expect(list.out.split('\n').filter((l) => l.startsWith('*'))).toEqual([expect.stringMatching(/^\*\tv2\t.*\tr2\tval_auc=0.92$/)]);
    const json = JSON.parse((await cli(['models', 'list', '--json', '--artifacts', base])).out);
    expect(json.current).toBe('v2');
    expect(JSON.parse((await cli(['models', 'show', 'v1', '--artifacts', base])).out)).toMatchObject({ version: 'v1', runId: 'r1' });
    const back = await cli(['models', 'rollback', '--artifacts', base]);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.out).current).toBe('v1');

    const bad = await cli(['models', 'promote', 'v7', '--artifacts', base]);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.err).error).toMatchObject({ code: 'not_found', message: expect.stringContaining('v7 does not exist') });
    const noStore = await cli(['models', 'list']);
    expect(noStore.code).toBe(2);
    expect(noStore.err).toContain('--artifacts');
    expect((await reg.state()).current).toBe('v1');
  });
});

describe('promoteIfBetter', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { promoteIfBetter } = require('../../src/runtime-agent/registry/promotion') as typeof import('../../src/runtime-agent/registry/promotion');
  test('the first run promotes; a worse one does not; a better one whose rollout fails is registered but not serving', async () => {
    const reg = new ModelRegistry(new Storage(), `file://${path.join(dir, 'promo')}`, 'ltv');
    const run = (runId: string, auc: number, rollout?: () => Promise<void>) => promoteIfBetter(reg, {
      metric: 'val_auc', higherIsBetter: true, runId, metrics: { val_auc: auc, loss: 0.1 }, modelDir: modelDir(runId), codeVersion: 'c1', ...(rollout ? { rollout } : {}),
    });
    expect(await run('r1', 0.8)).toMatchObject({ promoted: true, version: 'v1', reason: 'no version serves yet', currentVersion: null });
    expect(await run('r2', 0.7)).toMatchObject({ promoted: false, version: null, currentVersion: 'v1', currentValue: 0.8, reason: expect.stringContaining('not better') });
    const failed = await run('r3', 0.9, async () => { throw new Error('canary alarm fired'); });
    expect(failed).toMatchObject({ promoted: false, version: 'v2', error: { code: 'rollout_failed' } });
    expect(failed.reason).toContain('registered as v2 but not serving');
    expect((await reg.state()).current).toBe('v1');
    expect(await run('r4', 0.95)).toMatchObject({ promoted: true, version: 'v3', currentVersion: 'v1' });
    expect((await reg.show('v3')).codeVersion).toBe('c1');
    await expect(run('r5', Number.NaN)).rejects.toThrow(/val_auc" is not a finite number/);
  });
});
