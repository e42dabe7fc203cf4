/**
 * MonitoringStack on Kubernetes: a Prometheus (alert rules in a ConfigMap, pod discovery limited to
 * the watched namespaces), Alertmanager for notifications, the DCGM exporter on GPU nodes, and a
 * Grafana dashboard ConfigMap. Plain objects: no Prometheus operator needed.
 */
import { Fn, Lazy, Token } from 'cdktf';
import { Construct } from 'constructs';
import { ClusterRoleV1 } from '@cdktf/provider-kubernetes/lib/cluster-role-v1';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { DaemonSetV1 } from '@cdktf/provider-kubernetes/lib/daemon-set-v1';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import { Errors } from '../../core/errors';
import { suppressPolicyRule } from '../../core/suppressions';
import { resourceName } from '../../core/naming';
import { KubernetesTarget } from '../../core/targets';
import { AGENT_CLIENT_LABEL, ENDPOINT_CLIENT_LABEL } from '../../contracts/client-labels';
import { alertmanagerSetup } from './alertmanager-receivers';
import { buildDcgmExporter, DCGM_EXPORTER_IMAGE } from './kubernetes-dcgm';
import { MonitoringBackend, NotifyPlan, WatchedCluster, WatchedEndpoint, WatchedPipeline } from './plan';
import {
  AgentScrape, CLUSTER_LABEL, clusterGpu, clusterRules, endpointRules, matchers, pipelineRules, PROMETHEUS_ETC, PrometheusRuleGroup,
  renderPrometheusConfig, renderRules, selector,
} from './prometheus';

export const PROMETHEUS_IMAGE = 'quay.io/prometheus/prometheus:v2.53.2';
export const ALERTMANAGER_IMAGE = 'quay.io/prometheus/alertmanager:v0.27.0';
/** DCGM 3.3.9 / exporter 3.6.1: its default counters include GPU_UTIL, FB_USED, GPU_TEMP, POWER_USAGE and XID_ERRORS. */
/** Pods allowed to query Prometheus (Grafana, operators' tools). */
export const MONITORING_CLIENT_LABEL = 'mlinfra.dev/monitoring-client';
export { DCGM_EXPORTER_IMAGE };

export interface SmtpSettings {
  /** `host:port` of the mail relay, e.g. `smtp.example.com:587`. */
  readonly smarthost: string;
  /** Sender address. */
  readonly from: string;
  /** @default - no authentication */
  readonly username?: string;
  /** Secret (in the target's namespace) and key holding the SMTP password. @default - none */
  readonly passwordSecret?: { readonly name: string; readonly key: string };
  /** @default true */
  readonly requireTls?: boolean;
}

export interface KubernetesMonitoringOptions {
  /** Needed when `notify` has email addresses: Alertmanager sends mail through this relay. @default - none */
  readonly smtp?: SmtpSettings;
  /** @default PROMETHEUS_IMAGE */
  readonly prometheusImage?: string;
  /** @default ALERTMANAGER_IMAGE */
  readonly alertmanagerImage?: string;
  /** @default DCGM_EXPORTER_IMAGE */
  readonly dcgmExporterImage?: string;
  /**
   * Deploy the DCGM exporter DaemonSet (turn off where one already runs, e.g. the GPU operator's).
   * @default - true, except on a target whose gpuNodeLabels is 'none' without `dcgmNodeSelector`
   *            (nothing would keep it off CPU nodes, where it cannot start)
   */
  readonly dcgmExporter?: boolean;
  /**
   * Node labels of GPU nodes for the DCGM exporter, for targets whose gpuNodeLabels is 'none'.
   * @default - by the target's scheme: nvidia.com/gpu.present (GFD) or cloud.google.com/gke-accelerator (GKE)
   */
  readonly dcgmNodeSelector?: Record<string, string>;
  /** Days of metrics Prometheus keeps; must exceed any pipeline's maxAge. @default 15 */
  readonly retentionDays?: number;
  /** Size of a persistent volume for Prometheus data. @default - an emptyDir: metrics are lost when the pod moves */
  readonly storageGiB?: number;
}

