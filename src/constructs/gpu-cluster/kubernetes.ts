/**
 * GpuCluster on Kubernetes: the agent as a StatefulSet of GPU pods (one pod = one node), a headless
 * Service for rendezvous, a ClusterIP Service for the API, a Secret for the token, RBAC for idle stop.
 */
import { Fn } from 'cdktf';
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { DataKubernetesResources } from '@cdktf/provider-kubernetes/lib/data-kubernetes-resources';
import { Manifest } from '@cdktf/provider-kubernetes/lib/manifest';
import { NetworkPolicyV1, NetworkPolicyV1SpecIngressFrom } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1, RoleV1Rule } from '@cdktf/provider-kubernetes/lib/role-v1';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import {
  StatefulSetV1, StatefulSetV1SpecTemplateSpecContainerEnv, StatefulSetV1SpecTemplateSpecToleration,
} from '@cdktf/provider-kubernetes/lib/stateful-set-v1';
import { ACCELERATOR_NAMES, ACCELERATORS, AcceleratorShape } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { IGrantable, KubernetesPrincipal, kubernetesPeer } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import { AGENT_DATA_DIR, MLINFRA_HOME } from './bootstrap';
import type { GatewayConfig } from '../../runtime-agent/k8s/objects';
import { KubernetesClusterSettings } from './kubernetes-options';
import {
  JOBSET_API_VERSION, JOBSET_VERSION, KUEUE_API_VERSION, KUEUE_MIN_VERSION, KUEUE_VERSION, kueueQuota, KueueQuota,
  renderClusterQueue, renderLocalQueue, renderResourceFlavor, Toleration,
} from './kueue';
import { GpuClusterBackend, GpuClusterPlan } from './plan';

/** torchrun's default c10d rendezvous port, opened between the cluster's pods. */
export const RENDEZVOUS_PORT = 29500;
/** Pods carrying this label (value "true") in the cluster's namespace may call the agent API. */
export const AGENT_CLIENT_LABEL = 'mlinfra.dev/agent-client';

const BUNDLE_DIR = `${MLINFRA_HOME}/bundle`;
const AGENT_DIR = `${MLINFRA_HOME}/agent`;
const TOKEN_DIR = '/var/run/mlinfra';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const UID = '1000';
/** The Node.js binary the init container copies from `agentImage`: job images need no Node.js. */
export const AGENT_NODE = `${AGENT_DIR}/bin/node`;

/**
 * Wraps a container command (`sh -c GPU_ENV_SH <name> CMD ARGS...`): puts the NVIDIA driver
 * directory first. On GKE (COS nodes) the device plugin mounts the driver at /usr/local/nvidia
 * ({bin,lib64}) and images outside NVIDIA's own do not search it: nvidia-smi and libcuda.so are not
 * found without this. Harmless elsewhere (the directory is absent; the container toolkit injects
 * into the standard paths). Keeps the image's PATH; the agent's Node.js goes last, so an image's
 * own `node` wins. No empty LD_LIBRARY_PATH element (it would search the working directory).
 * Source: cloud.google.com/kubernetes-engine/docs/how-to/gpus ("CUDA libraries ... /usr/local/nvidia/lib64").
 * No `${` (Terraform) and no `$(` (Kubernetes expands $(VAR) in commands).
 */
export const GPU_ENV_SH = [
  `export PATH="/usr/local/nvidia/bin:$PATH:${AGENT_DIR}/bin"`,
  'case "$LD_LIBRARY_PATH" in "") LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib ;; *) LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/usr/local/nvidia/lib:$LD_LIBRARY_PATH" ;; esac',
  'export LD_LIBRARY_PATH',
  'exec "$@"',
].join('; ');

