import type { SQSClient } from '@aws-sdk/client-sqs';
import { SQS_MAX_MESSAGE_BYTES, type JobQueue, type LeasedMessage } from './index';

type SqsModule = typeof import('@aws-sdk/client-sqs');

/**
 * Amazon SQS (standard queue) with @aws-sdk/client-sqs, required lazily: it is bundled apart
 * (queue-sqs.js). Credentials and region come from the standard AWS chain; a queue URL outside
 * amazonaws.com (an SQS-compatible endpoint) is used as the endpoint.
 * Calls: SendMessage, ReceiveMessage, ChangeMessageVisibility, DeleteMessage (+ SendMessage on the DLQ).
 */
export class SqsQueue implements JobQueue {
  readonly kind = 'sqs' as const;
  readonly maxMessageBytes = SQS_MAX_MESSAGE_BYTES;
  private readonly sdk: SqsModule;
  private readonly client: SQSClient;

  constructor(private readonly url: string, private readonly deadLetterUrl: string | undefined, env: NodeJS.ProcessEnv = process.env) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    this.sdk = require('@aws-sdk/client-sqs') as SqsModule;
    const u = new URL(url);
    const aws = /^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(u.hostname);
    this.client = new this.sdk.SQSClient({
      region: aws?.[1] ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1'),
      ...(aws ? {} : { endpoint: u.origin }),
      // the env given (the agent's own by default); otherwise the SDK's chain (instance profile ...)
      ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) } }
        : {}),
      // one retry: a submit to an unreachable queue answers in seconds, not after the SDK's backoff
      maxAttempts: 2,
      // long polls wait up to 20 s (WaitTimeSeconds): the request timeout must be longer
      requestHandler: { connectionTimeout: 3000, requestTimeout: 30_000 },
    });
  }

  async send(body: string): Promise<string> {
    const r = await this.client.send(new this.sdk.SendMessageCommand({ QueueUrl: this.url, MessageBody: body }));
    return r.MessageId ?? '';
  }

  async receive(max: number, leaseSeconds: number, waitSeconds: number): Promise<LeasedMessage[]> {
    const r = await this.client.send(new this.sdk.ReceiveMessageCommand({
      QueueUrl: this.url, MaxNumberOfMessages: Math.min(10, Math.max(1, max)), VisibilityTimeout: Math.ceil(leaseSeconds),
      WaitTimeSeconds: Math.min(20, Math.floor(waitSeconds)), MessageSystemAttributeNames: ['ApproximateReceiveCount'],
    }));
    return (r.Messages ?? []).map((m) => ({
      messageId: m.MessageId ?? '', body: m.Body ?? '', handle: m.ReceiptHandle ?? '',
      attempt: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
    }));
  }

  async extend(m: LeasedMessage, leaseSeconds: number): Promise<void> {
    await this.client.send(new this.sdk.ChangeMessageVisibilityCommand({ QueueUrl: this.url, ReceiptHandle: m.handle, VisibilityTimeout: Math.ceil(leaseSeconds) }));
  }

  async ack(m: LeasedMessage): Promise<void> {
    await this.client.send(new this.sdk.DeleteMessageCommand({ QueueUrl: this.url, ReceiptHandle: m.handle }));
  }

  async release(m: LeasedMessage, delaySeconds = 0): Promise<void> {
    await this.extend(m, delaySeconds);
  }

  async deadLetter(m: LeasedMessage, reason: string): Promise<void> {
    if (this.deadLetterUrl) {
      await this.client.send(new this.sdk.SendMessageCommand({
        QueueUrl: this.deadLetterUrl, MessageBody: m.body,
        MessageAttributes: { reason: { DataType: 'String', StringValue: reason.slice(0, 1000) } },
      }));
    }
    await this.ack(m);
  }
}
