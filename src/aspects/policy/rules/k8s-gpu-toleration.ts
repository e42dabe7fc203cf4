import { blocks } from '../attrs';
import { containers, GPU_RESOURCE, podTemplate, POD_TYPES, requestsGpu } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'k8s-gpu-toleration',
  level: 'error',
  description: 'pod requesting GPUs that does not tolerate the nvidia.com/gpu taint: it stays Pending on tainted GPU nodes',
  fix: 'add toleration { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" } to the pod spec',
  appliesTo: POD_TYPES,
  check(el) {
    const pod = podTemplate(el);
    if (!pod || !containers(pod.spec).some(requestsGpu)) return 'not-applicable';
    const ok = blocks(pod.spec.toleration).some((t) => {
      const effectOk = t.effect === undefined || t.effect === '' || t.effect === 'NoSchedule';
      // operator Exists with no key tolerates every taint.
      if (t.key === undefined || t.key === '') return t.operator === 'Exists' && effectOk;
      return t.key === GPU_RESOURCE && effectOk;
    });
    return ok ? 'compliant' : nonCompliant('no toleration for nvidia.com/gpu:NoSchedule');
  },
};
