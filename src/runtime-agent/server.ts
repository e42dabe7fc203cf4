import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AgentError, badRequest, notFound } from './errors';
import type { Journal } from './journal';
import { jobView } from './job-view';
import type { LogStore } from './logs';
import type { AgentMetrics, PipelineRunEnd } from './metrics';
import { PIPELINE_NAME, RUN_ID_PATTERN } from './pipeline';
import type { Scheduler } from './scheduler';
import { TERMINAL_STATES, type JobRecord, type JobSpec, type JobState } from './types';

const STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'];
const uriProp = { type: 'string', minLength: 1, maxLength: 4096 } as const;

/** JSON schema of POST /v1/jobs (validated by fastify's ajv; unknown fields and wrong types are 400). */
export const JOB_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['argv'],
  properties: {
    name: { type: 'string', maxLength: 200 },
    argv: { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'string', maxLength: 131072 } },
    env: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 256 },
      additionalProperties: { type: 'string', maxLength: 131072 },
    },
    cwd: uriProp,
    gpus: { type: 'integer', minimum: 0, maximum: 1024 },
    priority: { type: 'integer', minimum: -1000, maximum: 1000 },
    retries: { type: 'integer', minimum: 0, maximum: 100 },
    timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 31_536_000 },
    kind: { type: 'string', enum: ['train', 'batch'] },
    checkpointDir: uriProp,
    artifactUri: uriProp,
    input: uriProp,
    output: uriProp,
  },
} as const;

/** JSON schema of POST /v1/pipeline-runs: a pipeline run's end, reported by its runner. */
export const PIPELINE_RUN_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['pipeline', 'state', 'runId', 'endedAt'],
  properties: {
    pipeline: { type: 'string', pattern: PIPELINE_NAME.source },
    state: { type: 'string', enum: ['succeeded', 'failed'] },
    runId: { type: 'string', pattern: RUN_ID_PATTERN.source },
    endedAt: { type: 'string', maxLength: 64, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$' },
  },
} as const;

type JobBody = Partial<Omit<JobSpec, 'argv'>> & { argv: string[] };

export interface ServerDeps {
  readonly token: string;
  readonly bodyLimitBytes: number;
  /** Time a client has to send a whole request (headers and body). */
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
  readonly journal: Journal;
  readonly scheduler: Scheduler;
  readonly logs: LogStore;
  readonly metrics: AgentMetrics;
  readonly version: string;
  readonly health: () => Record<string, unknown>;
}

