/**
 * The Kubernetes gateway against a fake API server on loopback (k8s-fake-apiserver.ts: it records
 * calls; tests play the controllers' part by setting status and adding pods). Asserts the exact
 * objects created, states read back, logs, cancel, and the refusals Kueue would otherwise leave pending.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildGateway } from '../../src/runtime-agent/k8s/gateway';
import { KubeClient } from '../../src/runtime-agent/k8s/kube-client';
import { readGatewayConfig, serveGateway } from '../../src/runtime-agent/k8s/main';
import { GatewayConfig } from '../../src/runtime-agent/k8s/objects';
import { MULTI_NODE_ENV } from '../../src/contracts/pipeline-spec';
import { crdErrors, loadCrd } from '../kubernetes-crd-schema';
import { FakeApiServer } from './k8s-fake-apiserver';

const KUBE_TOKEN = 'sa-token-abc';
const TOKEN = 'gateway-token-0123456789';
const NS = 'ml';
const JOBSET_CRD = loadCrd('jobset-v0.12.0-jobsets.json');
const CLI = join(__dirname, '..', '..', 'dist', 'agent', 'mlinfra-agent.js');

const config: GatewayConfig = {
  namespace: NS, cluster: 'train', localQueue: 'train', quotaGpus: 16, gpusPerNode: 8, maxNodes: 2,
  image: 'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime', agentImage: 'node:24-bookworm-slim', bundleConfigMap: 'train-agent',
  jobServiceAccount: 'train-jobs', nodeSelector: { 'cloud.google.com/gke-accelerator': 'nvidia-l4' },
  tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
  cpuPerGpu: 4, memoryGiBPerGpu: 16, artifactsUri: 'gs://acme-ml/train', labels: { 'app.kubernetes.io/managed-by': 'mlinfra-agent' },
};

let fake: FakeApiServer;
let app: FastifyInstance;
let url: string;
let ids: string[];

beforeEach(async () => {
  fake = new FakeApiServer(KUBE_TOKEN);
  await fake.start();
  fake.put('apis/kueue.x-k8s.io/v1beta2', 'localqueues', { apiVersion: 'kueue.x-k8s.io/v1beta2', kind: 'LocalQueue', metadata: { name: 'train', namespace: NS }, spec: { clusterQueue: 'ml-train' } });
  ids = ['j000000000001', 'j000000000002', 'j000000000003'];
  app = await buildGateway({ config, kube: new KubeClient({ server: fake.url, token: () => KUBE_TOKEN }), token: TOKEN, version: 'test', newId: () => ids.shift()!, pollMs: 50 });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterEach(async () => {
  await app.close();
  await fake.stop();
});

const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(`${url}${path}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json, headers: res.headers };
};
const pod = (name: string, job: string, status: Record<string, unknown>) =>
  fake.put('api/v1', 'pods', { metadata: { name, namespace: NS, labels: { 'mlinfra.dev/cluster': 'train', 'mlinfra.dev/job-id': job } }, status });
const setStatus = (group: string, plural: string, name: string, patch: Record<string, unknown>) => {
  const o = fake.get(group, plural, NS, name);
  fake.put(group, plural, { ...o, ...patch });
};

describe('gateway: single-node jobs as Kueue-queued Jobs', () => {
  test('submit creates exactly this Job: queue label, suspended, GPU request, tolerations, node selector, env, wrapped command', async () => {
    const r = await api('POST', '/v1/jobs', { argv: ['python', 'train.py', '--lr', '0.1'], gpus: 2, retries: 3, timeoutSeconds: 3600, env: { WANDB_MODE: 'offline' }, checkpointDir: 'gs://acme-ml/ckpt/a' });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ id: 'j000000000001', state: 'queued', gpus: 2, nodes: 1, object: 'Job/j000000000001', queue: 'train' });
    // The LocalQueue is checked first, then the Job created.
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /apis/kueue.x-k8s.io/v1beta2/namespaces/ml/localqueues/train',
      'POST /apis/batch/v1/namespaces/ml/jobs',
    ]);
    const job = fake.callsTo('POST', /\/jobs$/)[0].body;
    expect(job.metadata.labels).toEqual({
      'app.kubernetes.io/managed-by': 'mlinfra-agent', 'mlinfra.dev/cluster': 'train', 'mlinfra.dev/job-id': 'j000000000001', 'kueue.x-k8s.io/queue-name': 'train',
    });
    expect(job.spec).toMatchObject({ suspend: true, backoffLimit: 3, activeDeadlineSeconds: 3600 });
    expect(job.spec.podFailurePolicy).toEqual({ rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] });
    const ps = job.spec.template.spec;
    expect(job.spec.template.metadata.labels['kueue.x-k8s.io/queue-name']).toBeUndefined();
    expect(ps.restartPolicy).toBe('Never');
    expect(ps.nodeSelector).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-l4' });
    expect(ps.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(ps.automountServiceAccountToken).toBe(false);
    const c = ps.containers[0];
    expect(c.image).toBe(config.image);
    expect(c.resources).toEqual({ requests: { 'cpu': '8', 'memory': '32Gi', 'nvidia.com/gpu': '2' }, limits: { 'cpu': '16', 'memory': '64Gi', 'nvidia.com/gpu': '2' } });
    expect(c.command.slice(3)).toEqual(['mlinfra-agent', '/opt/mlinfra/agent/bin/node', '/opt/mlinfra/agent/mlinfra-agent.js', 'k8s-wrap', '--', 'python', 'train.py', '--lr', '0.1']);
    expect(c.env).toEqual([
      { name: 'WANDB_MODE', value: 'offline' }, { name: 'MLINFRA_JOB_ID', value: 'j000000000001' }, { name: 'MLINFRA_GPUS', value: '2' },
      { name: 'MLINFRA_CLUSTER', value: 'train' }, { name: 'HOME', value: '/tmp' }, { name: 'MLINFRA_ARTIFACTS_URI', value: 'gs://acme-ml/train' },
      { name: 'MLINFRA_CHECKPOINT_URI', value: 'gs://acme-ml/ckpt/a' },
    ]);
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(ps.initContainers[0].image).toBe(config.agentImage);
    // Env values never land in annotations (they may hold secrets).
    expect(JSON.stringify(job.metadata.annotations)).not.toContain('offline');
  });

  test('states: queued while suspended, running with a running pod, succeeded on Complete', async () => {
    const { json } = await api('POST', '/v1/jobs', { argv: ['true'], gpus: 1 });
    expect((await api('GET', `/v1/jobs/${json.id}`)).json.state).toBe('queued');
    setStatus('apis/batch/v1', 'jobs', json.id, { spec: { ...fake.get('apis/batch/v1', 'jobs', NS, json.id).spec, suspend: false }, status: { active: 1, startTime: '2026-01-01T00:01:00Z' } });
    pod(`${json.id}-abcde`, json.id, { phase: 'Running' });
    expect((await api('GET', `/v1/jobs/${json.id}`)).json).toMatchObject({ state: 'running', attempts: 1, pods: [`${json.id}-abcde`] });
    setStatus('apis/batch/v1', 'jobs', json.id, { status: { succeeded: 1, completionTime: '2026-01-01T00:05:00Z', conditions: [{ type: 'Complete', status: 'True' }] } });
    expect((await api('GET', `/v1/jobs/${json.id}`)).json).toMatchObject({ state: 'succeeded', exitCode: 0, endedAt: '2026-01-01T00:05:00Z' });
  });

  test('failure classes from pods: OOMKilled -> oom, DisruptionTarget -> preempted, deadline -> timeout, wrapper message', async () => {
    const failed = { conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] };
    const a = (await api('POST', '/v1/jobs', { argv: ['x'] })).json.id;
    setStatus('apis/batch/v1', 'jobs', a, { status: failed });
    pod(`${a}-1`, a, { phase: 'Failed', containerStatuses: [{ name: 'job', state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }] });
    expect((await api('GET', `/v1/jobs/${a}`)).json.failure).toMatchObject({ class: 'oom' });

    const b = (await api('POST', '/v1/jobs', { argv: ['x'] })).json.id;
    setStatus('apis/batch/v1', 'jobs', b, { status: failed });
    pod(`${b}-1`, b, { phase: 'Failed', conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler', message: 'preempted by a higher priority pod' }] });
    expect((await api('GET', `/v1/jobs/${b}`)).json.failure).toEqual({ class: 'preempted', reason: `pod ${b}-1: PreemptionByScheduler: preempted by a higher priority pod` });

    const c = (await api('POST', '/v1/jobs', { argv: ['x'] })).json.id;
    setStatus('apis/batch/v1', 'jobs', c, { status: { conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }] } });
    expect((await api('GET', `/v1/jobs/${c}`)).json).toMatchObject({ state: 'failed', failure: { class: 'timeout' } });

    // The wrapper's termination message names the class when Kubernetes cannot tell (a CUDA OOM exits 1).
    setStatus('apis/batch/v1', 'jobs', c, { status: failed });
    pod(`${c}-1`, c, { phase: 'Failed', containerStatuses: [{ name: 'job', state: { terminated: { exitCode: 1, reason: 'Error', message: '{"class":"oom","reason":"out of memory: torch.OutOfMemoryError: CUDA out of memory"}' } } }] });
    expect((await api('GET', `/v1/jobs/${c}`)).json).toMatchObject({ exitCode: 1, failure: { class: 'oom', reason: 'out of memory: torch.OutOfMemoryError: CUDA out of memory' } });
  });

  test('logs: the pod\'s log, and -f streams until the container ends', async () => {
    const id = (await api('POST', '/v1/jobs', { argv: ['python', 'train.py'] })).json.id;
    expect((await api('GET', `/v1/jobs/${id}/logs`)).text).toBe('');
    setStatus('apis/batch/v1', 'jobs', id, { spec: { ...fake.get('apis/batch/v1', 'jobs', NS, id).spec, suspend: false }, status: { active: 1 } });
    pod(`${id}-p1`, id, { phase: 'Running' });
    fake.appendLog(NS, `${id}-p1`, 'epoch 1\n');
    const snap = await api('GET', `/v1/jobs/${id}/logs`);
    expect(snap.text).toBe('epoch 1\n');
    expect(snap.headers.get('x-job-state')).toBe('running');
    const res = await fetch(`${url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toBe('epoch 1\n');
    fake.appendLog(NS, `${id}-p1`, 'epoch 2\n');
    let rest = new TextDecoder().decode((await reader.read()).value);
    fake.endLog(NS, `${id}-p1`);
    for (;;) { const { value, done } = await reader.read(); if (done) break; rest += new TextDecoder().decode(value); }
    expect(rest).toBe('epoch 2\n');
    expect(fake.callsTo('GET', /\/pods\/[^/]+\/log$/).map((c) => c.query)).toEqual([
      { container: 'job' }, { container: 'job', follow: 'true' },
    ]);
  });

  test('cancel deletes the Job in the foreground and reports cancelled; it is then gone', async () => {
    const id = (await api('POST', '/v1/jobs', { argv: ['sleep', '1000'] })).json.id;
    const r = await api('POST', `/v1/jobs/${id}/cancel`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, state: 'cancelled', failure: { class: 'cancelled' } });
    expect(fake.callsTo('DELETE', /\/jobs\//).map((c) => [c.path, c.body])).toEqual([
      [`/apis/batch/v1/namespaces/ml/jobs/${id}`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' }],
    ]);
    expect((await api('GET', `/v1/jobs/${id}`)).status).toBe(404);
  });

  test('an Idempotency-Key names one object: a retried submit answers the first job', async () => {
    const a = await api('POST', '/v1/jobs', { argv: ['true'] }, { 'idempotency-key': 'k-1' });
    const b = await api('POST', '/v1/jobs', { argv: ['true'] }, { 'idempotency-key': 'k-1' });
    expect([a.status, b.status]).toEqual([201, 200]);
    expect(b.json.id).toBe(a.json.id);
    expect(b.headers.get('idempotent-replay')).toBe('true');
    expect(fake.callsTo('POST', /\/jobs$/)).toHaveLength(2);
    expect([...fake.objects.keys()].filter((k) => k.includes('/jobs/'))).toHaveLength(1);
  });
});

describe('gateway: multi-node jobs as JobSets', () => {
  test('a 2-node job is a JobSet that passes the JobSet v0.12.0 CRD schema, with torchrun c10d rendezvous on rank 0 through the headless service', async () => {
    const r = await api('POST', '/v1/jobs', { argv: ['torchrun', 'train.py'], gpus: 8, nodes: 2, retries: 1 });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ id: 'j000000000001', nodes: 2, object: 'JobSet/j000000000001' });
    const js = fake.callsTo('POST', /\/jobsets$/)[0].body;
    expect(fake.callsTo('POST', /\/jobsets$/)[0].path).toBe('/apis/jobset.x-k8s.io/v1alpha2/namespaces/ml/jobsets');
    expect(crdErrors(JOBSET_CRD, js)).toEqual([]);
    expect(js.metadata.labels['kueue.x-k8s.io/queue-name']).toBe('train');
    expect(js.spec).toMatchObject({
      suspend: true, network: { enableDNSHostnames: true, publishNotReadyAddresses: true }, failurePolicy: { maxRestarts: 1 }, successPolicy: { operator: 'All' },
    });
    expect(js.spec.replicatedJobs).toHaveLength(1);
    const rj = js.spec.replicatedJobs[0];
    expect(rj).toMatchObject({ name: 'node', replicas: 1 });
    expect(rj.template.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 0 });
    const ps = rj.template.spec.template.spec;
    expect(ps.subdomain).toBe('j000000000001');
    const c = ps.containers[0];
    expect(c.resources.requests['nvidia.com/gpu']).toBe('8');
    expect(c.ports).toEqual([{ name: 'rendezvous', containerPort: 29500, protocol: 'TCP' }]);
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    // Pod hostnames: <jobset>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain> (JobSet network.enableDNSHostnames).
    expect(env).toMatchObject({
      PET_NNODES: '2', PET_NPROC_PER_NODE: '8', PET_RDZV_BACKEND: 'c10d', PET_RDZV_ENDPOINT: 'j000000000001-node-0-0.j000000000001:29500', PET_RDZV_ID: 'j000000000001',
      // The multi-node contract (contracts/pipeline-spec.ts), as on VMs.
      MLINFRA_NNODES: '2', MLINFRA_GPUS_PER_NODE: '8', MLINFRA_RDZV_ENDPOINT: 'j000000000001-node-0-0.j000000000001:29500',
      MASTER_ADDR: 'j000000000001-node-0-0.j000000000001', MASTER_PORT: '29500', MLINFRA_GANG_ID: 'j000000000001',
      MLINFRA_NODE_RANK: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } },
      MLINFRA_JOBSET_RESTART_ATTEMPT: { fieldRef: { fieldPath: "metadata.annotations['jobset.sigs.k8s.io/restart-attempt']" } },
    });
    const names = new Set(c.env.map((e: any) => e.name));
    expect(MULTI_NODE_ENV.filter((n) => n !== 'MLINFRA_GANG_ATTEMPT' && !names.has(n))).toEqual([]);
    // Pod names stay within 63 characters (the JobSet webhook's check): <id>-node-0-1-xxxxx.
    expect(`j000000000001-node-0-1-abcde`.length).toBeLessThanOrEqual(63);
  });

  test('a pipeline step\'s gpusPerNode is the GPUs of each node\'s pod', async () => {
    const r = await api('POST', '/v1/jobs', { argv: ['python3', 'train.py'], gpus: 0, gpusPerNode: 4, nodes: 2 });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ gpus: 4, nodes: 2 });
    const js = fake.callsTo('POST', /\/jobsets$/)[0].body;
    expect(js.spec.replicatedJobs[0].template.spec.template.spec.containers[0].resources.requests['nvidia.com/gpu']).toBe('4');
    expect(crdErrors(JOBSET_CRD, js)).toEqual([]);
  });

  test('logs -f of a JobSet: waits while Kueue holds it, streams rank 0 until the gang ends', async () => {
    const id = (await api('POST', '/v1/jobs', { argv: ['torchrun', 'train.py'], gpus: 8, nodes: 2 })).json.id;
    const res = fetch(`${url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise((r) => setTimeout(r, 200));
    // Admitted: the pods start, rank 0 writes, then the gang completes.
    setStatus('apis/jobset.x-k8s.io/v1alpha2', 'jobsets', id, { spec: { ...fake.get('apis/jobset.x-k8s.io/v1alpha2', 'jobsets', NS, id).spec, suspend: false } });
    pod(`${id}-node-0-0-aaaaa`, id, { phase: 'Running' });
    pod(`${id}-node-0-1-bbbbb`, id, { phase: 'Running' });
    fake.appendLog(NS, `${id}-node-0-1-bbbbb`, 'rank 1 only\n');
    await new Promise((r) => setTimeout(r, 300));
    fake.appendLog(NS, `${id}-node-0-0-aaaaa`, 'step 1\nstep 2\n');
    setStatus('apis/jobset.x-k8s.io/v1alpha2', 'jobsets', id, { status: { conditions: [{ type: 'Completed', status: 'True' }] } });
    fake.endLog(NS, `${id}-node-0-0-aaaaa`);
    const r = await res;
    expect(await r.text()).toBe('step 1\nstep 2\n');
    expect((await api('GET', `/v1/jobs/${id}`)).json.state).toBe('succeeded');
  });

  test('JobSet state, rank-0 logs, list without the child Jobs, and cancel', async () => {
    const id = (await api('POST', '/v1/jobs', { argv: ['torchrun', 'train.py'], gpus: 8, nodes: 2 })).json.id;
    const single = (await api('POST', '/v1/jobs', { argv: ['true'] })).json.id;
    setStatus('apis/jobset.x-k8s.io/v1alpha2', 'jobsets', id, { spec: { ...fake.get('apis/jobset.x-k8s.io/v1alpha2', 'jobsets', NS, id).spec, suspend: false }, status: { restarts: 0 } });
    // The JobSet controller's child Job carries our labels and an owner reference.
    fake.put('apis/batch/v1', 'jobs', { metadata: { name: `${id}-node-0`, namespace: NS, labels: { 'mlinfra.dev/cluster': 'train', 'mlinfra.dev/job-id': id }, ownerReferences: [{ kind: 'JobSet', name: id }] }, spec: {} });
    pod(`${id}-node-0-1-zzzzz`, id, { phase: 'Running' });
    pod(`${id}-node-0-0-yyyyy`, id, { phase: 'Running' });
    fake.appendLog(NS, `${id}-node-0-0-yyyyy`, 'rank 0 up\n');
    const got = await api('GET', `/v1/jobs/${id}`);
    expect(got.json).toMatchObject({ state: 'running', nodes: 2, attempts: 1 });
    expect((await api('GET', `/v1/jobs/${id}/logs`)).text).toBe('rank 0 up\n');
    const list = await api('GET', '/v1/jobs');
    expect(list.json.jobs.map((j: any) => j.id).sort()).toEqual([id, single].sort());
    expect((await api('GET', '/v1/jobs?state=running')).json.jobs.map((j: any) => j.id)).toEqual([id]);
    const c = await api('POST', `/v1/jobs/${id}/cancel`);
    expect(c.json.state).toBe('cancelled');
    expect(fake.callsTo('DELETE', /jobsets/).map((x) => x.path)).toEqual([`/apis/jobset.x-k8s.io/v1alpha2/namespaces/ml/jobsets/${id}`]);
    setStatus('apis/batch/v1', 'jobs', single, { status: { conditions: [{ type: 'Complete', status: 'True' }] } });
    expect((await api('GET', `/v1/jobs/${single}`)).json.state).toBe('succeeded');
  });
});

describe('gateway: refusals, each a clear 4xx', () => {
  test('fails when a job asks for more GPUs than a node has, or than the ClusterQueue\'s quota', async () => {
    const a = await api('POST', '/v1/jobs', { argv: ['x'], gpus: 9 });
    expect(a.status).toBe(422);
    expect(a.json.error).toEqual({ code: 'over_quota', field: 'gpus', message: 'gpus 9 is more than a node has (8); ask for at most 8 per node and set nodes for more' });
    const b = await api('POST', '/v1/jobs', { argv: ['x'], gpus: 8, nodes: 3 });
    expect(b.status).toBe(422);
    expect(b.json.error.message).toMatch(/nodes 3 is more than the cluster's nodes.max \(2\)/);
    const small = await buildGateway({ config: { ...config, quotaGpus: 12 }, kube: new KubeClient({ server: fake.url, token: () => KUBE_TOKEN }), token: TOKEN, version: 't' });
    const smallUrl = await small.listen({ host: '127.0.0.1', port: 0 });
    const r = await fetch(`${smallUrl}/v1/jobs`, { method: 'POST', headers: { 'authorization': `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ argv: ['x'], gpus: 8, nodes: 2 }) });
    await small.close();
    expect(r.status).toBe(422);
    expect(((await r.json()) as any).error.message).toBe('16 GPUs (gpus 8 x nodes 2) exceed the ClusterQueue\'s quota of 12 nvidia.com/gpu');
    expect(fake.callsTo('POST', /./)).toEqual([]);
  });

  test('fails when the LocalQueue does not exist', async () => {
    fake.objects.clear();
    const r = await api('POST', '/v1/jobs', { argv: ['x'] });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('queue_missing');
    expect(r.json.error.message).toMatch(/^LocalQueue train does not exist in namespace ml/);
    expect(fake.callsTo('POST', /./)).toEqual([]);
  });

  test('fails when the JobSet CRD is not installed, for multi-node jobs only', async () => {
    fake.jobSetInstalled = false;
    const r = await api('POST', '/v1/jobs', { argv: ['torchrun', 'train.py'], gpus: 8, nodes: 2 });
    expect(r.status).toBe(422);
    expect(r.json.error).toMatchObject({ code: 'jobset_missing', field: 'nodes' });
    expect(r.json.error.message).toMatch(/JobSet API \(jobset\.x-k8s\.io\/v1alpha2\) is not installed/);
    expect((await api('POST', '/v1/jobs', { argv: ['true'], gpus: 1 })).status).toBe(201);
    // Listing still works without the CRD.
    expect((await api('GET', '/v1/jobs')).json.jobs).toHaveLength(1);
  });

  test('fails without the bearer token, on unknown fields, and on an id that is not ours', async () => {
    const res = await fetch(`${url}/v1/jobs`);
    expect(res.status).toBe(401);
    expect((await api('POST', '/v1/jobs', { argv: ['x'], gpu: 1 })).json.error).toMatchObject({ code: 'bad_request', field: 'gpu' });
    expect((await api('GET', '/v1/jobs/..%2Fsecrets')).status).toBe(404);
    expect(fake.calls.filter((c) => c.method !== 'GET' || !c.path.includes('localqueues'))).toEqual([]);
  });
});

test('the agent CLI works against the gateway unchanged: submit, status, list, cancel', async () => {
  // npm test builds it first; a missing build is a failure, not a skip.
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build:agent\` first`);
  const run = (args: string[]) => new Promise<{ code: number; out: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, MLINFRA_AGENT_URL: url, MLINFRA_AGENT_TOKEN: TOKEN } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }));
  });
  const sub = await run(['submit', '--gpus', '1', '--', 'python', 'train.py']);
  expect(sub.code).toBe(0);
  const id = /j[0-9a-f]{12}/.exec(sub.out)?.[0];
  expect(id).toBeDefined();
  expect(fake.callsTo('POST', /\/jobs$/)[0].body.spec.template.spec.containers[0].command.slice(-2)).toEqual(['python', 'train.py']);
  const status = await run(['status', id!]);
  expect(status.code).toBe(0);
  expect(status.out).toContain('queued');
  expect((await run(['list'])).out).toContain(id!);
  expect((await run(['cancel', id!])).code).toBe(0);
  expect(fake.callsTo('DELETE', /\/jobs\//)).toHaveLength(1);
}, 30_000);

describe('gateway entry point', () => {
  test('serveGateway reads its config and token files and serves the API against the cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-gw-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
      const gw = await serveGateway({ host: '127.0.0.1', port: 0, configFile: join(dir, 'config.json'), tokenFile: join(dir, 'token'), version: 't', kube: { server: fake.url, token: () => KUBE_TOKEN } });
      try {
        const health = await (await fetch(`${gw.url}/healthz`)).json();
        expect(health).toEqual({ ok: true, version: 't', mode: 'kubernetes', cluster: 'train', namespace: 'ml', localQueue: 'train' });
        const r = await fetch(`${gw.url}/v1/jobs`, { method: 'POST', headers: { 'authorization': `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ argv: ['true'] }) });
        expect(r.status).toBe(201);
      } finally {
        await gw.close();
        await gw.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('fails when the config lacks a field, naming the file and the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-gw-'));
    try {
      const { localQueue: _omit, ...partial } = config;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(partial));
      expect(() => readGatewayConfig(join(dir, 'config.json'))).toThrow(`gateway config ${join(dir, 'config.json')}: localQueue must be a string, got undefined`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('GET /metrics: queued, running and busy GPUs counted from the API server, under the agent\'s metric names', async () => {
  const a = (await api('POST', '/v1/jobs', { argv: ['x'], gpus: 2 })).json.id;
  await api('POST', '/v1/jobs', { argv: ['x'], gpus: 1 });
  setStatus('apis/batch/v1', 'jobs', a, { spec: { ...fake.get('apis/batch/v1', 'jobs', NS, a).spec, suspend: false }, status: { active: 1 } });
  pod(`${a}-p`, a, { phase: 'Running' });
  const m = await api('GET', '/metrics');
  expect(m.status).toBe(200);
  expect(m.text).toContain('\nmlinfra_agent_jobs_queued 1\n');
  expect(m.text).toContain('\nmlinfra_agent_jobs_running 1\n');
  expect(m.text).toContain('\nmlinfra_agent_gpus_busy 2\n');
  expect(m.text).toContain('\nmlinfra_agent_gpus 16\n');
  // The live pods of this cluster by name: what per-cluster DCGM panels join on (finished pods are left out).
  pod(`${a}-old`, a, { phase: 'Failed' });
  const again = await api('GET', '/metrics');
  expect(again.text.split('\n').filter((l) => l.startsWith('mlinfra_gateway_job_pod_info'))).toEqual([`mlinfra_gateway_job_pod_info{job_pod="${a}-p",job_id="${a}"} 1`]);
  expect((await fetch(`${url}/metrics`)).status).toBe(401);
});

test('`submit --follow` through the gateway: waits while Kueue holds the job, streams the pod\'s log, exits with the job\'s code', async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build:agent\` first`);
  const done = new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(process.execPath, [CLI, 'submit', '--follow', '--gpus', '1', '--', 'python', 'train.py'], { env: { ...process.env, MLINFRA_AGENT_URL: url, MLINFRA_AGENT_TOKEN: TOKEN } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout, err: stderr }));
  });
  // The controllers' part: Kueue admits after a while, the pod runs, logs, and exits 3.
  let id: string | undefined;
  for (let i = 0; i < 200 && !id; i++) {
    id = [...fake.objects.keys()].find((k) => k.startsWith('apis/batch/v1/jobs/'))?.split('/').pop();
    await new Promise((r) => setTimeout(r, 25));
  }
  expect(id).toBeDefined();
  await new Promise((r) => setTimeout(r, 300));
  setStatus('apis/batch/v1', 'jobs', id!, { spec: { ...fake.get('apis/batch/v1', 'jobs', NS, id!).spec, suspend: false }, status: { active: 1 } });
  pod(`${id}-p1`, id!, { phase: 'Running' });
  fake.appendLog(NS, `${id}-p1`, 'step 1\n');
  await new Promise((r) => setTimeout(r, 300));
  fake.appendLog(NS, `${id}-p1`, 'step 2\n');
  pod(`${id}-p1`, id!, { phase: 'Failed', containerStatuses: [{ name: 'job', state: { terminated: { exitCode: 3, reason: 'Error', message: '{"class":"exit","reason":"exited with code 3"}' } } }] });
  setStatus('apis/batch/v1', 'jobs', id!, { status: { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] } });
  fake.endLog(NS, `${id}-p1`);
  const r = await done;
  expect(r.out).toBe('step 1\nstep 2\n');
  expect(r.err).toContain(`job ${id} failed: exit: exited with code 3`);
  expect(r.code).toBe(3);
}, 30_000);
