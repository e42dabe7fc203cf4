import { blocks } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'gcp-instance-no-public-ip',
  level: 'error',
  description: 'Compute Engine VM with an external IP address',
  fix: 'remove access_config from network_interface and reach the internet through Cloud NAT',
  appliesTo: ['google_compute_instance', 'google_compute_instance_template', 'google_compute_region_instance_template'],
  check(el) {
    const nics = blocks(el.attrs.network_interface);
    const exposed = nics.filter((n) => blocks(n.access_config).length > 0 || blocks(n.ipv6_access_config).length > 0);
    return exposed.length ? nonCompliant(`${exposed.length} network interface(s) with access_config`) : 'compliant';
  },
};
