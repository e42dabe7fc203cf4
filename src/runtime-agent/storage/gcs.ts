import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Storage as GcsClient } from '@google-cloud/storage';
import type { ObjectStore, StoredObject } from './index';
import { splitBucketUri } from './index';

type GcsModule = typeof import('@google-cloud/storage');

/**
 * gs:// URIs with @google-cloud/storage, required lazily (it is an external of the bundle).
 * Credentials come from Application Default Credentials (the VM's service account on GCE);
 * STORAGE_EMULATOR_HOST points it at an emulator.
 */
export class GcsStore implements ObjectStore {
  private readonly client: GcsClient;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sdk = require('@google-cloud/storage') as GcsModule;
    this.client = new sdk.Storage();
  }

  async list(prefixUri: string): Promise<StoredObject[]> {
    const { bucket, key: prefix } = splitBucketUri(prefixUri);
    const dirPrefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    const [files] = await this.client.bucket(bucket).getFiles({ prefix: dirPrefix });
    return files
      .filter((f) => !f.name.endsWith('/'))
      .map((f) => ({ key: f.name.slice(dirPrefix.length), uri: `gs://${bucket}/${f.name}` }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(uri: string, localPath: string): Promise<void> {
    const { bucket, key } = splitBucketUri(uri);
    await fs.promises.mkdir(path.dirname(localPath), { recursive: true });
    await this.client.bucket(bucket).file(key).download({ destination: localPath });
  }

  async put(localPath: string, uri: string): Promise<void> {
    const { bucket, key } = splitBucketUri(uri);
    await this.client.bucket(bucket).upload(localPath, { destination: key, resumable: false });
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = splitBucketUri(uri);
    const [exists] = await this.client.bucket(bucket).file(key).exists();
    return exists;
  }
}