export interface KubernetesGpuClusterResources {
  readonly serviceAccount: ServiceAccountV1;
  /** Holds the agent token (key `token`). */
  readonly secret: SecretV1;
  /** The agent bundle (`mlinfra-agent.js`) and, with idle stop, `stop.js`. */
  readonly configMap: ConfigMapV1;
  readonly statefulSet: StatefulSetV1;
  /** Headless: stable pod DNS names for multi-node rendezvous. */
  readonly headlessService: ServiceV1;
  /** ClusterIP: the agent API (`agentUrl`). */
  readonly service: ServiceV1;
  readonly podDisruptionBudget: PodDisruptionBudgetV1;
  readonly networkPolicy: NetworkPolicyV1;
  /** Lets the pods scale their own StatefulSet (idle stop only). */
  readonly role?: RoleV1;
  readonly roleBinding?: RoleBindingV1;
  /** Kueue objects created for this cluster (none of those adopted by name). */
  readonly kueue: KubernetesKueueResources;
  /**
   * What the agent gateway (kubernetes-gateway.ts) serves for this cluster: the Kueue queue, the job
   * image, the catalog's node selector and tolerations, per-GPU requests that fit the ClusterQueue.
   */
  readonly gatewayConfig: Omit<GatewayConfig, 'jobServiceAccount' | 'namespace'>;
}

export interface KubernetesKueueResources {
  /** The LocalQueue jobs name in their `kueue.x-k8s.io/queue-name` label. */
  readonly localQueueName: string;
  /** The ClusterQueue behind it; undefined when an adopted LocalQueue's ClusterQueue was not named. */
  readonly clusterQueueName?: string;
  /** The quota of a ClusterQueue this cluster created (an adopted one's is not known at synth). */
  readonly quota?: KueueQuota;
  readonly resourceFlavor?: Manifest;
  readonly clusterQueue?: Manifest;
  readonly localQueue?: Manifest;
  /** Plan-time checks (one per target) that the Kueue and, for multi-node clusters, JobSet CRDs are installed. */
  readonly crdChecks: readonly DataKubernetesResources[];
}

/**
 * CPU and memory per pod: per GPU, the smallest share any catalog cloud shape gives one GPU;
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

/**
 * `scaleApi(method, body)`: reads or merge-patches the scale subresource of StatefulSet
 * `STATEFUL_SET` with the pod's service account (`SA` directory). Shared by the generated scripts
 * that scale agents; the including script defines `fs`, `https`, `SA` and `STATEFUL_SET`.
 */
export const STATEFULSET_SCALE_CLIENT_JS = `function scaleApi(method, body) {
  const namespace = process.env.POD_NAMESPACE || fs.readFileSync(SA + '/namespace', 'utf8').trim();
  const path = '/apis/apps/v1/namespaces/' + namespace + '/statefulsets/' + STATEFUL_SET + '/scale';
  return new Promise((resolve, reject) => {
    const headers = { Authorization: 'Bearer ' + fs.readFileSync(SA + '/token', 'utf8').trim(), Accept: 'application/json' };
    if (body) headers['Content-Type'] = 'application/merge-patch+json';
    const req = https.request({
      host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT || 443,
      path, method, headers, ca: fs.readFileSync(SA + '/ca.crt'), timeout: 15000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) resolve(JSON.parse(text));
        else reject(new Error(method + ' ' + path + ': HTTP ' + res.statusCode + ' ' + text.slice(0, 300)));
      });
    });
    req.on('timeout', () => req.destroy(new Error(method + ' ' + path + ': timed out')));
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}`;

/**
 * The idle-stop script the agent runs (`node stop.js`). A StatefulSet only removes its highest
 * ordinals, so a pod shrinks the set only when it is the highest one: scaling from a lower pod would
 * kill busier peers. It never goes below `min`, never scales up, and sends the read resourceVersion
 * so that two pods racing cannot undo each other (the loser gets 409). Exit 75 (EX_TEMPFAIL) means
 * "not my turn: a higher pod is still up". No `${` in here: Terraform would interpolate it.
 */
