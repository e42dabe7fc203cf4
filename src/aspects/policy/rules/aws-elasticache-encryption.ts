import { isRef, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

export const rule: PolicyRule = {
  id: 'aws-elasticache-encryption',
  level: 'error',
  description: 'ElastiCache replication group without encryption at rest and in transit',
  fix: 'set at_rest_encryption_enabled = true and transit_encryption_enabled = true (with an auth token or RBAC)',
  appliesTo: ['aws_elasticache_replication_group', 'aws_elasticache_serverless_cache'],
  check(el) {
    // Serverless caches always encrypt at rest and in transit.
    if (el.type === 'aws_elasticache_serverless_cache') return 'compliant';
    const on = (v: unknown) => isTrue(v) || isRef(v);
    const missing = ['at_rest_encryption_enabled', 'transit_encryption_enabled'].filter((a) => !on(el.attrs[a]));
    return missing.length ? nonCompliant(`${missing.join(' and ')} not true`) : 'compliant';
  },
};
