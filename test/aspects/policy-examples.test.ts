import { Testing } from 'cdktf';
import { EXAMPLES } from '../../examples';
import { Policy, PolicyFinding } from '../../src/aspects';

/**
 * Construct defaults that trip a rule today, each waiting for a fix in the construct (see the policy
 * pack's report). The test suppresses them so the rest stays enforced, and fails once an entry is no
 * longer needed, so the table only shrinks.
 */
const PENDING: { example: string; path: string; ruleId: string; reason: string }[] = [];

describe.each(Object.entries(EXAMPLES))('example %s with the policy pack', (name, build) => {
  test('synthesizes with zero findings', () => {
    const app = Testing.app();
    const printed: PolicyFinding[] = [];
    const stacks = build(app);
    const pending = PENDING.filter((p) => p.example === name);
    for (const p of pending) {
      const construct = app.node.findAll().find((c) => c.node.path === p.path);
      if (!construct) throw new Error(`no construct at ${p.path}`);
      Policy.suppress(construct, p.ruleId, p.reason);
    }
    Policy.apply(app, { reporter: (f) => printed.push(f) });
    for (const stack of stacks) Testing.synth(stack, true);

    const findings = Policy.findingsOf(app);
    expect(findings.filter((f) => !f.suppressed).map((f) => `${f.ruleId} ${f.path}${f.detail ? `: ${f.detail}` : ''}`)).toEqual([]);
    // Every pending entry still matches a finding: when one does not, the construct was fixed; drop it.
    const pendingFound = findings.filter((f) => f.suppressed?.reason.startsWith('pending:'));
    expect(pendingFound.map((f) => `${f.ruleId} ${f.path}`).sort()).toEqual(pending.map((p) => `${p.ruleId} ${p.path}`).sort());
    // What the constructs suppress themselves carries a reason that is not a placeholder.
    for (const f of findings.filter((x) => x.suppressed && !pendingFound.includes(x))) expect(f.suppressed!.reason.length).toBeGreaterThan(20);
    expect(printed).toEqual(findings);
  });
});
