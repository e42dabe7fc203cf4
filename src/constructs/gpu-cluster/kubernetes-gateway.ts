/**
 * The agent gateway on Kubernetes: a stateless Deployment serving the agent's HTTP API by creating
 * and reading Jobs/JobSets (src/runtime-agent/k8s/gateway.ts), with the least RBAC that needs (exact
 * kinds and verbs, in its namespace), a ClusterIP Service, a NetworkPolicy, and the ServiceAccount
 * job pods run as (no API token). The Kubernetes API server is the store: any replica serves any call.
 */
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { NetworkPolicyV1, NetworkPolicyV1SpecIngressFrom } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import type { GatewayConfig } from '../../runtime-agent/k8s/objects';
import { KubernetesTarget } from '../../core/targets';

export interface KubernetesGatewayOptions {
  /** Base name of the objects (the cluster's resource name). */
  readonly name: string;
  readonly labels: Record<string, string>;
  /** Image with Node.js (GpuCluster agentImage). */
  readonly agentImage: string;
  readonly port: number;
  /** ConfigMap with mlinfra-agent.js. */
  readonly bundleConfigMap: string;
  /** Secret holding the API token under `token`. */
  readonly tokenSecret: string;
  /** What the gateway serves; `jobServiceAccount` and `namespace` are filled in here. */
  readonly config: Omit<GatewayConfig, 'jobServiceAccount' | 'namespace'>;
  /** Who may call the API, besides pods labelled `clientLabel: "true"` in the namespace. */
  readonly allowedCidrs?: readonly string[];
  readonly clientLabel: string;
}

export interface KubernetesGatewayResources {
  readonly serviceAccount: ServiceAccountV1;
  /** Job pods run as this account; it has no API token and no roles. */
  readonly jobServiceAccount: ServiceAccountV1;
  readonly role: RoleV1;
  readonly roleBinding: RoleBindingV1;
  readonly configMap: ConfigMapV1;
  /** Pipeline run ends the gateway counts (`runs.json`), for the `mlinfra_pipeline_*` series. */
  readonly pipelineRuns: ConfigMapV1;
  readonly deployment: DeploymentV1;
  readonly service: ServiceV1;
  readonly networkPolicy: NetworkPolicyV1;
  readonly podDisruptionBudget: PodDisruptionBudgetV1;
  /** The labels the gateway's pods are selected by (the Service, NetworkPolicies, Prometheus). */
  readonly selectorLabels: Readonly<Record<string, string>>;
}

const AGENT_DIR = '/opt/mlinfra/agent';
const BUNDLE_DIR = '/opt/mlinfra/bundle';
const CONFIG_DIR = '/etc/mlinfra/gateway';
const TOKEN_DIR = '/var/run/mlinfra';
const UID = '1000';

/**
 * The verbs the gateway uses, on exactly these kinds (kube-client.ts): create/get/list/delete Jobs and
 * JobSets, list pods and read their logs, read its LocalQueue, read and update its pipeline-run
 * record. No patch, watch, secrets, or any other object.
 */
export const GATEWAY_RULES = (localQueue: string, pipelineRuns: string) => [
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'delete'] },
  { apiGroups: ['jobset.x-k8s.io'], resources: ['jobsets'], verbs: ['create', 'get', 'list', 'delete'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: ['kueue.x-k8s.io'], resources: ['localqueues'], resourceNames: [localQueue], verbs: ['get'] },
  // Pipeline run ends: read and compare-and-swap exactly the cluster's record.
  { apiGroups: [''], resources: ['configmaps'], resourceNames: [pipelineRuns], verbs: ['get', 'update'] },
];