export function renderStopScript(statefulSetName: string, min: number): string {
  return `'use strict';
// mlinfra idle stop on Kubernetes: remove this pod by shrinking StatefulSet ${statefulSetName}.
const fs = require('fs');
const https = require('https');
const STATEFUL_SET = ${JSON.stringify(statefulSetName)};
const MIN = ${JSON.stringify(min)};
// The override exists for tests; pods always use the mounted service account.
const SA = process.env.MLINFRA_SERVICEACCOUNT_DIR || ${JSON.stringify(SA_DIR)};
const pod = process.env.POD_NAME || '';
const ordinal = Number(pod.slice(pod.lastIndexOf('-') + 1));

${STATEFULSET_SCALE_CLIENT_JS}

async function main() {
  if (!process.env.KUBERNETES_SERVICE_HOST) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a pod');
  if (!/-\\d+$/.test(pod) || !Number.isInteger(ordinal)) throw new Error('cannot read the pod ordinal from POD_NAME=' + JSON.stringify(pod));
  const scale = await scaleApi('GET');
  const replicas = (scale.spec && scale.spec.replicas) || 0;
  const wanted = Math.max(MIN, ordinal);
  if (wanted >= replicas) {
    process.stdout.write('mlinfra stop: ' + STATEFUL_SET + ' has ' + replicas + ' replicas, at or below ' + wanted + ': nothing to do\\n');
    return;
  }
  if (ordinal !== replicas - 1) {
    process.stderr.write('mlinfra stop: ' + pod + ' is not the highest pod of ' + replicas + '; the highest stops first\\n');
    process.exitCode = 75;
    return;
  }
  await scaleApi('PATCH', { metadata: { resourceVersion: scale.metadata.resourceVersion }, spec: { replicas: wanted } });
  process.stdout.write('mlinfra stop: scaled ' + STATEFUL_SET + ' from ' + replicas + ' to ' + wanted + '\\n');
}

main().catch((err) => {
  process.stderr.write('mlinfra stop: ' + err.message + '\\n');
  process.exitCode = 1;
});
`;
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
    throw new Error(`${cluster.node.path}.${what}: grantee is on ${p.kind}, the cluster on kubernetes; grants do not cross clouds`);
  }
  return p;
}

