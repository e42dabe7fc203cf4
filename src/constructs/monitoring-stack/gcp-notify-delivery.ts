/**
 * MonitoringStack on GCP, destinations Cloud Monitoring cannot reach with its own channel types: Slack
 * through an incoming webhook (Cloud Monitoring's Slack channel needs a bot token and a channel) and
 * webhooks with a bearer token (its webhook channels send none). Alerts go to a Pub/Sub notification
 * channel; a push subscription hands each message to a small Cloud Run function (gen2, Node.js 22)
 * that reads each credential from Secret Manager at run time and POSTs the alert. The same shape as
 * the AWS delivery Lambda: nothing secret in the synthesized JSON or the function's environment.
 * Sources:
 * - Pub/Sub channel: type `pubsub`, label `topic` = projects/P/topics/T; Cloud Monitoring publishes as
 *   service-<project number>@gcp-sa-monitoring-notification.iam.gserviceaccount.com, which needs
 *   roles/pubsub.publisher on the topic (https://cloud.google.com/monitoring/support/notification-options#pubsub);
 *   the message data is the notification JSON (schema 1.2: { incident: {...}, version }).
 * - Direct Pub/Sub trigger: a push subscription to the function's URL with an OIDC token; the push
 *   identity needs roles/run.invoker on the function's Cloud Run service
 *   (https://cloud.google.com/run/docs/triggering/pubsub-triggers,
 *   https://cloud.google.com/functions/docs/securing/authenticating), and the Pub/Sub service agent
 *   needs roles/iam.serviceAccountTokenCreator on it in projects created before 2021-04-08
 *   (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
 * - Secret Manager REST: GET v1/projects/P/secrets/S/versions/latest:access with the function's own
 *   token from the metadata server; roles/secretmanager.secretAccessor on exactly that secret.
 */
