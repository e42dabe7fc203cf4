/**
 * Gang liveness on a file:// bucket with real rank processes: a rank whose peer's host was lost
 * (registered, then silent) ends the attempt as `lost`, not as its program's failure; a peer that
 * keeps beating leaves a failure charged as `exit`; a finished peer is never taken for a lost one.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { attemptUri, GANG_ENV, gangUri } from '../../src/runtime-agent/cluster/gang';
import { Heartbeat, HEARTBEAT_ENV, heartbeatMs, LOST_AFTER_BEATS, Peers } from '../../src/runtime-agent/gang-liveness';
import { EXIT_ABORTED, gangRankMain } from '../../src/runtime-agent/gang-rank';
import { joinUri, Storage } from '../../src/runtime-agent/storage/index';

let root: string;
let bucket: string;
const storage = new Storage();
beforeEach(() => {
  root = fs.mkdtempSync(path.join(tmpdir(), 'mlinfra-gang-live-'));
  bucket = pathToFileURL(root).href;
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const BEAT_MS = 200;
const gang = (id: string) => gangUri(bucket, id);

async function queuedGang(id: string, nodes: number): Promise<void> {
  await storage.writeIf(joinUri(gang(id), 'gang.json'), JSON.stringify({ v: 1, id, nodes, gpusPerNode: 0, timeoutSeconds: 30, spec: { argv: ['true'] }, state: 'queued', attempts: [], createdAt: '', updatedAt: '' }), null);
}

/** A rank that registered and then went silent: what a host killed after the barrier leaves. */
async function registerOnly(id: string, rank: number): Promise<void> {
  await storage.writeIf(joinUri(attemptUri(gang(id), 1), `rank-${rank}.json`), JSON.stringify({ rank, host: 'gone/1', addr: '127.0.0.1', ...(rank === 0 ? { port: 1 } : {}), at: '' }), null);
}

function rankEnv(id: string, rank: number, nodes: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH, [GANG_ENV.id]: id, [GANG_ENV.uri]: gang(id), [GANG_ENV.attempt]: '1', [GANG_ENV.nodeRank]: String(rank),
    [GANG_ENV.nnodes]: String(nodes), [GANG_ENV.timeout]: '20', MLINFRA_GANG_ADDRESS: '127.0.0.1', [HEARTBEAT_ENV]: String(BEAT_MS / 1000),
  };
}

const abortOf = async (id: string) => JSON.parse((await storage.readVersioned(joinUri(attemptUri(gang(id), 1), 'abort.json')))!.text);
const quiet = (): void => undefined;

test('the beat is MLINFRA_GANG_HEARTBEAT_SECONDS (default 10 s, at least 0.2 s); lost after 3.5 beats', () => {
  expect(heartbeatMs({})).toBe(10_000);
  expect(heartbeatMs({ [HEARTBEAT_ENV]: '2.5' })).toBe(2500);
  expect(heartbeatMs({ [HEARTBEAT_ENV]: '0.01' })).toBe(200);
  expect(heartbeatMs({ [HEARTBEAT_ENV]: 'soon' })).toBe(10_000);
  expect(LOST_AFTER_BEATS).toBe(3.5);
});

test('a peer that stops beating is lost after the window; one that finished is not; one that beats is not', async () => {
  const dir = attemptUri(gang('g0'), 1);
  const beats = [1, 2, 3].map((r) => new Heartbeat(storage, dir, r, `host-${r}`, BEAT_MS, quiet));
  for (const b of beats) await b.start();
  const peers = new Peers(storage, dir, 4, 0, BEAT_MS);
  expect((await peers.look()).lost).toEqual([]);
  beats[0].stop(); // rank 1: its host is gone
  beats[1].stop(); // rank 2: finished
  await storage.writeIf(joinUri(dir, 'done-2.json'), '{}', null);
  await new Promise((r) => setTimeout(r, BEAT_MS * LOST_AFTER_BEATS + 400));
  const l = await peers.look();
  beats[2].stop();
  expect(l.lost.map((p) => [p.rank, p.host])).toEqual([[1, 'host-1']]);
  expect(l.lost[0].silentMs).toBeGreaterThan(BEAT_MS * LOST_AFTER_BEATS);
  expect(l.aborted).toBe(false);
});

test('a last beat first seen after this rank\'s program failed is not taken for a live peer', async () => {
  // the race a kill -9 makes: the peer beats, dies at once; our program fails on the broken
  // collective before our next look, so that last beat is first seen while settling
  const dir = attemptUri(gang('g5'), 1);
  const peer = new Heartbeat(storage, dir, 1, 'host-1', BEAT_MS, quiet);
  await peer.start();
  const peers = new Peers(storage, dir, 2, 0, BEAT_MS);
  await peers.look();
  await new Promise((r) => setTimeout(r, BEAT_MS * 1.5));
  peer.stop(); // beat 2 is written, never seen, and the host is gone
  const t0 = Date.now();
  const lost = await peers.settle();
  expect(lost.map((p) => p.rank)).toEqual([1]);
  expect(Date.now() - t0).toBeGreaterThan(BEAT_MS * LOST_AFTER_BEATS);
});

test('a rank whose program fails after its peer\'s host was lost ends the attempt as lost', async () => {
  await queuedGang('g1', 2);
  await registerOnly('g1', 1);
  const code = await gangRankMain(['sh', '-c', 'sleep 0.3; exit 1'], rankEnv('g1', 0, 2), quiet);
  expect(code).toBe(1);
  const a = await abortOf('g1');
  expect(a).toMatchObject({ kind: 'lost', rank: 0 });
  expect(a.reason).toMatch(/^rank 1 \(\?\) stopped reporting for \d+s: its host was lost; rank 0 on \S+ then exited with code 1$/);
}, 20_000);

test('a rank whose program hangs on a lost peer (a collective that never returns) is stopped, as lost', async () => {
  await queuedGang('g2', 2);
  await registerOnly('g2', 1);
  const t0 = Date.now();
  const code = await gangRankMain(['sleep', '30'], rankEnv('g2', 0, 2), quiet);
  expect(code).toBe(EXIT_ABORTED);
  expect(Date.now() - t0).toBeLessThan(15_000);
  expect(await abortOf('g2')).toMatchObject({ kind: 'lost', rank: 0, reason: expect.stringContaining('rank 0 stopped its program') });
}, 20_000);

test('a rank whose program fails while its peer beats is the program\'s failure (exit)', async () => {
  await queuedGang('g3', 2);
  await registerOnly('g3', 1);
  const peer = new Heartbeat(storage, attemptUri(gang('g3'), 1), 1, 'alive/2', BEAT_MS, quiet);
  await peer.start();
  try {
    const t0 = Date.now();
    const code = await gangRankMain(['sh', '-c', 'sleep 0.5; exit 4'], rankEnv('g3', 0, 2), quiet);
    expect(code).toBe(4);
    expect(await abortOf('g3')).toMatchObject({ kind: 'exit', rank: 0, reason: expect.stringMatching(/exited with code 4$/) });
    // decided on the peer's next beat, not after the lost window
    expect(Date.now() - t0).toBeLessThan(5_000);
  } finally {
    peer.stop();
  }
}, 20_000);

test('a rank registered twice (its first host was lost after registering) aborts the attempt as lost', async () => {
  await queuedGang('g4', 2);
  await registerOnly('g4', 1);
  const code = await gangRankMain(['true'], rankEnv('g4', 1, 2), quiet);
  expect(code).toBe(EXIT_ABORTED);
  expect(await abortOf('g4')).toMatchObject({ kind: 'lost', reason: expect.stringContaining('its first host was lost') });
});
