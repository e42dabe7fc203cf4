import { isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'gcp-bucket-uniform-access',
  level: 'error',
  description: 'Cloud Storage bucket with per-object ACLs (uniform bucket-level access off)',
  fix: 'set uniform_bucket_level_access = true and grant access with IAM only',
  appliesTo: ['google_storage_bucket'],
  check(el) {
    const v = el.attrs.uniform_bucket_level_access;
    return isTrue(v) || isRef(v) ? 'compliant' : nonCompliant('uniform_bucket_level_access is not true');
  },
};
