/** Queue fixtures for the cluster tests: the SQS fake and the real Pub/Sub emulator, behind one shape. */
import { spawn, type ChildProcess } from 'node:child_process';
import { FakeSqs } from '../support/fake-sqs';
import { freePort, requireBundle, stopAllAgents, waitFor } from './helpers';

/** One cluster queue (and its dead-letter queue) to point agents at. */
export interface QueueFixture {
  readonly kind: 'sqs' | 'pubsub';
  /** serve --queue */
  readonly url: string;
  /** serve --dead-letter-queue */
  readonly deadLetterUrl: string;
  /** Environment the agents (and in-process clients) need to reach it. */
  readonly env: Record<string, string>;
  /** Bodies that reached the dead-letter queue so far (and the reason the agent gave, where it sent it). */
  deadLettered(): Promise<Array<{ body: string; reason: string | undefined }>>;
}

export interface QueueServer {
  readonly kind: 'sqs' | 'pubsub';
  /** A fresh queue pair; `name` must be unique on this server. */
  create(name: string, o?: { leaseSeconds?: number; maxDeliveries?: number }): Promise<QueueFixture>;
  close(): Promise<void>;
}

const SQS_ENV = { AWS_ACCESS_KEY_ID: 'fake', AWS_SECRET_ACCESS_KEY: 'fake', AWS_REGION: 'us-east-1' };

export async function startSqsServer(): Promise<QueueServer & { readonly fake: FakeSqs }> {
  const fake = new FakeSqs();
  await fake.start();
  return {
    kind: 'sqs', fake,
    async create(name, o = {}) {
      const dlqName = `${name}-dlq`;
      const dlqUrl = fake.createQueue(dlqName);
      // the queue's own redrive is only a backstop: deliveries also count hosts that looked and put a message back
      const url = fake.createQueue(name, { visibilityTimeout: o.leaseSeconds ?? 30, deadLetter: dlqName, maxReceiveCount: o.maxDeliveries ?? 100 });
      return {
        kind: 'sqs', url, deadLetterUrl: dlqUrl, env: SQS_ENV,
        deadLettered: async () => fake.held(dlqName).map((m) => ({ body: m.body, reason: m.attributes.reason })),
      };
    },
    close: () => fake.close(),
  };
}

type SqsServer = QueueServer & { readonly fake: FakeSqs };

/**
 * The SQS fake for the agents of one test file: started before its tests (with the bundle checked),
 * stopped after them with every agent. Call at the file's top level.
 */
export function sqsForFile(): SqsServer {
  let server: SqsServer | undefined;
  beforeAll(async () => {
    requireBundle();
    server = await startSqsServer();
  });
  afterAll(async () => {
    await stopAllAgents();
    await server?.close();
  });
  const started = (): SqsServer => {
    if (!server) throw new Error('the SQS fake starts in beforeAll: use it inside a test');
    return server;
  };
  return { kind: 'sqs', get fake() { return started().fake; }, create: (name, o) => started().create(name, o), close: async () => undefined };
}

/** serve flags of a cluster host on `q` with a file:// bucket (3 s leases, 0.2 s polls), then `extra`. */
export function clusterFlags(q: QueueFixture, bucket: string, ...extra: string[]): string[] {
  return ['--queue', q.url, '--dead-letter-queue', q.deadLetterUrl, '--cluster-artifacts', `file://${bucket}`, '--lease-seconds', '3', '--queue-poll-seconds', '0.2', ...extra];
}

const PROJECT = 'mlinfra-test';

/** Starts `gcloud beta emulators pubsub start` on a free loopback port; close() stops its process group. */
export async function startPubSubServer(): Promise<QueueServer & { readonly host: string }> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const proc: ChildProcess = spawn('gcloud', ['beta', 'emulators', 'pubsub', 'start', `--host-port=${host}`, `--project=${PROJECT}`, '--quiet'], {
    detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const base = `http://${host}/v1/projects/${PROJECT}`;
  await waitFor(`the Pub/Sub emulator on ${host}`, async () => {
    if (proc.exitCode !== null) throw new Error(`the emulator exited: ${out}`);
    return (await fetch(`${base}/topics`)).ok;
  }, 90_000, 250);
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${base}/${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : {};
  };
  return {
    kind: 'pubsub', host,
    async create(name, o = {}) {
      await call('PUT', `topics/${name}`);
      await call('PUT', `topics/${name}-dlq`);
      await call('PUT', `subscriptions/${name}-dlq-sub`, { topic: `projects/${PROJECT}/topics/${name}-dlq`, ackDeadlineSeconds: 60 });
      // Pub/Sub's maxDeliveryAttempts is 5..100; a backstop only, like SQS's redrive
      await call('PUT', `subscriptions/${name}-sub`, {
        topic: `projects/${PROJECT}/topics/${name}`, ackDeadlineSeconds: Math.max(10, o.leaseSeconds ?? 30),
        deadLetterPolicy: { deadLetterTopic: `projects/${PROJECT}/topics/${name}-dlq`, maxDeliveryAttempts: Math.min(100, Math.max(5, o.maxDeliveries ?? 100)) },
      });
      const seen: Array<{ body: string; reason: string | undefined }> = [];
      return {
        kind: 'pubsub', url: `pubsub://${PROJECT}/${name}/${name}-sub`, deadLetterUrl: `pubsub://${PROJECT}/${name}-dlq`,
        env: { PUBSUB_EMULATOR_HOST: host },
        async deadLettered() {
          const r = await call('POST', `subscriptions/${name}-dlq-sub:pull`, { maxMessages: 100, returnImmediately: true });
          const got = (r.receivedMessages ?? []) as Array<{ ackId: string; message: { data?: string; attributes?: Record<string, string> } }>;
          if (got.length > 0) await call('POST', `subscriptions/${name}-dlq-sub:acknowledge`, { ackIds: got.map((m) => m.ackId) });
          for (const m of got) seen.push({ body: Buffer.from(m.message.data ?? '', 'base64').toString('utf8'), reason: m.message.attributes?.reason });
          return [...seen];
        },
      };
    },
    async close() {
      if (proc.exitCode === null && proc.pid) {
        try {
          process.kill(-proc.pid, 'SIGTERM');
        } catch {
          // already gone
        }
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}
