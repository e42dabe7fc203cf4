// Issue 16: ModelEndpoint serving pipeline.model (a typed registry reference) on AWS, GCP and Kubernetes.
// The DESIGN §1 program with `model: pipeline.model` on each target; the record each endpoint writes is
// parsed as the agent's readEndpoints parses it; first-apply state, ignore_changes, grants on exact
// resources, rollback alarms reused by MonitoringStack, and bad input.
import { App, TerraformStack, Testing } from 'cdktf';
import {
  AwsTarget, ContainerImage, Duration, GcpTarget, GpuCluster, KubernetesTarget, MlInfraError, ModelEndpoint, MonitoringStack, Notify, Rollout,
  Schedule, Step, Target, TrainingPipeline,
} from '../../src';
import { isModelRegistry } from '../../src/core/model';
import { PIPELINE_LABEL as AGENT_PIPELINE_LABEL, RECORD_LABEL as AGENT_RECORD_LABEL } from '../../src/runtime-agent/registry/endpoints';
import { caught, resources, TerraformJson, testAgentBundle } from '../helpers';

type Kind = 'aws' | 'gcp' | 'kubernetes';
const IMAGE = 'ghcr.io/acme/ltv-server:2.0';

function target(stack: TerraformStack, kind: Kind, store = true): Target {
  if (kind === 'aws') return new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  if (kind === 'gcp') return new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
  return new KubernetesTarget(stack, 'k8s', {
    namespace: 'ml-platform',
    ...(store ? { artifactStore: { uri: 's3://ml-artifacts/k8s', endpoint: 'http://minio.minio.svc:9000', credentialsSecret: { name: 'store', key: 'credentials' } } } : {}),
  });
}

/** DESIGN §1 with model: pipeline.model, on `kind`. */
function program(kind: Kind, opts: { store?: boolean; rollout?: ReturnType<typeof Rollout.canary> } = {}) {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'ml-platform');
  const t = target(stack, kind, opts.store ?? true);
  const cluster = new GpuCluster(stack, 'train', {
    target: t, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: kind !== 'kubernetes', idleStopMinutes: 30, agentBundleDir: testAgentBundle(),
  });
  const pipeline = new TrainingPipeline(stack, 'ltv', {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [Step.run('features', ['python', 'featurize.py']), Step.run('train', ['torchrun', 'train.py'], { after: ['features'], retries: 2 }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] })],
  });
  const endpoint = new ModelEndpoint(stack, 'ltv-api', {
    target: t, model: pipeline.model,
    image: ContainerImage.fromRegistry(IMAGE, kind === 'aws' ? { awsCredentialSecret: 'ecr-pullthroughcache/ghcr' } : {}),
    accelerator: 'L4', replicas: { min: 2, max: 8 }, rollout: opts.rollout ?? Rollout.canary({ percent: 10, bakeMinutes: 5 }),
    ...(kind === 'aws' ? { rollbackOn: { p99LatencyMs: 250, errorRatePercent: 1 } } : {}),
  });
  new MonitoringStack(stack, 'ops', {
    target: t, notify: [Notify.email('ml-oncall@example.com')],
    kubernetes: kind === 'kubernetes' ? { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' } } : undefined,
  })
    .watch(cluster).watch(pipeline, { maxAge: Duration.hours(26) }).watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  const json = JSON.parse(Testing.synth(stack)) as TerraformJson;
  return { json, pipeline, endpoint };
}

const all = (json: TerraformJson, type: string): Record<string, any>[] => Object.values(resources(json, type)) as Record<string, any>[];
const one = (json: TerraformJson, type: string, part: string): any => Object.entries(resources(json, type)).find(([k]) => k.includes(part))?.[1];
/** The record as the agent reads it: JSON, with Terraform references left as strings. */
const record = (content: string): any => JSON.parse(content);

