/**
 * Pipelines run inside a serving agent: `inProcessPipelineRunner` for pipeline-run messages from the
 * cluster queue, and `runPipelinesOnStart` (the library side of the removed `serve --pipeline-on-start`).
 */
import type { Logger } from 'pino';
import type { PipelineRunner } from './cluster/pipeline-runs';
import { ModelStore } from './model-store';
import { runPipeline } from './pipeline';
import { loadPipelineSpec } from './pipeline-load';
import { runSummary } from './pipeline-types';
import type { Storage } from './storage/index';

const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export interface OnStartOptions {
  readonly specUris: readonly string[];
  /** Called with each loaded spec's name before any run, e.g. to create its metric series at 0. */
  readonly onSpecLoaded?: (pipeline: string) => void;
  readonly minIntervalMinutes: number;
  readonly agentUrl: string;
  readonly token: string;
  readonly workDir: string;
  readonly storage: Storage;
  readonly logger: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

export type OnStartOutcome =
  | { readonly specUri: string; readonly outcome: 'ran'; readonly summary: Record<string, unknown> }
  | { readonly specUri: string; readonly outcome: 'skipped'; readonly latestRunId: string; readonly minutesAgo: number }
  | { readonly specUri: string; readonly outcome: 'error'; readonly error: string };

/**
 * Runs each pipeline once (concurrently), unless its latest run under `<artifactsUri>/runs/` started
 * less than `minIntervalMinutes` ago. Never throws: outcomes are logged and returned.
 */
export async function runPipelinesOnStart(o: OnStartOptions): Promise<OnStartOutcome[]> {
  return Promise.all(o.specUris.map(async (specUri): Promise<OnStartOutcome> => {
    const log = o.logger.child({ specUri });
    try {
      const { spec, raw, uri } = await loadPipelineSpec(specUri, o.storage);
      o.onSpecLoaded?.(spec.name);
      const latest = await new ModelStore(o.storage, spec.artifactsUri).latestRunStart();
      if (latest) {
        const minutesAgo = (Date.now() - latest.startedAt) / 60_000;
        if (minutesAgo < o.minIntervalMinutes) {
          log.info({ pipeline: spec.name, latestRunId: latest.runId, minutesAgo: Number(minutesAgo.toFixed(2)) }, 'pipeline on start: skipped, ran recently');
          return { specUri, outcome: 'skipped', latestRunId: latest.runId, minutesAgo };
        }
      }
      log.info({ pipeline: spec.name }, 'pipeline on start: running');
      const r = await runPipeline({
        spec, rawSpec: raw, specUri: uri, agentUrl: o.agentUrl, token: o.token, workDir: o.workDir, storage: o.storage, logger: log, env: o.env,
        codeVersion: o.env?.MLINFRA_CODE_VERSION || null, dataVersion: o.env?.MLINFRA_DATA_VERSION || null,
      });
      const summary = runSummary(r);
      (r.state === 'succeeded' ? log.info.bind(log) : log.error.bind(log))({ summary }, `pipeline on start: run ${r.state}`);
      return { specUri, outcome: 'ran', summary };
    } catch (e) {
      log.error({ err: errMsg(e) }, 'pipeline on start: could not run');
      return { specUri, outcome: 'error', error: errMsg(e) };
    }
  }));
}

/** What `inProcessPipelineRunner` needs from the agent it runs in. */
export interface InProcessRunnerOptions {
  /** The agent's listen URL; undefined until it listens. */
  readonly agentUrl: () => string | undefined;
  readonly token: string;
  readonly workDir: string;
  readonly storage: Storage;
  readonly env?: NodeJS.ProcessEnv;
  /** Holds off idle autostop while the run decides and uploads between its jobs. */
  readonly holdBusy?: () => () => void;
  readonly onSpecLoaded?: (pipeline: string) => void;
}

/**
 * Runs pipeline-run messages leased from the cluster queue (cluster/pipeline-runs.ts) in this agent:
 * the steps are jobs of this host. Replaces `serve --pipeline-on-start`.
 */
export function inProcessPipelineRunner(o: InProcessRunnerOptions): PipelineRunner {
  return async (specUri, pipeline, log, target) => {
    const release = o.holdBusy?.();
    try {
      // a message can be leased before the HTTP server listens
      for (let i = 0; i < 300 && o.agentUrl() === undefined; i++) await new Promise((r) => setTimeout(r, 100));
      const listen = o.agentUrl();
      if (listen === undefined) return { state: 'failed', reason: 'the agent did not listen within 30 s' };
      const u = new URL(listen);
      if (['0.0.0.0', '[::]', '::', ''].includes(u.hostname)) u.hostname = '127.0.0.1';
      const { spec, raw, uri } = await loadPipelineSpec(specUri, o.storage);
      if (spec.name !== pipeline) return { state: 'failed', reason: `the spec at ${specUri} is pipeline ${spec.name}, not ${pipeline}` };
      o.onSpecLoaded?.(spec.name);
      const r = await runPipeline({
        spec, rawSpec: raw, specUri: uri, agentUrl: u.origin, token: o.token, workDir: o.workDir, storage: o.storage, logger: log, env: o.env,
        codeVersion: o.env?.MLINFRA_CODE_VERSION || null, dataVersion: o.env?.MLINFRA_DATA_VERSION || null,
        ...(target ? { runId: target.runId } : {}),
        ...(target?.resume ? { resume: { messageId: target.messageId, previousHost: target.resume.previousHost } } : {}),
      });
      return { state: r.state, runId: r.runId, runUri: r.runUri };
    } catch (e) {
      return { state: 'failed', reason: errMsg(e) };
    } finally {
      release?.();
    }
  };
}
