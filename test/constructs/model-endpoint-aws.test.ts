import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { AppautoscalingTarget } from '@cdktf/provider-aws/lib/appautoscaling-target';
import { SagemakerEndpoint } from '@cdktf/provider-aws/lib/sagemaker-endpoint';
import { SagemakerEndpointConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint-configuration';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { ModelArtifact } from '../../src/core/model';
import { AwsTarget } from '../../src/core/targets';
import { ACCELERATORS, SAGEMAKER_MARKUP, SAGEMAKER_PRICES, SAGEMAKER_SOURCE } from '../../src/core/accelerators';
import { costFacts } from '../../src/core/facts';
import { ModelEndpoint, ModelEndpointProps, Rollout } from '../../src/constructs/model-endpoint';
import { countByType, only, synth, TerraformJson } from '../helpers';

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:1.4.0';

const build = (props: Partial<ModelEndpointProps> = {}, extra?: (stack: TerraformStack, e: ModelEndpoint, aws: AwsTarget) => void) =>
  synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const e = new ModelEndpoint(stack, 'ltv-api', {
      target: aws, model: 's3://ml-models/ltv/v3', image: IMAGE, accelerator: 'L4', replicas: { min: 1, max: 8 },
      rollout: Rollout.canary({ percent: 10 }), ...props,
    });
    extra?.(stack, e, aws);
  });

const endpoint = (json: TerraformJson): any => only(json, 'aws_sagemaker_endpoint');
const config = (json: TerraformJson): any => only(json, 'aws_sagemaker_endpoint_configuration');
const policy = (json: TerraformJson, name: string): any => json.data!.aws_iam_policy_document[name];
const executionDoc = (json: TerraformJson): any =>
  Object.entries(json.data!.aws_iam_policy_document).find(([k]) => k.includes('execution-doc'))![1];
const routing = (json: TerraformJson): any => endpoint(json).deployment_config.blue_green_update_policy;

