import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { AGENT_JOBS, PYTHON, startAgent, stopAllAgents, tmpDir, type AgentHandle } from './helpers';
import { describeWithTools, TOOLS } from '../support/tools';

afterAll(stopAllAgents);

function writeShards(dir: string, shards: number, rows: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let s = 0; s < shards; s++) {
    const lines = Array.from({ length: rows }, (_, i) => JSON.stringify({ id: `${s}-${i}`, x: [s, i, 1, -1] }));
    fs.writeFileSync(path.join(dir, `shard-${s}.jsonl`), `${lines.join('\n')}\n`);
  }
}

describeWithTools([TOOLS.torch])('real PyTorch jobs (/usr/bin/python3)', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await startAgent({ args: ['--max-cpu-jobs', '2'] });
  });

  test('a tiny training job writes checkpoints, fails once, resumes from its checkpoint on retry and uploads artifacts', async () => {
    const artifacts = tmpDir();
    const ckpt = tmpDir();
    const id = await agent.submit({
      argv: [PYTHON, path.join(AGENT_JOBS, 'train.py')], env: { STEPS: '12', FAIL_AT: '5' }, retries: 1,
      checkpointDir: ckpt, artifactUri: `file://${artifacts}/run1`,
    });
    const job = await agent.waitJob(id, undefined, 60_000);
    expect(job).toMatchObject({ state: 'succeeded', attempts: 2, failedAttempts: 1, exitCode: 0 });
    const log = (await agent.api('GET', `/v1/jobs/${id}/logs`)).text;
    expect(log).toContain('step 5 loss');
    expect(log).toContain('simulated crash');
    expect(log).toContain('resumed from step 5');
    expect(log).toContain('step 12 loss');
    expect(log).not.toMatch(/step [1-4] loss .* attempt 2/);
    expect(fs.existsSync(path.join(ckpt, 'ckpt.pt'))).toBe(true);
    const metrics = JSON.parse(fs.readFileSync(path.join(artifacts, 'run1', 'metrics.json'), 'utf8'));
    expect(metrics.steps).toBe(12);
    const first = Number(/step 1 loss ([\d.]+)/.exec(log)![1]);
    expect(metrics.loss).toBeLessThan(first / 2);
    expect(fs.existsSync(path.join(artifacts, 'run1', 'model.pt'))).toBe(true);
  }, 60_000);

  test('batch inference over JSONL shards writes one output per shard', async () => {
    const root = tmpDir();
    writeShards(path.join(root, 'in'), 3, 5);
    const id = await agent.submit({ kind: 'batch', input: path.join(root, 'in'), output: `file://${root}/out`, argv: [PYTHON, path.join(AGENT_JOBS, 'batch_infer.py')] });
    const job = await agent.waitJob(id, undefined, 60_000);
    expect(job).toMatchObject({ state: 'succeeded', shards: { total: 3, done: 3 } });
    expect(job.runs.map((r: { shard: number }) => r.shard).sort()).toEqual([0, 1, 2]);
    for (let s = 0; s < 3; s++) {
      const rows = fs.readFileSync(path.join(root, 'out', `shard-${s}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(rows).toHaveLength(5);
      expect(rows[0]).toEqual({ id: `${s}-0`, score: expect.any(Number) });
    }
    expect((await agent.api('GET', `/v1/jobs/${id}/logs`)).text).toContain('scored 5 rows of shard-1.jsonl on CUDA_VISIBLE_DEVICES=[]');
  }, 60_000);
});

describe('s3:// storage against s3rver', () => {
  let s3rver: any;
  let endpoint: string;
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

  beforeAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const S3rver = require('s3rver');
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: tmpDir(), configureBuckets: [{ name: 'data' }] });
    const addr = (await s3rver.run()) as AddressInfo;
    endpoint = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await stopAllAgents();
    await s3rver?.close();
  });

  test('batch input and output on s3://, checkpoints and artifacts on s3://', async () => {
    const { S3Client, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    for (let s = 0; s < 4; s++) {
      await s3.send(new PutObjectCommand({ Bucket: 'data', Key: `in/day=1/part-${s}.txt`, Body: `hello ${s}\nworld ${s}\n` }));
    }
    const agent = await startAgent({ args: ['--max-cpu-jobs', '2'], env: { ...env, AWS_ENDPOINT_URL_S3: endpoint } });
    const id = await agent.submit({
      kind: 'batch', input: 's3://data/in/', output: 's3://data/out/run-1', retries: 0,
      argv: [PYTHON, '-c', 'import os; open(os.environ["MLINFRA_OUTPUT"], "w").write(open(os.environ["MLINFRA_INPUT"]).read().upper())'],
    });
    const job = await agent.waitJob(id, undefined, 30_000);
    expect(job).toMatchObject({ state: 'succeeded', shards: { total: 4, done: 4 } });
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'data', Prefix: 'out/run-1/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual([0, 1, 2, 3].map((s) => `out/run-1/day=1/part-${s}.txt`));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'data', Key: 'out/run-1/day=1/part-2.txt' }));
    expect(await got.Body!.transformToString()).toBe('HELLO 2\nWORLD 2\n');

    // a train job: checkpoint synced down before and up after each attempt, artifacts uploaded on success
    await s3.send(new PutObjectCommand({ Bucket: 'data', Key: 'ckpt/a/state.txt', Body: 'previous' }));
    const t = await agent.submit({
      argv: ['sh', '-c', 'cat $MLINFRA_CHECKPOINT_DIR/state.txt; echo next > $MLINFRA_CHECKPOINT_DIR/state.txt; echo model > $MLINFRA_ARTIFACT_DIR/model.bin'],
      checkpointDir: 's3://data/ckpt/a', artifactUri: 's3://data/artifacts/a/',
    });
    expect(await agent.waitJob(t)).toMatchObject({ state: 'succeeded' });
    expect((await agent.api('GET', `/v1/jobs/${t}/logs`)).text).toBe('previous');
    const ck = await s3.send(new GetObjectCommand({ Bucket: 'data', Key: 'ckpt/a/state.txt' }));
    expect(await ck.Body!.transformToString()).toBe('next\n');
    const art = await s3.send(new GetObjectCommand({ Bucket: 'data', Key: 'artifacts/a/model.bin' }));
    expect(await art.Body!.transformToString()).toBe('model\n');

    // a missing bucket fails the job with a clear reason
    const bad = await agent.submit({ kind: 'batch', input: 's3://no-such-bucket/in/', output: 's3://data/x/', argv: ['true'] });
    expect(await agent.waitJob(bad)).toMatchObject({ state: 'failed', failure: { class: 'exit', reason: expect.stringContaining('could not list the batch input') } });
  }, 60_000);
});
