import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { badRequest, notFound } from '../errors';
import type { Scheduler } from '../scheduler';
import { JOB_BODY_SCHEMA } from '../server';
import type { Storage } from '../storage/index';
import type { JobSpec } from '../types';
import { GangCoordinator, type GangRecord } from './gang';
import type { ClusterOptions } from './options';
import type { ClusterWorker } from './worker';

/** POST /v1/cluster/gangs: a job body plus its shape. */
export const GANG_BODY_SCHEMA = {
  ...JOB_BODY_SCHEMA,
  required: ['argv', 'nodes'],
  properties: {
    ...JOB_BODY_SCHEMA.properties,
    // one rank per host: more nodes than any cluster has would wait out its timeout
    nodes: { type: 'integer', minimum: 1, maximum: 256 },
    gpusPerNode: { type: 'integer', minimum: 0, maximum: 64 },
    gangTimeoutSeconds: { type: 'number', minimum: 1, maximum: 86_400 },
  },
} as const;

type GangBody = Partial<Omit<JobSpec, 'argv'>> & { argv: string[]; nodes: number; gpusPerNode?: number; gangTimeoutSeconds?: number };

/** The current attempt's ranks, as its prefix in the bucket shows them. */
export interface GangProgress {
  readonly registered: number;
  readonly done: number;
  readonly aborted: boolean;
}

/**
 * A gang as the API shows it. `running` is derived, never stored: a queued gang whose current attempt
 * has all N ranks registered (past the barrier, so its program runs) and no abort.
 */
export function gangJson(g: GangRecord, progress?: GangProgress): Record<string, unknown> {
  const { env, ...spec } = g.spec;
  const running = g.state === 'queued' && progress !== undefined && progress.registered >= g.nodes && !progress.aborted;
  return {
    id: g.id, kind: 'gang', state: running ? 'running' : g.state, nodes: g.nodes, gpusPerNode: g.gpusPerNode, timeoutSeconds: g.timeoutSeconds,
    ...(progress ? { ranks: { registered: progress.registered, done: progress.done } } : {}),
    spec: { ...spec, envKeys: Object.keys(env ?? {}) }, attempt: g.attempts.length, attempts: g.attempts, failure: g.failure ?? null,
    createdAt: g.createdAt, updatedAt: g.updatedAt,
  };
}

/**
 * Gang routes beside /v1/cluster/jobs: POST /v1/cluster/gangs (201 when all N rank messages were
 * enqueued; 503 when the queue did not take them, those sent are cancelled), GET /v1/cluster/gangs/:id,
 * POST /v1/cluster/gangs/:id/cancel. Also makes this host move gangs on when a rank of theirs ends here.
 */
export function registerGangRoutes(app: FastifyInstance, worker: ClusterWorker, d: { scheduler: Scheduler; storage: Storage; logger: Logger; options: ClusterOptions }): GangCoordinator {
  const gangs = new GangCoordinator(worker, d.storage, d.options.artifacts, d.options.maxAttempts, d.logger);
  gangs.listen(d.scheduler);

  app.post<{ Body: GangBody }>('/v1/cluster/gangs', { schema: { body: GANG_BODY_SCHEMA } }, async (req, reply) => {
    const { nodes, gpusPerNode, gangTimeoutSeconds, ...b } = req.body;
    if (!b.argv[0]) throw badRequest('argv[0] (the program) must not be empty', 'argv.0');
    if (b.kind === 'batch') throw badRequest('a gang runs a training job: kind must be train (batch jobs shard over hosts by themselves)', 'kind');
    if (b.gpus !== undefined && gpusPerNode !== undefined && b.gpus !== gpusPerNode) throw badRequest(`gpus (${b.gpus}) and gpusPerNode (${gpusPerNode}) differ: give gpusPerNode`, 'gpus');
    if (b.cwd !== undefined && !b.cwd.startsWith('/')) throw badRequest('cwd must be an absolute path', 'cwd');
    const spec: JobSpec = { ...b, argv: b.argv, env: b.env ?? {}, gpus: gpusPerNode ?? b.gpus ?? 0, priority: b.priority ?? 0, retries: b.retries ?? 0, kind: 'train' };
    const g = await gangs.submit({ spec, nodes, gpusPerNode: spec.gpus, timeoutSeconds: gangTimeoutSeconds });
    return reply.code(201).send({ ...gangJson(g), queue: worker.queue.kind });
  });

  app.get<{ Params: { id: string } }>('/v1/cluster/gangs/:id', async (req) => {
    const g = /^[a-z0-9-]{1,40}$/.test(req.params.id) ? await gangs.store.read(req.params.id) : null;
    if (!g) throw notFound(`no gang ${req.params.id}`);
    const attempt = g.attempts.length;
    if (g.state !== 'queued' || attempt === 0) return gangJson(g);
    const p = await gangs.store.progress(g.id, attempt);
    const now = await gangs.look(g, p);
    return gangJson(now, now === g ? p : now.state === 'queued' ? await gangs.store.progress(now.id, now.attempts.length) : undefined);
  });

  app.post<{ Params: { id: string } }>('/v1/cluster/gangs/:id/cancel', async (req) => {
    const g = /^[a-z0-9-]{1,40}$/.test(req.params.id) ? await gangs.cancel(req.params.id) : null;
    if (!g) throw notFound(`no gang ${req.params.id}`);
    return gangJson(g);
  });
  return gangs;
}
