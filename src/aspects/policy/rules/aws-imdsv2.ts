import { block } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-imdsv2',
  level: 'error',
  description: 'instance metadata reachable without a session token (IMDSv1): SSRF can steal the role credentials',
  fix: 'set metadata_options { http_tokens = "required", http_put_response_hop_limit = 1 } (or http_endpoint = "disabled")',
  appliesTo: ['aws_launch_template', 'aws_instance'],
  check(el) {
    const m = block(el.attrs.metadata_options);
    if (m?.http_endpoint === 'disabled') return 'compliant';
    return m?.http_tokens === 'required' ? 'compliant' : nonCompliant(`http_tokens is ${m?.http_tokens === undefined ? 'unset (optional)' : String(m.http_tokens)}`);
  },
};
