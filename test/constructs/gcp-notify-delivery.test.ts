// GCP alert delivery for what Cloud Monitoring cannot send itself (Slack by webhook, bearer webhooks):
// the resources and each GCP rule they rely on, and the function as shipped, run in a real Node
// process behind a Functions-Framework-like HTTP shim, against local stand-ins for the metadata
// server, Secret Manager's REST API, Slack and a webhook receiver.
import { TerraformStack, Testing } from 'cdktf';
import { ChildProcess, spawn } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { createServer, IncomingMessage, Server } from 'http';
import { AddressInfo } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { GcpTarget } from '../../src';
import { Notify } from '../../src/core/notify';
import { MonitoringStack } from '../../src/constructs/monitoring-stack';
import { GCP_DELIVERY_HANDLER } from '../../src/constructs/monitoring-stack/gcp-notify-delivery';
import { TerraformJson } from '../helpers';

function synth(notify: (Notify | string)[]): TerraformJson {
  const stack = new TerraformStack(Testing.app(), 'test');
  const target = new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
  new MonitoringStack(stack, 'ops', { target, notify });
  return JSON.parse(Testing.synth(stack));
}
const res = (json: TerraformJson, type: string) => Object.values(json.resource?.[type] ?? {}) as Record<string, any>[];
const ref = (json: TerraformJson, type: string, pred: (r: Record<string, any>) => boolean) => {
  const name = Object.entries(json.resource?.[type] ?? {}).find(([, r]) => pred(r as Record<string, any>))![0];
  return `${type}.${name}`;
};

