import { block, isTrue } from '../attrs';
import { containers, podTemplate, POD_TYPES } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'k8s-pod-non-root',
  level: 'error',
  description: 'pod whose containers may run as root',
  fix: 'set security_context { run_as_non_root = true, run_as_user = <non-zero uid> } on the pod (or on every container)',
  appliesTo: POD_TYPES,
  check(el) {
    const pod = podTemplate(el);
    if (!pod) return 'not-applicable';
    const podCtx = block(pod.spec.security_context);
    const root = containers(pod.spec).filter((c) => {
      const ctx = block(c.attrs.security_context);
      // The container's setting wins over the pod's.
      const nonRoot = ctx?.run_as_non_root ?? podCtx?.run_as_non_root;
      const uid = ctx?.run_as_user ?? podCtx?.run_as_user;
      return !isTrue(nonRoot) || uid === 0 || uid === '0';
    });
    return root.length ? nonCompliant(`may run as root: ${root.map((c) => c.name).join(', ')}`) : 'compliant';
  },
};
