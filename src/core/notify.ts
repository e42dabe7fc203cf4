/**
 * Where alerts go, the same on every target: email, Slack, PagerDuty, a webhook. Credentials are
 * named, never given: each target reads them from its own secret store at run time.
 */
import { Token } from 'cdktf';
import { Errors } from './errors';

/**
 * A secret by name, read where the alerts are sent: AWS Secrets Manager secret name, GCP Secret
 * Manager secret id (in the target's project, latest version), Kubernetes Secret name in the
 * target's namespace (key: `key`, or the destination's default key).
 */
export type NotifySecret = string | { readonly name: string; readonly key?: string };

export type NotifyKind = 'email' | 'slack' | 'pagerduty' | 'webhook';

export interface SlackOptions {
  /** Secret holding the Slack incoming-webhook URL (`https://hooks.slack.com/services/...`). Kubernetes key default `url`. */
  readonly webhookSecret: NotifySecret;
  /**
   * Channel, e.g. `#ml-alerts`: sent as the message's channel (incoming webhooks post to their own
   * channel unless the Slack app allows overrides); required with `gcpAuthTokenSecret`.
   * @default - the webhook's own channel
   */
  readonly channel?: string;
  /**
   * GCP only: secret holding a Slack bot OAuth token (`xoxb-...`, scope chat:write). With it (and
   * `channel`), Cloud Monitoring's own Slack channel type posts the alerts; without it, a delivery
   * function posts them to the webhook in `webhookSecret`.
   * @default - on gcp, alerts reach Slack through the webhook, delivered by a Cloud Run function
   */
  readonly gcpAuthTokenSecret?: NotifySecret;
}

export interface PagerDutyOptions {
  /** Secret holding the PagerDuty Events API v2 integration (routing) key. Kubernetes key default `routing-key`. */
  readonly routingKeySecret: NotifySecret;
}

export interface WebhookOptions {
  /** Secret holding a bearer token sent as `Authorization: Bearer`. Kubernetes key default `token`. @default - no authentication */
  readonly authSecret?: NotifySecret;
}

/** A resolved secret reference: name and (Kubernetes) key. */
export interface NotifySecretRef {
  readonly name: string;
  readonly key: string;
}

export type NotifyDestination =
  | { readonly kind: 'email'; readonly address: string }
  | { readonly kind: 'slack'; readonly webhookSecret: NotifySecretRef; readonly channel?: string; readonly gcpAuthTokenSecret?: NotifySecretRef }
  | { readonly kind: 'pagerduty'; readonly routingKeySecret: NotifySecretRef }
  | { readonly kind: 'webhook'; readonly url: string; readonly authSecret?: NotifySecretRef };

