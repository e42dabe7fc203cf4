/**
 * The accelerator catalog: one table from accelerator x count to the shape each target offers.
 * Every construct that needs a GPU resolves it here, so "what does A100-80GB x8 mean on GCP" has
 * exactly one answer in the codebase.
 */
import { Token } from 'cdktf';
import { Errors } from './errors';

export const ACCELERATOR_NAMES = ['T4', 'L4', 'A10G', 'L40S', 'V100', 'A100-40GB', 'A100-80GB', 'H100', 'H200'] as const;
export type AcceleratorName = (typeof ACCELERATOR_NAMES)[number];
export type TargetKind = 'aws' | 'gcp' | 'kubernetes';
export const TARGET_KINDS: readonly TargetKind[] = ['aws', 'gcp', 'kubernetes'];

/** An on-demand list price and where it came from. */
export interface Price {
  readonly usdPerHour: number;
  readonly source: string;
  readonly asOf: string;
}

export interface AwsShape {
  readonly count: number;
  readonly instanceType: string;
  readonly vcpu: number;
  readonly memoryGiB: number;
  readonly usdPerHour: number;
}

export interface GcpShape {
  readonly count: number;
  readonly machineType: string;
  readonly vcpu: number;
  readonly memoryGiB: number;
  readonly usdPerHour: number;
}

export interface AcceleratorSpec {
  readonly name: AcceleratorName;
  readonly gpuMemoryGiB: number;
  readonly aws: readonly AwsShape[];
  /** GCP accelerator type for `guest_accelerator` (also set on A2/A3/G2, where it is pre-attached). */
  readonly gcpAcceleratorType?: string;
  readonly gcp: readonly GcpShape[];
  /** `nvidia.com/gpu.product` as NVIDIA GPU Feature Discovery labels nodes. */
  readonly gfdProduct: string;
  /** `cloud.google.com/gke-accelerator` on GKE nodes. */
  readonly gkeAccelerator?: string;
  /** Kubernetes price per GPU: the per-GPU share of the cheapest one-GPU cloud shape. */
  readonly kubernetesUsdPerGpuHour: number;
}

export const PRICE_SOURCES: Record<TargetKind, Omit<Price, 'usdPerHour'>> = {
  aws: { source: 'AWS EC2 On-Demand pricing, us-east-1, Linux (after the 2025-06 P4/P5 price cut)', asOf: '2025-06-05' },
  gcp: { source: 'Google Compute Engine VM + GPU pricing, us-central1, on-demand', asOf: '2025-06-01' },
  kubernetes: { source: 'per-GPU share of the cheapest one-GPU AWS or GCP shape (node cost, not a cluster fee)', asOf: '2025-06-05' },
};

const aws = (count: number, instanceType: string, vcpu: number, memoryGiB: number, usdPerHour: number): AwsShape =>
  ({ count, instanceType, vcpu, memoryGiB, usdPerHour });
const gcp = (count: number, machineType: string, vcpu: number, memoryGiB: number, usdPerHour: number): GcpShape =>
  ({ count, machineType, vcpu, memoryGiB, usdPerHour });

