/**
 * MonitoringStack on GCP: one Cloud Monitoring notification channel per destination. Credentials
 * (Slack OAuth token, PagerDuty key) come from Secret Manager data sources into `sensitive_labels`:
 * they live in the Terraform state and in Cloud Monitoring, never in the synthesized JSON.
 * Channel types and labels: google_monitoring_notification_channel (email: email_address; slack:
 * channel_name + sensitive auth_token; pagerduty: sensitive service_key; webhook_tokenauth: url).
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { DataGoogleSecretManagerSecretVersion } from '@cdktf/provider-google/lib/data-google-secret-manager-secret-version';
import { MonitoringNotificationChannel } from '@cdktf/provider-google/lib/monitoring-notification-channel';
import { Errors } from '../../core/errors';
import type { NotifySecretRef } from '../../core/notify';
import { GcpTarget } from '../../core/targets';
import type { NotifyPlan } from './plan';

export function buildGcpNotificationChannels(scope: Construct, ns: Construct, target: GcpTarget, notify: NotifyPlan): MonitoringNotificationChannel[] {
  const provider = target.provider;
  const project = target.project;
  const secrets = new Map<string, DataGoogleSecretManagerSecretVersion>();
  const secretData = (ref: NotifySecretRef): string => {
    if (!Token.isUnresolved(ref.name) && !/^[A-Za-z0-9_-]{1,255}$/.test(ref.name)) {
      throw Errors.invalid(scope, 'notify', ref.name, 'on gcp, a Secret Manager secret id in the target\'s project (letters, digits, _ and -)', 'is not a Secret Manager secret id');
    }
    let d = secrets.get(ref.name);
    if (!d) {
      target.requireApis('secretmanager.googleapis.com');
      d = new DataGoogleSecretManagerSecretVersion(ns, `secret-${secrets.size}`, { provider, project, secret: ref.name });
      secrets.set(ref.name, d);
    }
    return d.secretData;
  };
  // Validate every destination before creating any channel.
  notify.destinations.forEach((d, i) => {
    if (d.kind === 'slack' && (!d.channel || !d.gcpAuthTokenSecret)) {
      throw Errors.missing(scope, `notify[${i}].${d.channel ? 'gcpAuthTokenSecret' : 'channel'}`,
        'on gcp, Notify.slack({ webhookSecret, channel: \'#alerts\', gcpAuthTokenSecret: \'<secret with a Slack bot token>\' }): '
        + 'Cloud Monitoring\'s Slack channel posts with a Slack OAuth token to a named channel and cannot use an incoming webhook');
    }
    if (d.kind === 'webhook' && d.authSecret) {
      throw Errors.conflict(scope, `notify[${i}].authSecret`, d.authSecret.name,
        'Notify.webhook(url) without authSecret on gcp (Cloud Monitoring webhooks send no bearer token), or Notify.pagerDuty / Notify.slack',
        'is not offered on gcp');
    }
  });
  // Ids count per kind, so adding a Slack destination does not rename the email channels.
  const seen: Record<string, number> = {};
  return notify.destinations.map((d) => {
    const i = (seen[d.kind] = (seen[d.kind] ?? -1) + 1);
    switch (d.kind) {
      case 'email':
        return new MonitoringNotificationChannel(ns, `email-${i}`, { provider, project, type: 'email', displayName: `mlinfra ${d.address}`, labels: { email_address: d.address } });
      case 'slack':
        return new MonitoringNotificationChannel(ns, `slack-${i}`, {
          provider, project, type: 'slack', displayName: `mlinfra slack ${d.channel}`,
          labels: { channel_name: d.channel! }, sensitiveLabels: { authToken: secretData(d.gcpAuthTokenSecret!) },
        });
      case 'pagerduty':
        return new MonitoringNotificationChannel(ns, `pagerduty-${i}`, {
          provider, project, type: 'pagerduty', displayName: `mlinfra pagerduty ${i + 1}`, sensitiveLabels: { serviceKey: secretData(d.routingKeySecret) },
        });
      default:
        return new MonitoringNotificationChannel(ns, `webhook-${i}`, { provider, project, type: 'webhook_tokenauth', displayName: `mlinfra webhook ${i + 1}`, labels: { url: d.url } });
    }
  });
}
