import { blocks, strings } from '../attrs';
import { GPU_RESOURCE } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

const AWS_GPU_INSTANCE = /^(p\d|g\d|gr\d|trn|inf)/;

export const rule: PolicyRule = {
  id: 'k8s-gpu-node-taint',
  level: 'warning',
  description: 'GPU node pool without the nvidia.com/gpu NoSchedule taint: CPU-only pods land on GPU nodes and keep them from scaling down',
  fix: 'add a taint { key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" } to the EKS node group',
  // GKE taints GPU node pools itself; EKS managed node groups do not.
  appliesTo: ['aws_eks_node_group'],
  check(el) {
    const gpu = String(el.attrs.ami_type ?? '').includes('GPU') || strings(el.attrs.instance_types).some((t) => AWS_GPU_INSTANCE.test(t));
    if (!gpu) return 'not-applicable';
    const ok = blocks(el.attrs.taint).some((t) => t.key === GPU_RESOURCE && t.effect === 'NO_SCHEDULE');
    return ok ? 'compliant' : nonCompliant('no nvidia.com/gpu NO_SCHEDULE taint');
  },
};
