import { IAM_RULE_TYPES, identityStatements, Statement } from '../iam';
import { nonCompliant, PolicyRule } from '../types';

/**
 * Actions that AWS only authorizes on "*" (no resource-level permissions). PutMetricData counts only
 * when a cloudwatch:namespace condition narrows it.
 */
export const WILDCARD_RESOURCE_ACTIONS: Record<string, (s: Statement) => boolean> = {
  'ecr:GetAuthorizationToken': () => true,
  'sts:GetCallerIdentity': () => true,
  'cloudwatch:PutMetricData': (s) => s.conditions.some((c) => c.variable === 'cloudwatch:namespace'),
};

export const rule: PolicyRule = {
  id: 'aws-iam-no-wildcard-resource',
  level: 'error',
  description: 'IAM identity policy allows actions on every resource ("*")',
  fix: 'name the ARNs the actions need; "*" is accepted only for actions without resource-level permissions: '
    + 'ecr:GetAuthorizationToken, sts:GetCallerIdentity, and cloudwatch:PutMetricData with a cloudwatch:namespace condition',
  appliesTo: IAM_RULE_TYPES,
  check(el) {
    const statements = identityStatements(el);
    if (!statements?.length) return 'not-applicable';
    const bad = statements.filter((s) => (s.resources.includes('*') || s.notResources.length > 0)
      && !(s.actions.length > 0 && s.actions.every((a) => WILDCARD_RESOURCE_ACTIONS[a]?.(s))));
    return bad.length ? nonCompliant(`"*" resource for ${bad.flatMap((s) => s.actions).join(', ') || 'NotAction'}`) : 'compliant';
  },
};
