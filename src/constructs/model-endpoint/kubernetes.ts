/**
 * ModelEndpoint on Kubernetes: Deployment(s) of the model server, one Service, an HPA per
 * Deployment, a PodDisruptionBudget and an ingress NetworkPolicy. Canary = a second Deployment whose
 * replica share follows the percent; blue/green = two colours with the Service on the live one.
 * The pods download the model themselves: credentials for a private bucket come from the user
 * (`serviceAccountName` bound to IRSA / Workload Identity, or `env` / `secretEnv`).
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { HorizontalPodAutoscalerV2 } from '@cdktf/provider-kubernetes/lib/horizontal-pod-autoscaler-v2';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import { ENDPOINT_CLIENT_LABEL } from '../../contracts/client-labels';
import { ACCELERATOR_NAMES, ACCELERATORS, AcceleratorShape, resolveAccelerator } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { recordCost } from '../../core/facts';
import { kubernetesPeer } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import type { ModelEndpointProps } from './index';
import { kubernetesRegistryRecord, STORE_CREDENTIALS_DIR, storeAccess } from './kubernetes-registry';
import { ModelEndpointBackend, ModelEndpointPlan, ModelEndpointTargetBackend, replicaQuantity } from './plan';
import { NO_MODEL_VERSION } from './registry';

/** Pods carrying this label (value "true") may call the endpoint: in its namespace, or in a granted one. */
export { ENDPOINT_CLIENT_LABEL };
const TRACK_LABEL = 'mlinfra.dev/track';
const COLOR_LABEL = 'mlinfra.dev/color';
const UID = '1000';
/** The server's env entries a registry rollout owns: MODEL_URI (env[0]) and MLINFRA_MODEL_VERSION (env[1]). */
export const MODEL_ENV_PATHS = ['spec[0].template[0].spec[0].container[0].env[0]', 'spec[0].template[0].spec[0].container[0].env[1]'];

export interface KubernetesModelEndpointResources {
  /** Absent when `serviceAccountName` names an existing one. */
  readonly serviceAccount?: ServiceAccountV1;
  /** By track or colour: `stable`, `canary`, `blue`, `green`. */
  readonly deployments: Readonly<Record<string, DeploymentV1>>;
  readonly autoscalers: Readonly<Record<string, HorizontalPodAutoscalerV2>>;
  readonly service: ServiceV1;
  readonly podDisruptionBudget: PodDisruptionBudgetV1;
  readonly networkPolicy: NetworkPolicyV1;
}

/** One Deployment of the endpoint: what it runs and how many. */
export interface PlannedDeployment {
  readonly key: 'stable' | 'canary' | 'blue' | 'green';
  readonly image: string;
  readonly modelUri: string;
  readonly revision: string;
  readonly min: number;
  readonly max: number;
}

/**
 * The Deployments a rollout step needs. Canary: stable keeps ceil(min*(100-p)/100) replicas of the
 * previous version, the canary max(1, round(min*p/100)) of the new one; both behind one Service.
 */
export function plannedDeployments(plan: ModelEndpointPlan, image: string): PlannedDeployment[] {
  const { min, max } = plan.replicas;
  if (plan.registry) {
    // pipeline.model: no model until the first promotion; the canary waits at zero replicas for one.
    const none = { image, modelUri: '', revision: NO_MODEL_VERSION };
    return [{ key: 'stable', ...none, min, max }, ...(plan.rollout.kind === 'all-at-once' ? [] : [{ key: 'canary', ...none, min: 0, max: 0 } as PlannedDeployment])];
  }
  const next = { image, modelUri: plan.model.uri, revision: plan.revision };
  const prev = plan.previous ? { image: plan.previous.image ?? image, modelUri: plan.previous.modelUri ?? plan.model.uri, revision: plan.previous.revision } : undefined;
  const r = plan.rollout;
  if (r.kind === 'blue-green') {
    const other = plan.color === 'blue' ? 'green' : 'blue';
    return [{ key: plan.color, ...next, min, max }, ...(prev ? [{ key: other, ...prev, min, max } as PlannedDeployment] : [])];
  }
  const percent = r.kind === 'canary' ? r.percent! : r.kind === 'linear' ? Math.min(100, plan.rolloutStep * r.percentPerStep!) : 100;
  if (!prev || percent >= 100) return [{ key: 'stable', ...next, min, max }];
  const canaryMin = Math.max(1, Math.round((min * percent) / 100));
  const stableMin = Math.ceil((min * (100 - percent)) / 100);
  return [
    { key: 'stable', ...prev, min: stableMin, max: Math.max(stableMin, 1, Math.ceil((max * (100 - percent)) / 100)) },
    { key: 'canary', ...next, min: canaryMin, max: Math.max(canaryMin, Math.round((max * percent) / 100)) },
  ];
}

