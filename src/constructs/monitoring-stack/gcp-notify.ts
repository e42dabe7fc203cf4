/**
 * MonitoringStack on GCP: a Cloud Monitoring notification channel per destination Cloud Monitoring
 * can serve itself, and one Pub/Sub channel to a delivery function for the rest.
 * - email: channel `email` (label email_address).
 * - PagerDuty: channel `pagerduty`, sensitive service_key from Secret Manager.
 * - Slack with `gcpAuthTokenSecret` and `channel`: channel `slack` (channel_name + sensitive auth_token,
 *   a bot token: Cloud Monitoring's Slack channel cannot use an incoming webhook). Slack with only
 *   `webhookSecret`: the delivery function posts to the webhook URL read from Secret Manager.
 * - webhook without auth: channel `webhook_tokenauth` (label url); with `authSecret`: the delivery
 *   function (Cloud Monitoring's webhook channels send no bearer token).
 * Credentials given to Cloud Monitoring come from Secret Manager data sources into `sensitive_labels`:
 * they live in the Terraform state and in Cloud Monitoring, never in the synthesized JSON.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { DataGoogleSecretManagerSecretVersion } from '@cdktf/provider-google/lib/data-google-secret-manager-secret-version';
import { MonitoringAlertPolicy } from '@cdktf/provider-google/lib/monitoring-alert-policy';
import { MonitoringNotificationChannel } from '@cdktf/provider-google/lib/monitoring-notification-channel';
import { Errors } from '../../core/errors';
import type { NotifyDestination, NotifySecretRef } from '../../core/notify';
import { GcpTarget } from '../../core/targets';
import { buildGcpNotifyDelivery, GcpDeliveryTarget } from './gcp-notify-delivery';
import type { NotifyPlan } from './plan';

/** Secret Manager secret ids: letters, digits, _ and -, at most 255 (secrets.create). */
const SECRET_ID = /^[A-Za-z0-9_-]{1,255}$/;

/** The destination through the delivery function, or undefined when Cloud Monitoring has a channel type for it. */
export function gcpDeliveryTarget(d: NotifyDestination): GcpDeliveryTarget | undefined {
  if (d.kind === 'slack' && !d.gcpAuthTokenSecret) return { kind: 'slack', secret: d.webhookSecret.name, ...(d.channel ? { channel: d.channel } : {}) };
  if (d.kind === 'webhook' && d.authSecret) return { kind: 'webhook', url: d.url, secret: d.authSecret.name };
  return undefined;
}

export function buildGcpNotificationChannels(scope: Construct, ns: Construct, target: GcpTarget, notify: NotifyPlan): MonitoringNotificationChannel[] {
  const provider = target.provider;
  const project = target.project;
  // Validate every destination before creating any resource.
  const checkSecret = (i: number, ref: NotifySecretRef | undefined) => {
    if (ref && !Token.isUnresolved(ref.name) && !SECRET_ID.test(ref.name)) {
      throw Errors.invalid(scope, 'notify', ref.name, 'on gcp, a Secret Manager secret id in the target\'s project (letters, digits, _ and -)', `is not a Secret Manager secret id (notify[${i}])`);
    }
  };
  notify.destinations.forEach((d, i) => {
    if (d.kind === 'slack') {
      if (d.gcpAuthTokenSecret && !d.channel) {
        throw Errors.missing(scope, `notify[${i}].channel`,
          'with gcpAuthTokenSecret, the Slack channel Cloud Monitoring posts to (\'#alerts\'); or leave gcpAuthTokenSecret out to post through the webhook');
      }
      checkSecret(i, d.gcpAuthTokenSecret ?? d.webhookSecret);
    }
    if (d.kind === 'pagerduty') checkSecret(i, d.routingKeySecret);
    if (d.kind === 'webhook') checkSecret(i, d.authSecret);
  });

  const secrets = new Map<string, DataGoogleSecretManagerSecretVersion>();
  const secretData = (ref: NotifySecretRef): string => {
    let d = secrets.get(ref.name);
    if (!d) {
      target.requireApis('secretmanager.googleapis.com');
      d = new DataGoogleSecretManagerSecretVersion(ns, `secret-${secrets.size}`, { provider, project, secret: ref.name });
      secrets.set(ref.name, d);
    }
    return d.secretData;
  };
  // Ids count per kind, so adding a destination does not rename the other channels.
  const seen: Record<string, number> = {};
  const next = (kind: string) => (seen[kind] = (seen[kind] ?? -1) + 1);
  const channels: MonitoringNotificationChannel[] = [];
  for (const d of notify.destinations) {
    if (gcpDeliveryTarget(d)) continue;
    switch (d.kind) {
      case 'email':
        channels.push(new MonitoringNotificationChannel(ns, `email-${next('email')}`, { provider, project, type: 'email', displayName: `mlinfra ${d.address}`, labels: { email_address: d.address } }));
        break;
      case 'slack':
        channels.push(new MonitoringNotificationChannel(ns, `slack-${next('slack')}`, {
          provider, project, type: 'slack', displayName: `mlinfra slack ${d.channel}`,
          labels: { channel_name: d.channel! }, sensitiveLabels: { authToken: secretData(d.gcpAuthTokenSecret!) },
        }));
        break;
      case 'pagerduty': {
        const i = next('pagerduty');
        channels.push(new MonitoringNotificationChannel(ns, `pagerduty-${i}`, {
          provider, project, type: 'pagerduty', displayName: `mlinfra pagerduty ${i + 1}`, sensitiveLabels: { serviceKey: secretData(d.routingKeySecret) },
        }));
        break;
      }
      default: {
        const i = next('webhook');
        channels.push(new MonitoringNotificationChannel(ns, `webhook-${i}`, { provider, project, type: 'webhook_tokenauth', displayName: `mlinfra webhook ${i + 1}`, labels: { url: d.url } }));
      }
    }
  }
  const targets = notify.destinations.flatMap((d) => gcpDeliveryTarget(d) ?? []);
  if (targets.length) {
    const delivery = buildGcpNotifyDelivery(ns, target, targets);
    channels.push(delivery.channel);
    // A delivery that keeps failing is only in the function's log: alert on it to every channel (the
    // native ones hear it; the function retries its working destinations), at most once an hour.
    new MonitoringAlertPolicy(ns, 'delivery-failed', {
      provider, project, displayName: `${scope.node.path}: alert delivery failed`, combiner: 'OR', severity: 'ERROR',
      notificationChannels: channels.map((c) => c.id),
      documentation: { content: `${scope.node.path}: the function delivering alerts to Slack or webhooks failed (see its log)`, mimeType: 'text/markdown' },
      conditions: [{
        displayName: 'delivery failed',
        conditionMatchedLog: { filter: `resource.type="cloud_run_revision" AND resource.labels.service_name=${JSON.stringify(delivery.function.name)} AND textPayload:"mlinfra-notify:"` },
      }],
      alertStrategy: { notificationRateLimit: { period: '3600s' }, autoClose: '1800s' },
    });
  }
  return channels;
}
