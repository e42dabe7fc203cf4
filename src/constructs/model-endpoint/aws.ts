/**
 * ModelEndpoint on AWS: a SageMaker model, endpoint configuration and endpoint whose updates use
 * SageMaker's blue/green deployment guardrails, application autoscaling, and data capture to an
 * encrypted bucket (for drift monitoring).
 */
import { Fn, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AppautoscalingPolicy } from '@cdktf/provider-aws/lib/appautoscaling-policy';
import { AppautoscalingTarget } from '@cdktf/provider-aws/lib/appautoscaling-target';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { DataAwsIamPolicyDocument, DataAwsIamPolicyDocumentStatement } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { SagemakerEndpoint } from '@cdktf/provider-aws/lib/sagemaker-endpoint';
import { SagemakerEndpointConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint-configuration';
import { SagemakerModel } from '@cdktf/provider-aws/lib/sagemaker-model';
import {
  AcceleratorShape, hasLocalStorage, resolveAccelerator, SAGEMAKER_MARKUP, SAGEMAKER_PRICES, SAGEMAKER_SOURCE, sagemakerInstanceType,
} from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { recordCost } from '../../core/facts';
import { AwsPrincipal } from '../../core/grants';
import { privateBucket } from '../../core/aws-bucket';
import { AwsTarget } from '../../core/targets';
import { buildAwsImage, planAwsImage } from './aws-image';
import type { ModelEndpointProps } from './index';
import { awsRegistryRecord, buildRollbackAlarms, checkRollbackOn } from './aws-registry';
import { checkAwsRollout, sagemakerRouting } from './aws-rollout';
import { ModelEndpointBackend, ModelEndpointPlan, ModelEndpointTargetBackend, replicaQuantity, RollbackThresholds } from './plan';
import { NO_MODEL_VERSION } from './registry';

export { hasLocalStorage };

/** The one production variant: SageMaker blue/green updates need the same variant name every time. */
export const VARIANT_NAME = 'primary';
const CPU_INSTANCE_TYPE = 'ml.m5.xlarge';
// GPU servers load large weights before /ping answers (Terraform's config and every rollout's).
const STARTUP_TIMEOUT_SECONDS = 1800;

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

export { checkAwsRollout, MAX_EXECUTION_TIMEOUT_SECONDS, PROVIDER_ENDPOINT_WAIT_SECONDS, rolloutWaitSeconds, sagemakerRouting } from './aws-rollout';

/** What the AWS backend resolved from the props: SageMaker's own settings. */
interface AwsEndpointPlan {
  readonly shape?: AcceleratorShape;
  readonly instanceType: string;
  readonly image: string;
  readonly imageCacheRepositoryArn?: string;
  readonly rollbackAlarms: readonly string[];
  readonly rollbackOn?: Required<RollbackThresholds>;
  readonly invocationsPerInstanceTarget: number;
  readonly captureSamplingPercent: number;
  readonly modelKeyArn?: string;
}

const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const literal = (v: unknown) => !Token.isUnresolved(v);

/** SageMaker's rules: checked before anything is created. */
function checkAws(endpoint: Construct, props: ModelEndpointProps, plan: ModelEndpointPlan): Omit<AwsEndpointPlan, 'image' | 'imageCacheRepositoryArn'> {
  if (plan.source.options.imagePullSecrets !== undefined) {
    throw Errors.conflict(endpoint, 'image.imagePullSecrets', plan.source.options.imagePullSecrets, 'kubernetes targets only', 'does not apply to aws');
  }
  if (props.instanceType !== undefined && literal(props.instanceType) && !/^ml\.[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(props.instanceType)) {
    throw Errors.invalid(endpoint, 'instanceType', props.instanceType, 'a SageMaker instance type such as ml.g6.xlarge or ml.m5.xlarge');
  }
  const explicitType = props.instanceType !== undefined && literal(props.instanceType) ? props.instanceType.replace(/^ml\./, '') : undefined;
  const a = plan.accelerator;
  const shape = a ? resolveAccelerator('aws', a.name, a.count, { where: endpoint.node.path, countProp: 'acceleratorsPerReplica', explicitType }) : undefined;
  if (literal(plan.port) && plan.port !== 8080) throw Errors.conflict(endpoint, 'port', plan.port, '8080 on aws (SageMaker sends requests to port 8080)', 'cannot be changed on SageMaker');
  if (literal(plan.healthPath) && plan.healthPath !== '/ping') {
    throw Errors.conflict(endpoint, 'healthPath', plan.healthPath, '/ping on aws (SageMaker checks GET /ping)', 'cannot be changed on SageMaker');
  }
  const r = plan.rollout;
  // SageMaker stops a deployment after 8 hours (MaximumExecutionTimeoutInSeconds <= 28800).
  if (r.kind === 'linear' && (100 / r.percentPerStep!) * r.stepMinutes! > 470) {
    throw Errors.outOfRange(endpoint, 'rollout.stepMinutes', r.stepMinutes,
      `at most ${Math.floor(470 / (100 / r.percentPerStep!))} minutes with ${r.percentPerStep}% steps on aws (the whole rollout must finish within SageMaker's 8-hour limit)`);
  }
  const rollbackAlarms = props.rollbackAlarms ?? [];
  if (!Array.isArray(rollbackAlarms) || rollbackAlarms.some((x) => typeof x !== 'string' || (literal(x) && !/^[^\s][ -~]{0,254}$/.test(x)))) {
    throw Errors.invalid(endpoint, 'rollbackAlarms', rollbackAlarms, 'CloudWatch alarm names (1-255 printable characters)');
  }
  // SageMaker takes at most 10; with pipeline.model or rollbackOn, two are the endpoint's own.
  const maxAlarms = plan.registry || props.rollbackOn !== undefined ? 8 : 10;
  if (rollbackAlarms.length > maxAlarms) {
    throw Errors.outOfRange(endpoint, 'rollbackAlarms', rollbackAlarms.length, `at most ${maxAlarms} alarms (SageMaker takes 10${maxAlarms < 10 ? '; the endpoint\'s own two are added' : ''})`);
  }
  // The endpoint's own alarms: always for pipeline.model (every promotion is a guarded rollout), else on request.
  const rollbackOn = plan.registry || props.rollbackOn !== undefined ? checkRollbackOn(endpoint, props.rollbackOn) : undefined;
  const invocationsPerInstanceTarget = props.invocationsPerInstanceTarget ?? 100;
  if (literal(invocationsPerInstanceTarget) && (typeof invocationsPerInstanceTarget !== 'number' || !(invocationsPerInstanceTarget > 0) || invocationsPerInstanceTarget > 1e6)) {
    throw Errors.outOfRange(endpoint, 'invocationsPerInstanceTarget', invocationsPerInstanceTarget, 'a number of invocations per instance per minute above 0');
  }
  const captureSamplingPercent = props.captureSamplingPercent ?? 20;
  // Not a Terraform value: whether a capture bucket exists is decided at synth.
  if (!int(captureSamplingPercent) || captureSamplingPercent < 0 || captureSamplingPercent > 100) {
    throw Errors.outOfRange(endpoint, 'captureSamplingPercent', captureSamplingPercent, 'an integer percent from 0 (off) to 100');
  }
  if (props.modelKeyArn !== undefined && literal(props.modelKeyArn) && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(props.modelKeyArn)) {
    throw Errors.invalid(endpoint, 'modelKeyArn', props.modelKeyArn, 'a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)');
  }
  checkAwsRollout(endpoint, { rollout: r, rollbackAlarms: [...(rollbackOn ? ['error-rate', 'p99-latency'] : []), ...rollbackAlarms] });
  // SageMaker's own instance list, not EC2's: e.g. T4 x8 is g4dn.metal on EC2 and not offered on SageMaker.
  const instanceType = props.instanceType
    ?? (shape ? sagemakerInstanceType(shape.accelerator, shape.count, { where: endpoint.node.path, countProp: 'acceleratorsPerReplica' }) : CPU_INSTANCE_TYPE);
  return { shape, instanceType, rollbackAlarms, rollbackOn, invocationsPerInstanceTarget, captureSamplingPercent, modelKeyArn: props.modelKeyArn };
}

/** ModelEndpoint on AWS: SageMaker's rules and resources. */
export const AWS_MODEL_ENDPOINT: ModelEndpointTargetBackend<AwsTarget> = {
  minReplicas: { count: 1, why: 'SageMaker real-time endpoints keep at least one instance' },
  modelScheme: 's3',
  rollout: {
    maxCanaryPercent: { value: 50, why: 'SageMaker canaries are at most half the new fleet' },
    minLinearPercent: { value: 10, why: 'SageMaker linear steps are 10-50%' },
  },
  secretHint: 'read them from Secrets Manager in the server',
  build(endpoint, target, props, plan) {
    const checked = checkAws(endpoint, props, plan);
    const imagePlan = planAwsImage(endpoint, plan.source);
    // Everything is checked: from here on, resources.
    const img = buildAwsImage(endpoint, target, plan.source, imagePlan);
    const aws: AwsEndpointPlan = { ...checked, image: img.uri, imageCacheRepositoryArn: img.cacheRepositoryArn };
    const built = buildAwsModelEndpoint(endpoint, target, plan, aws);
    recordSageMakerCost(endpoint, plan, aws);
    return built;
  },
};

/** The instance hours, priced from the SageMaker list or, for unlisted types, EC2 x SageMaker's markup. */
function recordSageMakerCost(endpoint: Construct, plan: ModelEndpointPlan, aws: AwsEndpointPlan): void {
  const type = aws.instanceType;
  const listed = SAGEMAKER_PRICES[type];
  const s = aws.shape;
  const ec2 = s ? s.price.usdPerHour : undefined;
  recordCost(endpoint, {
    item: `SageMaker ${type} instance`, unitUsd: listed ?? (ec2 !== undefined ? Math.round(ec2 * SAGEMAKER_MARKUP * 10000) / 10000 : 0), per: 'hour',
    ...SAGEMAKER_SOURCE, estimate: listed === undefined || undefined,
    note: listed !== undefined ? undefined : ec2 !== undefined ? `not in the price table: EC2 ${s!.instanceType} ${ec2} x SageMaker markup ${SAGEMAKER_MARKUP}` : `${type} is not in the price table: priced 0`,
    ...replicaQuantity(plan.replicas),
  });
}

function buildAwsModelEndpoint(endpoint: Construct, target: AwsTarget, plan: ModelEndpointPlan, aws: AwsEndpointPlan): ModelEndpointBackend {
  const instanceType = aws.instanceType;
  const provider = target.provider;
  const name = plan.name;
  const partition = target.partition;
  const capture = aws.captureSamplingPercent > 0;

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

  // ---- rollback alarms: the endpoint's own, then any the user adds
  const own = aws.rollbackOn ? buildRollbackAlarms(endpoint, target, name, VARIANT_NAME, aws.rollbackOn) : undefined;
  const rollbackAlarms = [...(own ? [own.alarms.errorRate.name, own.alarms.p99Latency.name] : []), ...aws.rollbackAlarms];

  // ---- execution role: read exactly the model prefix, pull exactly the image's repository
  const iam = new Construct(endpoint, 'iam');
  const assume = new DataAwsIamPolicyDocument(iam, 'assume', {
    provider, statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['sagemaker.amazonaws.com'] }] }],
  });
  const role = new IamRole(iam, 'role', { provider, name: `${name}-sm`, assumeRolePolicy: assume.json, description: `${endpoint.node.path}: SageMaker execution role` });
  const { bucket, prefix } = plan.model;
  const volumeKeyArn = hasLocalStorage(instanceType) ? undefined : key.arn;
  // pipeline.model: the record a promotion reads, the hosts' rollout rights, and the store's key.
  const storeKeyArn = plan.registry ? awsRegistryRecord(endpoint, target, plan, plan.registry, {
    name, variant: VARIANT_NAME, image: aws.image, executionRoleArn: role.arn, executionRoleName: role.name, instanceType,
    initialInstanceCount: plan.replicas.min, environment: plan.env, kmsKeyArn: volumeKeyArn, rollbackAlarms,
    dataCapture: captureBucket ? { samplingPercent: aws.captureSamplingPercent, destinationS3Uri: `s3://${captureBucket.bucket}/${name}/`, kmsKeyId: key.arn } : undefined,
    startupTimeoutSeconds: aws.shape ? STARTUP_TIMEOUT_SECONDS : undefined,
  }) : undefined;
  const modelKeyArn = aws.modelKeyArn ?? storeKeyArn;
  const statements: DataAwsIamPolicyDocumentStatement[] = [
    { sid: 'ReadModel', effect: 'Allow', actions: ['s3:GetObject'], resources: [`arn:${partition}:s3:::${bucket}/${prefix}*`] },
    {
      sid: 'ListModel', effect: 'Allow', actions: ['s3:ListBucket'], resources: [`arn:${partition}:s3:::${bucket}`],
      condition: [{ test: 'StringLike', variable: 's3:prefix', values: [`${prefix}*`] }],
    },
    // ecr:GetAuthorizationToken has no resource-level permissions: AWS requires "*" for it.
    { sid: 'EcrLogin', effect: 'Allow', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] },
    { sid: 'PullImage', effect: 'Allow', actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'], resources: [ecrRepositoryArn(aws.image, partition)] },
    // A mirrored image: the first pull imports it from the upstream into the cache repository (see aws-image.ts).
    ...(aws.imageCacheRepositoryArn ? [{ sid: 'PullThroughCache', effect: 'Allow', actions: ['ecr:BatchImportUpstreamImage', 'ecr:CreateRepository'], resources: [aws.imageCacheRepositoryArn] }] : []),
    { sid: 'Logs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'], resources: [logGroup.arn, `${logGroup.arn}:*`] },
  ];
  if (captureBucket) {
    statements.push(
      { sid: 'WriteCapture', effect: 'Allow', actions: ['s3:PutObject'], resources: [`${captureBucket.arn}/${name}/*`] },
      { sid: 'EncryptCapture', effect: 'Allow', actions: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'], resources: [key.arn] },
    );
  }
  if (modelKeyArn) statements.push({ sid: 'DecryptModel', effect: 'Allow', actions: ['kms:Decrypt'], resources: [modelKeyArn] });
  if (rollbackAlarms.length) {
    // Deployment guardrails read the rollback alarms with the execution role.
    statements.push({
      sid: 'ReadRollbackAlarms', effect: 'Allow', actions: ['cloudwatch:DescribeAlarms'],
      resources: rollbackAlarms.map((a) => `arn:${partition}:cloudwatch:${target.region}:${target.accountId}:alarm:${a}`),
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
    primaryContainer: plan.registry ? {
      // pipeline.model: no model until the first promotion rolls `<name>-v<N>` out (registry.ts).
      image: aws.image, environment: { ...plan.env, MLINFRA_MODEL_VERSION: NO_MODEL_VERSION },
    } : {
      image: aws.image,
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
    kmsKeyArn: volumeKeyArn,
    productionVariants: [{
      variantName: VARIANT_NAME, modelName: model.name, instanceType,
      initialInstanceCount: plan.replicas.min, initialVariantWeight: 1,
      // GPU servers load large weights before /ping answers.
      ...(aws.shape ? { containerStartupHealthCheckTimeoutInSeconds: STARTUP_TIMEOUT_SECONDS, modelDataDownloadTimeoutInSeconds: STARTUP_TIMEOUT_SECONDS } : {}),
    }],
    dataCaptureConfig: captureBucket ? {
      enableCapture: true, initialSamplingPercentage: aws.captureSamplingPercent,
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
      autoRollbackConfiguration: rollbackAlarms.length ? { alarms: rollbackAlarms.map((alarmName) => ({ alarmName })) } : undefined,
    },
    dependsOn: [logGroup],
    // pipeline.model: each promotion moves the endpoint to the config `<name>-v<N>` (UpdateEndpoint);
    // Terraform keeps the config it last saw and never moves it back. Only that field: a change to the
    // deployment config still applies (developer.hashicorp.com/terraform/language/meta-arguments/lifecycle#ignore_changes).
    ...(plan.registry ? { lifecycle: { ignoreChanges: ['endpoint_config_name'] } } : {}),
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
      targetValue: aws.invocationsPerInstanceTarget,
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
    rollbackAlarms: own?.alarms,
    grantInvoke(grantee, grantId) {
      const p = grantee.grantPrincipal;
      if (p.kind !== 'aws') throw Errors.crossCloudGrant(endpoint, 'grantInvoke', p.kind, 'aws');
      p.addToPolicy(grantId, [{ actions: ['sagemaker:InvokeEndpoint'], resources: [sagemakerEndpoint.arn] }]);
    },
    shape: aws.shape,
    aws: { role, key, logGroup, captureBucket, model, endpointConfiguration: config, endpoint: sagemakerEndpoint, scalingTarget, scalingPolicy },
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
