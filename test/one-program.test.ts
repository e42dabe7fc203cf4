// DESIGN §1: one program, any target. The same program (a ghcr.io serving image, Slack + email
// alerts) synthesizes on AWS, GCP and Kubernetes with zero policy findings, each target making the
// image pullable and the alerts deliverable its own way, and no secret value in any output.
import { App, TerraformStack, Testing } from 'cdktf';
import { execFile, execFileSync } from 'child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'fs';
import { createServer } from 'http';
import { AddressInfo } from 'net';
import { promisify } from 'util';
import { tmpdir } from 'os';
import { join } from 'path';
import { AwsTarget, Duration, GcpTarget, KubernetesTarget, Target } from '../src';
import { Policy } from '../src/aspects/policy';
import { ContainerImage } from '../src/core/container-image';
import { Notify } from '../src/core/notify';
import { FeatureStore } from '../src/constructs/feature-store';
import { GpuCluster } from '../src/constructs/gpu-cluster';
import { ModelEndpoint, Rollout } from '../src/constructs/model-endpoint';
import { MonitoringStack } from '../src/constructs/monitoring-stack';
import { alertmanagerSetup } from '../src/constructs/monitoring-stack/alertmanager-receivers';
import { DELIVERY_HANDLER } from '../src/constructs/monitoring-stack/aws-notify';
import { Schedule, Step, TrainingPipeline } from '../src/constructs/training-pipeline';
import { testAgentBundle, TerraformJson } from './helpers';
import { describeWithTools, TOOLS } from './support/tools';

const BUNDLE = testAgentBundle();
const execFileP = promisify(execFile);
const IMAGE = 'ghcr.io/acme/ltv-server:2.0';
const DIGEST = `sha256:${'0f'.repeat(32)}`;
// What a leaked secret would look like: none of these may appear anywhere in the output.
const SECRET_SHAPES = [/hooks\.slack\.com/, /xox[abp]-/, /events\.pagerduty\.com\/v2\/enqueue.*routing_key/];

type Kind = 'aws' | 'gcp' | 'kubernetes';

function program(kind: Kind): { json: TerraformJson; text: string; findings: unknown[]; outdir: string } {
  const outdir = mkdtempSync(join(tmpdir(), `one-program-${kind}-`));
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'ml-platform');
  const target: Target = kind === 'aws' ? new AwsTarget(stack, 'aws', { region: 'us-east-1' })
    : kind === 'gcp' ? new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' })
      : new KubernetesTarget(stack, 'k8s', { namespace: 'ml-platform' });
  const features = new FeatureStore(stack, 'features', { target });
  features.addFeatureView({ name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv_30d', type: 'float' }], ttl: Duration.days(2) });
  const cluster = new GpuCluster(stack, 'train', {
    target, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: kind !== 'kubernetes', idleStopMinutes: 30, agentBundleDir: BUNDLE,
  });
  features.grantRead(cluster);
  const pipeline = new TrainingPipeline(stack, 'ltv', {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [Step.run('features', ['python', 'featurize.py']),
      Step.run('train', ['torchrun', 'train.py'], { after: ['features'], retries: 2 }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] })],
  });
  const endpoint = new ModelEndpoint(stack, 'ltv-api', {
    target,
    // Kubernetes keeps pipeline artifacts on the agent pods' volume: the endpoint serves a model from S3 there.
    model: kind === 'kubernetes' ? 's3://ml-platform-models/ltv/current' : pipeline.model,
    image: ContainerImage.fromRegistry(`${IMAGE}@${DIGEST}`, kind === 'aws' ? { awsCredentialSecret: 'ecr-pullthroughcache/ghcr' }
      : kind === 'kubernetes' ? { imagePullSecrets: ['ghcr-pull'] } : {}),
    accelerator: 'L4', replicas: { min: 1, max: 8 }, rollout: Rollout.canary({ percent: 10 }),
  });
  new MonitoringStack(stack, 'ops', {
    target,
    // DESIGN §1's line, the same on every target.
    notify: [Notify.email('ml-oncall@example.com'), Notify.slack({ webhookSecret: 'ml-slack-webhook' })],
    kubernetes: kind === 'kubernetes' ? { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com', username: 'alerts', passwordSecret: { name: 'smtp', key: 'password' } } } : undefined,
  }).watch(cluster).watch(pipeline, { maxAge: Duration.hours(26) }).watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  Policy.apply(app, { reporter: () => undefined });
  app.synth();
  const text = readFileSync(join(outdir, 'stacks', 'ml-platform', 'cdk.tf.json'), 'utf8');
  return { json: JSON.parse(text), text, findings: Policy.findingsOf(app), outdir };
}

