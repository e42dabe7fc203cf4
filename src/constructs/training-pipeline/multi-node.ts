import { Token } from 'cdktf';
import type { IConstruct } from 'constructs';
import { Errors } from '../../core/errors';
import type { IGpuCluster } from '../gpu-cluster';
import type { RunStepOptions } from './index';

/**
 * `nodes` and `gpusPerNode` of a run step (the contract: MULTI_NODE_ENV in contracts/pipeline-spec):
 * undefined for a one-node step. Refuses at synth what the cluster cannot place: more nodes than its
 * `nodes.max` (one rank per host), `gpus` on a multi-node step (ambiguous), and onOom on a gang.
 * `gpusPerNode` is range-checked by the caller with `gpus` (0 to the node's accelerators).
 */
export function multiNode(where: IConstruct, cluster: IGpuCluster, at: string, s: string, r: RunStepOptions): { nodes: number; gpusPerNode: number } | undefined {
  const nodes = r.nodes ?? 1;
  const max = cluster.nodes.max;
  if (!Number.isInteger(nodes) || nodes < 1) throw Errors.outOfRange(where, `${at}.nodes`, nodes, `an integer from 1 to the cluster's nodes.max for step "${s}"`);
  if (!Token.isUnresolved(max) && nodes > max) {
    throw Errors.outOfRange(where, `${at}.nodes`, nodes, `at most ${max} for step "${s}": one rank per host, and ${cluster.node.path} has nodes.max ${max} (raise it, or run on fewer nodes)`);
  }
  if (nodes === 1) {
    if (r.gpusPerNode !== undefined) throw Errors.conflict(where, `${at}.gpusPerNode`, r.gpusPerNode, 'gpusPerNode only with nodes > 1 (one node: gpus)', `is set for step "${s}" on one node`);
    return undefined;
  }
  if (r.gpus !== undefined) {
    throw Errors.conflict(where, `${at}.gpus`, r.gpus, `gpusPerNode (GPUs on each of the ${nodes} nodes) for a multi-node step`, `is ambiguous for step "${s}" on ${nodes} nodes`);
  }
  if (r.onOom !== undefined) {
    throw Errors.conflict(where, `${at}.onOom`, r.onOom.node?.path ?? String(r.onOom), 'no onOom on a multi-node step (a gang is not escalated)', `is set for step "${s}" on ${nodes} nodes`);
  }
  return { nodes, gpusPerNode: r.gpusPerNode ?? cluster.accelerator.count };
}
