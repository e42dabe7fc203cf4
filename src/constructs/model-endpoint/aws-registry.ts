/**
 * ModelEndpoint on AWS, the parts a registry rollout needs: the endpoint's own rollback alarms, the
 * endpoint record (`models/endpoints/<name>.json`, read by src/runtime-agent/registry/rollout-sagemaker.ts)
 * and the hosts' least-privilege rights for exactly the calls that rollout makes.
 */
import { Construct } from 'constructs';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { Errors } from '../../core/errors';
import { grantOnce, principalOn } from '../../core/grants';
import { AwsTarget } from '../../core/targets';
import { sagemakerRouting } from './aws-rollout';
import { ModelEndpointPlan, RollbackAlarms, RollbackThresholds, RolloutSpec } from './plan';
import { RegistryPlan, recordJson } from './registry';

export const ROLLBACK_DEFAULTS = { errorRatePercent: 5, p99LatencyMs: 1000, evaluationMinutes: 2 } as const;

/** Checks `rollbackOn`; returns it with defaults. */
export function checkRollbackOn(endpoint: Construct, t: RollbackThresholds | undefined): Required<RollbackThresholds> {
  const o = t ?? {};
  const num = (prop: keyof RollbackThresholds, max: number, allowed: string, int = false) => {
    const v = o[prop] ?? ROLLBACK_DEFAULTS[prop];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max || (int && !Number.isInteger(v))) throw Errors.outOfRange(endpoint, `rollbackOn.${prop}`, v, allowed);
    return v;
  };
  return {
    errorRatePercent: num('errorRatePercent', 100, 'a percentage above 0 and at most 100'),
    p99LatencyMs: num('p99LatencyMs', 3_600_000, 'a latency in milliseconds above 0 (at most 3600000)'),
    evaluationMinutes: num('evaluationMinutes', 60, 'a whole number of minutes from 1 to 60', true),
  };
}

/**
 * The endpoint's rollback alarms, named after the endpoint (plain strings: SageMaker's deployment config
 * names them, and MonitoringStack reuses them, without a reference back to either). Missing data is
 * not breaching: an idle endpoint is not a failed deployment.
 */
export function buildRollbackAlarms(endpoint: Construct, target: AwsTarget, name: string, variant: string, t: Required<RollbackThresholds>): { alarms: RollbackAlarms; resources: CloudwatchMetricAlarm[] } {
  const scope = new Construct(endpoint, 'rollback');
  const provider = target.provider;
  const dimensions = { EndpointName: name, VariantName: variant };
  const common = {
    provider, evaluationPeriods: t.evaluationMinutes, datapointsToAlarm: t.evaluationMinutes, comparisonOperator: 'GreaterThanThreshold', treatMissingData: 'notBreaching',
  };
  const errors = new CloudwatchMetricAlarm(scope, 'error-rate', {
    ...common, alarmName: `${name}-rollback-error-rate`,
    alarmDescription: `${endpoint.node.path}: more than ${t.errorRatePercent}% of requests failed (5xx); rolls a deployment back`,
    threshold: t.errorRatePercent,
    metricQuery: [
      { id: 'errors', metric: { namespace: 'AWS/SageMaker', metricName: 'Invocation5XXErrors', dimensions, period: 60, stat: 'Sum' }, returnData: false },
      { id: 'requests', metric: { namespace: 'AWS/SageMaker', metricName: 'Invocations', dimensions, period: 60, stat: 'Sum' }, returnData: false },
      { id: 'rate', expression: 'IF(requests > 0, 100 * errors / requests, 0)', label: '5xx %', returnData: true },
    ],
  });
  // ModelLatency is in microseconds.
  const latency = new CloudwatchMetricAlarm(scope, 'p99-latency', {
    ...common, alarmName: `${name}-rollback-p99-latency`,
    alarmDescription: `${endpoint.node.path}: p99 latency above ${t.p99LatencyMs} ms; rolls a deployment back`,
    namespace: 'AWS/SageMaker', metricName: 'ModelLatency', dimensions, extendedStatistic: 'p99', period: 60, threshold: t.p99LatencyMs * 1000,
  });
  const alarm = (a: CloudwatchMetricAlarm, threshold: number) => ({ name: a.alarmName, arn: a.arn, threshold, evaluationMinutes: t.evaluationMinutes });
  return { alarms: { errorRate: alarm(errors, t.errorRatePercent), p99Latency: alarm(latency, t.p99LatencyMs) }, resources: [errors, latency] };
}