export const ACCELERATORS: Readonly<Record<AcceleratorName, AcceleratorSpec>> = {
  'T4': {
    name: 'T4', gpuMemoryGiB: 16,
    aws: [aws(1, 'g4dn.xlarge', 4, 16, 0.526), aws(4, 'g4dn.12xlarge', 48, 192, 3.912), aws(8, 'g4dn.metal', 96, 384, 7.824)],
    gcpAcceleratorType: 'nvidia-tesla-t4',
    gcp: [gcp(1, 'n1-standard-8', 8, 30, 0.73), gcp(2, 'n1-standard-16', 16, 60, 1.46), gcp(4, 'n1-standard-32', 32, 120, 2.92)],
    gfdProduct: 'Tesla-T4', gkeAccelerator: 'nvidia-tesla-t4', kubernetesUsdPerGpuHour: 0.526,
  },
  'L4': {
    name: 'L4', gpuMemoryGiB: 24,
    aws: [aws(1, 'g6.xlarge', 4, 16, 0.8048), aws(4, 'g6.12xlarge', 48, 192, 4.6016), aws(8, 'g6.48xlarge', 192, 768, 13.3504)],
    gcpAcceleratorType: 'nvidia-l4',
    gcp: [gcp(1, 'g2-standard-8', 8, 32, 0.8536), gcp(2, 'g2-standard-24', 24, 96, 2.0), gcp(4, 'g2-standard-48', 48, 192, 4.0), gcp(8, 'g2-standard-96', 96, 384, 8.0)],
    gfdProduct: 'NVIDIA-L4', gkeAccelerator: 'nvidia-l4', kubernetesUsdPerGpuHour: 0.8048,
  },
  'A10G': {
    name: 'A10G', gpuMemoryGiB: 24,
    aws: [aws(1, 'g5.xlarge', 4, 16, 1.006), aws(4, 'g5.12xlarge', 48, 192, 5.672), aws(8, 'g5.48xlarge', 192, 768, 16.288)],
    gcp: [],
    gfdProduct: 'NVIDIA-A10G', kubernetesUsdPerGpuHour: 1.006,
  },
  'L40S': {
    name: 'L40S', gpuMemoryGiB: 48,
    aws: [aws(1, 'g6e.xlarge', 4, 32, 1.861), aws(4, 'g6e.12xlarge', 48, 384, 10.493), aws(8, 'g6e.48xlarge', 192, 1536, 30.131)],
    gcp: [],
    gfdProduct: 'NVIDIA-L40S', kubernetesUsdPerGpuHour: 1.861,
  },
  'V100': {
    name: 'V100', gpuMemoryGiB: 16,
    aws: [aws(1, 'p3.2xlarge', 8, 61, 3.06), aws(4, 'p3.8xlarge', 32, 244, 12.24), aws(8, 'p3.16xlarge', 64, 488, 24.48)],
    gcpAcceleratorType: 'nvidia-tesla-v100',
    gcp: [gcp(1, 'n1-standard-8', 8, 30, 2.86), gcp(2, 'n1-standard-16', 16, 60, 5.72), gcp(4, 'n1-standard-32', 32, 120, 11.44), gcp(8, 'n1-standard-64', 64, 240, 22.88)],
    gfdProduct: 'Tesla-V100-SXM2-16GB', gkeAccelerator: 'nvidia-tesla-v100', kubernetesUsdPerGpuHour: 2.86,
  },
  'A100-40GB': {
    name: 'A100-40GB', gpuMemoryGiB: 40,
    aws: [aws(8, 'p4d.24xlarge', 96, 1152, 21.96)],
    gcpAcceleratorType: 'nvidia-tesla-a100',
    gcp: [gcp(1, 'a2-highgpu-1g', 12, 85, 3.673), gcp(2, 'a2-highgpu-2g', 24, 170, 7.347), gcp(4, 'a2-highgpu-4g', 48, 340, 14.694), gcp(8, 'a2-highgpu-8g', 96, 680, 29.387), gcp(16, 'a2-megagpu-16g', 96, 1360, 55.74)],
    gfdProduct: 'NVIDIA-A100-SXM4-40GB', gkeAccelerator: 'nvidia-tesla-a100', kubernetesUsdPerGpuHour: 2.745,
  },
  'A100-80GB': {
    name: 'A100-80GB', gpuMemoryGiB: 80,
    aws: [aws(8, 'p4de.24xlarge', 96, 1152, 27.45)],
    gcpAcceleratorType: 'nvidia-a100-80gb',
    gcp: [gcp(1, 'a2-ultragpu-1g', 12, 170, 5.069), gcp(2, 'a2-ultragpu-2g', 24, 340, 10.138), gcp(4, 'a2-ultragpu-4g', 48, 680, 20.276), gcp(8, 'a2-ultragpu-8g', 96, 1360, 40.552)],
    gfdProduct: 'NVIDIA-A100-SXM4-80GB', gkeAccelerator: 'nvidia-a100-80gb', kubernetesUsdPerGpuHour: 3.431,
  },
  'H100': {
    name: 'H100', gpuMemoryGiB: 80,
    aws: [aws(8, 'p5.48xlarge', 192, 2048, 55.04)],
    gcpAcceleratorType: 'nvidia-h100-80gb',
    gcp: [gcp(1, 'a3-highgpu-1g', 26, 234, 11.06), gcp(2, 'a3-highgpu-2g', 52, 468, 22.12), gcp(4, 'a3-highgpu-4g', 104, 936, 44.24), gcp(8, 'a3-highgpu-8g', 208, 1872, 88.49)],
    gfdProduct: 'NVIDIA-H100-80GB-HBM3', gkeAccelerator: 'nvidia-h100-80gb', kubernetesUsdPerGpuHour: 6.88,
  },
  'H200': {
    name: 'H200', gpuMemoryGiB: 141,
    aws: [aws(8, 'p5en.48xlarge', 192, 2048, 63.30)],
    gcpAcceleratorType: 'nvidia-h200-141gb',
    gcp: [gcp(8, 'a3-ultragpu-8g', 224, 2952, 84.81)],
    gfdProduct: 'NVIDIA-H200', gkeAccelerator: 'nvidia-h200-141gb', kubernetesUsdPerGpuHour: 7.91,
  },
};

