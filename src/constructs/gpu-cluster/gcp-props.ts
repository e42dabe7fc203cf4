/** GpuCluster's prop rules on GCP, checked before any resource exists. */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { Errors } from '../../core/errors';
import type { GpuClusterProps } from './props';

/** GpuCluster's rules on GCP: props other targets take are refused; a max node count must be a number. */
/**
 * Files GCP hosts load beside the agent: the Cloud Run and Kubernetes rollouts a promote step runs
 * (src/runtime-agent/registry/endpoints.ts requires them lazily). The Pub/Sub client is REST inside the
 * agent itself, so no queue module (src/runtime-agent/queue/README.md).
 */
export const GCP_HOST_FILES = ['rollout-cloudrun.js', 'rollout-kubernetes.js'] as const;

export function checkGcpProps(cluster: Construct, props: GpuClusterProps): { explicitType?: string; explicitTypeProp: string; storageFile: string; hostFiles: readonly string[] } {
  if (props.instanceType !== undefined) {
    throw Errors.conflict(cluster, 'instanceType', props.instanceType, 'machineType on a gcp target', 'applies to aws targets only, not gcp');
  }
  if (props.machineType !== undefined && !Token.isUnresolved(props.machineType) && !/^[a-z][a-z0-9]*-[a-z0-9-]+$/.test(props.machineType)) {
    throw Errors.invalid(cluster, 'machineType', props.machineType, 'a Compute Engine machine type such as a2-highgpu-1g');
  }
  if (props.onDemandBaseNodes !== undefined && props.spot) {
    throw Errors.conflict(cluster, 'onDemandBaseNodes', props.onDemandBaseNodes, 'aws targets only', 'is not supported on gcp');
  }
  // The MIG's size and the idle-stop floor are computed from it.
  if (props.nodes !== undefined && Token.isUnresolved(props.nodes.max)) {
    throw Errors.invalid(cluster, 'nodes.max', props.nodes.max, 'an integer from 1 to 1000 (a Terraform reference is supported on aws targets only)', 'is a Terraform reference');
  }
  if (props.agentImage !== undefined) {
    throw Errors.conflict(cluster, 'agentImage', props.agentImage, 'kubernetes targets only (hosts on aws/gcp run the agent with Node.js directly)', 'does not apply to gcp');
  }
  if (props.kubernetes !== undefined) throw Errors.conflict(cluster, 'kubernetes', 'set', 'kubernetes targets only', 'does not apply to gcp');
  return { explicitType: props.machineType, explicitTypeProp: 'machineType', storageFile: 'storage-gcs.js', hostFiles: GCP_HOST_FILES };
}