const out = {} as Record<Kind, ReturnType<typeof program>>;
const get = (k: Kind) => (out[k] ??= program(k));
const res = (json: TerraformJson, type: string) => Object.values(json.resource?.[type] ?? {}) as Record<string, any>[];

describe('one program, any target', () => {
  test.each<Kind>(['aws', 'gcp', 'kubernetes'])('%s: synthesizes with zero policy findings and no secret value', (kind) => {
    const { findings, text } = get(kind);
    expect((findings as { suppressed?: unknown }[]).filter((f) => !f.suppressed)).toEqual([]);
    for (const shape of SECRET_SHAPES) expect(text).not.toMatch(shape);
    // Nor in anything else written beside the stack (manifest, plans; function sources are zipped).
    const files = (readdirSync(get(kind).outdir, { recursive: true }) as string[]).map((f) => join(get(kind).outdir, f))
      .filter((f) => !f.endsWith('.zip') && statSync(f).isFile());
    expect(files.length).toBeGreaterThan(1);
    for (const f of files) for (const shape of SECRET_SHAPES) expect(readFileSync(f, 'utf8')).not.toMatch(shape);
    // Secrets appear by name only.
    expect(text).toContain('ml-slack-webhook');
  });

  test('aws: one ECR pull-through cache rule for ghcr.io with the named credential, and SageMaker serves the mirrored URI with the digest', () => {
    const { json } = get('aws');
    const rules = res(json, 'aws_ecr_pull_through_cache_rule');
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ upstream_registry_url: 'ghcr.io', ecr_repository_prefix: expect.stringMatching(/^ml-ghcr-[0-9a-f]{6}$/) });
    expect(rules[0].credential_arn).toMatch(/^\$\{data\.aws_secretsmanager_secret\..+\.arn\}$/);
    expect(Object.values(json.data?.aws_secretsmanager_secret ?? {})).toEqual([expect.objectContaining({ name: 'ecr-pullthroughcache/ghcr' })]);
    const model = res(json, 'aws_sagemaker_model')[0];
    // The registry id comes from a first pull through the rule (a cold cache never meets CreateModel).
    expect(model.primary_container.image).toMatch(new RegExp(`^\\$\\{jsondecode\\(aws_lambda_invocation\\.[^.]+\\.result\\)\\.registryId\\}\\.dkr\\.ecr\\.us-east-1\\.amazonaws\\.com/ml-ghcr-[0-9a-f]{6}/acme/ltv-server:2\\.0@${DIGEST}$`));
    expect(res(json, 'aws_lambda_invocation')).toHaveLength(1);
    // The execution role may import into exactly that cache repository.
    const docs = Object.values(json.data?.aws_iam_policy_document ?? {}) as Record<string, any>[];
    const ptc = docs.flatMap((d) => d.statement ?? []).find((s: any) => s.sid === 'PullThroughCache');
    expect(ptc.actions).toEqual(['ecr:BatchImportUpstreamImage', 'ecr:CreateRepository']);
    expect(ptc.resources[0]).toMatch(/:repository\/ml-ghcr-[0-9a-f]{6}\/acme\/ltv-server$/);
  });

  test('aws: email through SNS, Slack through a delivery function that reads only the named secret', () => {
    const { json } = get('aws');
    const subs = res(json, 'aws_sns_topic_subscription');
    expect(subs.map((s) => s.protocol).sort()).toEqual(['email', 'lambda']);
    const fn = res(json, 'aws_lambda_function').find((f) => f.environment?.variables?.MLINFRA_TARGETS)!;
    expect(fn.runtime).toBe('nodejs22.x');
    expect(JSON.parse(fn.environment.variables.MLINFRA_TARGETS)).toEqual([{ kind: 'slack', secret: 'ml-slack-webhook' }]);
    expect(res(json, 'aws_lambda_permission')[0]).toMatchObject({ principal: 'sns.amazonaws.com', action: 'lambda:InvokeFunction' });
    // Failed deliveries alarm to the topic (the email subscribers hear of them).
    expect(res(json, 'aws_cloudwatch_metric_alarm').find((a) => a.namespace === 'AWS/Lambda')).toMatchObject({ metric_name: 'Errors', threshold: 0 });
    const docs = Object.values(json.data?.aws_iam_policy_document ?? {}) as Record<string, any>[];
    const read = docs.flatMap((d) => d.statement ?? []).find((s: any) => s.sid === 'ReadNotifySecrets');
    expect(read.actions).toEqual(['secretsmanager:GetSecretValue']);
    expect(read.resources).toEqual([expect.stringMatching(/:secret:ml-slack-webhook-\?{6}$/)]);
  });

  test('gcp: an Artifact Registry remote repository for ghcr.io, and Cloud Run pulls the rewritten URI with the digest', () => {
    const { json } = get('gcp');
    const repos = res(json, 'google_artifact_registry_repository').filter((r) => r.mode === 'REMOTE_REPOSITORY');
    expect(repos).toHaveLength(1);
    expect(repos[0]).toMatchObject({ format: 'DOCKER', location: 'us-central1', repository_id: expect.stringMatching(/^mlinfra-ghcr-[0-9a-f]{6}$/), remote_repository_config: { docker_repository: { custom_repository: { uri: 'https://ghcr.io' } } } });
    const svc = res(json, 'google_cloud_run_v2_service')[0];
    expect(svc.template.containers[0].image).toMatch(new RegExp(`-docker\\.pkg\\.dev/\\$\\{google_artifact_registry_repository\\..+\\.project\\}/\\$\\{google_artifact_registry_repository\\..+\\.repository_id\\}/acme/ltv-server:2\\.0@${DIGEST}$`));
  });

  test('gcp: an email channel, and Slack through a Pub/Sub channel to a delivery function that reads only the webhook secret', () => {
    const { json } = get('gcp');
    const channels = res(json, 'google_monitoring_notification_channel');
    expect(channels.map((c) => c.type).sort()).toEqual(['email', 'pubsub']);
    expect(channels.find((c) => c.type === 'email')!.labels).toEqual({ email_address: 'ml-oncall@example.com' });
    const fn = res(json, 'google_cloudfunctions2_function')[0];
    expect(fn.build_config.runtime).toBe('nodejs22');
    expect(JSON.parse(fn.service_config.environment_variables.MLINFRA_TARGETS)).toEqual([{ kind: 'slack', secret: 'ml-slack-webhook' }]);
    const fnSa = `serviceAccount:${fn.service_config.service_account_email}`;
    expect(res(json, 'google_secret_manager_secret_iam_member').filter((m) => m.member === fnSa).map((m) => [m.secret_id, m.role]))
      .toEqual([['ml-slack-webhook', 'roles/secretmanager.secretAccessor']]);
    // The webhook URL is read by the function at run time: no data source puts it in the state.
    expect(json.data?.google_secret_manager_secret_version).toBeUndefined();
    expect(res(json, 'google_pubsub_topic_iam_member')[0].member).toMatch(/@gcp-sa-monitoring-notification\.iam\.gserviceaccount\.com$/);
  });

  test('kubernetes: the image as is with imagePullSecrets', () => {
    const { json } = get('kubernetes');
    const deployments = res(json, 'kubernetes_deployment_v1').filter((d) => d.spec.template.spec.container[0].name === 'server');
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) {
      expect(d.spec.template.spec.container[0].image).toBe(`${IMAGE}@${DIGEST}`);
      expect(d.spec.template.spec.image_pull_secrets).toEqual([{ name: 'ghcr-pull' }]);
    }
  });

  test('kubernetes: native receivers read every credential from mounted Secrets', () => {
    const { json } = get('kubernetes');
    const cm = res(json, 'kubernetes_config_map_v1').find((c) => c.data?.['alertmanager.yml']);
    const yml: string = cm!.data['alertmanager.yml'];
    expect(yml).toContain('email_configs:');
    expect(yml).toMatch(/slack_configs:\n\s+- api_url_file: \/etc\/alertmanager-secrets\/notify-secret-0\/url\n/);
    const am = res(json, 'kubernetes_deployment_v1').find((d) => d.spec.template.spec.container[0].name === 'alertmanager')!;
    const volumes = am.spec.template.spec.volume;
    expect(volumes).toEqual(expect.arrayContaining([
      { name: 'notify-secret-0', secret: { secret_name: 'ml-slack-webhook', items: [{ key: 'url', path: 'url' }], default_mode: '0440' } },
    ]));
    expect(am.spec.template.spec.container[0].volume_mount).toEqual(expect.arrayContaining([
      { name: 'notify-secret-0', mount_path: '/etc/alertmanager-secrets/notify-secret-0', read_only: true }]));
  });

  test('the same program fails at synth with an upstream no target can mirror, naming the supported ones', () => {
    const stack = new TerraformStack(Testing.app(), 'x');
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    expect(() => new ModelEndpoint(stack, 'api', { target: aws, model: 's3://ml-models/ltv/v1', image: ContainerImage.fromRegistry('nvcr.io/nvidia/tritonserver:24.01-py3'), replicas: { min: 1, max: 2 } }))
      .toThrow(/nvcr\.io.*ghcr\.io, quay\.io, public\.ecr\.aws, registry\.k8s\.io/);
  });

  test('kubernetes: email without an SMTP relay is an error naming the other destinations', () => {
    const stack = new TerraformStack(Testing.app(), 'x');
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
    expect(() => new MonitoringStack(stack, 'ops', { target: k8s, notify: [Notify.email('a@example.com'), Notify.slack({ webhookSecret: 's' })] }))
      .toThrow(/kubernetes\.smtp.*Notify\.slack.*Notify\.pagerDuty.*Notify\.webhook/);
  });
});

