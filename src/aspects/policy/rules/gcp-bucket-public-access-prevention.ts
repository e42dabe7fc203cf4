import { isRef } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'gcp-bucket-public-access-prevention',
  level: 'error',
  description: 'Cloud Storage bucket that may be made public',
  fix: 'set public_access_prevention = "enforced"',
  appliesTo: ['google_storage_bucket'],
  check(el) {
    const v = el.attrs.public_access_prevention;
    return v === 'enforced' || isRef(v) ? 'compliant' : nonCompliant(`public_access_prevention is ${v === undefined ? 'unset (inherited)' : String(v)}`);
  },
};
