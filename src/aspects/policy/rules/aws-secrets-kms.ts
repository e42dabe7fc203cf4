import { isSet } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-secrets-kms',
  level: 'warning',
  description: 'Secrets Manager secret encrypted with the account default key (aws/secretsmanager)',
  fix: 'set kms_key_id to a customer-managed KMS key, so reading the secret also needs kms:Decrypt on that key',
  appliesTo: ['aws_secretsmanager_secret'],
  check(el) {
    return isSet(el.attrs.kms_key_id) ? 'compliant' : nonCompliant('kms_key_id is not set');
  },
};