describe('ModelEndpoint on AWS', () => {
  const { text, json } = build();

  test('a GPU variant on the catalog\'s instance type, starting at replicas.min', () => {
    expect(text).toHaveResourceWithProperties(SagemakerEndpointConfiguration, {
      production_variants: [expect.objectContaining({ instance_type: 'ml.g6.xlarge', initial_instance_count: 1, variant_name: 'primary' })],
    });
    const { json: p4d } = build({ accelerator: 'A100-40GB', acceleratorsPerReplica: 8 });
    expect(config(p4d).production_variants[0].instance_type).toBe('ml.p4d.24xlarge');
    const { json: cpu } = build({ accelerator: undefined });
    expect(config(cpu).production_variants[0].instance_type).toBe('ml.m5.xlarge');
    const { json: explicit } = build({ accelerator: undefined, instanceType: 'ml.c5.2xlarge' });
    expect(config(explicit).production_variants[0].instance_type).toBe('ml.c5.2xlarge');
  });

  test('KMS key on EBS-only instance types; none where SageMaker refuses it (local NVMe)', () => {
    expect(config(json).kms_key_arn).toBeUndefined();
    const { json: cpu } = build({ accelerator: undefined });
    expect(config(cpu).kms_key_arn).toMatch(/^\$\{aws_kms_key\.ltv-api_storage_key_[A-Z0-9]+\.arn\}$/);
  });

  test('autoscaling: sagemaker variant target with min/max and invocations target tracking', () => {
    expect(text).toHaveResourceWithProperties(AppautoscalingTarget, {
      service_namespace: 'sagemaker', scalable_dimension: 'sagemaker:variant:DesiredInstanceCount', min_capacity: 1, max_capacity: 8,
      resource_id: expect.stringMatching(/^endpoint\/\$\{aws_sagemaker_endpoint\.[^}]+\.name\}\/variant\/primary$/),
    });
    const p: any = only(json, 'aws_appautoscaling_policy');
    expect(p.policy_type).toBe('TargetTrackingScaling');
    expect(p.target_tracking_scaling_policy_configuration).toMatchObject({
      target_value: 100, predefined_metric_specification: { predefined_metric_type: 'SageMakerVariantInvocationsPerInstance' },
    });
    const { json: j } = build({ invocationsPerInstanceTarget: 30, replicas: { min: 2, max: 3 } });
    expect((only(j, 'aws_appautoscaling_policy') as any).target_tracking_scaling_policy_configuration.target_value).toBe(30);
    expect(only(j, 'aws_appautoscaling_target')).toMatchObject({ min_capacity: 2, max_capacity: 3 });
  });

  test('canary rollout: CANARY with CAPACITY_PERCENT and the bake as wait interval', () => {
    expect(text).toHaveResourceWithProperties(SagemakerEndpoint, {
      deployment_config: expect.objectContaining({
        blue_green_update_policy: expect.objectContaining({
          traffic_routing_configuration: { type: 'CANARY', wait_interval_in_seconds: 600, canary_size: { type: 'CAPACITY_PERCENT', value: 10 } },
        }),
      }),
    });
    const { json: j } = build({ rollout: Rollout.canary({ percent: 25, bakeMinutes: 30 }) });
    expect(routing(j).traffic_routing_configuration).toEqual({ type: 'CANARY', wait_interval_in_seconds: 1800, canary_size: { type: 'CAPACITY_PERCENT', value: 25 } });
  });

  test('all-at-once, linear and blue/green rollouts', () => {
    const { json: all } = build({ rollout: Rollout.allAtOnce() });
    expect(routing(all)).toMatchObject({ traffic_routing_configuration: { type: 'ALL_AT_ONCE', wait_interval_in_seconds: 0 }, termination_wait_in_seconds: 0 });
    const { json: lin } = build({ rollout: Rollout.linear({ percentPerStep: 20, stepMinutes: 5 }) });
    expect(routing(lin).traffic_routing_configuration).toEqual({ type: 'LINEAR', wait_interval_in_seconds: 300, linear_step_size: { type: 'CAPACITY_PERCENT', value: 20 } });
    // Five steps of five minutes plus an hour for the green fleet to start.
    expect(routing(lin).maximum_execution_timeout_in_seconds).toBe(3600 + 1500);
    const { json: bg } = build({ rollout: Rollout.blueGreen({ bakeMinutes: 15 }) });
    expect(routing(bg)).toMatchObject({ traffic_routing_configuration: { type: 'ALL_AT_ONCE', wait_interval_in_seconds: 900 }, termination_wait_in_seconds: 900 });
    const { json: def } = build({ rollout: undefined });
    expect(routing(def).traffic_routing_configuration.type).toBe('ALL_AT_ONCE');
  });

  test('rollback alarms become auto_rollback_configuration', () => {
    expect(endpoint(json).deployment_config.auto_rollback_configuration).toBeUndefined();
    const { json: j } = build({ rollbackAlarms: ['ltv-5xx', 'ltv-p99'] });
    expect(endpoint(j).deployment_config.auto_rollback_configuration).toEqual({ alarms: [{ alarm_name: 'ltv-5xx' }, { alarm_name: 'ltv-p99' }] });
  });

  test('execution role reads exactly the model prefix and pulls exactly the image repository', () => {
    expect(text).toHaveResourceWithProperties(IamRole, { name: expect.stringMatching(/-sm$/) });
    const st = executionDoc(json).statement;
    const bySid = Object.fromEntries(st.map((s: any) => [s.sid, s]));
    expect(bySid.ReadModel).toMatchObject({ actions: ['s3:GetObject'], resources: [expect.stringMatching(/^arn:\$\{data\.aws_partition\.[^}]+\.partition\}:s3:::ml-models\/ltv\/v3\*$/)] });
    expect(bySid.ListModel.resources).toEqual([expect.stringMatching(/^arn:\$\{data\.aws_partition\.[^}]+\.partition\}:s3:::ml-models$/)]);
    expect(bySid.ListModel.condition).toEqual([{ test: 'StringLike', variable: 's3:prefix', values: ['ltv/v3*'] }]);
    expect(bySid.EcrLogin).toMatchObject({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] });
    expect(bySid.PullImage.resources).toEqual([expect.stringMatching(/^arn:\$\{data\.aws_partition\.[^}]+\.partition\}:ecr:us-east-1:123456789012:repository\/ltv-server$/)]);
    expect(bySid.Logs.resources[0]).toMatch(/^\$\{aws_cloudwatch_log_group\.[^}]+\.arn\}$/);
    expect(bySid.WriteCapture.resources[0]).toMatch(/^\$\{aws_s3_bucket\.ltv-api_storage_capture_[A-Z0-9]+\.arn\}\/test-ltv-api-[0-9a-f]{8}\/\*$/);
    // "*" only where AWS offers no resource-level permission.
    for (const s of st) if (s.resources.includes('*')) expect(s.actions).toEqual(['ecr:GetAuthorizationToken']);
  });

  test('the model container gets MODEL_URI and loads the prefix uncompressed; a .tar.gz is a model archive', () => {
    const m: any = only(json, 'aws_sagemaker_model');
    expect(m.primary_container.environment).toEqual({ MODEL_URI: 's3://ml-models/ltv/v3' });
    expect(m.primary_container.model_data_source.s3_data_source).toEqual([{ s3_uri: 's3://ml-models/ltv/v3/', s3_data_type: 'S3Prefix', compression_type: 'None' }]);
    expect(m.lifecycle).toEqual({ create_before_destroy: true });
    const { json: j } = build({ model: ModelArtifact.fromUri('s3://ml-models/ltv/model.tar.gz'), env: { WORKERS: '2' } });
    const m2: any = only(j, 'aws_sagemaker_model');
    expect(m2.primary_container.model_data_url).toBe('s3://ml-models/ltv/model.tar.gz');
    expect(m2.primary_container.environment).toEqual({ WORKERS: '2', MODEL_URI: 's3://ml-models/ltv/model.tar.gz' });
  });

  test('data capture: 20% by default to the encrypted capture bucket under the endpoint name', () => {
    const dc = config(json).data_capture_config;
    expect(dc).toMatchObject({ enable_capture: true, initial_sampling_percentage: 20 });
    expect(dc.destination_s3_uri).toMatch(/^s3:\/\/\$\{aws_s3_bucket\.[^}]+\.bucket\}\/test-ltv-api-[0-9a-f]{8}\/$/);
    expect(dc.kms_key_id).toMatch(/aws_kms_key/);
    const sse: any = only(json, 'aws_s3_bucket_server_side_encryption_configuration');
    expect(sse.rule[0].apply_server_side_encryption_by_default.sse_algorithm).toBe('aws:kms');
    expect(only(json, 'aws_s3_bucket_public_access_block')).toMatchObject({ block_public_acls: true, restrict_public_buckets: true });
    const { json: off } = build({ captureSamplingPercent: 0 });
    expect(config(off).data_capture_config).toBeUndefined();
    expect(countByType(off).aws_s3_bucket).toBeUndefined();
  });

  test('creates exactly these resources', () => {
    expect(countByType(json)).toEqual({
      aws_kms_key: 1, aws_s3_bucket: 1, aws_s3_bucket_public_access_block: 1, aws_s3_bucket_ownership_controls: 1, aws_s3_bucket_versioning: 1, aws_s3_bucket_lifecycle_configuration: 1,
      aws_s3_bucket_server_side_encryption_configuration: 1, aws_s3_bucket_policy: 1, aws_cloudwatch_log_group: 1,
      aws_iam_role: 1, aws_iam_role_policy: 1, aws_sagemaker_model: 1, aws_sagemaker_endpoint_configuration: 1,
      aws_sagemaker_endpoint: 1, aws_appautoscaling_target: 1, aws_appautoscaling_policy: 1,
    });
  });

  test('url, metrics and output', () => {
    let e!: ModelEndpoint;
    const { json: j } = build({}, (_s, ep) => { e = ep; });
    expect(e.url).toMatch(/^https:\/\/runtime\.sagemaker\.us-east-1\.amazonaws\.com\/endpoints\/.+\/invocations$/);
    expect(e.metrics.latency).toEqual({ system: 'cloudwatch', namespace: 'AWS/SageMaker', name: 'ModelLatency', unit: 'microseconds', dimensions: { EndpointName: expect.stringMatching(/^test-ltv-api-/), VariantName: 'primary' } });
    expect(e.metrics.errors.name).toBe('Invocation5XXErrors');
    expect(e.metrics.invocations.name).toBe('Invocations');
    const outputs = Object.values(j.output ?? {});
    expect(outputs).toHaveLength(1);
    expect(outputs[0].value).toMatch(/^https:\/\/runtime\.sagemaker\.us-east-1\.amazonaws\.com\/endpoints\/\$\{aws_sagemaker_endpoint\.[^}]+\.name\}\/invocations$/);
  });

  test('grantInvoke: sagemaker:InvokeEndpoint on exactly the endpoint ARN, via the grantee\'s addToPolicy', () => {
    const { json: j } = build({}, (stack, e, aws) => {
      const client = new ModelEndpoint(stack, 'client', { target: aws, model: 's3://ml-models/ranker/v1', image: IMAGE, replicas: { min: 1, max: 1 } });
      e.grantInvoke(client);
    });
    const docs = Object.entries(j.data!.aws_iam_policy_document).filter(([k]) => k.startsWith('client_granted_'));
    expect(docs).toHaveLength(1);
    const st = (docs[0][1] as any).statement;
    expect(st).toEqual([{ effect: 'Allow', actions: ['sagemaker:InvokeEndpoint'], resources: [expect.stringMatching(/^\$\{aws_sagemaker_endpoint\.ltv-api_serving_endpoint_[A-Z0-9]+\.arn\}$/)] }]);
    expect(() => build({}, (_s, e) => e.grantInvoke({ grantPrincipal: { kind: 'kubernetes', namespace: 'a', serviceAccountName: 'b' } }))).toThrow(/grants do not cross clouds/);
  });

  test('records its cost: SageMaker instance hours from the price list, else EC2 x markup (an estimate)', () => {
    let gpu: ModelEndpoint | undefined;
    let cpu: ModelEndpoint | undefined;
    build({}, (_s, e) => { gpu = e; });
    build({ accelerator: undefined }, (_s, e) => { cpu = e; });
    const ec2 = ACCELERATORS.L4.aws.find((s) => s.count === 1)!.usdPerHour;
    expect(SAGEMAKER_PRICES['ml.g6.xlarge']).toBeUndefined();
    expect(costFacts(gpu!)).toEqual([{
      item: 'SageMaker ml.g6.xlarge instance', unitUsd: Math.round(ec2 * SAGEMAKER_MARKUP * 10000) / 10000, per: 'hour', quantity: { min: 1, max: 8 },
      ...SAGEMAKER_SOURCE, estimate: true, note: `not in the price table: EC2 g6.xlarge ${ec2} x SageMaker markup ${SAGEMAKER_MARKUP}`,
    }]);
    expect(costFacts(cpu!)).toEqual([expect.objectContaining({ item: 'SageMaker ml.m5.xlarge instance', unitUsd: SAGEMAKER_PRICES['ml.m5.xlarge'], quantity: { min: 1, max: 8 } })]);
    expect(costFacts(cpu!)[0].estimate).toBeUndefined();
  });

  test('the endpoint\'s own principal takes grants as inline policies on its role', () => {
    const { json: j } = build({}, (_s, e) => {
      if (e.grantPrincipal.kind !== 'aws') throw new Error('expected aws');
      e.grantPrincipal.addToPolicy('features-read', [{ actions: ['dynamodb:GetItem'], resources: ['arn:aws:dynamodb:us-east-1:1:table/x'] }]);
    });
    expect(countByType(j).aws_iam_role_policy).toBe(2);
    expect(policy(j, Object.keys(j.data!.aws_iam_policy_document).find((k) => k.includes('features-read'))!).statement[0].actions).toEqual(['dynamodb:GetItem']);
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
