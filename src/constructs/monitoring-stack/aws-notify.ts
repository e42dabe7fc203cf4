/**
 * MonitoringStack on AWS, destinations SNS cannot reach itself (Slack, PagerDuty, webhooks): the
 * alarm topic triggers a small delivery function that reads each credential from Secrets Manager at
 * run time (GetSecretValue on the named secrets only) and POSTs the alarm. Nothing secret is in the
 * synthesized JSON or the function's environment: only secret names and the webhook URLs given.
 * Sources: SNS "Fanout to Lambda functions" (protocol lambda + lambda:InvokeFunction permission with
 * the topic as SourceArn); Lambda Node.js runtimes include AWS SDK v3 and global fetch; PagerDuty
 * Events API v2 (POST events.pagerduty.com/v2/enqueue, trigger/resolve by dedup_key); Slack incoming
 * webhooks (POST JSON { text }).
 */
import { AssetType, Fn, TerraformAsset } from 'cdktf';
import { Construct } from 'constructs';
import { createHash } from 'crypto';
import { existsSync, mkdirSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { DataAwsIamPolicyDocument, DataAwsIamPolicyDocumentStatement } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaPermission } from '@cdktf/provider-aws/lib/lambda-permission';
import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { SnsTopicSubscription } from '@cdktf/provider-aws/lib/sns-topic-subscription';
import { resourceName } from '../../core/naming';
import { AwsTarget } from '../../core/targets';
import type { NotifyPlan } from './plan';

export interface AwsNotifyDeliveryResources {
  readonly function: LambdaFunction;
  readonly role: IamRole;
  readonly logGroup: CloudwatchLogGroup;
  readonly subscription: SnsTopicSubscription;
  /** Fires (to the topic) when a delivery fails after retries. */
  readonly failures: CloudwatchMetricAlarm;
}

/** What the function is told: kinds, secret names and plain URLs. Never a secret value. */
export interface DeliveryTarget {
  readonly kind: 'slack' | 'pagerduty' | 'webhook';
  readonly secret?: string;
  readonly url?: string;
  readonly channel?: string;
}

/** The delivery function (Node.js 22, ESM). Exported for the tests that run it against local servers. */
export const DELIVERY_HANDLER = `// mlinfra alarm delivery: SNS (CloudWatch alarm) -> Slack, PagerDuty, webhooks.
import { SecretsManagerClient, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';

// a named error: the Lambda's log and retry reason say which step failed
class DeliveryError extends Error {
  constructor(message) { super(message); this.name = 'DeliveryError'; }
}

const sm = new SecretsManagerClient({});
const cache = new Map();
const TTL_MS = 5 * 60 * 1000;

async function secret(name) {
  const hit = cache.get(name);
  if (hit && hit.at > Date.now() - TTL_MS) return hit.value;
  const out = await sm.send(new GetSecretValueCommand({ SecretId: name }));
  const value = (out.SecretString ?? '').trim();
  if (!value) throw new DeliveryError('secret ' + name + ' is empty');
  cache.set(name, { value, at: Date.now() });
  return value;
}

async function post(url, body, headers = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  if (!res.ok) throw new DeliveryError('POST to ' + new URL(url).host + ' answered ' + res.status);
}

function parse(record) {
  const raw = record.Sns?.Message ?? '';
  try { return JSON.parse(raw); } catch { return { AlarmName: record.Sns?.Subject ?? 'alarm', NewStateValue: 'ALARM', NewStateReason: raw }; }
}

export async function deliver(targets, alarm) {
  const state = alarm.NewStateValue ?? 'ALARM';
  const summary = '[' + state + '] ' + (alarm.AlarmName ?? 'alarm') + ': ' + (alarm.AlarmDescription ?? '') + ' ' + (alarm.NewStateReason ?? '');
  const failures = [];
  for (const t of targets) {
    try {
      if (t.kind === 'slack') {
        await post(await secret(t.secret), { text: summary, ...(t.channel ? { channel: t.channel } : {}) });
      } else if (t.kind === 'pagerduty') {
        await post(process.env.PAGERDUTY_URL ?? 'https://events.pagerduty.com/v2/enqueue', {
          routing_key: await secret(t.secret), event_action: state === 'OK' ? 'resolve' : 'trigger',
          dedup_key: alarm.AlarmArn ?? alarm.AlarmName,
          payload: { summary: summary.slice(0, 1024), source: alarm.AlarmArn ?? 'cloudwatch', severity: 'error', custom_details: alarm },
        });
      } else {
        await post(t.url, alarm, t.secret ? { authorization: 'Bearer ' + await secret(t.secret) } : {});
      }
    } catch (err) {
      failures.push(t.kind + ': ' + err.message);
    }
  }
  // Throwing makes Lambda retry the asynchronous invocation.
  if (failures.length) throw new DeliveryError('delivery failed: ' + failures.join('; '));
}

export async function handler(event) {
  const targets = JSON.parse(process.env.MLINFRA_TARGETS ?? '[]');
  for (const record of event.Records ?? []) await deliver(targets, parse(record));
}
`;

