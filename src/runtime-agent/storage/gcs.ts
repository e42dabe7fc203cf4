import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Storage as GcsClient } from '@google-cloud/storage';
import type { ObjectStore, StoredObject, Versioned } from './index';
import { PreconditionFailed, splitBucketUri } from './index';

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

  /** The generation is the tag; a read that straddles a write is retried, so text and tag always match. */
  async readVersioned(uri: string): Promise<Versioned | null> {
    const { bucket, key } = splitBucketUri(uri);
    const file = this.client.bucket(bucket).file(key);
    for (let i = 0; i < 5; i++) {
      try {
        const [before] = await file.getMetadata();
        const [data] = await file.download();
        const [after] = await file.getMetadata();
        if (String(before.generation) === String(after.generation)) return { text: data.toString('utf8'), tag: String(after.generation) };
      } catch (e) {
        if ((e as { code?: number }).code === 404) return null;
        throw e;
      }
    }
    throw new PreconditionFailed(uri, 'it kept changing while being read');
  }

  /** GCS preconditions: ifGenerationMatch 0 creates only if absent; N replaces only generation N (412 otherwise). */
  async writeIf(uri: string, text: string, ifTag: string | null): Promise<string> {
    const { bucket, key } = splitBucketUri(uri);
    const file = this.client.bucket(bucket).file(key);
    try {
      await file.save(text, { resumable: false, contentType: 'application/json', preconditionOpts: { ifGenerationMatch: ifTag === null ? 0 : Number(ifTag) } });
    } catch (e) {
      if ((e as { code?: number }).code === 412) throw new PreconditionFailed(uri, 'GCS answered 412');
      throw e;
    }
    return String(file.metadata.generation);
  }
}
