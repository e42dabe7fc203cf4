/**
 * Rolls a registry version out to a SageMaker endpoint with SageMaker's own safe mechanism: a model and
 * an endpoint config named after the version, then UpdateEndpoint with a blue/green deployment config
 * (canary or linear traffic shifting, bake time) and auto-rollback on the endpoint's CloudWatch alarms
 * (docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails.html; API_BlueGreenUpdatePolicy). SageMaker rolls back by itself
 * when an alarm fires; we then see the old endpoint config InService again and report the rollback.
 * @aws-sdk/client-sagemaker is required lazily (a file of its own beside the agent bundle).
 */
import type { SageMakerClient } from '@aws-sdk/client-sagemaker';
import type { ModelVersion } from './registry';

type SageMakerModule = typeof import('@aws-sdk/client-sagemaker');

export interface SageMakerRolloutConfig {
  readonly endpointName: string;
  /** @default the host's region (AWS_REGION) */
  readonly region?: string;
  /** The serving image, in ECR (or its pull-through cache). */
  readonly image: string;
  readonly executionRoleArn: string;
  readonly variantName: string;
  readonly instanceType: string;
  readonly initialInstanceCount: number;
  /** Container port and other settings the image reads. */
  readonly environment?: Readonly<Record<string, string>>;
  /** KMS key for the endpoint's storage volume. */
  readonly kmsKeyArn?: string;
  /** The endpoint's data capture, carried to every version's config (a config without it stops capture). */
  readonly dataCapture?: { readonly samplingPercent: number; readonly destinationS3Uri: string; readonly kmsKeyId?: string };
  /** GPU servers load large weights before /ping answers: the variant's startup and download timeouts. */
  readonly startupTimeoutSeconds?: number;
  /** How traffic moves: all at once, a canary share then the rest, or linear steps. */
  readonly traffic: { readonly type: 'ALL_AT_ONCE' } | { readonly type: 'CANARY' | 'LINEAR'; readonly percent: number; readonly waitSeconds: number };
  /** Alarms that make SageMaker roll back during the deployment. */
  readonly rollbackAlarms: readonly string[];
  /** Seconds the old fleet stays after traffic moved (a fast rollback window). @default 300 */
  readonly terminationWaitSeconds?: number;
  /** Give up waiting after this long. @default 3600 */
  readonly maxWaitSeconds?: number;
  /** @default 15 */
  readonly pollSeconds?: number;
}

export interface SageMakerRolloutResult {
  readonly modelName: string;
  readonly endpointConfigName: string;
  readonly previousEndpointConfigName: string | null;
}

export interface RolloutDeps {
  readonly client?: SageMakerClient;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** SageMaker names: 63 characters, letters, digits and hyphens; the version keeps its place at the end. */
export function versionedName(base: string, version: string): string {
  const head = base.slice(0, 63 - version.length - 1).replace(/-+$/, '');
  return `${head}-${version}`;
}

const ALREADY_EXISTS = /already exist/i;

export async function rolloutSageMaker(cfg: SageMakerRolloutConfig, v: ModelVersion, deps: RolloutDeps = {}): Promise<SageMakerRolloutResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require('@aws-sdk/client-sagemaker') as SageMakerModule;
  const client = deps.client ?? new sdk.SageMakerClient(cfg.region ? { region: cfg.region } : {});
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const name = versionedName(cfg.endpointName, v.version);

  const before = await client.send(new sdk.DescribeEndpointCommand({ EndpointName: cfg.endpointName }));
  if (before.EndpointStatus !== 'InService') {
    throw new Error(`endpoint ${cfg.endpointName} is ${before.EndpointStatus}, not InService: wait for the current update to end`);
  }
  const previous = before.EndpointConfigName ?? null;
  if (previous === name) return { modelName: name, endpointConfigName: name, previousEndpointConfigName: previous };