/** CPU and memory per pod: for GPUs, the smallest per-GPU share of any catalog cloud shape. */
function podResources(shape: AcceleratorShape | undefined, cpu?: number, memoryGiB?: number): Record<string, string> {
  if (!shape) return { cpu: String(cpu ?? 2), memory: `${memoryGiB ?? 4}Gi` };
  const spec = ACCELERATORS[shape.accelerator];
  const shapes = [...spec.aws, ...spec.gcp];
  const vcpu = shapes.length ? Math.min(...shapes.map((s) => s.vcpu / s.count)) : 4;
  const mem = shapes.length ? Math.min(...shapes.map((s) => s.memoryGiB / s.count)) : 16;
  return {
    'cpu': String(cpu ?? Math.max(1, Math.floor(vcpu / 2)) * shape.count),
    'memory': `${memoryGiB ?? Math.max(1, Math.floor(mem / 2)) * shape.count}Gi`,
    'nvidia.com/gpu': String(shape.count),
  };
}

function gpuNodeSelector(endpoint: Construct, target: KubernetesTarget, shape: AcceleratorShape): Record<string, string> {
  const spec = ACCELERATORS[shape.accelerator];
  if (target.gpuNodeLabels === 'nvidia-gfd') return { 'nvidia.com/gpu.product': spec.gfdProduct };
  if (target.gpuNodeLabels === 'gke') {
    if (!spec.gkeAccelerator) {
      throw Errors.notOffered(endpoint, 'accelerator', spec.name,
        `${spec.name} has no GKE accelerator label, so a target with gpuNodeLabels 'gke' cannot select it`,
        ACCELERATOR_NAMES.filter((a) => ACCELERATORS[a].gkeAccelerator).join(', '));
    }
    return { 'cloud.google.com/gke-accelerator': spec.gkeAccelerator };
  }
  return {};
}

/** What the Kubernetes backend resolved from the props. */
interface KubernetesEndpointPlan {
  readonly shape?: AcceleratorShape;
  readonly nodeSelector: Record<string, string>;
  readonly cpu?: number;
  readonly memoryGiB?: number;
  readonly cpuTargetPercent: number;
  readonly serviceAccountName?: string;
  /** pipeline.model: how the pods reach the artifact store. */
  readonly store?: ReturnType<typeof storeAccess>;
}

const literal = (v: unknown) => !Token.isUnresolved(v);

