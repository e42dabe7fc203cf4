import { block, isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-dynamodb-pitr',
  level: 'warning',
  description: 'DynamoDB table without point-in-time recovery',
  fix: 'set point_in_time_recovery { enabled = true }',
  appliesTo: ['aws_dynamodb_table'],
  check(el) {
    const v = block(el.attrs.point_in_time_recovery)?.enabled;
    return isTrue(v) || isRef(v) ? 'compliant' : nonCompliant('point_in_time_recovery is not enabled');
  },
};
