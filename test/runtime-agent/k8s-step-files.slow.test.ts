/**
 * Pipeline steps on Kubernetes pass files through the object store (runtime-agent/k8s/step-files.ts),
 * end to end: `mlinfra-agent run-pipeline` (the built bundle, as the CronJob runs it, with
 * MLINFRA_STEP_FILES=object-store) against the gateway, a fake API server and fake Kueue/kubelet that
 * run each pod's command for real (the built k8s-wrap, then python3), every pod on its own empty disk
 * (the runner's run directory is not shared), and s3rver as the S3-compatible store, reached with the
 * credentials file a Secret would mount.
 */
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildGateway } from '../../src/runtime-agent/k8s/gateway';
import { KubeClient } from '../../src/runtime-agent/k8s/kube-client';
import { S3Store } from '../../src/runtime-agent/storage/s3';
import type { GatewayConfig } from '../../src/runtime-agent/k8s/objects';
import { exampleOutput } from '../support/examples';
import { TOOLS } from '../support/tools';
import { STAND_IN_TRAIN } from '../kubernetes-support';
import { BUNDLE, PYTHON, requireBundle, ROOT, tmpDir } from './helpers';
import { FakeApiServer } from './k8s-fake-apiserver';
import { FakeCluster } from './k8s-fake-cluster';
import { readJson, runCli, writeSpec } from './pipeline-helpers';

const NAMESPACE = 'ml';
const TOKEN = 'gateway-token-0123456789abcdef';
const CREDENTIALS = '/var/run/mlinfra/storage/credentials';
const ENV_KEYS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
const EXAMPLE = path.join(ROOT, 'examples', 'training-pipeline');
const HAS_TORCH = TOOLS.torch.present();
const saved: Record<string, string | undefined> = {};

/** A step: python3 with the run directory helpers inline (merge into metrics.json as the example's _runfiles does). */
const py = (body: string): string[] => [PYTHON, '-c', `import json, os, time
d = os.environ["MLINFRA_RUN_DIR"]
def rd(p): return open(os.path.join(d, p)).read()
def wr(p, t):
    os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True); open(os.path.join(d, p), "w").write(t)
def merge(m):
    f = os.path.join(d, "metrics.json"); cur = json.load(open(f)) if os.path.exists(f) else {}
    cur.update(m); json.dump(cur, open(f, "w"))
${body}`];
const step = (name: string, after: string[], body: string) => ({ kind: 'run', name, argv: py(body), env: {}, after, retries: 0, gpus: 0 });

