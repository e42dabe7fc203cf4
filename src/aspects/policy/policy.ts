import { Annotations, App, Aspects, IAspect, TerraformElement, TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { Errors } from '../../core/errors';
import { MIN_SUPPRESSION_REASON_LENGTH, POLICY_SUPPRESSION_METADATA, policySuppressions, suppressPolicyRule } from '../../core/suppressions';
import { StackPolicyContext } from './context';
import { PolicyPack, policyRules } from './pack';
import { PolicyFinding, PolicyLevel, PolicyRule, PolicySuppression } from './types';

/** Receives every finding once, suppressed ones included. */
export type PolicyReporter = (finding: PolicyFinding) => void;

export interface PolicyOptions {
  /** @default - every rule of this package (`PolicyPack.default()`) */
  readonly pack?: PolicyPack;
  /**
   * The lowest level reported: `'error'` ignores warnings.
   * @default 'warning'
   */
  readonly level?: PolicyLevel;
  /** @default - one line per finding on stderr */
  readonly reporter?: PolicyReporter;
}

export { POLICY_SUPPRESSION_METADATA };

/** One line for a finding: rule id, path, what and the fix. */
export function formatFinding(f: PolicyFinding): string {
  const what = f.detail ? `${f.description}: ${f.detail}` : f.description;
  const head = f.suppressed ? `suppressed ${f.level}` : f.level;
  const tail = f.suppressed ? ` Suppressed: ${f.suppressed.reason}` : '';
  return `[policy ${head}] ${f.ruleId} at ${f.path} (${f.resource}): ${what}. Fix: ${f.fix}${tail}`;
}

const stderrReporter: PolicyReporter = (f) => {
  process.stderr.write(`${formatFinding(f)}\n`);
};

/** The Aspect: checks each resource and data source under its scope at synth time. */
export class PolicyAspect implements IAspect {
  public readonly findings: PolicyFinding[] = [];
  private readonly contexts = new WeakMap<TerraformStack, StackPolicyContext>();
  private readonly checked = new WeakSet<IConstruct>();
  private readonly rulesByType = new Map<string, PolicyRule[]>();

  constructor(public readonly pack: PolicyPack, level: PolicyLevel, private readonly reporter: PolicyReporter) {
    for (const rule of pack.rules) {
      if (level === 'error' && rule.level !== 'error') continue;
      for (const t of rule.appliesTo) this.rulesByType.set(t, [...(this.rulesByType.get(t) ?? []), rule]);
    }
  }

  public visit(node: IConstruct): void {
    if (!TerraformElement.isTerraformElement(node) || this.checked.has(node)) return;
    this.checked.add(node);
    const stack = TerraformStack.of(node);
    let ctx = this.contexts.get(stack);
    if (!ctx) {
      ctx = new StackPolicyContext(stack);
      this.contexts.set(stack, ctx);
    }
    const el = ctx.elementOf(node);
    if (!el) return;
    for (const rule of this.rulesByType.get(el.type) ?? []) {
      const result = rule.check(el, ctx);
      if (result === 'compliant' || result === 'not-applicable') continue;
      const finding: PolicyFinding = {
        ruleId: rule.id, level: rule.level, path: el.path, resource: `${el.type}.${el.logicalId}`,
        description: rule.description, fix: rule.fix,
        ...(typeof result === 'object' ? { detail: result.nonCompliant } : {}),
        ...withSuppression(node, rule.id),
      };
      this.findings.push(finding);
      this.reporter(finding);
      if (finding.level === 'error' && !finding.suppressed) {
        const message = formatFinding(finding);
        // Annotations fail `app.synth()` even with skipValidation; the validation fails `Testing.synth(stack, true)`.
        Annotations.of(node).addError(message);
        node.node.addValidation({ validate: () => [message] });
      }
    }
  }
}

function withSuppression(node: IConstruct, ruleId: string): { suppressed?: PolicySuppression } {
  for (const c of [...node.node.scopes].reverse()) {
    for (const s of policySuppressions(c)) {
      if (s.ruleId === ruleId) return { suppressed: { ruleId, reason: s.reason, path: c.node.path } };
    }
  }
  return {};
}

/** Entry points: apply a pack to a scope, suppress a rule for a construct, read findings. */
export class Policy {
  /**
   * Checks every resource under `scope` (a stack, a construct, or an app) when it is synthesized.
   * cdktf runs aspects from each stack down, never from the app: on an app the aspect goes on every
   * stack it has now, and `app.synth()` fails if a stack is added later without it.
   */
  public static apply(scope: IConstruct, options: PolicyOptions = {}): PolicyAspect {
    const aspect = new PolicyAspect(options.pack ?? PolicyPack.default(), options.level ?? 'warning', options.reporter ?? stderrReporter);
    if (!App.isApp(scope)) {
      Aspects.of(scope).add(aspect);
      return aspect;
    }
    const stacks = () => scope.node.findAll().filter(TerraformStack.isStack);
    if (!stacks().length) {
      throw Errors.invalid(scope, 'scope', scope.node.path || 'app', 'an app that already has its stacks (call Policy.apply after building them), or a stack', 'has no stacks yet');
    }
    for (const stack of stacks()) Aspects.of(stack).add(aspect);
    scope.node.addValidation({
      validate: () => stacks().filter((s) => !Aspects.of(s).all.includes(aspect))
        .map((s) => `stack ${s.node.path} was created after Policy.apply(app) and is not checked: call Policy.apply(app) after creating every stack`),
    });
    return aspect;
  }

  /**
   * Accepts findings of `rule` on `construct` and everything under it. The finding is still reported,
   * marked suppressed with `reason`, and no longer fails synth. Pass the rule object for rules outside
   * this package's table.
   */
  public static suppress(construct: IConstruct, rule: string | PolicyRule, reason: string): void {
    const ruleId = typeof rule === 'string' ? rule : rule.id;
    if (typeof rule === 'string' && !policyRules().some((r) => r.id === rule)) {
      throw Errors.unknown(construct, 'ruleId', rule, policyRules().map((r) => r.id));
    }
    if (typeof reason !== 'string' || reason.trim().length < MIN_SUPPRESSION_REASON_LENGTH) {
      throw Errors.invalid(construct, 'reason', reason, `a sentence of at least ${MIN_SUPPRESSION_REASON_LENGTH} characters saying why ${ruleId} does not apply here`,
        'is required to suppress a policy rule');
    }
    // Rules outside the table may have any id: record it as given.
    if (typeof rule !== 'string') {
      construct.node.addMetadata(POLICY_SUPPRESSION_METADATA, { ruleId, reason: reason.trim() }, { stackTrace: false });
      return;
    }
    suppressPolicyRule(construct, ruleId, reason);
  }

  /** Findings of every policy aspect applied at, above or below `scope`, for resources under `scope`. */
  public static findingsOf(scope: IConstruct): PolicyFinding[] {
    const aspects = new Set<PolicyAspect>();
    for (const c of [...scope.node.scopes, ...scope.node.findAll()]) {
      for (const a of Aspects.of(c).all) if (a instanceof PolicyAspect) aspects.add(a);
    }
    const prefix = scope.node.path;
    const under = (p: string) => prefix === '' || p === prefix || p.startsWith(`${prefix}/`);
    return [...aspects].flatMap((a) => a.findings).filter((f) => under(f.path));
  }
}
