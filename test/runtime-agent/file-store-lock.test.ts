/**
 * The file:// store's compare-and-swap lock: a writer killed mid-write (kill -9) leaves its lock
 * behind. One whose holder ran on this host and is gone is broken at once; one held by a live process
 * is waited for; one from another host is broken only when stale. Nothing already stored is lost.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileStore } from '../../src/runtime-agent/storage/file';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(tmpdir(), 'mlinfra-file-lock-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const store = new FileStore();
const uriOf = (name: string) => pathToFileURL(path.join(root, name)).href;

/** A pid that is certainly gone: a child that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a lock left by a writer on this host that is gone is broken at once; the write lands', async () => {
  const tag = await store.writeIf(uriOf('gang.json'), 'v1\n', null);
  fs.writeFileSync(path.join(root, 'gang.json.lock'), `${hostname()} ${deadPid()} abc\n`);
  const t0 = Date.now();
  const tag2 = await store.writeIf(uriOf('gang.json'), 'v2\n', tag);
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(tag2).not.toBe(tag);
  expect(fs.readFileSync(path.join(root, 'gang.json'), 'utf8')).toBe('v2\n');
  expect(fs.existsSync(path.join(root, 'gang.json.lock'))).toBe(false);
});

test('a lock held by a live process is waited for, not broken', async () => {
  const tag = await store.writeIf(uriOf('rec.json'), 'a\n', null);
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  const lock = path.join(root, 'rec.json.lock');
  fs.writeFileSync(lock, `${hostname()} ${holder.pid} live\n`);
  try {
    const w = store.writeIf(uriOf('rec.json'), 'b\n', tag);
    await new Promise((r) => setTimeout(r, 600));
    // still waiting: the holder lives, the lock is fresh
    expect(fs.readFileSync(lock, 'utf8')).toContain('live');
    expect(fs.readFileSync(path.join(root, 'rec.json'), 'utf8')).toBe('a\n');
    // the holder lets go (its write done): the waiter goes on
    fs.rmSync(lock);
    await w;
    expect(fs.readFileSync(path.join(root, 'rec.json'), 'utf8')).toBe('b\n');
  } finally {
    holder.kill('SIGKILL');
  }
});

test('another host\'s lock is broken only when stale (its mtime past 30 s)', async () => {
  const tag = await store.writeIf(uriOf('x.json'), '1\n', null);
  const lock = path.join(root, 'x.json.lock');
  fs.writeFileSync(lock, 'some-other-host 4242 n\n');
  const old = new Date(Date.now() - 31_000);
  fs.utimesSync(lock, old, old);
  await store.writeIf(uriOf('x.json'), '2\n', tag);
  expect(fs.readFileSync(path.join(root, 'x.json'), 'utf8')).toBe('2\n');
  // a fresh one from another host is respected (the pid means nothing here)
  fs.writeFileSync(lock, 'some-other-host 4242 n\n');
  let settled = false;
  const w = store.writeIf(uriOf('x.json'), '3\n', (await store.readVersioned(uriOf('x.json')))!.tag).finally(() => { settled = true; });
  await new Promise((r) => setTimeout(r, 500));
  expect(settled).toBe(false);
  fs.rmSync(lock);
  await w;
  expect(fs.readFileSync(path.join(root, 'x.json'), 'utf8')).toBe('3\n');
});

test('concurrent writers on one object: each write is a compare-and-swap; none is lost', async () => {
  await store.writeIf(uriOf('n.json'), '0', null);
  const bump = async (): Promise<void> => {
    for (;;) {
      const v = (await store.readVersioned(uriOf('n.json')))!;
      try {
        await store.writeIf(uriOf('n.json'), String(Number(v.text) + 1), v.tag);
        return;
      } catch {
        // another writer got in between: read again
      }
    }
  };
  await Promise.all(Array.from({ length: 20 }, bump));
  expect(fs.readFileSync(path.join(root, 'n.json'), 'utf8')).toBe('20');
});