export function buildKubernetesGpuCluster(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan, settings: KubernetesClusterSettings): GpuClusterBackend & { readonly resources: KubernetesGpuClusterResources } {
  // Everything that can fail, before any resource exists.
  const nodeSelector = gpuNodeSelector(cluster, target, plan);

  const provider = target.provider;
  const namespace = target.namespace;
  const selectorLabels = { 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': plan.name };
  const labels = { ...target.labels, ...selectorLabels };
  const meta = (name: string) => ({ name, namespace, labels: { ...labels } });
  const idleStop = plan.idleStopMinutes > 0;
  const multiNode = plan.nodes.max > 1;
  const stsName = plan.name;

  // ---- identity: the pods' service account, and the token Secret
  const identity = new Construct(cluster, 'identity');
  // The API token is mounted only when the pods need it (idle stop scales their own StatefulSet).
  const serviceAccount = new ServiceAccountV1(identity, 'service-account', {
    provider, metadata: meta(plan.name), automountServiceAccountToken: idleStop,
  });
  const secret = new SecretV1(identity, 'agent-token', {
    provider, metadata: meta(`${plan.name}-agent-token`), type: 'Opaque',
    // The provider base64-encodes `data`; the value is a reference resolved at apply time.
    data: { token: plan.agentToken },
  });
  let role: RoleV1 | undefined;
  let roleBinding: RoleBindingV1 | undefined;
  if (idleStop) {
    role = new RoleV1(identity, 'idle-stop-role', {
      provider, metadata: meta(`${plan.name}-idle-stop`),
      rule: [{ apiGroups: ['apps'], resources: ['statefulsets/scale'], resourceNames: [stsName], verbs: ['get', 'patch'] }],
    });
    roleBinding = new RoleBindingV1(identity, 'idle-stop-binding', {
      provider, metadata: meta(`${plan.name}-idle-stop`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
      subject: [{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace }],
    });
  }

  // ---- the agent bundle: < 1 MiB by contract, so it fits a ConfigMap
  const bundle = new Construct(cluster, 'bundle');
  const configMap = new ConfigMapV1(bundle, 'config-map', {
    provider, metadata: meta(`${plan.name}-agent`),
    data: {
      'mlinfra-agent.js': Fn.file(plan.agentBundle.script.path),
      ...(idleStop ? { 'stop.js': renderStopScript(stsName, plan.nodes.min) } : {}),
    },
  });

  // ---- network: headless Service for rendezvous, ClusterIP Service for the API, ingress policy
  const net = new Construct(cluster, 'network');
  const headlessService = new ServiceV1(net, 'peers', {
    provider, metadata: meta(`${plan.name}-peers`),
    spec: {
      clusterIp: 'None',
      // Peers must resolve each other while they start, before any is ready.
      publishNotReadyAddresses: true,
      selector: { ...selectorLabels },
      port: [
        { name: 'agent', port: plan.agentPort, targetPort: String(plan.agentPort), protocol: 'TCP' },
        { name: 'rendezvous', port: RENDEZVOUS_PORT, targetPort: String(RENDEZVOUS_PORT), protocol: 'TCP' },
      ],
    },
  });
  const service = new ServiceV1(net, 'api', {
    provider, metadata: meta(plan.name),
    spec: {
      type: 'ClusterIP',
      selector: { ...selectorLabels },
      // A client keeps talking to the agent that holds its jobs.
      sessionAffinity: 'ClientIP',
      port: [{ name: 'agent', port: plan.agentPort, targetPort: String(plan.agentPort), protocol: 'TCP' }],
    },
  });
  const agentPort = [{ port: String(plan.agentPort), protocol: 'TCP' }];
  const apiFrom: NetworkPolicyV1SpecIngressFrom[] = [
    { podSelector: { matchLabels: { [AGENT_CLIENT_LABEL]: 'true' } } },
    ...(plan.allowedCidrs ?? []).map((cidr) => ({ ipBlock: { cidr } })),
  ];
  const networkPolicy = new NetworkPolicyV1(net, 'policy', {
    provider, metadata: meta(plan.name),
    spec: {
      podSelector: { matchLabels: { ...selectorLabels } },
      policyTypes: ['Ingress'],
      ingress: [
        { from: apiFrom, ports: agentPort },
        // The cluster's own pods: rendezvous, NCCL and anything else torchrun opens, on any port.
        { from: [{ podSelector: { matchLabels: { ...selectorLabels } } }] },
      ],
    },
  });

  // ---- the StatefulSet: one pod per node, all of a node's GPUs
  const workload = new Construct(cluster, 'workload');
  const resources = podResources(plan.shape);
  const nonRoot = {
    runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    // Writable root: npm, and the training jobs the agent runs, write caches under $HOME and /tmp.
    readOnlyRootFilesystem: false,
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const tolerations: StatefulSetV1SpecTemplateSpecToleration[] = [
    { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ...(plan.spot ? [{ key: 'cloud.google.com/gke-spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' }] : []),
  ];
  // The job image runs the agent (jobs are its children); the agent's Node.js comes from agentImage.
  // GPU slots are the pod's request: nvidia-smi may not be on PATH (GKE) and must not decide it.
  const serveArgs = [
    'sh', '-c', GPU_ENV_SH, 'mlinfra-agent',
    AGENT_NODE, `${AGENT_DIR}/mlinfra-agent.js`, 'serve', '--host', '0.0.0.0', '--port', String(plan.agentPort),
    '--data-dir', AGENT_DATA_DIR, '--token-file', `${TOKEN_DIR}/token`, '--preemption', 'none', '--gpus', String(plan.shape.count),
    ...(idleStop ? ['--idle-stop-minutes', String(plan.idleStopMinutes), '--stop-command', `${AGENT_NODE} ${BUNDLE_DIR}/stop.js`] : []),
  ];
  const env: StatefulSetV1SpecTemplateSpecContainerEnv[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'MLINFRA_CLUSTER', value: plan.name },
    // Job images run as root by default and leave HOME unset for uid 1000 (HOME=/, not writable):
    // pip, torch hub and triton caches need a writable home.
    { name: 'HOME', value: '/tmp' },
    { name: 'MLINFRA_ARTIFACTS_URI', value: `file://${AGENT_DATA_DIR}/artifacts` },
    // Pod 0 hosts torchrun's c10d rendezvous for multi-node jobs.
    { name: 'MLINFRA_RENDEZVOUS_ENDPOINT', value: `${stsName}-0.${plan.name}-peers.${namespace}.svc.cluster.local:${RENDEZVOUS_PORT}` },
  ];
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: '/healthz', port: String(plan.agentPort), scheme: 'HTTP' },
    periodSeconds, failureThreshold, timeoutSeconds: 5,
  });

  const statefulSet = new StatefulSetV1(workload, 'stateful-set', {
    provider, metadata: meta(stsName),
    // GPU nodes may take many minutes to scale up; the apply does not wait for them.
    waitForRollout: false,
    spec: {
      replicas: String(plan.nodes.min),
      serviceName: headlessService.metadata.name,
      // Pods of a multi-node job start together; ordered start-up only slows rendezvous.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { ...selectorLabels } },
      // Volumes hold journals and artifacts: kept on scale-down (jobs resume) and on delete (artifacts survive).
      persistentVolumeClaimRetentionPolicy: [{ whenScaled: 'Retain', whenDeleted: 'Retain' }],
      template: {
        // No bundle hash in the template: as on AWS and GCP hosts, a new agent build reaches pods when
        // they are next created (idle stop, scale-up), instead of restarting pods that run jobs.
        metadata: { labels: { ...labels } },
        spec: {
          serviceAccountName: serviceAccount.metadata.name,
          automountServiceAccountToken: idleStop,
          // Running jobs get SIGTERM and this long to checkpoint.
          terminationGracePeriodSeconds: 90,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
          nodeSelector: Object.keys(nodeSelector).length ? nodeSelector : undefined,
          toleration: tolerations,
          affinity: multiNode ? {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [{
                weight: 100,
                podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: [{ matchLabels: { ...selectorLabels } }] },
              }],
            },
          } : undefined,
          initContainer: [{
            name: 'install',
            image: plan.agentImage,
            // Copies Node.js too: the job image runs the agent and need not have it. Backticks: Kubernetes expands $(...).
            // The bundle is self-contained (node:sqlite journal): nothing to install.
            command: ['sh', '-c', `set -e; mkdir -p ${AGENT_DIR}/bin && cp "\`command -v node\`" ${AGENT_NODE} && cp ${BUNDLE_DIR}/mlinfra-agent.js ${AGENT_DIR}/`],
            securityContext: nonRoot,
            resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
            volumeMount: [
              { name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true },
              { name: 'agent', mountPath: AGENT_DIR },
            ],
          }],
          container: [{
            name: 'agent',
            image: settings.image,
            command: serveArgs,
            env,
            port: [
              { name: 'agent', containerPort: plan.agentPort, protocol: 'TCP' },
              { name: 'rendezvous', containerPort: RENDEZVOUS_PORT, protocol: 'TCP' },
            ],
            resources,
            readinessProbe: probe(10, 3),
            // Lenient: a restart kills running jobs.
            livenessProbe: { ...probe(20, 6), initialDelaySeconds: 30 },
            securityContext: nonRoot,
            volumeMount: [
              { name: 'data', mountPath: AGENT_DATA_DIR },
              { name: 'agent', mountPath: AGENT_DIR, readOnly: true },
              { name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true },
              { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
              // PyTorch data loaders share tensors through /dev/shm; the runtime's default is 64 MiB.
              { name: 'dshm', mountPath: '/dev/shm' },
            ],
          }],
          volume: [
            { name: 'agent', emptyDir: {} },
            { name: 'bundle', configMap: { name: configMap.metadata.name, defaultMode: '0444' } },
            { name: 'token', secret: { secretName: secret.metadata.name, defaultMode: '0400', items: [{ key: 'token', path: 'token' }] } },
            { name: 'dshm', emptyDir: { medium: 'Memory' } },
          ],
        },
      },
      volumeClaimTemplate: [{
        metadata: { name: 'data', labels: { ...labels } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: target.storageClassName,
          resources: { requests: { storage: `${plan.diskGiB}Gi` } },
        },
      }],
    },
    // Idle stop, schedules and pipelines move replicas; Terraform sets the starting count only.
    lifecycle: { ignoreChanges: ['spec[0].replicas'] },
  });

  // A drain evicts one pod at a time: an evicted pod's jobs are journaled, re-queued and resumed
  // from checkpoints, so 0 (drains blocked forever, node upgrades stuck) would cost more than it saves.
  const podDisruptionBudget = new PodDisruptionBudgetV1(workload, 'disruption-budget', {
    provider, metadata: meta(plan.name),
    spec: { maxUnavailable: '1', selector: { matchLabels: { ...selectorLabels } } },
  });

  // ---- Kueue: the queue jobs are admitted through, created or adopted by name. kubernetes_manifest
  // reads the CRD schema while planning: Kueue must be installed before this stack is planned.
  const kueue = buildKueue(cluster, target, plan, settings, nodeSelector, tolerations as Toleration[], resources.limits, labels);
  // Jobs request per GPU what the agent pod requests per GPU; limits are twice that (one node's share).
  const perGpu = (q: string) => Number(q.replace(/Gi$/, '')) / plan.shape.count;
  const gatewayConfig: KubernetesGpuClusterResources['gatewayConfig'] = {
    cluster: plan.name, localQueue: kueue.localQueueName, ...(kueue.quota ? { quotaGpus: kueue.quota.gpus } : {}),
    gpusPerNode: plan.shape.count, maxNodes: plan.nodes.max, image: settings.image, agentImage: plan.agentImage,
    bundleConfigMap: configMap.metadata.name, nodeSelector: { ...nodeSelector }, tolerations: tolerations as Toleration[],
    cpuPerGpu: perGpu(resources.requests.cpu), memoryGiBPerGpu: perGpu(resources.requests.memory),
    artifactsUri: `file://${AGENT_DATA_DIR}/artifacts`, labels: { ...target.labels },
  };

  // ---- grants: RBAC on exactly this cluster's Secret or StatefulSet
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

  return {
    agentUrl: `http://${service.metadata.name}.${namespace}.svc.cluster.local:${plan.agentPort}`,
    agentTokenSecret: { store: 'kubernetes-secret', namespace, name: secret.metadata.name, key: 'token' },
    // On Kubernetes, artifacts live on the pods' data volumes, served through the agent.
    artifactsUri: `file://${AGENT_DATA_DIR}/artifacts`,
    grantPrincipal: { kind: 'kubernetes', namespace, serviceAccountName: serviceAccount.metadata.name, podLabels: { ...selectorLabels } },
    grantAgentAccess: (grantee, grantId) => {
      const p = kubernetesGrantee(cluster, grantee, 'grantAgentAccess');
      const scope = grantScope(grantId);
      bind(scope, grantId, p, [{ apiGroups: [''], resources: ['secrets'], resourceNames: [secret.metadata.name], verbs: ['get'] }]);
      if (p.namespace !== namespace || p.podLabels) {
        // The grantee's pods need a way through the NetworkPolicy (same-namespace client-labelled pods already have one).
        new NetworkPolicyV1(scope, 'ingress', {
          provider, metadata: meta(grantId),
          spec: {
            podSelector: { matchLabels: { ...selectorLabels } },
            policyTypes: ['Ingress'],
            ingress: [{
              from: [kubernetesPeer(p, AGENT_CLIENT_LABEL)],
              ports: agentPort,
            }],
          },
        });
      }
    },
    // Artifacts are on the pods' volumes and reached through the agent API (grantAgentAccess):
    // there is no Kubernetes object to grant on. The grantee must still be on Kubernetes.
    grantArtifactsRead: (grantee) => { kubernetesGrantee(cluster, grantee, 'grantArtifactsRead'); },
    grantArtifactsWrite: (grantee) => { kubernetesGrantee(cluster, grantee, 'grantArtifactsWrite'); },
    grantScale: (grantee, grantId) => {
      const p = kubernetesGrantee(cluster, grantee, 'grantScale');
      bind(grantScope(grantId), grantId, p, [
        { apiGroups: ['apps'], resources: ['statefulsets/scale'], resourceNames: [stsName], verbs: ['get', 'patch', 'update'] },
        // `kubectl scale statefulset/<name>` reads the object before it writes the scale subresource.
        { apiGroups: ['apps'], resources: ['statefulsets'], resourceNames: [stsName], verbs: ['get'] },
      ]);
    },
    resources: {
      serviceAccount, secret, configMap, statefulSet, headlessService, service, podDisruptionBudget, networkPolicy, role, roleBinding, kueue, gatewayConfig,
    },
  };
}

