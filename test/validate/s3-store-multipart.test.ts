/** S3Store.put streams large files as a multipart upload, against a real local S3 (s3rver). */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { S3Store, uploadPartSize, MIN_PART_BYTES } from '../../src/runtime-agent/storage/s3';

describe('S3Store.put against s3rver', () => {
  let s3rver: any;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let saved: { id?: string; secret?: string };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-s3-multipart-'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const S3rver = require('s3rver');
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: 'ckpt' }] });
    const addr = (await s3rver.run()) as AddressInfo;
    env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${addr.port}` };
    // The SDK's default credential chain reads the process environment.
    saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  });
  afterAll(async () => {
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    await s3rver?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a file larger than one part arrives whole, as a multipart object', async () => {
    const size = uploadPartSize(0) + 3 * 1024 * 1024 + 17;
    const file = path.join(dir, 'model.ckpt');
    const chunk = Buffer.alloc(1024 * 1024, 'mlinfra-checkpoint-');
    const fd = fs.openSync(file, 'w');
    for (let written = 0; written < size; written += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - written));
    fs.closeSync(fd);
    const { S3Client } = await import('@aws-sdk/client-s3');
    // Observe (not replace) the requests the SDK sends to s3rver.
    const sent: string[] = [];
    const original = S3Client.prototype.send;
    S3Client.prototype.send = function (this: any, ...args: any[]) { sent.push(args[0].constructor.name); return (original as any).apply(this, args); } as any;
    const store = new S3Store(env);
    try {
      await store.put(file, 's3://ckpt/runs/r1/model.ckpt');
    } finally {
      S3Client.prototype.send = original;
    }
    // Before: one PutObjectCommand with the whole file in memory.
    expect(sent).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);

    const back = path.join(dir, 'back.ckpt');
    await store.get('s3://ckpt/runs/r1/model.ckpt', back);
    const digest = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    expect(fs.statSync(back).size).toBe(size);
    expect(digest(back)).toBe(digest(file));
  }, 60_000);

  test('small files still upload (one part)', async () => {
    const file = path.join(dir, 'metrics.json');
    fs.writeFileSync(file, '{"val_auc":0.9}');
    const store = new S3Store(env);
    await store.put(file, 's3://ckpt/runs/r1/metrics.json');
    const back = path.join(dir, 'metrics.back.json');
    await store.get('s3://ckpt/runs/r1/metrics.json', back);
    expect(fs.readFileSync(back, 'utf8')).toBe('{"val_auc":0.9}');
  });

  test('part size keeps any file within 10,000 parts of at least 5 MiB', () => {
    for (const size of [0, 1, 5e9, 6e12]) {
      const part = uploadPartSize(size);
      expect(part).toBeGreaterThanOrEqual(MIN_PART_BYTES);
      expect(Math.ceil(size / part)).toBeLessThanOrEqual(10_000);
    }
  });
});