describe('pipeline.model is a typed registry reference', () => {
  test.each<Kind>(['aws', 'gcp', 'kubernetes'])('%s: registry root, pipeline name, versions prefix, promoting hosts', (kind) => {
    const { pipeline } = program(kind);
    const m = pipeline.model;
    expect(isModelRegistry(m)).toBe(true);
    expect(m.pipelineName).toBe(pipeline.pipelineName);
    expect(m.artifactsUri).toBe(pipeline.artifactsUri);
    expect(m.uri).toBe(`${pipeline.artifactsUri}/models/versions`);
    expect(m.targetKind).toBe(kind);
    expect(m.rolloutHosts).toBe(pipeline.cluster);
    expect(typeof m.storeEndpointRecord).toBe(kind === 'kubernetes' ? 'undefined' : 'function');
  });
});

describe('AWS: SageMaker endpoint on the registry', () => {
  const { json, endpoint, pipeline } = program('aws');
  const ep = () => all(json, 'aws_sagemaker_endpoint')[0];

  test('first apply: the model has no model data and says so; the endpoint ignores only endpoint_config_name', () => {
    const model = all(json, 'aws_sagemaker_model')[0];
    expect(model.primary_container.environment).toEqual({ MLINFRA_MODEL_VERSION: 'none' });
    expect(model.primary_container.model_data_source).toBeUndefined();
    expect(model.primary_container.model_data_url).toBeUndefined();
    expect(ep().lifecycle).toEqual({ ignore_changes: ['endpoint_config_name'] });
  });

  test('the record in the cluster bucket, under the registry, encrypted with the cluster key, holds what rolloutSageMaker reads', () => {
    const obj = one(json, 'aws_s3_object', 'ltv-api_registry_record');
    expect(obj.key).toMatch(new RegExp(`^pipelines/${pipeline.pipelineName}/models/endpoints/${ep().name}\\.json$`));
    expect(obj.kms_key_id).toMatch(/^\$\{aws_kms_key\.train_storage_key_[^.]+\.arn\}$/);
    const r = record(obj.content);
    expect(r).toEqual({
      kind: 'sagemaker', name: ep().name, endpointName: ep().name, region: 'us-east-1', image: all(json, 'aws_sagemaker_model')[0].primary_container.image,
      executionRoleArn: expect.stringMatching(/^\$\{aws_iam_role\.ltv-api_iam_role_[^.]+\.arn\}$/), variantName: 'primary', instanceType: 'ml.g6.xlarge',
      initialInstanceCount: 2, environment: {}, traffic: { type: 'CANARY', percent: 10, waitSeconds: 300 },
      rollbackAlarms: [expect.stringContaining('rollback_error-rate'), expect.stringContaining('rollback_p99-latency')],
      terminationWaitSeconds: 0, maxWaitSeconds: 3900,
      // every version's config keeps the capture and the GPU startup timeouts of the Terraform-made one
      dataCapture: {
        samplingPercent: 20, kmsKeyId: expect.stringMatching(/^\$\{aws_kms_key\.ltv-api_storage_key_[^.]+\.arn\}$/),
        destinationS3Uri: expect.stringMatching(/^s3:\/\/\$\{aws_s3_bucket\.ltv-api_storage_capture_[^.]+\.bucket\}\/ml-platform-ltv-api-[0-9a-f]{8}\/$/),
      },
      startupTimeoutSeconds: 1800,
    });
    const config = all(json, 'aws_sagemaker_endpoint_configuration')[0];
    expect(r.dataCapture).toMatchObject({ samplingPercent: config.data_capture_config.initial_sampling_percentage, destinationS3Uri: config.data_capture_config.destination_s3_uri, kmsKeyId: config.data_capture_config.kms_key_id });
    expect(ep().name).toContain('ltv-api');
  });

  test('the hosts may roll out: exact SageMaker ARNs for <endpoint>-v*, PassRole on the execution role only', () => {
    const doc = Object.entries(json.data!.aws_iam_policy_document).find(([k]) => k.includes('rollout'))![1] as any;
    const n = ep().name;
    const arn = (t: string, x: string) => expect.stringMatching(new RegExp(`^arn:\\$\\{data\\.aws_partition\\.[^}]+\\}:sagemaker:us-east-1:\\$\\{data\\.aws_caller_identity\\.[^}]+\\}:${t}/${x.replace('*', '\\*')}$`));
    expect(doc.statement).toEqual([
      { effect: 'Allow', actions: ['sagemaker:CreateModel', 'sagemaker:AddTags'], resources: [arn('model', `${n}-v*`)] },
      { effect: 'Allow', actions: ['sagemaker:CreateEndpointConfig'], resources: [arn('endpoint-config', `${n}-v*`)] },
      { effect: 'Allow', actions: ['sagemaker:UpdateEndpoint'], resources: [arn('endpoint', n), arn('endpoint-config', `${n}-v*`)] },
      { effect: 'Allow', actions: ['sagemaker:DescribeEndpoint'], resources: [arn('endpoint', n)] },
      { effect: 'Allow', actions: ['iam:PassRole'], resources: [expect.stringMatching(/^\$\{aws_iam_role\.ltv-api_iam_role_[^.]+\.arn\}$/)] },
      // a config whose data capture is encrypted with the endpoint's key: SageMaker creates a grant for the caller
      { effect: 'Allow', actions: ['kms:CreateGrant', 'kms:DescribeKey'], resources: [expect.stringMatching(/^\$\{aws_kms_key\.ltv-api_storage_key_[^.]+\.arn\}$/)] },
    ]);
    // Attached to the cluster's host role.
    const policy = Object.entries(resources(json, 'aws_iam_role_policy')).find(([k]) => k.includes('rollout'))![1] as any;
    expect(policy.role).toMatch(/aws_iam_role\.train_/);
  });

  test('the execution role reads every version and decrypts with the cluster bucket key', () => {
    const doc = Object.entries(json.data!.aws_iam_policy_document).find(([k]) => k.includes('execution-doc'))![1] as any;
    const sid = (s: string) => doc.statement.find((x: any) => x.sid === s);
    expect(sid('ReadModel').resources).toEqual([expect.stringMatching(new RegExp(`/pipelines/${pipeline.pipelineName}/models/versions\\*$`))]);
    expect(sid('DecryptModel').resources).toEqual([expect.stringMatching(/^\$\{aws_kms_key\.train_storage_key_[^.]+\.arn\}$/)]);
  });

  test('its own rollback alarms feed the deployment config and MonitoringStack reuses them (composite alarms, no duplicate metric alarm)', () => {
    const names = ep().deployment_config.auto_rollback_configuration.alarms.map((a: any) => a.alarm_name);
    expect(names).toEqual([expect.stringContaining('rollback_error-rate'), expect.stringContaining('rollback_p99-latency')]);
    expect(endpoint.rollbackAlarms!.p99Latency.threshold).toBe(250);
    const sagemakerAlarms = all(json, 'aws_cloudwatch_metric_alarm').filter((a) => JSON.stringify(a).includes('AWS/SageMaker'));
    expect(sagemakerAlarms).toHaveLength(2);
    const composites = all(json, 'aws_cloudwatch_composite_alarm');
    expect(composites.map((c) => c.alarm_rule).sort()).toEqual([
      expect.stringMatching(/^ALARM\("\$\{aws_cloudwatch_metric_alarm\.ltv-api_rollback_error-rate_[^.]+\.alarm_name\}"\)$/),
      expect.stringMatching(/^ALARM\("\$\{aws_cloudwatch_metric_alarm\.ltv-api_rollback_p99-latency_[^.]+\.alarm_name\}"\)$/),
    ]);
    for (const c of composites) expect(c.alarm_actions).toEqual([expect.stringMatching(/aws_sns_topic\./)]);
  });
});