/** The Kubernetes rules: checked before anything is created. */
function checkKubernetes(endpoint: Construct, target: KubernetesTarget, props: ModelEndpointProps, plan: ModelEndpointPlan): KubernetesEndpointPlan {
  const a = plan.accelerator;
  const shape = a ? resolveAccelerator('kubernetes', a.name, a.count, { where: endpoint.node.path, countProp: 'acceleratorsPerReplica' }) : undefined;
  const nodeSelector = shape ? gpuNodeSelector(endpoint, target, shape) : {};
  // Requests and limits are quantity strings built at synth ("2", "16Gi"): literal numbers only.
  if (props.cpu !== undefined && !(typeof props.cpu === 'number' && literal(props.cpu) && props.cpu > 0 && props.cpu <= 256)) {
    throw Errors.outOfRange(endpoint, 'cpu', literal(props.cpu) ? props.cpu : '(a Terraform value)', 'a literal number of vCPU from 0.1 to 256');
  }
  const m = props.memoryGiB;
  if (m !== undefined && !(typeof m === 'number' && literal(m) && Number.isInteger(m) && m >= 1 && m <= 4096)) {
    throw Errors.outOfRange(endpoint, 'memoryGiB', literal(m) ? m : '(a Terraform value)', 'a literal integer from 1 to 4096 GiB');
  }
  for (const [k, ref] of Object.entries(plan.secretEnv)) {
    if (!ref || ref.store !== 'kubernetes-secret') throw Errors.invalid(endpoint, `secretEnv.${k}`, ref?.store, 'a kubernetes-secret reference on kubernetes');
  }
  if (plan.previous && plan.previous.image === undefined) {
    throw Errors.missing(endpoint, 'previous.image', 'the image the previous version runs (its pods are kept beside the new ones)');
  }
  // Replica shares of a canary or linear step are computed here, at synth: they need literal counts.
  const split = plan.previous && plan.rollout.kind !== 'blue-green';
  for (const k of ['min', 'max'] as const) {
    if (split && !literal(plan.replicas[k])) {
      throw Errors.invalid(endpoint, `replicas.${k}`, '(a Terraform value)', `a literal number with a ${plan.rollout.kind} rollout on kubernetes (the split between versions is computed at synth)`);
    }
  }
  const cpuTargetPercent = props.cpuTargetPercent ?? 70;
  if (literal(cpuTargetPercent) && !(Number.isInteger(cpuTargetPercent) && cpuTargetPercent >= 10 && cpuTargetPercent <= 100)) {
    throw Errors.outOfRange(endpoint, 'cpuTargetPercent', cpuTargetPercent, 'an integer percent from 10 to 100');
  }
  const sa = props.serviceAccountName;
  if (sa !== undefined && literal(sa) && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(sa)) {
    throw Errors.invalid(endpoint, 'serviceAccountName', sa, 'a Kubernetes service account name (DNS subdomain)');
  }
  const store = plan.registry ? storeAccess(endpoint, target) : undefined;
  return { shape, nodeSelector, cpu: props.cpu, memoryGiB: m, cpuTargetPercent, serviceAccountName: sa, store };
}

/** ModelEndpoint on Kubernetes: its rules and resources. */
export const KUBERNETES_MODEL_ENDPOINT: ModelEndpointTargetBackend<KubernetesTarget> = {
  minReplicas: { count: 1, why: 'the HorizontalPodAutoscaler keeps at least one pod' },
  secretHint: 'use secretEnv (a Secret Manager or Kubernetes Secret reference)',
  build(endpoint, target, props, plan) {
    const k8s = checkKubernetes(endpoint, target, props, plan);
    const built = buildKubernetesModelEndpoint(endpoint, target, plan, k8s);
    const s = k8s.shape;
    const quantity = replicaQuantity(plan.replicas);
    recordCost(endpoint, s
      ? { item: `GPU pod (${s.accelerator} x${s.count} share)`, unitUsd: s.price.usdPerHour, per: 'hour', ...quantity, source: s.price.source, asOf: s.price.asOf }
      : { item: 'CPU pod', unitUsd: 0, per: 'hour', ...quantity, source: 'not priced: runs on your nodes', asOf: '-' });
    return built;
  },
};

