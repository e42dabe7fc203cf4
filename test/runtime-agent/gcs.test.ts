import { startFakeGcs, type FakeGcs } from './fake-gcs';
import { PYTHON, startAgent, stopAllAgents } from './helpers';

let gcs: FakeGcs;
beforeAll(async () => {
  gcs = await startFakeGcs();
});
afterAll(async () => {
  await stopAllAgents();
  await gcs.close();
});

describe('gs:// storage (against a fake GCS JSON API via STORAGE_EMULATOR_HOST)', () => {
  test('batch input and output on gs://, artifacts on gs://', async () => {
    for (let s = 0; s < 3; s++) gcs.objects.set(`bkt/in/part-${s}.txt`, Buffer.from(`row ${s}\n`));
    const agent = await startAgent({ args: ['--max-cpu-jobs', '2'], env: { STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_CLOUD_PROJECT: 'test' } });
    const id = await agent.submit({
      kind: 'batch', input: 'gs://bkt/in', output: 'gs://bkt/out/',
      argv: [PYTHON, '-c', 'import os; open(os.environ["MLINFRA_OUTPUT"], "w").write(open(os.environ["MLINFRA_INPUT"]).read().upper())'],
    });
    const job = await agent.waitJob(id, undefined, 30_000);
    if (job.state !== 'succeeded') throw new Error(`${JSON.stringify(job.failure)}\n${gcs.requests.join('\n')}`);
    expect(job.shards).toEqual({ total: 3, done: 3 });
    for (let s = 0; s < 3; s++) expect(gcs.objects.get(`bkt/out/part-${s}.txt`)?.toString()).toBe(`ROW ${s}\n`);
    const t = await agent.submit({ argv: ['sh', '-c', 'echo weights > $MLINFRA_ARTIFACT_DIR/model.bin'], artifactUri: 'gs://bkt/artifacts/t1' });
    expect(await agent.waitJob(t)).toMatchObject({ state: 'succeeded' });
    expect(gcs.objects.get('bkt/artifacts/t1/model.bin')?.toString()).toBe('weights\n');
  }, 40_000);
});
