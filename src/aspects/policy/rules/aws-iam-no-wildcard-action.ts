import { IAM_RULE_TYPES, identityStatements } from '../iam';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-iam-no-wildcard-action',
  level: 'error',
  description: 'IAM identity policy allows "*" or "service:*" actions',
  fix: 'list the actions the principal needs (e.g. s3:GetObject, s3:PutObject) instead of "*" or "service:*"; do not use Allow with NotAction',
  appliesTo: IAM_RULE_TYPES,
  check(el) {
    const statements = identityStatements(el);
    if (!statements?.length) return 'not-applicable';
    const wild = statements.flatMap((s) => s.actions).filter((a) => a === '*' || a.endsWith(':*'));
    if (statements.some((s) => s.notActions.length)) wild.push('NotAction');
    return wild.length ? nonCompliant(`allows ${[...new Set(wild)].join(', ')}`) : 'compliant';
  },
};
