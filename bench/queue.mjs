// Benchmark of the cluster queue (the built agent, dist/agent): prints figures, asserts nothing.
//   node bench/queue.mjs      (after `npm run build:agent`; Pub/Sub rows need the gcloud emulator)
// - failover: notice -> the job running again on another host, and kill -9 -> running again (lease-timeout path)
// - cluster submits/s through one agent into each queue (the SQS figure is our loopback fake, not the service)
// - checkpoint save/restore MB/s against s3rver, through the agent's own storage code
// BENCH_QUEUE_ROUNDS (default 5) failover rounds per path; BENCH_CKPT_MB (default 256) checkpoint size.
import { mkdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
require(join(ROOT, 'test', 'support', 'ts-register.js'));
const helpers = require(join(ROOT, 'test', 'runtime-agent', 'helpers.ts'));
const { startSqsServer, startPubSubServer } = require(join(ROOT, 'test', 'runtime-agent', 'queue-helpers.ts'));
const { Cluster } = require(join(ROOT, 'test', 'runtime-agent', 'queue-failover.ts'));
const { TOOLS } = require(join(ROOT, 'test', 'support', 'tools.ts'));
const { Storage } = require(join(ROOT, 'src', 'runtime-agent', 'storage', 'index.ts'));

const ROUNDS = Number(process.env.BENCH_QUEUE_ROUNDS ?? 5);
const CKPT_MB = Number(process.env.BENCH_CKPT_MB ?? 256);
const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function startS3() {
  const S3rver = require('s3rver');
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-bench-s3-'));
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'cluster' }] });
  // job records are conditional writes (If-Match / If-None-Match), as on S3
  require(join(ROOT, 'test', 'support', 's3-conditional.ts')).addConditionalWrites(s3);
  const endpoint = `http://127.0.0.1:${(await s3.run()).port}`;
  return { endpoint, close: async () => { await s3.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** Median ms from the interruption to attempt 2 starting on another host. */
async function failover(server, store, mode) {
  const q = await server.create(`bench-${mode}-${Date.now()}`, { leaseSeconds: 3 });
  const c = new Cluster(q, `${store.artifacts}/${mode}`, store.env);
  const ms = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      await c.ensure();
      const id = await c.submit({}, c.hosts[r % c.hosts.length]);
      const first = await c.running(id, 1, 3);
      const t0 = Date.now();
      if (mode === 'kill') await c.kill(first.host, first.pgid);
      else first.host.imds.notify();
      const second = await helpers.waitFor('attempt 2', () => c.lines('starts.log').find((l) => l[0] === id && l[1] === '2'), 60_000, 10);
      ms.push(Number(second[3]) * 1000 - t0);
      c.finish(id);
      if (mode === 'notice') await first.host.agent.kill('SIGTERM');
      await helpers.waitFor('the end', async () => (await c.job(id))?.state === 'succeeded', 60_000, 100);
    }
  } finally {
    await c.close();
  }
  return ms;
}

/** Submits per second through one (paused: it leases nothing) agent, 8 at a time. */
async function submits(server, store, n = 200) {
  const q = await server.create(`bench-submit-${Date.now()}`);
  const a = await helpers.startAgent({ args: ['--paused', '--queue', q.url, '--cluster-artifacts', `${store.artifacts}/submits`, '--log-level', 'info'], env: { ...q.env, ...store.env } });
  try {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < n) {
        next++;
        const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['true'] });
        if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${r.text}`);
      }
    }));
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await a.kill('SIGTERM');
  }
}

/** putDir / getDir of CKPT_MB in 4 files, with the agent's S3 code against s3rver. */
async function checkpointThroughput(endpoint) {
  Object.assign(process.env, S3_ENV, { AWS_ENDPOINT_URL_S3: endpoint });
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-bench-ckpt-'));
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    const chunk = Buffer.alloc(CKPT_MB * 1024 * 1024 / 4, 7);
    for (let i = 0; i < 4; i++) writeFileSync(join(src, `shard-${i}.pt`), chunk);
    const storage = new Storage();
    let t0 = performance.now();
    await storage.putDir(src, 's3://cluster/bench-ckpt');
    const save = CKPT_MB / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    await storage.getDir('s3://cluster/bench-ckpt', join(dir, 'dst'));
    const restore = CKPT_MB / ((performance.now() - t0) / 1000);
    return { save, restore };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchQueue() {
  helpers.requireBundle();
  const rows = [];
  const s3 = await startS3();
  try {
    const sqs = await startSqsServer();
    const s3store = { artifacts: 's3://cluster', env: { ...S3_ENV, AWS_ENDPOINT_URL_S3: s3.endpoint } };
    const queues = [['SQS (loopback fake) + s3rver', sqs, s3store]];
    let pubsub;
    if (TOOLS.pubsubEmulator.present()) {
      pubsub = await startPubSubServer();
      const gcs = await require(join(ROOT, 'test', 'runtime-agent', 'fake-gcs.ts')).startFakeGcs();
      queues.push(['Pub/Sub (emulator) + fake GCS', pubsub, { artifacts: 'gs://cluster', env: { STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_CLOUD_PROJECT: 'bench' }, gcs }]);
    } else {
      process.stdout.write('queue bench: the Pub/Sub emulator is missing, Pub/Sub rows skipped\n');
    }
    try {
      for (const [name, server, store] of queues) {
        const notice = await failover(server, store, 'notice');
        const kill = await failover(server, store, 'kill');
        rows.push({ queue: name, measure: `failover after a spot notice (median of ${ROUNDS}), ms`, value: Math.round(median(notice)) });
        rows.push({ queue: name, measure: `failover after kill -9, 3 s lease (median of ${ROUNDS}), ms`, value: Math.round(median(kill)) });
        rows.push({ queue: name, measure: 'cluster submits/s (one agent, 8 clients)', value: Math.round(await submits(server, store)) });
      }
    } finally {
      await helpers.stopAllAgents();
      await sqs.close();
      await pubsub?.close();
      for (const [, , store] of queues) await store.gcs?.close();
    }
    const ck = await checkpointThroughput(s3.endpoint);
    rows.push({ queue: 's3rver', measure: `checkpoint save (putDir, ${CKPT_MB} MiB in 4 files), MB/s`, value: Math.round(ck.save) });
    rows.push({ queue: 's3rver', measure: `checkpoint restore (getDir, ${CKPT_MB} MiB), MB/s`, value: Math.round(ck.restore) });
  } finally {
    await s3.close();
  }
  process.stdout.write('\ncluster queue (bench/queue.mjs)\n');
  console.table(rows);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchQueue();
