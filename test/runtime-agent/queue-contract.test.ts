/**
 * The queue contract, the same scenarios on the SQS fake and on the real Pub/Sub emulator: lease,
 * hidden while leased, lapse and redelivery with a growing attempt, extend, release, ack, dead-letter.
 * Running both keeps the fake honest: a behaviour the fake invented would fail on Pub/Sub.
 */
import { openQueue, type JobQueue } from '../../src/runtime-agent/queue/index';
import { describeWithTools, TOOLS } from '../support/tools';
import { sleep } from './helpers';
import { startPubSubServer, startSqsServer, type QueueServer } from './queue-helpers';

const LEASE = 2;

function contract(start: () => Promise<QueueServer>): void {
  let server: QueueServer;
  let n = 0;
  beforeAll(async () => {
    server = await start();
  }, 120_000);
  afterAll(async () => server?.close());

  async function fresh(): Promise<{ q: JobQueue; dead: () => Promise<Array<{ body: string; reason: string | undefined }>> }> {
    const f = await server.create(`contract-${++n}`, { leaseSeconds: LEASE, maxDeliveries: 10 });
    return { q: openQueue(f.url, f.deadLetterUrl, { ...process.env, ...f.env }), dead: () => f.deadLettered() };
  }

  test('a leased message is hidden until its lease lapses, then comes back with the next attempt', async () => {
    const { q } = await fresh();
    await q.send('{"job":1}');
    const [m] = await q.receive(1, LEASE, 0);
    expect(m).toMatchObject({ body: '{"job":1}', attempt: 1 });
    expect(await q.receive(1, LEASE, 0)).toEqual([]);
    await sleep(LEASE * 1000 + 700);
    const [again] = await q.receive(1, LEASE, 0);
    expect(again).toMatchObject({ body: '{"job":1}', attempt: 2, messageId: m.messageId });
    await q.ack(again);
  }, 30_000);

  test('extend keeps it hidden past the first lease; ack deletes it', async () => {
    const { q } = await fresh();
    await q.send('x');
    const [m] = await q.receive(1, LEASE, 0);
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      await q.extend(m, LEASE);
    }
    expect(await q.receive(1, LEASE, 0)).toEqual([]);
    await q.ack(m);
    await sleep(LEASE * 1000 + 500);
    expect(await q.receive(1, LEASE, 0)).toEqual([]);
  }, 30_000);

  test('release makes it visible at once, as the next attempt', async () => {
    const { q } = await fresh();
    await q.send('y');
    const [m] = await q.receive(1, 60, 0);
    await q.release(m, 0);
    const [again] = await q.receive(1, LEASE, 0);
    expect(again).toMatchObject({ body: 'y', attempt: 2 });
    await q.ack(again);
  }, 30_000);

  test('deadLetter moves the body to the dead-letter queue with the reason', async () => {
    const { q, dead } = await fresh();
    await q.send('{"poison":true}');
    const [m] = await q.receive(1, LEASE, 0);
    await q.deadLetter(m, 'killed its host 3 times');
    expect(await dead()).toEqual([{ body: '{"poison":true}', reason: 'killed its host 3 times' }]);
    await sleep(LEASE * 1000 + 500);
    expect(await q.receive(1, LEASE, 0)).toEqual([]);
  }, 30_000);

  test('an unreachable queue fails the send (nothing is reported as sent)', async () => {
    const f = await server.create(`contract-${++n}`);
    const port = 9; // discard: nothing listens on loopback
    const url = f.kind === 'sqs' ? `http://127.0.0.1:${port}/000000000000/nowhere` : f.url;
    const env = f.kind === 'sqs' ? { ...process.env, ...f.env } : { ...process.env, PUBSUB_EMULATOR_HOST: `127.0.0.1:${port}` };
    await expect(openQueue(url, undefined, env).send('z')).rejects.toThrow();
  }, 30_000);
}

describe('queue contract: SQS (the fake)', () => {
  contract(startSqsServer);

  test('the fake refuses a body over 256 KiB, as SQS does', async () => {
    const s = await startSqsServer();
    try {
      const f = await s.create('big');
      const q = openQueue(f.url, undefined, { ...process.env, ...f.env });
      expect(q.maxMessageBytes).toBe(262_144);
      await expect(q.send('a'.repeat(262_145))).rejects.toThrow(/shorter than 262144/);
      await expect(q.send('a'.repeat(262_144))).resolves.toEqual(expect.any(String));
    } finally {
      await s.close();
    }
  });
  test('receipt handles as SQS documents them: an older one deletes nothing, the lapsed latest cannot extend', async () => {
    const s = await startSqsServer();
    try {
      const f = await s.create('handles', { leaseSeconds: 1 });
      const q = openQueue(f.url, undefined, { ...process.env, ...f.env });
      await q.send('h');
      const [first] = await q.receive(1, 1, 0);
      await sleep(1300);
      // the lease lapsed: its holder can no longer extend it
      await expect(q.extend(first, 5)).rejects.toThrow(/not in flight/);
      const [second] = await q.receive(1, 5, 0);
      expect(second.attempt).toBe(2);
      await expect(q.extend(first, 5)).rejects.toThrow(/not a valid receipt handle/);
      // a late ack by the first holder succeeds but deletes nothing (DeleteMessage API reference)
      await q.ack(first);
      expect(s.fake.staleDeletes).toBe(1);
      expect(s.fake.bodies('handles')).toEqual(['h']);
      // a release leaves the latest handle valid for a delete until the next receive
      await q.release(second, 0);
      await q.ack(second);
      expect(s.fake.bodies('handles')).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describeWithTools([TOOLS.pubsubEmulator])('queue contract: Pub/Sub (the emulator)', () => {
  contract(startPubSubServer);
});
