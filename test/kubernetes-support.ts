/** Shared by the Kubernetes tests: the gateway config a synthesized GpuCluster writes, as the gateway reads it. */
import * as path from 'path';
import type { GatewayConfig } from '../src/runtime-agent/k8s/objects';
import { resources, TerraformJson } from './helpers';

/**
 * The `config.json` of the cluster's gateway ConfigMap (the first, or the one whose cluster name
 * starts with `cluster`), with the references a real apply resolves filled in: the namespace becomes
 * `namespace`, other object names their logical id without the hash (e.g. `train_gateway_job-service-account`).
 */
export function gatewayConfigOf(json: TerraformJson, namespace = 'ml', cluster?: string): GatewayConfig {
  const all = Object.values(resources(json, 'kubernetes_config_map_v1')).filter((c: any) => c.data?.['config.json']) as any[];
  const text = all.map((c) => c.data['config.json'] as string).find((t) => !cluster || JSON.parse(t).cluster.startsWith(cluster));
  if (!text) throw new Error(`no gateway config${cluster ? ` for ${cluster}` : ''}`);
  return JSON.parse(text.replace(/\$\{kubernetes_namespace_v1\.[^}]+\}/g, namespace)
    .replace(/\$\{kubernetes_[a-z_0-9]+\.([^.}]+)_[A-Z0-9]{8}\.metadata\[0\]\.name\}/g, '$1'));
}

/**
 * Without PyTorch on this machine, train.py is swapped for a stand-in that keeps its file contract
 * (model/<candidate>.pt, val_auc_<candidate> merged into metrics.json); CI installs PyTorch and runs the real one.
 */
export const STAND_IN_TRAIN = `import argparse, os, sys
sys.path.insert(0, ${JSON.stringify(path.join(__dirname, '..', 'examples', 'training-pipeline', 'scripts'))})
from _runfiles import merge_metrics, run_dir
ap = argparse.ArgumentParser(); ap.add_argument("--candidate"); ap.add_argument("--lr", type=float); ap.add_argument("--hidden", type=int)
a = ap.parse_args()
rows = sum(1 for _ in open(os.path.join(run_dir(), "data", "train.csv"))) - 1
os.makedirs(os.path.join(run_dir(), "model"), exist_ok=True)
open(os.path.join(run_dir(), "model", a.candidate + ".pt"), "w").write("stand-in " + a.candidate)
merge_metrics({"val_auc_" + a.candidate: round(0.7 + a.lr + a.hidden / 10000.0, 6)})
print("train " + a.candidate + ": stand-in on " + str(rows) + " rows, gpus " + os.environ["MLINFRA_GPUS"], flush=True)
`;