/** Creates the ResourceFlavor, ClusterQueue and LocalQueue, or adopts existing ones by name. */
function buildKueue(cluster: Construct, target: KubernetesTarget, plan: GpuClusterPlan, settings: KubernetesClusterSettings,
  nodeSelector: Record<string, string>, tolerations: readonly Toleration[], perPodLimits: Record<string, string>, labels: Record<string, string>): KubernetesKueueResources {
  const provider = target.provider;
  const crdChecks = [requireCrd(target, 'kueue', 'clusterqueues.kueue.x-k8s.io', KUEUE_API_VERSION,
    `Kueue serving ${KUEUE_API_VERSION} (${KUEUE_MIN_VERSION} or later; tested with ${KUEUE_VERSION})`,
    `helm install kueue oci://registry.k8s.io/kueue/charts/kueue --version=${KUEUE_VERSION.slice(1)} --create-namespace --namespace=kueue-system`)];
  if (plan.nodes.max > 1) {
    crdChecks.push(requireCrd(target, 'jobset', 'jobsets.jobset.x-k8s.io', JOBSET_API_VERSION,
      `JobSet serving ${JOBSET_API_VERSION} (tested with ${JOBSET_VERSION}; multi-node jobs run as JobSets)`,
      `helm install jobset oci://registry.k8s.io/jobset/charts/jobset --version ${JOBSET_VERSION.slice(1)} --create-namespace --namespace=jobset-system`));
  }
  if (settings.localQueue) {
    return { localQueueName: settings.localQueue, clusterQueueName: settings.clusterQueue, crdChecks };
  }
  const scope = new Construct(cluster, 'kueue');
  // Cluster-scoped objects: the namespace in the name keeps two namespaces' clusters apart.
  const clusterScoped = `${target.namespace}-${plan.name}`;
  let clusterQueueName = settings.clusterQueue;
  let resourceFlavor: Manifest | undefined;
  let clusterQueue: Manifest | undefined;
  let quota: KueueQuota | undefined;
  if (!clusterQueueName) {
    quota = kueueQuota(plan.nodes.max, plan.shape.count, { cpu: Number(perPodLimits.cpu), memoryGiB: Number(perPodLimits.memory.replace(/Gi$/, '')) });
    resourceFlavor = new Manifest(scope, 'resource-flavor', {
      provider, manifest: renderResourceFlavor(clusterScoped, labels, nodeSelector, tolerations), dependsOn: crdChecks,
    });
    clusterQueueName = clusterScoped;
    clusterQueue = new Manifest(scope, 'cluster-queue', {
      provider, manifest: renderClusterQueue(clusterQueueName, labels, target.namespace, clusterScoped, quota),
      dependsOn: [resourceFlavor],
    });
  }
  const localQueue = new Manifest(scope, 'local-queue', {
    provider, manifest: renderLocalQueue(plan.name, target.namespace, labels, clusterQueueName),
    dependsOn: clusterQueue ? [clusterQueue] : crdChecks,
  });
  return { localQueueName: plan.name, clusterQueueName, quota, resourceFlavor, clusterQueue, localQueue, crdChecks };
}

