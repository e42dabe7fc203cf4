import { ServeOptionError } from '../options';
import { parseQueueUrl } from '../queue/index';
import { schemeOf } from '../storage/index';

/** `serve --queue ...`: this agent leases its jobs from the cluster's queue. */
export interface ClusterOptions {
  /** SQS queue URL or pubsub://PROJECT/TOPIC/SUBSCRIPTION. */
  readonly queue: string;
  /** @default - none: a job past `maxAttempts` is recorded failed and deleted (the queue's own redrive still applies) */
  readonly deadLetterQueue?: string;
  /** Bucket prefix (s3://, gs://, file://) for job records, checkpoints and logs. Required. */
  readonly artifacts: string;
  /** Lease (visibility timeout / ack deadline) of a message; extended every third of it while the job runs. @default 60 */
  readonly leaseSeconds: number;
  /** Attempts (starts on any host, recorded in the bucket) after which a job goes to the dead-letter queue. @default 5 */
  readonly maxAttempts: number;
  /** Seconds between checkpoint uploads while a job runs (also saved at exit and after SIGTERM). @default 60 */
  readonly checkpointSeconds: number;
  /** Seconds between log chunk uploads. @default 10 */
  readonly logShipSeconds: number;
  /** Wait between receives that found nothing (or the SQS long poll). @default 10 */
  readonly pollSeconds: number;
  /**
   * Longest run of one attempt of a cluster job (a job's own `maxDurationSeconds`/`timeoutSeconds` is
   * capped by it); past it the job is stopped and fails with class `timeout`.
   * @default - no cluster-wide cap: only the job's own limit applies
   */
  readonly maxDurationSeconds?: number;
}

export type ClusterOptionsInput = Partial<ClusterOptions> & { readonly queue: string; readonly artifacts: string };

/** Merges the defaults, then checks. Throws an Error naming the option, the value and what is allowed. */
export function resolveClusterOptions(input: ClusterOptionsInput): ClusterOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ClusterOptionsInput;
  const o: ClusterOptions = { leaseSeconds: 60, maxAttempts: 5, checkpointSeconds: 60, logShipSeconds: 10, pollSeconds: 10, ...defined };
  const fail = (name: string, value: unknown, allowed: string): never => {
    throw new ServeOptionError(`invalid option ${name}=${JSON.stringify(value)}: ${allowed}`);
  };
  if (!o.artifacts) fail('--cluster-artifacts', o.artifacts ?? '', 'required with --queue: the bucket prefix (s3://, gs://, file://) for job records, checkpoints and logs');
  try {
    parseQueueUrl(o.queue);
    if (o.deadLetterQueue !== undefined) parseQueueUrl(o.deadLetterQueue, true);
    schemeOf(o.artifacts);
  } catch (e) {
    throw new ServeOptionError(`invalid option: ${(e as Error).message}`);
  }
  // SQS visibility and Pub/Sub ack deadlines both stop at 12 h / 600 s per extension: 600 fits both
  if (!Number.isFinite(o.leaseSeconds) || o.leaseSeconds < 1 || o.leaseSeconds > 600) fail('--lease-seconds', o.leaseSeconds, 'a number 1..600');
  // Pub/Sub's maxDeliveryAttempts is 5..100; SQS maxReceiveCount 1..1000
  if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1 || o.maxAttempts > 100) fail('--max-attempts', o.maxAttempts, 'an integer 1..100');
  if (!Number.isFinite(o.checkpointSeconds) || o.checkpointSeconds <= 0) fail('--checkpoint-seconds', o.checkpointSeconds, 'a number > 0');
  if (!Number.isFinite(o.logShipSeconds) || o.logShipSeconds <= 0) fail('--log-ship-seconds', o.logShipSeconds, 'a number > 0');
  if (!Number.isFinite(o.pollSeconds) || o.pollSeconds < 0 || o.pollSeconds > 20) fail('--queue-poll-seconds', o.pollSeconds, 'a number 0..20');
  if (o.maxDurationSeconds !== undefined && !(Number.isFinite(o.maxDurationSeconds) && o.maxDurationSeconds > 0)) fail('--max-duration-seconds', o.maxDurationSeconds, 'a number of seconds > 0');
  return o;
}
