import { policyStatements, Statement } from '../iam';
import { bucketRelated } from '../s3';
import { nonCompliant, PolicyRule } from '../types';

/** Deny when aws:SecureTransport is false (or a minimum TLS version): the canonical TLS-only statement. */
function deniesPlainHttp(s: Statement): boolean {
  if (s.effect !== 'Deny') return false;
  if (!s.actions.some((a) => a === '*' || a === 's3:*')) return false;
  return s.conditions.some((c) =>
    (c.test === 'Bool' && c.variable === 'aws:SecureTransport' && c.values.includes('false'))
    || (c.test === 'NumericLessThan' && c.variable === 's3:TlsVersion'));
}

export const rule: PolicyRule = {
  id: 'aws-s3-tls-only',
  level: 'error',
  description: 'S3 bucket that accepts requests over plain HTTP',
  fix: 'attach a bucket policy with a Deny of s3:* on the bucket and its objects when aws:SecureTransport is "false"',
  appliesTo: ['aws_s3_bucket'],
  check(bucket, ctx) {
    const policies = [
      ...bucketRelated(ctx, 'aws_s3_bucket_policy', bucket).map((p) => p.attrs.policy),
      ...(bucket.attrs.policy !== undefined ? [bucket.attrs.policy] : []),
    ];
    if (!policies.length) return nonCompliant('no bucket policy references this bucket');
    const ok = policies.some((p) => (policyStatements(p, ctx) ?? []).some(deniesPlainHttp));
    return ok ? 'compliant' : nonCompliant('its bucket policy has no Deny on aws:SecureTransport = false');
  },
};
