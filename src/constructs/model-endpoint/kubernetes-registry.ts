/**
 * ModelEndpoint on Kubernetes serving pipeline.model: the Deployments a registry rollout moves
 * (src/runtime-agent/registry/rollout-kubernetes.ts: a canary Deployment, then the stable one), the
 * endpoint record, the promoting pod's rights, and how the pods reach the object store.
 *
 * The record cannot go into the object store: a Kubernetes stack has only the kubernetes provider, and
 * the store may be S3, GCS or MinIO. It is kept in a ConfigMap (`<name>-endpoint-record`, key
 * `<name>.json`, labelled with the pipeline), which the pipeline runner lists with its own service
 * account when it promotes.
 */
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1';
import { Errors } from '../../core/errors';
import { principalOn } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import { ModelEndpointPlan } from './plan';
import { bakeSeconds, recordJson, RegistryPlan } from './registry';

export const RECORD_LABEL = 'mlinfra.dev/endpoint-record';
export const PIPELINE_LABEL = 'mlinfra.dev/pipeline';
/** Where the store's credentials file is mounted in the model server's pods. */
export const STORE_CREDENTIALS_DIR = '/var/run/mlinfra/store';

/** The pipeline runner's service account (training-pipeline/kubernetes.ts): it promotes, so it rolls out. */
export const runnerServiceAccount = (pipelineName: string) => `${pipelineName}-runner`;

/** Canary replicas while a version bakes: the canary's share of replicas.min (all of it for blue/green). */
export function registryCanaryReplicas(plan: ModelEndpointPlan): number {
  const r = plan.rollout;
  const min = typeof plan.replicas.min === 'number' ? plan.replicas.min : 1;
  const share = r.kind === 'canary' ? r.percent! : r.kind === 'linear' ? r.percentPerStep! : 100;
  return Math.max(1, Math.round((min * share) / 100));
}

/** Env and volume that let the server's SDK read the target's artifact store (standard SDK variables). */
export function storeAccess(endpoint: Construct, target: KubernetesTarget): { env: { name: string; value: string }[]; volume?: { name: string; secret: { secretName: string; items: { key: string; path: string }[] } } } {
  const store = target.artifactStore;
  if (!store) {
    throw Errors.conflict(endpoint, 'model', 'pipeline.model', "a KubernetesTarget with artifactStore (s3:// or gs://): the pods download their version from it", 'has no object store to serve from');
  }
  const s3 = store.uri.startsWith('s3://');
  const env = s3
    ? [{ name: 'AWS_REGION', value: store.region ?? 'us-east-1' }, ...(store.endpoint ? [{ name: 'AWS_ENDPOINT_URL_S3', value: store.endpoint }] : [])]
    : [];
  const cs = store.credentialsSecret;
  if (!cs) return { env };
  const file = `${STORE_CREDENTIALS_DIR}/credentials`;
  env.push(s3 ? { name: 'AWS_SHARED_CREDENTIALS_FILE', value: file } : { name: 'GOOGLE_APPLICATION_CREDENTIALS', value: file });
  return { env, volume: { name: 'store-credentials', secret: { secretName: cs.name, items: [{ key: cs.key, path: 'credentials' }] } } };
}

/** The record ConfigMap and the runner's Role: get and patch on exactly the endpoint's two Deployments. */
export function kubernetesRegistryRecord(endpoint: Construct, target: KubernetesTarget, plan: ModelEndpointPlan, reg: RegistryPlan,
  names: { stable: string; canary?: string }, meta: (n: string, extra?: Record<string, string>) => { name: string; namespace: string; labels: Record<string, string> }): ConfigMapV1 {
  const registry = reg.registry;
  const hosts = principalOn(endpoint, 'model', registry.rolloutHosts, 'kubernetes', 'the endpoint');
  const provider = target.provider;
  const record = {
    kind: 'kubernetes', name: plan.name, namespace: target.namespace, stable: names.stable,
    ...(names.canary ? { canary: names.canary, canaryReplicas: registryCanaryReplicas(plan) } : {}),
    container: 'server', bakeSeconds: names.canary ? bakeSeconds(plan.rollout) : 0,
  };
  const scope = new Construct(endpoint, 'registry');
  const recordName = `${plan.name}-endpoint-record`;
  const configMap = new ConfigMapV1(scope, 'record', {
    provider, metadata: meta(recordName, { [RECORD_LABEL]: 'true', [PIPELINE_LABEL]: registry.pipelineName }),
    data: { [`${plan.name}.json`]: recordJson(record) },
  });
  const deployments = [names.stable, ...(names.canary ? [names.canary] : [])];
  // Exactly what the runner calls (runtime-agent/registry/endpoints.ts): list the record ConfigMaps by
  // label, then get and strategic-merge patch the two Deployments. RBAC cannot narrow `list` by label or
  // by resourceNames (kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources), so
  // the runner may list this namespace's ConfigMaps; secrets belong in Secrets, which it cannot read.
  const role = new RoleV1(scope, 'rollout-role', {
    provider, metadata: meta(`${plan.name}-rollout`),
    rule: [
      { apiGroups: ['apps'], resources: ['deployments'], resourceNames: deployments, verbs: ['get', 'patch'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['list'] },
    ],
  });
  new RoleBindingV1(scope, 'rollout-binding', {
    provider, metadata: meta(`${plan.name}-rollout`),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
    subject: [{ kind: 'ServiceAccount', name: runnerServiceAccount(registry.pipelineName), namespace: hosts.namespace }],
  });
  return configMap;
}
