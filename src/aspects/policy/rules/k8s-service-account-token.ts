import { block, blocks, isFalse } from '../attrs';
import { podTemplate, POD_TYPES } from '../kubernetes';
import { nonCompliant, PolicyElement, PolicyRule } from '../types';

const SA_TYPES = ['kubernetes_service_account_v1', 'kubernetes_service_account'];
const BINDING_TYPES = ['kubernetes_role_binding_v1', 'kubernetes_role_binding', 'kubernetes_cluster_role_binding_v1', 'kubernetes_cluster_role_binding'];

export const rule: PolicyRule = {
  id: 'k8s-service-account-token',
  level: 'warning',
  description: 'pod mounts a Kubernetes API token it has no role to use',
  fix: 'set automount_service_account_token = false on the pod (or its service account) unless a RoleBinding grants that service account something',
  appliesTo: POD_TYPES,
  check(el, ctx) {
    const pod = podTemplate(el);
    if (!pod) return 'not-applicable';
    const saName = pod.spec.service_account_name ?? pod.spec.service_account;
    const sa: PolicyElement | undefined = ctx.resolve(saName)
      ?? SA_TYPES.flatMap((t) => ctx.all(t)).find((s) => block(s.attrs.metadata)?.name === saName);
    const mounted = pod.spec.automount_service_account_token ?? sa?.attrs.automount_service_account_token;
    if (isFalse(mounted)) return 'compliant';
    if (saName === undefined) return nonCompliant('the default service account token is mounted');
    const bound = BINDING_TYPES.flatMap((t) => ctx.all(t)).some((b) => blocks(b.attrs.subject).some((s) =>
      s.kind === 'ServiceAccount' && (s.name === saName || (sa !== undefined && ctx.refersTo(s.name, sa)))));
    return bound ? 'compliant' : nonCompliant(`service account ${String(saName)} is bound to no role`);
  },
};
