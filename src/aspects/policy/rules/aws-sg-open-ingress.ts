import { blocks, OPEN_CIDRS, strings } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-sg-open-ingress',
  level: 'error',
  description: 'security group ingress open to the whole internet (0.0.0.0/0 or ::/0)',
  fix: 'allow only the CIDR blocks or security groups that need access; if the port must be public, suppress this rule on the construct with the reason',
  appliesTo: ['aws_vpc_security_group_ingress_rule', 'aws_security_group_rule', 'aws_security_group', 'aws_default_security_group'],
  check(el) {
    let cidrs: string[];
    if (el.type === 'aws_vpc_security_group_ingress_rule') cidrs = strings([el.attrs.cidr_ipv4, el.attrs.cidr_ipv6]);
    else if (el.type === 'aws_security_group_rule') {
      if (el.attrs.type !== 'ingress') return 'not-applicable';
      cidrs = [...strings(el.attrs.cidr_blocks), ...strings(el.attrs.ipv6_cidr_blocks)];
    } else cidrs = blocks(el.attrs.ingress).flatMap((i) => [...strings(i.cidr_blocks), ...strings(i.ipv6_cidr_blocks)]);
    const open = cidrs.filter((c) => OPEN_CIDRS.includes(c));
    return open.length ? nonCompliant(`ingress from ${open.join(', ')}`) : 'compliant';
  },
};