/** Elastic Fabric Adapter on an EC2 instance type (what a multi-node cluster attaches). */
export interface AwsEfa {
  /** DescribeInstanceTypes NetworkInfo.EfaInfo.MaximumEfaInterfaces: one per network card. */
  readonly maxInterfaces: number;
  /** GPUDirect RDMA over EFA (libfabric `FI_EFA_USE_DEVICE_RDMA=1`): A100 and Hopper P instances. */
  readonly gpuDirectRdma: boolean;
}

/**
 * EC2 GPU instance types with EFA, by type (the catalog's and the explicit ones a user may name):
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html#efa-instance-types and
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html (network cards per type).
 * G instances with EFA are left out: one interface and no GPUDirect RDMA; their NCCL uses TCP here.
 */
export const AWS_EFA: Readonly<Record<string, AwsEfa>> = {
  'p4d.24xlarge': { maxInterfaces: 4, gpuDirectRdma: true },
  'p4de.24xlarge': { maxInterfaces: 4, gpuDirectRdma: true },
  'p5.48xlarge': { maxInterfaces: 32, gpuDirectRdma: true },
  'p5e.48xlarge': { maxInterfaces: 32, gpuDirectRdma: true },
  'p5en.48xlarge': { maxInterfaces: 16, gpuDirectRdma: true },
};

/** EFA of an EC2 instance type, or undefined when the catalog lists none for it. */
export function awsEfaOf(instanceType: string | undefined): AwsEfa | undefined {
  return instanceType === undefined ? undefined : AWS_EFA[instanceType];
}

/** GPUs one Kubernetes pod may request: what common GPU nodes carry. */
export const KUBERNETES_COUNTS = [1, 2, 4, 8] as const;

/** A resolved accelerator shape: everything a backend needs, cloud-neutral where it can be. */
export interface AcceleratorShape {
  readonly accelerator: AcceleratorName;
  readonly count: number;
  readonly target: TargetKind;
  /** AWS instance type or GCP machine type; undefined on Kubernetes. */
  readonly instanceType?: string;
  readonly gcpAcceleratorType?: string;
  readonly vcpu?: number;
  readonly memoryGiB?: number;
  readonly gpuMemoryGiB: number;
  readonly price: Price;
  /** True when the user named the instance/machine type and the catalog only supplied the GPU. */
  readonly explicitType: boolean;
}

export function isAcceleratorName(name: unknown): name is AcceleratorName {
  return typeof name === 'string' && (ACCELERATOR_NAMES as readonly string[]).includes(name);
}

/** Counts of `name` offered on `target`, ascending. */
export function offeredCounts(name: AcceleratorName, target: TargetKind): number[] {
  const spec = ACCELERATORS[name];
  if (target === 'aws') return spec.aws.map((s) => s.count);
  if (target === 'gcp') return spec.gcp.map((s) => s.count);
  return [...KUBERNETES_COUNTS];
}

