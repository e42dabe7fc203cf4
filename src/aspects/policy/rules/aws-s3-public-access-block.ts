import { isRef, isTrue } from '../attrs';
import { bucketRelated } from '../s3';
import { nonCompliant, PolicyRule } from '../types';

const FLAGS = ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets'];

export const rule: PolicyRule = {
  id: 'aws-s3-public-access-block',
  level: 'error',
  description: 'S3 bucket whose public access is not blocked',
  fix: 'add an aws_s3_bucket_public_access_block for the bucket with block_public_acls, block_public_policy, ignore_public_acls and restrict_public_buckets all true',
  appliesTo: ['aws_s3_bucket'],
  check(bucket, ctx) {
    const blocks = bucketRelated(ctx, 'aws_s3_bucket_public_access_block', bucket);
    if (!blocks.length) return nonCompliant('no aws_s3_bucket_public_access_block references this bucket');
    const missing = FLAGS.filter((f) => !blocks.some((b) => isTrue(b.attrs[f]) || isRef(b.attrs[f])));
    return missing.length ? nonCompliant(`${missing.join(', ')} not true`) : 'compliant';
  },
};
