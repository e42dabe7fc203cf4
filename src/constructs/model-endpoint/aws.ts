/**
 * ModelEndpoint on AWS: a SageMaker model, endpoint configuration and endpoint whose updates use
 * SageMaker's blue/green deployment guardrails, application autoscaling, and data capture to an
 * encrypted bucket (for drift monitoring).
 */
import { Annotations, Fn, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AppautoscalingPolicy } from '@cdktf/provider-aws/lib/appautoscaling-policy';
import { AppautoscalingTarget } from '@cdktf/provider-aws/lib/appautoscaling-target';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { DataAwsIamPolicyDocument, DataAwsIamPolicyDocumentStatement } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { SagemakerEndpoint, SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint';
import { SagemakerEndpointConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint-configuration';
import { SagemakerModel } from '@cdktf/provider-aws/lib/sagemaker-model';
import { sagemakerInstanceType } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { AwsPrincipal } from '../../core/grants';
import { privateBucket } from '../../core/aws-bucket';
import { AwsTarget } from '../../core/targets';
import { ModelEndpointBackend, ModelEndpointPlan, RolloutSpec } from './plan';

/** The one production variant: SageMaker blue/green updates need the same variant name every time. */
export const VARIANT_NAME = 'primary';
const CPU_INSTANCE_TYPE = 'ml.m5.xlarge';

export interface AwsModelEndpointResources {
  readonly role: IamRole;
  readonly key: KmsKey;
  readonly logGroup: CloudwatchLogGroup;
  /** Data capture bucket; absent when captureSamplingPercent is 0. */
  readonly captureBucket?: S3Bucket;
  readonly model: SagemakerModel;
  readonly endpointConfiguration: SagemakerEndpointConfiguration;
  readonly endpoint: SagemakerEndpoint;
  readonly scalingTarget: AppautoscalingTarget;
  readonly scalingPolicy: AppautoscalingPolicy;
}

/**
 * Instance families with local NVMe storage: SageMaker encrypts it in hardware and refuses a
 * `KmsKeyId` for them (CreateEndpointConfig fails), so the key is set only on EBS-only types.
 */
export function hasLocalStorage(instanceType: string): boolean {
  const family = instanceType.replace(/^ml\./, '').split('.')[0];
  return /^[a-z]+\d+[a-z]*d[a-z]*$/.test(family) || /^(g5|g6|g6e|gr6|p5|p5e|p5en|p6-b200|trn1|trn1n|trn2)$/.test(family);
}

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
export function checkAwsRollout(endpoint: Construct, plan: Pick<ModelEndpointPlan, 'rollout' | 'rollbackAlarms'>): void {
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

export function buildAwsModelEndpoint(endpoint: Construct, target: AwsTarget, plan: ModelEndpointPlan): ModelEndpointBackend & { readonly resources: AwsModelEndpointResources } {
  checkAwsRollout(endpoint, plan);
  // SageMaker's own instance list, not EC2's: e.g. T4 x8 is g4dn.metal on EC2 and not offered on SageMaker.
  const instanceType = plan.instanceType
    ?? (plan.shape ? sagemakerInstanceType(plan.shape.accelerator, plan.shape.count, { where: endpoint.node.path, countProp: 'acceleratorsPerReplica' }) : CPU_INSTANCE_TYPE);
  const provider = target.provider;
  const name = plan.name;
  const partition = target.partition;
  const capture = plan.captureSamplingPercent > 0;

  // ---- encryption key: instance volumes (EBS-only types) and captured data
  const storage = new Construct(endpoint, 'storage');
  const key = new KmsKey(storage, 'key', {
    provider, description: `${endpoint.node.path}: endpoint volumes and captured requests`, enableKeyRotation: true, deletionWindowInDays: 30,
  });
  let captureBucket: S3Bucket | undefined;
  if (capture) {
    // Captured requests are drift evidence: versioned like every bucket here.
    captureBucket = privateBucket(storage, { provider, id: 'capture', idPrefix: 'capture-', name: `${name}-capture-${target.accountId}`, kmsKeyArn: key.arn });
  }
  // SageMaker writes container logs here; created by us so that it has a retention.
  const logGroup = new CloudwatchLogGroup(storage, 'logs', { provider, name: `/aws/sagemaker/Endpoints/${name}`, retentionInDays: 30 });

  // ---- execution role: read exactly the model prefix, pull exactly the image's repository
  const iam = new Construct(endpoint, 'iam');
  const assume = new DataAwsIamPolicyDocument(iam, 'assume', {
    provider, statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['sagemaker.amazonaws.com'] }] }],
  });
  const role = new IamRole(iam, 'role', { provider, name: `${name}-sm`, assumeRolePolicy: assume.json, description: `${endpoint.node.path}: SageMaker execution role` });
  const { bucket, prefix } = plan.model;
  const statements: DataAwsIamPolicyDocumentStatement[] = [
    { sid: 'ReadModel', effect: 'Allow', actions: ['s3:GetObject'], resources: [`arn:${partition}:s3:::${bucket}/${prefix}*`] },
    {
      sid: 'ListModel', effect: 'Allow', actions: ['s3:ListBucket'], resources: [`arn:${partition}:s3:::${bucket}`],
      condition: [{ test: 'StringLike', variable: 's3:prefix', values: [`${prefix}*`] }],
    },
    // ecr:GetAuthorizationToken has no resource-level permissions: AWS requires "*" for it.
    { sid: 'EcrLogin', effect: 'Allow', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] },
    { sid: 'PullImage', effect: 'Allow', actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'], resources: [ecrRepositoryArn(plan.image, partition)] },
    // A mirrored image: the first pull imports it from the upstream into the cache repository (see aws-image.ts).
    ...(plan.imageCacheRepositoryArn ? [{ sid: 'PullThroughCache', effect: 'Allow', actions: ['ecr:BatchImportUpstreamImage', 'ecr:CreateRepository'], resources: [plan.imageCacheRepositoryArn] }] : []),
    { sid: 'Logs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'], resources: [logGroup.arn, `${logGroup.arn}:*`] },
  ];
  if (captureBucket) {
    statements.push(
      { sid: 'WriteCapture', effect: 'Allow', actions: ['s3:PutObject'], resources: [`${captureBucket.arn}/${name}/*`] },
      { sid: 'EncryptCapture', effect: 'Allow', actions: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'], resources: [key.arn] },
    );
  }
  if (plan.modelKeyArn) statements.push({ sid: 'DecryptModel', effect: 'Allow', actions: ['kms:Decrypt'], resources: [plan.modelKeyArn] });
  if (plan.rollbackAlarms.length) {
    // Deployment guardrails read the rollback alarms with the execution role.
    statements.push({
      sid: 'ReadRollbackAlarms', effect: 'Allow', actions: ['cloudwatch:DescribeAlarms'],
      resources: plan.rollbackAlarms.map((a) => `arn:${partition}:cloudwatch:${target.region}:${target.accountId}:alarm:${a}`),
    });
  }
  const doc = new DataAwsIamPolicyDocument(iam, 'execution-doc', { provider, statement: statements });
  const executionPolicy = new IamRolePolicy(iam, 'execution', { provider, name: 'mlinfra-endpoint', role: role.id, policy: doc.json });

  // ---- model, configuration, endpoint
  const serving = new Construct(endpoint, 'serving');
  const archive = !Token.isUnresolved(plan.model.uri) && /\.tar\.gz$/.test(plan.model.uri);
  const model = new SagemakerModel(serving, 'model', {
    provider,
    // No name: Terraform picks a unique one, so a new image or model is a new SageMaker model
    // created before the old one goes (create_before_destroy), and the endpoint update is blue/green.
    executionRoleArn: role.arn,
    primaryContainer: {
      image: plan.image,
      environment: { ...plan.env, MODEL_URI: plan.model.uri },
      ...(archive
        ? { modelDataUrl: plan.model.uri }
        // A prefix of uncompressed files, copied to /opt/ml/model.
        : { modelDataSource: { s3DataSource: [{ s3Uri: `s3://${bucket}/${prefix}/`, s3DataType: 'S3Prefix', compressionType: 'None' }] } }),
    },
    dependsOn: [executionPolicy],
    lifecycle: { createBeforeDestroy: true },
  });
  const config = new SagemakerEndpointConfiguration(serving, 'config', {
    provider, namePrefix: `${name.slice(0, 36)}-`,
    kmsKeyArn: hasLocalStorage(instanceType) ? undefined : key.arn,
    productionVariants: [{
      variantName: VARIANT_NAME, modelName: model.name, instanceType,
      initialInstanceCount: plan.replicas.min, initialVariantWeight: 1,
      // GPU servers load large weights before /ping answers.
      ...(plan.shape ? { containerStartupHealthCheckTimeoutInSeconds: 1800, modelDataDownloadTimeoutInSeconds: 1800 } : {}),
    }],
    dataCaptureConfig: captureBucket ? {
      enableCapture: true, initialSamplingPercentage: plan.captureSamplingPercent,
      destinationS3Uri: `s3://${captureBucket.bucket}/${name}/`, kmsKeyId: key.arn,
      captureOptions: [{ captureMode: 'Input' }, { captureMode: 'Output' }],
      captureContentTypeHeader: { jsonContentTypes: ['application/json'] },
    } : undefined,
    lifecycle: { createBeforeDestroy: true },
  });
  const routing = sagemakerRouting(plan.rollout);
  const sagemakerEndpoint = new SagemakerEndpoint(serving, 'endpoint', {
    provider, name, endpointConfigName: config.name,
    deploymentConfig: {
      blueGreenUpdatePolicy: {
        trafficRoutingConfiguration: routing.routing,
        terminationWaitInSeconds: routing.terminationWaitInSeconds,
        maximumExecutionTimeoutInSeconds: routing.maximumExecutionTimeoutInSeconds,
      },
      autoRollbackConfiguration: plan.rollbackAlarms.length ? { alarms: plan.rollbackAlarms.map((alarmName) => ({ alarmName })) } : undefined,
    },
    dependsOn: [logGroup],
  });

  // ---- autoscaling on invocations per instance
  const scaling = new Construct(endpoint, 'scaling');
  const resourceId = `endpoint/${sagemakerEndpoint.name}/variant/${VARIANT_NAME}`;
  const scalingTarget = new AppautoscalingTarget(scaling, 'target', {
    provider, serviceNamespace: 'sagemaker', scalableDimension: 'sagemaker:variant:DesiredInstanceCount', resourceId,
    minCapacity: plan.replicas.min, maxCapacity: plan.replicas.max,
  });
  const scalingPolicy = new AppautoscalingPolicy(scaling, 'invocations', {
    provider, name: `${name}-invocations`, policyType: 'TargetTrackingScaling',
    serviceNamespace: scalingTarget.serviceNamespace, scalableDimension: scalingTarget.scalableDimension, resourceId: scalingTarget.resourceId,
    targetTrackingScalingPolicyConfiguration: {
      targetValue: plan.invocationsPerInstanceTarget,
      predefinedMetricSpecification: { predefinedMetricType: 'SageMakerVariantInvocationsPerInstance' },
      // Out fast (GPU instances take minutes to start), in slowly.
      scaleOutCooldown: 60, scaleInCooldown: 300,
    },
  });

  const principal: AwsPrincipal = {
    kind: 'aws', roleArn: role.arn, roleName: role.name,
    addToPolicy(grantId, stmts) {
      const grants = (endpoint.node.tryFindChild('granted') as Construct | undefined) ?? new Construct(endpoint, 'granted');
      const d = new DataAwsIamPolicyDocument(grants, `${grantId}-doc`, {
        provider, statement: stmts.map((s) => ({ effect: 'Allow', actions: [...s.actions], resources: [...s.resources] })),
      });
      new IamRolePolicy(grants, grantId, { provider, name: grantId, role: role.id, policy: d.json });
    },
  };
  const dimensions = { EndpointName: name, VariantName: VARIANT_NAME };

  return {
    url: `https://runtime.sagemaker.${target.region}.amazonaws.com/endpoints/${sagemakerEndpoint.name}/invocations`,
    metrics: {
      latency: { system: 'cloudwatch', namespace: 'AWS/SageMaker', name: 'ModelLatency', unit: 'microseconds', dimensions },
      errors: { system: 'cloudwatch', namespace: 'AWS/SageMaker', name: 'Invocation5XXErrors', unit: 'count', dimensions },
      invocations: { system: 'cloudwatch', namespace: 'AWS/SageMaker', name: 'Invocations', unit: 'count', dimensions },
    },
    grantPrincipal: principal,
    grantInvoke(grantee, grantId) {
      const p = grantee.grantPrincipal;
      if (p.kind !== 'aws') throw new Error(`${endpoint.node.path}.grantInvoke: grantee is on ${p.kind}, the endpoint on aws; grants do not cross clouds`);
      p.addToPolicy(grantId, [{ actions: ['sagemaker:InvokeEndpoint'], resources: [sagemakerEndpoint.arn] }]);
    },
    resources: { role, key, logGroup, captureBucket, model, endpointConfiguration: config, endpoint: sagemakerEndpoint, scalingTarget, scalingPolicy },
  };
}

/** The ECR image pattern as Terraform's regex() (RE2) reads it: account, region, repository. */
export const ECR_IMAGE_RE2 = '^([0-9]{12})[.]dkr[.]ecr[.]([a-z0-9-]+)[.]amazonaws[.]com(?:[.]cn)?/([^:@]+)';

/** The ECR repository ARN of an image URI; computed by Terraform when the URI is a reference. */
export function ecrRepositoryArn(image: string, partition: string): string {
  const re = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([a-z0-9][a-z0-9._/-]*?)(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?(?:@sha256:[a-f0-9]{64})?$/;
  const m = Token.isUnresolved(image) ? null : re.exec(image);
  if (m) return `arn:${partition}:ecr:${m[2]}:${m[1]}:repository/${m[3]}`;
  // Character classes, not backslash escapes: HCL strings reject `\d` and `\.` ("Invalid escape sequence").
  const parts = Fn.regex(ECR_IMAGE_RE2, image);
  return Fn.format('arn:%s:ecr:%s:%s:repository/%s', [partition, Fn.element(parts, 1), Fn.element(parts, 0), Fn.element(parts, 2)]);
}
