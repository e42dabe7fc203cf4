/**
 * GpuCluster on GCP, multi-node training: a compact placement policy for the group's hosts, gVNIC on
 * their interface, and the NCCL environment jobs get.
 *
 * What we do and what we do not (issue 18, item 3):
 * - Compact placement (google_compute_resource_policy group_placement_policy collocation COLLOCATED,
 *   no vm_count, so hosts join the policy one by one as the group scales out: the placement docs and
 *   GoogleCloudPlatform/cluster-toolkit#1850 recommend that; vm_count makes every VM wait for the full
 *   count). Best effort: no max_distance (beta-only in the provider). The template names it in
 *   resource_policies (at most one policy per template, provider docs).
 * - gVNIC (nic_type GVNIC) on A2, A3 and G2 hosts: A3 has no VirtIO-net, and gVNIC reaches the series'
 *   bandwidth. The Deep Learning VM images carry the GVNIC guest OS feature; an explicit machineImage
 *   must too (compute/docs/networking/using-gvnic).
 * - NCCL over TCP sockets on the one gVNIC interface: NCCL_SOCKET_IFNAME excludes loopback and Docker
 *   bridges, NCCL_NET=Socket keeps NCCL off a network plugin an image may ship without its runtime.
 *   NCCL tunes sockets and threads for gVNIC by itself. We do NOT set up GPUDirect-TCPX (A3 High) or
 *   TCPXO (A3 Mega): they need four more NICs on their own VPCs, the receive-datapath manager and the
 *   TCPX NCCL plugin; nor GPUDirect RDMA on A3 Ultra (eight RDMA NICs on an RDMA network profile). A3
 *   jobs across hosts therefore run at the primary NIC's bandwidth, not the GPUDirect figure
 *   (compute/docs/gpus/gpudirect, ai-hypercomputer/docs/create/create-vm).
 */
import { Construct } from 'constructs';
import type { TerraformProvider } from 'cdktf';
import { ComputeResourcePolicy } from '@cdktf/provider-google/lib/compute-resource-policy';
import { GCP_COMPACT_PLACEMENT_MAX_VMS, gcpCompactPlacementPrefixes, gcpMachineSeries } from '../../core/accelerators-gcp';
import { Errors } from '../../core/errors';
import type { GpuClusterPlan } from './plan';

/** Environment of every job on a multi-node cluster (agent unit environment; jobs inherit it). */
export const GCP_NCCL_ENV: Readonly<Record<string, string>> = {
  // NCCL_SOCKET_IFNAME: "^" excludes interfaces by prefix (NCCL env docs): every interface but lo and docker*.
  NCCL_SOCKET_IFNAME: '^lo,docker',
  NCCL_NET: 'Socket',
};

/**
 * Refuses a multi-node cluster whose machine series cannot be placed compactly, naming the series
 * that can; and one larger than a compact policy holds. Explicit types outside the table are the
 * user's call (the catalog does not know them) and get no policy.
 */
export function checkGcpPlacement(cluster: Construct, plan: Pick<GpuClusterPlan, 'nodes' | 'shape'>, machineType: string): { compact: boolean; gvnic: boolean } {
  const series = gcpMachineSeries(machineType);
  const gvnic = series !== undefined && series.gvnic !== 'no';
  if (plan.nodes.max <= 1) return { compact: false, gvnic };
  if (series && !series.compactPlacement) {
    throw Errors.notOffered(cluster, 'nodes.max', plan.nodes.max,
      `${plan.shape.accelerator} x${plan.shape.count} runs on ${machineType} (${series.series}), which a compact placement policy cannot hold: multi-node training needs its hosts placed together`,
      `nodes.max 1 on ${series.series}, or an accelerator on a series with compact placement: ${gcpCompactPlacementPrefixes().join(', ')} (A100-40GB, A100-80GB, H100, H200, L4)`);
  }
  if (series && plan.nodes.max > GCP_COMPACT_PLACEMENT_MAX_VMS) {
    throw Errors.outOfRange(cluster, 'nodes.max', plan.nodes.max, `at most ${GCP_COMPACT_PLACEMENT_MAX_VMS} hosts: one compact placement policy holds no more`);
  }
  return { compact: series !== undefined, gvnic };
}

/** The group's compact placement policy, in the group's region. */
export function buildCompactPlacementPolicy(scope: Construct, o: { provider: TerraformProvider; project: string; region: string; name: string; description: string }): ComputeResourcePolicy {
  return new ComputeResourcePolicy(scope, 'placement', {
    provider: o.provider, project: o.project, region: o.region, name: o.name, description: o.description,
    groupPlacementPolicy: { collocation: 'COLLOCATED' },
  });
}
