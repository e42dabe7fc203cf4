import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { ObjectStore, StoredObject, Versioned } from './index';
import { localPathOf, PreconditionFailed } from './index';

/** A lock older than this was left by a writer that died mid-write: it is broken. */
const STALE_LOCK_MS = 30_000;
/** Longer than STALE_LOCK_MS: a writer waiting on a dead writer's lock (another host's) breaks it rather than fail. */
const LOCK_WAIT_MS = 40_000;
const HOST = os.hostname();

const tagOf = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

/** file:// URIs and absolute paths. */
export class FileStore implements ObjectStore {
  async list(prefixUri: string): Promise<StoredObject[]> {
    const root = localPathOf(prefixUri);
    const out: StoredObject[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const e of entries) {
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), key);
        else if (e.isFile()) out.push({ key, uri: pathToFileURL(path.join(dir, e.name)).href });
      }
    };
    await walk(root, '');
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(uri: string, localPath: string): Promise<void> {
    await fs.promises.mkdir(path.dirname(localPath), { recursive: true });
    await fs.promises.copyFile(localPathOf(uri), localPath);
  }

  async put(localPath: string, uri: string): Promise<void> {
    const dest = localPathOf(uri);
    await fs.promises.mkdir(path.dirname(dest), { recursive: true });
    await fs.promises.copyFile(localPath, dest);
  }

  async exists(uri: string): Promise<boolean> {
    try {
      await fs.promises.access(localPathOf(uri));
      return true;
    } catch {
      return false;
    }
  }

  async readVersioned(uri: string): Promise<Versioned | null> {
    try {
      const text = await fs.promises.readFile(localPathOf(uri), 'utf8');
      return { text, tag: tagOf(text) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  /** Compare-and-swap under an O_EXCL lock file beside the object; the new text lands by rename (atomic). */
  async writeIf(uri: string, text: string, ifTag: string | null): Promise<string> {
    const dest = localPathOf(uri);
    await fs.promises.mkdir(path.dirname(dest), { recursive: true });
    const lock = `${dest}.lock`;
    await acquire(lock);
    try {
      const cur = await this.readVersioned(uri);
      if ((cur?.tag ?? null) !== ifTag) {
        throw new PreconditionFailed(uri, ifTag === null ? 'it exists' : cur ? `tag ${cur.tag}, expected ${ifTag}` : 'it no longer exists');
      }
      const tmp = `${dest}.${randomBytes(6).toString('hex')}.tmp`;
      const fh = await fs.promises.open(tmp, 'w');
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, dest);
      return tagOf(text);
    } finally {
      await fs.promises.rm(lock, { force: true });
    }
  }
}

/**
 * Takes `lock` (O_EXCL create). The lock names its holder (host, pid, a nonce): a holder on this host
 * that is gone (kill -9 mid-write) is broken at once, any other only when older than STALE_LOCK_MS.
 * A breaker reads the lock again just before removing it, so it does not remove one just taken anew.
 */
async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  const mine = `${HOST} ${process.pid} ${randomBytes(6).toString('hex')}\n`;
  for (;;) {
    try {
      const fh = await fs.promises.open(lock, 'wx');
      try {
        await fh.writeFile(mine);
      } finally {
        await fh.close();
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = await fs.promises.readFile(lock, 'utf8').catch(() => undefined);
    const st = await fs.promises.stat(lock).catch(() => undefined);
    if (held !== undefined && st && (holderGone(held) || Date.now() - st.mtimeMs > STALE_LOCK_MS)) {
      if ((await fs.promises.readFile(lock, 'utf8').catch(() => undefined)) === held) await fs.promises.rm(lock, { force: true });
    } else if (Date.now() > deadline) throw new Error(`${lock} is held by another writer for over ${LOCK_WAIT_MS / 1000} s`);
    else await sleep(5 + Math.floor(Math.random() * 10));
  }
}

/** The lock's holder ran on this host and its process is gone. An empty lock (its holder is still writing it) is not. */
function holderGone(held: string): boolean {
  const [host, pid] = held.split(' ');
  if (host !== HOST || !/^\d+$/.test(pid ?? '')) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