import { AssetType, Fn, TerraformAsset, Token } from 'cdktf';
import { Construct } from 'constructs';
import { createHash } from 'crypto';
import { existsSync, mkdirSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ArtifactRegistryRepository } from '@cdktf/provider-google/lib/artifact-registry-repository';
import { ArtifactRegistryRepositoryIamMember } from '@cdktf/provider-google/lib/artifact-registry-repository-iam-member';
import { CloudRunV2ServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-service-iam-member';
import { Cloudfunctions2Function } from '@cdktf/provider-google/lib/cloudfunctions2-function';
import { DataGoogleProject } from '@cdktf/provider-google/lib/data-google-project';
import { MonitoringNotificationChannel } from '@cdktf/provider-google/lib/monitoring-notification-channel';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member';
import { PubsubSubscription } from '@cdktf/provider-google/lib/pubsub-subscription';
import { PubsubTopic } from '@cdktf/provider-google/lib/pubsub-topic';
import { PubsubTopicIamMember } from '@cdktf/provider-google/lib/pubsub-topic-iam-member';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { ServiceAccountIamMember } from '@cdktf/provider-google/lib/service-account-iam-member';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object';
import { resourceName, shortHash } from '../../core/naming';
import { GcpTarget } from '../../core/targets';

/** What the function is told: kinds, secret ids and plain URLs. Never a secret value. */
export interface GcpDeliveryTarget {
  readonly kind: 'slack' | 'webhook';
  /** Secret Manager secret id (latest version) holding the Slack webhook URL or the bearer token. */
  readonly secret?: string;
  readonly url?: string;
  readonly channel?: string;
}

/** Cloud Run functions runtime id (https://cloud.google.com/functions/docs/runtime-support: nodejs22). */
export const GCP_DELIVERY_RUNTIME = 'nodejs22';
/** The exported function the runtime calls. */
export const GCP_DELIVERY_ENTRY_POINT = 'deliver';

/**
 * The delivery function (CommonJS, no dependencies: global fetch, the metadata server and the Secret
 * Manager REST API). An HTTP function: the Functions Framework the runtime adds parses the JSON body
 * into `req.body`. Exported for the tests that run it against local servers.
 */
export const GCP_DELIVERY_HANDLER = `// mlinfra alert delivery on GCP: Cloud Monitoring -> Pub/Sub push -> Slack and webhooks.
'use strict';
// a named error: the function's log and Pub/Sub's retry say which step failed
class DeliveryError extends Error {
  constructor(message) { super(message); this.name = 'DeliveryError'; }
}

const TTL_MS = 5 * 60 * 1000;
const secrets = new Map();
let token;

async function accessToken() {
  if (token && token.until > Date.now()) return token.value;
  const base = process.env.MLINFRA_METADATA_URL || 'http://metadata.google.internal';
  const res = await fetch(base + '/computeMetadata/v1/instance/service-accounts/default/token', { headers: { 'Metadata-Flavor': 'Google' }, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new DeliveryError('the metadata server answered ' + res.status);
  const body = await res.json();
  token = { value: body.access_token, until: Date.now() + Math.max(0, Number(body.expires_in || 0) - 60) * 1000 };
  return token.value;
}

async function secret(name) {
  const hit = secrets.get(name);
  if (hit && hit.at > Date.now() - TTL_MS) return hit.value;
  const base = process.env.MLINFRA_SECRETMANAGER_URL || 'https://secretmanager.googleapis.com';
  const url = base + '/v1/projects/' + encodeURIComponent(process.env.MLINFRA_PROJECT) + '/secrets/' + encodeURIComponent(name) + '/versions/latest:access';
  const res = await fetch(url, { headers: { authorization: 'Bearer ' + await accessToken() }, signal: AbortSignal.timeout(10000) });
  if (!res.ok) throw new DeliveryError('reading secret ' + name + ' answered ' + res.status);
  const body = await res.json();
  const value = Buffer.from((body.payload && body.payload.data) || '', 'base64').toString('utf8').trim();
  if (!value) throw new DeliveryError('secret ' + name + ' is empty');
  secrets.set(name, { value, at: Date.now() });
  return value;
}

async function post(url, body, headers) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  if (!res.ok) throw new DeliveryError('POST to ' + new URL(url).host + ' answered ' + res.status);
}

// A Pub/Sub push body: { message: { data: base64(notification JSON), attributes, messageId }, subscription }.
function parse(body) {
  if (typeof body === 'string' || Buffer.isBuffer(body)) body = JSON.parse(body.toString());
  const data = body && body.message && body.message.data;
  if (typeof data !== 'string') throw new DeliveryError('no message.data');
  const n = JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
  if (!n || typeof n.incident !== 'object') throw new DeliveryError('no incident in the message');
  return n;
}

function summary(n) {
  const i = n.incident;
  return '[' + String(i.state || 'open').toUpperCase() + '] ' + (i.policy_name || 'alert') + (i.condition_name ? ' / ' + i.condition_name : '')
    + ': ' + (i.summary || '') + (i.url ? ' ' + i.url : '');
}

async function deliverAll(targets, notification) {
  const text = summary(notification);
  const failures = [];
  for (const t of targets) {
    try {
      if (t.kind === 'slack') await post(await secret(t.secret), { text, ...(t.channel ? { channel: t.channel } : {}) }, {});
      else await post(t.url, notification, t.secret ? { authorization: 'Bearer ' + await secret(t.secret) } : {});
    } catch (err) {
      failures.push(t.kind + ': ' + err.message);
    }
  }
  if (failures.length) throw new DeliveryError('delivery failed: ' + failures.join('; '));
}

exports.deliver = async (req, res) => {
  let notification;
  try {
    notification = parse(req.body);
  } catch (err) {
    // Redelivery cannot fix a malformed message: acknowledge it and say so in the log.
    console.error('mlinfra-notify: dropped a message that is not a Cloud Monitoring notification: ' + err.message);
    res.status(204).send('');
    return;
  }
  try {
    await deliverAll(JSON.parse(process.env.MLINFRA_TARGETS || '[]'), notification);
    res.status(204).send('');
  } catch (err) {
    console.error('mlinfra-notify: ' + err.message);
    // Any other answer than 2xx makes Pub/Sub redeliver with the subscription's backoff.
    res.status(500).send('delivery failed');
  }
};
`;

export interface GcpNotifyDeliveryResources {
  readonly topic: PubsubTopic;
  /** The `pubsub` notification channel alert policies send to. */
  readonly channel: MonitoringNotificationChannel;
  readonly monitoringPublisher: PubsubTopicIamMember;
  readonly function: Cloudfunctions2Function;
  readonly functionServiceAccount: ServiceAccount;
  readonly secretAccess: readonly SecretManagerSecretIamMember[];
  readonly pushServiceAccount: ServiceAccount;
  readonly subscription: PubsubSubscription;
  readonly sourceBucket: StorageBucket;
  /** Builds the function: reads the source, writes the image to `imageRepository`, writes build logs. */
  readonly buildServiceAccount: ServiceAccount;
  readonly imageRepository: ArtifactRegistryRepository;
}

/** A GCP id from a construct path: lower-case, starting with a letter, at most `max` characters. */
function gcpId(scope: Construct, suffix: string, max: number): string {
  const n = resourceName(scope, { maxLength: max, suffix });
  return /^[a-z]/.test(n) ? n : `m${n.slice(1)}`;
}

/** The handler's directory, written once per content (the asset hash is of the content: synth stays deterministic). */
function handlerDir(): string {
  const dir = join(tmpdir(), `mlinfra-gcp-notify-${createHash('sha256').update(GCP_DELIVERY_HANDLER).digest('hex').slice(0, 16)}`);
  if (!existsSync(join(dir, 'index.js'))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), GCP_DELIVERY_HANDLER);
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'mlinfra-notify-delivery', version: '1.0.0', private: true, main: 'index.js', engines: { node: '>=22' } }, null, 2)}\n`);
  }
  return dir;
}

/** The Cloud Monitoring notification service agent, which publishes to Pub/Sub channels. */
export const monitoringNotificationAgent = (projectNumber: string) => `serviceAccount:service-${projectNumber}@gcp-sa-monitoring-notification.iam.gserviceaccount.com`;
/** The Pub/Sub service agent, which mints the push subscription's OIDC tokens. */
export const pubsubAgent = (projectNumber: string) => `serviceAccount:service-${projectNumber}@gcp-sa-pubsub.iam.gserviceaccount.com`;

export function buildGcpNotifyDelivery(ns: Construct, target: GcpTarget, targets: readonly GcpDeliveryTarget[]): GcpNotifyDeliveryResources {
  const provider = target.provider;
  const project = target.project;
  const region = target.region;
  const owner = ns.node.scope ?? ns;
  const scope = new Construct(ns, 'delivery');
  target.requireApis('pubsub.googleapis.com', 'cloudfunctions.googleapis.com', 'run.googleapis.com', 'cloudbuild.googleapis.com',
    'artifactregistry.googleapis.com', 'storage.googleapis.com', 'iam.googleapis.com', 'secretmanager.googleapis.com', 'cloudresourcemanager.googleapis.com');

  const projectData = new DataGoogleProject(scope, 'project', { provider, projectId: project });
  const topic = new PubsubTopic(scope, 'topic', { provider, project, name: gcpId(owner, 'alerts', 100), messageRetentionDuration: '86400s' });
  const channel = new MonitoringNotificationChannel(scope, 'channel', {
    provider, project, type: 'pubsub', displayName: `mlinfra ${ns.node.path} delivery`, labels: { topic: topic.id },
  });
  // The agent exists once the project has a Pub/Sub channel: grant after the channel.
  const monitoringPublisher = new PubsubTopicIamMember(scope, 'monitoring-publisher', {
    provider, project, topic: topic.name, role: 'roles/pubsub.publisher', member: monitoringNotificationAgent(projectData.number), dependsOn: [channel],
  });

  // Its own identity, reading only the named secrets.
  const functionServiceAccount = new ServiceAccount(scope, 'function-sa', {
    provider, project, accountId: gcpId(owner, 'notify-fn', 30), displayName: `${ns.node.path}: alert delivery function`.slice(0, 100),
  });
  const secretIds = [...new Set(targets.flatMap((t) => (t.secret ? [t.secret] : [])))];
  const secretAccess = secretIds.map((secretId, i) => new SecretManagerSecretIamMember(scope, `secret-access-${i}`, {
    provider, project, secretId, role: 'roles/secretmanager.secretAccessor', member: `serviceAccount:${functionServiceAccount.email}`,
  }));

  // The source archive, in a bucket of its own (names are global: the project goes into the hash).
  const hash = Token.isUnresolved(project) ? Fn.substr(Fn.sha256(`${project}/${ns.node.path}`), 0, 8) : shortHash(`${project}/${ns.node.path}`);
  const sourceBucket = new StorageBucket(scope, 'source', {
    provider, project, name: `${gcpId(owner, '', 40)}-${hash}-notify`, location: region, forceDestroy: true,
    uniformBucketLevelAccess: true, publicAccessPrevention: 'enforced',
  });
  const code = new TerraformAsset(scope, 'code', { path: handlerDir(), type: AssetType.ARCHIVE });
  const object = new StorageBucketObject(scope, 'source-object', { provider, bucket: sourceBucket.name, name: `notify-delivery/${code.assetHash}.zip`, source: code.path });

  // A build identity of its own: since July 2024 new projects build with the Compute Engine default
  // service account, which may hold no roles. Its roles per "Custom service account for Cloud Build"
  // (https://cloud.google.com/functions/docs/securing/build-custom-sa): logs writer, Artifact Registry
  // writer (on our own repository, given as docker_repository), object viewer on the source bucket.
  const buildServiceAccount = new ServiceAccount(scope, 'build-sa', {
    provider, project, accountId: gcpId(owner, 'notify-build', 30), displayName: `${ns.node.path}: alert function build`.slice(0, 100),
  });
  const buildMember = `serviceAccount:${buildServiceAccount.email}`;
  const imageRepository = new ArtifactRegistryRepository(scope, 'images', {
    provider, project, location: region, repositoryId: gcpId(owner, 'notify-images', 63), format: 'DOCKER',
    description: `${ns.node.path}: the alert delivery function's build images`,
  });
  const buildGrants = [
    new ProjectIamMember(scope, 'build-logs', { provider, project, role: 'roles/logging.logWriter', member: buildMember }),
    new ArtifactRegistryRepositoryIamMember(scope, 'build-images', {
      provider, project, location: region, repository: imageRepository.name, role: 'roles/artifactregistry.writer', member: buildMember,
    }),
    new StorageBucketIamMember(scope, 'build-source', { provider, bucket: sourceBucket.name, role: 'roles/storage.objectViewer', member: buildMember }),
  ];

  const fn = new Cloudfunctions2Function(scope, 'function', {
    provider, project, location: region, name: gcpId(owner, 'notify', 49),
    description: `${ns.node.path}: delivers alerts to Slack and webhooks`.slice(0, 1000),
    buildConfig: {
      runtime: GCP_DELIVERY_RUNTIME, entryPoint: GCP_DELIVERY_ENTRY_POINT, source: { storageSource: { bucket: sourceBucket.name, object: object.name } },
      serviceAccount: buildServiceAccount.id, dockerRepository: imageRepository.id,
    },
    serviceConfig: {
      serviceAccountEmail: functionServiceAccount.email, availableMemory: '256M', timeoutSeconds: 60, maxInstanceCount: 3,
      allTrafficOnLatestRevision: true,
      // Pub/Sub pushes to the function's URL; IAM (run.invoker for the push identity only) is the guard.
      ingressSettings: 'ALLOW_ALL',
      environmentVariables: { MLINFRA_TARGETS: JSON.stringify(targets), MLINFRA_PROJECT: project },
    },
    dependsOn: [...secretAccess, ...buildGrants],
  });

  const pushServiceAccount = new ServiceAccount(scope, 'push-sa', {
    provider, project, accountId: gcpId(owner, 'notify-push', 30), displayName: `${ns.node.path}: alert push identity`.slice(0, 100),
  });
  const invoker = new CloudRunV2ServiceIamMember(scope, 'push-invoker', {
    provider, project, location: region, name: fn.serviceConfig.service, role: 'roles/run.invoker', member: `serviceAccount:${pushServiceAccount.email}`,
  });
  const tokenCreator = new ServiceAccountIamMember(scope, 'push-token-creator', {
    provider, serviceAccountId: pushServiceAccount.name, role: 'roles/iam.serviceAccountTokenCreator', member: pubsubAgent(projectData.number),
  });
  const subscription = new PubsubSubscription(scope, 'subscription', {
    provider, project, name: gcpId(owner, 'alerts-push', 100), topic: topic.id, ackDeadlineSeconds: 60, messageRetentionDuration: '86400s',
    pushConfig: { pushEndpoint: fn.serviceConfig.uri, oidcToken: { serviceAccountEmail: pushServiceAccount.email } },
    retryPolicy: { minimumBackoff: '10s', maximumBackoff: '600s' },
    // An alert topic can be quiet for weeks: the default expiry (31 days without activity) would delete the subscription.
    expirationPolicy: { ttl: '' },
    dependsOn: [invoker, tokenCreator],
  });
  return { topic, channel, monitoringPublisher, function: fn, functionServiceAccount, secretAccess, pushServiceAccount, subscription, sourceBucket, buildServiceAccount, imageRepository };
}
