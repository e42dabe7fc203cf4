/** Shared by the Kubernetes tests: the gateway config a synthesized GpuCluster writes, as the gateway reads it. */
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
