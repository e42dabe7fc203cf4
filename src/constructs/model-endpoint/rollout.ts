/** Rollouts: how a new version replaces the serving one, and the rules every target shares. */
import { Construct } from 'constructs';
import { TargetKind } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { ModelEndpointTargetBackend, RolloutSpec } from './plan';

const BAKE_MINUTES = 10;

/** How a new version replaces the serving one. Checked by the endpoint, against its target. */
export class Rollout {
  /** Replace everything at once (AWS: SageMaker's blue/green fleet swap with no bake; Kubernetes: a full surge). */
  public static allAtOnce(): RolloutSpec {
    return { kind: 'all-at-once' };
  }
  /** `percent` (1-99, AWS at most 50) of traffic to the new version first, the rest after `bakeMinutes` (default 10). */
  public static canary(opts: { readonly percent: number; readonly bakeMinutes?: number }): RolloutSpec {
    return { kind: 'canary', percent: opts?.percent, bakeMinutes: opts?.bakeMinutes };
  }
  /** `percentPerStep` more traffic every `stepMinutes`; the step must divide 100 (5, 10, 20, 25, 50 ...). */
  public static linear(opts: { readonly percentPerStep: number; readonly stepMinutes: number }): RolloutSpec {
    return { kind: 'linear', percentPerStep: opts?.percentPerStep, stepMinutes: opts?.stepMinutes };
  }
  /** A full second fleet; traffic moves in one step, the old fleet stays `bakeMinutes` (default 10) for instant rollback. */
  public static blueGreen(opts: { readonly bakeMinutes?: number } = {}): RolloutSpec {
    return { kind: 'blue-green', bakeMinutes: opts?.bakeMinutes };
  }

  private constructor() {}
}

/**
 * Checks a rollout against the rules every target shares, tightened by the backend's (`rules.rollout`);
 * returns it with defaults filled in.
 */
export function checkRollout(where: Construct, kind: TargetKind, rules: ModelEndpointTargetBackend, r: RolloutSpec): RolloutSpec {
  const kinds = ['all-at-once', 'canary', 'linear', 'blue-green'];
  if (!r || !kinds.includes(r.kind)) throw Errors.unknown(where, 'rollout', r?.kind, ['Rollout.allAtOnce()', 'Rollout.canary()', 'Rollout.linear()', 'Rollout.blueGreen()']);
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
  const bake = (v: number | undefined) => {
    const b = v ?? BAKE_MINUTES;
    // SageMaker waits at most 3600 s per step; the same bound keeps the other targets comparable.
    if (!int(b) || b < 0 || b > 60) throw Errors.outOfRange(where, 'rollout.bakeMinutes', v, 'an integer number of minutes from 0 to 60');
    return b;
  };
  const tighter = rules.rollout ?? {};
  switch (r.kind) {
    case 'all-at-once':
      return { kind: 'all-at-once' };
    case 'canary': {
      const max = tighter.maxCanaryPercent?.value ?? 99;
      if (!int(r.percent) || r.percent < 1 || r.percent > max) {
        const why = tighter.maxCanaryPercent ? ` on ${kind} (${tighter.maxCanaryPercent.why})` : '';
        throw Errors.outOfRange(where, 'rollout.percent', r.percent, `an integer percent from 1 to ${max}${why}`);
      }
      return { kind: 'canary', percent: r.percent, bakeMinutes: bake(r.bakeMinutes) };
    }
    case 'linear': {
      const p = r.percentPerStep;
      const min = tighter.minLinearPercent?.value ?? 1;
      const allowed = [1, 2, 4, 5, 10, 20, 25, 50].filter((v) => v >= min);
      if (!int(p) || p < min || p > 50 || 100 % p !== 0) {
        const why = tighter.minLinearPercent ? ` (${tighter.minLinearPercent.why})` : '';
        throw Errors.outOfRange(where, 'rollout.percentPerStep', p, `an integer percent that divides 100 into equal steps: ${allowed.join(', ')}${why}`);
      }
      const stepMinutes = r.stepMinutes;
      if (!int(stepMinutes) || stepMinutes < 1 || stepMinutes > 60) {
        throw Errors.outOfRange(where, 'rollout.stepMinutes', stepMinutes, 'an integer number of minutes from 1 to 60');
      }
      return { kind: 'linear', percentPerStep: p, stepMinutes };
    }
    default:
      return { kind: 'blue-green', bakeMinutes: bake(r.bakeMinutes) };
  }
}
