import { containers, podTemplate, POD_TYPES, resourceMap } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'k8s-pod-resource-limits',
  level: 'error',
  description: 'container without CPU and memory limits: one pod can starve the node (and its GPU neighbours)',
  fix: 'set resources { requests = {...}, limits = { cpu = ..., memory = ... } } on every container and init container',
  appliesTo: POD_TYPES,
  check(el) {
    const pod = podTemplate(el);
    if (!pod) return 'not-applicable';
    const bad = containers(pod.spec).flatMap((c) => {
      const limits = resourceMap(c, 'limits');
      const missing = ['cpu', 'memory'].filter((k) => limits[k] === undefined);
      return missing.length ? [`${c.name} (${missing.join(', ')})`] : [];
    });
    return bad.length ? nonCompliant(`no limits: ${bad.join('; ')}`) : 'compliant';
  },
};