export function buildKubernetesGateway(scope: Construct, target: KubernetesTarget, o: KubernetesGatewayOptions): KubernetesGatewayResources {
  const provider = target.provider;
  const namespace = target.namespace;
  // name/instance as the agent's on VMs: the MonitoringStack scrapes the gateway's /metrics by them.
  const selector = { 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': o.name, 'app.kubernetes.io/component': 'gateway' };
  const labels = { ...o.labels, ...selector };
  const meta = (n: string) => ({ name: n, namespace, labels: { ...labels } });
  const gw = new Construct(scope, 'gateway');

  // The gateway's own token is mounted (it calls the API); job pods get none.
  const serviceAccount = new ServiceAccountV1(gw, 'service-account', { provider, metadata: meta(`${o.name}-gateway`), automountServiceAccountToken: true });
  const jobServiceAccount = new ServiceAccountV1(gw, 'job-service-account', { provider, metadata: meta(`${o.name}-jobs`), automountServiceAccountToken: false });
  // The gateway's only state of its own, in the API server: counted pipeline run ends.
  const pipelineRunsName = `${o.name}-pipeline-runs`;
  const pipelineRuns = new ConfigMapV1(gw, 'pipeline-runs', {
    provider, metadata: meta(pipelineRunsName), data: { 'runs.json': '{}' },
    // Written by the gateway; Terraform creates it and leaves the counts alone.
    lifecycle: { ignoreChanges: ['data'] },
  });
  const role = new RoleV1(gw, 'role', { provider, metadata: meta(`${o.name}-gateway`), rule: GATEWAY_RULES(o.config.localQueue, pipelineRunsName) });
  const roleBinding = new RoleBindingV1(gw, 'role-binding', {
    provider, metadata: meta(`${o.name}-gateway`),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
    subject: [{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace }],
  });

  const config: GatewayConfig = { ...o.config, namespace, jobServiceAccount: jobServiceAccount.metadata.name, pipelineRunsConfigMap: pipelineRunsName };
  // Not a secret: names, images, quota. The token stays in its Secret.
  const configMap = new ConfigMapV1(gw, 'config', { provider, metadata: meta(`${o.name}-gateway`), data: { 'config.json': JSON.stringify(config) } });

  const nonRoot = {
    runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true, seccompProfile: { type: 'RuntimeDefault' },
  };
  const port = String(o.port);
  const deployment = new DeploymentV1(gw, 'deployment', {
    provider, metadata: meta(`${o.name}-gateway`),
    // The API server is the store: two replicas serve the same state.
    spec: {
      replicas: '2',
      selector: { matchLabels: { ...selector } },
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          serviceAccountName: serviceAccount.metadata.name,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
          initContainer: [{
            name: 'install', image: o.agentImage,
            // The bundle is self-contained (node:sqlite journal): nothing to install.
            command: ['sh', '-c', `set -e; cp ${BUNDLE_DIR}/mlinfra-agent.js ${AGENT_DIR}/`],
            env: [{ name: 'HOME', value: '/tmp' }],
            securityContext: nonRoot,
            resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
            volumeMount: [
              { name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true }, { name: 'agent', mountPath: AGENT_DIR }, { name: 'tmp', mountPath: '/tmp' },
            ],
          }],
          container: [{
            name: 'gateway', image: o.agentImage,
            command: ['node', `${AGENT_DIR}/mlinfra-agent.js`, 'gateway', '--host', '0.0.0.0', '--port', port,
              '--config', `${CONFIG_DIR}/config.json`, '--token-file', `${TOKEN_DIR}/token`],
            port: [{ name: 'agent', containerPort: o.port, protocol: 'TCP' }],
            resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
            readinessProbe: { httpGet: { path: '/healthz', port, scheme: 'HTTP' }, periodSeconds: 10 },
            livenessProbe: { httpGet: { path: '/healthz', port, scheme: 'HTTP' }, periodSeconds: 20, failureThreshold: 3 },
            securityContext: nonRoot,
            volumeMount: [
              { name: 'agent', mountPath: AGENT_DIR, readOnly: true },
              { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
              { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
            ],
          }],
          volume: [
            { name: 'agent', emptyDir: {} },
            { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
            { name: 'bundle', configMap: { name: o.bundleConfigMap, defaultMode: '0444' } },
            { name: 'config', configMap: { name: configMap.metadata.name, defaultMode: '0444' } },
            { name: 'token', secret: { secretName: o.tokenSecret, defaultMode: '0400', items: [{ key: 'token', path: 'token' }] } },
          ],
        },
      },
    },
  });
  const service = new ServiceV1(gw, 'service', {
    provider, metadata: meta(o.name),
    spec: { type: 'ClusterIP', selector: { ...selector }, port: [{ name: 'agent', port: o.port, targetPort: port, protocol: 'TCP' }] },
  });
  const from: NetworkPolicyV1SpecIngressFrom[] = [
    { podSelector: { matchLabels: { [o.clientLabel]: 'true' } } },
    ...(o.allowedCidrs ?? []).map((cidr) => ({ ipBlock: { cidr } })),
  ];
  const networkPolicy = new NetworkPolicyV1(gw, 'network-policy', {
    provider, metadata: meta(`${o.name}-gateway`),
    spec: { podSelector: { matchLabels: { ...selector } }, policyTypes: ['Ingress'], ingress: [{ from, ports: [{ port, protocol: 'TCP' }] }] },
  });
  const podDisruptionBudget = new PodDisruptionBudgetV1(gw, 'disruption-budget', {
    provider, metadata: meta(`${o.name}-gateway`), spec: { minAvailable: '1', selector: { matchLabels: { ...selector } } },
  });
  return { serviceAccount, jobServiceAccount, role, roleBinding, configMap, pipelineRuns, deployment, service, networkPolicy, podDisruptionBudget, selectorLabels: { ...selector } };
}