/** Targets on which `name` is offered with `count` GPUs. */
export function targetsOffering(name: AcceleratorName, count: number): TargetKind[] {
  return TARGET_KINDS.filter((t) => offeredCounts(name, t).includes(count));
}

export interface ResolveOptions {
  /** Where the request came from, for errors (a construct path). */
  readonly where: string;
  /** Prop names for errors. */
  readonly acceleratorProp?: string;
  readonly countProp?: string;
  /** An explicit AWS instance type or GCP machine type: overrides the catalog's choice. */
  readonly explicitType?: string;
  readonly explicitTypeProp?: string;
}

/**
 * Resolves accelerator x count on a target, or throws naming what is offered. With an explicit
 * type, the count is not checked against the catalog (the user knows a shape we do not list).
 */
export function resolveAccelerator(target: TargetKind, name: unknown, count: unknown, opts: ResolveOptions): AcceleratorShape {
  const accProp = opts.acceleratorProp ?? 'accelerator';
  const countProp = opts.countProp ?? 'acceleratorsPerNode';
  if (!isAcceleratorName(name)) throw Errors.unknown(opts.where, accProp, name, ACCELERATOR_NAMES);
  const spec = ACCELERATORS[name];
  const offered = offeredCounts(name, target);
  // The catalog picks the shape at synth time: a Terraform value cannot choose it.
  if (Token.isUnresolved(count)) {
    throw Errors.invalid(opts.where, countProp, '(a Terraform value)', `a literal count of ${name}${offered.length ? ` offered on ${target}: ${offered.join(', ')}` : ''}`, 'is not known at synth time');
  }
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 16) {
    throw Errors.outOfRange(opts.where, countProp, count,
      offered.length ? `an integer count of ${name} offered on ${target}: ${offered.join(', ')}` : `a target that offers ${name}`);
  }
  const priceOf = (usdPerHour: number): Price => ({ usdPerHour: round4(usdPerHour), ...PRICE_SOURCES[target] });

  if (opts.explicitType !== undefined) {
    if (target === 'kubernetes') {
      throw Errors.invalid(opts.where, opts.explicitTypeProp ?? 'instanceType', opts.explicitType,
        'no instance type on kubernetes: the scheduler picks nodes by GPU labels', 'does not apply to a kubernetes target');
    }
    if (target === 'gcp' && !spec.gcpAcceleratorType) {
      throw Errors.notOffered(opts.where, accProp, name, `${name} is not offered on gcp`,
        ACCELERATOR_NAMES.filter((a) => ACCELERATORS[a].gcpAcceleratorType).join(', '));
    }
    // Price the explicit type per GPU from the catalog's cheapest per-GPU shape on that target.
    const shapes = target === 'aws' ? spec.aws : spec.gcp;
    const perGpu = shapes.length ? Math.min(...shapes.map((s) => s.usdPerHour / s.count)) : spec.kubernetesUsdPerGpuHour;
    return {
      accelerator: name, count, target, instanceType: opts.explicitType, gcpAcceleratorType: spec.gcpAcceleratorType,
      gpuMemoryGiB: spec.gpuMemoryGiB, price: priceOf(perGpu * count), explicitType: true,
    };
  }

  if (!offered.includes(count)) {
    if (!offered.length) {
      const on = TARGET_KINDS.filter((t) => offeredCounts(name, t).length);
      const here = ACCELERATOR_NAMES.filter((a) => offeredCounts(a, target).length);
      throw Errors.notOffered(opts.where, accProp, name, `${name} is not offered on ${target} (it is on ${on.join(', ')})`, here.join(', '));
    }
    const elsewhere = targetsOffering(name, count);
    throw Errors.notOffered(opts.where, countProp, count, `${name} x${count} is not offered on ${target}`,
      `${offered.join(', ')}${elsewhere.length ? ` (${name} x${count} is offered on ${elsewhere.join(', ')})` : ''}`);
  }

  if (target === 'kubernetes') {
    return { accelerator: name, count, target, gpuMemoryGiB: spec.gpuMemoryGiB, price: priceOf(spec.kubernetesUsdPerGpuHour * count), explicitType: false };
  }
  const shape = (target === 'aws' ? spec.aws : spec.gcp).find((s) => s.count === count)!;
  return {
    accelerator: name, count, target,
    instanceType: 'instanceType' in shape ? shape.instanceType : shape.machineType,
    gcpAcceleratorType: target === 'gcp' ? spec.gcpAcceleratorType : undefined,
    vcpu: shape.vcpu, memoryGiB: shape.memoryGiB, gpuMemoryGiB: spec.gpuMemoryGiB,
    price: priceOf(shape.usdPerHour), explicitType: false,
  };
}

