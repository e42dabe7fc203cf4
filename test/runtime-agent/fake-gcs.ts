/**
 * A minimal in-process fake of the Google Cloud Storage JSON API, enough for @google-cloud/storage's
 * getFiles, download, upload (multipart, non-resumable) and exists, reached via STORAGE_EMULATOR_HOST.
 * Each write gets a new generation, and an upload's ifGenerationMatch precondition is checked
 * (0: only if absent; 412 conditionNotMet otherwise). Not modelled: object versioning, metageneration,
 * the other preconditions.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeGcs {
  readonly url: string;
  readonly objects: Map<string, Buffer>;
  readonly requests: string[];
  close(): Promise<void>;
}

/** CRC32C (Castagnoli), as GCS reports it: base64 of the big-endian 32-bit value. */
function crc32c(data: Buffer): string {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

export async function startFakeGcs(): Promise<FakeGcs> {
  const objects = new Map<string, Buffer>(); // "bucket/name" -> content
  const generations = new Map<string, number>();
  let nextGeneration = 1;
  const requests: string[] = [];
  const meta = (bucket: string, name: string, data: Buffer): Record<string, unknown> => ({
    kind: 'storage#object', id: `${bucket}/${name}`, name, bucket, size: String(data.length),
    generation: String(generations.get(`${bucket}/${name}`) ?? 1), metageneration: '1',
    contentType: 'application/octet-stream', updated: new Date(0).toISOString(),
    md5Hash: createHash('md5').update(data).digest('base64'), crc32c: crc32c(data),
  });
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const u = new URL(req.url ?? '/', 'http://x');
      requests.push(`${req.method} ${u.pathname}${u.search}`);
      const json = (status: number, v: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      };
      let m = /\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(u.pathname);
      if (req.method === 'POST' && m) {
        const bucket = decodeURIComponent(m[1]);
        const boundary = /boundary="?([^";]+)"?/.exec(String(req.headers['content-type']))?.[1];
        if (!boundary) return json(400, { error: { message: 'no boundary' } });
        const parts = body.toString('latin1').split(`--${boundary}`).slice(1, -1).map((p) => p.slice(p.indexOf('\r\n\r\n') + 4, -2));
        const metadata = JSON.parse(Buffer.from(parts[0], 'latin1').toString('utf8')) as { name?: string };
        const name = metadata.name ?? u.searchParams.get('name') ?? '';
        const data = Buffer.from(parts[1], 'latin1');
        const want = u.searchParams.get('ifGenerationMatch');
        if (want !== null && Number(want) !== (objects.has(`${bucket}/${name}`) ? generations.get(`${bucket}/${name}`) ?? 1 : 0)) {
          return json(412, { error: { code: 412, message: 'At least one of the pre-conditions you specified did not hold.', errors: [{ reason: 'conditionNotMet' }] } });
        }
        objects.set(`${bucket}/${name}`, data);
        generations.set(`${bucket}/${name}`, nextGeneration++);
        return json(200, meta(bucket, name, data));
      }
      m = /\/b\/([^/]+)\/o\/(.+)$/.exec(u.pathname);
      if (req.method === 'GET' && m) {
        const bucket = decodeURIComponent(m[1]);
        const name = decodeURIComponent(m[2]);
        const data = objects.get(`${bucket}/${name}`);
        if (!data) return json(404, { error: { code: 404, message: 'No such object' } });
        if (u.searchParams.get('alt') === 'media') {
          res.writeHead(200, {
            'content-type': 'application/octet-stream', 'content-length': String(data.length),
            'x-goog-hash': `crc32c=${crc32c(data)},md5=${createHash('md5').update(data).digest('base64')}`,
          }).end(data);
          return undefined;
        }
        return json(200, meta(bucket, name, data));
      }
      m = /\/b\/([^/]+)\/o$/.exec(u.pathname);
      if (req.method === 'GET' && m) {
        const bucket = decodeURIComponent(m[1]);
        const prefix = u.searchParams.get('prefix') ?? '';
        const items = [...objects.entries()]
          .filter(([k]) => k.startsWith(`${bucket}/${prefix}`))
          .map(([k, v]) => meta(bucket, k.slice(bucket.length + 1), v));
        return json(200, { kind: 'storage#objects', items });
      }
      return json(404, { error: { code: 404, message: `fake gcs: no route ${req.method} ${u.pathname}` } });
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    objects,
    requests,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}