describeWithTools([TOOLS.amtool])('kubernetes Alertmanager config', () => {
  test('amtool check-config passes on the rendered config', () => {
    const { json } = get('kubernetes');
    const cm = res(json, 'kubernetes_config_map_v1').find((c) => c.data?.['alertmanager.yml']);
    const dir = mkdtempSync(join(tmpdir(), 'amtool-'));
    writeFileSync(join(dir, 'alertmanager.yml'), cm!.data['alertmanager.yml']);
    const result = execFileSync('/usr/bin/amtool', ['check-config', join(dir, 'alertmanager.yml')], { encoding: 'utf8' });
    expect(result).toMatch(/SUCCESS/);
    expect(result).toMatch(/1 receivers/);
  });

  test('amtool check-config passes with every destination kind, bearer-authenticated webhook included', () => {
    const notify = [Notify.webhook('https://hooks.example.com/alerts', { authSecret: 'hook-token' }), Notify.webhook('https://plain.example.com/a'),
      Notify.slack({ webhookSecret: { name: 'chat', key: 'slack-url' } }), Notify.pagerDuty({ routingKeySecret: 'chat' }), Notify.email('a@example.com')].map((n) => n.destination);
    const setup = alertmanagerSetup('x/ops', { emails: ['a@example.com'], webhooks: ['https://plain.example.com/a'], destinations: notify },
      { smarthost: 'smtp.example.com:587', from: 'alerts@example.com', requireTls: true });
    // One volume for the Secret both Slack and PagerDuty read, with both keys.
    expect(setup.volumes).toEqual([
      { name: 'notify-secret-0', secret: { secretName: 'hook-token', items: [{ key: 'token', path: 'token' }], defaultMode: '0440' } },
      { name: 'notify-secret-1', secret: { secretName: 'chat', items: [{ key: 'slack-url', path: 'slack-url' }, { key: 'routing-key', path: 'routing-key' }], defaultMode: '0440' } },
    ]);
    expect(setup.config).toContain('credentials_file: /etc/alertmanager-secrets/notify-secret-0/token');
    const dir = mkdtempSync(join(tmpdir(), 'amtool-'));
    writeFileSync(join(dir, 'alertmanager.yml'), setup.config);
    expect(execFileSync('/usr/bin/amtool', ['check-config', join(dir, 'alertmanager.yml')], { encoding: 'utf8' })).toMatch(/SUCCESS/);
  });
});