/** The public JSON shape of a job (see JobView). With the journal: its runs and shards. */
export const jobJson = jobView;

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Maps any error to `{error: {code, message, field}}` with a 4xx (or 500) status. */
export function toAgentError(err: FastifyError | AgentError | Error): AgentError {
  if (err instanceof AgentError) return err;
  const fe = err as FastifyError;
  if (fe.validation && fe.validation.length > 0) {
    const v = fe.validation[0];
    const params = v.params as Record<string, unknown>;
    const base = (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const join = (k: unknown): string => (base ? `${base}.${String(k)}` : String(k));
    if (v.keyword === 'required') return badRequest(`${join(params.missingProperty)} is required`, join(params.missingProperty));
    if (v.keyword === 'additionalProperties') return badRequest(`unknown field ${join(params.additionalProperty)}`, join(params.additionalProperty));
    const field = base || (fe.validationContext ?? 'body');
    return badRequest(`${field} ${v.message ?? 'is invalid'}`, field);
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status === 413) return new AgentError(413, 'body_too_large', 'the request body is too large');
  if (status === 415) return new AgentError(415, 'unsupported_media_type', 'send the body as application/json', 'content-type');
  if (status >= 400 && status < 500) {
    const bodyish = typeof fe.code === 'string' && fe.code.startsWith('FST_ERR_CTP');
    return new AgentError(status, 'bad_request', fe.message || 'bad request', bodyish ? 'body' : undefined);
  }
  return new AgentError(500, 'internal', 'internal error');
}

export async function buildServer(d: ServerDeps): Promise<FastifyInstance> {
  const expected = sha256(d.token);
  const app = Fastify({
    loggerInstance: d.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: d.bodyLimitBytes,
    // a slow or stalled request (headers or body) is cut after requestTimeoutMs, checked every second;
    // idle keep-alive sockets after 5 s; close() ends every socket
    serverFactory: (handler) => http.createServer({
      requestTimeout: d.requestTimeoutMs, headersTimeout: Math.min(d.requestTimeoutMs, 60_000), keepAliveTimeout: 5000,
      connectionsCheckingInterval: Math.min(1000, d.requestTimeoutMs),
    }, handler),
    forceCloseConnections: true,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    frameworkErrors: (err, _req, reply) => {
      const e = new AgentError(400, 'bad_request', err.message, 'url');
      void (reply as unknown as FastifyReply).code(e.statusCode).send(e.toJSON());
    },
  });

  app.server.maxConnections = maxConnections();

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toAgentError(err);
    if (e.statusCode >= 500 && !(e.statusCode === 507 || e.code === 'disk_read_only')) req.log.error({ err }, 'request failed');
    if (e.extra.retryAfterSeconds !== undefined) void reply.header('retry-after', String(e.extra.retryAfterSeconds));
    void reply.code(e.statusCode).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new AgentError(404, 'not_found', `no route ${req.method} ${req.url.slice(0, 200)}`);
    void reply.code(404).send(e.toJSON());
  });

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.url === '/healthz' || req.url.startsWith('/healthz?')) return;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
    if (!m || !timingSafeEqual(sha256(m[1]), expected)) {
      const e = new AgentError(401, 'unauthorized', 'a valid "Authorization: Bearer <token>" header is required', 'authorization');
      // the body of a refused request is not read: close the connection rather than wait for it
      void reply.code(401).header('www-authenticate', 'Bearer').header('connection', 'close').send(e.toJSON());
      return reply;
    }
    return undefined;
  });
  app.addHook('onResponse', async (req, reply) => {
    d.metrics.httpRequests.inc({ route: req.routeOptions.url ?? 'none', status: String(reply.statusCode) });
  });

  app.get('/healthz', async () => ({ ok: true, version: d.version, ...d.health() }));

  app.get('/metrics', async (_req, reply) => {
    void reply.type(d.metrics.registry.contentType);
    return d.metrics.registry.metrics();
  });

  app.post<{ Body: JobBody }>('/v1/jobs', { schema: { body: JOB_BODY_SCHEMA } }, async (req, reply) => {
    const b = req.body;
    const keyHeader = req.headers['idempotency-key'];
    if (keyHeader !== undefined && (typeof keyHeader !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(keyHeader))) {
      throw badRequest('Idempotency-Key must be 1..200 printable ASCII characters without spaces', 'idempotency-key');
    }
    if (b === null || typeof b !== 'object' || Array.isArray(b)) throw badRequest('the body must be a JSON object', 'body');
    if (!b.argv[0]) throw badRequest('argv[0] (the program) must not be empty', 'argv.0');
    const spec: JobSpec = {
      ...(b.name !== undefined ? { name: b.name } : {}),
      argv: b.argv,
      env: b.env ?? {},
      ...(b.cwd !== undefined ? { cwd: b.cwd } : {}),
      gpus: b.gpus ?? 0,
      priority: b.priority ?? 0,
      retries: b.retries ?? 0,
      ...(b.timeoutSeconds !== undefined ? { timeoutSeconds: b.timeoutSeconds } : {}),
      kind: b.kind ?? 'train',
      ...(b.checkpointDir !== undefined ? { checkpointDir: b.checkpointDir } : {}),
      ...(b.artifactUri !== undefined ? { artifactUri: b.artifactUri } : {}),
      ...(b.input !== undefined ? { input: b.input } : {}),
      ...(b.output !== undefined ? { output: b.output } : {}),
    };
    const { job, created } = await d.scheduler.submit(spec, keyHeader);
    // a repeated Idempotency-Key answers the job it created first (200, not 201)
    return reply.code(created ? 201 : 200).header('idempotent-replay', created ? 'false' : 'true').send(jobJson(job));
  });

  app.post<{ Body: PipelineRunEnd }>('/v1/pipeline-runs', { schema: { body: PIPELINE_RUN_BODY_SCHEMA } }, async (req) => {
    const b = req.body;
    if (b === null || typeof b !== 'object' || Array.isArray(b)) throw badRequest('the body must be a JSON object', 'body');
    if (!Number.isFinite(Date.parse(b.endedAt))) throw badRequest('endedAt must be an ISO 8601 time', 'endedAt');
    const recorded = d.metrics.recordPipelineRun({ pipeline: b.pipeline, state: b.state, runId: b.runId, endedAt: b.endedAt });
    return { recorded };
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/jobs', async (req) => {
    const q = req.query ?? {};
    let limit = 1000;
    if (q.limit !== undefined) {
      limit = Number(q.limit);
      if (typeof q.limit !== 'string' || !/^\d{1,6}$/.test(q.limit) || limit < 1) throw badRequest('limit must be an integer 1..999999', 'limit');
    }
    if (q.state !== undefined && !STATES.includes(q.state as JobState)) throw badRequest(`state must be one of ${STATES.join(', ')}`, 'state');
    return { jobs: d.journal.listJobs(limit, q.state as JobState | undefined).map((j) => jobJson(d.scheduler.view(j))) };
  });

  const getJob = (id: string): JobRecord => {
    const job = typeof id === 'string' && id.length <= 100 ? d.journal.getJob(id) : undefined;
    if (!job) throw notFound(`no job ${String(id).slice(0, 100)}`);
    return d.scheduler.view(job);
  };

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req) => jobJson(getJob(req.params.id), d.journal));

  app.post<{ Params: { id: string } }>('/v1/jobs/:id/cancel', async (req) => {
    getJob(req.params.id);
    return jobJson(d.scheduler.cancel(req.params.id));
  });

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>('/v1/jobs/:id/logs', async (req, reply) => {
    const job = getJob(req.params.id);
    const f = req.query?.follow;
    if (f !== undefined && !['0', '1', 'true', 'false'].includes(String(f))) throw badRequest('follow must be 0, 1, true or false', 'follow');
    const follow = f === '1' || f === 'true';
    void reply.type('text/plain; charset=utf-8').header('x-job-state', job.state);
    const stream = follow && !TERMINAL_STATES.includes(job.state) ? d.logs.follow(job.id) : d.logs.snapshot(job.id);
    return reply.send(stream);
  });

  return app;
}

/** Half the open-file limit (the rest is for jobs' pipes and logs), so sockets cannot starve spawn of fds. */
function maxConnections(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') return Math.max(16, Math.floor(Number(m[1]) / 2));
  } catch {
    // not Linux
  }
  return 10_000;
}