describe('GCP: Cloud Run service on the registry', () => {
  const { json, pipeline } = program('gcp');
  const svc = () => all(json, 'google_cloud_run_v2_service').find((s) => s.name.includes('ltv-api'))!;

  test('first apply: no model, Cloud Run names the revision; the rollout owns template and traffic', () => {
    expect(svc().template.revision).toBeUndefined();
    expect(svc().template.containers[0].env).toEqual([{ name: 'MLINFRA_MODEL_VERSION', value: 'none' }]);
    expect(svc().lifecycle).toEqual({ ignore_changes: ['template', 'traffic'] });
  });

  test('the record holds what rolloutCloudRun reads', () => {
    const obj = one(json, 'google_storage_bucket_object', 'ltv-api_registry_record');
    expect(obj.name).toBe(`pipelines/${pipeline.pipelineName}/models/endpoints/${svc().name}.json`);
    const rec = record(obj.content);
    expect(rec).toEqual({
      kind: 'cloudrun', name: svc().name, service: `projects/ml-platform-prod/locations/us-central1/services/${svc().name}`, canaryPercent: 10, bakeSeconds: 300,
      // the image and template Terraform would deploy (it ignores the live template): each rollout
      // deploys them, and a changed template is rolled out again by the next sync
      image: svc().template.containers[0].image,
      template: expect.any(Object),
    });
    // the Admin API v2 shape of the same template: camelCase, ports a list, no revision name
    const tf = svc().template;
    const c = tf.containers[0];
    expect(rec.template).toEqual({
      serviceAccount: tf.service_account, executionEnvironment: tf.execution_environment,
      scaling: { minInstanceCount: tf.scaling.min_instance_count, maxInstanceCount: tf.scaling.max_instance_count },
      nodeSelector: { accelerator: tf.node_selector.accelerator }, gpuZonalRedundancyDisabled: tf.gpu_zonal_redundancy_disabled,
      containers: [{
        name: c.name, image: c.image, env: c.env, ports: [{ containerPort: c.ports.container_port }],
        resources: { limits: c.resources.limits, cpuIdle: c.resources.cpu_idle, startupCpuBoost: c.resources.startup_cpu_boost },
        startupProbe: { httpGet: { path: c.startup_probe.http_get.path, port: c.startup_probe.http_get.port }, periodSeconds: c.startup_probe.period_seconds, failureThreshold: c.startup_probe.failure_threshold, timeoutSeconds: c.startup_probe.timeout_seconds },
        livenessProbe: { httpGet: { path: c.liveness_probe.http_get.path, port: c.liveness_probe.http_get.port }, periodSeconds: c.liveness_probe.period_seconds, failureThreshold: c.liveness_probe.failure_threshold, timeoutSeconds: c.liveness_probe.timeout_seconds },
      }],
    });
    expect(tf.revision).toBeUndefined();
  });

  test('the hosts get run.developer on this service and actAs on its runtime account only; serving reads every version', () => {
    const run = all(json, 'google_cloud_run_v2_service_iam_member').filter((m) => m.role === 'roles/run.developer');
    expect(run).toHaveLength(1);
    expect(run[0].name).toMatch(/google_cloud_run_v2_service\.ltv-api_serving_service_[^.]+\.name/);
    expect(run[0].member).toMatch(/google_service_account\.train_/);
    const actAs = all(json, 'google_service_account_iam_member').filter((m) => m.role === 'roles/iam.serviceAccountUser' && /ltv-api_iam_service-account/.test(m.service_account_id));
    expect(actAs).toHaveLength(1);
    const read = one(json, 'google_storage_bucket_iam_member', 'ltv-api_iam_model-read');
    expect(read.condition.expression).toContain(`/objects/pipelines/${pipeline.pipelineName}/models/versions")`);
  });
});

