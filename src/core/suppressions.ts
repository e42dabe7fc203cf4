/**
 * Policy suppressions recorded as construct metadata. Constructs record them here (core); the policy
 * aspect reads them. So a construct never imports aspects/ to accept a finding it cannot avoid.
 */
import { IConstruct } from 'constructs';
import { Errors } from './errors';

/** Node metadata type of a suppression: kept on the construct, so it travels with the tree. */
export const POLICY_SUPPRESSION_METADATA = 'mlinfra:policy-suppression';
/** Shortest reason accepted: a suppression says why the rule does not apply. */
export const MIN_SUPPRESSION_REASON_LENGTH = 10;

export interface PolicySuppressionFact {
  readonly ruleId: string;
  readonly reason: string;
}

/**
 * Accepts findings of policy rule `ruleId` on `construct` and everything under it; the policy aspect
 * still reports them, marked suppressed with `reason`. For use inside constructs, which cannot load
 * the rule table: an id no rule has suppresses nothing (`Policy.suppress` checks ids at once).
 */
export function suppressPolicyRule(construct: IConstruct, ruleId: string, reason: string): void {
  if (typeof ruleId !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(ruleId)) {
    throw Errors.invalid(construct, 'ruleId', ruleId, 'a policy rule id such as k8s-pod-non-root');
  }
  if (typeof reason !== 'string' || reason.trim().length < MIN_SUPPRESSION_REASON_LENGTH) {
    throw Errors.invalid(construct, 'reason', reason, `a sentence of at least ${MIN_SUPPRESSION_REASON_LENGTH} characters saying why ${ruleId} does not apply here`,
      'is required to suppress a policy rule');
  }
  const fact: PolicySuppressionFact = { ruleId, reason: reason.trim() };
  construct.node.addMetadata(POLICY_SUPPRESSION_METADATA, fact, { stackTrace: false });
}

/** The suppressions recorded on `c` itself. */
export function policySuppressions(c: IConstruct): readonly PolicySuppressionFact[] {
  return c.node.metadata.filter((m) => m.type === POLICY_SUPPRESSION_METADATA).map((m) => m.data as PolicySuppressionFact);
}