/** What the record and the grants need from the built endpoint. */
export interface AwsRegistryServing {
  readonly name: string;
  readonly variant: string;
  readonly image: string;
  readonly executionRoleArn: string;
  readonly executionRoleName: string;
  readonly instanceType: string;
  readonly initialInstanceCount: number;
  readonly environment: Readonly<Record<string, string>>;
  readonly kmsKeyArn?: string;
  readonly rollbackAlarms: readonly string[];
  /** Data capture as the Terraform-made config has it: every version's config must keep it. */
  readonly dataCapture?: { readonly samplingPercent: number; readonly destinationS3Uri: string; readonly kmsKeyId: string };
  readonly startupTimeoutSeconds?: number;
}

/** The traffic of a SageMaker rollout (rollout-sagemaker.ts `traffic`), from the endpoint's rollout. */
export function sagemakerTraffic(r: RolloutSpec): { type: 'ALL_AT_ONCE' } | { type: 'CANARY' | 'LINEAR'; percent: number; waitSeconds: number } {
  const w = sagemakerRouting(r).routing;
  if (r.kind === 'canary') return { type: 'CANARY', percent: r.percent!, waitSeconds: w.waitIntervalInSeconds! };
  if (r.kind === 'linear') return { type: 'LINEAR', percent: r.percentPerStep!, waitSeconds: w.waitIntervalInSeconds! };
  return { type: 'ALL_AT_ONCE' };
}

/**
 * Writes the endpoint record into the registry's store and grants the promoting hosts the rollout's
 * calls on exact resources. Returns the store's KMS key (the execution role decrypts versions with it).
 */
export function awsRegistryRecord(endpoint: Construct, target: AwsTarget, plan: ModelEndpointPlan, reg: RegistryPlan, s: AwsRegistryServing): string | undefined {
  const registry = reg.registry;
  if (!registry.storeEndpointRecord) {
    throw Errors.conflict(endpoint, 'model', registry.artifactsUri, "pipeline.model of a pipeline whose artifacts are in its cluster's bucket (the default artifacts)",
      "is outside the cluster's bucket, where this endpoint cannot write its rollout record");
  }
  const hosts = principalOn(endpoint, 'model', registry.rolloutHosts, 'aws', 'the endpoint');
  const routing = sagemakerRouting(plan.rollout);
  const record = {
    kind: 'sagemaker', name: s.name, endpointName: s.name, region: target.region, image: s.image,
    executionRoleArn: s.executionRoleArn, variantName: s.variant, instanceType: s.instanceType, initialInstanceCount: s.initialInstanceCount,
    environment: s.environment, ...(s.kmsKeyArn ? { kmsKeyArn: s.kmsKeyArn } : {}),
    ...(s.dataCapture ? { dataCapture: s.dataCapture } : {}), ...(s.startupTimeoutSeconds ? { startupTimeoutSeconds: s.startupTimeoutSeconds } : {}),
    traffic: sagemakerTraffic(plan.rollout), rollbackAlarms: s.rollbackAlarms,
    terminationWaitSeconds: routing.terminationWaitInSeconds, maxWaitSeconds: routing.maximumExecutionTimeoutInSeconds,
  };
  const stored = registry.storeEndpointRecord(new Construct(endpoint, 'registry'), 'record', s.name, recordJson(record));

  // The promoting hosts: a model and an endpoint config per version (`<name>-v<N>`), UpdateEndpoint on
  // this endpoint, and passing only this execution role (to SageMaker, in CreateModel).
  const arn = (type: string, n: string) => `arn:${target.partition}:sagemaker:${target.region}:${target.accountId}:${type}/${n}`;
  grantOnce(endpoint, registry.rolloutHosts, 'rollout', (id) => hosts.addToPolicy(id, [
    // CreateModel with Tags also needs AddTags on the model.
    { actions: ['sagemaker:CreateModel', 'sagemaker:AddTags'], resources: [arn('model', `${s.name}-v*`)] },
    { actions: ['sagemaker:CreateEndpointConfig'], resources: [arn('endpoint-config', `${s.name}-v*`)] },
    { actions: ['sagemaker:UpdateEndpoint'], resources: [arn('endpoint', s.name), arn('endpoint-config', `${s.name}-v*`)] },
    { actions: ['sagemaker:DescribeEndpoint'], resources: [arn('endpoint', s.name)] },
    { actions: ['iam:PassRole'], resources: [s.executionRoleArn] },
    // An endpoint config with a KMS key: SageMaker creates a grant on it for the caller.
    ...(s.kmsKeyArn || s.dataCapture ? [{ actions: ['kms:CreateGrant', 'kms:DescribeKey'], resources: [...new Set([s.kmsKeyArn, s.dataCapture?.kmsKeyId].filter((k): k is string => Boolean(k)))] }] : []),
  ]));
  return stored.keyArn;
}
