/**
 * A small SQS-compatible server on loopback for the agent's queue tests (AWS JSON 1.0 protocol, the
 * one @aws-sdk/client-sqs speaks). It covers only the calls the agent and its tests make:
 * CreateQueue (VisibilityTimeout, RedrivePolicy), SendMessage, ReceiveMessage (MaxNumberOfMessages,
 * VisibilityTimeout, WaitTimeSeconds long poll, ApproximateReceiveCount), ChangeMessageVisibility,
 * DeleteMessage, GetQueueAttributes (ApproximateNumberOfMessages[NotVisible]).
 * Modelled: visibility timeouts, receive counts, redrive to a dead-letter queue when a receive
 * would exceed maxReceiveCount, the 256 KiB body limit, a fresh receipt handle per receive.
 * Not modelled: authentication and signatures (any credentials pass), FIFO queues, delay queues,
 * message retention, batch calls, message attributes on receive, the 12 h visibility cap, and SQS's
 * occasional duplicate delivery.
 * Receipt handles as SQS documents them: each receive issues a new one; a handle stays the message's
 * latest after a release (ChangeMessageVisibility 0) until the next receive, so a delete with it still
 * deletes; a DeleteMessage with an older handle "succeeds, but the message will not be deleted"
 * (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html);
 * ChangeMessageVisibility with an older handle is refused (ReceiptHandleIsInvalid), and with the
 * latest one on a message no longer in flight (released or lapsed) answers MessageNotInflight.
 */
