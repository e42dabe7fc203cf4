/**
 * Which endpoints serve a pipeline's models, and how each rolls a version out. A ModelEndpoint that
 * serves `pipeline.model` writes `<artifacts>/models/endpoints/<name>.json` (by Terraform, with the
 * endpoint); a promotion rolls the version out to every endpoint listed, one after the other, and the
 * registry pointer moves only when all of them serve it.
 */
import { joinUri, type Storage } from '../storage/index';
import type { KubernetesRolloutConfig, DeploymentApi } from './rollout-kubernetes';
import type { CloudRunRolloutConfig } from './rollout-cloudrun';
import type { SageMakerRolloutConfig } from './rollout-sagemaker';
import type { ModelVersion } from './registry';

export type EndpointRollout =
  | ({ readonly kind: 'sagemaker'; readonly name: string } & SageMakerRolloutConfig)
  | ({ readonly kind: 'cloudrun'; readonly name: string } & CloudRunRolloutConfig)
  | ({ readonly kind: 'kubernetes'; readonly name: string } & KubernetesRolloutConfig);

export interface EndpointDeps {
  /** The Kubernetes Deployments API (in a pod: the service account's client). */
  readonly kubernetes?: () => DeploymentApi;
}

/** The endpoints registered under `<artifacts>/models/endpoints/`, by name. */
export async function readEndpoints(storage: Storage, artifactsUri: string): Promise<EndpointRollout[]> {
  const prefix = joinUri(artifactsUri, 'models/endpoints/');
  const out: EndpointRollout[] = [];
  for (const o of await storage.list(prefix)) {
    if (!o.key.endsWith('.json') || o.key.includes('/')) continue;
    const rec = await storage.readVersioned(o.uri);
    if (!rec) continue;
    let e: EndpointRollout;
    try {
      e = JSON.parse(rec.text) as EndpointRollout;
    } catch (err) {
      throw new Error(`${o.uri} is not JSON: ${(err as Error).message}`);
    }
    if (!['sagemaker', 'cloudrun', 'kubernetes'].includes(e.kind)) throw new Error(`${o.uri}: kind must be sagemaker, cloudrun or kubernetes, got ${JSON.stringify(e.kind)}`);
    out.push(e);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * A registry rollout over every endpoint. Each rollout module is a file of its own beside the agent
 * bundle (the SDKs load only when a promotion runs on that target).
 */
export function rolloutToAll(endpoints: readonly EndpointRollout[], deps: EndpointDeps = {}): (v: ModelVersion) => Promise<void> {
  return async (v) => {
    for (const e of endpoints) {
      if (e.kind === 'sagemaker') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-sagemaker') as typeof import('./rollout-sagemaker')).rolloutSageMaker(e, v);
      } else if (e.kind === 'cloudrun') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-cloudrun') as typeof import('./rollout-cloudrun')).rolloutCloudRun(e, v);
      } else {
        if (!deps.kubernetes) throw new Error(`endpoint ${e.name} is on Kubernetes: promote it from the cluster (the gateway), where the API server is reachable`);
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-kubernetes') as typeof import('./rollout-kubernetes')).rolloutKubernetes(deps.kubernetes(), e, v);
      }
    }
  };
}
