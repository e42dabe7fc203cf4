import { blocks, isTrue, OPEN_CIDRS, strings } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'gcp-firewall-open-ingress',
  level: 'error',
  description: 'VPC firewall rule allowing ingress from the whole internet (0.0.0.0/0 or ::/0)',
  fix: 'allow only the source ranges or source tags / service accounts that need access; if the port must be public, suppress this rule on the construct with the reason',
  appliesTo: ['google_compute_firewall'],
  check(el) {
    const a = el.attrs;
    if ((a.direction ?? 'INGRESS') !== 'INGRESS' || isTrue(a.disabled) || !blocks(a.allow).length) return 'not-applicable';
    const open = strings(a.source_ranges).filter((c) => OPEN_CIDRS.includes(c));
    return open.length ? nonCompliant(`source_ranges include ${open.join(', ')}`) : 'compliant';
  },
};
