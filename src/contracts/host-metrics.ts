/**
 * What GPU hosts publish and under which names: the contract between the agent (its Prometheus
 * registry, src/runtime-agent/metrics.ts), the hosts' start-up script (gpu-cluster/bootstrap.ts) and
 * MonitoringStack's alarms. test/contracts/host-metrics.test.ts ties every name here, and every
 * `mlinfra_*` name the monitoring backends synthesize, to the agent's registry.
 */

/** Series the agent exports on /metrics that hosts publish off-host and monitors read. */
export const AGENT_METRICS = {
  jobsQueued: 'mlinfra_agent_jobs_queued',
  jobsRunning: 'mlinfra_agent_jobs_running',
  gpusBusy: 'mlinfra_agent_gpus_busy',
  gpus: 'mlinfra_agent_gpus',
  jobsFinished: 'mlinfra_agent_jobs_finished_total',
  autostops: 'mlinfra_agent_autostop_total',
  pipelineRuns: 'mlinfra_pipeline_runs_total',
  pipelineLastSuccess: 'mlinfra_pipeline_last_success_timestamp_seconds',
  driftPsi: 'mlinfra_feature_drift_psi',
} as const;

/**
 * Where hosts publish and how a cluster is named on its metrics. A cluster is named by its group
 * name (ASG / MIG): `IGpuCluster.groupName`.
 */
export const HOST_METRICS = {
  /** Port of the agent's token-free /metrics on 127.0.0.1 (`serve --metrics-local-port`). */
  localPort: 9464,
  /** Prometheus job name of the agent scrape on every target. */
  agentJob: 'mlinfra-agent',
  /** AWS: CloudWatch namespaces (the host role may put metrics only into these). */
  awsGpuNamespace: 'MLInfra/GPU',
  awsAgentNamespace: 'MLInfra/Agent',
  /** AWS: the dimension naming the cluster on every host metric. */
  awsClusterDimension: 'ClusterName',
  /** GCP: label naming the cluster on scraped Prometheus metrics (`cluster` is taken by prometheus_target). */
  gcpClusterLabel: 'mlinfra_cluster',
  /**
   * Kubernetes: the gateway's series of its cluster's live job pods (`job_pod`, `job_id` labels, value 1),
   * selected by the cluster label it puts on them; PromQL joins DCGM's per-pod GPU series to a cluster through it.
   */
  gatewayJobPods: 'mlinfra_gateway_job_pod_info',
  /** GCP: the Ops Agent's Prometheus receiver of the agent scrape (a config name, not a series). */
  gcpReceiver: 'mlinfra_agent',
  /** GCP: instance label naming the cluster (Ops Agent GPU metrics are filtered on it). */
  gcpInstanceLabel: 'mlinfra-cluster',
  /** Agent metrics published off-host: gauges and counters the agent exports on /metrics. */
  agentGauges: [AGENT_METRICS.jobsQueued, AGENT_METRICS.jobsRunning, AGENT_METRICS.gpusBusy, AGENT_METRICS.gpus],
  agentCounters: [AGENT_METRICS.jobsFinished, AGENT_METRICS.autostops],
  pipelineRuns: AGENT_METRICS.pipelineRuns,
  /** AWS: published by the start-up script (value 1) when the CloudWatch agent could not be set up; not an agent series. */
  hostMetricsFailed: 'mlinfra_host_metrics_agent_failed',
  pipelineLastSuccess: AGENT_METRICS.pipelineLastSuccess,
  driftPsi: AGENT_METRICS.driftPsi,
} as const;

/** AWS log groups a cluster's hosts write to (created by MonitoringStack, which also grants the writes). */
export function awsHostLogGroups(clusterName: string): { kernel: string; prometheus: string } {
  return { kernel: `/mlinfra/${clusterName}/kernel`, prometheus: `/mlinfra/${clusterName}/prometheus` };
}
