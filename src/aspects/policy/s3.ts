import { PolicyContext, PolicyElement } from './types';

/**
 * Elements of `type` configuring `bucket`: their `bucket` attribute references the bucket, or names it
 * literally.
 */
export function bucketRelated(ctx: PolicyContext, type: string, bucket: PolicyElement): readonly PolicyElement[] {
  const name = bucket.attrs.bucket;
  return ctx.all(type).filter((e) => ctx.refersTo(e.attrs.bucket, bucket) || (typeof name === 'string' && e.attrs.bucket === name));
}
