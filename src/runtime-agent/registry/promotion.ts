/**
 * A pipeline's deployIfBetter decision against the registry: compare the run's metric with the metric
 * the serving version was registered with; if better, register the run's model as a new version and
 * promote it through the endpoints' rollouts. What happened — promoted, not better, or registered but
 * not serving because the rollout failed — is returned for the run record.
 */
import * as fs from 'node:fs';
import type { Storage } from '../storage/index';
import { readEndpoints, registryRollout, syncEndpoints, type SyncedEndpoint } from './endpoints';
import type { ModelVersion, MoveOptions } from './registry';
import { ModelRegistry, RegistryError } from './registry';

export interface PromotionInput {
  readonly metric: string;
  readonly higherIsBetter: boolean;
  readonly runId: string;
  /** The run's metrics (must hold `metric` as a finite number). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Local directory of the model files the run wrote. */
  readonly modelDir: string;
  readonly source?: string;
  readonly params?: Readonly<Record<string, unknown>>;
  readonly codeVersion?: string | null;
  readonly dataVersion?: string | null;
  readonly pipelineSpecHash?: string | null;
  readonly rollout?: MoveOptions['rollout'];
}

export interface PromotionOutcome {
  readonly promoted: boolean;
  readonly reason: string;
  readonly metric: string;
  readonly newValue: number;
  readonly currentVersion: string | null;
  readonly currentValue: number | null;
  /** The version registered for this run (also when its rollout failed), or null when not better. */
  readonly version: string | null;
  /** Set when the version was registered but the rollout failed or another promotion won. */
  readonly error?: { readonly code: string; readonly message: string };
}

export async function promoteIfBetter(registry: ModelRegistry, p: PromotionInput): Promise<PromotionOutcome> {
  const value = p.metrics[p.metric];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new RegistryError('bad_request', `metric "${p.metric}" is not a finite number in the run's metrics (keys: ${Object.keys(p.metrics).join(', ') || 'none'})`);
  }
  const current: ModelVersion | null = await registry.current();
  const currentValue = current?.metrics[p.metric];
  const base = { metric: p.metric, newValue: value, currentVersion: current?.version ?? null, currentValue: typeof currentValue === 'number' ? currentValue : null };
  const dir = p.higherIsBetter ? 'higher' : 'lower';
  let reason: string;
  if (!current) reason = 'no version serves yet';
  else if (typeof currentValue !== 'number') reason = `the serving version ${current.version} has no "${p.metric}" metric: not comparable, the new run wins`;
  else {
    const better = p.higherIsBetter ? value > currentValue : value < currentValue;
    reason = `${p.metric} ${value} vs ${currentValue} of ${current.version}, ${dir} is better: ${better ? 'better' : 'not better'}`;
    if (!better) return { ...base, promoted: false, reason, version: null };
  }
  const v = await registry.register({
    runId: p.runId, modelDir: p.modelDir, metrics: p.metrics, ...(p.source ? { source: p.source } : {}), ...(p.params ? { params: p.params } : {}),
    ...(p.codeVersion ? { codeVersion: p.codeVersion } : {}), ...(p.dataVersion ? { dataVersion: p.dataVersion } : {}),
    ...(p.pipelineSpecHash ? { pipelineSpecHash: p.pipelineSpecHash } : {}),
  });
  try {
    await registry.promote(v.version, { reason, ...(p.rollout ? { rollout: p.rollout } : {}) });
  } catch (e) {
    if (!(e instanceof RegistryError)) throw e;
    return { ...base, promoted: false, reason: `${reason}; registered as ${v.version} but not serving: ${e.message}`, version: v.version, error: { code: e.code, message: e.message } };
  }
  return { ...base, promoted: true, reason, version: v.version };
}

export type RegistryOutcome = { readonly version: string } | { readonly version: string | null; readonly error: string };

export interface RegisterRunInput {
  readonly storage: Storage;
  readonly artifactsUri: string;
  readonly pipeline: string;
  readonly runId: string;
  readonly modelDir: string;
  readonly source: string;
  readonly metrics: Readonly<Record<string, unknown>>;
  readonly reason: string;
  readonly codeVersion: string | null;
  readonly dataVersion: string | null;
  readonly pipelineSpecHash: string | null;
  readonly say: (line: string) => void;
}

/**
 * For a run the pipeline decided to promote: registers its `model/` files as a registry version and
 * promotes it through the rollouts of the endpoints registered beside the registry. Null when the run
 * wrote no model files (the registry is left as it is); `error` when the version does not serve.
 */
export async function registerRun(r: RegisterRunInput): Promise<RegistryOutcome | null> {
  if (!fs.existsSync(r.modelDir) || fs.readdirSync(r.modelDir).length === 0) {
    r.say('no files in model/: the model registry is unchanged');
    return null;
  }
  const registry = new ModelRegistry(r.storage, r.artifactsUri, r.pipeline);
  const metrics = Object.fromEntries(Object.entries(r.metrics).filter((e): e is [string, number] => typeof e[1] === 'number'));
  let version: string | null = null;
  try {
    const v = await registry.register({
      runId: r.runId, modelDir: r.modelDir, source: r.source, metrics,
      ...(r.codeVersion ? { codeVersion: r.codeVersion } : {}), ...(r.dataVersion ? { dataVersion: r.dataVersion } : {}),
      ...(r.pipelineSpecHash ? { pipelineSpecHash: r.pipelineSpecHash } : {}),
    });
    version = v.version;
    await registry.promote(v.version, { reason: r.reason, rollout: await registryRollout(r.storage, r.artifactsUri, r.pipeline) });
    r.say(`registered and serving ${v.version} (${registry.root})`);
    return { version: v.version };
  } catch (e) {
    const error = `${version ? `registered ${version} but it does not serve: ` : ''}${(e as Error).message}`;
    r.say(`failed: ${error}`);
    return { version, error };
  }
}

/**
 * For a run that did not promote: the endpoints that do not serve the registry's current version (one
 * added since the last promotion, or one a failed rollout left behind) get it now, each on its own, and
 * so does a Cloud Run endpoint whose serving config changed since its rollout (syncEndpoints). A
 * registry with no current version changes nothing. Failures are said and returned, never thrown
 * (`unchecked`: the registry or the endpoint records could not be read).
 */
export async function syncRegistryEndpoints(r: { storage: Storage; artifactsUri: string; pipeline: string; say: (line: string) => void }): Promise<{ synced: SyncedEndpoint[]; unchecked?: string }> {
  try {
    const current = await new ModelRegistry(r.storage, r.artifactsUri, r.pipeline).current();
    if (!current) return { synced: [] };
    const synced = await syncEndpoints(await readEndpoints(r.storage, r.artifactsUri, { pipeline: r.pipeline }), current, { storage: r.storage, artifactsUri: r.artifactsUri });
    for (const e of synced) {
      r.say(e.error
        ? `endpoint ${e.endpoint} does not serve ${e.to} (the registry's current version): ${e.error}`
        : e.configChanged
          ? `endpoint ${e.endpoint} serves ${e.to} with its new serving config (its template changed since ${e.to} was rolled out)`
          : `endpoint ${e.endpoint} now serves ${e.to}, the registry's current version (it served ${e.from ?? 'nothing noted'})`);
    }
    return { synced };
  } catch (e) {
    const unchecked = `endpoints not checked against the registry: ${(e as Error).message}`;
    r.say(unchecked);
    return { synced: [], unchecked };
  }
}
