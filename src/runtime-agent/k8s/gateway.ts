/**
 * The agent's HTTP API on Kubernetes, stateless: each submit creates a Job (one node) or a JobSet
 * (several) in the cluster's namespace, queued through Kueue's LocalQueue; status, list, logs and
 * cancel read and delete those objects and their pods. Same routes, auth and error shape as
 * `mlinfra-agent serve` (server.ts), so the CLI and the pipeline runner work unchanged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { PassThrough } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { HOST_METRICS } from '../../contracts/host-metrics';
import { AgentError, badRequest, notFound } from '../errors';
import { JOB_BODY_SCHEMA, PIPELINE_RUN_BODY_SCHEMA, toAgentError } from '../server';
import { TERMINAL_STATES, type JobState } from '../types';
import { JOBS, JOBSETS, KubeApiError, KubeClient, LOCALQUEUES, PODS, type Resource } from './kube-client';
import { pipelineMetricsText, PipelineRunEnd, readPipelineRuns, recordPipelineRun } from './pipeline-runs';
import {
  CLUSTER_LABEL, GatewayConfig, JOB_ID_LABEL, JOBSET_API_VERSION, KubeObject, podView, renderJob, renderJobSet, SPEC_ANNOTATION, SubmitSpec, viewOf,
} from './objects';

/**
 * POST /v1/jobs on Kubernetes: the agent's body plus `nodes` (a JobSet when > 1), `gpusPerNode` (the pipeline
 * step's name for per-node GPUs; wins over `gpus`) and `shards` (batch).
 */
export const GATEWAY_JOB_BODY_SCHEMA = {
  ...JOB_BODY_SCHEMA,
  properties: {
    ...JOB_BODY_SCHEMA.properties,
    nodes: { type: 'integer', minimum: 1, maximum: 1000 },
    gpusPerNode: { type: 'integer', minimum: 0, maximum: 64 },
    shards: { type: 'integer', minimum: 1, maximum: 100_000 },
  },
} as const;

export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly kube: KubeClient;
  readonly token: string;
  readonly version: string;
  /** Job ids; default: 'j' + 12 random hex digits (pod names stay within 63 characters). */
  readonly newId?: () => string;
  /** How often `logs -f` looks for a job's pod and its end. @default 2000 */
  readonly pollMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The body as the schema let it through (types checked there). */