describe('gcp: Slack by webhook and bearer webhooks go through a delivery function', () => {
  const json = synth([Notify.email('ml@example.com'), Notify.slack({ webhookSecret: 'ml-slack-webhook' }),
    Notify.webhook('https://hooks.example.com/a', { authSecret: 'hook-token' }), Notify.webhook('https://plain.example.com/b'), Notify.pagerDuty({ routingKeySecret: 'ml-pd' })]);
  const channels = res(json, 'google_monitoring_notification_channel');
  const fn = res(json, 'google_cloudfunctions2_function')[0];

  test('native channels for email, PagerDuty and the plain webhook; one pubsub channel for the rest', () => {
    expect(channels.map((c) => c.type).sort()).toEqual(['email', 'pagerduty', 'pubsub', 'webhook_tokenauth']);
    // The Slack webhook URL never goes to Cloud Monitoring: no Slack channel, no data source for it.
    expect(Object.values(json.data?.google_secret_manager_secret_version ?? {}).map((d: any) => d.secret)).toEqual(['ml-pd']);
  });

  test('the pubsub channel names its topic as projects/P/topics/T (the topic id)', () => {
    const pubsub = channels.find((c) => c.type === 'pubsub')!;
    expect(pubsub.labels).toEqual({ topic: `\${${ref(json, 'google_pubsub_topic', () => true)}.id}` });
  });

  test("Cloud Monitoring's notification service agent may publish to exactly that topic", () => {
    const [grant] = res(json, 'google_pubsub_topic_iam_member');
    expect(grant.role).toBe('roles/pubsub.publisher');
    expect(grant.topic).toBe(`\${${ref(json, 'google_pubsub_topic', () => true)}.name}`);
    expect(grant.member).toMatch(/^serviceAccount:service-\$\{data\.google_project\.[^}]+\.number\}@gcp-sa-monitoring-notification\.iam\.gserviceaccount\.com$/);
    // The agent appears with the project's first pubsub channel: the grant waits for it.
    expect(grant.depends_on).toContain(ref(json, 'google_monitoring_notification_channel', (c) => c.type === 'pubsub'));
  });

  test('the function runs Node.js 22 from a zipped source object, as its own service account, with names and URLs only', () => {
    expect(fn.build_config).toMatchObject({ runtime: 'nodejs22', entry_point: 'deliver' });
    expect(fn.build_config.source.storage_source.object).toMatch(/^\$\{google_storage_bucket_object\./);
    const object = res(json, 'google_storage_bucket_object')[0];
    expect(object.source).toMatch(/^assets\/.+\/archive\.zip$/);
    expect(fn.service_config.service_account_email).toBe(`\${${ref(json, 'google_service_account', (s) => /notify-fn/.test(s.account_id))}.email}`);
    expect(JSON.parse(fn.service_config.environment_variables.MLINFRA_TARGETS)).toEqual([
      { kind: 'slack', secret: 'ml-slack-webhook' }, { kind: 'webhook', url: 'https://hooks.example.com/a', secret: 'hook-token' }]);
    expect(fn.service_config.environment_variables.MLINFRA_PROJECT).toBe('ml-platform-prod');
    // Cloud Run service names (a gen2 function's service shares its name) are at most 49 characters.
    expect(fn.name).toMatch(/^[a-z][a-z0-9-]{0,47}[a-z0-9]$/);
  });

  test('the function reads exactly the named secrets and nothing else', () => {
    const access = res(json, 'google_secret_manager_secret_iam_member');
    expect(access.map((a) => a.secret_id).sort()).toEqual(['hook-token', 'ml-slack-webhook']);
    for (const a of access) {
      expect(a).toMatchObject({ role: 'roles/secretmanager.secretAccessor', member: `serviceAccount:\${${ref(json, 'google_service_account', (s) => /notify-fn/.test(s.account_id))}.email}` });
    }
    // The only project-level grant: build logs, to the build identity.
    expect(res(json, 'google_project_iam_member').map((m) => [m.role, m.member])).toEqual([['roles/logging.logWriter', `serviceAccount:\${${ref(json, 'google_service_account', (s) => /notify-build/.test(s.account_id))}.email}`]]);
  });

  test('the function is built by its own identity into its own image repository, reading only its source bucket', () => {
    const buildSa = ref(json, 'google_service_account', (s) => /notify-build/.test(s.account_id));
    const repo = ref(json, 'google_artifact_registry_repository', () => true);
    expect(fn.build_config).toMatchObject({ service_account: `\${${buildSa}.id}`, docker_repository: `\${${repo}.id}` });
    expect(res(json, 'google_artifact_registry_repository_iam_member')).toEqual([expect.objectContaining({ repository: `\${${repo}.name}`, role: 'roles/artifactregistry.writer', member: `serviceAccount:\${${buildSa}.email}` })]);
    expect(res(json, 'google_storage_bucket_iam_member')).toEqual([expect.objectContaining({ bucket: `\${${ref(json, 'google_storage_bucket', () => true)}.name}`, role: 'roles/storage.objectViewer', member: `serviceAccount:\${${buildSa}.email}` })]);
    expect(res(json, 'google_artifact_registry_repository')[0]).toMatchObject({ format: 'DOCKER', location: 'us-central1' });
  });

  test('a push subscription with an OIDC token of its own identity, which alone may invoke the function', () => {
    const [sub] = res(json, 'google_pubsub_subscription');
    const pushSa = ref(json, 'google_service_account', (s) => /notify-push/.test(s.account_id));
    expect(sub.push_config).toEqual({ push_endpoint: `\${${ref(json, 'google_cloudfunctions2_function', () => true)}.service_config[0].uri}`, oidc_token: { service_account_email: `\${${pushSa}.email}` } });
    expect(sub.expiration_policy).toEqual({ ttl: '' });
    const [invoker] = res(json, 'google_cloud_run_v2_service_iam_member');
    expect(invoker).toMatchObject({ role: 'roles/run.invoker', member: `serviceAccount:\${${pushSa}.email}`, name: `\${${ref(json, 'google_cloudfunctions2_function', () => true)}.service_config[0].service}` });
    const [creator] = res(json, 'google_service_account_iam_member');
    expect(creator).toMatchObject({ role: 'roles/iam.serviceAccountTokenCreator', service_account_id: `\${${pushSa}.name}` });
    expect(creator.member).toMatch(/^serviceAccount:service-\$\{data\.google_project\.[^}]+\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/);
    expect(res(json, 'google_cloudfunctions2_function_iam_member')).toEqual([]);
  });

  test('service account ids fit IAM (6-30, a letter first), Pub/Sub names fit theirs, and the source bucket is private', () => {
    for (const sa of res(json, 'google_service_account')) expect(sa.account_id).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
    // Artifact Registry repository ids: a letter first, lower-case letters, digits and -, at most 63.
    expect(res(json, 'google_artifact_registry_repository')[0].repository_id).toMatch(/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/);
    const bucket = res(json, 'google_storage_bucket')[0];
    expect(bucket).toMatchObject({ uniform_bucket_level_access: true, public_access_prevention: 'enforced' });
    expect(bucket.name.length).toBeLessThanOrEqual(63);
    // Pub/Sub names: 3-255, a letter first, [A-Za-z0-9-_.~+%], not starting with goog (resource-name-rules).
    for (const r of [...res(json, 'google_pubsub_topic'), ...res(json, 'google_pubsub_subscription')]) {
      expect(r.name).toMatch(/^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/);
    }
  });

  test('failed deliveries alert the other channels from the function log', () => {
    const policy = res(json, 'google_monitoring_alert_policy').find((p) => /delivery failed/.test(p.display_name))!;
    expect(policy.conditions[0].condition_matched_log.filter).toContain('textPayload:"mlinfra-notify:"');
    expect(policy.notification_channels).toHaveLength(4);
    expect(policy.alert_strategy.notification_rate_limit).toEqual({ period: '3600s' });
  });

  test('only native destinations create no function', () => {
    const j = synth(['ml@example.com', Notify.slack({ webhookSecret: 'w', channel: '#ml', gcpAuthTokenSecret: 'bot' })]);
    expect(res(j, 'google_cloudfunctions2_function')).toEqual([]);
    expect(res(j, 'google_monitoring_notification_channel').map((c) => c.type).sort()).toEqual(['email', 'slack']);
  });
});

