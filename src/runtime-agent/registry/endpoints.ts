/**
 * Which endpoints serve a pipeline's models, and how each rolls a version out. A ModelEndpoint on AWS
 * or GCP that serves `pipeline.model` writes `<artifacts>/models/endpoints/<name>.json` (by Terraform,
 * with the endpoint); one on Kubernetes writes a ConfigMap labelled with the pipeline
 * (model-endpoint/kubernetes-registry.ts), which a promoting pod lists in its namespace. A promotion
 * rolls the version out to every endpoint found, one after the other, and the registry pointer moves
 * only when all of them serve it.
 */
import { CONFIGMAPS, DEPLOYMENTS, inClusterClient, KubeApiError, type KubeClient } from '../k8s/kube-client';
import { joinUri, type Storage } from '../storage/index';
import type { Deployment, DeploymentApi, KubernetesRolloutConfig } from './rollout-kubernetes';
import type { CloudRunRolloutConfig } from './rollout-cloudrun';
import type { SageMakerRolloutConfig } from './rollout-sagemaker';
import type { ModelVersion } from './registry';

export type EndpointRollout =
  | ({ readonly kind: 'sagemaker'; readonly name: string } & SageMakerRolloutConfig)
  | ({ readonly kind: 'cloudrun'; readonly name: string } & CloudRunRolloutConfig)
  | ({ readonly kind: 'kubernetes'; readonly name: string } & KubernetesRolloutConfig);

export interface EndpointDeps {
  /** The Kubernetes Deployments API. @default the Deployments API of `cluster` */
  readonly kubernetes?: () => DeploymentApi;
  /** @default inClusterClient(): in a pod with its token mounted, the service account's client */
  readonly cluster?: InCluster;
}

/** Labels of the endpoint record ConfigMaps (the construct sets them: model-endpoint/kubernetes-registry.ts). */
export const RECORD_LABEL = 'mlinfra.dev/endpoint-record';
export const PIPELINE_LABEL = 'mlinfra.dev/pipeline';

/** The pod's Kubernetes client and namespace; null outside a pod (or without a mounted token). */
export type InCluster = { readonly client: KubeClient; readonly namespace: string } | null;

export interface ReadEndpointsOptions {
  /** The pipeline whose records to list in the cluster; without it, records in the cluster are not read. */
  readonly pipeline?: string;
  /** @default inClusterClient() */
  readonly cluster?: InCluster;
}

function parseRecord(where: string, text: string): EndpointRollout {
  let e: EndpointRollout;
  try {
    e = JSON.parse(text) as EndpointRollout;
  } catch (err) {
    throw new Error(`${where} is not JSON: ${(err as Error).message}`);
  }
  if (!['sagemaker', 'cloudrun', 'kubernetes'].includes(e.kind)) throw new Error(`${where}: kind must be sagemaker, cloudrun or kubernetes, got ${JSON.stringify(e.kind)}`);
  return e;
}

/**
 * The endpoints registered under `<artifacts>/models/endpoints/` and, in a pod, the pipeline's record
 * ConfigMaps in the pod's namespace; by name.
 */
export async function readEndpoints(storage: Storage, artifactsUri: string, o: ReadEndpointsOptions = {}): Promise<EndpointRollout[]> {
  const out = await readStoreRecords(storage, artifactsUri);
  const cluster = o.pipeline ? (o.cluster === undefined ? inClusterClient() : o.cluster) : null;
  if (cluster) {
    const selector = `${RECORD_LABEL}=true,${PIPELINE_LABEL}=${o.pipeline}`;
    // 403: no ModelEndpoint serving this pipeline bound its rollout Role to this pod's account (the
    // only grant of `list`), so there is no record here; a pod of another workload is the same case.
    const found = await cluster.client.list(CONFIGMAPS, cluster.namespace, selector)
      .catch((e: unknown) => { if (e instanceof KubeApiError && e.status === 403) return []; throw e; });
    for (const cm of found) {
      const data = (cm as { data?: Record<string, string> }).data ?? {};
      const where = `ConfigMap ${cluster.namespace}/${cm.metadata?.name ?? '?'}`;
      for (const [key, text] of Object.entries(data).sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (!key.endsWith('.json')) continue;
        const e = parseRecord(`${where} key ${key}`, text);
        if (e.kind !== 'kubernetes') throw new Error(`${where}: kind must be kubernetes, got ${JSON.stringify(e.kind)}`);
        if (!out.some((x) => x.name === e.name)) out.push(e);
      }
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The Deployments API of a Kubernetes client, with errors that name the Deployment. */
export function deploymentApi(client: KubeClient): DeploymentApi {
  const named = async <T>(ns: string, name: string, what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      const err = e as Error & { status?: number };
      throw new Error(`${what} Deployment ${ns}/${name}: ${err.status === 404 ? 'not found (is the endpoint deployed in this namespace?)' : err.message}`);
    }
  };
  return {
    getDeployment: (ns, name) => named(ns, name, 'reading', () => client.get(DEPLOYMENTS, ns, name) as unknown as Promise<Deployment>),
    patchDeployment: (ns, name, patch) => named(ns, name, 'patching', () => client.patch(DEPLOYMENTS, ns, name, patch) as unknown as Promise<Deployment>),
  };
}

async function readStoreRecords(storage: Storage, artifactsUri: string): Promise<EndpointRollout[]> {
  const prefix = joinUri(artifactsUri, 'models/endpoints/');
  const out: EndpointRollout[] = [];
  for (const o of await storage.list(prefix)) {
    if (!o.key.endsWith('.json') || o.key.includes('/')) continue;
    const rec = await storage.readVersioned(o.uri);
    if (rec) out.push(parseRecord(o.uri, rec.text));
  }
  return out;
}

/**
 * A registry rollout over every endpoint. Each rollout module is a file of its own beside the agent
 * bundle (the SDKs load only when a promotion runs on that target).
 */
export function rolloutToAll(endpoints: readonly EndpointRollout[], deps: EndpointDeps = {}): (v: ModelVersion) => Promise<void> {
  const kubernetes = (name: string): DeploymentApi => {
    if (deps.kubernetes) return deps.kubernetes();
    const c = deps.cluster === undefined ? inClusterClient() : deps.cluster;
    if (!c) throw new Error(`endpoint ${name} is on Kubernetes: promote it from a pod in the cluster (the pipeline runner, with its service account token), where the API server is reachable`);
    return deploymentApi(c.client);
  };
  return async (v) => {
    for (const e of endpoints) {
      if (e.kind === 'sagemaker') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-sagemaker') as typeof import('./rollout-sagemaker')).rolloutSageMaker(e, v);
      } else if (e.kind === 'cloudrun') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-cloudrun') as typeof import('./rollout-cloudrun')).rolloutCloudRun(e, v);
      } else {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-kubernetes') as typeof import('./rollout-kubernetes')).rolloutKubernetes(kubernetes(e.name), e, v);
      }
    }
  };
}