/**
 * Kueue and JobSet are adopted, never installed here: kubernetes_manifest reads a CRD's schema while
 * planning, so CRDs created in the same plan cannot be used (the provider's documented limit; the
 * ecosystem installs them in an earlier apply or stack). This data source lists the CRD by name
 * (metadata.name is a field selector every kind supports) and its postcondition stops the plan with
 * what to install, instead of the manifest's "no matches for kind". One per target and CRD.
 * Source: registry.terraform.io/providers/hashicorp/kubernetes docs, data-sources/resources.
 */
function requireCrd(target: KubernetesTarget, id: string, crd: string, version: string, what: string, install: string): DataKubernetesResources {
  const checks = (target.node.tryFindChild('mlinfra-crd-checks') as Construct | undefined) ?? new Construct(target, 'mlinfra-crd-checks');
  const existing = checks.node.tryFindChild(id) as DataKubernetesResources | undefined;
  if (existing) return existing;
  const served = version.slice(version.indexOf('/') + 1);
  return new DataKubernetesResources(checks, id, {
    provider: target.provider,
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', fieldSelector: `metadata.name=${crd}`,
    lifecycle: {
      postcondition: [{
        // try(): Terraform's && does not short-circuit, and objects is empty when the CRD is absent.
        condition: `\${try(contains([for v in self.objects[0].spec.versions : v.name if v.served], "${served}"), false)}`,
        errorMessage: `${what} must be installed in the cluster before this stack is planned (CRD ${crd} not found or not serving ${served}). Install it first, e.g. \`${install}\`, or from a stack applied before this one.`,
      }],
    },
  });
}
