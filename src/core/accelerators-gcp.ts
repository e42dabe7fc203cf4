/**
 * GCP machine-series facts the accelerator catalog's GCP shapes need beyond their size and price:
 * which series can be placed compactly (multi-node training) and which NIC they take. One table, so
 * the GpuCluster backend and its tests read the same answer.
 */

export interface GcpMachineSeries {
  /** The series, as Google names it in its docs. */
  readonly series: string;
  /** Machine types of the series start with this. */
  readonly prefix: string;
  /**
   * A compact placement policy (group_placement_policy collocation COLLOCATED) may hold instances of
   * this series. Supported: A2, A3 (High, Mega, Edge, Ultra), G2, among the GPU series; not N1
   * (https://cloud.google.com/ai-hypercomputer/docs/placement-policy-and-workload-policy, "Supported machine
   * types" of compact placement policies; compute/docs/instances/placement-policies-overview).
   */
  readonly compactPlacement: boolean;
  /**
   * gVNIC on the instance's interface: 'required' where the series has no VirtIO-net (A3), 'supported'
   * where it is the faster choice (A2, G2: gVNIC is what reaches the series' full bandwidth).
   * compute/docs/networking/using-gvnic; compute/docs/accelerator-optimized-machines#network.
   */
  readonly gvnic: 'required' | 'supported' | 'no';
}

/** GPU machine series of the catalog's GCP shapes (and of explicit machine types of the same families). */
export const GCP_MACHINE_SERIES: readonly GcpMachineSeries[] = [
  { series: 'A2 Standard', prefix: 'a2-highgpu-', compactPlacement: true, gvnic: 'supported' },
  { series: 'A2 Standard', prefix: 'a2-megagpu-', compactPlacement: true, gvnic: 'supported' },
  { series: 'A2 Ultra', prefix: 'a2-ultragpu-', compactPlacement: true, gvnic: 'supported' },
  { series: 'A3 High', prefix: 'a3-highgpu-', compactPlacement: true, gvnic: 'required' },
  { series: 'A3 Mega', prefix: 'a3-megagpu-', compactPlacement: true, gvnic: 'required' },
  { series: 'A3 Edge', prefix: 'a3-edgegpu-', compactPlacement: true, gvnic: 'required' },
  { series: 'A3 Ultra', prefix: 'a3-ultragpu-', compactPlacement: true, gvnic: 'required' },
  { series: 'G2', prefix: 'g2-', compactPlacement: true, gvnic: 'supported' },
  // N1 with attached T4 / V100: no compact placement; VirtIO-net stays (the image default).
  { series: 'N1', prefix: 'n1-', compactPlacement: false, gvnic: 'no' },
];

/**
 * Most instances one compact placement policy holds, in the docs' restrictions of compact placement
 * policies ("supports up to 150 VMs" per policy: compute/docs/instances/define-instance-placement#restrictions).
 */
export const GCP_COMPACT_PLACEMENT_MAX_VMS = 150;

/** The series a machine type belongs to, or undefined for a type outside the table. */
export function gcpMachineSeries(machineType: string): GcpMachineSeries | undefined {
  return GCP_MACHINE_SERIES.find((s) => machineType.startsWith(s.prefix));
}

/** Machine-type prefixes whose series take a compact placement policy, for error messages. */
export function gcpCompactPlacementPrefixes(): string[] {
  return GCP_MACHINE_SERIES.filter((s) => s.compactPlacement).map((s) => `${s.prefix}*`);
}