  // Model and config named after the version: creating them again (a retried rollout) is not an error.
  const idempotent = async (create: () => Promise<unknown>) => {
    try {
      await create();
    } catch (e) {
      if (!ALREADY_EXISTS.test((e as Error).message)) throw e;
    }
  };
  await idempotent(() => client.send(new sdk.CreateModelCommand({
    ModelName: name, ExecutionRoleArn: cfg.executionRoleArn,
    PrimaryContainer: {
      Image: cfg.image, Mode: 'SingleModel',
      // An uncompressed S3 prefix: SageMaker copies every object under it to /opt/ml/model.
      ModelDataSource: { S3DataSource: { S3Uri: v.modelUri, S3DataType: 'S3Prefix', CompressionType: 'None' } },
      Environment: { ...cfg.environment, MLINFRA_MODEL_VERSION: v.version },
    },
    Tags: [{ Key: 'mlinfra:model-version', Value: v.version }],
  })));
  await idempotent(() => client.send(new sdk.CreateEndpointConfigCommand({
    EndpointConfigName: name,
    ProductionVariants: [{
      VariantName: cfg.variantName, ModelName: name, InstanceType: cfg.instanceType as never, InitialInstanceCount: cfg.initialInstanceCount,
      ...(cfg.startupTimeoutSeconds ? { ContainerStartupHealthCheckTimeoutInSeconds: cfg.startupTimeoutSeconds, ModelDataDownloadTimeoutInSeconds: cfg.startupTimeoutSeconds } : {}),
    }],
    ...(cfg.kmsKeyArn ? { KmsKeyId: cfg.kmsKeyArn } : {}),
    // Same capture as the config Terraform created (model-endpoint/aws.ts).
    ...(cfg.dataCapture ? {
      DataCaptureConfig: {
        EnableCapture: true, InitialSamplingPercentage: cfg.dataCapture.samplingPercent, DestinationS3Uri: cfg.dataCapture.destinationS3Uri,
        ...(cfg.dataCapture.kmsKeyId ? { KmsKeyId: cfg.dataCapture.kmsKeyId } : {}),
        CaptureOptions: [{ CaptureMode: 'Input' as const }, { CaptureMode: 'Output' as const }],
        CaptureContentTypeHeader: { JsonContentTypes: ['application/json'] },
      },
    } : {}),
  })));

  const t = cfg.traffic;
  await client.send(new sdk.UpdateEndpointCommand({
    EndpointName: cfg.endpointName, EndpointConfigName: name,
    DeploymentConfig: {
      BlueGreenUpdatePolicy: {
        TrafficRoutingConfiguration: t.type === 'ALL_AT_ONCE'
          ? { Type: 'ALL_AT_ONCE', WaitIntervalInSeconds: 0 }
          : t.type === 'CANARY'
            ? { Type: 'CANARY', CanarySize: { Type: 'CAPACITY_PERCENT', Value: t.percent }, WaitIntervalInSeconds: t.waitSeconds }
            : { Type: 'LINEAR', LinearStepSize: { Type: 'CAPACITY_PERCENT', Value: t.percent }, WaitIntervalInSeconds: t.waitSeconds },
        TerminationWaitInSeconds: cfg.terminationWaitSeconds ?? 300,
      },
      ...(cfg.rollbackAlarms.length ? { AutoRollbackConfiguration: { Alarms: cfg.rollbackAlarms.map((AlarmName) => ({ AlarmName })) } } : {}),
    },
  }));

  const deadline = now() + (cfg.maxWaitSeconds ?? 3600) * 1000;
  for (;;) {
    await sleep((cfg.pollSeconds ?? 15) * 1000);
    const d = await client.send(new sdk.DescribeEndpointCommand({ EndpointName: cfg.endpointName }));
    if (d.EndpointStatus === 'InService') {
      if (d.EndpointConfigName === name) return { modelName: name, endpointConfigName: name, previousEndpointConfigName: previous };
      throw new Error(`SageMaker rolled ${cfg.endpointName} back to ${d.EndpointConfigName}${d.FailureReason ? `: ${d.FailureReason}` : ' (a rollback alarm fired)'}`);
    }
    if (d.EndpointStatus === 'Failed' || d.EndpointStatus === 'UpdateRollbackFailed') throw new Error(`endpoint ${cfg.endpointName} failed to update: ${d.FailureReason ?? 'no reason given'}`);
    if (now() > deadline) throw new Error(`endpoint ${cfg.endpointName} still ${d.EndpointStatus} after ${cfg.maxWaitSeconds ?? 3600} s`);
  }
}
