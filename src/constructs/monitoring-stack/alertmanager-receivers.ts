/**
 * Alertmanager receivers for MonitoringStack on Kubernetes: native slack/pagerduty/webhook/email
 * configs. Every credential is a file from a mounted Secret (`api_url_file`, `routing_key_file`,
 * `credentials_file`), so the config (a ConfigMap) holds paths only.
 * Source: prometheus.io/docs/alerting/latest/configuration (receiver configs and their *_file options).
 */
import { Token } from 'cdktf';
import { stringify } from 'yaml';
import { Errors } from '../../core/errors';
import type { NotifySecretRef } from '../../core/notify';
import { CLUSTER_LABEL } from './prometheus';
import type { NotifyPlan } from './plan';

/** Where the secret volumes are mounted: outside the ConfigMap's mount, never nested in it. */
export const ALERTMANAGER_SECRETS_DIR = '/etc/alertmanager-secrets';

export interface AlertmanagerSmtpInput {
  readonly smarthost: string;
  readonly from: string;
  readonly username?: string;
  readonly passwordFile?: string;
  readonly requireTls: boolean;
}

export interface AlertmanagerSecretVolume {
  readonly name: string;
  readonly secret: { readonly secretName: string; readonly items: { key: string; path: string }[]; readonly defaultMode: string };
}

export interface AlertmanagerSetup {
  /** alertmanager.yml: no credential in it, only file paths. */
  readonly config: string;
  /** One volume per referenced Secret. */
  readonly volumes: readonly AlertmanagerSecretVolume[];
  readonly mounts: readonly { name: string; mountPath: string; readOnly: boolean }[];
}

/**
 * The receiver and the Secret mounts for `notify`. Throws when emails are asked for without an SMTP
 * relay, naming the destinations that need none.
 */
export function alertmanagerSetup(where: string, notify: NotifyPlan, smtp: AlertmanagerSmtpInput | undefined): AlertmanagerSetup {
  if (!smtp && notify.destinations.some((d) => d.kind === 'email')) {
    throw Errors.missing(where, 'kubernetes.smtp',
      'SMTP relay settings ({ smarthost, from }) for Alertmanager to send the notify emails; or notify without email: '
      + "Notify.slack({ webhookSecret }), Notify.pagerDuty({ routingKeySecret }) or Notify.webhook('https://...')");
  }
  // Secrets by name: one volume each, with the keys used.
  const bySecret = new Map<string, Set<string>>();
  const fileOf = (ref: NotifySecretRef): string => {
    if (!Token.isUnresolved(ref.name) && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(ref.name)) {
      throw Errors.invalid(where, 'notify', ref.name, 'on kubernetes, the name of a Secret in the target\'s namespace (lower-case DNS subdomain)', 'is not a Kubernetes Secret name');
    }
    const keys = bySecret.get(ref.name) ?? new Set<string>();
    keys.add(ref.key);
    bySecret.set(ref.name, keys);
    return `${ALERTMANAGER_SECRETS_DIR}/${volumeName(ref.name, [...bySecret.keys()].indexOf(ref.name))}/${ref.key}`;
  };

  const receiver: Record<string, unknown[] | string> = { name: 'mlinfra' };
  const push = (field: string, cfg: Record<string, unknown>) => ((receiver[field] ??= []) as unknown[]).push(cfg);
  for (const d of notify.destinations) {
    switch (d.kind) {
      case 'email':
        push('email_configs', { to: d.address, send_resolved: true });
        break;
      case 'slack':
        push('slack_configs', { api_url_file: fileOf(d.webhookSecret), ...(d.channel ? { channel: d.channel } : {}), send_resolved: true });
        break;
      case 'pagerduty':
        push('pagerduty_configs', { routing_key_file: fileOf(d.routingKeySecret), send_resolved: true });
        break;
      default:
        push('webhook_configs', {
          url: d.url, send_resolved: true,
          ...(d.authSecret ? { http_config: { authorization: { type: 'Bearer', credentials_file: fileOf(d.authSecret) } } } : {}),
        });
    }
  }

  const global: Record<string, unknown> = { resolve_timeout: '5m' };
  if (smtp) {
    global.smtp_smarthost = smtp.smarthost;
    global.smtp_from = smtp.from;
    global.smtp_require_tls = smtp.requireTls;
    if (smtp.username) global.smtp_auth_username = smtp.username;
    if (smtp.passwordFile) global.smtp_auth_password_file = smtp.passwordFile;
  }
  const config = stringify({
    global,
    route: { receiver: 'mlinfra', group_by: ['alertname', CLUSTER_LABEL, 'watch'], group_wait: '30s', group_interval: '5m', repeat_interval: '4h' },
    receivers: [receiver],
  }, { lineWidth: 0, minContentWidth: 0 });

  const names = [...bySecret.keys()];
  const volumes = names.map((secretName, i) => ({
    name: volumeName(secretName, i),
    secret: { secretName, items: [...bySecret.get(secretName)!].map((key) => ({ key, path: key })), defaultMode: '0440' },
  }));
  const mounts = volumes.map((v) => ({ name: v.name, mountPath: `${ALERTMANAGER_SECRETS_DIR}/${v.name}`, readOnly: true }));
  return { config, volumes, mounts };
}

/** A volume name (DNS label) per Secret, stable for a given order of notify. */
function volumeName(_secret: string, i: number): string {
  return `notify-secret-${i}`;
}