function round4(n: number): number {
  return Math.round(n * 10000) / 10000;
}

/**
 * SageMaker real-time endpoints offer their own list of `ml.*` instance types, not every EC2 type:
 * accelerator -> GPUs per instance -> SageMaker type. Source: the SageMaker API Reference's
 * ProductionVariantInstanceType and AIRecommendationInstanceDetail valid values (2025).
 * T4 x8 (EC2 g4dn.metal) has no SageMaker type; ml.g4dn.12xlarge is the largest T4 shape.
 */
export const SAGEMAKER_INSTANCE_TYPES: Readonly<Record<AcceleratorName, Readonly<Record<number, string>>>> = {
  'T4': { 1: 'ml.g4dn.xlarge', 4: 'ml.g4dn.12xlarge' },
  'L4': { 1: 'ml.g6.xlarge', 4: 'ml.g6.12xlarge', 8: 'ml.g6.48xlarge' },
  'A10G': { 1: 'ml.g5.xlarge', 4: 'ml.g5.12xlarge', 8: 'ml.g5.48xlarge' },
  'L40S': { 1: 'ml.g6e.xlarge', 4: 'ml.g6e.12xlarge', 8: 'ml.g6e.48xlarge' },
  'V100': { 1: 'ml.p3.2xlarge', 4: 'ml.p3.8xlarge', 8: 'ml.p3.16xlarge' },
  'A100-40GB': { 8: 'ml.p4d.24xlarge' },
  'A100-80GB': { 8: 'ml.p4de.24xlarge' },
  'H100': { 8: 'ml.p5.48xlarge' },
  'H200': { 8: 'ml.p5en.48xlarge' },
};

/** The SageMaker instance type for accelerator x count, or a NOT_OFFERED error naming the counts SageMaker has. */
export function sagemakerInstanceType(name: AcceleratorName, count: number, opts: { readonly where: string; readonly countProp?: string }): string {
  const byCount = SAGEMAKER_INSTANCE_TYPES[name] ?? {};
  const type = byCount[count];
  if (type) return type;
  const offered = Object.keys(byCount).map(Number).sort((a, b) => a - b);
  throw Errors.notOffered(opts.where, opts.countProp ?? 'acceleratorsPerReplica', count,
    `${name} x${count} is not offered on SageMaker endpoints`,
    offered.length ? `${offered.join(', ')} (or set instanceType to a SageMaker ml.* type)` : 'none: pick another accelerator');
}

/**
 * SageMaker instance families with local NVMe storage: SageMaker encrypts it in hardware and refuses a
 * `KmsKeyId` for them (CreateEndpointConfig fails), so a key is set only on EBS-only types.
 */
export function hasLocalStorage(instanceType: string): boolean {
  const family = instanceType.replace(/^ml\./, '').split('.')[0];
  return /^[a-z]+\d+[a-z]*d[a-z]*$/.test(family) || /^(g5|g6|g6e|gr6|p5|p5e|p5en|p6-b200|trn1|trn1n|trn2)$/.test(family);
}

// ---- Serving prices: what a ModelEndpoint backend records as its cost facts (src/core/facts.ts).

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

/** Cloud Run, instance-based billing (what GPU services use), per second, us-central1 tier 1. */
export const CLOUD_RUN_PRICES = {
  vcpuSecond: 0.000018,
  gibSecond: 0.000002,
  l4Second: 0.0001867,
  source: 'https://cloud.google.com/run/pricing (instance-based billing, tier 1; min instances are billed while idle)',
  asOf: '2025-06-01',
};
