/**
 * Agents on a cluster queue (the SQS fake) and one bucket (file://): a submit to any host enqueues;
 * the job runs on a host with free slots for it; status, list and logs answer on every host;
 * checkpoints come back on the next attempt; bad input and faults answer clearly.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { BUNDLE, startAgent, tmpDir, waitFor, type AgentHandle } from './helpers';
import { clusterFlags, sqsForFile, type QueueFixture } from './queue-helpers';

const S3RVER_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const sqs = sqsForFile();
let n = 0;

function clusterArgs(q: QueueFixture, bucket: string, extra: string[] = []): string[] {
  return clusterFlags(q, bucket, '--checkpoint-seconds', '0.3', '--log-ship-seconds', '0.3', '--max-attempts', '3', ...extra);
}

async function waitCluster(a: AgentHandle, id: string, states: string[], timeoutMs = 30_000): Promise<any> {
  return waitFor(`cluster job ${id} in ${states.join('|')}`, async () => {
    const r = await a.api('GET', `/v1/cluster/jobs/${id}`);
    return r.status === 200 && states.includes(r.json.state) ? r.json : undefined;
  }, timeoutMs, 100);
}

test('a submit to one host runs where the GPUs are free; status, list and logs answer on every host', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: ['--gpus', '0', ...clusterArgs(q, bucket)], env: q.env });
  const b = await startAgent({ args: ['--gpus', '2', ...clusterArgs(q, bucket)], env: q.env });
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', 'echo attempt=$MLINFRA_CLUSTER_ATTEMPT gpus=$CUDA_VISIBLE_DEVICES'], gpus: 2, env: { SECRET: 's3cr3t' } });
  expect(r.status).toBe(201);
  expect(r.json).toMatchObject({ state: 'queued', queue: 'sqs', attempts: [] });
  const id = r.json.id as string;
  const done = await waitCluster(a, id, ['succeeded', 'failed']);
  expect(done).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1 });
  expect(done.attempts[0].host).toMatch(new RegExp(`/${b.pid}$`));
  expect(done.spec.envKeys).toEqual(['SECRET']);
  expect(JSON.stringify(done)).not.toContain('s3cr3t');
  const logs = await waitFor('shipped logs', async () => {
    const t = (await a.api('GET', `/v1/cluster/jobs/${id}/logs`)).text;
    return t.includes('attempt=') ? t : undefined;
  });
  expect(logs).toContain('attempt=1 gpus=0,1');
  const listed = (await b.api('GET', '/v1/cluster/jobs')).json.jobs.map((j: any) => j.id);
  expect(listed).toContain(id);
  expect(sqs.fake.bodies(q.url.split('/').pop()!)).toEqual([]);
  expect((await a.api('GET', '/v1/cluster/jobs/nope')).status).toBe(404);
}, 60_000);

test('a failed attempt is retried on the cluster and finds its checkpoint restored', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const script = 'if [ -f "$MLINFRA_CHECKPOINT_DIR/step" ]; then echo "resumed at $(cat "$MLINFRA_CHECKPOINT_DIR/step") attempt $MLINFRA_CLUSTER_ATTEMPT"; exit 0; fi; '
    + 'echo 5 > "$MLINFRA_CHECKPOINT_DIR/step"; exit 3';
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', script], retries: 1 });
  const done = await waitCluster(a, r.json.id, ['succeeded', 'failed']);
  expect(done.state).toBe('succeeded');
  expect(done.attempts.map((x: any) => [x.attempt, x.outcome, x.exitCode])).toEqual([[1, 'failed', 3], [2, 'succeeded', 0]]);
  expect(fs.readFileSync(path.join(bucket, 'checkpoints', r.json.id, 'step'), 'utf8')).toBe('5\n');
  await waitFor('logs of both attempts', async () => (await a.api('GET', `/v1/cluster/jobs/${r.json.id}/logs`)).text.includes('resumed at 5 attempt 2'));
}, 60_000);

test('a cancel on any host stops the job where it runs and ends it cancelled', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: ['--max-cpu-jobs', '1', ...clusterArgs(q, bucket)], env: q.env });
  const b = await startAgent({ args: ['--max-cpu-jobs', '1', ...clusterArgs(q, bucket)], env: q.env });
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sleep', '60'] });
  const id = r.json.id as string;
  // Either host may lease it; under load the first lease can take a few polls.
  await waitCluster(a, id, ['running'], 40_000);
  const c = await b.api('POST', `/v1/cluster/jobs/${id}/cancel`);
  expect(c.status).toBe(200);
  const done = await waitCluster(b, id, ['cancelled', 'succeeded', 'failed'], 20_000);
  expect(done.state).toBe('cancelled');
  expect(done.attempts).toHaveLength(1);
  expect(done.attempts[0].outcome).toBe('cancelled');
  expect((await a.api('POST', '/v1/cluster/jobs/nope-123/cancel')).status).toBe(404);
}, 90_000);

test('a host restarted on the same data dir does not run again what its journal re-queued: the queue owns it', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const shared = tmpDir();
  const a = await startAgent({ args: ['--max-cpu-jobs', '1', ...clusterArgs(q, bucket)], env: q.env });
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', `echo "$MLINFRA_CLUSTER_ATTEMPT" >> ${shared}/runs; sleep 60`] });
  const id = r.json.id as string;
  await waitFor('the first run', () => fs.existsSync(path.join(shared, 'runs')));
  const b = await startAgent({ args: ['--max-cpu-jobs', '1', ...clusterArgs(q, bucket)], env: q.env });
  await a.kill('SIGTERM'); // shutdown: the job is interrupted (re-queued in A's journal) and released to the queue
  await waitFor('the second run, on B', () => fs.readFileSync(path.join(shared, 'runs'), 'utf8') === '1\n2\n', 30_000);
  const a2 = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '1', ...clusterArgs(q, bucket)], env: q.env });
  await waitFor('the re-queued local job to be cancelled', () => /cluster job without a lease on this host/.test(a2.output()), 20_000);
  expect(fs.readFileSync(path.join(shared, 'runs'), 'utf8')).toBe('1\n2\n');
  const j = (await a2.api('GET', `/v1/cluster/jobs/${id}`)).json;
  expect(j).toMatchObject({ state: 'running', attempt: 2 });
  expect(j.attempts[0].outcome).toBe('interrupted');
  expect(j.attempts[1].host).toMatch(new RegExp(`/${b.pid}$`));
  await b.api('POST', `/v1/cluster/jobs/${id}/cancel`);
  await waitCluster(b, id, ['cancelled']);
}, 90_000);

test('a job too large for a queue message is refused with 413 JSON, and nothing is enqueued or recorded', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['true'], env: { BIG1: 'x'.repeat(100_000), BIG2: 'x'.repeat(100_000), BIG3: 'x'.repeat(100_000) } });
  expect(r.status).toBe(413);
  expect(r.json.error).toMatchObject({ code: 'payload_too_large', field: 'body' });
  expect(r.json.error.message).toMatch(/at most 262144/);
  expect(sqs.fake.bodies(q.url.split('/').pop()!)).toEqual([]);
  expect(fs.existsSync(path.join(bucket, 'jobs'))).toBe(false);
}, 30_000);

test('an unreachable queue answers 503 at submit, and nothing is half-accepted', async () => {
  const bucket = tmpDir();
  const a = await startAgent({ args: ['--queue', 'http://127.0.0.1:9/000000000000/gone', '--cluster-artifacts', `file://${bucket}`, '--queue-poll-seconds', '1'], env: sqs.kind === 'sqs' ? { AWS_ACCESS_KEY_ID: 'f', AWS_SECRET_ACCESS_KEY: 'f' } : {} });
  const t0 = Date.now();
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['true'] });
  expect(Date.now() - t0).toBeLessThan(15_000);
  expect(r.status).toBe(503);
  expect(r.json.error.code).toBe('queue_unavailable');
  expect(r.json.error.message).toMatch(/nothing was enqueued/);
  expect(r.headers.get('retry-after')).toBe('5');
  expect(fs.existsSync(path.join(bucket, 'jobs'))).toBe(false);
  // The worker's poll (every second) reports the unreachable queue too; under load its first try can lag.
  for (let i = 0; i < 100 && !/cluster queue receive failed/.test(a.output()); i++) await new Promise((r) => setTimeout(r, 100));
  expect(a.output()).toMatch(/cluster queue receive failed/);
}, 30_000);

test('a checkpoint upload that fails is logged and recorded, and the job is not reported as a success', async () => {
  // checkpoints in a real local S3 (s3rver) behind a TCP relay that the test cuts mid-job: every later
  // upload fails (stopping s3rver instead frees its port for another test's server to take); records stay on file://
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver');
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: tmpDir(), configureBuckets: [{ name: 'ckpt' }] });
  const s3Port = ((await s3.run()) as AddressInfo).port;
  let cut = false;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const up = net.connect(s3Port, '127.0.0.1');
    for (const sock of [client, up]) {
      sockets.add(sock);
      sock.on('error', () => undefined).on('close', () => sockets.delete(sock));
    }
    client.pipe(up).pipe(client);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  const endpoint = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
  try {
    const q = await sqs.create(`c${++n}`);
    const bucket = tmpDir();
    const a = await startAgent({ args: clusterArgs(q, bucket), env: { ...q.env, ...S3RVER_ENV, AWS_ENDPOINT_URL_S3: endpoint } });
    const r = await a.api('POST', '/v1/cluster/jobs', {
      argv: ['sh', '-c', 'for i in $(seq 1 40); do echo $i > "$MLINFRA_CHECKPOINT_DIR/step"; sleep 0.1; done'], checkpointDir: 's3://ckpt/run-1',
    });
    const id = r.json.id as string;
    const saved = await waitFor('a first checkpoint upload', async () => {
      const j = (await a.api('GET', `/v1/cluster/jobs/${id}`)).json;
      return j.checkpoint?.savedAt ? j : undefined;
    });
    expect(saved.state).toBe('running');
    cut = true;
    for (const sock of sockets) sock.destroy();
    const failing = await waitFor('the upload error in the record', async () => {
      const j = (await a.api('GET', `/v1/cluster/jobs/${id}`)).json;
      return j.checkpoint?.error ? j : undefined;
    });
    expect(failing.checkpoint.error).toMatch(/ECONNRESET|ECONNREFUSED|socket|connect/i);
    const done = await waitCluster(a, id, ['succeeded', 'failed']);
    expect(done.state).toBe('failed');
    expect(done.failure.reason).toMatch(/storage error/);
    expect(a.output()).toMatch(/checkpoint upload failed/);
  } finally {
    relay.close();
    for (const sock of sockets) sock.destroy();
    await s3.close();
  }
}, 60_000);

test('fails when --queue comes without --cluster-artifacts, or with a malformed queue URL (exit 2, naming the option)', () => {
  const dir = tmpDir();
  const run = (args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', dir, ...args], { env: { ...process.env, MLINFRA_AGENT_TOKEN: 'test-token-0123456789' }, encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, stderr: r.stderr };
  };
  const noBucket = run(['--queue', 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs']);
  expect(noBucket.status).toBe(2);
  expect(noBucket.stderr).toMatch(/--cluster-artifacts/);
  const bad = run(['--queue', 'sqs://jobs', '--cluster-artifacts', `file://${dir}/b`]);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/pubsub:\/\/PROJECT\/TOPIC\/SUBSCRIPTION/);
  const zero = run(['--queue', 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs', '--cluster-artifacts', `file://${dir}/b`, '--max-duration-seconds', '0']);
  // refused by the argument parser, like every numeric option (exit 1)
  expect(zero.status).toBe(1);
  expect(zero.stderr).toMatch(/--max-duration-seconds .*must be a number >= 0.001/);
});

test('a job\'s maxDurationSeconds stops it (class timeout), and serve --max-duration-seconds caps a longer limit', async () => {
  const q = await sqs.create(`c${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: [...clusterArgs(q, bucket), '--max-duration-seconds', '3'], env: q.env });
  const own = await a.api('POST', '/v1/cluster/jobs', { argv: ['sleep', '60'], maxDurationSeconds: 1, timeoutSeconds: 600 });
  expect(own.status).toBe(201);
  expect(own.json.spec.timeoutSeconds).toBe(1);
  const capped = await a.api('POST', '/v1/cluster/jobs', { argv: ['sleep', '60'], timeoutSeconds: 600 });
  for (const [r, limit] of [[own, 1], [capped, 3]] as const) {
    const done = await waitCluster(a, r.json.id, ['succeeded', 'failed'], 40_000);
    expect(done).toMatchObject({ state: 'failed', failure: { class: 'timeout' } });
    const ran = Date.parse(done.attempts[0].endedAt) - Date.parse(done.attempts[0].startedAt);
    expect(ran).toBeGreaterThanOrEqual(limit * 1000 - 500);
    expect(ran).toBeLessThan(30_000);
  }
}, 90_000);