describe('Kubernetes: Deployments on the registry', () => {
  const { json, pipeline } = program('kubernetes');
  const dep = (k: string) => all(json, 'kubernetes_deployment_v1').find((d) => d.metadata.name.includes('ltv-api') && d.metadata.name.endsWith(`-${k}`))!;

  test('first apply: stable without a model, canary at zero; env and replicas left to the rollout; pods reach the store', () => {
    const env = dep('stable').spec.template.spec.container[0].env;
    expect(env).toEqual(expect.arrayContaining([{ name: 'MODEL_URI', value: '' }, { name: 'MLINFRA_MODEL_VERSION', value: 'none' },
      { name: 'AWS_ENDPOINT_URL_S3', value: 'http://minio.minio.svc:9000' }, { name: 'AWS_SHARED_CREDENTIALS_FILE', value: '/var/run/mlinfra/store/credentials' }]));
    expect(dep('stable').spec.template.spec.volume).toEqual([{ name: 'store-credentials', secret: { secret_name: 'store', items: [{ key: 'credentials', path: 'credentials' }] } }]);
    expect(dep('canary').spec.replicas).toBe('0');
    // only the two entries the rollout patches, by index: the rest of env (a changed LOG_LEVEL) still applies
    for (const k of ['stable', 'canary']) {
      expect(dep(k).lifecycle.ignore_changes).toEqual(['spec[0].replicas', 'spec[0].template[0].spec[0].container[0].env[0]', 'spec[0].template[0].spec[0].container[0].env[1]']);
      expect(dep(k).spec.template.spec.container[0].env.slice(0, 2).map((e: { name: string }) => e.name)).toEqual(['MODEL_URI', 'MLINFRA_MODEL_VERSION']);
    }
    expect(all(json, 'kubernetes_horizontal_pod_autoscaler_v2').filter((h) => h.metadata.name.includes('ltv-api'))).toHaveLength(1);
  });

  test('the record (a ConfigMap) and the runner\'s Role: list ConfigMaps, get/patch on exactly the two Deployments', () => {
    const cm = all(json, 'kubernetes_config_map_v1').find((c) => c.metadata.name?.endsWith?.('-endpoint-record'))!;
    // The labels the promoting runner selects by (runtime-agent/registry/endpoints.ts).
    expect(cm.metadata.labels[AGENT_RECORD_LABEL]).toBe('true');
    expect(cm.metadata.labels[AGENT_PIPELINE_LABEL]).toBe(pipeline.pipelineName);
    const [key, content] = Object.entries(cm.data as Record<string, string>)[0];
    const r = record(content);
    expect(key).toBe(`${r.name}.json`);
    // The Deployments by reference: the record exists only once they do.
    const ref = (k: string) => expect.stringMatching(new RegExp(`^\\$\\{kubernetes_deployment_v1\\.ltv-api_workload_${k}_[^.]+\\.metadata\\[0\\]\\.name\\}$`));
    expect(r).toEqual({ kind: 'kubernetes', name: r.name, namespace: expect.any(String), stable: ref('stable'), canary: ref('canary'), canaryReplicas: 1, container: 'server', bakeSeconds: 300 });
    expect(r.name).toContain('ltv-api');
    const role = all(json, 'kubernetes_role_v1').find((x) => x.metadata.name.endsWith('-rollout'))!;
    // Exactly the calls of a promotion: list the records by label, get and patch the two Deployments.
    expect(role.rule).toEqual([
      { api_groups: ['apps'], resources: ['deployments'], resource_names: [ref('stable'), ref('canary')], verbs: ['get', 'patch'] },
      { api_groups: [''], resources: ['configmaps'], verbs: ['list'] },
    ]);
    const binding = all(json, 'kubernetes_role_binding_v1').find((x) => x.metadata.name.endsWith('-rollout'))!;
    expect(binding.subject).toEqual([{ kind: 'ServiceAccount', name: `${pipeline.pipelineName}-runner`, namespace: role.metadata.namespace }]);
    expect(binding.role_ref).toEqual({ api_group: 'rbac.authorization.k8s.io', kind: 'Role', name: expect.stringMatching(/^\$\{kubernetes_role_v1\.[^.]+\.metadata\[0\]\.name\}$/) });
  });

  test('only the runner pod mounts its service account token (a promotion rolls out with it)', () => {
    const [saId, sa] = Object.entries(resources(json, 'kubernetes_service_account_v1') as Record<string, any>).find(([, x]) => x.metadata.name === `${pipeline.pipelineName}-runner`)!;
    expect(sa.automount_service_account_token).toBe(false);
    const cron = all(json, 'kubernetes_cron_job_v1').find((x) => x.metadata.name === pipeline.pipelineName)!;
    const pod = cron.spec.job_template.spec.template.spec;
    expect(pod.service_account_name).toBe(`\${kubernetes_service_account_v1.${saId}.metadata[0].name}`);
    expect(pod.automount_service_account_token).toBe(true);
    // The endpoint's own pods reach no API.
    for (const k of ['stable', 'canary']) expect(dep(k).spec.template.spec.automount_service_account_token).not.toBe(true);
  });
});

