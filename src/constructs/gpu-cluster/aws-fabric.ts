/**
 * GpuCluster on AWS, issue 18: what a multi-node cluster needs to train across hosts — a cluster
 * placement group in one Availability Zone, EFA interfaces where the instance type has them, and
 * the NCCL/libfabric environment jobs inherit from the agent.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import type { LaunchTemplateNetworkInterfaces } from '@cdktf/provider-aws/lib/launch-template';
import { ACCELERATORS, ACCELERATOR_NAMES, AwsEfa, awsEfaOf } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import type { GpuClusterPlan } from './plan';

/**
 * Families a cluster placement group refuses: burstable (T), Mac and flex instances
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/placement-groups-limitations.html#placement-groups-limitations-cluster).
 */
const UNPLACEABLE = /^(t\d+[a-z]*|mac\d*[a-z0-9-]*|[a-z]+\d+[a-z]*-flex)\./;

/** The catalog's AWS shapes: every one of them can be placed in a cluster placement group. */
export function placeableAwsTypes(): string[] {
  return ACCELERATOR_NAMES.flatMap((a) => ACCELERATORS[a].aws.map((s) => s.instanceType));
}

/** A multi-node cluster whose instance type cannot join a cluster placement group is refused at synth. */
export function checkAwsPlacement(cluster: Construct, plan: GpuClusterPlan, multiNode: boolean): void {
  const type = plan.shape.instanceType;
  if (!multiNode || type === undefined || Token.isUnresolved(type) || !UNPLACEABLE.test(type)) return;
  throw Errors.notOffered(cluster, 'instanceType', type,
    `a multi-node cluster (nodes.max ${plan.nodes.max}) runs in a cluster placement group, which ${type} cannot join (burstable, Mac and flex types)`,
    `${placeableAwsTypes().join(', ')}, or another current-generation type; or nodes.max 1`);
}

/**
 * EFA interfaces for the launch template, one per network card. Card 0 device 0 is the primary
 * interface (EFA with ENA: it carries the host's IP traffic too); each further card gets an EFA with
 * ENA at device index 1, the layout the EC2 user guide shows for multi-card types
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html). EFA-only interfaces
 * would save IP addresses on P5 but are not offered on every EFA type; `efa` is.
 * Security groups go on each interface: a launch template with interfaces takes none of its own.
 */
export function efaNetworkInterfaces(efa: AwsEfa, securityGroupId: string): LaunchTemplateNetworkInterfaces[] {
  return Array.from({ length: efa.maxInterfaces }, (_, card) => ({
    networkCardIndex: card, deviceIndex: card === 0 ? 0 : 1, interfaceType: 'efa',
    securityGroups: [securityGroupId], deleteOnTermination: 'true',
  }));
}

/** The instance type's EFA when the cluster spans hosts; undefined otherwise (one host needs none). */
export function clusterEfa(plan: GpuClusterPlan, multiNode: boolean): AwsEfa | undefined {
  return multiNode ? awsEfaOf(plan.shape.instanceType) : undefined;
}

/**
 * NCCL and libfabric settings for jobs on a multi-node cluster (jobs inherit the agent's environment).
 * - NCCL_SOCKET_IFNAME: bootstrap and TCP fallback on the host's network, never loopback or Docker
 *   bridges (`^` excludes; https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html).
 * - With EFA: FI_PROVIDER=efa (NCCL's aws-ofi-nccl plugin, shipped in the Deep Learning AMI, uses
 *   libfabric's EFA provider), FI_EFA_USE_DEVICE_RDMA=1 where the type has GPUDirect RDMA, and
 *   FI_EFA_FORK_SAFE=1 for data loaders that fork (needed by libfabric before 1.13, harmless after).
 */
export function ncclEnvironment(multiNode: boolean, efa: AwsEfa | undefined): Record<string, string> {
  if (!multiNode) return {};
  return {
    NCCL_SOCKET_IFNAME: '^lo,docker',
    ...(efa ? { FI_PROVIDER: 'efa', FI_EFA_FORK_SAFE: '1', ...(efa.gpuDirectRdma ? { FI_EFA_USE_DEVICE_RDMA: '1' } : {}) } : {}),
  };
}
