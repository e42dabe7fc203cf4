/**
 * Prometheus rules, scrape configuration and Alertmanager configuration as text (Kubernetes), and
 * the PromQL the GCP backend shares. Plain Prometheus files: no operator CRDs needed.
 */
import { stringify } from 'yaml';
import type { MetricRef } from '../model-endpoint';
import { AGENT_METRICS, HOST_METRICS } from '../../contracts/host-metrics';
import { ALARMS, WatchedCluster, WatchedEndpoint, WatchedPipeline } from './plan';

export interface PrometheusRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

export interface PrometheusRuleGroup {
  readonly name: string;
  readonly rules: PrometheusRule[];
}

/** Label naming the cluster on agent metrics (GCP: set by the Ops Agent scrape; Kubernetes: by relabelling). */
export const CLUSTER_LABEL = HOST_METRICS.gcpClusterLabel;

/** A PromQL string literal. */
export function q(value: string): string {
  return JSON.stringify(value);
}

/** `{k="v",...}` from labels plus raw matchers. */
export function matchers(labels: Readonly<Record<string, string>>, ...raw: (string | undefined)[]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${q(v)}`);
  return `{${[...parts, ...raw.filter((r): r is string => !!r)].join(',')}}`;
}

const seconds = (s: number) => `${Math.round(s)}s`;
const minutes = (m: number) => `${m}m`;

/** The PromQL each alarm evaluates, shared by the Kubernetes rules and GCP's PromQL conditions. */
export const promql = {
  agentUp: (cluster: string) => `up${matchers({ [CLUSTER_LABEL]: cluster })}`,
  queued: (cluster: string) => `max(${AGENT_METRICS.jobsQueued}${matchers({ [CLUSTER_LABEL]: cluster })})`,
  drift: (cluster: string, psi: number) => `max by (feature) (${HOST_METRICS.driftPsi}${matchers({ [CLUSTER_LABEL]: cluster })}) > ${psi}`,
  pipelineFailed: (cluster: string, pipeline: string) =>
    `sum(increase(${HOST_METRICS.pipelineRuns}${matchers({ [CLUSTER_LABEL]: cluster, pipeline, state: 'failed' })}[15m])) > 0`,
  /** No success recorded within maxAge: an old last-success time, or no series at all (hosts scaled to zero all along). */
  pipelineStale: (cluster: string, pipeline: string, maxAgeSeconds: number) => {
    const m = `${HOST_METRICS.pipelineLastSuccess}${matchers({ [CLUSTER_LABEL]: cluster, pipeline })}`;
    const w = seconds(maxAgeSeconds);
    return `(time() - max(max_over_time(${m}[${w}])) > ${maxAgeSeconds}) or on() absent_over_time(${m}[${w}])`;
  },
};

/**
 * A DCGM series (`DCGM_FI_DEV_GPU_UTIL`...) of one cluster's job pods on Kubernetes. Job and JobSet pods
 * have random names, so DCGM's `pod` label is joined to the gateway's list of the cluster's live pods
 * (HOST_METRICS.gatewayJobPods, selected by the cluster label the gateway puts on every job pod).
 */
export function clusterGpu(metric: string, namespace: string, cluster: string): string {
  const pods = `${HOST_METRICS.gatewayJobPods}${matchers({ [CLUSTER_LABEL]: cluster })}`;
  // Aggregated by job_pod first: the gateway's replicas report the same pods under their own `pod` label.
  return `(${metric}${matchers({ namespace })} * on (pod) group_left() label_replace(max by (job_pod) (${pods}), "pod", "$1", "job_pod", "(.+)"))`;
}

/** Kubernetes rules of one watched cluster: DCGM exporter GPU metrics and the agent's own. */
export function clusterRules(w: WatchedCluster, namespace: string): PrometheusRule[] {
  const t = w.thresholds;
  const gpu = (metric: string) => clusterGpu(metric, namespace, w.clusterName);
  const labels = { watch: w.id, [CLUSTER_LABEL]: w.clusterName };
  return [
    {
      alert: 'MlinfraGpuIdleWhileQueued',
      expr: `${promql.queued(w.clusterName)} > 0 and on() avg(${gpu('DCGM_FI_DEV_GPU_UTIL')}) < ${t.gpuIdlePercent}`,
      for: minutes(t.gpuIdleMinutes),
      labels: { ...labels, alarm: ALARMS.gpuIdle, severity: 'warning' },
      annotations: { summary: `GPUs under ${t.gpuIdlePercent}% busy for ${t.gpuIdleMinutes}m while jobs are queued`, description: 'Jobs wait but GPUs idle: a stuck scheduler, a job holding slots without using them, or a GPU the agent cannot use.' },
    },
    {
      alert: 'MlinfraGpuXidErrors',
      // DCGM_FI_DEV_XID_ERRORS holds the last XID code seen (0: none).
      expr: `max by (pod, gpu) (${gpu('DCGM_FI_DEV_XID_ERRORS')}) > 0`,
      for: '0m',
      labels: { ...labels, alarm: ALARMS.xid, severity: 'critical' },
      annotations: { summary: 'NVIDIA XID error on {{ $labels.pod }} GPU {{ $labels.gpu }} (XID {{ $value }})', description: 'See NVIDIA\'s XID table; 48, 63, 64, 74, 79 and 94/95 usually need the node drained.' },
    },
    {
      alert: 'MlinfraAgentDown',
      expr: `${promql.agentUp(w.clusterName)} == 0`,
      for: minutes(t.agentDownMinutes),
      labels: { ...labels, alarm: ALARMS.agentDown, severity: 'critical' },
      annotations: { summary: 'mlinfra-agent {{ $labels.pod }} has not answered /metrics for ' + `${t.agentDownMinutes}m`, description: 'Jobs on this pod are not dispatched or reported.' },
    },
    {
      alert: 'MlinfraFeatureDrift',
      expr: promql.drift(w.clusterName, t.driftPsi),
      for: '0m',
      labels: { ...labels, alarm: ALARMS.drift, severity: 'warning' },
      annotations: { summary: 'Feature {{ $labels.feature }} drifted: PSI {{ $value }} > ' + `${t.driftPsi}`, description: 'The latest batch differs from the training reference; consider retraining.' },
    },
  ];
}

export function pipelineRules(w: WatchedPipeline): PrometheusRule[] {
  const name = w.pipeline.pipelineName;
  const labels = { watch: w.id, [CLUSTER_LABEL]: w.clusterName, pipeline: name };
  return [
    {
      alert: 'MlinfraPipelineFailed',
      expr: promql.pipelineFailed(w.clusterName, name),
      for: '0m',
      labels: { ...labels, alarm: ALARMS.pipelineFailed, severity: 'critical' },
      annotations: { summary: `A run of pipeline ${name} failed`, description: 'Read the run\'s step logs with `mlinfra-agent logs`.' },
    },
    {
      alert: 'MlinfraPipelineStale',
      expr: promql.pipelineStale(w.clusterName, name, w.thresholds.maxAgeSeconds),
      for: '10m',
      labels: { ...labels, alarm: ALARMS.pipelineStale, severity: 'warning' },
      annotations: { summary: `No successful run of pipeline ${name} in ${w.thresholds.maxAgeSeconds}s`, description: 'The model and its features are getting old: check the schedule and the last runs.' },
    },
  ];
}

/** A Prometheus selector from an endpoint's MetricRef (its labels and extra matcher). */
export function selector(ref: MetricRef, suffix = ''): string {
  return `${ref.name}${suffix}${matchers(ref.dimensions, ref.filter)}`;
}

export function endpointRules(w: WatchedEndpoint): PrometheusRule[] {
  const m = w.endpoint.metrics;
  const t = w.thresholds;
  const window = '5m';
  const labels = { watch: w.id };
  // Kubernetes latency is a seconds histogram.
  const scale = m.latency.unit === 'seconds' ? 1000 : m.latency.unit === 'microseconds' ? 0.001 : 1;
  return [
    {
      alert: 'MlinfraEndpointP99Latency',
      expr: `histogram_quantile(0.99, sum by (le) (rate(${selector(m.latency, '_bucket')}[${window}]))) > ${t.p99LatencyMs / scale}`,
      for: minutes(t.evaluationMinutes),
      labels: { ...labels, alarm: ALARMS.p99, severity: 'warning' },
      annotations: { summary: `p99 latency above ${t.p99LatencyMs} ms`, description: 'Slow answers: check replicas, GPU saturation and the model version.' },
    },
    {
      alert: 'MlinfraEndpointErrorRate',
      expr: `100 * sum(rate(${selector(m.errors)}[${window}])) / sum(rate(${selector(m.invocations)}[${window}])) > ${t.errorRatePercent}`,
      for: minutes(t.evaluationMinutes),
      labels: { ...labels, alarm: ALARMS.errorRate, severity: 'critical' },
      annotations: { summary: `More than ${t.errorRatePercent}% of requests fail with 5xx`, description: 'Server errors: check the model server logs and the last rollout.' },
    },
  ];
}

const YAML_OPTIONS = { lineWidth: 0, minContentWidth: 0 } as const;

export function renderRules(groups: readonly PrometheusRuleGroup[]): string {
  return stringify({ groups: groups.filter((g) => g.rules.length > 0) }, YAML_OPTIONS);
}

/** Where the files live in the Prometheus pod. Tests rewrite this prefix. */
export const PROMETHEUS_ETC = '/etc/prometheus';

export interface AgentScrape {
  readonly id: string;
  readonly clusterName: string;
  readonly namespace: string;
  readonly port: string;
}

export interface PrometheusConfigInput {
  readonly namespace: string;
  readonly alertmanager: string;
  readonly agents: readonly AgentScrape[];
  /** Namespaces with watched endpoints (their pods are scraped on the `http` port). */
  readonly endpointNamespaces: readonly string[];
  readonly dcgm: boolean;
}

/** Path of a watched cluster's token in the Prometheus pod. */
export function credentialsPath(id: string): string {
  return `${PROMETHEUS_ETC}/credentials/${id}/token`;
}

export function renderPrometheusConfig(c: PrometheusConfigInput): string {
  const pods = (namespaces: readonly string[]) => [{ role: 'pod', namespaces: { names: [...new Set(namespaces)] } }];
  const scrape: Record<string, unknown>[] = [
    { job_name: 'prometheus', static_configs: [{ targets: ['localhost:9090'] }] },
  ];
  if (c.dcgm) {
    scrape.push({
      job_name: 'dcgm-exporter',
      // The exporter names the pod and namespace using each GPU: keep its labels.
      honor_labels: true,
      kubernetes_sd_configs: pods([c.namespace]),
      relabel_configs: [
        { source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name', '__meta_kubernetes_pod_container_port_name'], regex: 'dcgm-exporter;metrics', action: 'keep' },
        { source_labels: ['__meta_kubernetes_pod_node_name'], target_label: 'node' },
      ],
    });
  }
  for (const a of c.agents) {
    scrape.push({
      job_name: `${HOST_METRICS.agentJob}-${a.id}`,
      authorization: { type: 'Bearer', credentials_file: credentialsPath(a.id) },
      kubernetes_sd_configs: pods([a.namespace]),
      relabel_configs: [
        {
          source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name', '__meta_kubernetes_pod_label_app_kubernetes_io_instance', '__meta_kubernetes_pod_container_port_name'],
          regex: `mlinfra-agent;${a.clusterName};agent`, action: 'keep',
        },
        { target_label: CLUSTER_LABEL, replacement: a.clusterName },
        { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      ],
    });
  }
  if (c.endpointNamespaces.length) {
    scrape.push({
      job_name: 'mlinfra-endpoints',
      kubernetes_sd_configs: pods(c.endpointNamespaces),
      relabel_configs: [
        { source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name', '__meta_kubernetes_pod_container_port_name'], regex: 'mlinfra-model-endpoint;http', action: 'keep' },
        // The labels ModelEndpoint's metrics name: namespace and app.
        { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
        { source_labels: ['__meta_kubernetes_pod_label_app'], target_label: 'app' },
        { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      ],
    });
  }
  return stringify({
    global: { scrape_interval: '30s', evaluation_interval: '30s' },
    rule_files: [`${PROMETHEUS_ETC}/rules/rules.yml`],
    alerting: { alertmanagers: [{ static_configs: [{ targets: [c.alertmanager] }] }] },
    scrape_configs: scrape,
  }, YAML_OPTIONS);
}

export interface AlertmanagerConfigInput {
  readonly emails: readonly string[];
  readonly webhooks: readonly string[];
  readonly smtp?: { readonly smarthost: string; readonly from: string; readonly username?: string; readonly passwordFile?: string; readonly requireTls: boolean };
}

export function renderAlertmanagerConfig(c: AlertmanagerConfigInput): string {
  const receiver: Record<string, unknown> = { name: 'mlinfra' };
  if (c.emails.length) receiver.email_configs = c.emails.map((to) => ({ to, send_resolved: true }));
  if (c.webhooks.length) receiver.webhook_configs = c.webhooks.map((url) => ({ url, send_resolved: true }));
  const global: Record<string, unknown> = { resolve_timeout: '5m' };
  if (c.smtp) {
    global.smtp_smarthost = c.smtp.smarthost;
    global.smtp_from = c.smtp.from;
    global.smtp_require_tls = c.smtp.requireTls;
    if (c.smtp.username) global.smtp_auth_username = c.smtp.username;
    if (c.smtp.passwordFile) global.smtp_auth_password_file = c.smtp.passwordFile;
  }
  return stringify({
    global,
    route: { receiver: 'mlinfra', group_by: ['alertname', CLUSTER_LABEL, 'watch'], group_wait: '30s', group_interval: '5m', repeat_interval: '4h' },
    receivers: [receiver],
  }, YAML_OPTIONS);
}
