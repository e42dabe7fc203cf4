/**
 * S3's conditional PutObject in front of s3rver, which ignores If-Match / If-None-Match on PUT: with
 * `If-None-Match: *` the write lands only if the key is absent, with `If-Match: <ETag>` only if the
 * object still has that ETag; otherwise 412 PreconditionFailed, as S3 answers
 * (docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). Conditional PUTs on one key
 * are serialised so check and write are one step, as on S3. Not modelled: 409
 * ConditionalRequestConflict, conditional multipart completion, conditional DELETE.
 */
import type { AddressInfo } from 'node:net';

interface KoaCtx {
  method: string;
  path: string;
  query: Record<string, unknown>;
  status: number;
  type: string;
  body: unknown;
  get(h: string): string;
}
interface S3rverLike {
  middleware: ((ctx: KoaCtx, next: () => Promise<void>) => Promise<void>)[];
  store: { getMetadata(bucket: string, key: string): Promise<{ etag: string }> };
  run(): Promise<AddressInfo>;
}

/** Adds conditional writes to an s3rver instance; call before `run()`. */
export function addConditionalWrites(server: unknown): void {
  const s = server as S3rverLike;
  const tails = new Map<string, Promise<void>>();
  s.middleware.unshift(async (ctx, next) => {
    const ifMatch = ctx.get('if-match');
    const ifNoneMatch = ctx.get('if-none-match');
    if (ctx.method !== 'PUT' || (!ifMatch && !ifNoneMatch) || ctx.query.partNumber !== undefined) return next();
    const [bucket, ...rest] = ctx.path.replace(/^\//, '').split('/').map(decodeURIComponent);
    const id = `${bucket}/${rest.join('/')}`;
    const before = tails.get(id) ?? Promise.resolve();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const mine = before.then(() => gate);
    tails.set(id, mine);
    await before;
    try {
      const etag = await s.store.getMetadata(bucket, rest.join('/')).then((m) => m.etag, () => null);
      const ok = ifNoneMatch === '*' ? etag === null : etag !== null && etag === ifMatch;
      if (!ok) {
        ctx.status = 412;
        ctx.type = 'application/xml';
        ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
          + '<Message>At least one of the pre-conditions you specified did not hold</Message>'
          + `<Condition>${ifNoneMatch ? 'If-None-Match' : 'If-Match'}</Condition></Error>`;
        return;
      }
      await next();
    } finally {
      release();
      if (tails.get(id) === mine) tails.delete(id);
    }
  });
}
