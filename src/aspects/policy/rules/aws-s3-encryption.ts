import { block, blocks, dig } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';
import { bucketRelated } from '../s3';

export const rule: PolicyRule = {
  id: 'aws-s3-encryption',
  level: 'error',
  description: 'S3 bucket without default encryption with a KMS key',
  fix: 'add an aws_s3_bucket_server_side_encryption_configuration for the bucket with sse_algorithm "aws:kms" and your KMS key',
  appliesTo: ['aws_s3_bucket'],
  check(bucket, ctx) {
    const inline = blocks(bucket.attrs.server_side_encryption_configuration).flatMap((c) => blocks(c.rule));
    const rules = [...inline, ...bucketRelated(ctx, 'aws_s3_bucket_server_side_encryption_configuration', bucket).flatMap((c) => blocks(c.attrs.rule))];
    if (!rules.length) return nonCompliant('no server-side encryption configuration references this bucket');
    const algorithms = rules.map((r) => dig(block(r), 'apply_server_side_encryption_by_default.sse_algorithm'));
    return algorithms.some((a) => a === 'aws:kms' || a === 'aws:kms:dsse') ? 'compliant' : nonCompliant(`sse_algorithm is ${algorithms.map(String).join(', ')}, not aws:kms`);
  },
};
