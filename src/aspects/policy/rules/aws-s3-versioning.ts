import { block, blocks, isTrue } from '../attrs';
import { bucketRelated } from '../s3';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-s3-versioning',
  level: 'warning',
  description: 'S3 bucket without versioning: an overwrite or delete loses the object',
  fix: 'add an aws_s3_bucket_versioning for the bucket with status "Enabled" (and a lifecycle rule that expires noncurrent versions)',
  appliesTo: ['aws_s3_bucket'],
  check(bucket, ctx) {
    if (blocks(bucket.attrs.versioning).some((v) => isTrue(v.enabled))) return 'compliant';
    const configs = bucketRelated(ctx, 'aws_s3_bucket_versioning', bucket);
    if (configs.some((c) => block(c.attrs.versioning_configuration)?.status === 'Enabled')) return 'compliant';
    return nonCompliant(configs.length ? 'versioning status is not Enabled' : 'no aws_s3_bucket_versioning references this bucket');
  },
};