describe('bad input names a way out', () => {
  test('a registry from another cloud', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 's');
    const gcp = new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const cluster = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'L4', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
    const pipeline = new TrainingPipeline(stack, 'ltv', { cluster, steps: [Step.run('train', ['python', 'train.py'])] });
    const e = caught(() => new ModelEndpoint(stack, 'api', { target: aws, model: pipeline.model, image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/s:1', replicas: { min: 1, max: 2 } }));
    expect(e).toBeInstanceOf(MlInfraError);
    expect(e.code).toBe('CONFLICTING_PROPS');
    expect(e.message).toMatch(/registry of pipeline .* on gcp, the endpoint on aws/);
    expect(e.message).toMatch(/copy it and pass its s3:\/\/ or gs:\/\/ URI/);
  });

  test('a Kubernetes endpoint on a file:// registry', () => {
    const e = caught(() => program('kubernetes', { store: false }));
    expect(e.code).toBe('CONFLICTING_PROPS');
    expect(e.message).toMatch(/file:\/\//);
    expect(e.message).toMatch(/set the KubernetesTarget's artifactStore to an s3:\/\/ or gs:\/\/ URI/);
  });

  test('versions picked by hand with pipeline.model', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 's');
    const gcp = new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
    const cluster = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'L4', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
    const pipeline = new TrainingPipeline(stack, 'ltv', { cluster, steps: [Step.run('train', ['python', 'train.py'])] });
    const e = caught(() => new ModelEndpoint(stack, 'api', {
      target: gcp, model: pipeline.model, image: 'us-docker.pkg.dev/p/r/s:1', replicas: { min: 0, max: 2 }, revision: 'v2',
      rollout: Rollout.canary({ percent: 10 }), previous: { revision: 'v1', deployed: true },
    }));
    expect(e.prop).toBe('revision');
    expect(e.message).toMatch(/unset with model: pipeline\.model/);
  });

  test('rollbackOn out of range, and not on gcp', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 's');
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const e = caught(() => new ModelEndpoint(stack, 'api', {
      target: aws, model: 's3://b-models/m', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/s:1', replicas: { min: 1, max: 2 }, rollbackOn: { errorRatePercent: 0 },
    }));
    expect({ code: e.code, prop: e.prop }).toEqual({ code: 'OUT_OF_RANGE', prop: 'rollbackOn.errorRatePercent' });
    const gcp = new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
    const g = caught(() => new ModelEndpoint(stack, 'g', { target: gcp, model: 'gs://b-models/m', image: 'us-docker.pkg.dev/p/r/s:1', replicas: { min: 0, max: 2 }, rollbackOn: {} }));
    expect(g.code).toBe('CONFLICTING_PROPS');
  });

  test('a hand-managed URI still works and keeps MODEL_URI (no record, no ignore_changes)', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 's');
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    new ModelEndpoint(stack, 'api', { target: aws, model: 's3://b-models/m/v3', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/s:1', replicas: { min: 1, max: 2 } });
    const json = JSON.parse(Testing.synth(stack)) as TerraformJson;
    expect(all(json, 'aws_sagemaker_model')[0].primary_container.environment).toEqual({ MODEL_URI: 's3://b-models/m/v3' });
    expect(all(json, 'aws_sagemaker_endpoint')[0].lifecycle).toBeUndefined();
    expect(all(json, 'aws_s3_object')).toHaveLength(0);
  });
});

void App;
