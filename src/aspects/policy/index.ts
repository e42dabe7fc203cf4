export * from './types';
export { PolicyPack } from './pack';
export { Policy, PolicyAspect, PolicyOptions, PolicyReporter, POLICY_SUPPRESSION_METADATA, formatFinding } from './policy';
export { POLICY_RULES } from './table';
export { WILDCARD_RESOURCE_ACTIONS } from './rules/aws-iam-no-wildcard-resource';