describe('the AWS delivery function', () => {
  test('is valid JavaScript and reads credentials only from Secrets Manager', () => {
    expect(DELIVERY_HANDLER).toContain('GetSecretValueCommand');
    expect(() => execFileSync(process.execPath, ['--check', '--input-type=module'], { input: DELIVERY_HANDLER })).not.toThrow();
  });

  test('delivers a CloudWatch alarm to Slack, PagerDuty and a webhook, with credentials read from the secret store', async () => {
    // The function as shipped, beside a stand-in for the SDK's Secrets Manager client (the Lambda
    // runtime provides the real one) that answers from a map; real HTTP to a local server.
    const dir = mkdtempSync(join(tmpdir(), 'delivery-'));
    writeFileSync(join(dir, 'index.mjs'), DELIVERY_HANDLER);
    const sdk = join(dir, 'node_modules', '@aws-sdk', 'client-secrets-manager');
    mkdirSync(sdk, { recursive: true });
    writeFileSync(join(sdk, 'package.json'), JSON.stringify({ name: '@aws-sdk/client-secrets-manager', type: 'module', main: 'index.js' }));
    writeFileSync(join(sdk, 'index.js'), `const values = JSON.parse(process.env.FAKE_SECRETS);
export class GetSecretValueCommand { constructor(input) { this.input = input; } }
export class SecretsManagerClient { async send(cmd) { const v = values[cmd.input.SecretId]; if (v === undefined) throw new Error('no secret ' + cmd.input.SecretId); return { SecretString: v }; } }`);
    const got: { path: string; auth?: string; body: any }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => { got.push({ path: req.url!, auth: req.headers.authorization, body: JSON.parse(body) }); res.end('ok'); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const targets = [{ kind: 'slack', secret: 'slack-url', channel: '#ml-alerts' }, { kind: 'pagerduty', secret: 'pd-key' }, { kind: 'webhook', url: `${base}/hook`, secret: 'hook-token' }];
      const alarm = { AlarmName: 'ops-p99', AlarmArn: 'arn:aws:cloudwatch:us-east-1:1:alarm:ops-p99', NewStateValue: 'ALARM', NewStateReason: 'p99 above 250 ms', AlarmDescription: 'ml-platform/ops: p99' };
      const event = { Records: [{ Sns: { Message: JSON.stringify(alarm) } }] };
      await execFileP(process.execPath, ['--input-type=module', '-e', `import { handler } from ${JSON.stringify(join(dir, 'index.mjs'))}; await handler(${JSON.stringify(event)});`], {
        cwd: dir,
        env: { ...process.env, MLINFRA_TARGETS: JSON.stringify(targets), PAGERDUTY_URL: `${base}/pd`, FAKE_SECRETS: JSON.stringify({ 'slack-url': `${base}/slack`, 'pd-key': 'R0UTINGKEY', 'hook-token': 'T0KEN' }) },
      });
      expect(got.map((g) => g.path)).toEqual(['/slack', '/pd', '/hook']);
      expect(got[0].body).toEqual({ text: expect.stringContaining('[ALARM] ops-p99'), channel: '#ml-alerts' });
      expect(got[1].body).toMatchObject({ routing_key: 'R0UTINGKEY', event_action: 'trigger', dedup_key: alarm.AlarmArn, payload: { severity: 'error' } });
      expect(got[2]).toMatchObject({ auth: 'Bearer T0KEN', body: alarm });
    } finally {
      server.close();
    }
  });

  test('is packaged as an asset beside the stack', () => {
    const { outdir, json } = get('aws');
    const fn = res(json, 'aws_lambda_function').find((f) => f.environment?.variables?.MLINFRA_TARGETS)!;
    expect(fn.filename).toMatch(/^assets\/.+\/archive\.zip$/);
    expect(readdirSync(join(outdir, 'stacks', 'ml-platform', 'assets')).length).toBeGreaterThan(0);
  });
});
