/**
 * A ModelEndpoint serving a pipeline's model registry (`model: pipeline.model`): the checks, and the
 * record (`<artifacts>/models/endpoints/<name>.json`) a promotion reads to roll a version out
 * (src/runtime-agent/registry/endpoints.ts reads it; the shapes are the rollout configs there).
 *
 * Mechanism (issue 16 items 4 and 5): Terraform creates the endpoint serving *no model* (the image
 * starts with an empty model and `MLINFRA_MODEL_VERSION=none`: it answers the health check and refuses
 * invocations until a version arrives), and writes this record. A promotion then rolls each version out
 * with the target's own mechanism; Terraform ignores exactly the fields the rollout manages
 * (lifecycle ignore_changes), so a later plan shows no change and a later apply never reverts the model.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { TargetKind } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { IModelRegistry, parseModelUri } from '../../core/model';
import type { ModelEndpointProps } from './index';
import { RolloutSpec } from './plan';

/** `MLINFRA_MODEL_VERSION` of the server Terraform starts, before the first promotion. */
export const NO_MODEL_VERSION = 'none';

/** Props that pick versions by hand: the registry's rollout picks them instead. */
const MANUAL_VERSION_PROPS = ['revision', 'previous', 'rolloutStep', 'color', 'live'] as const;

export interface RegistryPlan {
  readonly registry: IModelRegistry;
}

/**
 * Checks a registry reference against the endpoint's target; returns the versions prefix, parsed.
 * The rollout runs on the registry's cluster (it promotes), so both must be on the same target.
 */
export function checkRegistry(endpoint: Construct, kind: TargetKind, props: ModelEndpointProps, registry: IModelRegistry) {
  if (registry.targetKind !== kind) {
    throw Errors.conflict(endpoint, 'model', registry.artifactsUri,
      `pipeline.model of a pipeline on ${kind} (its hosts roll each promoted version out to this endpoint); for a model trained on another cloud, copy it and pass its s3:// or gs:// URI`,
      `is the registry of pipeline ${registry.pipelineName} on ${registry.targetKind}, the endpoint on ${kind}`);
  }
  if (!Token.isUnresolved(registry.artifactsUri) && registry.artifactsUri.startsWith('file://')) {
    throw Errors.conflict(endpoint, 'model', registry.artifactsUri,
      "a registry in an object store: set the KubernetesTarget's artifactStore to an s3:// or gs:// URI (the pipeline then keeps its registry there and the pods download their version from it)",
      'is on the agent pods\' volume (file://), which the endpoint\'s pods cannot read');
  }
  for (const p of MANUAL_VERSION_PROPS) {
    if (props[p] !== undefined) {
      throw Errors.conflict(endpoint, p, props[p], 'unset with model: pipeline.model (each promotion names its version and the rollout moves traffic to it)', 'picks versions by hand');
    }
  }
  return parseModelUri(registry.uri, endpoint, 'model');
}

/** Seconds a rollout bakes a new version before the rest of the traffic (linear: per step). */
export function bakeSeconds(r: RolloutSpec): number {
  if (r.kind === 'linear') return r.stepMinutes! * 60;
  return (r.bakeMinutes ?? 0) * 60;
}

/**
 * The record as JSON text. Terraform values stay references: strings inside JSON strings, numbers
 * written bare (`numbers` names the keys whose value is a number token) so the agent reads a number.
 */
export function recordJson(record: Record<string, unknown>): string {
  const holes: string[] = [];
  const text = JSON.stringify(record, (_k, v) => {
    if (typeof v === 'number' && Token.isUnresolved(v)) {
      holes.push(Token.asString(v));
      return `@@mlinfra-number-${holes.length - 1}@@`;
    }
    return v;
  });
  return text.replace(/"@@mlinfra-number-(\d+)@@"/g, (_m, i: string) => holes[Number(i)]);
}
