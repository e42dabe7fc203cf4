/**
 * List prices the cost report uses beside the accelerator catalog (core/accelerators.ts), each with
 * where and when it was read. us-east-1 / us-central1, USD. Storage and traffic are not priced:
 * they depend on use, not on the stack.
 */
import { TargetKind } from '../../core/accelerators';

export interface UnitPrice {
  readonly usd: number;
  readonly per: 'hour' | 'month';
  readonly source: string;
  readonly asOf: string;
  /** True where the figure is derived (a markup, a share), not read off a price list. */
  readonly estimate?: boolean;
}

const AWS_VPC = 'https://aws.amazon.com/vpc/pricing/ (us-east-1)';
const AWS_CW = 'https://aws.amazon.com/cloudwatch/pricing/ (standard resolution)';

/** Prices of one resource each, by Terraform type: the fixed items of a stack. */
export const RESOURCE_PRICES: Readonly<Record<string, UnitPrice & { readonly item: string }>> = {
  aws_nat_gateway: { item: 'NAT gateway', usd: 0.045, per: 'hour', source: `${AWS_VPC}, NAT gateway hour (data processed not included)`, asOf: '2025-06-01' },
  aws_eip: { item: 'public IPv4 address', usd: 0.005, per: 'hour', source: `${AWS_VPC}, public IPv4 address hour`, asOf: '2025-06-01' },
  aws_lb: { item: 'load balancer', usd: 0.0225, per: 'hour', source: 'https://aws.amazon.com/elasticloadbalancing/pricing/ (NLB hour, us-east-1; LCUs are usage-priced)', asOf: '2025-06-01' },
  aws_kms_key: { item: 'KMS key', usd: 1, per: 'month', source: 'https://aws.amazon.com/kms/pricing/ (customer managed key; requests not included)', asOf: '2025-06-01' },
  aws_secretsmanager_secret: { item: 'Secrets Manager secret', usd: 0.4, per: 'month', source: 'https://aws.amazon.com/secrets-manager/pricing/', asOf: '2025-06-01' },
  aws_cloudwatch_metric_alarm: { item: 'CloudWatch alarm', usd: 0.1, per: 'month', source: `${AWS_CW}, alarm metric`, asOf: '2025-06-01' },
  aws_cloudwatch_dashboard: { item: 'CloudWatch dashboard', usd: 3, per: 'month', source: `${AWS_CW}, dashboard beyond the free 3`, asOf: '2025-06-01' },
  google_compute_forwarding_rule: { item: 'forwarding rule (internal LB)', usd: 0.025, per: 'hour', source: 'https://cloud.google.com/vpc/network-pricing (first 5 forwarding rules, us-central1)', asOf: '2025-06-01' },
  google_secret_manager_secret_version: { item: 'Secret Manager secret version', usd: 0.06, per: 'month', source: 'https://cloud.google.com/secret-manager/pricing (active version)', asOf: '2025-06-01' },
  google_cloud_scheduler_job: { item: 'Cloud Scheduler job', usd: 0.1, per: 'month', source: 'https://cloud.google.com/scheduler/pricing (beyond the free 3 per billing account)', asOf: '2025-06-01' },
};

/** Cloud NAT bills per VM using the gateway, up to 32 VMs. */
export const GCP_CLOUD_NAT_PER_VM: UnitPrice = {
  usd: 0.0014, per: 'hour', source: 'https://cloud.google.com/nat/pricing (per VM, capped at 32 VMs; data processed not included)', asOf: '2025-06-01',
};

/** SageMaker real-time inference instance hours read off the price list. */
export const SAGEMAKER_PRICES: Readonly<Record<string, number>> = {
  'ml.g5.xlarge': 1.408,
  'ml.m5.xlarge': 0.23,
};
export const SAGEMAKER_SOURCE = { source: 'https://aws.amazon.com/sagemaker/pricing/ (real-time inference, us-east-1)', asOf: '2025-06-01' };
/**
 * Other `ml.` types: the catalog's EC2 price times SageMaker's markup on GPU hosting
 * (ml.g5.xlarge 1.408 / g5.xlarge 1.006 = 1.40).
 */
export const SAGEMAKER_MARKUP = 1.4;

/** ElastiCache node hours by node type. */
export const ELASTICACHE_PRICES: Readonly<Record<string, number>> = {
  'cache.t4g.micro': 0.016, 'cache.t4g.small': 0.032, 'cache.t4g.medium': 0.065,
  'cache.r7g.large': 0.219, 'cache.m7g.large': 0.158,
};
export const ELASTICACHE_SOURCE = { source: 'https://aws.amazon.com/elasticache/pricing/ (on-demand node hour, us-east-1)', asOf: '2025-06-01' };

export const BIGTABLE_NODE: UnitPrice = { usd: 0.65, per: 'hour', source: 'https://cloud.google.com/bigtable/pricing (SSD cluster node, us-central1; storage not included)', asOf: '2025-06-01' };
export const MEMORYSTORE_BASIC_GIB: UnitPrice = { usd: 0.049, per: 'hour', source: 'https://cloud.google.com/memorystore/docs/redis/pricing (Basic tier GiB hour, us-central1)', asOf: '2025-06-01' };

/** Cloud Run, instance-based billing (what GPU services use), per second, us-central1 tier 1. */
export const CLOUD_RUN = {
  vcpuSecond: 0.000018,
  gibSecond: 0.000002,
  l4Second: 0.0001867,
  source: 'https://cloud.google.com/run/pricing (instance-based billing, tier 1; min instances are billed while idle)',
  asOf: '2025-06-01',
};

/**
 * Spot / preemptible price as a share of on-demand, by target: an average, not a quote (spot prices
 * move hourly). AWS: the Spot Instance Advisor shows 60-70 % savings typical for GPU families; GCP:
 * Spot VM GPUs list at roughly 60-70 % off. Override per report with `spotFraction`.
 */
export const SPOT_FRACTION: Readonly<Record<TargetKind, number>> = { aws: 0.35, gcp: 0.35, kubernetes: 0.35 };
export const SPOT_SOURCE = {
  source: 'share of on-demand: https://aws.amazon.com/ec2/spot/instance-advisor/, https://cloud.google.com/spot-vms/pricing (typical GPU savings 60-70 %)',
  asOf: '2025-06-01',
};

export const HOURS_PER_MONTH = 730;
