import { Attrs, blocks, strings } from './attrs';
import { PolicyContext } from './types';

/** A policy statement in one shape, whether it came from aws_iam_policy_document or from JSON. */
export interface Statement {
  readonly effect: 'Allow' | 'Deny';
  readonly actions: string[];
  readonly notActions: string[];
  readonly resources: string[];
  readonly notResources: string[];
  /** Resource-based policy (bucket, key, topic): it names who may act. */
  readonly hasPrincipals: boolean;
  readonly conditions: { test: string; variable: string; values: string[] }[];
}

/** Statements of an `aws_iam_policy_document` data source's attributes. */
export function documentStatements(attrs: Attrs): Statement[] {
  return blocks(attrs.statement).map((s) => ({
    effect: s.effect === 'Deny' ? 'Deny' : 'Allow',
    actions: strings(s.actions),
    notActions: strings(s.not_actions),
    resources: strings(s.resources),
    notResources: strings(s.not_resources),
    hasPrincipals: blocks(s.principals).length > 0 || blocks(s.not_principals).length > 0,
    conditions: blocks(s.condition).map((c) => ({ test: String(c.test), variable: String(c.variable), values: strings(c.values) })),
  }));
}

/** Statements of a literal JSON policy; undefined when it is not literal JSON (a reference, say). */
export function jsonStatements(policy: unknown): Statement[] | undefined {
  if (typeof policy !== 'string') return undefined;
  let doc: { Statement?: unknown };
  try {
    doc = JSON.parse(policy) as { Statement?: unknown };
  } catch {
    return undefined;
  }
  return blocks(doc.Statement).map((s) => ({
    effect: s.Effect === 'Deny' ? 'Deny' : 'Allow',
    actions: strings(s.Action),
    notActions: strings(s.NotAction),
    resources: strings(s.Resource),
    notResources: strings(s.NotResource),
    hasPrincipals: s.Principal !== undefined || s.NotPrincipal !== undefined,
    conditions: Object.entries((s.Condition ?? {}) as Record<string, Record<string, unknown>>).flatMap(([test, byVar]) =>
      Object.entries(byVar).map(([variable, values]) => ({ test, variable, values: strings(values).length ? strings(values) : [String(values)] }))),
  }));
}

/** Statements of a policy attribute: literal JSON, or a reference to a policy document in the stack. */
export function policyStatements(policy: unknown, ctx: PolicyContext): Statement[] | undefined {
  const doc = ctx.resolve(policy);
  if (doc && doc.type === 'aws_iam_policy_document') return documentStatements(doc.attrs);
  return jsonStatements(policy);
}

/** Identity-policy statements that grant (Allow, no principals): the ones wildcard rules judge. */
export function grants(statements: Statement[]): Statement[] {
  return statements.filter((s) => s.effect === 'Allow' && !s.hasPrincipals);
}

/** Resource types holding identity policies as a `policy` attribute (JSON or a document's `.json`). */
export const IDENTITY_POLICY_TYPES: readonly string[] = [
  'aws_iam_policy', 'aws_iam_role_policy', 'aws_iam_user_policy', 'aws_iam_group_policy',
];

/**
 * Identity statements of an element the IAM rules apply to. Policy attributes that reference a
 * policy document are skipped here: the document is checked on its own, once.
 */
export function identityStatements(el: { type: string; attrs: Attrs }): Statement[] | undefined {
  if (el.type === 'aws_iam_policy_document') return grants(documentStatements(el.attrs));
  if (el.type === 'aws_iam_role') {
    const inline = blocks(el.attrs.inline_policy).map((p) => jsonStatements(p.policy)).filter((s): s is Statement[] => !!s);
    return inline.length ? grants(inline.flat()) : undefined;
  }
  const json = jsonStatements(el.attrs.policy);
  return json ? grants(json) : undefined;
}

export const IAM_RULE_TYPES: readonly string[] = ['aws_iam_policy_document', 'aws_iam_role', ...IDENTITY_POLICY_TYPES];