/** The destinations the function handles; empty when SNS alone (email) suffices. */
export function deliveryTargets(notify: NotifyPlan): DeliveryTarget[] {
  return notify.destinations.flatMap((d): DeliveryTarget[] => {
    switch (d.kind) {
      case 'slack': return [{ kind: 'slack', secret: d.webhookSecret.name, ...(d.channel ? { channel: d.channel } : {}) }];
      case 'pagerduty': return [{ kind: 'pagerduty', secret: d.routingKeySecret.name }];
      case 'webhook': return [{ kind: 'webhook', url: d.url, ...(d.authSecret ? { secret: d.authSecret.name } : {}) }];
      default: return [];
    }
  });
}

/** The handler's directory, written once per content (the asset hash is of the content: synth stays deterministic). */
function handlerDir(): string {
  const dir = join(tmpdir(), `mlinfra-notify-delivery-${createHash('sha256').update(DELIVERY_HANDLER).digest('hex').slice(0, 16)}`);
  if (!existsSync(join(dir, 'index.mjs'))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.mjs'), DELIVERY_HANDLER);
  }
  return dir;
}

export function buildAwsNotifyDelivery(ns: Construct, target: AwsTarget, topic: SnsTopic, notify: NotifyPlan): AwsNotifyDeliveryResources | undefined {
  const targets = deliveryTargets(notify);
  if (!targets.length) return undefined;
  const provider = target.provider;
  const partition = target.partition;
  const scope = new Construct(ns, 'delivery');
  const name = resourceName(ns.node.scope ?? ns, { maxLength: 64, suffix: 'notify' });

  const logGroup = new CloudwatchLogGroup(scope, 'logs', { provider, name: `/aws/lambda/${name}`, retentionInDays: 30 });
  const assume = new DataAwsIamPolicyDocument(scope, 'assume', {
    provider, statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['lambda.amazonaws.com'] }] }],
  });
  const role = new IamRole(scope, 'role', { provider, name, assumeRolePolicy: assume.json, description: `${ns.node.path}: alarm delivery function` });
  // Secrets by name: Secrets Manager appends 6 random characters to a secret's ARN (the IAM guide's
  // "-??????" pattern matches exactly that secret).
  const secretNames = [...new Set(targets.flatMap((t) => (t.secret ? [t.secret] : [])))];
  const statements: DataAwsIamPolicyDocumentStatement[] = [
    { sid: 'Logs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`${logGroup.arn}:*`] },
  ];
  if (secretNames.length) {
    statements.push({
      sid: 'ReadNotifySecrets', effect: 'Allow', actions: ['secretsmanager:GetSecretValue'],
      resources: secretNames.map((s) => `arn:${partition}:secretsmanager:${target.region}:${target.accountId}:secret:${s}-??????`),
    });
  }
  const doc = new DataAwsIamPolicyDocument(scope, 'policy-doc', { provider, statement: statements });
  const policy = new IamRolePolicy(scope, 'policy', { provider, name: 'mlinfra-notify-delivery', role: role.id, policy: doc.json });

  const code = new TerraformAsset(scope, 'code', { path: handlerDir(), type: AssetType.ARCHIVE });
  const fn = new LambdaFunction(scope, 'function', {
    provider, functionName: name, role: role.arn, runtime: 'nodejs22.x', handler: 'index.handler',
    filename: code.path, sourceCodeHash: Fn.filebase64sha256(code.path), timeout: 30, memorySize: 128,
    environment: { variables: { MLINFRA_TARGETS: JSON.stringify(targets) } },
    description: `${ns.node.path}: delivers alarms to Slack, PagerDuty and webhooks`,
    dependsOn: [policy, logGroup],
  });
  new LambdaPermission(scope, 'invoke', {
    provider, statementId: 'AllowAlarmTopic', action: 'lambda:InvokeFunction', functionName: fn.functionName,
    principal: 'sns.amazonaws.com', sourceArn: topic.arn,
  });
  const subscription = new SnsTopicSubscription(scope, 'subscription', { provider, topicArn: topic.arn, protocol: 'lambda', endpoint: fn.arn });
  // A delivery that still fails after Lambda's retries is dropped: say so on the topic, which reaches
  // the email subscribers (and the function again, for destinations that work).
  const failures = new CloudwatchMetricAlarm(scope, 'failures', {
    provider, alarmName: resourceName(ns.node.scope ?? ns, { maxLength: 255, suffix: 'notify-delivery-failed' }),
    alarmDescription: `${ns.node.path}: alarm delivery to Slack, PagerDuty or a webhook failed (see ${logGroup.name})`,
    namespace: 'AWS/Lambda', metricName: 'Errors', dimensions: { FunctionName: fn.functionName }, statistic: 'Sum', period: 300,
    evaluationPeriods: 1, threshold: 0, comparisonOperator: 'GreaterThanThreshold', treatMissingData: 'notBreaching', alarmActions: [topic.arn],
  });
  return { function: fn, role, logGroup, subscription, failures };
}
