/**
 * GpuCluster on Kubernetes: no pod holds a GPU while no job runs. A stateless gateway Deployment
 * (kubernetes-gateway.ts) serves the agent API by creating Jobs and JobSets that Kueue admits through
 * the cluster's queue (kubernetes-kueue.ts); pending pods ask the user's autoscaler for GPU nodes.
 * Also: the token Secret, the agent bundle ConfigMap job pods copy the agent from, the artifacts
 * (the target's object store, or a single-node volume), and a NetworkPolicy for job pods.
 */
import { AnnotationMetadataEntryType, Fn } from 'cdktf';
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1, RoleV1Rule } from '@cdktf/provider-kubernetes/lib/role-v1';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1';
import type { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { AGENT_CLIENT_LABEL } from '../../contracts/client-labels';
import type { KubernetesHostGroup } from '../../contracts/host-group';
import { ACCELERATOR_NAMES, ACCELERATORS, AcceleratorShape } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { IGrantable, KubernetesPrincipal, kubernetesPeer } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import type { GatewayConfig, GatewayStorage } from '../../runtime-agent/k8s/objects';
import { buildKubernetesGateway, KubernetesGatewayResources } from './kubernetes-gateway';
import { buildKueue, KubernetesKueueResources } from './kubernetes-kueue';
import { KubernetesClusterSettings } from './kubernetes-options';
import { Toleration } from './kueue';
import { GpuClusterBackend, GpuClusterPlan } from './plan';

export type { KubernetesKueueResources } from './kubernetes-kueue';

/** Pods carrying this label (value "true") in the cluster's namespace may call the agent API. */
export { AGENT_CLIENT_LABEL };
/** Every job pod of a cluster carries `mlinfra.dev/cluster: <name>` (runtime-agent/k8s/objects.ts CLUSTER_LABEL). */
export const JOB_CLUSTER_LABEL = 'mlinfra.dev/cluster';
/** Where job pods mount a file:// artifacts volume (runtime-agent/k8s/objects.ts ARTIFACTS_DIR). */
export const ARTIFACTS_DIR = '/var/lib/mlinfra/artifacts';

export interface KubernetesGpuClusterResources {
  /** The service account job pods run as (no API token): the cluster's grantPrincipal. */
  readonly serviceAccount: ServiceAccountV1;
  /** Holds the agent token (key `token`): the gateway's API token. */
  readonly secret: SecretV1;
  /** The agent bundle (`mlinfra-agent.js`), copied into job pods by their init container. */
  readonly configMap: ConfigMapV1;
  /** The object-store module (storage-s3.js or storage-gcs.js) for an s3:// or gs:// artifact store. */
  readonly storageModule?: ConfigMapV1;
  /** file:// artifacts: one ReadWriteOnce volume mounted by every job pod (single-node use). */
  readonly artifactsVolumeClaim?: PersistentVolumeClaimV1;
  /** The API: Deployment, Service, NetworkPolicy, RBAC, and the job pods' service account. */
  readonly gateway: KubernetesGatewayResources;
  /** Job pods take traffic only from pods of the same cluster (torchrun rendezvous, NCCL). */
  readonly jobNetworkPolicy: NetworkPolicyV1;
  /** Kueue objects created for this cluster (none of those adopted by name). */
  readonly kueue: KubernetesKueueResources;
  /** What the gateway serves (its ConfigMap), less the names filled in by the gateway construct. */
  readonly gatewayConfig: Omit<GatewayConfig, 'jobServiceAccount' | 'namespace'>;
}

/**
 * CPU and memory per node's pod: per GPU, the smallest share any catalog cloud shape gives one GPU;
 * requests take half of it (room for system daemons on smaller nodes), limits all of it.
 */
export function podResources(shape: AcceleratorShape): { requests: Record<string, string>; limits: Record<string, string> } {
  const spec = ACCELERATORS[shape.accelerator];
  const shapes = [...spec.aws, ...spec.gcp];
  const vcpu = shapes.length ? Math.min(...shapes.map((s) => s.vcpu / s.count)) : 4;
  const mem = shapes.length ? Math.min(...shapes.map((s) => s.memoryGiB / s.count)) : 16;
  const n = shape.count;
  const gpus = String(n);
  return {
    requests: { 'cpu': String(Math.max(1, Math.floor(vcpu / 2)) * n), 'memory': `${Math.max(1, Math.floor(mem / 2)) * n}Gi`, 'nvidia.com/gpu': gpus },
    limits: { 'cpu': String(Math.max(1, Math.floor(vcpu)) * n), 'memory': `${Math.max(1, Math.floor(mem)) * n}Gi`, 'nvidia.com/gpu': gpus },
  };
}

/** Node labels that pick the accelerator, by the target's label scheme; throws when the scheme cannot name it. */
function gpuNodeSelector(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan): Record<string, string> {
  const spec = ACCELERATORS[plan.shape.accelerator];
  switch (target.gpuNodeLabels) {
    case 'nvidia-gfd':
      return { 'nvidia.com/gpu.product': spec.gfdProduct };
    case 'gke': {
      if (!spec.gkeAccelerator) {
        const offered = ACCELERATOR_NAMES.filter((a) => ACCELERATORS[a].gkeAccelerator);
        throw Errors.notOffered(cluster, 'accelerator', spec.name,
          `${spec.name} has no GKE accelerator label (cloud.google.com/gke-accelerator), so a target with gpuNodeLabels 'gke' cannot select it; use gpuNodeLabels 'nvidia-gfd' or 'none' if your nodes carry it`,
          offered.join(', '));
      }
      return {
        'cloud.google.com/gke-accelerator': spec.gkeAccelerator,
        ...(plan.spot ? { 'cloud.google.com/gke-spot': 'true' } : {}),
      };
    }
    case 'none':
      return {};
  }
}

/** The grantee's Kubernetes principal, or an error naming both targets. */
function kubernetesGrantee(cluster: Construct, grantee: IGrantable, what: string): KubernetesPrincipal {
  const p = grantee.grantPrincipal;
  if (p.kind !== 'kubernetes') {
    throw Errors.conflict(cluster, what, p.kind, 'a grantee on kubernetes (grants do not cross clouds)', `names a grantee on ${p.kind}, the cluster is on kubernetes`);
  }
  return p;
}

export function buildKubernetesGpuCluster(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan, settings: KubernetesClusterSettings):
  GpuClusterBackend & { readonly hostGroup: KubernetesHostGroup; readonly resources: KubernetesGpuClusterResources } {
  // Everything that can fail, before any resource exists.
  const nodeSelector = gpuNodeSelector(cluster, target, plan);

  const provider = target.provider;
  const namespace = target.namespace;
  const labels = { ...target.labels, 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': plan.name };
  const meta = (name: string) => ({ name, namespace, labels: { ...labels } });

  const identity = new Construct(cluster, 'identity');
  const secret = new SecretV1(identity, 'agent-token', {
    provider, metadata: meta(`${plan.name}-agent-token`), type: 'Opaque',
    // The provider base64-encodes `data`; the value is a reference resolved at apply time.
    data: { token: plan.agentToken },
  });

  // ---- the agent bundle: < 1 MiB by contract, so it fits a ConfigMap; the storage module in its own
  const bundle = new Construct(cluster, 'bundle');
  const configMap = new ConfigMapV1(bundle, 'config-map', {
    provider, metadata: meta(`${plan.name}-agent`), data: { 'mlinfra-agent.js': Fn.file(plan.agentBundle.script.path) },
  });

  // ---- artifacts: the target's object store, or one volume for a single node
  const store = target.artifactStore;
  let storageModule: ConfigMapV1 | undefined;
  let artifactsVolumeClaim: PersistentVolumeClaimV1 | undefined;
  let artifactsUri: string;
  let storage: GatewayStorage;
  if (store) {
    const s3 = store.uri.startsWith('s3://');
    const mod = plan.agentBundle.storage;
    if (!mod) throw Errors.missingFile(cluster, 'agentBundleDir', s3 ? 'storage-s3.js' : 'storage-gcs.js', 'run `npm run build:agent` first');
    storageModule = new ConfigMapV1(bundle, 'storage-module', {
      provider, metadata: meta(`${plan.name}-storage`), data: { [mod.fileName]: Fn.file(mod.asset.path) },
    });
    // Each cluster under its own prefix: runs and models of two clusters never mix.
    artifactsUri = `${store.uri.replace(/\/+$/, '')}/${plan.name}`;
    storage = {
      env: s3 ? {
        AWS_REGION: store.region ?? 'us-east-1',
        ...(store.endpoint ? { AWS_ENDPOINT_URL_S3: store.endpoint, AWS_S3_FORCE_PATH_STYLE: '1' } : {}),
      } : {},
      ...(store.credentialsSecret ? {
        credentials: { secret: store.credentialsSecret.name, key: store.credentialsSecret.key, envVar: s3 ? 'AWS_SHARED_CREDENTIALS_FILE' : 'GOOGLE_APPLICATION_CREDENTIALS' },
      } : {}),
      module: { configMap: storageModule.metadata.name, file: mod.fileName },
    };
  } else {
    if (plan.nodes.max > 1) {
      // Without a stack trace: the trace names this machine's paths and would make synth output differ between runs.
      cluster.node.addMetadata(AnnotationMetadataEntryType.WARN, `${cluster.node.path}: artifacts and checkpoints are kept on one ReadWriteOnce volume (file://), for single-node use: `
        + `multi-node jobs are refused, and pods placed on a second node cannot mount it. Set KubernetesTarget artifactStore to an s3:// or gs:// URI for nodes.max ${plan.nodes.max}.`, { stackTrace: false });
    }
    artifactsVolumeClaim = new PersistentVolumeClaimV1(bundle, 'artifacts', {
      provider, metadata: meta(`${plan.name}-artifacts`),
      // Bound when the first job pod is scheduled (WaitForFirstConsumer classes): apply must not wait for it.
      waitUntilBound: false,
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: target.storageClassName, resources: { requests: { storage: `${plan.diskGiB}Gi` } } },
    });
    artifactsUri = `file://${ARTIFACTS_DIR}`;
    storage = { volumeClaim: artifactsVolumeClaim.metadata.name };
  }

  // ---- Kueue: the queue jobs are admitted through, created or adopted by name
  const resources = podResources(plan.shape);
  const tolerations: Toleration[] = [
    { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ...(plan.spot ? [{ key: 'cloud.google.com/gke-spot', operator: 'Equal' as const, value: 'true', effect: 'NoSchedule' as const }] : []),
  ];
  const kueue = buildKueue(cluster, target, plan, settings, nodeSelector, tolerations, resources.limits, labels);

  // Jobs request per GPU what one node's share gives per GPU (requests: half of it; limits twice that).
  const perGpu = (q: string) => Number(q.replace(/Gi$/, '')) / plan.shape.count;
  const gatewayConfig: KubernetesGpuClusterResources['gatewayConfig'] = {
    cluster: plan.name, localQueue: kueue.localQueueName, ...(kueue.quota ? { quotaGpus: kueue.quota.gpus } : {}),
    gpusPerNode: plan.shape.count, maxNodes: plan.nodes.max, image: settings.image, agentImage: plan.agentImage,
    bundleConfigMap: configMap.metadata.name, nodeSelector: { ...nodeSelector }, tolerations,
    cpuPerGpu: perGpu(resources.requests.cpu), memoryGiBPerGpu: perGpu(resources.requests.memory),
    artifactsUri, storage, labels: { ...target.labels },
  };

  // ---- the gateway: the API, stateless (the API server is the store)
  const gateway = buildKubernetesGateway(cluster, target, {
    name: plan.name, labels: { ...target.labels }, agentImage: plan.agentImage, port: plan.agentPort,
    bundleConfigMap: configMap.metadata.name, tokenSecret: secret.metadata.name, config: gatewayConfig,
    allowedCidrs: plan.allowedCidrs, clientLabel: AGENT_CLIENT_LABEL,
  });

  // ---- job pods: reachable only from their own cluster's pods (rendezvous, NCCL, on any port)
  const jobPods = { [JOB_CLUSTER_LABEL]: plan.name };
  const jobNetworkPolicy = new NetworkPolicyV1(cluster, 'job-network-policy', {
    provider, metadata: meta(`${plan.name}-jobs`),
    spec: { podSelector: { matchLabels: { ...jobPods } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { ...jobPods } } }] }] },
  });

  // ---- grants: RBAC on exactly this cluster's Secret, and a way through the gateway's NetworkPolicy
  let grants: Construct | undefined;
  const grantScope = (grantId: string) => new Construct((grants ??= new Construct(cluster, 'grants')), grantId);
  const bind = (scope: Construct, grantId: string, p: KubernetesPrincipal, rules: RoleV1Rule[]) => {
    const r = new RoleV1(scope, 'role', { provider, metadata: meta(grantId), rule: rules });
    new RoleBindingV1(scope, 'binding', {
      provider, metadata: meta(grantId),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: r.metadata.name },
      subject: [{ kind: 'ServiceAccount', name: p.serviceAccountName, namespace: p.namespace }],
    });
  };
  const gatewayPods = gateway.selectorLabels;

  return {
    agentUrl: `http://${gateway.service.metadata.name}.${namespace}.svc.cluster.local:${plan.agentPort}`,
    agentTokenSecret: { store: 'kubernetes-secret', namespace, name: secret.metadata.name, key: 'token' },
    artifactsUri,
    // The gateway and job pods report as the cluster's name (their metrics' cluster label).
    hostGroup: { kind: 'kubernetes', name: plan.name, namespace },
    // What jobs run as: their service account (no API token) and the labels every job pod carries.
    grantPrincipal: { kind: 'kubernetes', namespace, serviceAccountName: gateway.jobServiceAccount.metadata.name, podLabels: { ...jobPods } },
    grantAgentAccess: (grantee, grantId) => {
      const p = kubernetesGrantee(cluster, grantee, 'grantAgentAccess');
      const scope = grantScope(grantId);
      bind(scope, grantId, p, [{ apiGroups: [''], resources: ['secrets'], resourceNames: [secret.metadata.name], verbs: ['get'] }]);
      if (p.namespace !== namespace || p.podLabels) {
        // The grantee's pods need a way through the NetworkPolicy (same-namespace client-labelled pods already have one).
        new NetworkPolicyV1(scope, 'ingress', {
          provider, metadata: meta(grantId),
          spec: {
            podSelector: { matchLabels: { ...gatewayPods } },
            policyTypes: ['Ingress'],
            ingress: [{ from: [kubernetesPeer(p, AGENT_CLIENT_LABEL)], ports: [{ port: String(plan.agentPort), protocol: 'TCP' }] }],
          },
        });
      }
    },
    // Artifacts are in the target's object store (its own IAM decides) or on the cluster's volume,
    // reached through jobs: there is no Kubernetes object to grant on. The grantee must be on Kubernetes.
    grantArtifactsRead: (grantee) => { kubernetesGrantee(cluster, grantee, 'grantArtifactsRead'); },
    grantArtifactsWrite: (grantee) => { kubernetesGrantee(cluster, grantee, 'grantArtifactsWrite'); },
    // Nothing to scale: Kueue admits jobs and the autoscaler adds the nodes their pods ask for.
    grantScale: (grantee) => { kubernetesGrantee(cluster, grantee, 'grantScale'); },
    jobRuntime: gatewayConfig,
    resources: { serviceAccount: gateway.jobServiceAccount, secret, configMap, storageModule, artifactsVolumeClaim, gateway, jobNetworkPolicy, kueue, gatewayConfig },
  };
}
