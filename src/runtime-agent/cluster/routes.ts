import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { badRequest, notFound } from '../errors';
import { JOB_BODY_SCHEMA } from '../server';
import { schemeOf } from '../storage/index';
import type { JobSpec } from '../types';
import { capDuration } from './lease';
import type { ClusterJob } from './records';
import type { ClusterWorker } from './worker';

type JobBody = Partial<Omit<JobSpec, 'argv'>> & { argv: string[]; maxDurationSeconds?: number };

/** A cluster job may also name its `maxDurationSeconds` (its timeout; `serve --max-duration-seconds` caps it). */
const CLUSTER_JOB_SCHEMA = {
  ...JOB_BODY_SCHEMA, properties: { ...JOB_BODY_SCHEMA.properties, maxDurationSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 31_536_000 } },
};

/** The public JSON shape of a cluster job (env values stay in the bucket, like the local API shows only env keys). */
export function clusterJobJson(j: ClusterJob): Record<string, unknown> {
  const { env, ...spec } = j.spec;
  return {
    id: j.id, state: j.state, spec: { ...spec, envKeys: Object.keys(env ?? {}) }, attempts: j.attempts, attempt: j.attempts.length,
    exitCode: j.exitCode ?? null, failure: j.failure ?? null, checkpoint: j.checkpoint ?? null, createdAt: j.createdAt, updatedAt: j.updatedAt,
  };
}

/**
 * Cluster routes, beside the host's own /v1/jobs: POST /v1/cluster/jobs enqueues (201: the queue
 * accepted it; 413: too large for a message; 503: the queue did not take it, nothing was recorded),
 * GET /v1/cluster/jobs[/:id[/logs]] read the bucket, POST /v1/cluster/jobs/:id/cancel;
 * POST /v1/cluster/pipeline-runs enqueues one pipeline run, GET /v1/cluster/pipelines/:name shows its lock record.
 */
export function registerClusterRoutes(app: FastifyInstance, worker: ClusterWorker): void {
  app.post<{ Body: JobBody }>('/v1/cluster/jobs', { schema: { body: CLUSTER_JOB_SCHEMA } }, async (req, reply) => {
    const { maxDurationSeconds, ...b } = req.body;
    if (!b.argv[0]) throw badRequest('argv[0] (the program) must not be empty', 'argv.0');
    for (const field of ['input', 'output', 'artifactUri', 'checkpointDir'] as const) {
      const v = b[field];
      if (v === undefined) continue;
      try {
        schemeOf(v);
      } catch (e) {
        throw badRequest((e as Error).message, field);
      }
    }
    if (b.kind === 'batch' && (!b.input || !b.output)) throw badRequest('a batch job needs an input and an output prefix', b.input ? 'output' : 'input');
    if (b.cwd !== undefined && !b.cwd.startsWith('/')) throw badRequest('cwd must be an absolute path', 'cwd');
    const spec: JobSpec = {
      ...b, argv: b.argv, env: b.env ?? {}, gpus: b.gpus ?? 0, priority: b.priority ?? 0, retries: b.retries ?? 0, kind: b.kind ?? 'train',
      ...capDuration(b.timeoutSeconds, maxDurationSeconds),
    };
    const job = await worker.enqueue(spec);
    return reply.code(201).send({ ...clusterJobJson(job), queue: worker.queue.kind });
  });

  app.get('/v1/cluster/jobs', async () => {
    const { jobs, unreadable } = await worker.store.list();
    return { jobs: jobs.map(clusterJobJson), ...(unreadable.length > 0 ? { unreadable } : {}) };
  });

  app.get<{ Params: { id: string } }>('/v1/cluster/jobs/:id', async (req) => {
    const job = await worker.get(req.params.id);
    if (!job) throw notFound(`no cluster job ${req.params.id}`);
    return clusterJobJson(job);
  });

  // ?from=N: only the bytes past N (a follower's next poll), with the whole length (x-log-length)
  // and the SHA-256 of the first N bytes (x-log-head-sha256): a late chunk of an earlier attempt
  // sorts before text the follower printed, and the follower tells that from the digest
  app.get<{ Params: { id: string }; Querystring: { from?: string } }>('/v1/cluster/jobs/:id/logs', async (req, reply) => {
    const from = req.query.from;
    if (from !== undefined && !/^\d{1,15}$/.test(from)) throw badRequest(`from must be a byte offset (a whole number), got ${JSON.stringify(from)}`, 'from');
    const job = await worker.get(req.params.id);
    if (!job) throw notFound(`no cluster job ${req.params.id}`);
    const log = await worker.store.logs(job.id);
    void reply.type('text/plain; charset=utf-8');
    if (from === undefined) return reply.send(log);
    const n = Math.min(Number(from), log.length);
    return reply
      .header('x-log-length', String(log.length))
      .header('x-log-head-sha256', createHash('sha256').update(log.subarray(0, n)).digest('hex'))
      .send(log.subarray(Number(from)));
  });

  // one pipeline run, as its schedule enqueues it (run-pipeline --queue and a laptop's client call this)
  app.post<{ Body: { pipeline: string; spec: string } }>('/v1/cluster/pipeline-runs', {
    schema: { body: { type: 'object', additionalProperties: false, required: ['pipeline', 'spec'], properties: { pipeline: { type: 'string', maxLength: 63 }, spec: { type: 'string', maxLength: 2048 } } } },
  }, async (req, reply) => {
    const r = await worker.enqueuePipelineRun(req.body.pipeline, req.body.spec);
    return reply.code(201).send({ pipeline: req.body.pipeline, spec: req.body.spec, messageId: r.messageId, queue: worker.queue.kind });
  });

  app.get<{ Params: { name: string } }>('/v1/cluster/pipelines/:name', async (req) => {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(req.params.name)) throw badRequest('a pipeline name is lowercase letters, digits and dashes', 'name');
    const rec = await worker.pipelines.record(req.params.name);
    if (!rec) throw notFound(`no run of pipeline ${req.params.name} was leased on this cluster`);
    return rec;
  });

  app.post<{ Params: { id: string } }>('/v1/cluster/jobs/:id/cancel', async (req) => {
    const job = await worker.cancel(req.params.id);
    if (!job) throw notFound(`no cluster job ${req.params.id}`);
    return clusterJobJson(job);
  });
}
