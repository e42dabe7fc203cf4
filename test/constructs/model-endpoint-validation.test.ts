import { App, TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { MlInfraError } from '../../src/core/errors';
import { costFacts } from '../../src/core/facts';
import { ModelArtifact } from '../../src/core/model';
import { AwsTarget, GcpTarget, KubernetesTarget, Target } from '../../src/core/targets';
import { ModelEndpoint, ModelEndpointProps, Rollout } from '../../src/constructs/model-endpoint';

type Kind = 'aws' | 'gcp' | 'kubernetes';

const BASE: Record<Kind, Record<string, unknown>> = {
  aws: { model: 's3://ml-models/ltv/v3', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:1.0' },
  gcp: { model: 'gs://ml-models/ltv/v3', image: 'us-docker.pkg.dev/p/r/ltv-server:1.0' },
  kubernetes: { model: 's3://ml-models/ltv/v3', image: 'ghcr.io/acme/ltv-server:1.0' },
};

function attempt(kind: Kind, props: Record<string, unknown>): MlInfraError {
  const stack = new TerraformStack(new App(), 'v');
  const target: Target = kind === 'aws' ? new AwsTarget(stack, 't', { region: 'us-east-1' })
    : kind === 'gcp' ? new GcpTarget(stack, 't', { project: 'ml-prod-123', region: 'us-central1' })
      : new KubernetesTarget(stack, 't', { namespace: 'ml' });
  try {
    new ModelEndpoint(stack, 'api', { target, replicas: { min: 1, max: 4 }, ...BASE[kind], ...props } as ModelEndpointProps);
  } catch (e) {
    if (e instanceof MlInfraError) return e;
    throw e;
  }
  throw new Error('expected an MlInfraError, none was thrown');
}

/** Each case: what is wrong, on which target, the props, the prop the error names, and what the message must name (value, allowed). */
const cases: [string, Kind, Record<string, unknown>, string, RegExp[]][] = [
  ['replicas.min is above replicas.max', 'aws', { replicas: { min: 5, max: 2 } }, 'replicas.max', [/got 2/, />= replicas.min \(5\)/]],
  ['the canary percent is 0', 'gcp', { rollout: Rollout.canary({ percent: 0 }) }, 'rollout.percent', [/got 0/, /integer percent from 1 to 99/]],
  ['the canary percent is 100', 'kubernetes', { rollout: Rollout.canary({ percent: 100 }) }, 'rollout.percent', [/got 100/, /1 to 99/]],
  ['the canary percent is fractional (12.5)', 'gcp', { rollout: Rollout.canary({ percent: 12.5 }) }, 'rollout.percent', [/got 12\.5/, /integer percent from 1 to 99/]],
  ['the canary is over half the fleet on aws', 'aws', { rollout: Rollout.canary({ percent: 60 }) }, 'rollout.percent', [/got 60/, /1 to 50 on aws/]],
  ['the linear step does not divide 100', 'gcp', { rollout: Rollout.linear({ percentPerStep: 30, stepMinutes: 5 }) }, 'rollout.percentPerStep', [/got 30/, /divides 100.*1, 2, 4, 5, 10, 20, 25, 50/]],
  ['the linear step is below SageMaker\'s 10%', 'aws', { rollout: Rollout.linear({ percentPerStep: 5, stepMinutes: 5 }) }, 'rollout.percentPerStep', [/got 5/, /10, 20, 25, 50/, /10-50%/]],
  ['the linear step interval is out of range', 'kubernetes', { rollout: Rollout.linear({ percentPerStep: 10, stepMinutes: 0 }) }, 'rollout.stepMinutes', [/got 0/, /1 to 60/]],
  ['the linear rollout outlasts SageMaker\'s 8 hours', 'aws', { rollout: Rollout.linear({ percentPerStep: 10, stepMinutes: 60 }) }, 'rollout.stepMinutes', [/got 60/, /at most 47 minutes with 10% steps/]],
  ['the bake is longer than an hour', 'aws', { rollout: Rollout.blueGreen({ bakeMinutes: 90 }) }, 'rollout.bakeMinutes', [/got 90/, /0 to 60/]],
  ['scaling to zero on aws', 'aws', { replicas: { min: 0, max: 4 } }, 'replicas.min', [/scale to zero is not offered on aws/, /1 to 1000 \(scale to zero: gcp targets\)/]],
  ['scaling to zero on kubernetes', 'kubernetes', { replicas: { min: 0, max: 4 } }, 'replicas.min', [/not offered on kubernetes/, /HorizontalPodAutoscaler/]],
  ['the GPU is not offered on Cloud Run (A10G)', 'gcp', { accelerator: 'A10G' }, 'accelerator', [/A10G is not offered on gcp Cloud Run/, /offered: L4/]],
  ['two GPUs per instance on Cloud Run', 'gcp', { accelerator: 'L4', acceleratorsPerReplica: 2 }, 'acceleratorsPerReplica', [/L4 x2 is not offered on gcp Cloud Run/, /offered: 1/]],
  ['the accelerator is unknown', 'kubernetes', { accelerator: 'B300' }, 'accelerator', [/"B300"/, /T4, L4, A10G/]],
  ['Cloud Run GPU gets too little CPU', 'gcp', { accelerator: 'L4', cpu: 2 }, 'cpu', [/got 2/, /at least 4 vCPU/]],
  ['the image is missing', 'gcp', { image: undefined }, 'image', [/is required/, /ContainerImage/]],
  ['the image reference is malformed', 'kubernetes', { image: 'Not An Image!' }, 'image', [/"Not An Image!"/, /\[registry\/\]repository\[:tag\]/]],
  ['the image registry cannot be mirrored into ECR on aws', 'aws', { image: 'nvcr.io/nvidia/tritonserver:24.01-py3' }, 'image', [/nvcr\.io/, /SageMaker \(ECR only\)/]],
  ['a credentialed upstream has no secret on aws', 'aws', { image: 'ghcr.io/acme/ltv-server:1.0' }, 'image.awsCredentialSecret', [/ecr-pullthroughcache\//, /GitHub Container Registry needs credentials/]],
  ['the model URI is not s3:// or gs://', 'kubernetes', { model: 'https://example.com/model.bin' }, 'model', [/https:\/\/example\.com/, /s3:\/\/bucket\/prefix or gs:\/\/bucket\/prefix/]],
  ['the model URI has no prefix', 'aws', { model: 's3://ml-models' }, 'model', [/"s3:\/\/ml-models"/, /bucket and a non-empty key prefix/]],
  ['the model is on GCS and the endpoint on aws', 'aws', { model: 'gs://ml-models/ltv/v3' }, 'model', [/is on GCS, the endpoint on aws/, /cross-cloud model copy is not done here/]],
  ['the model is on S3 and the endpoint on gcp', 'gcp', { model: ModelArtifact.fromUri('s3://ml-models/ltv/v3') }, 'model', [/is on S3, the endpoint on gcp/, /a gs:\/\/ URI/]],
  ['the port is out of range', 'kubernetes', { port: 70000 }, 'port', [/got 70000/, /1 to 65535/]],
  ['the port is not 8080 on SageMaker', 'aws', { port: 9000 }, 'port', [/got 9000/, /8080 on aws/]],
  ['the health path does not start with /', 'gcp', { healthPath: 'healthz' }, 'healthPath', [/"healthz"/, /starting with \//]],
  ['plain env holds a secret-looking key', 'kubernetes', { env: { HF_TOKEN: 'hf_abc' } }, 'env.HF_TOKEN', [/looks like a secret/, /use secretEnv/]],
  ['the blue/green live colour is unknown', 'kubernetes', { rollout: Rollout.blueGreen(), live: 'purple' }, 'live', [/"purple"/, /one of blue, green/]],
  ['the live colour has nothing deployed in it', 'kubernetes', { rollout: Rollout.blueGreen(), live: 'green' }, 'live', [/nothing in it/, /'blue'/]],
  ['previous is set with an all-at-once rollout', 'gcp', { previous: { revision: 'v0' } }, 'previous', [/"v0"/, /canary, linear or blueGreen/]],
  ['previous on kubernetes names no image', 'kubernetes', { rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1' } }, 'previous.image', [/is required/, /image the previous version runs/]],
  ['rolloutStep is past the last step', 'gcp', { rollout: Rollout.linear({ percentPerStep: 25, stepMinutes: 5 }), rolloutStep: 5 }, 'rolloutStep', [/got 5/, /1 to 4/]],
  ['public is asked on kubernetes', 'kubernetes', { public: true }, 'public', [/does not apply to kubernetes/, /gcp targets only/]],
  ['secretEnv is given on aws', 'aws', { secretEnv: { X: { store: 'aws-secrets-manager', arn: 'a', name: 'b' } } }, 'secretEnv', [/does not apply to aws/, /SageMaker models have no secret environment/]],
  ['the instance type is not a SageMaker type', 'aws', { instanceType: 'g6.xlarge' }, 'instanceType', [/"g6\.xlarge"/, /ml\.g6\.xlarge/]],
  ['rollback alarms are given on gcp', 'gcp', { rollbackAlarms: ['x'] }, 'rollbackAlarms', [/does not apply to gcp/, /aws targets only/]],
];

describe('ModelEndpoint validation', () => {
  test.each(cases)('fails when %s', (_name, kind, props, prop, patterns) => {
    const err = attempt(kind, props);
    expect(err.prop).toBe(prop);
    expect(err.path).toBe('v/api');
    expect(err.message).toContain(`v/api: ${prop}`);
    for (const p of patterns) expect(err.message).toMatch(p);
  });

  test('fails when ModelArtifact.fromUri gets a bad URI, naming the URI and what is allowed', () => {
    let err: unknown;
    try {
      ModelArtifact.fromUri('ftp://x/y');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect((err as MlInfraError).prop).toBe('uri');
    expect((err as MlInfraError).message).toMatch(/"ftp:\/\/x\/y".*s3:\/\/bucket\/prefix or gs:\/\/bucket\/prefix/);
  });

  test('Terraform references are accepted in the bucket and prefix, not in place of the scheme', () => {
    const stack = new TerraformStack(new App(), 'v');
    const aws = new AwsTarget(stack, 't', { region: 'us-east-1' });
    const b = new S3Bucket(stack, 'b', { provider: aws.provider });
    expect(() => new ModelEndpoint(stack, 'ok', { target: aws, model: `s3://${b.bucket}/models/ltv`, image: BASE.aws.image as string, replicas: { min: 1, max: 2 } })).not.toThrow();
    expect(() => new ModelEndpoint(stack, 'bad', { target: aws, model: b.bucket, image: BASE.aws.image as string, replicas: { min: 1, max: 2 } })).toThrow(/literal s3:\/\/ or gs:\/\//);
  });

  test('image is required: a caller without type checks that omits it fails at synth time with MISSING_PROP', () => {
    const stack = new TerraformStack(new App(), 'v');
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const pipeline = { model: ModelArtifact.fromUri('s3://ml-artifacts/ltv/model') };
    let err: unknown;
    try {
      const props = { target: aws, model: pipeline.model, accelerator: 'L4', replicas: { min: 1, max: 8 }, rollout: Rollout.canary({ percent: 10 }) };
      new ModelEndpoint(stack, 'ltv-api', props as unknown as ModelEndpointProps);
    } catch (e) {
      err = e;
    }
    expect((err as MlInfraError).code).toBe('MISSING_PROP');
    expect((err as MlInfraError).prop).toBe('image');
  });
});

describe('ModelEndpoint with Terraform values', () => {
  /** Synthesizes one endpoint whose props come from `props(variables)`; returns the stack JSON. */
  function synth(kind: Kind, props: (v: (name: string, type: 'number' | 'string') => any) => Record<string, unknown>): any {
    const stack = new TerraformStack(new App(), 'v');
    const target: Target = kind === 'aws' ? new AwsTarget(stack, 't', { region: 'us-east-1' })
      : kind === 'gcp' ? new GcpTarget(stack, 't', { project: 'ml-prod-123', region: 'us-central1' })
        : new KubernetesTarget(stack, 't', { namespace: 'ml' });
    const v = (name: string, type: 'number' | 'string') => {
      const variable = new TerraformVariable(stack, name, { type });
      return type === 'number' ? variable.numberValue : variable.stringValue;
    };
    new ModelEndpoint(stack, 'api', { target, replicas: { min: 1, max: 4 }, ...BASE[kind], ...props(v) } as ModelEndpointProps);
    return JSON.parse(Testing.synth(stack));
  }
  const only = (json: any, type: string): any => {
    const all = Object.values(json.resource[type] ?? {});
    expect(all).toHaveLength(1);
    return all[0];
  };

  test('accepts a token for replicas on aws: the scaling target and the first fleet read the variables', () => {
    const json = synth('aws', (v) => ({ replicas: { min: v('min', 'number'), max: v('max', 'number') } }));
    expect(only(json, 'aws_appautoscaling_target')).toMatchObject({ min_capacity: '${var.min}', max_capacity: '${var.max}' });
    expect(only(json, 'aws_sagemaker_endpoint_configuration').production_variants[0].initial_instance_count).toBe('${var.min}');
  });

  test('accepts a token for replicas on gcp, and for image (no mirror: nothing is known about its registry)', () => {
    const json = synth('gcp', (v) => ({ replicas: { min: v('min', 'number'), max: 3 }, image: v('image', 'string') }));
    const service = only(json, 'google_cloud_run_v2_service');
    expect(service.template.scaling).toEqual({ min_instance_count: '${var.min}', max_instance_count: 3 });
    expect(service.template.containers[0].image).toBe('${var.image}');
    expect(json.resource.google_artifact_registry_repository).toBeUndefined();
  });

  test('accepts a token for replicas and image on kubernetes: the Deployment and the HPA read the variables', () => {
    const json = synth('kubernetes', (v) => ({ replicas: { min: v('min', 'number'), max: v('max', 'number') }, image: v('image', 'string') }));
    const deployment = only(json, 'kubernetes_deployment_v1');
    expect(deployment.spec.replicas).toBe('${var.min}');
    expect(deployment.spec.template.spec.container[0].image).toBe('${var.image}');
    expect(only(json, 'kubernetes_horizontal_pod_autoscaler_v2').spec).toMatchObject({ min_replicas: '${var.min}', max_replicas: '${var.max}' });
  });

  test('accepts a token for image on aws: the execution role may pull exactly the repository Terraform parses out of it', () => {
    const json = synth('aws', (v) => ({ image: v('image', 'string') }));
    const model = only(json, 'aws_sagemaker_model');
    expect(model.primary_container.image).toBe('${var.image}');
    const doc = Object.values(json.data.aws_iam_policy_document).find((d: any) => d.statement?.some((s: any) => s.sid === 'PullImage')) as any;
    expect(doc.statement.find((s: any) => s.sid === 'PullImage').resources[0]).toMatch(/regex\(.*var\.image/);
  });

  test('accepts a token for invocationsPerInstanceTarget, modelKeyArn and rollbackAlarms on aws', () => {
    const json = synth('aws', (v) => ({
      invocationsPerInstanceTarget: v('target', 'number'), modelKeyArn: v('key', 'string'), rollbackAlarms: [v('alarm', 'string')],
    }));
    expect(only(json, 'aws_appautoscaling_policy').target_tracking_scaling_policy_configuration.target_value).toBe('${var.target}');
    expect(only(json, 'aws_sagemaker_endpoint').deployment_config.auto_rollback_configuration.alarms).toEqual([{ alarm_name: '${var.alarm}' }]);
    const statements = Object.values(json.data.aws_iam_policy_document).flatMap((d: any) => d.statement ?? []);
    expect(statements.find((st: any) => st.sid === 'DecryptModel').resources).toEqual(['${var.key}']);
  });

  test('a Terraform value for replicas is priced as 0, and the cost fact says why', () => {
    const stack = new TerraformStack(new App(), 'v');
    const target = new AwsTarget(stack, 't', { region: 'us-east-1' });
    const min = new TerraformVariable(stack, 'min', { type: 'number' }).numberValue;
    const e = new ModelEndpoint(stack, 'api', { target, replicas: { min, max: 4 }, model: BASE.aws.model as string, image: BASE.aws.image as string });
    expect(costFacts(e)).toEqual([expect.objectContaining({
      item: 'SageMaker ml.m5.xlarge instance', unitUsd: 0.23, quantity: { min: 0, max: 4 }, estimate: true, note: expect.stringMatching(/replicas is a Terraform value/),
    })]);
  });

  test('accepts a token for cpuTargetPercent and serviceAccountName on kubernetes', () => {
    const json = synth('kubernetes', (v) => ({ cpuTargetPercent: v('cpu', 'number'), serviceAccountName: v('sa', 'string') }));
    const hpa = only(json, 'kubernetes_horizontal_pod_autoscaler_v2');
    expect(hpa.spec.metric[0].resource.target.average_utilization).toBe('${var.cpu}');
    expect(only(json, 'kubernetes_deployment_v1').spec.template.spec.service_account_name).toBe('${var.sa}');
    expect(json.resource.kubernetes_service_account_v1).toBeUndefined();
  });

  /** Values computed at synth (names, probes, shares, catalog shapes) cannot wait for apply: a clear error, not a number's encoding. */
  const literalOnly: [string, Kind, (v: (name: string, type: 'number' | 'string') => any) => Record<string, unknown>, string, RegExp][] = [
    ['port', 'kubernetes', (v) => ({ port: v('port', 'number') }), 'port', /is not known at synth time/],
    ['acceleratorsPerReplica', 'aws', (v) => ({ accelerator: 'L4', acceleratorsPerReplica: v('n', 'number') }), 'acceleratorsPerReplica', /a literal count of L4/],
    ['cpu on kubernetes', 'kubernetes', (v) => ({ cpu: v('cpu', 'number') }), 'cpu', /a literal number of vCPU/],
    ['cpu on Cloud Run', 'gcp', (v) => ({ cpu: v('cpu', 'number') }), 'cpu', /one of 1, 2, 4, 6, 8 vCPU/],
    ['replicas with a canary split on kubernetes', 'kubernetes', (v) => ({
      replicas: { min: v('min', 'number'), max: 4 }, rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1', image: 'ghcr.io/acme/ltv-server:0.9' },
    }), 'replicas.min', /a literal number with a canary rollout on kubernetes/],
  ];
  test.each(literalOnly)('fails when %s is a Terraform value', (_what, kind, props, prop, pattern) => {
    let err: unknown;
    try {
      synth(kind, props);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect((err as MlInfraError).prop).toBe(prop);
    expect((err as MlInfraError).message).toMatch(pattern);
    expect((err as MlInfraError).message).not.toMatch(/e\+\d{3}/);
  });
});