interface Body {
  argv: string[]; name?: string; env?: Record<string, string>; cwd?: string; gpus?: number; gpusPerNode?: number; nodes?: number; priority?: number; retries?: number;
  timeoutSeconds?: number; kind?: 'train' | 'batch'; checkpointDir?: string; artifactUri?: string; input?: string; output?: string; shards?: number;
}
interface StoredSpec { name?: string; kind?: string; argv?: string[]; envKeys?: string[]; gpus?: number; nodes?: number; retries?: number; timeoutSeconds?: number }
const ID = /^j[0-9a-f]{12}$/;
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export async function buildGateway(d: GatewayDeps): Promise<FastifyInstance> {
  const c = d.config;
  const expected = sha256(d.token);
  const newId = d.newId ?? (() => `j${randomBytes(6).toString('hex')}`);
  const pollMs = d.pollMs ?? 2000;
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } } });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const e = err instanceof KubeApiError ? kubeError(err) : toAgentError(err);
    void reply.code(e.statusCode).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new AgentError(404, 'not_found', `no route ${req.method} ${req.url.slice(0, 200)}`).toJSON());
  });
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.url === '/healthz') return undefined;
    const m = typeof req.headers.authorization === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(req.headers.authorization) : null;
    if (!m || !timingSafeEqual(sha256(m[1]), expected)) {
      const e = new AgentError(401, 'unauthorized', 'a valid "Authorization: Bearer <token>" header is required', 'authorization');
      void reply.code(401).header('www-authenticate', 'Bearer').header('connection', 'close').send(e.toJSON());
      return reply;
    }
    return undefined;
  });

  app.get('/healthz', async () => ({ ok: true, version: d.version, mode: 'kubernetes', cluster: c.cluster, namespace: c.namespace, localQueue: c.localQueue }));

  /** The Job or JobSet of `id`, or 404. */
  async function find(id: string): Promise<{ obj: KubeObject & { metadata: { name: string } }; res: Resource }> {
    if (!ID.test(id)) throw notFound(`no job ${id.slice(0, 100)}`);
    for (const res of [JOBS, JOBSETS]) {
      try {
        const obj = await d.kube.get(res, c.namespace, id);
        if (obj.metadata?.name && obj.metadata.labels?.[CLUSTER_LABEL] === c.cluster) return { obj: obj as KubeObject & { metadata: { name: string } }, res };
      } catch (e) {
        // 404: not this kind (or, for JobSets, the CRD is absent: then no JobSet job exists either).
        if (!(e instanceof KubeApiError && e.status === 404)) throw e;
      }
    }
    throw notFound(`no job ${id}`);
  }
  const podsOf = async (selector: string) => (await d.kube.list(PODS, c.namespace, selector)).sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
  const jobJson = (obj: KubeObject, pods: KubeObject[]) => {
    const v = viewOf(obj, pods.map(podView));
    let spec: StoredSpec = {};
    try { spec = JSON.parse(obj.metadata?.annotations?.[SPEC_ANNOTATION] ?? '{}'); } catch { /* not ours */ }
    const st = obj.status ?? {};
    const attempts = obj.kind === 'JobSet' ? (st.restarts ?? 0) + (obj.spec?.suspend ? 0 : 1) : (st.failed ?? 0) + (st.succeeded ?? 0) + (st.active ?? 0);
    return {
      id: v.id, name: spec.name ?? null, state: v.state, kind: spec.kind ?? 'train', argv: spec.argv ?? [], envKeys: spec.envKeys ?? [],
      gpus: spec.gpus ?? 0, nodes: spec.nodes ?? 1, retries: spec.retries ?? 0, timeoutSeconds: spec.timeoutSeconds ?? null,
      exitCode: v.exitCode, signal: null, failure: v.failure, attempts,
      object: `${obj.kind}/${v.id}`, queue: c.localQueue, pods: pods.map((p) => p.metadata?.name),
      createdAt: obj.metadata?.creationTimestamp ?? null, startedAt: st.startTime ?? null, endedAt: st.completionTime ?? lastTransition(obj, 'Failed'),
    };
  };

  app.post<{ Body: Body }>('/v1/jobs', { schema: { body: GATEWAY_JOB_BODY_SCHEMA } }, async (req, reply) => {
    const b = req.body;
    if (!b.argv[0]) throw badRequest('argv[0] (the program) must not be empty', 'argv.0');
    const s: SubmitSpec = {
      ...(b.name !== undefined ? { name: b.name } : {}), argv: b.argv, env: b.env ?? {}, ...(b.cwd !== undefined ? { cwd: b.cwd } : {}),
      gpus: b.gpusPerNode ?? b.gpus ?? 0, nodes: b.nodes ?? 1, priority: b.priority ?? 0, retries: b.retries ?? 0,
      ...(b.timeoutSeconds !== undefined ? { timeoutSeconds: b.timeoutSeconds } : {}), kind: b.kind ?? 'train',
      ...(b.checkpointDir !== undefined ? { checkpointDir: b.checkpointDir } : {}), ...(b.artifactUri !== undefined ? { artifactUri: b.artifactUri } : {}),
      ...(b.input !== undefined ? { input: b.input } : {}), ...(b.output !== undefined ? { output: b.output } : {}),
      ...(b.shards !== undefined ? { shards: b.shards } : {}),
    };
    // Requests Kueue could never admit are refused now, not left pending forever.
    if (s.gpus > c.gpusPerNode) {
      throw new AgentError(422, 'over_quota', `gpus ${s.gpus} is more than a node has (${c.gpusPerNode}); ask for at most ${c.gpusPerNode} per node and set nodes for more`, 'gpus');
    }
    if (s.nodes > c.maxNodes) throw new AgentError(422, 'over_quota', `nodes ${s.nodes} is more than the cluster's nodes.max (${c.maxNodes})`, 'nodes');
    if (c.quotaGpus !== undefined && s.gpus * s.nodes > c.quotaGpus) {
      throw new AgentError(422, 'over_quota', `${s.gpus * s.nodes} GPUs (gpus ${s.gpus} x nodes ${s.nodes}) exceed the ClusterQueue's quota of ${c.quotaGpus} nvidia.com/gpu`, 'gpus');
    }
    if (s.nodes > 1 && s.kind === 'batch') throw badRequest('batch jobs run on one node (shards spread them); nodes must be 1', 'nodes');
    // A file:// store is one ReadWriteOnce volume: pods on a second node could not mount it.
    if (s.nodes > 1 && c.artifactsUri.startsWith('file://')) {
      throw new AgentError(422, 'artifacts_local', `multi-node jobs need an object store for artifacts and checkpoints; this cluster keeps them on a single-node volume (${c.artifactsUri}). Set KubernetesTarget artifactStore to an s3:// or gs:// URI, or submit with nodes 1`, 'nodes');
    }
    try {
      await d.kube.get(LOCALQUEUES, c.namespace, c.localQueue);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) {
        throw new AgentError(422, 'queue_missing', `LocalQueue ${c.localQueue} does not exist in namespace ${c.namespace} (or Kueue's CRDs are not installed): Kueue would never admit the job. Create it, or name an existing one in GpuCluster kubernetes.kueue.localQueue`, 'queue');
      }
      throw e;
    }
    const key = req.headers['idempotency-key'];
    if (key !== undefined && (typeof key !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(key))) {
      throw badRequest('Idempotency-Key must be 1..200 printable ASCII characters without spaces', 'idempotency-key');
    }
    // The same key always names the same object: a retried submit finds it (409) instead of a twin.
    const id = typeof key === 'string' ? `j${createHash('sha256').update(`${c.cluster}\0${key}`).digest('hex').slice(0, 12)}` : newId();
    const multi = s.nodes > 1;
    const obj = multi ? renderJobSet(c, id, s) : renderJob(c, id, s);
    let created: KubeObject;
    try {
      created = await d.kube.create(multi ? JOBSETS : JOBS, c.namespace, obj);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409 && typeof key === 'string') {
        const { obj: existing } = await find(id);
        return reply.code(200).header('idempotent-replay', 'true').send(jobJson(existing, []));
      }
      if (multi && e instanceof KubeApiError && e.status === 404) {
        throw new AgentError(422, 'jobset_missing', `multi-node jobs run as JobSets, and the JobSet API (${JOBSET_API_VERSION}) is not installed in this cluster: install JobSet v0.12.0 or later, or submit with nodes 1`, 'nodes');
      }
      throw e;
    }
    return reply.code(201).header('idempotent-replay', 'false').send(jobJson(created, []));
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/jobs', async (req) => {
    const state = req.query?.state as JobState | undefined;
    const sel = `${CLUSTER_LABEL}=${c.cluster}`;
    const [jobs, jobsets, pods] = await Promise.all([
      d.kube.list(JOBS, c.namespace, sel),
      d.kube.list(JOBSETS, c.namespace, sel).catch((e) => { if (e instanceof KubeApiError && e.status === 404) return []; throw e; }),
      podsOf(sel),
    ]);
    // A JobSet's child Jobs carry our labels too: keep only top-level objects.
    const top = [...jobs.filter((j) => !(j.metadata?.ownerReferences ?? []).some((o) => o.kind === 'JobSet')), ...jobsets];
    const out = top.map((o) => jobJson(o, pods.filter((p) => p.metadata?.labels?.[JOB_ID_LABEL] === o.metadata?.name)))
      .filter((j) => !state || j.state === state)
      .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
    return { jobs: out };
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req) => {
    const { obj } = await find(req.params.id);
    return jobJson(obj, await podsOf(`${JOB_ID_LABEL}=${obj.metadata.name}`));
  });

  // The runner reports a run's end; the count lives in the cluster's ConfigMap (replicas share it).
  app.post<{ Body: PipelineRunEnd }>('/v1/pipeline-runs', { schema: { body: PIPELINE_RUN_BODY_SCHEMA } }, async (req) => {
    if (!c.pipelineRunsConfigMap) throw notFound('this gateway records no pipeline runs (no pipelineRunsConfigMap in its config)');
    if (!Number.isFinite(Date.parse(req.body.endedAt))) throw badRequest('endedAt must be an ISO 8601 time', 'endedAt');
    return { recorded: await recordPipelineRun(d.kube, c.namespace, c.pipelineRunsConfigMap, req.body) };
  });

  // Counted from the API server on each scrape (no state here), under the agent's metric names so the
  // MonitoringStack's rules and panels read the gateway like an agent.
  app.get('/metrics', async (_req, reply) => {
    const sel = `${CLUSTER_LABEL}=${c.cluster}`;
    const [jobs, jobsets, pods] = await Promise.all([
      d.kube.list(JOBS, c.namespace, sel),
      d.kube.list(JOBSETS, c.namespace, sel).catch((e) => { if (e instanceof KubeApiError && e.status === 404) return []; throw e; }),
      podsOf(sel),
    ]);
    const top = [...jobs.filter((j) => !(j.metadata?.ownerReferences ?? []).some((o) => o.kind === 'JobSet')), ...jobsets];
    const views = top.map((o) => jobJson(o, pods.filter((p) => p.metadata?.labels?.[JOB_ID_LABEL] === o.metadata?.name)));
    const running = views.filter((v) => v.state === 'running');
    const lines = [
      ['mlinfra_agent_jobs_queued', 'Jobs waiting for Kueue admission or for their pods to start.', views.filter((v) => v.state === 'queued').length],
      ['mlinfra_agent_jobs_running', 'Jobs with a running pod.', running.length],
      ['mlinfra_agent_gpus_busy', 'GPUs requested by running jobs.', running.reduce((n, v) => n + v.gpus * v.nodes, 0)],
      ...(c.quotaGpus !== undefined ? [['mlinfra_agent_gpus', 'GPUs in the ClusterQueue quota.', c.quotaGpus] as const] : []),
    ].map(([name, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`);
    // Live job pods by name: DCGM names the pod using each GPU, and this ties the pod to the cluster
    // (the pods carry its label; their names are random), so per-cluster GPU panels join on it.
    const live = pods.filter((p) => p.metadata?.name && !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''));
    const info = HOST_METRICS.gatewayJobPods;
    lines.push(`# HELP ${info} Live job pods of this cluster (value 1), to join per-pod GPU metrics to it.\n# TYPE ${info} gauge\n`
      + live.map((p) => `${info}{job_pod=${JSON.stringify(p.metadata!.name)},job_id=${JSON.stringify(p.metadata?.labels?.[JOB_ID_LABEL] ?? '')}} 1\n`).join(''));
    const pipelines = c.pipelineRunsConfigMap ? pipelineMetricsText(await readPipelineRuns(d.kube, c.namespace, c.pipelineRunsConfigMap)) : '';
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(lines.join('') + pipelines);
  });

  app.post<{ Params: { id: string } }>('/v1/jobs/:id/cancel', async (req) => {
    const { obj, res } = await find(req.params.id);
    const pods = await podsOf(`${JOB_ID_LABEL}=${obj.metadata.name}`);
    const before = jobJson(obj, pods);
    if (TERMINAL_STATES.includes(before.state)) return before;
    // Foreground deletion: pods get SIGTERM (and the grace period to checkpoint) before the object goes;
    // Kueue releases the quota with the workload.
    await d.kube.delete(res, c.namespace, obj.metadata.name);
    return { ...before, state: 'cancelled', failure: { class: 'cancelled', reason: 'cancelled through the API' } };
  });

  /** Rank 0 (the first pod by name: <job>-node-0-0-... for a JobSet), else the newest attempt of a Job. */
  const logPod = (obj: KubeObject, pods: KubeObject[]): string | undefined => {
    const started = pods.filter((p) => p.metadata?.name && p.status?.phase && p.status.phase !== 'Pending');
    const byAge = [...started].sort((a, b) => String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? '')));
    return (obj.kind === 'JobSet' ? started[0] : byAge[byAge.length - 1])?.metadata?.name;
  };

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>('/v1/jobs/:id/logs', async (req, reply) => {
    const f = req.query?.follow;
    if (f !== undefined && !['0', '1', 'true', 'false'].includes(String(f))) throw badRequest('follow must be 0, 1, true or false', 'follow');
    const follow = f === '1' || f === 'true';
    const { obj } = await find(req.params.id);
    const pods = await podsOf(`${JOB_ID_LABEL}=${obj.metadata.name}`);
    const view = jobJson(obj, pods);
    void reply.type('text/plain; charset=utf-8').header('x-job-state', view.state);
    const pod = logPod(obj, pods);
    if (!follow || TERMINAL_STATES.includes(view.state)) {
      return reply.send(pod ? await d.kube.logs(c.namespace, pod, 'job', false) : '');
    }
    // Follow: wait (queued in Kueue, pods pending) for a pod to start, stream its log until the
    // container ends, then until the job is final, so `submit --follow` gets the exit code.
    const out = new PassThrough();
    let closed = false;
    req.raw.once('close', () => { closed = true; });
    const id = obj.metadata.name;
    const pump = async () => {
      let name = pod;
      for (;;) {
        if (closed) return;
        const cur = await find(id).catch(() => undefined);
        if (!cur) return;
        const curPods = await podsOf(`${JOB_ID_LABEL}=${id}`);
        name ??= logPod(cur.obj, curPods);
        const state = jobJson(cur.obj, curPods).state;
        if (name) {
          const stream = await d.kube.logs(c.namespace, name, 'job', !TERMINAL_STATES.includes(state));
          req.raw.once('close', () => stream.destroy());
          for await (const chunk of stream) out.write(chunk);
          name = undefined;
          // The container ended: wait for the job's verdict (or the next attempt's pod).
          for (let i = 0; i < 30 && !closed; i++) {
            const after = await find(id).catch(() => undefined);
            if (!after) return;
            const afterPods = await podsOf(`${JOB_ID_LABEL}=${id}`);
            if (TERMINAL_STATES.includes(jobJson(after.obj, afterPods).state)) return;
            const next = logPod(after.obj, afterPods);
            if (next && !curPods.some((p) => p.metadata?.name === next)) { name = next; break; }
            await sleep(pollMs);
          }
          if (!name) return;
          continue;
        }
        if (TERMINAL_STATES.includes(state)) return;
        await sleep(pollMs);
      }
    };
    pump().catch((e) => out.write(`\nmlinfra gateway: log stream ended: ${(e as Error).message}\n`)).finally(() => out.end());
    return reply.send(out);
  });

  return app;
}

function lastTransition(obj: KubeObject, type: string): string | null {
  const cnd = (obj.status?.conditions ?? []).find((x) => x.type === type && x.status === 'True');
  return cnd?.lastTransitionTime ?? null;
}

/** Kubernetes API errors as the agent's: the cause in words, never a bare 500. */
function kubeError(e: KubeApiError): AgentError {
  if (e.status === 403) return new AgentError(502, 'kubernetes_forbidden', `the gateway's service account may not ${e.path}: ${e.message}`);
  if (e.status === 422) return new AgentError(422, 'kubernetes_invalid', `the Kubernetes API refused the object: ${e.message}`);
  return new AgentError(502, 'kubernetes_error', `Kubernetes API ${e.status} ${e.reason} on ${e.path}: ${e.message}`);
}
