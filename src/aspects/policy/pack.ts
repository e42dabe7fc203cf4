import { Errors } from '../../core/errors';
import { PolicyLevel, PolicyRule } from './types';

/** The rule table, loaded on first use: a program that never checks policy never loads a rule. */
export function policyRules(): readonly PolicyRule[] {
  return (require('./table') as typeof import('./table')).POLICY_RULES;
}

/** A named set of rules, built from a table; levels can be changed per rule without touching the rule. */
export class PolicyPack {
  /** Every rule of this package (`POLICY_RULES`). */
  public static default(): PolicyPack {
    return new PolicyPack('mlinfra', policyRules());
  }

  /** A pack from a table of rules; ids must be unique. */
  public static fromTable(name: string, rules: readonly PolicyRule[]): PolicyPack {
    return new PolicyPack(name, rules);
  }

  public readonly rules: readonly PolicyRule[];

  private constructor(public readonly name: string, rules: readonly PolicyRule[]) {
    const seen = new Set<string>();
    for (const r of rules) {
      if (seen.has(r.id)) throw Errors.invalid(`policy pack ${name}`, 'rules', r.id, 'unique rule ids', 'lists a rule id twice');
      seen.add(r.id);
    }
    this.rules = [...rules];
  }

  public get ids(): string[] {
    return this.rules.map((r) => r.id);
  }

  public rule(id: string): PolicyRule | undefined {
    return this.rules.find((r) => r.id === id);
  }

  /** Only the rules whose ids start with one of `prefixes` (`'aws-'`, `'k8s-pod-'`) or equal one. */
  public only(...prefixes: string[]): PolicyPack {
    return new PolicyPack(this.name, this.rules.filter((r) => prefixes.some((p) => r.id.startsWith(p))));
  }

  /** All rules but `ids`; an unknown id is an error (a typo would silently keep the rule). */
  public without(...ids: string[]): PolicyPack {
    for (const id of ids) if (!this.rule(id)) throw Errors.unknown(`policy pack ${this.name}`, 'without', id, this.ids);
    return new PolicyPack(this.name, this.rules.filter((r) => !ids.includes(r.id)));
  }

  /** The same rules with `id` raised or lowered to `level`. */
  public withLevel(id: string, level: PolicyLevel): PolicyPack {
    if (!this.rule(id)) throw Errors.unknown(`policy pack ${this.name}`, 'withLevel', id, this.ids);
    return new PolicyPack(this.name, this.rules.map((r) => (r.id === id ? { ...r, level, check: r.check } : r)));
  }
}
