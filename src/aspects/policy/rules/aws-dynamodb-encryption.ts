import { block, isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-dynamodb-encryption',
  level: 'error',
  description: 'DynamoDB table encrypted only with an AWS-owned key (no KMS key you can audit or revoke)',
  fix: 'set server_side_encryption { enabled = true, kms_key_arn = <your key> }',
  appliesTo: ['aws_dynamodb_table'],
  check(el) {
    const v = block(el.attrs.server_side_encryption)?.enabled;
    return isTrue(v) || isRef(v) ? 'compliant' : nonCompliant('server_side_encryption is not enabled');
  },
};
