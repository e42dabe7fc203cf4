/**
 * The cluster's durable job queue: one interface over Amazon SQS and Google Cloud Pub/Sub.
 * A message is leased (hidden from other hosts) for `leaseSeconds`, extended while its job runs,
 * acknowledged (deleted) at the end, or released at once (visible again) on a preemption notice.
 * Delivery is at least once: the worker drops a delivery whose job record already ended.
 */

/** A leased message. `attempt` is the queue's own delivery count (SQS ApproximateReceiveCount, Pub/Sub deliveryAttempt). */
export interface LeasedMessage {
  readonly messageId: string;
  readonly body: string;
  readonly attempt: number;
  /** SQS receipt handle / Pub/Sub ackId: names this lease. */
  readonly handle: string;
}

export interface JobQueue {
  readonly kind: 'sqs' | 'pubsub';
  /** Largest message body the queue takes (bytes, UTF-8). */
  readonly maxMessageBytes: number;
  /** Enqueues a body; resolves with the message id once the queue has stored it. */
  send(body: string): Promise<string>;
  /** Leases at most `max` messages for `leaseSeconds`, waiting up to `waitSeconds` for one. */
  receive(max: number, leaseSeconds: number, waitSeconds: number): Promise<LeasedMessage[]>;
  /** Resets the lease to `leaseSeconds` from now (SQS ChangeMessageVisibility, Pub/Sub modifyAckDeadline). */
  extend(m: LeasedMessage, leaseSeconds: number): Promise<void>;
  /** Done: the message is deleted. */
  ack(m: LeasedMessage): Promise<void>;
  /** Gives the lease back: the message is visible again after `delaySeconds` (0: at once). */
  release(m: LeasedMessage, delaySeconds?: number): Promise<void>;
  /** Sends the body (with the reason) to the dead-letter queue, then acks the message. */
  deadLetter(m: LeasedMessage, reason: string): Promise<void>;
}

/** SQS takes 256 KiB (262,144 bytes) per message. https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html */
export const SQS_MAX_MESSAGE_BYTES = 262_144;
/**
 * Pub/Sub takes 10 MB per message, but REST sends it base64 (4/3 larger) in a request of at most
 * 10 MB: 7 MiB of body keeps a publish under it. https://cloud.google.com/pubsub/quotas#resource_limits
 */
export const PUBSUB_MAX_MESSAGE_BYTES = 7 * 1024 * 1024;

export interface QueueAddress {
  readonly kind: 'sqs' | 'pubsub';
  /** SQS: the queue URL. Pub/Sub: projects/P/topics/T. */
  readonly queue: string;
  /** Pub/Sub only: projects/P/subscriptions/S. */
  readonly subscription?: string;
}

/**
 * `--queue` forms: an SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or any
 * http(s) URL of an SQS-compatible endpoint), or `pubsub://PROJECT/TOPIC/SUBSCRIPTION`.
 * `--dead-letter-queue` forms: an SQS queue URL, or `pubsub://PROJECT/TOPIC`.
 */
export function parseQueueUrl(url: string, deadLetter = false): QueueAddress {
  const ps = /^pubsub:\/\/([a-z][a-z0-9-]{4,28}[a-z0-9])\/([A-Za-z][\w.~+%-]{2,254})(?:\/([A-Za-z][\w.~+%-]{2,254}))?$/.exec(url);
  if (ps) {
    if (!deadLetter && !ps[3]) throw new Error(`queue ${url}: a Pub/Sub queue is pubsub://PROJECT/TOPIC/SUBSCRIPTION`);
    if (deadLetter && ps[3]) throw new Error(`dead-letter queue ${url}: a Pub/Sub dead-letter queue is pubsub://PROJECT/TOPIC`);
    return { kind: 'pubsub', queue: `projects/${ps[1]}/topics/${ps[2]}`, ...(ps[3] ? { subscription: `projects/${ps[1]}/subscriptions/${ps[3]}` } : {}) };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    u = new URL('invalid:');
  }
  if ((u.protocol === 'https:' || u.protocol === 'http:') && /^\/\d{1,12}\/[\w-]{1,80}$/.test(u.pathname)) return { kind: 'sqs', queue: url };
  throw new Error(`queue ${JSON.stringify(url)}: use an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or ${deadLetter ? 'pubsub://PROJECT/TOPIC' : 'pubsub://PROJECT/TOPIC/SUBSCRIPTION'}`);
}

/**
 * Opens the queue. The SQS client is required lazily (a file beside the bundle, queue-sqs.js):
 * a GCP host never parses the AWS SDK. Pub/Sub is plain REST over fetch.
 */
export function openQueue(url: string, deadLetterUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): JobQueue {
  const a = parseQueueUrl(url);
  const dl = deadLetterUrl === undefined ? undefined : parseQueueUrl(deadLetterUrl, true);
  if (dl && dl.kind !== a.kind) throw new Error(`dead-letter queue ${deadLetterUrl} is ${dl.kind} but the queue is ${a.kind}`);
  if (a.kind === 'sqs') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SqsQueue } = require('./sqs') as typeof import('./sqs');
    return new SqsQueue(a.queue, dl?.queue, env);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { PubSubQueue } = require('./pubsub') as typeof import('./pubsub');
  return new PubSubQueue(a.queue, a.subscription!, dl?.queue, env);
}
