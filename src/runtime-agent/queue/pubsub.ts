import { PUBSUB_MAX_MESSAGE_BYTES, type JobQueue, type LeasedMessage } from './index';

const METADATA_TOKEN = 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token';

interface PulledMessage {
  readonly ackId: string;
  readonly deliveryAttempt?: number;
  readonly message: { readonly data?: string; readonly messageId: string };
}

/**
 * Google Cloud Pub/Sub through its REST API (v1) over fetch: a topic to publish to and a pull
 * subscription to lease from. No SDK: on a GCE host the token comes from the metadata server
 * (the instance's service account); PUBSUB_EMULATOR_HOST points it at the emulator (no auth).
 * `deliveryAttempt` is only set when the subscription has a dead-letter policy
 * (https://cloud.google.com/pubsub/docs/handling-failures#track-delivery-attempts): GpuCluster sets one.
 */
export class PubSubQueue implements JobQueue {
  readonly kind = 'pubsub' as const;
  readonly maxMessageBytes = PUBSUB_MAX_MESSAGE_BYTES;
  private readonly base: string;
  private readonly emulated: boolean;
  private token: { value: string; expiresMs: number } | undefined;

  constructor(private readonly topic: string, private readonly subscription: string, private readonly deadLetterTopic: string | undefined, env: NodeJS.ProcessEnv = process.env) {
    const emu = env.PUBSUB_EMULATOR_HOST;
    this.emulated = Boolean(emu);
    this.base = emu ? `http://${emu}/v1` : 'https://pubsub.googleapis.com/v1';
  }

  async send(body: string): Promise<string> {
    const r = await this.call<{ messageIds: string[] }>(`${this.topic}:publish`, { messages: [{ data: Buffer.from(body).toString('base64') }] });
    return r.messageIds[0];
  }

  async receive(max: number, leaseSeconds: number, waitSeconds: number): Promise<LeasedMessage[]> {
    // returnImmediately: a pull aborted by a client timeout may have leased messages we never see
    const r = await this.call<{ receivedMessages?: PulledMessage[] }>(`${this.subscription}:pull`, { maxMessages: Math.max(1, max), returnImmediately: true });
    const got = r.receivedMessages ?? [];
    if (got.length === 0) {
      await new Promise((res) => setTimeout(res, Math.max(0, waitSeconds) * 1000));
      return [];
    }
    // the subscription's ackDeadlineSeconds may differ from ours
    await this.modify(got.map((m) => m.ackId), leaseSeconds);
    return got.map((m) => ({
      messageId: m.message.messageId, body: Buffer.from(m.message.data ?? '', 'base64').toString('utf8'), handle: m.ackId, attempt: m.deliveryAttempt ?? 1,
    }));
  }

  extend(m: LeasedMessage, leaseSeconds: number): Promise<void> {
    return this.modify([m.handle], leaseSeconds);
  }

  async ack(m: LeasedMessage): Promise<void> {
    await this.call(`${this.subscription}:acknowledge`, { ackIds: [m.handle] });
  }

  release(m: LeasedMessage, delaySeconds = 0): Promise<void> {
    return this.modify([m.handle], delaySeconds);
  }

  async deadLetter(m: LeasedMessage, reason: string): Promise<void> {
    if (this.deadLetterTopic) {
      await this.call(`${this.deadLetterTopic}:publish`, { messages: [{ data: Buffer.from(m.body).toString('base64'), attributes: { reason: reason.slice(0, 1000) } }] });
    }
    await this.ack(m);
  }

  private async modify(ackIds: string[], seconds: number): Promise<void> {
    // 0..600 s per request: https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions/modifyAckDeadline
    await this.call(`${this.subscription}:modifyAckDeadline`, { ackIds, ackDeadlineSeconds: Math.min(600, Math.max(0, Math.ceil(seconds))) });
  }

  private async call<T>(resource: string, body: unknown): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!this.emulated) headers.authorization = `Bearer ${await this.accessToken()}`;
    const res = await fetch(`${this.base}/${resource}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`Pub/Sub ${resource.split(':').pop()} answered ${res.status}: ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  private async accessToken(): Promise<string> {
    if (this.token && this.token.expiresMs > Date.now() + 60_000) return this.token.value;
    const res = await fetch(METADATA_TOKEN, { headers: { 'Metadata-Flavor': 'Google' }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`the metadata server answered ${res.status} for an access token`);
    const t = (await res.json()) as { access_token: string; expires_in: number };
    this.token = { value: t.access_token, expiresMs: Date.now() + t.expires_in * 1000 };
    return t.access_token;
  }
}