describe('pipeline steps pass files through the object store on Kubernetes', () => {
  let fake: FakeApiServer;
  let cluster: FakeCluster;
  let gateway: FastifyInstance;
  let s3: { close(): Promise<void> };
  let endpoint: string;
  const work = tmpDir('mlinfra-k8s-step-files-');
  const runner = path.join(work, 'runner');
  const creds = path.join(work, 'credentials');

  beforeAll(async () => {
    requireBundle();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const S3rver = require('s3rver');
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(work, 's3'), configureBuckets: [{ name: 'art' }] });
    endpoint = `http://127.0.0.1:${((await server.run()) as AddressInfo).port}`;
    s3 = server;
    for (const k of ENV_KEYS) saved[k] = process.env[k];
    // The in-test S3 client's credentials (the SDK reads them from the environment).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    fs.writeFileSync(creds, '[default]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n');
    fake = new FakeApiServer('sa-token');
    await fake.start();
    fake.put('apis/kueue.x-k8s.io/v1beta2', 'localqueues', { metadata: { name: 'train', namespace: NAMESPACE }, spec: { clusterQueue: 'ml-train' } });
    const config: GatewayConfig = {
      namespace: NAMESPACE, cluster: 'train', localQueue: 'train', quotaGpus: 2, gpusPerNode: 1, maxNodes: 2,
      image: 'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime', agentImage: 'node:24.18.1-bookworm-slim', bundleConfigMap: 'train-agent',
      jobServiceAccount: 'train-jobs', nodeSelector: {}, tolerations: [], cpuPerGpu: 4, memoryGiBPerGpu: 16,
      artifactsUri: 's3://art/train', labels: {},
      // What the GpuCluster writes for an S3-compatible artifactStore with a credentials Secret.
      storage: {
        env: { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: endpoint, AWS_S3_FORCE_PATH_STYLE: '1' },
        credentials: { secret: 'store-credentials', key: 'credentials', envVar: 'AWS_SHARED_CREDENTIALS_FILE' },
        module: { configMap: 'train-storage', file: 'storage-s3.js' },
      },
    };
    gateway = await buildGateway({ config, kube: new KubeClient({ server: fake.url, token: () => 'sa-token' }), token: TOKEN, version: 'test', pollMs: 50 });
    const url = await gateway.listen({ host: '127.0.0.1', port: 0 });
    fs.writeFileSync(path.join(work, 'token'), TOKEN);
    fs.writeFileSync(path.join(work, 'url'), url);
    fs.mkdirSync(path.join(work, 'scratch'));
    const standIn = path.join(work, 'train-stand-in.py');
    fs.writeFileSync(standIn, STAND_IN_TRAIN);
    // The example's steps name scripts relative to the image's working directory (the example here).
    cluster = new FakeCluster(fake, {
      namespace: NAMESPACE, quotaGpus: 2, workingDir: EXAMPLE, scratch: path.join(work, 'scratch'), podLocal: [runner],
      paths: {
        '/opt/mlinfra/agent/bin/node': process.execPath, '/opt/mlinfra/agent/mlinfra-agent.js': BUNDLE, [CREDENTIALS]: creds,
        ...(HAS_TORCH ? {} : { 'scripts/train.py': standIn }),
      },
    });
    cluster.start();
  });

  afterAll(async () => {
    cluster?.stop();
    await gateway?.close();
    await fake?.stop();
    await s3?.close();
    for (const k of ENV_KEYS) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('files flow prep -> a, b (in parallel) -> final; the parallel writers merge in declared order, whichever ends first', async () => {
    const spec = {
      version: 1, name: 'flow', artifactsUri: 's3://art/train/pipelines/flow', autostop: false, params: {},
      steps: [
        step('prep', [], 'wr("data/in.txt", "rows=3\\n"); merge({"rows": 3})'),
        // a ends last (it sleeps), b first: b is declared later, so b's shared.txt and metrics "shared" win anyway.
        step('a', ['prep'], 'time.sleep(1.5); wr("out/a.txt", "a saw " + rd("data/in.txt")); wr("shared.txt", "from a"); merge({"a": 1, "shared": "a"})'),
        step('b', ['prep'], 'wr("out/b.txt", "b saw " + rd("data/in.txt")); wr("shared.txt", "from b"); merge({"b": 2, "shared": "b"})'),
        // final ran after both: its own rewrite of rows wins over prep's.
        step('final', ['a', 'b'], 'wr("result.txt", rd("out/a.txt") + rd("out/b.txt") + rd("shared.txt")); merge({"rows": 4, "final": True})'),
      ],
    };
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: endpoint, MLINFRA_STEP_FILES: 'object-store' };
    const r = await runCli(['run-pipeline', writeSpec(work, spec), '--url', fs.readFileSync(path.join(work, 'url'), 'utf8'),
      '--token-file', path.join(work, 'token'), '--work-dir', runner], env);
    expect(r.summary).toMatchObject({ state: 'succeeded', steps: { prep: 'succeeded', a: 'succeeded', b: 'succeeded', final: 'succeeded' } });
    expect(r.code).toBe(0);

    // Each step was its own Job with the store's way in, and its own output prefix.
    const jobs = fake.callsTo('POST', /\/apis\/batch\/v1\/namespaces\/ml\/jobs$/).map((c) => c.body);
    const envOf = (name: string) => Object.fromEntries(jobs.find((j) => j.metadata.annotations['mlinfra.dev/spec'].includes(`flow/${name}"`))
      .spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
    const runId = r.summary.runId as string;
    expect(envOf('a')).toMatchObject({
      MLINFRA_RUN_DIR_URI: `s3://art/train/pipelines/flow/runs/${runId}/`,
      MLINFRA_STEP_OUTPUT_URI: `s3://art/train/pipelines/flow/step-outputs/${runId}/a/`,
      AWS_SHARED_CREDENTIALS_FILE: CREDENTIALS, AWS_ENDPOINT_URL_S3: endpoint,
    });

    // The pods did not share the runner's disk: each restored from the store into an empty directory.
    const podDisks = fs.readdirSync(path.join(work, 'scratch', 'pods')).filter((p) => jobs.some((j) => p.startsWith(j.metadata.name)));
    expect(podDisks).toHaveLength(4);

    // The runner's run directory holds every step's files, merged in the defined order.
    const runDir = path.join(runner, 'flow', runId);
    expect(fs.readFileSync(path.join(runDir, 'result.txt'), 'utf8')).toBe('a saw rows=3\nb saw rows=3\nfrom b');
    expect(fs.readFileSync(path.join(runDir, 'shared.txt'), 'utf8')).toBe('from b');
    expect(readJson(path.join(runDir, 'metrics.json'))).toEqual({ rows: 4, a: 1, b: 2, shared: 'b', final: true });

    // b really ended before a (otherwise the order rule was not exercised).
    const steps = readJson(path.join(runDir, 'steps.json'));
    expect(Date.parse(steps.b.endedAt)).toBeLessThan(Date.parse(steps.a.endedAt));

    // Only what a step created or changed went back: b's prefix lacks the data/in.txt it restored.
    const store = new S3Store({ AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'us-east-1' });
    const keys = async (uri: string) => (await store.list(uri)).map((o) => o.key);
    expect(await keys(`s3://art/train/pipelines/flow/step-outputs/${runId}/b/`)).toEqual(['metrics.json', 'out/b.txt', 'shared.txt']);
    // The run record in the store ends with the merged files (uploaded at the end, as on VMs).
    expect(await keys(`s3://art/train/pipelines/flow/runs/${runId}/`)).toEqual(expect.arrayContaining(['result.txt', 'shared.txt', 'out/a.txt', 'metrics.json', 'steps.json']));
  }, 180_000);

  test('the training-pipeline example on the store: featurize -> train_a, train_b -> compare -> promote, each step on its own disk', async () => {
    const json = exampleOutput('training-pipeline').stacks['pipeline-k8s'];
    const cm = Object.values(json.resource.kubernetes_config_map_v1).find((c: any) => c.data['spec.json']) as any;
    const spec = { ...JSON.parse(cm.data['spec.json']), artifactsUri: 's3://art/train/pipelines/example' };
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: endpoint, MLINFRA_STEP_FILES: 'object-store' };
    const r = await runCli(['run-pipeline', writeSpec(work, spec, 'example.json'), '--url', fs.readFileSync(path.join(work, 'url'), 'utf8'),
      '--token-file', path.join(work, 'token'), '--work-dir', runner], env);
    expect(r.summary).toMatchObject({
      state: 'succeeded', promoted: true,
      steps: { featurize: 'succeeded', train_a: 'succeeded', train_b: 'succeeded', compare: 'succeeded', promote: 'succeeded' },
    });
    // What the steps wrote on their own disks is in the runner's run directory: the data, both candidates, the chosen model.
    const runDir = path.join(runner, spec.name, r.summary.runId);
    for (const f of ['data/train.csv', 'model/a.pt', 'model/b.pt', 'model/model.pt']) expect({ f, there: fs.existsSync(path.join(runDir, f)) }).toEqual({ f, there: true });
    const metrics = readJson(path.join(runDir, 'metrics.json'));
    expect(metrics.val_auc).toBe(Math.max(metrics.val_auc_a, metrics.val_auc_b));
    // The promotion is in the store.
    const store = new S3Store({ AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'us-east-1' });
    const models = (await store.list('s3://art/train/pipelines/example/models/')).map((o) => o.key);
    expect(models).toContain('current');
  }, 240_000);

  test('a step that fails sends nothing back, and the steps after it do not run', async () => {
    const spec = {
      version: 1, name: 'fails', artifactsUri: 's3://art/train/pipelines/fails', autostop: false, params: {},
      steps: [
        step('half', [], 'wr("partial.txt", "half done"); raise SystemExit(3)'),
        step('next', ['half'], 'wr("never.txt", "x")'),
      ],
    };
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: endpoint, MLINFRA_STEP_FILES: 'object-store' };
    const r = await runCli(['run-pipeline', writeSpec(work, spec, 'fails.json'), '--url', fs.readFileSync(path.join(work, 'url'), 'utf8'),
      '--token-file', path.join(work, 'token'), '--work-dir', runner], env);
    expect(r.summary).toMatchObject({ state: 'failed', steps: { half: 'failed', next: 'skipped' } });
    const runDir = path.join(runner, 'fails', r.summary.runId);
    expect(fs.existsSync(path.join(runDir, 'partial.txt'))).toBe(false);
  }, 120_000);
});
