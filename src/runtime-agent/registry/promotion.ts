/**
 * A pipeline's deployIfBetter decision against the registry: compare the run's metric with the metric
 * the serving version was registered with; if better, register the run's model as a new version and
 * promote it through the endpoints' rollouts. What happened — promoted, not better, or registered but
 * not serving because the rollout failed — is returned for the run record.
 */
import type { ModelRegistry, ModelVersion, MoveOptions } from './registry';
import { RegistryError } from './registry';

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
