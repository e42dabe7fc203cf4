/** MonitoringStack on GCP: Cloud Monitoring alert policies, notification channels and one dashboard. */
import { Lazy } from 'cdktf';
import { Construct } from 'constructs';
import { MonitoringAlertPolicy, MonitoringAlertPolicyConditions } from '@cdktf/provider-google/lib/monitoring-alert-policy';
import { MonitoringDashboard } from '@cdktf/provider-google/lib/monitoring-dashboard';
import { MonitoringNotificationChannel } from '@cdktf/provider-google/lib/monitoring-notification-channel';
import { GcpTarget } from '../../core/targets';
import { buildGcpNotificationChannels } from './gcp-notify';
import { AGENT_METRICS, HOST_METRICS } from '../../contracts/host-metrics';
import type { MetricRef } from '../model-endpoint';
import { ALARMS, MonitoringBackend, NotifyPlan, WatchedCluster, WatchedEndpoint, WatchedPipeline } from './plan';
import { CLUSTER_LABEL, matchers, promql } from './prometheus';

export interface GcpMonitoringResources {
  readonly channels: readonly MonitoringNotificationChannel[];
  readonly dashboard: MonitoringDashboard;
  /** Alert policies by `<watch id>/<alarm>`. */
  readonly policies: Readonly<Record<string, MonitoringAlertPolicy>>;
}

/** Ops Agent GPU metrics (NVML, collected by default when the NVIDIA driver is present). */
export const GCP_GPU_METRICS = {
  utilization: 'agent.googleapis.com/gpu/utilization',
  memoryUsed: 'agent.googleapis.com/gpu/memory/bytes_used',
} as const;

/** A Cloud Monitoring filter string literal. */
const lit = (v: string) => JSON.stringify(v);
/** Hosts of one cluster, by the instance label the cluster puts on them. */
const hostsOf = (clusterName: string) => `resource.type="gce_instance" AND metadata.user_labels.${lit(HOST_METRICS.gcpInstanceLabel)}=${lit(clusterName)}`;
/** A Prometheus metric scraped by the Ops Agent, as Cloud Monitoring names it. */
const prom = (name: string, kind: 'gauge' | 'counter') => `prometheus.googleapis.com/${name}/${kind}`;

/** The filter of an endpoint MetricRef: metric type, its resource/metric labels and extra selection. */
export function refFilter(r: MetricRef): string {
  return [`metric.type=${lit(r.name)}`, ...Object.entries(r.dimensions).map(([k, v]) => `${k}=${lit(v)}`), ...(r.filter ? [r.filter] : [])].join(' AND ');
}

type Tile = Record<string, unknown>;

