/**
 * The model registry over HTTP, behind the agent's bearer token like every route: the same reads and
 * moves as `mlinfra-agent models list | show | promote | rollback` (registry/cli.ts), in the artifact
 * store named by `artifacts`, with the agent's cloud credentials. A promotion or rollback rolls the
 * version out to every registered endpoint before the pointer moves, as the CLI does.
 *
 *   GET  /v1/models?artifacts=URI             {current, pending, history, versions}
 *   GET  /v1/models/:version?artifacts=URI    the version's version.json
 *   POST /v1/models/promote                   {artifacts, version, rollout?, reason?, pipeline?}
 *   POST /v1/models/rollback                  {artifacts, rollout?, reason?, pipeline?}
 */
import type { FastifyInstance } from 'fastify';
import { AgentError, badRequest } from '../errors';
import { PIPELINE_NAME } from '../pipeline';
import type { Storage } from '../storage/index';
import { registryRollout } from './endpoints';
import { ModelRegistry, RegistryError, type MoveOptions } from './registry';

/** s3://bucket[/prefix], gs://bucket[/prefix] or file:///absolute/path: the pipeline's artifactsUri. */
const ARTIFACTS = /^(?:(?:s3|gs):\/\/[^/\s]+(?:\/\S*)?|file:\/\/\/\S*)$/;
const artifactsProp = { type: 'string', minLength: 1, maxLength: 2048 } as const;
const moveProps = {
  artifacts: artifactsProp,
  rollout: { type: 'boolean' },
  reason: { type: 'string', maxLength: 1000 },
  pipeline: { type: 'string', pattern: PIPELINE_NAME.source },
} as const;

interface MoveBody { artifacts: string; version?: string; rollout?: boolean; reason?: string; pipeline?: string }

/** A RegistryError's code as an HTTP status: a failed rollout or an unreadable store is the upstream's failure. */
const STATUS: Record<RegistryError['code'], number> = {
  bad_request: 400, not_found: 404, conflict: 409, missing_files: 422, rollout_failed: 502, unreadable: 502,
};

function checkArtifacts(uri: unknown): string {
  if (typeof uri !== 'string' || !ARTIFACTS.test(uri)) {
    throw badRequest(`artifacts must be the pipeline's artifacts URI: s3://bucket/prefix, gs://bucket/prefix or file:///path, got ${JSON.stringify(String(uri).slice(0, 200))}`, 'artifacts');
  }
  return uri;
}

/** Runs a registry call; its errors become 4xx/5xx JSON with the reason (a store's own error, e.g. access denied, is 502). */
async function answer<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof AgentError) throw e;
    if (e instanceof RegistryError) throw new AgentError(STATUS[e.code], e.code, e.message, e.code === 'bad_request' ? 'version' : undefined);
    throw new AgentError(502, 'store_error', (e as Error).message);
  }
}

export function registerModelRoutes(app: FastifyInstance, storage: Storage): void {
  const registryOf = (artifacts: string, pipeline?: string): ModelRegistry =>
    new ModelRegistry(storage, checkArtifacts(artifacts), pipeline ?? process.env.MLINFRA_PIPELINE ?? '');
  // the CLI's moveOptions: every endpoint registered for the pipeline rolls out, unless rollout is false
  const moveOptions = async (reg: ModelRegistry, b: MoveBody): Promise<MoveOptions> => ({
    ...(b.reason !== undefined ? { reason: b.reason } : {}),
    ...(b.rollout === false ? {} : { rollout: await registryRollout(storage, reg.artifactsUri, reg.pipeline) }),
  });
  const query = { type: 'object', required: ['artifacts'], additionalProperties: false, properties: { artifacts: artifactsProp } } as const;

  app.get<{ Querystring: { artifacts: string } }>('/v1/models', { schema: { querystring: query } }, async (req) => {
    const reg = registryOf(req.query.artifacts);
    return answer(async () => {
      const [versions, state] = await Promise.all([reg.list(), reg.state()]);
      return { current: state.current, pending: state.pending ?? null, history: state.history, versions };
    });
  });

  app.get<{ Params: { version: string }; Querystring: { artifacts: string } }>('/v1/models/:version', { schema: { querystring: query } }, async (req) => {
    const reg = registryOf(req.query.artifacts);
    return answer(() => reg.show(req.params.version));
  });

  app.post<{ Body: MoveBody }>('/v1/models/promote', {
    schema: { body: { type: 'object', additionalProperties: false, required: ['artifacts', 'version'], properties: { ...moveProps, version: { type: 'string', maxLength: 20 } } } },
  }, async (req) => {
    const reg = registryOf(req.body.artifacts, req.body.pipeline);
    return answer(async () => reg.promote(req.body.version!, await moveOptions(reg, req.body)));
  });

  app.post<{ Body: MoveBody }>('/v1/models/rollback', {
    schema: { body: { type: 'object', additionalProperties: false, required: ['artifacts'], properties: moveProps } },
  }, async (req) => {
    const reg = registryOf(req.body.artifacts, req.body.pipeline);
    return answer(async () => reg.rollback(await moveOptions(reg, req.body)));
  });
}
