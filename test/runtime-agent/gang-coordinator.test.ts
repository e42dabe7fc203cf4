/**
 * GangCoordinator's move after a rank ends, on a file:// bucket: a bucket error on the gang record is
 * tried again (no other host may see this rank end, so one failed try must not leave the gang where it
 * is), and a queue that keeps refusing the next attempt fails the gang with the cause instead of
 * leaving it queued with no ranks.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { attemptUri, GANG_ENV, GangCoordinator, type GangRecord } from '../../src/runtime-agent/cluster/gang';
import type { ClusterWorker } from '../../src/runtime-agent/cluster/worker';
import type { Scheduler } from '../../src/runtime-agent/scheduler';
import { joinUri, Storage } from '../../src/runtime-agent/storage/index';

let root: string;
let artifacts: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(tmpdir(), 'mlinfra-gang-coord-'));
  artifacts = pathToFileURL(root).href;
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A Storage whose first `failWrites` conditional writes of gang.json fail as a bucket 503 would. */
function flakyStorage(failWrites: number): Storage {
  const real = new Storage();
  let left = failWrites;
  return new Proxy(real, {
    get(target, prop, recv) {
      if (prop === 'writeIf') {
        return async (uri: string, text: string, tag: string | null) => {
          if (uri.endsWith('/gang.json') && tag !== null && left-- > 0) throw new Error('503 SlowDown');
          return target.writeIf(uri, text, tag);
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** The worker's queue side, as the coordinator uses it: enqueue (refusing the first `refuse` calls) and cancel. */
function fakeWorker(refuse = 0): { worker: ClusterWorker; enqueued: string[]; cancelled: string[]; states: Map<string, string> } {
  const enqueued: string[] = [];
  const cancelled: string[] = [];
  /** The rank jobs' record states, as the bucket would hold them. */
  const states = new Map<string, string>();
  let n = 0;
  let left = refuse;
  const worker = {
    store: { read: async (id: string) => (states.has(id) ? { id, state: states.get(id) } : null) },
    async enqueue() {
      if (left-- > 0) throw new Error('queue unavailable');
      const id = `mx${String(++n).padStart(6, '0')}-000000000000`;
      enqueued.push(id);
      return { id };
    },
    async cancel(id: string) {
      cancelled.push(id);
      return null;
    },
  } as unknown as ClusterWorker;
  return { worker, enqueued, cancelled, states };
}

async function gangRead(storage: Storage, id: string): Promise<GangRecord> {
  return JSON.parse((await storage.readVersioned(joinUri(artifacts, `gangs/${id}/gang.json`)))!.text) as GangRecord;
}

async function until<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const logger = pino({ level: 'silent' });

/** A coordinator listening to its own scheduler events; `rankLost` marks attempt 1 lost and ends a rank of it here. */
function host(worker: ClusterWorker, storage: Storage, stuckMs = 30_000): { c: GangCoordinator; rankLost: (id: string) => Promise<void> } {
  const c = new GangCoordinator(worker, storage, artifacts, 4, logger, 10, stuckMs);
  const sched = new EventEmitter();
  c.listen(sched as unknown as Scheduler);
  return {
    c,
    async rankLost(id) {
      await storage.writeIf(joinUri(attemptUri(joinUri(artifacts, `gangs/${id}`), 1), 'abort.json'),
        JSON.stringify({ kind: 'lost', rank: 1, host: 'h/1', reason: 'its host was lost', at: '' }), null);
      sched.emit('job:finished', { state: 'failed', spec: { env: { [GANG_ENV.id]: id, [GANG_ENV.attempt]: '1' } } });
    },
  };
}

const spec = { argv: ['true'], env: {}, retries: 0 } as never;

test('a bucket error on the gang record is tried again: the lost attempt still re-queues the gang whole', async () => {
  const storage = new Storage();
  const { worker, enqueued } = fakeWorker();
  const g0 = await host(worker, storage).c.submit({ spec, nodes: 2, gpusPerNode: 0 });
  expect(enqueued).toHaveLength(2);
  // the writes that follow (the move) fail twice, then go through
  await host(worker, flakyStorage(2)).rankLost(g0.id);
  const g = await until(async () => {
    const r = await gangRead(storage, g0.id);
    return r.attempts.length === 2 ? r : undefined;
  });
  expect(g.state).toBe('queued');
  expect(g.attempts[0]).toMatchObject({ outcome: 'lost', reason: 'its host was lost' });
  expect(g.attempts[1].rankJobs).toEqual(enqueued.slice(2));
  expect(enqueued).toHaveLength(4);
});

test('a queue that keeps refusing the next attempt fails the gang with the cause; nothing is left queued', async () => {
  const storage = new Storage();
  const first = fakeWorker();
  const g0 = await host(first.worker, storage).c.submit({ spec, nodes: 2, gpusPerNode: 0 });
  // this host's queue refuses from now on
  const refusing = fakeWorker(1000);
  await host(refusing.worker, storage).rankLost(g0.id);
  const g = await until(async () => {
    const r = await gangRead(storage, g0.id);
    return r.state !== 'queued' ? r : undefined;
  });
  expect(g.state).toBe('failed');
  expect(g.failure).toMatchObject({ class: 'queue', reason: expect.stringMatching(/its host was lost; attempt 2 could not be enqueued: .*queue unavailable/) });
  expect(g.attempts).toHaveLength(1);
  expect(g.attempts[0]).toMatchObject({ outcome: 'lost' });
  // attempt 1's ranks were cancelled (they must not run on)
  expect(refusing.cancelled).toEqual(expect.arrayContaining(first.enqueued));
});

test('a look moves on a gang whose attempt ended on every rank when no host did (the host whose rank ended last is gone)', async () => {
  const storage = new Storage();
  const { worker, enqueued, states } = fakeWorker();
  const h = host(worker, storage, 300);
  const g0 = await h.c.submit({ spec, nodes: 2, gpusPerNode: 0 });
  // attempt 1 aborted (rank 1's program failed); rank 0 still runs: a look changes nothing
  await storage.writeIf(joinUri(attemptUri(joinUri(artifacts, `gangs/${g0.id}`), 1), 'abort.json'),
    JSON.stringify({ kind: 'exit', rank: 1, host: 'h/2', reason: 'rank 1 on h/2 exited with code 1', at: '' }), null);
  states.set(enqueued[0], 'running').set(enqueued[1], 'failed');
  const look = async () => h.c.look(await gangRead(storage, g0.id), await h.c.store.progress(g0.id, 1));
  expect((await look()).attempts).toHaveLength(1);
  // both ranks ended, and no host moved the gang on (the one whose rank ended last was killed)
  states.set(enqueued[0], 'failed');
  expect((await look()).attempts).toHaveLength(1); // first seen: the host that should move it gets its time
  await new Promise((r) => setTimeout(r, 350));
  const g = await look();
  // spec.retries 0 and an exit abort: the move fails the gang, as the rank's own host would have
  expect(g.state).toBe('failed');
  expect(g.failure).toMatchObject({ class: 'exit', reason: expect.stringMatching(/rank 1 on h\/2 exited with code 1; retries 0 used/) });
  expect(g.attempts[0]).toMatchObject({ outcome: 'exit' });
});

test('a look moves on a gang whose ranks all finished when no host did: it succeeds', async () => {
  const storage = new Storage();
  const { worker, enqueued, states } = fakeWorker();
  const h = host(worker, storage, 0);
  const g0 = await h.c.submit({ spec, nodes: 2, gpusPerNode: 0 });
  const dir = attemptUri(joinUri(artifacts, `gangs/${g0.id}`), 1);
  for (const r of [0, 1]) await storage.writeIf(joinUri(dir, `done-${r}.json`), '{}', null);
  states.set(enqueued[0], 'succeeded').set(enqueued[1], 'succeeded');
  const look = async () => h.c.look(await gangRead(storage, g0.id), await h.c.store.progress(g0.id, 1));
  await look();
  const g = await look();
  expect(g).toMatchObject({ state: 'succeeded', failure: null });
  expect(g.attempts[0]).toMatchObject({ outcome: 'succeeded' });
});

test('a look queues the next attempt when the host that ended the last one stopped before queuing it; two lookers queue it once', async () => {
  const storage = new Storage();
  const { worker, enqueued, cancelled } = fakeWorker();
  const a = host(worker, storage, 100);
  const b = host(worker, storage, 100);
  const g0 = await a.c.submit({ spec, nodes: 2, gpusPerNode: 0 });
  // what a winner leaves when it dies between its two writes: attempt 1 ended (lost), no attempt 2
  await a.c.store.update(g0.id, (r) => {
    Object.assign(r.attempts[0], { endedAt: new Date().toISOString(), outcome: 'lost', reason: 'its host was lost' });
    return true;
  });
  const p = { done: 0, aborted: true };
  for (const h of [a, b]) await h.c.look(await gangRead(storage, g0.id), p);
  // within twice the wait: the winner may still be retrying its queue
  await new Promise((r) => setTimeout(r, 120));
  for (const h of [a, b]) expect((await h.c.look(await gangRead(storage, g0.id), p)).attempts).toHaveLength(1);
  await new Promise((r) => setTimeout(r, 120));
  const stale = await gangRead(storage, g0.id);
  const [ga, gb] = await Promise.all([a.c.look(stale, p), b.c.look(stale, p)]);
  const g = await gangRead(storage, g0.id);
  expect(g.state).toBe('queued');
  expect(g.attempts).toHaveLength(2);
  expect(g.attempts[0]).toMatchObject({ outcome: 'lost' });
  // both lookers sent ranks; the record names one set and the other was cancelled
  expect(enqueued).toHaveLength(6);
  expect(g.attempts[1].rankJobs).toHaveLength(2);
  const spare = enqueued.slice(2).filter((j) => !g.attempts[1].rankJobs.includes(j));
  expect(spare).toHaveLength(2);
  expect(cancelled).toEqual(expect.arrayContaining(spare));
  for (const j of g.attempts[1].rankJobs) expect(cancelled).not.toContain(j);
  expect([ga.attempts.length, gb.attempts.length]).toEqual([2, 2]);
});
