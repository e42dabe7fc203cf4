import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ObjectStore, StoredObject, Versioned } from './index';
import { PreconditionFailed, splitBucketUri } from './index';

type S3Module = typeof import('@aws-sdk/client-s3');

/** S3 multipart limits: parts of at least 5 MiB, at most 10,000 of them. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;

/** Part size for a file of `size` bytes: 16 MiB, larger when the file would need more than 10,000 parts. */
export function uploadPartSize(size: number): number {
  return Math.max(16 * 1024 * 1024, Math.ceil(size / (MAX_PARTS - 1)), MIN_PART_BYTES);
}

/**
 * s3:// URIs with @aws-sdk/client-s3, required lazily (it is an external of the bundle).
 * Endpoint and credentials come from the standard AWS environment (AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, instance profile ...). Path-style addressing is
 * used when an endpoint is set or AWS_S3_FORCE_PATH_STYLE=1.
 */
export class S3Store implements ObjectStore {
  private readonly sdk: S3Module;
  private readonly client: S3Client;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    this.sdk = require('@aws-sdk/client-s3') as S3Module;
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
    this.client = new this.sdk.S3Client({
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle: Boolean(endpoint) || env.AWS_S3_FORCE_PATH_STYLE === '1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async list(prefixUri: string): Promise<StoredObject[]> {
    const { bucket, key: prefix } = splitBucketUri(prefixUri);
    const dirPrefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: dirPrefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (!o.Key || o.Key.endsWith('/')) continue;
        out.push({ key: o.Key.slice(dirPrefix.length), uri: `s3://${bucket}/${o.Key}` });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(uri: string, localPath: string): Promise<void> {
    const { bucket, key } = splitBucketUri(uri);
    const res = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
    await fs.promises.mkdir(path.dirname(localPath), { recursive: true });
    await pipeline(res.Body as Readable, fs.createWriteStream(localPath));
  }

  /**
   * Streams the file with the SDK's multipart upload: one PutObject stops at 5 GB and would hold the
   * whole file in memory. Parts grow with the file so that it fits S3's 10,000-part limit.
   */
  async put(localPath: string, uri: string): Promise<void> {
    const { bucket, key } = splitBucketUri(uri);
    const { size } = await fs.promises.stat(localPath);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Upload } = require('@aws-sdk/lib-storage') as typeof import('@aws-sdk/lib-storage');
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: fs.createReadStream(localPath) },
      partSize: uploadPartSize(size), queueSize: 4, leavePartsOnError: false,
    });
    await upload.done();
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = splitBucketUri(uri);
    try {
      await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (e as Error).name === 'NotFound') return false;
      throw e;
    }
  }

  async readVersioned(uri: string): Promise<Versioned | null> {
    const { bucket, key } = splitBucketUri(uri);
    try {
      const res = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
      return { text: await res.Body!.transformToString('utf8'), tag: String(res.ETag) };
    } catch (e) {
      if (statusOf(e) === 404 || (e as Error).name === 'NoSuchKey') return null;
      throw e;
    }
  }

  /**
   * S3 conditional writes: If-None-Match: * creates only if absent, If-Match: <ETag> replaces only that
   * version; 412 PreconditionFailed or 409 ConditionalRequestConflict (a concurrent conditional write)
   * mean another writer won (docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
   */
  async writeIf(uri: string, text: string, ifTag: string | null): Promise<string> {
    const { bucket, key } = splitBucketUri(uri);
    try {
      const res = await this.client.send(new this.sdk.PutObjectCommand({
        Bucket: bucket, Key: key, Body: text, ContentType: 'application/json',
        ...(ifTag === null ? { IfNoneMatch: '*' } : { IfMatch: ifTag }),
      }));
      return String(res.ETag);
    } catch (e) {
      const status = statusOf(e);
      if (status === 412 || status === 409) throw new PreconditionFailed(uri, `S3 answered ${status} ${(e as Error).name}`);
      throw e;
    }
  }
}

const statusOf = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