function buildKubernetesModelEndpoint(endpoint: Construct, target: KubernetesTarget, plan: ModelEndpointPlan, k8s: KubernetesEndpointPlan): ModelEndpointBackend {
  const nodeSelector = k8s.nodeSelector;
  const provider = target.provider;
  const namespace = target.namespace;
  const name = plan.name;
  const app = { app: name };
  const labels = { ...target.labels, ...app, 'app.kubernetes.io/name': 'mlinfra-model-endpoint', 'app.kubernetes.io/instance': name };
  const meta = (n: string, extra: Record<string, string> = {}) => ({ name: n, namespace, labels: { ...labels, ...extra } });
  // pipeline.model: the registry rollout moves a canary then the stable Deployment, behind one selector.
  const blueGreen = plan.rollout.kind === 'blue-green' && !plan.registry;

  const identity = new Construct(endpoint, 'identity');
  // The server never calls the Kubernetes API: no token is mounted.
  const serviceAccount = k8s.serviceAccountName ? undefined : new ServiceAccountV1(identity, 'service-account', {
    provider, metadata: meta(name), automountServiceAccountToken: false,
  });
  const serviceAccountName = k8s.serviceAccountName ?? serviceAccount!.metadata.name;

  const resources = podResources(k8s.shape, k8s.cpu, k8s.memoryGiB);
  const imagePullSecrets = plan.source.options.imagePullSecrets ?? [];
  const nonRoot = {
    runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
    // Writable root: model servers write caches (weights, compiled kernels) under $HOME and /tmp.
    readOnlyRootFilesystem: false, seccompProfile: { type: 'RuntimeDefault' },
  };
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: plan.healthPath, port: String(plan.port), scheme: 'HTTP' }, periodSeconds, failureThreshold, timeoutSeconds: 5,
  });

  const workload = new Construct(endpoint, 'workload');
  const deployments: Record<string, DeploymentV1> = {};
  const autoscalers: Record<string, HorizontalPodAutoscalerV2> = {};
  for (const d of plannedDeployments(plan, plan.source.reference)) {
    const selector = { ...app, ...(blueGreen ? { [COLOR_LABEL]: d.key } : { [TRACK_LABEL]: d.key }) };
    const podLabels = { ...labels, ...selector, 'app.kubernetes.io/version': d.revision };
    const deployment = new DeploymentV1(workload, d.key, {
      provider, metadata: meta(`${name}-${d.key}`, { ...selector, 'app.kubernetes.io/version': d.revision }),
      // GPU nodes may take many minutes to appear; readiness, not the apply, gates traffic.
      waitForRollout: false,
      spec: {
        // A Terraform value stays a reference: String() of a number token would write its encoding.
        replicas: Token.isUnresolved(d.min) ? Token.asString(d.min) : String(d.min),
        selector: { matchLabels: selector },
        // All at once: every new pod starts together, old ones go as new ones turn ready (never below capacity).
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: plan.rollout.kind === 'all-at-once' ? '100%' : '25%', maxUnavailable: '0' } },
        revisionHistoryLimit: 5,
        template: {
          metadata: { labels: podLabels },
          spec: {
            serviceAccountName, automountServiceAccountToken: false, enableServiceLinks: false,
            terminationGracePeriodSeconds: 60,
            imagePullSecrets: imagePullSecrets.length ? imagePullSecrets.map((name) => ({ name })) : undefined,
            securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
            nodeSelector: Object.keys(nodeSelector).length ? nodeSelector : undefined,
            toleration: k8s.shape ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] : undefined,
            container: [{
              name: 'server', image: d.image,
              env: [
                // first, in this order: MODEL_ENV_PATHS names them by index
                { name: 'MODEL_URI', value: d.modelUri },
                ...(plan.registry ? [{ name: 'MLINFRA_MODEL_VERSION', value: NO_MODEL_VERSION }, ...k8s.store!.env] : []),
                { name: 'PORT', value: String(plan.port) },
                ...Object.entries(plan.env).map(([k, value]) => ({ name: k, value })),
                ...Object.entries(plan.secretEnv).map(([k, ref]) => ({
                  name: k,
                  valueFrom: { secretKeyRef: ref.store === 'kubernetes-secret' ? { name: ref.name, key: ref.key } : { name: '', key: '' } },
                })),
              ],
              port: [{ name: 'http', containerPort: plan.port, protocol: 'TCP' }],
              // Requests = limits: Guaranteed QoS keeps latency steady under node pressure.
              resources: { requests: { ...resources }, limits: { ...resources } },
              // Large models load for minutes: up to 20 minutes of start-up before liveness applies.
              startupProbe: probe(10, 120),
              readinessProbe: probe(5, 3),
              livenessProbe: probe(20, 3),
              securityContext: nonRoot,
              volumeMount: k8s.store?.volume ? [{ name: k8s.store.volume.name, mountPath: STORE_CREDENTIALS_DIR, readOnly: true }] : undefined,
            }],
            volume: k8s.store?.volume ? [k8s.store.volume] : undefined,
          },
        },
      },
      // The HPA owns the replica count after creation. pipeline.model: the rollout patches the server's
      // MODEL_URI and MLINFRA_MODEL_VERSION (env[0] and env[1]: its strategic merge by name keeps their
      // places) and the canary's replicas; Terraform leaves those two entries and still applies the
      // rest of env. An index selects one element of a nested block list in ignore_changes
      // (developer.hashicorp.com/terraform/language/meta-arguments/lifecycle#ignore_changes;
      // github.com/hashicorp/terraform/issues/22587).
      lifecycle: { ignoreChanges: plan.registry ? ['spec[0].replicas', ...MODEL_ENV_PATHS] : ['spec[0].replicas'] },
    });
    deployments[d.key] = deployment;
    // A canary at zero replicas has no autoscaler: the rollout sizes it, and an HPA does not scale from 0.
    if (d.max === 0) continue;
    autoscalers[d.key] = new HorizontalPodAutoscalerV2(workload, `${d.key}-autoscaler`, {
      provider, metadata: meta(`${name}-${d.key}`),
      spec: {
        minReplicas: d.min, maxReplicas: d.max,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name },
        metric: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: k8s.cpuTargetPercent } } }],
      },
    });
  }

  const net = new Construct(endpoint, 'network');
  const service = new ServiceV1(net, 'service', {
    provider, metadata: meta(name),
    spec: {
      type: 'ClusterIP',
      selector: blueGreen ? { ...app, [COLOR_LABEL]: plan.live } : { ...app },
      port: [{ name: 'http', port: plan.port, targetPort: String(plan.port), protocol: 'TCP' }],
    },
  });
  const ports = [{ port: String(plan.port), protocol: 'TCP' }];
  const networkPolicy = new NetworkPolicyV1(net, 'policy', {
    provider, metadata: meta(name),
    spec: {
      podSelector: { matchLabels: { ...app } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { [ENDPOINT_CLIENT_LABEL]: 'true' } } }], ports }],
    },
  });
  // Drains evict one pod at a time; 0 would block node upgrades forever.
  const podDisruptionBudget = new PodDisruptionBudgetV1(workload, 'disruption-budget', {
    provider, metadata: meta(name), spec: { maxUnavailable: '1', selector: { matchLabels: { ...app } } },
  });

  if (plan.registry) {
    kubernetesRegistryRecord(endpoint, target, plan, plan.registry,
      { stable: deployments.stable.metadata.name, canary: deployments.canary?.metadata.name }, meta);
  }

  let grants: Construct | undefined;
  return {
    url: `http://${service.metadata.name}.${namespace}.svc.cluster.local:${plan.port}`,
    metrics: {
      latency: { system: 'prometheus', name: 'http_request_duration_seconds', unit: 'seconds', dimensions: { namespace, app: name } },
      errors: { system: 'prometheus', name: 'http_requests_total', unit: 'count', dimensions: { namespace, app: name }, filter: 'code=~"5.."' },
      invocations: { system: 'prometheus', name: 'http_requests_total', unit: 'count', dimensions: { namespace, app: name } },
    },
    grantPrincipal: { kind: 'kubernetes', namespace, serviceAccountName, podLabels: { ...app } },
    grantInvoke(grantee, grantId) {
      const p = grantee.grantPrincipal;
      if (p.kind !== 'kubernetes') throw Errors.crossCloudGrant(endpoint, 'grantInvoke', p.kind, 'kubernetes');
      // A NetworkPolicy selects pods: the grantee's own, or its namespace's client-labelled pods.
      new NetworkPolicyV1((grants ??= new Construct(endpoint, 'grants')), grantId, {
        provider, metadata: meta(grantId),
        spec: {
          podSelector: { matchLabels: { ...app } },
          policyTypes: ['Ingress'],
          ingress: [{
            from: [kubernetesPeer(p, ENDPOINT_CLIENT_LABEL)],
            ports,
          }],
        },
      });
    },
    shape: k8s.shape,
    kubernetes: { serviceAccount, deployments, autoscalers, service, podDisruptionBudget, networkPolicy },
  };
}
