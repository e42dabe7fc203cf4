import { block, blocks, isFalse } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'gcp-instance-shielded-vm',
  level: 'warning',
  description: 'Compute Engine VM without Shielded VM protections',
  fix: 'set shielded_instance_config { enable_vtpm = true, enable_integrity_monitoring = true, enable_secure_boot = true }; '
    + 'Secure Boot may stay off on VMs with GPUs, whose NVIDIA driver (installed at boot on Deep Learning VM images) is not signed for it',
  appliesTo: ['google_compute_instance', 'google_compute_instance_template', 'google_compute_region_instance_template'],
  check(el) {
    const cfg = block(el.attrs.shielded_instance_config);
    const hasGpu = blocks(el.attrs.guest_accelerator).length > 0;
    const off: string[] = [];
    // vTPM and integrity monitoring default to on; Secure Boot defaults to off.
    if (isFalse(cfg?.enable_vtpm)) off.push('enable_vtpm');
    if (isFalse(cfg?.enable_integrity_monitoring)) off.push('enable_integrity_monitoring');
    if (!hasGpu && !(cfg?.enable_secure_boot === true || cfg?.enable_secure_boot === 'true')) off.push('enable_secure_boot');
    return off.length ? nonCompliant(`${off.join(', ')} off`) : 'compliant';
  },
};
