import { isSet } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-sns-encryption',
  level: 'error',
  description: 'SNS topic without encryption at rest',
  fix: 'set kms_master_key_id to a KMS key whose policy lets the publishing services (e.g. cloudwatch.amazonaws.com) use it',
  appliesTo: ['aws_sns_topic'],
  check(el) {
    return isSet(el.attrs.kms_master_key_id) ? 'compliant' : nonCompliant('kms_master_key_id is not set');
  },
};
