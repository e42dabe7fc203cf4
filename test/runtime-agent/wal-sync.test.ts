import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDatabase } from '../../src/runtime-agent/db';
import { Journal } from '../../src/runtime-agent/journal';
import type { JobSpec } from '../../src/runtime-agent/types';

const spec = (n: number): JobSpec => ({ argv: ['/bin/true', String(n)], env: {}, gpus: 0, priority: 0, retries: 0, kind: 'train' });
const dirs: string[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-walsync-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Rows another connection sees (what a restarted agent would read from the files). */
function countJobs(file: string): number {
  const db = openDatabase(file);
  try {
    return Number((db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

describe('journal group commit (deferred transactions + WalSync)', () => {
  test('commits made while an fdatasync runs share the next one; every waiter resolves after its rows are in the WAL', async () => {
    const j = new Journal(tmp());
    j.markOpen();
    const before = j.wal.syncs;
    const waits: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) {
      j.transaction(() => j.insertJob(`j-${i}`, spec(i)), 'deferred');
      waits.push(j.sync());
    }
    await Promise.all(waits);
    // the first sync starts at once; the 19 commits made while it runs share a second one
    expect(j.wal.syncs - before).toBe(2);
    expect(countJobs(j.file)).toBe(20);
    // a deferred transaction leaves the connection at synchronous = FULL for the others
    j.insertJob('j-full', spec(99));
    expect(fs.statSync(`${j.file}-wal`).size).toBeGreaterThan(0);
    j.close();
    expect(countJobs(j.file)).toBe(21);
  });

  test('a deferred transaction that throws is rolled back, and the connection stays at synchronous = FULL', async () => {
    const j = new Journal(tmp());
    j.markOpen();
    expect(() => j.transaction(() => {
      j.insertJob('j-a', spec(1));
      throw new Error('boom');
    }, 'deferred')).toThrow('boom');
    await j.sync();
    expect(countJobs(j.file)).toBe(0);
    const sync = (j as unknown as { db: { prepare(s: string): { get(): unknown } } }).db.prepare('PRAGMA synchronous').get() as { synchronous: number };
    expect(sync.synchronous).toBe(2); // FULL
    j.close();
  });

  test('close() syncs waiters that have not started yet and refuses later syncs', async () => {
    const j = new Journal(tmp());
    j.markOpen();
    j.transaction(() => j.insertJob('j-1', spec(1)), 'deferred');
    const first = j.sync(); // in flight on the thread pool
    j.transaction(() => j.insertJob('j-2', spec(2)), 'deferred');
    const second = j.sync(); // waits for the next fdatasync: close() does it
    j.close();
    await expect(first).resolves.toBeUndefined();
    await expect(second).resolves.toBeUndefined();
    await expect(j.sync()).rejects.toThrow('closed');
    expect(countJobs(j.file)).toBe(2);
  });

  test('a missing WAL file rejects the waiters with the error (the caller notes the fault)', async () => {
    const d = tmp();
    const j = new Journal(d);
    j.markOpen();
    // the WAL is replaced under the journal: the next sync opens the new file; with none there it fails
    const wal = `${j.file}-wal`;
    fs.renameSync(wal, `${wal}.moved`);
    await expect(j.sync()).rejects.toMatchObject({ code: 'ENOENT' });
    fs.renameSync(`${wal}.moved`, wal);
    await expect(j.sync()).resolves.toBeUndefined();
    j.close();
  });
});
