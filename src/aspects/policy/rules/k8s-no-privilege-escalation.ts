import { block, blocks, isFalse, isTrue, strings } from '../attrs';
import { containers, podTemplate, POD_TYPES } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'k8s-no-privilege-escalation',
  level: 'error',
  description: 'container that may gain privileges (privileged, added SYS_ADMIN/ALL, or allow_privilege_escalation not false)',
  fix: 'set security_context { allow_privilege_escalation = false, capabilities { drop = ["ALL"] } } on every container; never privileged = true',
  appliesTo: POD_TYPES,
  check(el) {
    const pod = podTemplate(el);
    if (!pod) return 'not-applicable';
    const bad = containers(pod.spec).flatMap((c) => {
      const ctx = block(c.attrs.security_context);
      const added = blocks(ctx?.capabilities).flatMap((cap) => strings(cap.add));
      const why = [
        ...(isTrue(ctx?.privileged) ? ['privileged'] : []),
        ...(!isFalse(ctx?.allow_privilege_escalation) ? ['allow_privilege_escalation not false'] : []),
        ...added.filter((a) => ['ALL', 'SYS_ADMIN', 'CAP_SYS_ADMIN'].includes(a)).map((a) => `adds ${a}`),
      ];
      return why.length ? [`${c.name} (${why.join(', ')})`] : [];
    });
    return bad.length ? nonCompliant(bad.join('; ')) : 'compliant';
  },
};
