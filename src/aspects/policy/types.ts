import { TerraformElement, TerraformStack } from 'cdktf';

/** `error` fails synth; `warning` is printed and recorded. */
export type PolicyLevel = 'error' | 'warning';

/** A non-compliant result with a detail sentence about this resource (what exactly is wrong). */
export interface NonCompliant {
  readonly nonCompliant: string;
}

export type CheckResult = 'compliant' | 'non-compliant' | 'not-applicable' | NonCompliant;

/** Builds a non-compliant result that says what is wrong with this resource. */
export function nonCompliant(detail: string): NonCompliant {
  return { nonCompliant: detail };
}

/** A resource or data source as it synthesizes: snake_case attributes, references as `${...}` strings. */
export interface PolicyElement {
  readonly construct: TerraformElement;
  readonly kind: 'resource' | 'data';
  /** Terraform type, e.g. `aws_s3_bucket`. */
  readonly type: string;
  readonly logicalId: string;
  /** How other elements reference it: `aws_s3_bucket.x` or `data.aws_iam_policy_document.y`. */
  readonly ref: string;
  readonly path: string;
  readonly attrs: Record<string, unknown>;
}

/** The stack around the element under check: rules that need relations (bucket -> its policy) use it. */
export interface PolicyContext {
  readonly stack: TerraformStack;
  /** Every element of a type in the stack (resources and data sources, by their Terraform type). */
  all(type: string): readonly PolicyElement[];
  /** The element that the first `${...}` reference in `value` points at, if it is in this stack. */
  resolve(value: unknown): PolicyElement | undefined;
  /** True when `value` (a string, or anything holding strings) references `target`. */
  refersTo(value: unknown, target: PolicyElement): boolean;
  /** Elements of `type` whose attribute `attr` references `target`. */
  referencing(type: string, attr: string, target: PolicyElement): readonly PolicyElement[];
}

/**
 * One rule. The id is the rule's file name under `rules/` (a test keeps them equal); `fix` is what to
 * change, printed with every finding.
 */
export interface PolicyRule {
  readonly id: string;
  readonly level: PolicyLevel;
  readonly description: string;
  readonly fix: string;
  /** Terraform types (resource or data) the rule checks. */
  readonly appliesTo: readonly string[];
  check(element: PolicyElement, ctx: PolicyContext): CheckResult;
}

export interface PolicySuppression {
  readonly ruleId: string;
  readonly reason: string;
  /** Path of the construct the suppression was put on (the finding's construct or an ancestor). */
  readonly path: string;
}

export interface PolicyFinding {
  readonly ruleId: string;
  readonly level: PolicyLevel;
  /** Construct path of the offending resource. */
  readonly path: string;
  /** `type.logicalId` as in the synthesized JSON. */
  readonly resource: string;
  readonly description: string;
  /** Detail about this resource, when the rule gave one. */
  readonly detail?: string;
  readonly fix: string;
  /** Present when a suppression with a reason covers this finding: reported, but never fails synth. */
  readonly suppressed?: PolicySuppression;
}
