/**
 * Rolls a registry version out to a ModelEndpoint on Kubernetes with Deployments, the way the endpoint
 * is built: a canary Deployment gets the new version (MODEL_URI, MLINFRA_MODEL_VERSION) and its replicas,
 * bakes, then the stable Deployment moves to it (a RollingUpdate) and the canary goes back to zero. A
 * Deployment that does not become available in time (Progressing=False, ProgressDeadlineExceeded, or
 * our own deadline) is patched back to the version that served, so the pointer and the serving pods
 * stay on it. Patches are strategic merge patches: containers and env vars merge by name
 * (kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
 */
import type { ModelVersion } from './registry';

export interface KubernetesRolloutConfig {
  readonly namespace: string;
  /** The Deployment that serves all traffic once the rollout is done. */
  readonly stable: string;
  /** The canary Deployment (behind the same Service); none: the stable Deployment is updated in place. */
  readonly canary?: string;
  readonly canaryReplicas?: number;
  /** The model server's container name. @default 'server' */
  readonly container?: string;
  readonly bakeSeconds: number;
  /** @default 5 */
  readonly pollSeconds?: number;
  /** @default 1200 (large models load for minutes) */
  readonly maxWaitSeconds?: number;
}

/** What the rollout needs from a Kubernetes client. */
export interface DeploymentApi {
  getDeployment(namespace: string, name: string): Promise<Deployment>;
  /** A strategic merge patch. */
  patchDeployment(namespace: string, name: string, patch: unknown): Promise<Deployment>;
}

export interface Deployment {
  metadata: { name: string; generation?: number };
  spec: { replicas?: number; template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } };
  status?: {
    observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface KubernetesDeps {
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

interface Served { readonly uri: string | null; readonly version: string | null }

export async function rolloutKubernetes(api: DeploymentApi, cfg: KubernetesRolloutConfig, v: ModelVersion, deps: KubernetesDeps = {}): Promise<{ previousVersion: string | null }> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const container = cfg.container ?? 'server';
  const ns = cfg.namespace;
  const envPatch = (s: Served, replicas?: number) => ({
    spec: {
      ...(replicas === undefined ? {} : { replicas }),
      template: { spec: { containers: [{ name: container, env: [{ name: 'MODEL_URI', value: s.uri ?? '' }, { name: 'MLINFRA_MODEL_VERSION', value: s.version ?? '' }] }] } },
    },
  });
  const waitAvailable = async (name: string): Promise<void> => {
    const deadline = now() + (cfg.maxWaitSeconds ?? 1200) * 1000;
    for (;;) {
      const d = await api.getDeployment(ns, name);
      const want = d.spec.replicas ?? 1;
      const st = d.status ?? {};
      const stuck = st.conditions?.find((c) => c.type === 'Progressing' && c.status === 'False');
      if (stuck) throw new Error(`Deployment ${ns}/${name}: ${stuck.reason ?? 'not progressing'}${stuck.message ? `: ${stuck.message}` : ''}`);
      if ((st.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) && (st.updatedReplicas ?? 0) >= want && (st.availableReplicas ?? 0) >= want && (st.replicas ?? 0) <= want) return;
      if (now() > deadline) throw new Error(`Deployment ${ns}/${name} not available after ${cfg.maxWaitSeconds ?? 1200} s (${st.availableReplicas ?? 0}/${want} available)`);
      await sleep((cfg.pollSeconds ?? 5) * 1000);
    }
  };

  const stable = await api.getDeployment(ns, cfg.stable);
  const env = stable.spec.template.spec.containers.find((c) => c.name === container)?.env ?? [];
  const served: Served = { uri: env.find((e) => e.name === 'MODEL_URI')?.value ?? null, version: env.find((e) => e.name === 'MLINFRA_MODEL_VERSION')?.value || null };
  const next: Served = { uri: v.modelUri, version: v.version };
  // already served (a retried promotion, or a sync of an endpoint that has it): nothing to bake again
  if (served.version === next.version && served.uri === next.uri) return { previousVersion: served.version };

  if (cfg.canary) {
    await api.patchDeployment(ns, cfg.canary, envPatch(next, Math.max(1, cfg.canaryReplicas ?? 1)));
    try {
      await waitAvailable(cfg.canary);
      await sleep(cfg.bakeSeconds * 1000);
      await waitAvailable(cfg.canary);
    } catch (e) {
      await api.patchDeployment(ns, cfg.canary, envPatch(served, 0));
      throw new Error(`canary of ${v.version} failed, ${served.version ?? 'the previous model'} keeps serving: ${(e as Error).message}`);
    }
  }
  await api.patchDeployment(ns, cfg.stable, envPatch(next));
  try {
    await waitAvailable(cfg.stable);
  } catch (e) {
    await api.patchDeployment(ns, cfg.stable, envPatch(served));
    if (cfg.canary) await api.patchDeployment(ns, cfg.canary, envPatch(served, 0));
    throw new Error(`stable Deployment did not take ${v.version}, moved back to ${served.version ?? 'the previous model'}: ${(e as Error).message}`);
  }
  if (cfg.canary) await api.patchDeployment(ns, cfg.canary, { spec: { replicas: 0 } });
  return { previousVersion: served.version };
}