export interface KubernetesMonitoringResources {
  readonly serviceAccount: ServiceAccountV1;
  readonly clusterRole: ClusterRoleV1;
  /** One per watched namespace: the ClusterRole bound in that namespace only. */
  readonly roleBindings: readonly RoleBindingV1[];
  readonly prometheusConfig: ConfigMapV1;
  readonly rulesConfigMap: ConfigMapV1;
  readonly prometheus: DeploymentV1;
  readonly prometheusService: ServiceV1;
  readonly dataVolumeClaim?: PersistentVolumeClaimV1;
  readonly alertmanagerConfig: ConfigMapV1;
  readonly alertmanager: DeploymentV1;
  readonly alertmanagerService: ServiceV1;
  readonly dcgmExporter?: DaemonSetV1;
  /** Ingress to Alertmanager and the DCGM exporter from Prometheus only, to Prometheus from monitoring clients. */
  readonly networkPolicies: readonly NetworkPolicyV1[];
  readonly dashboardConfigMap: ConfigMapV1;
}

const IMAGE = /^[a-z0-9][a-zA-Z0-9._/:@-]*$/;
const NOBODY = '65534';

export function buildKubernetesMonitoring(scope: Construct, target: KubernetesTarget, notify: NotifyPlan, o: KubernetesMonitoringOptions): MonitoringBackend & { readonly resources: KubernetesMonitoringResources } {
  // ---- validation first
  if (o.smtp && (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(o.smtp.smarthost) && !Token.isUnresolved(o.smtp.smarthost))) {
    throw Errors.invalid(scope, 'kubernetes.smtp.smarthost', o.smtp.smarthost, 'host:port of an SMTP relay, e.g. smtp.example.com:587');
  }
  for (const [prop, image] of [['prometheusImage', o.prometheusImage], ['alertmanagerImage', o.alertmanagerImage], ['dcgmExporterImage', o.dcgmExporterImage]] as const) {
    if (image !== undefined && !IMAGE.test(image)) throw Errors.invalid(scope, `kubernetes.${prop}`, image, 'a container image reference with a pinned tag or digest');
  }
  const retentionDays = o.retentionDays ?? 15;
  if (!Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > 365) throw Errors.outOfRange(scope, 'kubernetes.retentionDays', o.retentionDays, 'whole days from 1 to 365');
  if (o.storageGiB !== undefined && (!Number.isInteger(o.storageGiB) || o.storageGiB < 1 || o.storageGiB > 16384)) {
    throw Errors.outOfRange(scope, 'kubernetes.storageGiB', o.storageGiB, 'an integer from 1 to 16384');
  }
  if (o.dcgmNodeSelector !== undefined && (typeof o.dcgmNodeSelector !== 'object' || !Object.keys(o.dcgmNodeSelector).length)) {
    throw Errors.invalid(scope, 'kubernetes.dcgmNodeSelector', o.dcgmNodeSelector, 'a non-empty map of node labels that only GPU nodes carry');
  }
  if (o.dcgmExporter === true && target.gpuNodeLabels === 'none' && !o.dcgmNodeSelector) {
    throw Errors.missing(scope, 'kubernetes.dcgmNodeSelector',
      `node labels that only GPU nodes carry: the target's gpuNodeLabels is 'none', and without them the DCGM exporter would be scheduled on CPU nodes, where NVML cannot start`);
  }
  const dcgm = o.dcgmExporter ?? (target.gpuNodeLabels !== 'none' || o.dcgmNodeSelector !== undefined);

  const provider = target.provider;
  const namespace = target.namespace;
  const name = resourceName(scope, { maxLength: 40 });
  const labelsOf = (component: string) => ({ ...target.labels, 'app.kubernetes.io/name': component, 'app.kubernetes.io/instance': name });
  const meta = (n: string, component: string, extra: Record<string, string> = {}) => ({ name: n, namespace, labels: { ...labelsOf(component), ...extra } });
  const nonRoot = {
    runAsNonRoot: true, runAsUser: NOBODY, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  };
  const podSecurity = { runAsNonRoot: true, runAsUser: NOBODY, runAsGroup: NOBODY, fsGroup: NOBODY, seccompProfile: { type: 'RuntimeDefault' } };

  // ---- what is watched, filled by watch()
  const agents: AgentScrape[] = [];
  const groups: PrometheusRuleGroup[] = [];
  const endpointNamespaces: string[] = [];
  const panels: { title: string; exprs: string[] }[] = [];
  const credentialSources: { secret: string; id: string }[] = [];

  // ---- identity: pod discovery, bound per watched namespace only
  const identity = new Construct(scope, 'identity');
  const serviceAccount = new ServiceAccountV1(identity, 'prometheus', { provider, metadata: meta(`${name}-prometheus`, 'prometheus') });
  const clusterRole = new ClusterRoleV1(identity, 'discovery', {
    provider, metadata: { name: `${name}-discovery`, labels: labelsOf('prometheus') },
    rule: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
  });
  const roleBindings: RoleBindingV1[] = [];
  const bound = new Set<string>();
  const bindIn = (ns: string) => {
    if (bound.has(ns)) return;
    bound.add(ns);
    roleBindings.push(new RoleBindingV1(identity, `discovery-${roleBindings.length}`, {
      provider, metadata: { name: `${name}-discovery`, namespace: ns, labels: labelsOf('prometheus') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole.metadata.name },
      subject: [{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace }],
    }));
  };
  bindIn(namespace);

  // ---- Alertmanager
  const am = new Construct(scope, 'alertmanager');
  const smtpPasswordFile = o.smtp?.passwordSecret ? '/etc/alertmanager/smtp/password' : undefined;
  const receivers = alertmanagerSetup(scope.node.path, notify,
    o.smtp ? { smarthost: o.smtp.smarthost, from: o.smtp.from, username: o.smtp.username, passwordFile: smtpPasswordFile, requireTls: o.smtp.requireTls ?? true } : undefined);
  const alertmanagerConfig = new ConfigMapV1(am, 'config', {
    provider, metadata: meta(`${name}-alertmanager`, 'alertmanager'),
    data: { 'alertmanager.yml': receivers.config },
  });
  const amLabels = labelsOf('alertmanager');
  const alertmanager = new DeploymentV1(am, 'deployment', {
    provider, metadata: meta(`${name}-alertmanager`, 'alertmanager'),
    spec: {
      replicas: '1',
      selector: { matchLabels: { ...amLabels } },
      template: {
        metadata: { labels: { ...amLabels }, annotations: { 'mlinfra.dev/config-sha256': Fn.sha256(Fn.jsonencode(alertmanagerConfig.data)) } },
        spec: {
          automountServiceAccountToken: false, enableServiceLinks: false, securityContext: podSecurity,
          container: [{
            name: 'alertmanager', image: o.alertmanagerImage ?? ALERTMANAGER_IMAGE,
            args: ['--config.file=/etc/alertmanager/alertmanager.yml', '--storage.path=/alertmanager'],
            port: [{ name: 'http', containerPort: 9093, protocol: 'TCP' }],
            resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '256Mi' } },
            readinessProbe: { httpGet: { path: '/-/ready', port: '9093' }, periodSeconds: 10 },
            livenessProbe: { httpGet: { path: '/-/healthy', port: '9093' }, periodSeconds: 20 },
            securityContext: nonRoot,
            volumeMount: [
              { name: 'config', mountPath: '/etc/alertmanager', readOnly: true },
              { name: 'data', mountPath: '/alertmanager' },
              ...(smtpPasswordFile ? [{ name: 'smtp', mountPath: '/etc/alertmanager/smtp', readOnly: true }] : []),
              ...receivers.mounts,
            ],
          }],
          volume: [
            { name: 'config', configMap: { name: alertmanagerConfig.metadata.name } },
            { name: 'data', emptyDir: {} },
            ...(o.smtp?.passwordSecret ? [{ name: 'smtp', secret: { secretName: o.smtp.passwordSecret.name, items: [{ key: o.smtp.passwordSecret.key, path: 'password' }], defaultMode: '0440' } }] : []),
            ...receivers.volumes,
          ],
        },
      },
    },
  });
  const alertmanagerService = new ServiceV1(am, 'service', {
    provider, metadata: meta(`${name}-alertmanager`, 'alertmanager'),
    spec: { type: 'ClusterIP', selector: { ...amLabels }, port: [{ name: 'http', port: 9093, targetPort: '9093', protocol: 'TCP' }] },
  });

  // ---- Prometheus: config and rules rendered at synth, after every watch()
  const prom = new Construct(scope, 'prometheus');
  const prometheusConfig = new ConfigMapV1(prom, 'config', {
    provider, metadata: meta(`${name}-prometheus`, 'prometheus'),
    data: {
      'prometheus.yml': Lazy.stringValue({
        produce: () => renderPrometheusConfig({
          namespace, agents, endpointNamespaces, dcgm,
          alertmanager: `${alertmanagerService.metadata.name}.${namespace}.svc:9093`,
        }),
      }),
    },
  });
  const rulesConfigMap = new ConfigMapV1(prom, 'rules', {
    provider, metadata: meta(`${name}-rules`, 'prometheus'),
    data: { 'rules.yml': Lazy.stringValue({ produce: () => renderRules(groups) }) },
  });
  const dataVolumeClaim = o.storageGiB ? new PersistentVolumeClaimV1(prom, 'data', {
    provider, metadata: meta(`${name}-prometheus`, 'prometheus'), waitUntilBound: false,
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: target.storageClassName, resources: { requests: { storage: `${o.storageGiB}Gi` } } },
  }) : undefined;
  // Pod labels admit Prometheus through the NetworkPolicies of watched clusters and endpoints (same namespace).
  const promLabels = labelsOf('prometheus');
  const prometheus = new DeploymentV1(prom, 'deployment', {
    provider, metadata: meta(`${name}-prometheus`, 'prometheus'),
    spec: {
      replicas: '1',
      // One writer for the TSDB: never two pods on the same volume.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: { ...promLabels } },
      template: {
        metadata: {
          labels: { ...promLabels, [AGENT_CLIENT_LABEL]: 'true', [ENDPOINT_CLIENT_LABEL]: 'true' },
          annotations: {
            'mlinfra.dev/config-sha256': Fn.sha256(Fn.jsonencode(prometheusConfig.data)),
            'mlinfra.dev/rules-sha256': Fn.sha256(Fn.jsonencode(rulesConfigMap.data)),
          },
        },
        spec: {
          serviceAccountName: serviceAccount.metadata.name, enableServiceLinks: false, securityContext: podSecurity,
          container: [{
            name: 'prometheus', image: o.prometheusImage ?? PROMETHEUS_IMAGE,
            args: [
              `--config.file=${PROMETHEUS_ETC}/prometheus.yml`, '--storage.tsdb.path=/prometheus',
              `--storage.tsdb.retention.time=${retentionDays}d`, '--web.listen-address=:9090',
            ],
            port: [{ name: 'http', containerPort: 9090, protocol: 'TCP' }],
            resources: { requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '1', memory: '4Gi' } },
            readinessProbe: { httpGet: { path: '/-/ready', port: '9090' }, periodSeconds: 10 },
            livenessProbe: { httpGet: { path: '/-/healthy', port: '9090' }, periodSeconds: 20, failureThreshold: 6 },
            securityContext: nonRoot,
            volumeMount: [
              { name: 'config', mountPath: PROMETHEUS_ETC, readOnly: true },
              { name: 'rules', mountPath: `${PROMETHEUS_ETC}/rules`, readOnly: true },
              { name: 'credentials', mountPath: `${PROMETHEUS_ETC}/credentials`, readOnly: true },
              { name: 'data', mountPath: '/prometheus' },
            ],
          }],
          // Replaced below: the credentials volume depends on the clusters watched later.
          volume: [],
        },
      },
    },
  });
  // Each watched cluster's token Secret, projected into one volume as credentials/<watch id>/token.
  prometheus.addOverride('spec.template.spec.volume', Lazy.anyValue({
    produce: () => [
      { name: 'config', config_map: { name: prometheusConfig.metadata.name } },
      { name: 'rules', config_map: { name: rulesConfigMap.metadata.name } },
      credentialSources.length
        ? { name: 'credentials', projected: { default_mode: '0440', sources: credentialSources.map((c) => ({ secret: { name: c.secret, items: [{ key: 'token', path: `${c.id}/token` }] } })) } }
        : { name: 'credentials', empty_dir: {} },
      dataVolumeClaim ? { name: 'data', persistent_volume_claim: { claim_name: dataVolumeClaim.metadata.name } } : { name: 'data', empty_dir: {} },
    ],
  }));
  const prometheusService = new ServiceV1(prom, 'service', {
    provider, metadata: meta(`${name}-prometheus`, 'prometheus'),
    spec: { type: 'ClusterIP', selector: { ...promLabels }, port: [{ name: 'http', port: 9090, targetPort: '9090', protocol: 'TCP' }] },
  });

  // ---- DCGM exporter on GPU nodes; it maps GPUs to the pods using them (pod-resources socket)
  const dcgmExporter = dcgm ? buildDcgmExporter(scope, target, o, meta, name, labelsOf('dcgm-exporter')) : undefined;

  // ---- ingress: Alertmanager and the DCGM exporter from Prometheus only; Prometheus from labelled clients
  const policies = new Construct(scope, 'network-policies');
  const allowIn = (id: string, component: string, pods: Record<string, string>, port: number, from: object[]) =>
    new NetworkPolicyV1(policies, id, {
      provider, metadata: meta(`${name}-${id}`, component),
      spec: { podSelector: { matchLabels: { ...pods } }, policyTypes: ['Ingress'], ingress: [{ from, ports: [{ port: String(port), protocol: 'TCP' }] }] },
    });
  const networkPolicies = [
    allowIn('alertmanager', 'alertmanager', amLabels, 9093, [{ podSelector: { matchLabels: { ...promLabels } } }]),
    // Dashboards and operators: pods labelled as monitoring clients, in any namespace.
    allowIn('prometheus', 'prometheus', promLabels, 9090, [{ namespaceSelector: {}, podSelector: { matchLabels: { [MONITORING_CLIENT_LABEL]: 'true' } } }]),
  ];
  if (dcgmExporter) {
    networkPolicies.push(allowIn('dcgm-exporter', 'dcgm-exporter', labelsOf('dcgm-exporter'), 9400, [{ podSelector: { matchLabels: { ...promLabels } } }]));
    suppressPolicyRule(dcgmExporter, 'k8s-pod-non-root', target.gpuNodeLabels === 'gke'
      ? 'dcgm-exporter runs as root and privileged on GKE: NVML needs the host driver directory and device access there (Google\'s reference exporter does the same)'
      : 'dcgm-exporter runs as root to read the kubelet pod-resources socket; it adds no capabilities');
    if (target.gpuNodeLabels === 'gke') {
      suppressPolicyRule(dcgmExporter, 'k8s-no-privilege-escalation', 'GKE: NVML in dcgm-exporter cannot initialise without a privileged container and the host driver directory (Google\'s reference exporter, prometheus-engine examples/nvidia-dcgm)');
    }
  }

  // ---- Grafana dashboard (picked up by the Grafana sidecar through its label)
  const dashboardConfigMap = new ConfigMapV1(scope, 'dashboard', {
    provider, metadata: meta(`${name}-dashboard`, 'grafana-dashboard', { grafana_dashboard: '1' }),
    data: {
      [`${name}.json`]: Lazy.stringValue({
        produce: () => JSON.stringify({
          title: `mlinfra ${scope.node.path}`, uid: name.slice(-40), schemaVersion: 39, editable: false, time: { from: 'now-24h', to: 'now' },
          panels: panels.map((p, i) => ({
            id: i + 1, type: 'timeseries', title: p.title, gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
            datasource: { type: 'prometheus' },
            targets: p.exprs.map((expr, j) => ({ refId: String.fromCharCode(65 + j), expr })),
          })),
        }),
      }),
    },
  });

  return {
    watchCluster(w: WatchedCluster) {
      const secret = w.cluster.agentTokenSecret;
      if (secret.store !== 'kubernetes-secret') {
        throw Errors.invalid(scope, 'watch', w.id, 'a GpuCluster on Kubernetes, whose agent token is a Kubernetes Secret', `keeps its token in ${secret.store}`);
      }
      agents.push({ id: w.id, clusterName: w.clusterName, namespace: secret.namespace, port: 'agent' });
      credentialSources.push({ secret: secret.name, id: w.id });
      bindIn(secret.namespace);
      groups.push({ name: `mlinfra-cluster-${w.id}`, rules: clusterRules(w, secret.namespace) });
      const sel = matchers({ [CLUSTER_LABEL]: w.clusterName });
      const gpu = (metric: string) => clusterGpu(metric, secret.namespace, w.clusterName);
      panels.push(
        { title: `${w.id}: GPU utilisation (%)`, exprs: [`avg by (pod, gpu) (${gpu('DCGM_FI_DEV_GPU_UTIL')})`] },
        { title: `${w.id}: GPU memory used (MiB), temperature (C), power (W)`, exprs: [`sum by (pod) (${gpu('DCGM_FI_DEV_FB_USED')})`, `max by (pod) (${gpu('DCGM_FI_DEV_GPU_TEMP')})`, `sum by (pod) (${gpu('DCGM_FI_DEV_POWER_USAGE')})`] },
        // max, not sum: every gateway replica reports the same counts (read from the API server).
        { title: `${w.id}: jobs queued and running, GPUs busy`, exprs: [`max(mlinfra_agent_jobs_queued${sel})`, `max(mlinfra_agent_jobs_running${sel})`, `max(mlinfra_agent_gpus_busy${sel})`] },
        { title: `${w.id}: job failures by class, autostops`, exprs: [`sum by (failure_class) (increase(mlinfra_agent_jobs_finished_total${matchers({ [CLUSTER_LABEL]: w.clusterName, state: 'failed' })}[1h]))`, `sum(increase(mlinfra_agent_autostop_total${sel}[1h]))`] },
        { title: `${w.id}: feature drift (PSI)`, exprs: [`max by (feature) (mlinfra_feature_drift_psi${sel})`] },
      );
    },
    watchPipeline(w: WatchedPipeline) {
      groups.push({ name: `mlinfra-pipeline-${w.id}`, rules: pipelineRules(w) });
      panels.push({ title: `${w.id}: pipeline runs`, exprs: [`sum by (state) (increase(mlinfra_pipeline_runs_total${matchers({ [CLUSTER_LABEL]: w.clusterName, pipeline: w.pipeline.pipelineName })}[1h]))`] });
    },
    watchEndpoint(w: WatchedEndpoint) {
      const m = w.endpoint.metrics;
      const epNamespace = m.latency.dimensions.namespace ?? namespace;
      if (!endpointNamespaces.includes(epNamespace)) endpointNamespaces.push(epNamespace);
      bindIn(epNamespace);
      groups.push({ name: `mlinfra-endpoint-${w.id}`, rules: endpointRules(w) });
      panels.push(
        { title: `${w.id}: latency (s)`, exprs: [0.5, 0.99].map((q) => `histogram_quantile(${q}, sum by (le) (rate(${selector(m.latency, '_bucket')}[5m])))`) },
        { title: `${w.id}: requests and 5xx errors (per second)`, exprs: [`sum(rate(${selector(m.invocations)}[5m]))`, `sum(rate(${selector(m.errors)}[5m]))`] },
      );
    },
    resources: {
      serviceAccount, clusterRole, roleBindings, prometheusConfig, rulesConfigMap, prometheus, prometheusService, dataVolumeClaim,
      alertmanagerConfig, alertmanager, alertmanagerService, dcgmExporter, dashboardConfigMap, networkPolicies,
    },
  };
}
