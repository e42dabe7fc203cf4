/**
 * The training-pipeline example on Kubernetes, end to end through the gateway (issue 19, item 2):
 * the spec and the gateway config come from the synthesized pipeline-k8s stack; `mlinfra-agent
 * run-pipeline` (the built bundle, as the CronJob runs it) submits each step to the gateway, which
 * creates Kueue-queued Jobs in a fake API server; a fake Kueue + kubelet (k8s-fake-cluster.ts) admits
 * them within the ClusterQueue's GPU quota and runs each pod's command for real: the built agent's
 * k8s-wrap and the example's Python scripts, with the artifacts volume mapped to a local directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildGateway } from '../../src/runtime-agent/k8s/gateway';
import { KubeClient } from '../../src/runtime-agent/k8s/kube-client';
import type { GatewayConfig } from '../../src/runtime-agent/k8s/objects';
import { exampleOutput } from '../support/examples';
import { gatewayConfigOf, STAND_IN_TRAIN } from '../kubernetes-support';
import { BUNDLE, requireBundle, ROOT, tmpDir } from './helpers';
import { FakeApiServer } from './k8s-fake-apiserver';
import { FakeCluster } from './k8s-fake-cluster';
import { filesUnder, readJson, runCli, writeSpec } from './pipeline-helpers';
import { TOOLS } from '../support/tools';

const NAMESPACE = 'ml-training';
const TOKEN = 'gateway-token-0123456789abcdef';
const EXAMPLE = path.join(ROOT, 'examples', 'training-pipeline');
const HAS_TORCH = TOOLS.torch.present();


describe('the training-pipeline example through the Kubernetes gateway', () => {
  let fake: FakeApiServer;
  let cluster: FakeCluster;
  let gateway: FastifyInstance;
  let url: string;
  let config: GatewayConfig;
  let spec: any;
  const work = tmpDir('mlinfra-k8s-pipeline-');
  const artifacts = path.join(work, 'artifacts');

  beforeAll(async () => {
    requireBundle();
    const json = exampleOutput('training-pipeline').stacks['pipeline-k8s'];
    config = gatewayConfigOf(json, NAMESPACE);
    const cm = Object.values(json.resource.kubernetes_config_map_v1).find((c: any) => c.data['spec.json']) as any;
    spec = JSON.parse(cm.data['spec.json']);
    fake = new FakeApiServer('sa-token');
    await fake.start();
    fake.put('apis/kueue.x-k8s.io/v1beta2', 'localqueues', { metadata: { name: config.localQueue, namespace: NAMESPACE }, spec: { clusterQueue: `${NAMESPACE}-${config.cluster}` } });
    // What Terraform creates with the cluster: the gateway's pipeline-run record.
    fake.put('api/v1', 'configmaps', { metadata: { name: config.pipelineRunsConfigMap, namespace: NAMESPACE, resourceVersion: '1' }, data: { 'runs.json': '{}' } });
    gateway = await buildGateway({ config, kube: new KubeClient({ server: fake.url, token: () => 'sa-token' }), token: TOKEN, version: 'test', pollMs: 50 });
    url = await gateway.listen({ host: '127.0.0.1', port: 0 });
    const standIn = path.join(work, 'train-stand-in.py');
    fs.writeFileSync(standIn, STAND_IN_TRAIN);
    fs.mkdirSync(path.join(work, 'scratch'));
    cluster = new FakeCluster(fake, {
      namespace: NAMESPACE, quotaGpus: config.quotaGpus!, workingDir: EXAMPLE, scratch: path.join(work, 'scratch'),
      paths: {
        '/opt/mlinfra/agent/bin/node': process.execPath, '/opt/mlinfra/agent/mlinfra-agent.js': BUNDLE, '/var/lib/mlinfra/artifacts': artifacts,
        ...(HAS_TORCH ? {} : { 'scripts/train.py': standIn }),
      },
    });
    cluster.start();
  });

  afterAll(async () => {
    cluster?.stop();
    await gateway?.close();
    await fake?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('featurize -> train_a, train_b -> compare -> promote: every step a Kueue-queued Job, the run recorded on the artifacts volume', async () => {
    // The CronJob's command: run-pipeline against the gateway, run directories on the artifacts volume.
    expect(spec.artifactsUri).toMatch(/^file:\/\/\/var\/lib\/mlinfra\/artifacts\//);
    const local = { ...spec, artifactsUri: spec.artifactsUri.replace('file:///var/lib/mlinfra/artifacts', `file://${artifacts}`) };
    fs.writeFileSync(path.join(work, 'token'), TOKEN);
    const runs = path.join(artifacts, 'pipeline-runs');
    const r = await runCli(['run-pipeline', writeSpec(work, local), '--url', url, '--token-file', path.join(work, 'token'), '--work-dir', runs]);
    expect(r.stderr).toBe('');
    expect(r.summary).toMatchObject({
      state: 'succeeded', promoted: true,
      steps: { featurize: 'succeeded', train_a: 'succeeded', train_b: 'succeeded', compare: 'succeeded', promote: 'succeeded' },
    });
    expect(r.code).toBe(0);

    // Four run steps, four Jobs (promote runs in the runner), each in the LocalQueue, suspended at creation.
    const created = fake.callsTo('POST', /\/apis\/batch\/v1\/namespaces\/ml-training\/jobs$/).map((c) => c.body);
    expect(created.map((j) => JSON.parse(j.metadata.annotations['mlinfra.dev/spec']).name).sort())
      .toEqual(['ltv/compare', 'ltv/featurize', 'ltv/train_a', 'ltv/train_b'].map((n) => n.replace('ltv', spec.name)).sort());
    for (const j of created) {
      expect(j.metadata.labels['kueue.x-k8s.io/queue-name']).toBe(config.localQueue);
      expect(j.spec.suspend).toBe(true);
    }
    const gpus = (step: string) => created.find((j) => j.metadata.annotations['mlinfra.dev/spec'].includes(`/${step}"`)).spec.template.spec.containers[0].resources.requests['nvidia.com/gpu'];
    expect([gpus('featurize'), gpus('train_a'), gpus('train_b'), gpus('compare')]).toEqual([undefined, '1', '1', undefined]);
    // The ClusterQueue holds one T4: the two candidates were admitted one after the other.
    expect(config.quotaGpus).toBe(1);
    expect(cluster.peakGpus).toBe(1);
    expect(fake.callsTo('POST', /jobsets/)).toEqual([]);

    // The run on the artifacts volume: the steps' files and the runner's record, logs read through the gateway.
    const runId = r.summary.runId as string;
    const store = local.artifactsUri.slice('file://'.length);
    const runDir = path.join(store, 'runs', runId);
    expect(filesUnder(runDir)).toEqual(expect.arrayContaining(['data/train.csv', 'model/a.pt', 'model/b.pt', 'model/model.pt', 'metrics.json', 'steps.json',
      'promotion.json', 'logs/featurize.log', 'logs/train_a.log', 'logs/compare.log']));
    const metrics = readJson(path.join(runDir, 'metrics.json'));
    expect(metrics.val_auc).toBe(Math.max(metrics.val_auc_a, metrics.val_auc_b));
    expect(fs.readFileSync(path.join(runDir, 'logs', 'train_a.log'), 'utf8')).toMatch(/^train a: /m);
    expect(readJson(path.join(store, 'models', 'current'))).toMatchObject({ runId, metric: 'val_auc', value: metrics.val_auc });
    // The run's end is counted where the gateway's /metrics reads it (the MonitoringStack's pipeline alerts).
    const record = JSON.parse(fake.get('api/v1', 'configmaps', NAMESPACE, config.pipelineRunsConfigMap!).data['runs.json']);
    expect(record[spec.name]).toMatchObject({ succeeded: 1, failed: 0, recent: [runId] });
    // Checkpoints of train jobs default to the artifact store.
    const trainJob = created.find((j) => j.metadata.annotations['mlinfra.dev/spec'].includes('/train_a"'));
    expect(trainJob.spec.template.spec.containers[0].env).toContainEqual({ name: 'MLINFRA_CHECKPOINT_URI', value: `file:///var/lib/mlinfra/artifacts/checkpoints/${trainJob.metadata.name}/` });
  }, 120_000);
});