import { createHash, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

interface Message {
  readonly id: string;
  readonly body: string;
  readonly attributes: Record<string, unknown>;
  receiveCount: number;
  visibleAtMs: number;
  handle: string | null;
  /** Handles of earlier receives: a delete with one succeeds and deletes nothing. */
  readonly stale: Set<string>;
}

interface Queue {
  readonly name: string;
  readonly url: string;
  visibilityTimeout: number;
  redrive?: { deadLetterTargetArn: string; maxReceiveCount: number };
  readonly messages: Message[];
  readonly deadLettered: Message[];
}

class SqsError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

const MAX_BODY = 262_144;
const ACCOUNT = '000000000000';

export class FakeSqs {
  private server: http.Server | undefined;
  private readonly queues = new Map<string, Queue>();
  endpoint = '';
  /** Calls answered, by operation (for tests that check what the agent called). */
  readonly calls = new Map<string, number>();
  /** DeleteMessage calls with an older receipt handle: answered 200, nothing deleted (as SQS does). */
  staleDeletes = 0;

  async start(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Creates a queue (with a redrive policy to `deadLetter` after `maxReceiveCount` receives). Returns its URL. */
  createQueue(name: string, o: { visibilityTimeout?: number; deadLetter?: string; maxReceiveCount?: number } = {}): string {
    const url = `${this.endpoint}/${ACCOUNT}/${name}`;
    const q: Queue = { name, url, visibilityTimeout: o.visibilityTimeout ?? 30, messages: [], deadLettered: [] };
    if (o.deadLetter) q.redrive = { deadLetterTargetArn: `arn:aws:sqs:us-east-1:${ACCOUNT}:${o.deadLetter}`, maxReceiveCount: o.maxReceiveCount ?? 5 };
    this.queues.set(name, q);
    return url;
  }

  /** Bodies held by a queue (visible or not), oldest first. */
  bodies(name: string): string[] {
    return (this.queues.get(name)?.messages ?? []).map((m) => m.body);
  }

  /** Messages held by a queue with the attributes they were sent with (a string attribute as its value). */
  held(name: string): Array<{ body: string; attributes: Record<string, string | undefined> }> {
    return (this.queues.get(name)?.messages ?? []).map((m) => ({
      body: m.body, attributes: Object.fromEntries(Object.entries(m.attributes).map(([k, v]) => [k, (v as { StringValue?: string }).StringValue])),
    }));
  }

  private queueOf(url: unknown): Queue {
    const name = typeof url === 'string' ? url.split('/').pop() ?? '' : '';
    const q = this.queues.get(name);
    if (!q) throw new SqsError('QueueDoesNotExist', `The specified queue does not exist: ${String(url)}`);
    return q;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : '';
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    let status = 200;
    let out: unknown;
    try {
      const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, any>;
      out = await this.dispatch(op, input);
    } catch (e) {
      const err = e instanceof SqsError ? e : new SqsError('InternalError', (e as Error).message, 500);
      status = err.status;
      out = { __type: `com.amazonaws.sqs#${err.type}`, message: err.message };
      res.setHeader('x-amzn-query-error', `AWS.SimpleQueueService.${err.type};Sender`);
    }
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(out));
  }

  private async dispatch(op: string, i: Record<string, any>): Promise<unknown> {
    switch (op) {
      case 'CreateQueue': {
        const a = (i.Attributes ?? {}) as Record<string, string>;
        const redrive = a.RedrivePolicy ? JSON.parse(a.RedrivePolicy) as { deadLetterTargetArn: string; maxReceiveCount: number } : undefined;
        const url = this.createQueue(String(i.QueueName), {
          visibilityTimeout: a.VisibilityTimeout ? Number(a.VisibilityTimeout) : undefined,
          deadLetter: redrive?.deadLetterTargetArn.split(':').pop(), maxReceiveCount: redrive ? Number(redrive.maxReceiveCount) : undefined,
        });
        return { QueueUrl: url };
      }
      case 'SendMessage': {
        const q = this.queueOf(i.QueueUrl);
        const body = String(i.MessageBody ?? '');
        if (body.length === 0) throw new SqsError('InvalidParameterValue', 'The request must contain the parameter MessageBody.');
        if (Buffer.byteLength(body) > MAX_BODY) throw new SqsError('InvalidParameterValue', `One or more parameters are invalid. Reason: Message must be shorter than ${MAX_BODY} bytes.`);
        const m: Message = { id: randomUUID(), body, attributes: i.MessageAttributes ?? {}, receiveCount: 0, visibleAtMs: 0, handle: null, stale: new Set() };
        q.messages.push(m);
        return { MessageId: m.id, MD5OfMessageBody: md5(body) };
      }
      case 'ReceiveMessage': {
        const q = this.queueOf(i.QueueUrl);
        const max = Number(i.MaxNumberOfMessages ?? 1);
        if (!Number.isInteger(max) || max < 1 || max > 10) throw new SqsError('InvalidParameterValue', 'MaxNumberOfMessages must be 1..10');
        const visibility = i.VisibilityTimeout === undefined ? q.visibilityTimeout : Number(i.VisibilityTimeout);
        const deadline = Date.now() + Math.min(20, Number(i.WaitTimeSeconds ?? 0)) * 1000;
        for (;;) {
          const got = this.take(q, max, visibility);
          if (got.length > 0 || Date.now() >= deadline) {
            return { Messages: got.map((m) => ({ MessageId: m.id, ReceiptHandle: m.handle, MD5OfBody: md5(m.body), Body: m.body, Attributes: { ApproximateReceiveCount: String(m.receiveCount) } })) };
          }
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      case 'ChangeMessageVisibility': {
        const q = this.queueOf(i.QueueUrl);
        const m = this.byHandle(q, i.ReceiptHandle);
        const t = Number(i.VisibilityTimeout);
        if (!Number.isFinite(t) || t < 0 || t > 43_200) throw new SqsError('InvalidParameterValue', 'VisibilityTimeout must be 0..43200');
        if (m.visibleAtMs <= Date.now()) throw new SqsError('MessageNotInflight', 'The message referred to is not in flight.');
        m.visibleAtMs = Date.now() + t * 1000;
        return {};
      }
      case 'DeleteMessage': {
        const q = this.queueOf(i.QueueUrl);
        if (q.messages.some((x) => x.stale.has(String(i.ReceiptHandle)))) {
          this.staleDeletes++;
          return {};
        }
        const m = this.byHandle(q, i.ReceiptHandle);
        q.messages.splice(q.messages.indexOf(m), 1);
        return {};
      }
      case 'GetQueueAttributes': {
        const q = this.queueOf(i.QueueUrl);
        const now = Date.now();
        const visible = q.messages.filter((m) => m.visibleAtMs <= now).length;
        return { Attributes: { ApproximateNumberOfMessages: String(visible), ApproximateNumberOfMessagesNotVisible: String(q.messages.length - visible) } };
      }
      default:
        throw new SqsError('InvalidAction', `the fake SQS does not implement ${JSON.stringify(op)}`);
    }
  }

  private byHandle(q: Queue, handle: unknown): Message {
    const m = q.messages.find((x) => x.handle !== null && x.handle === handle);
    if (!m) throw new SqsError('ReceiptHandleIsInvalid', `The input receipt handle "${String(handle).slice(0, 40)}" is not a valid receipt handle.`);
    return m;
  }

  /** Leases visible messages, oldest first; one past the redrive limit moves to the dead-letter queue instead. */
  private take(q: Queue, max: number, visibility: number): Message[] {
    const now = Date.now();
    const out: Message[] = [];
    for (const m of [...q.messages]) {
      if (out.length >= max) break;
      if (m.visibleAtMs > now) continue;
      if (q.redrive && m.receiveCount >= q.redrive.maxReceiveCount) {
        q.messages.splice(q.messages.indexOf(m), 1);
        q.deadLettered.push(m);
        const dlq = this.queues.get(q.redrive.deadLetterTargetArn.split(':').pop()!);
        dlq?.messages.push({ ...m, id: m.id, receiveCount: 0, visibleAtMs: 0, handle: null, stale: new Set() });
        continue;
      }
      m.receiveCount++;
      m.visibleAtMs = now + visibility * 1000;
      if (m.handle !== null) m.stale.add(m.handle);
      m.handle = randomUUID();
      out.push(m);
    }
    return out;
  }
}

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}
