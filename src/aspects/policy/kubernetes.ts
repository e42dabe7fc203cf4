import { Attrs, block, blocks, dig } from './attrs';
import { PolicyElement } from './types';

/** Where each workload type keeps its pod template (`spec` path to the pod spec's parent). */
const TEMPLATE_PATHS: Record<string, string> = {
  kubernetes_deployment: 'spec.template',
  kubernetes_deployment_v1: 'spec.template',
  kubernetes_stateful_set: 'spec.template',
  kubernetes_stateful_set_v1: 'spec.template',
  kubernetes_daemonset: 'spec.template',
  kubernetes_daemon_set_v1: 'spec.template',
  kubernetes_replication_controller: 'spec.template',
  kubernetes_replication_controller_v1: 'spec.template',
  kubernetes_job: 'spec.template',
  kubernetes_job_v1: 'spec.template',
  kubernetes_cron_job: 'spec.job_template.spec.template',
  kubernetes_cron_job_v1: 'spec.job_template.spec.template',
};

/** Every Kubernetes type that runs pods: the pod rules apply to these. */
export const POD_TYPES: readonly string[] = [...Object.keys(TEMPLATE_PATHS), 'kubernetes_pod', 'kubernetes_pod_v1'];

export interface PodTemplate {
  readonly spec: Attrs;
  readonly labels: Record<string, string>;
  /** As synthesized (possibly a reference); undefined = the provider's default namespace. */
  readonly namespace?: string;
}

export function podTemplate(el: PolicyElement): PodTemplate | undefined {
  const path = TEMPLATE_PATHS[el.type];
  const template = path ? block(dig(el.attrs, path)) : el.attrs;
  const spec = block(template?.spec);
  if (!template || !spec) return undefined;
  const labels = (block(template.metadata)?.labels ?? {}) as Record<string, string>;
  const ns = block(el.attrs.metadata)?.namespace;
  return { spec, labels, namespace: typeof ns === 'string' ? ns : undefined };
}

export interface Container {
  readonly name: string;
  readonly init: boolean;
  readonly attrs: Attrs;
}

export function containers(spec: Attrs): Container[] {
  return [
    ...blocks(spec.init_container).map((c) => ({ name: String(c.name), init: true, attrs: c })),
    ...blocks(spec.container).map((c) => ({ name: String(c.name), init: false, attrs: c })),
  ];
}

/** `limits` and `requests` of a container's resources block. */
export function resourceMap(c: Container, which: 'limits' | 'requests'): Record<string, unknown> {
  return (block(block(c.attrs.resources)?.[which]) ?? {}) as Record<string, unknown>;
}

export const GPU_RESOURCE = 'nvidia.com/gpu';

/** Names a container that asks for GPUs. */
export function requestsGpu(c: Container): boolean {
  const n = (v: unknown) => v !== undefined && v !== '0' && v !== 0;
  return n(resourceMap(c, 'limits')[GPU_RESOURCE]) || n(resourceMap(c, 'requests')[GPU_RESOURCE]);
}

/** Label selector match (match_labels and match_expressions); an empty selector selects every pod. */
export function selects(selector: Attrs | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  const ml = (block(selector.match_labels) ?? {}) as Record<string, unknown>;
  if (!Object.entries(ml).every(([k, v]) => labels[k] === v)) return false;
  return blocks(selector.match_expressions).every((e) => {
    const key = String(e.key);
    const values = Array.isArray(e.values) ? e.values.map(String) : [];
    switch (e.operator) {
      case 'In': return key in labels && values.includes(labels[key]);
      case 'NotIn': return !(key in labels) || !values.includes(labels[key]);
      case 'Exists': return key in labels;
      case 'DoesNotExist': return !(key in labels);
      default: return false;
    }
  });
}
