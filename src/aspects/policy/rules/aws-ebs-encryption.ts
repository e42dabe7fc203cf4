import { Attrs, block, blocks, isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-ebs-encryption',
  level: 'error',
  description: 'EBS volume without encryption at rest',
  fix: 'set encrypted = true on every EBS volume (launch template block_device_mappings[].ebs, instance root/ebs block devices, aws_ebs_volume), optionally with kms_key_id',
  appliesTo: ['aws_launch_template', 'aws_instance', 'aws_ebs_volume'],
  check(el) {
    const enc = (v: unknown) => isTrue(v) || isRef(v);
    if (el.type === 'aws_ebs_volume') return enc(el.attrs.encrypted) ? 'compliant' : nonCompliant('encrypted is not true');
    if (el.type === 'aws_launch_template') {
      const ebs = blocks(el.attrs.block_device_mappings).map((m) => ({ name: String(m.device_name), ebs: block(m.ebs) })).filter((m) => m.ebs);
      if (!ebs.length) return 'not-applicable';
      const bad = ebs.filter((m) => !enc(m.ebs?.encrypted) && m.ebs?.snapshot_id === undefined);
      return bad.length ? nonCompliant(`unencrypted: ${bad.map((m) => m.name).join(', ')}`) : 'compliant';
    }
    const devices: Attrs[] = [...blocks(el.attrs.root_block_device).map((d) => ({ ...d, device_name: 'root' })), ...blocks(el.attrs.ebs_block_device)];
    const bad = devices.filter((d) => !enc(d.encrypted));
    // An instance without explicit devices gets an unencrypted root volume unless account-wide EBS encryption is on.
    if (!devices.length) return nonCompliant('root_block_device is not declared with encrypted = true');
    return bad.length ? nonCompliant(`unencrypted: ${bad.map((d) => String(d.device_name)).join(', ')}`) : 'compliant';
  },
};