const EMAIL = /^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/;
const WEBHOOK = /^https:\/\/[^\s'"`\\]+$/;
const SLACK_CHANNEL = /^[#@]?[a-z0-9][a-z0-9._-]{0,79}$/;
// Names all three stores accept: Secrets Manager allows more, GCP secret ids and Kubernetes names less.
const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9/_+=.@-]{0,254}$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

/** Every destination, for error messages. */
export const NOTIFY_DESTINATIONS = "Notify.email('a@b.c'), Notify.slack({ webhookSecret }), Notify.pagerDuty({ routingKeySecret }), Notify.webhook('https://...', { authSecret? })";

/** A notification destination; build one with the static factories. */
export class Notify {
  /** An email address (AWS: SNS email subscription, confirmed once; GCP: email channel; Kubernetes: Alertmanager email through `kubernetes.smtp`). */
  public static email(address: string): Notify {
    const where = 'Notify.email';
    if (typeof address !== 'string' || (!Token.isUnresolved(address) && !EMAIL.test(address))) throw Errors.invalid(where, 'address', address, 'an email address such as ml-oncall@example.com');
    return new Notify({ kind: 'email', address });
  }

  /** A Slack channel through an incoming webhook whose URL is in a secret. */
  public static slack(o: SlackOptions): Notify {
    const where = 'Notify.slack';
    if (!o || typeof o !== 'object') throw Errors.missing(where, 'webhookSecret', 'the name of a secret holding the Slack webhook URL');
    if (o.channel !== undefined && (typeof o.channel !== 'string' || !SLACK_CHANNEL.test(o.channel))) {
      throw Errors.invalid(where, 'channel', o.channel, 'a Slack channel name such as #ml-alerts (lower-case, up to 80 characters)');
    }
    return new Notify({
      kind: 'slack', webhookSecret: secretRef(where, 'webhookSecret', o.webhookSecret, 'url'), channel: o.channel,
      gcpAuthTokenSecret: o.gcpAuthTokenSecret === undefined ? undefined : secretRef(where, 'gcpAuthTokenSecret', o.gcpAuthTokenSecret, 'token'),
    });
  }

  /** A PagerDuty service through its Events API v2 integration key, kept in a secret. */
  public static pagerDuty(o: PagerDutyOptions): Notify {
    const where = 'Notify.pagerDuty';
    if (!o || typeof o !== 'object') throw Errors.missing(where, 'routingKeySecret', 'the name of a secret holding the PagerDuty integration key');
    return new Notify({ kind: 'pagerduty', routingKeySecret: secretRef(where, 'routingKeySecret', o.routingKeySecret, 'routing-key') });
  }

  /** An https:// endpoint receiving the alert as JSON, optionally with a bearer token from a secret. */
  public static webhook(url: string, o: WebhookOptions = {}): Notify {
    const where = 'Notify.webhook';
    if (typeof url !== 'string' || (!Token.isUnresolved(url) && !WEBHOOK.test(url))) {
      throw Errors.invalid(where, 'url', url, 'an https:// URL (alerts carry internal names) without spaces or quotes');
    }
    if (o === null || typeof o !== 'object') throw Errors.invalid(where, 'options', o, 'an object { authSecret? }');
    return new Notify({ kind: 'webhook', url, authSecret: o.authSecret === undefined ? undefined : secretRef(where, 'authSecret', o.authSecret, 'token') });
  }

  /**
   * A destination or a string: an email address, or an https:// URL as a plain webhook. A Slack
   * webhook URL as a string is refused: it is a credential, and Slack rejects the generic payload.
   */
  public static of(x: Notify | string, where: string, prop: string): Notify {
    if (x instanceof Notify) return x;
    if (typeof x === 'string' && Token.isUnresolved(x)) return new Notify({ kind: 'email', address: x });
    if (typeof x === 'string' && EMAIL.test(x)) return new Notify({ kind: 'email', address: x });
    if (typeof x === 'string' && /^https:\/\/hooks\.slack\.com\//i.test(x)) {
      throw Errors.invalid(where, prop, '(Slack webhook URL hidden)', "Notify.slack({ webhookSecret: '<secret name>' }): the URL is a credential, keep it in a secret", 'is a Slack webhook URL in plain text');
    }
    if (typeof x === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(x)) {
      if (!WEBHOOK.test(x)) throw Errors.invalid(where, prop, x, 'webhook URLs over https:// (alerts carry internal names), without spaces or quotes', 'is not an https URL');
      return new Notify({ kind: 'webhook', url: x });
    }
    throw Errors.invalid(where, prop, x, `an email address, an https:// webhook URL, or ${NOTIFY_DESTINATIONS}`, 'is not a notification destination');
  }

  private constructor(public readonly destination: NotifyDestination) {}

  public get kind(): NotifyKind {
    return this.destination.kind;
  }

  /** A stable key for de-duplication (never includes a secret value: only names). */
  public get key(): string {
    const d = this.destination;
    switch (d.kind) {
      case 'email': return `email:${d.address}`;
      case 'slack': return `slack:${d.webhookSecret.name}/${d.webhookSecret.key}`;
      case 'pagerduty': return `pagerduty:${d.routingKeySecret.name}/${d.routingKeySecret.key}`;
      default: return `webhook:${d.url}`;
    }
  }
}

function secretRef(where: string, prop: string, s: NotifySecret | undefined, defaultKey: string): NotifySecretRef {
  if (s === undefined || s === null) throw Errors.missing(where, prop, 'the name of a secret (AWS Secrets Manager name, GCP Secret Manager id, Kubernetes Secret name)');
  const name = typeof s === 'string' ? s : s.name;
  const key = typeof s === 'string' ? defaultKey : s.key ?? defaultKey;
  if (typeof name === 'string' && (/^https?:/i.test(name) || /^xox[a-z]-/.test(name))) {
    throw Errors.invalid(where, prop, '(value hidden)', 'the name of a secret holding the credential, not the credential itself', 'looks like a credential');
  }
  if (typeof name !== 'string' || (!Token.isUnresolved(name) && !SECRET_NAME.test(name))) {
    throw Errors.invalid(where, prop, name, 'a secret name: letters, digits and /_+=.@- (the value stays in the secret store, never here)');
  }
  if (typeof key !== 'string' || !SECRET_KEY.test(key)) throw Errors.invalid(where, `${prop}.key`, key, 'a Kubernetes Secret key: letters, digits, -, _ and .');
  return { name, key };
}
