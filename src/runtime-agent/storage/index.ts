import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from './file';

/** One object in a listing: its key relative to the listed prefix, and its full URI. */
export interface StoredObject {
  readonly key: string;
  readonly uri: string;
}

/** The small interface every backend implements (file://, s3://, gs://). */
export interface ObjectStore {
  /** Objects under a prefix (recursively), sorted by key. */
  list(prefixUri: string): Promise<StoredObject[]>;
  /** Copies an object to a local file (parent directories are created). */
  get(uri: string, localPath: string): Promise<void>;
  /** Copies a local file to an object. */
  put(localPath: string, uri: string): Promise<void>;
  exists(uri: string): Promise<boolean>;
  /** A small object's text and its version tag (S3 ETag, GCS generation, a content hash on file://); null when absent. */
  readVersioned(uri: string): Promise<Versioned | null>;
  /**
   * Writes `text` only if the object still carries `ifTag` (null: only if it does not exist) and returns
   * the new tag; else throws PreconditionFailed. The store checks and writes atomically (S3 If-Match /
   * If-None-Match, GCS ifGenerationMatch, a lock file on file://), so two writers cannot both win.
   */
  writeIf(uri: string, text: string, ifTag: string | null): Promise<string>;
}

/** An object's text and the tag a conditional write must name to replace it. */
export interface Versioned {
  readonly text: string;
  readonly tag: string;
}

/** A conditional write lost: the object changed (or appeared) since it was read. */
export class PreconditionFailed extends Error {
  readonly code = 'precondition_failed';
  constructor(readonly uri: string, detail: string) {
    super(`${uri} changed since it was read (${detail}): read it again and retry`);
    this.name = 'PreconditionFailed';
  }
}

export type Scheme = 'file' | 's3' | 'gs';

export function schemeOf(uri: string): Scheme {
  if (uri.startsWith('s3://')) return 's3';
  if (uri.startsWith('gs://')) return 'gs';
  if (uri.startsWith('file://') || uri.startsWith('/')) return 'file';
  throw new Error(`unsupported storage URI ${JSON.stringify(uri)}: use file:///path, /path, s3://bucket/key or gs://bucket/key`);
}

/** Local path of a file:// URI or absolute path. */
export function localPathOf(uri: string): string {
  return uri.startsWith('file://') ? fileURLToPath(uri) : path.resolve(uri);
}

/** `bucket` and `key` of s3:// and gs:// URIs. */
export function splitBucketUri(uri: string): { bucket: string; key: string } {
  const m = /^(s3|gs):\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`not a bucket URI: ${uri}`);
  return { bucket: m[2], key: m[3] };
}

/** Joins a prefix URI and a relative key with exactly one slash. */
export function joinUri(prefix: string, key: string): string {
  return `${prefix.replace(/\/+$/, '')}/${key.replace(/^\/+/, '')}`;
}

/** Picks the backend for a URI; cloud SDKs are loaded (required) only when first needed. */
export class Storage {
  private readonly stores = new Map<Scheme, Promise<ObjectStore>>();

  isLocal(uri: string): boolean {
    return schemeOf(uri) === 'file';
  }

  for(uri: string): Promise<ObjectStore> {
    const scheme = schemeOf(uri);
    let store = this.stores.get(scheme);
    if (!store) {
      store = this.load(scheme);
      this.stores.set(scheme, store);
    }
    return store;
  }

  // require (not import) so the bundle keeps './s3' and './gcs' as files beside it (dist/agent/storage-*.js),
  // loaded only when an s3:// or gs:// URI is used: the SDKs cost no memory otherwise
  private async load(scheme: Scheme): Promise<ObjectStore> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (scheme === 's3') return new (require('./s3') as typeof import('./s3')).S3Store();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (scheme === 'gs') return new (require('./gcs') as typeof import('./gcs')).GcsStore();
    return new FileStore();
  }

  async list(prefixUri: string): Promise<StoredObject[]> {
    return (await this.for(prefixUri)).list(prefixUri);
  }

  async get(uri: string, localPath: string): Promise<void> {
    return (await this.for(uri)).get(uri, localPath);
  }

  async put(localPath: string, uri: string): Promise<void> {
    return (await this.for(uri)).put(localPath, uri);
  }

  async exists(uri: string): Promise<boolean> {
    return (await this.for(uri)).exists(uri);
  }

  async readVersioned(uri: string): Promise<Versioned | null> {
    return (await this.for(uri)).readVersioned(uri);
  }

  async writeIf(uri: string, text: string, ifTag: string | null): Promise<string> {
    return (await this.for(uri)).writeIf(uri, text, ifTag);
  }

  /** Copies every file under a local directory to `prefixUri/<relative path>`. Returns how many. */
  async putDir(localDir: string, prefixUri: string): Promise<number> {
    const files = await new FileStore().list(localDir);
    for (const f of files) await this.put(localPathOf(f.uri), joinUri(prefixUri, f.key));
    return files.length;
  }

  /** Copies every object under a prefix into a local directory. Returns how many. */
  async getDir(prefixUri: string, localDir: string): Promise<number> {
    const objects = await this.list(prefixUri);
    for (const o of objects) await this.get(o.uri, path.join(localDir, ...o.key.split('/')));
    return objects.length;
  }
}
