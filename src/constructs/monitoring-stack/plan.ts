/** What MonitoringStack hands its backends: watched constructs with validated thresholds. */
import type { IGpuCluster } from '../gpu-cluster';
import type { IModelEndpoint, RollbackAlarm } from '../model-endpoint';
import type { NotifyDestination } from '../../core/notify';
import type { IWatchable } from '../../contracts/watchable';

/** A pipeline as the monitor reads it (TrainingPipeline satisfies it). */
export interface IWatchablePipeline extends IWatchable {
  readonly watchKind: 'training-pipeline';
  /** The name the agent labels the pipeline's metrics with (`pipeline="..."`). */
  readonly pipelineName: string;
  readonly cluster: IGpuCluster;
  /** Seconds between scheduled runs, when scheduled. */
  readonly schedulePeriodSeconds?: number;
}

export interface ClusterThresholds {
  /** GPU utilisation (%) under which a cluster with queued jobs counts as idle. */
  readonly gpuIdlePercent: number;
  readonly gpuIdleMinutes: number;
  readonly agentDownMinutes: number;
  /** PSI of any feature above which the drift alarm fires. */
  readonly driftPsi: number;
}

export interface PipelineThresholds {
  readonly maxAgeSeconds: number;
}

export interface EndpointThresholds {
  readonly p99LatencyMs: number;
  readonly errorRatePercent: number;
  readonly evaluationMinutes: number;
}

export interface WatchedCluster {
  /** Stable id of this watch (construct id and names). */
  readonly id: string;
  readonly cluster: IGpuCluster;
  /** The cluster's group name (ASG, MIG, Kubernetes workload): how host metrics name the cluster. */
  readonly clusterName: string;
  readonly thresholds: ClusterThresholds;
}

export interface WatchedPipeline {
  readonly id: string;
  readonly pipeline: IWatchablePipeline;
  readonly clusterName: string;
  readonly thresholds: PipelineThresholds;
}

export interface WatchedEndpoint {
  readonly id: string;
  readonly endpoint: IModelEndpoint;
  readonly thresholds: EndpointThresholds;
  /** The endpoint's own alarms with these thresholds: notified on, not duplicated (AWS). */
  readonly reuse?: { readonly errorRate?: RollbackAlarm; readonly p99Latency?: RollbackAlarm };
}

/** Where alerts go. */
export interface NotifyPlan {
  /** Email addresses (also in destinations). */
  readonly emails: readonly string[];
  /** Webhook URLs without authentication (also in destinations). */
  readonly webhooks: readonly string[];
  /** Every destination, in the order given. */
  readonly destinations: readonly NotifyDestination[];
}

export interface MonitoringBackend {
  /** The dashboard's name or URL, for the output. @default - kubernetes: the dashboard ConfigMap's namespace/name */
  readonly dashboard?: string;
  watchCluster(w: WatchedCluster): void;
  watchPipeline(w: WatchedPipeline): void;
  watchEndpoint(w: WatchedEndpoint): void;
}

/** Alarm names, kept short and the same on every target. */
export const ALARMS = {
  gpuIdle: 'gpu-idle-while-queued',
  xid: 'gpu-xid-errors',
  agentDown: 'agent-down',
  drift: 'feature-drift',
  pipelineFailed: 'pipeline-failed',
  pipelineStale: 'pipeline-stale',
  p99: 'p99-latency',
  errorRate: 'error-rate',
} as const;
