import 'cdktf/lib/testing/adapters/jest';
import { Testing } from 'cdktf';
import { AwsTarget, Duration, MlInfraError } from '../../src';
import { MlPlatformStack, MlPlatformStackProps } from '../../src/stacks';
import { ContainerImage } from '../../src/core/container-image';
import { Notify } from '../../src/core/notify';
import { resources, testAgentBundle, TerraformJson } from '../helpers';

const VIEW = { name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv_30d', type: 'float' as const }], ttl: Duration.days(2) };
const base = { notify: ['ml-oncall@example.com'], agentBundleDir: testAgentBundle(), featureViews: [VIEW] };
const ECR = '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2';

function platform(props: Partial<MlPlatformStackProps> & Pick<MlPlatformStackProps, 'target'>): { stack: MlPlatformStack; json: TerraformJson; text: string } {
  const app = Testing.app();
  const stack = new MlPlatformStack(app, 'platform', { servingImage: ECR, ...base, ...props } as MlPlatformStackProps);
  const text = Testing.synth(stack, true);
  return { stack, json: JSON.parse(text), text };
}

/** The Terraform reference of a created resource, as it appears in the JSON. */
const ref = (stack: MlPlatformStack, el: { node: { path: string } }, attr: string) => {
  const found = stack.node.findAll().find((c) => c.node.path === el.node.path)!;
  return `\${${(found as unknown as { terraformResourceType: string }).terraformResourceType}.${stack.getLogicalId(found as never)}.${attr}}`;
};

describe('MlPlatformStack on aws', () => {
  const { stack, json } = platform({ target: 'aws' });

  test('builds every construct on its own AwsTarget', () => {
    expect(stack.target).toBeInstanceOf(AwsTarget);
    expect([stack.cluster, stack.features, stack.endpoint, stack.monitoring].every((c) => c.target === stack.target)).toBe(true);
    expect(stack.pipeline.cluster).toBe(stack.cluster);
    expect(stack.cluster.accelerator.instanceType).toBe('p4de.24xlarge');
    expect(stack.cluster.nodes).toEqual({ min: 0, max: 4 });
    expect(stack.cluster.spot).toBe(true);
  });

  test('the cluster reads the features: an inline policy on its role names the exact table and bucket', () => {
    const docs = Object.entries(json.data!.aws_iam_policy_document).filter(([k]) => k.startsWith('train_granted_') && /features-[0-9a-f]+-read-[a-f0-9]{8}-doc/.test(k));
    expect(docs).toHaveLength(1);
    const statements = (docs[0][1] as any).statement as { actions: string[]; resources: string[] }[];
    const all = statements.flatMap((s) => s.resources);
    expect(all).toContain(ref(stack, stack.features.aws!.dynamodbTables.user_stats, 'arn'));
    expect(all.some((r) => r.includes(ref(stack, stack.features.aws!.bucket, 'arn')))).toBe(true);
    expect(all.every((r) => r !== '*')).toBe(true);
    expect(statements.flatMap((s) => s.actions)).toEqual(expect.arrayContaining(['dynamodb:GetItem']));
    expect(statements.flatMap((s) => s.actions).some((a) => /Put|Delete|Write/.test(a) && a.startsWith('dynamodb'))).toBe(false);
    const policy = Object.values(resources(json, 'aws_iam_role_policy')).find((p) => String(p.policy).includes(docs[0][0]))!;
    expect(policy.role).toBe(ref(stack, stack.cluster.aws!.role, 'id'));
  });

  test('the pipeline promotes to the model URI the endpoint serves', () => {
    expect(stack.endpoint.modelUri).toBe(stack.pipeline.model.uri);
    const model = Object.values(resources(json, 'aws_sagemaker_model'))[0] as any;
    const uri = `s3://${ref(stack, stack.cluster.aws!.bucket, 'bucket')}/pipelines/${stack.pipeline.name}/models/versions`;
    // Issue 16: no model until the first promotion rolls one out through the endpoint's record.
    expect(model.primary_container.environment.MLINFRA_MODEL_VERSION).toBe('none');
    expect(Object.values(resources(json, 'aws_s3_object')).some((o) => String(o.key).startsWith(`pipelines/${stack.pipeline.name}/models/endpoints/`))).toBe(true);
    const spec = Object.values(resources(json, 'aws_s3_object')).find((o) => String(o.key).startsWith(`pipelines/${stack.pipeline.name}/spec-`))!;
    expect(JSON.parse(String(spec.content)).artifactsUri).toBe(uri.replace(/\/models\/versions$/, ''));
  });

  test('monitoring watches the cluster, the pipeline and the endpoint: 5 + 2 + 2 alarms, plus the cluster\'s wake alarm', () => {
    const alarms = Object.values(resources(json, 'aws_cloudwatch_metric_alarm')).map((a) => String(a.alarm_name));
    expect(alarms).toHaveLength(10);
    for (const n of ['wake', 'gpu-idle-while-queued', 'gpu-xid-errors', 'agent-down', 'feature-drift', 'host-metrics-failed', 'pipeline-failed', 'pipeline-stale', 'p99-latency', 'error-rate']) {
      expect(alarms.filter((a) => a.includes(n))).toHaveLength(1);
    }
  });
});

describe('MlPlatformStack on gcp', () => {
  const { stack, json } = platform({ target: 'gcp', project: 'ml-platform-prod', servingImage: 'us-docker.pkg.dev/p/r/ltv:2' });

  test('the cluster reads the features: reader members on the exact Bigtable instance, dataset and bucket', () => {
    const member = ref(stack, stack.cluster.gcp!.serviceAccount, 'member');
    const bt = Object.values(resources(json, 'google_bigtable_instance_iam_member')).filter((m) => m.member === member);
    expect(bt).toEqual([expect.objectContaining({ role: 'roles/bigtable.reader' })]);
    expect(Object.values(resources(json, 'google_bigquery_dataset_iam_member')).filter((m) => m.member === member))
      .toEqual([
        expect.objectContaining({ role: 'roles/bigquery.dataViewer' }),
        // Feast uploads the entity frame as a table: readers write only to the store's scratch dataset.
        expect.objectContaining({ role: 'roles/bigquery.dataEditor', dataset_id: expect.stringContaining('scratch') }),
      ]);
    expect(Object.values(resources(json, 'google_storage_bucket_iam_member')).filter((m) => m.member === member && m.role === 'roles/storage.objectViewer').length).toBeGreaterThan(0);
  });

  test('the endpoint serves the promoted model and scales to zero', () => {
    const svc = Object.values(resources(json, 'google_cloud_run_v2_service'))[0] as any;
    // Issue 16: no model until the first promotion's revision.
    expect(svc.template.containers[0].env).toContainEqual({ name: 'MLINFRA_MODEL_VERSION', value: 'none' });
    expect(svc.template.scaling).toEqual(expect.objectContaining({ min_instance_count: 0, max_instance_count: 8 }));
  });

  test('monitoring: 8 alert policies', () => {
    expect(Object.keys(resources(json, 'google_monitoring_alert_policy'))).toHaveLength(8);
  });
});

describe('MlPlatformStack on kubernetes', () => {
  const { stack, json } = platform({
    target: 'kubernetes', servingImage: 'ghcr.io/acme/ltv:2', model: 's3://models/ltv/current',
    kubernetesMonitoring: { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' } },
  });

  test('the cluster reads the features: a RoleBinding of its service account to the store\'s reader role', () => {
    const sa = stack.cluster.kubernetes!.serviceAccount;
    const bindings = Object.values(resources(json, 'kubernetes_role_binding_v1')) as any[];
    const mine = bindings.filter((b) => b.subject?.some((s: any) => s.name === ref(stack, sa, 'metadata[0].name')) && String(b.metadata.name).includes('read'));
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(stack.cluster.spot).toBe(false);
  });

  test('the endpoint serves the model it was given; alert rules cover cluster, pipeline and endpoint', () => {
    expect(stack.endpoint.modelUri).toBe('s3://models/ltv/current');
    const rules = Object.values(resources(json, 'kubernetes_config_map_v1')).map((c: any) => JSON.stringify(c.data ?? {})).join('\n');
    for (const n of ['gpu-idle-while-queued', 'agent-down', 'pipeline-failed', 'pipeline-stale', 'p99-latency', 'error-rate']) expect(rules).toContain(n);
  });
});

describe('MlPlatformStack validation', () => {
  const make = (props: Partial<MlPlatformStackProps>) => () => new MlPlatformStack(Testing.app(), 'p', { target: 'aws', servingImage: ECR, ...base, ...props } as MlPlatformStackProps);
  test('fails when gcp has no project', () => {
    expect(make({ target: 'gcp' })).toThrow(expect.objectContaining({ code: 'MISSING_PROP', prop: 'project' }));
  });
  test('fails when kubernetes has no model', () => {
    expect(make({ target: 'kubernetes' })).toThrow(MlInfraError);
    expect(make({ target: 'kubernetes' })).toThrow(/model/);
  });
  test('fails when a setting does not apply to the target', () => {
    expect(make({ target: 'kubernetes', region: 'us-east-1', model: 's3://m/x' })).toThrow(expect.objectContaining({ code: 'CONFLICTING_PROPS', prop: 'region' }));
  });
  test('fails when the target kind is unknown', () => {
    expect(make({ target: 'azure' as never })).toThrow(expect.objectContaining({ code: 'UNKNOWN_VALUE' }));
  });
  test('a factory builds the target under the stack', () => {
    const s = make({ target: (scope) => new AwsTarget(scope, 'east', { region: 'us-east-2' }) })();
    expect((s.target as AwsTarget).region).toBe('us-east-2');
    expect(s.target.node.path).toBe('p/east');
  });
});

describe('MlPlatformStack takes ContainerImage and Notify values', () => {
  const image = ContainerImage.fromRegistry('ghcr.io/acme/ltv-server:2.0', { awsCredentialSecret: 'ecr-pullthroughcache/ghcr' });
  const notify = [Notify.email('ml-oncall@example.com'), Notify.slack({ webhookSecret: 'ml-slack-webhook' })];

  test('aws: the ghcr image through a pull-through cache rule; Slack through the delivery function', () => {
    const { json } = platform({ target: 'aws', servingImage: image, notify });
    expect(Object.values(resources(json, 'aws_ecr_pull_through_cache_rule')).map((r) => r.upstream_registry_url)).toEqual(['ghcr.io']);
    const model = Object.values(resources(json, 'aws_sagemaker_model'))[0] as any;
    expect(model.primary_container.image).toMatch(/^\$\{jsondecode\(aws_lambda_invocation\.[^}]+\}\.dkr\.ecr\.us-east-1\.amazonaws\.com\/ml-ghcr-[0-9a-f]{6}\/acme\/ltv-server:2\.0$/);
    const fn = (Object.values(resources(json, 'aws_lambda_function')) as any[]).find((f) => f.environment?.variables?.MLINFRA_TARGETS);
    expect(JSON.parse(fn.environment.variables.MLINFRA_TARGETS)).toEqual([{ kind: 'slack', secret: 'ml-slack-webhook' }]);
  });

  test('gcp: an Artifact Registry remote repository; Slack through the Pub/Sub channel and its function', () => {
    const { json } = platform({ target: 'gcp', project: 'ml-platform-prod', servingImage: image, notify });
    const remote = Object.values(resources(json, 'google_artifact_registry_repository')).filter((r) => r.mode === 'REMOTE_REPOSITORY') as any[];
    expect(remote.map((r) => r.remote_repository_config.docker_repository.custom_repository.uri)).toEqual(['https://ghcr.io']);
    expect(Object.values(resources(json, 'google_monitoring_notification_channel')).map((c) => c.type).sort()).toEqual(['email', 'pubsub']);
    expect(Object.keys(resources(json, 'google_cloudfunctions2_function'))).toHaveLength(1);
  });

  test('kubernetes: the image as is with its pull secret; Slack as a native receiver', () => {
    const { json } = platform({
      target: 'kubernetes', servingImage: ContainerImage.fromRegistry('ghcr.io/acme/ltv-server:2.0', { imagePullSecrets: ['ghcr-pull'] }), notify, model: 's3://models/ltv/current',
      kubernetesMonitoring: { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' } },
    });
    const server = (Object.values(resources(json, 'kubernetes_deployment_v1')) as any[]).find((d) => d.spec.template.spec.container[0].name === 'server')!;
    expect(server.spec.template.spec.container[0].image).toBe('ghcr.io/acme/ltv-server:2.0');
    expect(server.spec.template.spec.image_pull_secrets).toEqual([{ name: 'ghcr-pull' }]);
    const yml = (Object.values(resources(json, 'kubernetes_config_map_v1')) as any[]).map((c) => c.data?.['alertmanager.yml']).find(Boolean);
    expect(yml).toMatch(/slack_configs:\n\s+- api_url_file: /);
  });

  test('fails when the image string names a registry no target can mirror', () => {
    expect(() => platform({ target: 'aws', servingImage: 'nvcr.io/nvidia/tritonserver:24.01-py3' })).toThrow(/nvcr\.io/);
  });
});
