import { isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-kms-key-rotation',
  level: 'warning',
  description: 'symmetric KMS key without automatic rotation',
  fix: 'set enable_key_rotation = true',
  appliesTo: ['aws_kms_key'],
  check(el) {
    const spec = el.attrs.customer_master_key_spec;
    // Rotation exists only for symmetric encryption keys.
    if (typeof spec === 'string' && spec !== 'SYMMETRIC_DEFAULT') return 'not-applicable';
    const v = el.attrs.enable_key_rotation;
    return isTrue(v) || isRef(v) ? 'compliant' : nonCompliant('enable_key_rotation is not true');
  },
};