// ---- the function as shipped, against local servers

interface Got { path: string; headers: IncomingMessage['headers']; body: string }

async function listen(handler: (req: IncomingMessage, body: string) => [number, unknown]): Promise<{ server: Server; base: string; got: Got[] }> {
  const got: Got[] = [];
  const server = createServer((req, resp) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ path: req.url!, headers: req.headers, body });
      const [status, out] = handler(req, body);
      resp.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

// What the Functions Framework does for an HTTP function: parse the JSON body, give express-like req/res.
const SHIM = `const http = require('http');
const { deliver } = require(process.argv[2]);
const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => (raw += c));
  req.on('end', () => {
    const r = { status(code) { res.statusCode = code; return r; }, send(b) { res.end(b); } };
    let body = raw;
    try { body = JSON.parse(raw); } catch {}
    deliver({ body, headers: req.headers }, r);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));`;

describe('the GCP delivery function', () => {
  const SECRETS: Record<string, string> = {};
  let cloud: Awaited<ReturnType<typeof listen>>;
  let receiver: Awaited<ReturnType<typeof listen>>;
  let fn: ChildProcess;
  let fnUrl: string;
  let failWebhook = false;
  let log = '';

  beforeAll(async () => {
    // Metadata server and Secret Manager on one local server.
    cloud = await listen((req) => {
      if (req.url === '/computeMetadata/v1/instance/service-accounts/default/token') {
        return req.headers['metadata-flavor'] === 'Google' ? [200, { access_token: 'ya29.local', expires_in: 3599, token_type: 'Bearer' }] : [403, {}];
      }
      const m = /^\/v1\/projects\/ml-platform-prod\/secrets\/([^/]+)\/versions\/latest:access$/.exec(req.url!);
      if (!m || req.headers.authorization !== 'Bearer ya29.local') return [403, { error: { code: 403 } }];
      const v = SECRETS[decodeURIComponent(m[1])];
      return v === undefined ? [404, { error: { code: 404 } }] : [200, { name: `projects/1/secrets/${m[1]}/versions/1`, payload: { data: Buffer.from(`${v}\n`).toString('base64') } }];
    });
    receiver = await listen((req) => (failWebhook && req.url === '/hook' ? [503, {}] : [200, { ok: true }]));
    SECRETS['ml-slack-webhook'] = `${receiver.base}/slack/T000/B000/XXXX`;
    SECRETS['hook-token'] = 'T0KEN-not-in-any-output';
    const dir = mkdtempSync(join(tmpdir(), 'gcp-delivery-'));
    writeFileSync(join(dir, 'index.js'), GCP_DELIVERY_HANDLER);
    writeFileSync(join(dir, 'shim.js'), SHIM);
    fn = spawn(process.execPath, [join(dir, 'shim.js'), join(dir, 'index.js')], {
      env: {
        ...process.env, MLINFRA_PROJECT: 'ml-platform-prod', MLINFRA_METADATA_URL: cloud.base, MLINFRA_SECRETMANAGER_URL: cloud.base,
        MLINFRA_TARGETS: JSON.stringify([{ kind: 'slack', secret: 'ml-slack-webhook', channel: '#ml-alerts' }, { kind: 'webhook', url: `${receiver.base}/hook`, secret: 'hook-token' }]),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    fn.stderr!.on('data', (d) => (log += String(d)));
    const port = await new Promise<string>((resolve, reject) => {
      fn.stdout!.once('data', (d) => resolve(String(d).trim()));
      fn.once('exit', (code) => reject(new Error(`function shim exited ${code}`)));
    });
    fnUrl = `http://127.0.0.1:${port}/`;
  });
  afterAll(async () => {
    fn?.kill('SIGTERM');
    cloud?.server.close();
    receiver?.server.close();
  });

  // What Cloud Monitoring publishes (notification schema 1.2), as Pub/Sub pushes it.
  const notification = {
    version: '1.2',
    incident: {
      incident_id: '0.abc', scoping_project_id: 'ml-platform-prod', state: 'open', started_at: 1764500000,
      policy_name: 'ml-platform/ops/ltv-api: p99-latency', condition_name: 'p99 latency above 250 ms',
      summary: 'p99 latency for ltv-api is above the threshold of 250 ms', url: 'https://console.cloud.google.com/monitoring/alerting/incidents/0.abc',
    },
  };
  const push = (n: unknown) => ({
    message: { data: Buffer.from(JSON.stringify(n)).toString('base64'), attributes: {}, messageId: '1', publishTime: '2026-11-30T15:00:00Z' },
    subscription: 'projects/ml-platform-prod/subscriptions/ops-alerts-push',
  });
  const send = (body: unknown) => fetch(fnUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('posts a Slack text body to the webhook URL read from Secret Manager, and the incident to the webhook with the bearer token', async () => {
    receiver.got.length = 0;
    const answer = await send(push(notification));
    expect(answer.status).toBe(204);
    expect(receiver.got.map((g) => g.path)).toEqual(['/slack/T000/B000/XXXX', '/hook']);
    const slack = JSON.parse(receiver.got[0].body);
    expect(slack).toEqual({ text: expect.stringMatching(/^\[OPEN\] ml-platform\/ops\/ltv-api: p99-latency \/ p99 latency above 250 ms: p99 latency .* https:\/\/console/), channel: '#ml-alerts' });
    expect(receiver.got[0].headers.authorization).toBeUndefined();
    expect(receiver.got[1].headers.authorization).toBe('Bearer T0KEN-not-in-any-output');
    expect(JSON.parse(receiver.got[1].body)).toEqual(notification);
    // Secret Manager was asked with the function's own token, for exactly the two secrets.
    const reads = cloud.got.filter((g) => g.path.startsWith('/v1/')).map((g) => g.path);
    expect(reads.sort()).toEqual(['/v1/projects/ml-platform-prod/secrets/hook-token/versions/latest:access', '/v1/projects/ml-platform-prod/secrets/ml-slack-webhook/versions/latest:access']);
  });

  test('a closed incident says so', async () => {
    receiver.got.length = 0;
    expect((await send(push({ ...notification, incident: { ...notification.incident, state: 'closed' } }))).status).toBe(204);
    expect(JSON.parse(receiver.got[0].body).text).toMatch(/^\[CLOSED\] /);
  });

  test('a failed destination answers 500 so Pub/Sub redelivers, naming the host only', async () => {
    failWebhook = true;
    try {
      const answer = await send(push(notification));
      expect(answer.status).toBe(500);
      expect(await answer.text()).toBe('delivery failed');
      expect(log).toMatch(/mlinfra-notify: delivery failed: webhook: POST to 127\.0\.0\.1:\d+ answered 503/);
      expect(log).not.toContain('T0KEN');
    } finally {
      failWebhook = false;
    }
  });

  test('a message that is not a Cloud Monitoring notification is acknowledged and dropped', async () => {
    receiver.got.length = 0;
    expect((await send({ message: { data: Buffer.from('not json').toString('base64') } })).status).toBe(204);
    expect((await send({ hello: 'world' })).status).toBe(204);
    expect(receiver.got).toEqual([]);
  });
});
