import { block, blocks, strings } from '../attrs';
import { containers, podTemplate, POD_TYPES, selects } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

const POLICY_TYPES = ['kubernetes_network_policy_v1', 'kubernetes_network_policy'];

export const rule: PolicyRule = {
  id: 'k8s-network-policy',
  level: 'warning',
  description: 'workload with container ports that no ingress NetworkPolicy selects: every pod in the cluster can reach it',
  fix: 'add a kubernetes_network_policy_v1 in the same namespace whose pod_selector matches the pod labels and whose ingress allows only its clients',
  appliesTo: POD_TYPES,
  check(el, ctx) {
    const pod = podTemplate(el);
    // Pods that declare no container port serve nothing (jobs, clients): the rule protects listeners.
    if (!pod || !containers(pod.spec).some((c) => blocks(c.attrs.port).length > 0)) return 'not-applicable';
    const ns = pod.namespace ?? 'default';
    const covered = POLICY_TYPES.flatMap((t) => ctx.all(t)).some((p) => {
      const meta = block(p.attrs.metadata);
      const spec = block(p.attrs.spec);
      if (!spec || (meta?.namespace ?? 'default') !== ns) return false;
      const types = strings(spec.policy_types);
      // Without policy_types, Kubernetes infers Ingress.
      if (types.length && !types.includes('Ingress')) return false;
      return selects(block(spec.pod_selector), pod.labels);
    });
    return covered ? 'compliant' : nonCompliant(`no NetworkPolicy in namespace ${ns} selects labels ${JSON.stringify(pod.labels)}`);
  },
};