export function buildGcpMonitoring(scope: Construct, target: GcpTarget, notify: NotifyPlan): MonitoringBackend & { readonly dashboard: string; readonly resources: GcpMonitoringResources } {
  const provider = target.provider;
  const project = target.project;
  target.requireApis('monitoring.googleapis.com');

  const ns = new Construct(scope, 'notifications');
  const channels = buildGcpNotificationChannels(scope, ns, target, notify);
  const channelIds = channels.map((c) => c.id);

  const tiles: Tile[] = [];
  const chart = (title: string, dataSets: Record<string, unknown>[], threshold?: number) =>
    tiles.push({ title, xyChart: { dataSets: dataSets.map((d) => ({ plotType: 'LINE', ...d })), ...(threshold !== undefined ? { thresholds: [{ value: threshold }] } : {}) } });
  const filterSet = (filter: string, perSeriesAligner: string, crossSeriesReducer: string, groupByFields: string[] = []) =>
    ({ timeSeriesQuery: { timeSeriesFilter: { filter, aggregation: { alignmentPeriod: '60s', perSeriesAligner, crossSeriesReducer, groupByFields } } } });
  const promSet = (query: string) => ({ timeSeriesQuery: { prometheusQuery: query } });
  const dashboard = new MonitoringDashboard(scope, 'dashboard', {
    provider, project,
    dashboardJson: Lazy.stringValue({ produce: () => JSON.stringify({ displayName: `mlinfra ${scope.node.path}`, gridLayout: { columns: '2', widgets: tiles } }) }),
  });

  const policies: Record<string, MonitoringAlertPolicy> = {};
  const policy = (watch: Construct, id: string, name: string, description: string, conditions: MonitoringAlertPolicyConditions[], extra: { combiner?: string; severity?: string; logMatch?: boolean } = {}) => {
    const p = new MonitoringAlertPolicy(watch, name, {
      provider, project, displayName: `${scope.node.path}/${id}: ${name}`,
      combiner: extra.combiner ?? 'OR', conditions, notificationChannels: channelIds, severity: extra.severity ?? 'WARNING',
      documentation: { content: `${scope.node.path}: ${description}`, mimeType: 'text/markdown' },
      // Log-match conditions require a notification rate limit.
      alertStrategy: extra.logMatch ? { notificationRateLimit: { period: '300s' }, autoClose: '1800s' } : { autoClose: '1800s' },
    });
    policies[`${id}/${name}`] = p;
    return p;
  };
  const promCondition = (displayName: string, query: string, durationSeconds: number): MonitoringAlertPolicyConditions =>
    ({ displayName, conditionPrometheusQueryLanguage: { query, duration: `${durationSeconds}s`, evaluationInterval: '60s' } });

  return {
    watchCluster(w: WatchedCluster) {
      const watch = new Construct(scope, w.id);
      const t = w.thresholds;
      const name = w.clusterName;
      const queued = `metric.type=${lit(prom(AGENT_METRICS.jobsQueued, 'gauge'))} AND resource.type="prometheus_target" AND metric.labels.${CLUSTER_LABEL}=${lit(name)}`;
      const util = `metric.type=${lit(GCP_GPU_METRICS.utilization)} AND ${hostsOf(name)}`;
      const window = `${t.gpuIdleMinutes * 60}s`;
      // Two conditions, combined with AND: both must hold at once.
      policy(watch, w.id, ALARMS.gpuIdle, `GPUs under ${t.gpuIdlePercent}% busy for ${t.gpuIdleMinutes} min while jobs are queued`, [
        {
          displayName: 'jobs queued',
          conditionThreshold: {
            filter: queued, comparison: 'COMPARISON_GT', thresholdValue: 0, duration: window,
            aggregations: [{ alignmentPeriod: '60s', perSeriesAligner: 'ALIGN_MAX', crossSeriesReducer: 'REDUCE_MAX', groupByFields: [`metric.labels.${CLUSTER_LABEL}`] }],
          },
        },
        {
          displayName: `GPU utilisation under ${t.gpuIdlePercent}%`,
          conditionThreshold: {
            filter: util, comparison: 'COMPARISON_LT', thresholdValue: t.gpuIdlePercent, duration: window,
            aggregations: [{ alignmentPeriod: '60s', perSeriesAligner: 'ALIGN_MEAN', crossSeriesReducer: 'REDUCE_MEAN', groupByFields: [`metadata.user_labels.${lit(HOST_METRICS.gcpInstanceLabel)}`] }],
          },
        },
      ], { combiner: 'AND' });
      // The Ops Agent ships syslog (kernel messages included) by default.
      policy(watch, w.id, ALARMS.xid, 'NVIDIA XID error in a host kernel log', [{
        displayName: 'NVRM: Xid in syslog',
        conditionMatchedLog: {
          filter: `resource.type="gce_instance" AND log_id("syslog") AND textPayload:"NVRM: Xid" AND labels."compute.googleapis.com/resource_name":${lit(`${name}-`)}`,
        },
      }], { severity: 'CRITICAL', logMatch: true });
      policy(watch, w.id, ALARMS.agentDown, `an agent has not answered its scrape for ${t.agentDownMinutes} min`, [
        promCondition('agent scrape down', `${promql.agentUp(name)} == 0`, t.agentDownMinutes * 60),
      ], { severity: 'CRITICAL' });
      policy(watch, w.id, ALARMS.drift, `a feature's PSI is above ${t.driftPsi}`, [
        promCondition(`PSI above ${t.driftPsi}`, promql.drift(name, t.driftPsi), 0),
      ]);

      chart(`${w.id}: GPU utilisation (%)`, [filterSet(util, 'ALIGN_MEAN', 'REDUCE_MEAN', ['metadata.system_labels.name'])], t.gpuIdlePercent);
      chart(`${w.id}: GPU memory used (bytes)`, [filterSet(`metric.type=${lit(GCP_GPU_METRICS.memoryUsed)} AND ${hostsOf(name)}`, 'ALIGN_MEAN', 'REDUCE_SUM')]);
      const sel = matchers({ [CLUSTER_LABEL]: name });
      chart(`${w.id}: jobs queued and running, GPUs busy`, [
        promSet(`max(${AGENT_METRICS.jobsQueued}${sel})`), promSet(`sum(${AGENT_METRICS.jobsRunning}${sel})`), promSet(`sum(${AGENT_METRICS.gpusBusy}${sel})`),
      ]);
      chart(`${w.id}: job failures by class, autostops`, [
        promSet(`sum by (failure_class) (increase(${AGENT_METRICS.jobsFinished}${matchers({ [CLUSTER_LABEL]: name, state: 'failed' })}[1h]))`),
        promSet(`sum(increase(${AGENT_METRICS.autostops}${sel}[1h]))`),
      ]);
      chart(`${w.id}: feature drift (PSI)`, [promSet(`max by (feature) (${HOST_METRICS.driftPsi}${sel})`)], t.driftPsi);
    },

    watchPipeline(w: WatchedPipeline) {
      const watch = new Construct(scope, w.id);
      const p = w.pipeline.pipelineName;
      policy(watch, w.id, ALARMS.pipelineFailed, `a run of pipeline ${p} failed`, [
        promCondition('failed run', promql.pipelineFailed(w.clusterName, p), 0),
      ], { severity: 'CRITICAL' });
      policy(watch, w.id, ALARMS.pipelineStale, `no successful run of pipeline ${p} in ${w.thresholds.maxAgeSeconds} s`, [
        promCondition('no recent success', promql.pipelineStale(w.clusterName, p, w.thresholds.maxAgeSeconds), 600),
      ]);
      chart(`${w.id}: pipeline runs`, [promSet(`sum by (state) (increase(${HOST_METRICS.pipelineRuns}${matchers({ [CLUSTER_LABEL]: w.clusterName, pipeline: p })}[1h]))`)]);
    },

    watchEndpoint(w: WatchedEndpoint) {
      const watch = new Construct(scope, w.id);
      const m = w.endpoint.metrics;
      const t = w.thresholds;
      const duration = `${t.evaluationMinutes * 60}s`;
      const scale = m.latency.unit === 'microseconds' ? 1000 : m.latency.unit === 'seconds' ? 0.001 : 1;
      policy(watch, w.id, ALARMS.p99, `p99 latency above ${t.p99LatencyMs} ms for ${t.evaluationMinutes} min`, [{
        displayName: `p99 latency above ${t.p99LatencyMs} ms`,
        conditionThreshold: {
          filter: refFilter(m.latency), comparison: 'COMPARISON_GT', thresholdValue: t.p99LatencyMs * scale, duration,
          aggregations: [{ alignmentPeriod: '60s', perSeriesAligner: 'ALIGN_PERCENTILE_99', crossSeriesReducer: 'REDUCE_MAX' }],
        },
      }]);
      // A ratio condition: 5xx requests over all requests.
      policy(watch, w.id, ALARMS.errorRate, `more than ${t.errorRatePercent}% of requests failed (5xx) for ${t.evaluationMinutes} min`, [{
        displayName: `5xx above ${t.errorRatePercent}%`,
        conditionThreshold: {
          filter: refFilter(m.errors), comparison: 'COMPARISON_GT', thresholdValue: t.errorRatePercent / 100, duration,
          aggregations: [{ alignmentPeriod: '60s', perSeriesAligner: 'ALIGN_RATE', crossSeriesReducer: 'REDUCE_SUM' }],
          denominatorFilter: refFilter(m.invocations),
          denominatorAggregations: [{ alignmentPeriod: '60s', perSeriesAligner: 'ALIGN_RATE', crossSeriesReducer: 'REDUCE_SUM' }],
        },
      }], { severity: 'CRITICAL' });
      chart(`${w.id}: latency (${m.latency.unit})`, [
        filterSet(refFilter(m.latency), 'ALIGN_PERCENTILE_50', 'REDUCE_MAX'), filterSet(refFilter(m.latency), 'ALIGN_PERCENTILE_99', 'REDUCE_MAX'),
      ], t.p99LatencyMs * scale);
      chart(`${w.id}: requests and 5xx errors (per second)`, [
        filterSet(refFilter(m.invocations), 'ALIGN_RATE', 'REDUCE_SUM'), filterSet(refFilter(m.errors), 'ALIGN_RATE', 'REDUCE_SUM'),
      ]);
    },
    dashboard: dashboard.id,
    resources: { channels, dashboard, policies },
  };
}
