/**
 * SageMaker deployment timing: the blue/green traffic routing of a rollout, and the limits of one
 * `terraform apply` (the provider's fixed wait) and of SageMaker (8 hours per deployment).
 */
import { Annotations } from 'cdktf';
import { Construct } from 'constructs';
import { SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint';
import { Errors } from '../../core/errors';
import { RolloutSpec } from './plan';

/** The most `maximum_execution_timeout_in_seconds` the AWS provider accepts. */
export const MAX_EXECUTION_TIMEOUT_SECONDS = 14400;
/**
 * How long the AWS provider waits for an endpoint to be InService after a create or update: a fixed
 * 60 minutes, not configurable (terraform-provider-aws#39090). A rollout whose waits exceed it fails
 * the apply while SageMaker carries on.
 */
export const PROVIDER_ENDPOINT_WAIT_SECONDS = 3600;
/** Time a new GPU fleet needs to start and pass /ping, budgeted inside the provider's wait. */
const FLEET_START_ALLOWANCE_SECONDS = 900;

/** Seconds a rollout spends waiting (bakes, steps, the old fleet's termination wait) once the new fleet is up. */
export function rolloutWaitSeconds(r: RolloutSpec): number {
  const bake = (r.bakeMinutes ?? 0) * 60;
  switch (r.kind) {
    case 'canary': return bake;
    case 'linear': return r.stepMinutes! * 60 * (100 / r.percentPerStep!);
    case 'blue-green': return 2 * bake;
    default: return 0;
  }
}

/**
 * Refuses a rollout one `terraform apply` cannot wait for, warns when it leaves the new fleet less
 * than 15 minutes to start, and warns when a gradual rollout has no alarm to roll back on.
 */
export function checkAwsRollout(endpoint: Construct, plan: { readonly rollout: RolloutSpec; readonly rollbackAlarms: readonly string[] }): void {
  const r = plan.rollout;
  const waits = rolloutWaitSeconds(r);
  if (waits >= PROVIDER_ENDPOINT_WAIT_SECONDS) {
    throw Errors.outOfRange(endpoint, 'rollout', describeRollout(r),
      `a rollout whose waits stay under ${PROVIDER_ENDPOINT_WAIT_SECONDS / 60} minutes on aws (it waits ${waits / 60} minutes; ` +
      'the AWS provider waits at most 60 minutes for an endpoint update, terraform-provider-aws#39090): shorten bakeMinutes or stepMinutes, or take bigger steps');
  }
  if (waits > PROVIDER_ENDPOINT_WAIT_SECONDS - FLEET_START_ALLOWANCE_SECONDS) {
    Annotations.of(endpoint).addWarning(`rollout ${describeRollout(r)} waits ${waits / 60} minutes: with the new fleet's start it may exceed ` +
      'the 60 minutes the AWS provider waits for an endpoint update (terraform-provider-aws#39090); the apply then fails while SageMaker carries on');
  }
  if ((r.kind === 'canary' || r.kind === 'linear') && plan.rollbackAlarms.length === 0) {
    Annotations.of(endpoint).addWarning(`rollout ${r.kind} has no rollbackAlarms: SageMaker shifts all traffic after the waits whatever the new version does`);
  }
}

function describeRollout(r: RolloutSpec): string {
  return Object.entries(r).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** The SageMaker traffic routing and timings for a rollout. */
export function sagemakerRouting(r: RolloutSpec): {
  routing: SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfiguration;
  terminationWaitInSeconds: number;
  maximumExecutionTimeoutInSeconds: number;
} {
  const bake = (r.bakeMinutes ?? 0) * 60;
  // Room for the green fleet to start (large GPU images and models take many minutes) on top of the waits.
  const provisioning = 3600;
  // The provider accepts 600..14400 (SageMaker's API takes up to 28800, the provider's schema does not).
  const timeout = (waits: number) => Math.min(MAX_EXECUTION_TIMEOUT_SECONDS, Math.max(600, provisioning + waits));
  switch (r.kind) {
    case 'canary':
      return {
        routing: { type: 'CANARY', waitIntervalInSeconds: bake, canarySize: { type: 'CAPACITY_PERCENT', value: r.percent! } },
        terminationWaitInSeconds: 0, maximumExecutionTimeoutInSeconds: timeout(bake),
      };
    case 'linear': {
      const step = r.stepMinutes! * 60;
      return {
        routing: { type: 'LINEAR', waitIntervalInSeconds: step, linearStepSize: { type: 'CAPACITY_PERCENT', value: r.percentPerStep! } },
        terminationWaitInSeconds: 0, maximumExecutionTimeoutInSeconds: timeout(step * (100 / r.percentPerStep!)),
      };
    }
    case 'blue-green':
      // Traffic moves at once after the bake; the old fleet stays as long again for a quick rollback.
      return {
        routing: { type: 'ALL_AT_ONCE', waitIntervalInSeconds: bake },
        terminationWaitInSeconds: bake, maximumExecutionTimeoutInSeconds: timeout(2 * bake),
      };
    default:
      return { routing: { type: 'ALL_AT_ONCE', waitIntervalInSeconds: 0 }, terminationWaitInSeconds: 0, maximumExecutionTimeoutInSeconds: timeout(0) };
  }
}
