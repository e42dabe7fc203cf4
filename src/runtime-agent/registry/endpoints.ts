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
import { cloudRunConfigDigest } from './cloudrun-template';
import type { CloudRunDeps, CloudRunRolloutConfig } from './rollout-cloudrun';
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
  /** Where each endpoint's served version is noted after its rollout (see servingUri); none: not noted. */
  readonly notes?: ServingNotes;
  /** For Cloud Run rollouts. @default the VM's service account token, real sleeps */
  readonly cloudRun?: CloudRunDeps;
}

/** The artifact store that keeps `models/serving/<endpoint>.json`, the version each endpoint was last rolled out to. */
export interface ServingNotes {
  readonly storage: Storage;
  readonly artifactsUri: string;
}

/**
 * `<artifacts>/models/serving/<endpoint>.json`: `{version, at}` of the endpoint's last successful
 * rollout, and `config`, the digest of the serving config it rolled out (Cloud Run: cloudrun-template.ts).
 */
export function servingUri(artifactsUri: string, endpoint: string): string {
  return joinUri(artifactsUri, `models/serving/${endpoint}.json`);
}

interface Served { readonly version: string | null; readonly config?: string }

/** The version (and config digest) an endpoint was last rolled out to; version null: never, or a note that cannot be read. */
async function served(n: ServingNotes, endpoint: string): Promise<Served> {
  const rec = await n.storage.readVersioned(servingUri(n.artifactsUri, endpoint)).catch(() => null);
  try {
    const v = rec ? (JSON.parse(rec.text) as { version?: unknown; config?: unknown }) : {};
    return typeof v.version === 'string' ? { version: v.version, ...(typeof v.config === 'string' ? { config: v.config } : {}) } : { version: null };
  } catch {
    return { version: null };
  }
}

/** The digest of what an endpoint's record asks serving to run, where its rollout deploys it (Cloud Run). */
function configOf(e: EndpointRollout): string | undefined {
  return e.kind === 'cloudrun' ? cloudRunConfigDigest(e) : undefined;
}

/**
 * Notes that `endpoint` serves `version` (with `config`). Best effort: a note that cannot be written
 * only means the next sync rolls the same version out again.
 */
async function noteServed(n: ServingNotes, endpoint: string, version: string, config: string | undefined): Promise<void> {
  const uri = servingUri(n.artifactsUri, endpoint);
  const text = `${JSON.stringify({ version, ...(config ? { config } : {}), at: new Date().toISOString() })}\n`;
  try {
    const cur = await n.storage.readVersioned(uri);
    await n.storage.writeIf(uri, text, cur?.tag ?? null);
  } catch {
    // another writer noted at the same time, or the store refused: the next sync looks again
  }
}

export interface SyncedEndpoint {
  readonly endpoint: string;
  /** The version noted before the sync (null: none: a new endpoint, or one whose rollout never finished). */
  readonly from: string | null;
  readonly to: string;
  /** The same version again: its serving config changed since it was rolled out (a `cdktf deploy`). */
  readonly configChanged?: boolean;
  /** Set when its rollout failed (it keeps serving what it served). */
  readonly error?: string;
}

/**
 * Rolls the current version out to every endpoint whose note does not name it: an endpoint added
 * after the last promotion (Terraform starts it with no model), or one whose last rollout failed; and
 * to a Cloud Run endpoint whose record's template changed since its rollout. The others are not
 * touched. Each endpoint is tried on its own; failures are returned, not thrown. `models sync` and
 * every pipeline run call it.
 */
export async function syncEndpoints(endpoints: readonly EndpointRollout[], current: ModelVersion, notes: ServingNotes, deps: Omit<EndpointDeps, 'notes'> = {}): Promise<SyncedEndpoint[]> {
  const out: SyncedEndpoint[] = [];
  for (const e of endpoints) {
    const was = await served(notes, e.name);
    const config = configOf(e);
    if (was.version === current.version && was.config === config) continue;
    const r = { endpoint: e.name, from: was.version, to: current.version, ...(was.version === current.version ? { configChanged: true } : {}) };
    try {
      await rolloutToAll([e], { ...deps, notes })(current);
      out.push(r);
    } catch (err) {
      out.push({ ...r, error: (err as Error).message });
    }
  }
  return out;
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

/** What a promotion or rollback rolls out through: every endpoint of the pipeline, each noted once it serves. */
export async function registryRollout(storage: Storage, artifactsUri: string, pipeline: string): Promise<(v: ModelVersion) => Promise<void>> {
  return rolloutToAll(await readEndpoints(storage, artifactsUri, { pipeline }), { notes: { storage, artifactsUri } });
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
        await (require('./rollout-cloudrun') as typeof import('./rollout-cloudrun')).rolloutCloudRun(e, v, deps.cloudRun);
      } else {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        await (require('./rollout-kubernetes') as typeof import('./rollout-kubernetes')).rolloutKubernetes(kubernetes(e.name), e, v);
      }
      if (deps.notes) await noteServed(deps.notes, e.name, v.version, configOf(e));
    }
  };
}
