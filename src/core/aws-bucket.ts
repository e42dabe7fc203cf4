/** The one way this package makes an S3 bucket: private, owner-enforced, versioned, SSE-KMS, TLS only. */
import { TerraformProvider } from 'cdktf';
import { Construct } from 'constructs';
import { Errors } from './errors';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketLifecycleConfiguration, S3BucketLifecycleConfigurationRule } from '@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration';
import { S3BucketOwnershipControls } from '@cdktf/provider-aws/lib/s3-bucket-ownership-controls';
import { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketServerSideEncryptionConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';

export interface PrivateBucketOptions {
  readonly provider: TerraformProvider;
  /** Globally unique bucket name. */
  readonly name: string;
  /** ARN of the KMS key objects are encrypted with. */
  readonly kmsKeyArn: string;
  /** Construct id of the bucket; its companions are `<idPrefix>public-access-block`, `<idPrefix>encryption`, ... */
  readonly id: string;
  readonly idPrefix?: string;
  /** Lifecycle rules besides expiring noncurrent versions after 30 days. */
  readonly extraLifecycleRules?: S3BucketLifecycleConfigurationRule[];
}

const versioningOf = new WeakMap<S3Bucket, S3BucketVersioningA>();

/**
 * The bucket's name, read from its versioning configuration: objects Terraform writes with it are
 * created after versioning is on, so the provider records their version id and, on destroy, deletes
 * every version of their key (without one it only adds a delete marker, and the versions left behind
 * make the bucket's own destroy fail with BucketNotEmpty).
 */
export function versionedBucketName(bucket: S3Bucket): string {
  const v = versioningOf.get(bucket);
  if (!v) throw Errors.invalid(bucket, 'bucket', bucket.node.path, 'a bucket made by privateBucket() (its versioning comes first)');
  return v.bucket;
}

/**
 * A private bucket. `forceDestroy` stays false on purpose: these buckets hold data (artifacts,
 * checkpoints, features, captured requests) that `terraform destroy` must not empty silently; destroy
 * fails until you empty the bucket yourself (every version: it is versioned). The objects Terraform
 * itself writes (see `versionedBucketName`) leave nothing behind.
 */
export function privateBucket(scope: Construct, o: PrivateBucketOptions): S3Bucket {
  const { provider } = o;
  const p = o.idPrefix ?? '';
  const bucket = new S3Bucket(scope, o.id, { provider, bucket: o.name, forceDestroy: false });
  new S3BucketPublicAccessBlock(scope, `${p}public-access-block`, {
    provider, bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true,
  });
  new S3BucketOwnershipControls(scope, `${p}ownership`, { provider, bucket: bucket.id, rule: { objectOwnership: 'BucketOwnerEnforced' } });
  // Versioning: an overwritten or deleted object (registry, model, captured data) can be recovered for a month.
  versioningOf.set(bucket, new S3BucketVersioningA(scope, `${p}versioning`, { provider, bucket: bucket.id, versioningConfiguration: { status: 'Enabled' } }));
  new S3BucketServerSideEncryptionConfigurationA(scope, `${p}encryption`, {
    provider, bucket: bucket.id,
    rule: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: o.kmsKeyArn }, bucketKeyEnabled: true }],
  });
  new S3BucketLifecycleConfiguration(scope, `${p}lifecycle`, {
    provider, bucket: bucket.id,
    rule: [
      {
        id: 'expire-noncurrent', status: 'Enabled', filter: [{ prefix: '' }],
        noncurrentVersionExpiration: [{ noncurrentDays: 30 }], abortIncompleteMultipartUpload: [{ daysAfterInitiation: 7 }],
      },
      ...(o.extraLifecycleRules ?? []),
    ],
  });
  const tlsOnly = new DataAwsIamPolicyDocument(scope, `${p}tls-only`, {
    provider,
    statement: [{
      sid: 'DenyInsecureTransport', effect: 'Deny', actions: ['s3:*'], resources: [bucket.arn, `${bucket.arn}/*`],
      principals: [{ type: '*', identifiers: ['*'] }],
      condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
    }],
  });
  new S3BucketPolicy(scope, `${p}policy`, { provider, bucket: bucket.id, policy: tlsOnly.json });
  return bucket;
}
