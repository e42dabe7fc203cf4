import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ObjectStore, StoredObject } from './index';
import { localPathOf } from './index';

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
}
