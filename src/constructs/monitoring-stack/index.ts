import { Annotations, TerraformOutput, Token } from 'cdktf';
import { Construct, IConstruct } from 'constructs';
import { Duration } from '../../core/duration';
import { Errors } from '../../core/errors';
import { Notify, NOTIFY_DESTINATIONS } from '../../core/notify';
import { Target, targetKind } from '../../core/targets';
import { TargetKind } from '../../core/accelerators';
import { recordEdge } from '../../core/facts';
import { WatchKind } from '../../contracts/watchable';
import type { IGpuCluster } from '../gpu-cluster';
import type { IModelEndpoint, RollbackAlarm } from '../model-endpoint';
import {
  ClusterThresholds, EndpointThresholds, IWatchablePipeline, MonitoringBackend, NotifyPlan, PipelineThresholds,
} from './plan';
import type { AwsMonitoringResources } from './aws';
import type { GcpMonitoringResources } from './gcp';
import type { KubernetesMonitoringOptions, KubernetesMonitoringResources } from './kubernetes';
import { MONITORING_TARGETS, MonitoringTarget } from './targets';

export { IWatchablePipeline, ALARMS } from './plan';
export type { AwsMonitoringResources } from './aws';
export type { GcpMonitoringResources } from './gcp';
export type { KubernetesMonitoringResources, SmtpSettings } from './kubernetes';

export interface MonitoringStackProps {
  /** Where the alarms, dashboard and (Kubernetes) Prometheus live; watched constructs must be on it. */
  readonly target: Target;
  /**
   * Who is told: `Notify.email/slack/pagerDuty/webhook(...)`, or strings (an email address or an
   * https:// webhook URL). AWS: SNS email subscriptions, and an SNS-triggered delivery function for
   * Slack, PagerDuty and webhooks; GCP: Cloud Monitoring notification channels; Kubernetes:
   * Alertmanager receivers with credentials read from Secrets.
   */
  readonly notify: (Notify | string)[];
  /**
   * Kubernetes: Prometheus, Alertmanager, DCGM exporter and SMTP settings.
   * @default - pinned images, 15 days of retention on an emptyDir, the DCGM exporter on GPU nodes, no SMTP (emails then fail validation)
   */
  readonly kubernetes?: KubernetesMonitoringOptions;
}

/** Options of `watch(cluster)`. */
export interface ClusterWatchOptions {
  /**
   * GPU utilisation (percent) under which a cluster with queued jobs counts as idle.
   * @default 10
   */
  readonly gpuIdlePercent?: number;
  /**
   * How long the GPUs must stay idle with jobs queued before the alarm fires.
   * @default 30
   */
  readonly gpuIdleMinutes?: number;
  /**
   * How long an agent must fail its health check (AWS), its scrape (GCP, Kubernetes) before the alarm fires.
   * @default 15
   */
  readonly agentDownMinutes?: number;
  /**
   * Population stability index of any feature (the agent's `mlinfra_feature_drift_psi`) above which
   * the drift alarm fires. 0.1-0.2 is a moderate shift, above 0.2 a significant one.
   * @default 0.2
   */
  readonly driftPsi?: number;
}

/** Options of `watch(pipeline)`. */
export interface PipelineWatchOptions {
  /**
   * Alarm when no run succeeded within this long. Longer than the schedule's period, at most 7 days
   * (CloudWatch's longest look-back); a weekly schedule is watched over exactly 7 days.
   * @default - the schedule's period plus 2 hours, at most 7 days; 26 hours without a schedule
   */
  readonly maxAge?: Duration;
}

/** Options of `watch(endpoint)`. */
export interface EndpointWatchOptions {
  /**
   * p99 latency, in milliseconds, above which the latency alarm fires.
   * @default 1000
   */
  readonly p99LatencyMs?: number;
  /**
   * Share of requests (percent) answered with a 5xx above which the error alarm fires.
   * @default 5
   */
  readonly errorRatePercent?: number;
  /**
   * Minutes over threshold before either alarm fires.
   * @default 5; for an endpoint with its own rollback alarms (AWS), their window
   */
  readonly evaluationMinutes?: number;
}

const DEFAULTS = {
  gpuIdlePercent: 10, gpuIdleMinutes: 30, agentDownMinutes: 15, driftPsi: 0.2,
  p99LatencyMs: 1000, errorRatePercent: 5, evaluationMinutes: 5,
  maxAgeSlackSeconds: 2 * 3600, maxAgeUnscheduledSeconds: 26 * 3600,
};
const MAX_AGE = { min: 600, max: 7 * 86400 };

/**
 * Alarms, notifications and one dashboard for the constructs it watches: GPU use, agent health and
 * queue, pipeline failures and freshness, endpoint latency and errors, data drift.
 * AWS: CloudWatch alarms + SNS; GCP: Cloud Monitoring alert policies + channels; Kubernetes:
 * Prometheus with alert rules, Alertmanager and the DCGM exporter.
 *
 * @example
 * new MonitoringStack(stack, 'ops', { target: aws, notify: ['ml-oncall@example.com'] })
 *   .watch(cluster)
 *   .watch(pipeline, { maxAge: Duration.hours(26) })
 *   .watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
 */
export class MonitoringStack extends Construct {
  public readonly target: Target;
  public readonly notify: NotifyPlan;
  /** Escape hatches: the resources created on the target (only the one for `target` is set). */
  public readonly aws?: AwsMonitoringResources;
  public readonly gcp?: GcpMonitoringResources;
  public readonly kubernetes?: KubernetesMonitoringResources;
  private readonly backend: MonitoringBackend;
  private readonly targetRules: MonitoringTarget;
  private readonly watched = new Set<unknown>();
  private readonly ids = new Set<string>();

  constructor(scope: Construct, id: string, props: MonitoringStackProps) {
    super(scope, id);
    if (!props) throw Errors.missing(this, 'props', 'an object with target and notify');
    const kind = targetKind(this, 'target', props.target);
    this.target = props.target;
    this.notify = this.planNotify(props);
    this.targetRules = MONITORING_TARGETS[kind];
    const built = this.targetRules.build(this, props.target, this.notify, props.kubernetes);
    // The escape hatch of this target: `aws`, `gcp` or `kubernetes`.
    (this as { -readonly [K in TargetKind]?: unknown })[kind] = built.resources;
    this.backend = built;
    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'dashboard', { value: built.dashboard, description: `${this.node.path}: dashboard` });
  }

  /** Watches a GpuCluster: GPU idle while jobs queue, NVIDIA XID errors, agent down, feature drift. */
  public watch(cluster: IGpuCluster, options?: ClusterWatchOptions): this;
  /** Watches a pipeline: failed runs, and no successful run within `maxAge`. */
  public watch(pipeline: IWatchablePipeline, options?: PipelineWatchOptions): this;
  /** Watches a ModelEndpoint: p99 latency and 5xx error rate. */
  public watch(endpoint: IModelEndpoint, options?: EndpointWatchOptions): this;
  public watch(x: IGpuCluster | IWatchablePipeline | IModelEndpoint, options: ClusterWatchOptions | PipelineWatchOptions | EndpointWatchOptions = {}): this {
    if (x === null || typeof x !== 'object') {
      throw Errors.invalid(this, 'watch', x, 'a GpuCluster, a TrainingPipeline or a ModelEndpoint');
    }
    if (this.watched.has(x)) {
      throw Errors.conflict(this, 'watch', pathOf(x), 'each construct watched once (pass all thresholds in one call)', 'is already watched');
    }
    if (options === null || typeof options !== 'object') throw Errors.invalid(this, 'watch options', options, 'an object of thresholds');
    const kind = (x as { watchKind?: WatchKind }).watchKind;
    const watchers: Record<WatchKind, () => void> = {
      'training-pipeline': () => this.watchPipeline(x as IWatchablePipeline, options as PipelineWatchOptions),
      'model-endpoint': () => this.watchEndpoint(x as IModelEndpoint, options as EndpointWatchOptions),
      'gpu-cluster': () => this.watchCluster(x as IGpuCluster, options as ClusterWatchOptions),
    };
    if (kind === undefined || !Object.prototype.hasOwnProperty.call(watchers, kind)) {
      throw Errors.invalid(this, 'watch', pathOf(x), 'a GpuCluster, a TrainingPipeline or a ModelEndpoint (a construct with a watchKind)', 'is nothing MonitoringStack can watch');
    }
    watchers[kind]();
    if (isConstruct(x)) recordEdge(this, { to: x, kind: 'watches' });
    return this;
  }

  private watchPipeline(p: IWatchablePipeline, options: PipelineWatchOptions): void {
    this.checkTarget('watch(pipeline).cluster.target', p.cluster, p.cluster?.target);
    const clusterName = this.clusterName('watch(pipeline).cluster', p.cluster);
    const thresholds = this.pipelineThresholds(p, options);
    this.watched.add(p);
    this.backend.watchPipeline({ id: this.watchId(p, p.pipelineName), pipeline: p, clusterName, thresholds });
  }

  private watchEndpoint(e: IModelEndpoint, options: EndpointWatchOptions): void {
    this.checkTarget('watch(endpoint).target', e, e.target);
    const own = e.rollbackAlarms;
    // The endpoint's rollback alarms stand in for this watch's where the thresholds are the same (or
    // not given): one alarm per condition, notified here. Their names are plain strings: no cycle.
    const thresholds = this.endpointThresholds({
      ...options,
      p99LatencyMs: options.p99LatencyMs ?? own?.p99Latency.threshold,
      errorRatePercent: options.errorRatePercent ?? own?.errorRate.threshold,
      evaluationMinutes: options.evaluationMinutes ?? own?.errorRate.evaluationMinutes,
    });
    const same = (a: RollbackAlarm | undefined, v: number) => (a && a.threshold === v && a.evaluationMinutes === thresholds.evaluationMinutes ? a : undefined);
    const reuse = own ? { p99Latency: same(own.p99Latency, thresholds.p99LatencyMs), errorRate: same(own.errorRate, thresholds.errorRatePercent) } : undefined;
    this.watched.add(e);
    this.backend.watchEndpoint({ id: this.watchId(e, 'endpoint'), endpoint: e, thresholds, reuse });
  }

  private watchCluster(c: IGpuCluster, options: ClusterWatchOptions): void {
    this.checkTarget('watch(cluster).target', c, c.target);
    this.targetRules.checkCluster?.(this, this.target, c);
    const clusterName = this.clusterName('watch(cluster)', c);
    const thresholds = this.clusterThresholds(options);
    this.watched.add(c);
    this.backend.watchCluster({ id: this.watchId(c, 'cluster'), cluster: c, clusterName, thresholds });
  }

  // ---------------------------------------------------------------------------------- validation

  private planNotify(props: MonitoringStackProps): NotifyPlan {
    const notify = props.notify;
    if (!Array.isArray(notify) || notify.length === 0) throw Errors.invalid(this, 'notify', notify, `a non-empty list of email addresses, https:// webhook URLs or ${NOTIFY_DESTINATIONS}`);
    const destinations = notify.map((n, i) => Notify.of(n, this.node.path, `notify[${i}]`));
    const keys = destinations.map((d) => d.key);
    if (new Set(keys).size !== keys.length) throw Errors.invalid(this, 'notify', keys, 'each destination once', 'repeats a destination');
    const ds = destinations.map((d) => d.destination);
    return {
      emails: ds.flatMap((d) => (d.kind === 'email' ? [d.address] : [])),
      webhooks: ds.flatMap((d) => (d.kind === 'webhook' && !d.authSecret ? [d.url] : [])),
      destinations: ds,
    };
  }

  private checkTarget(prop: string, x: unknown, target: Target | undefined): void {
    const mine = this.target;
    const kind = target?.kind;
    const fail = (value: unknown): never => {
      throw Errors.conflict(this, prop, value, `constructs on this stack's target (${this.targetRules.describe(mine)})`, `is on another target than the monitor (${pathOf(x)})`);
    };
    if (!target || kind !== mine.kind) return fail(kind);
    if (target === mine) return;
    const other = this.targetRules.differs(mine, target);
    if (other !== undefined) fail(other);
  }

  /** The group name host metrics carry. */
  private clusterName(prop: string, c: IGpuCluster | undefined): string {
    const name = c?.groupName;
    if (typeof name !== 'string' || name === '') throw Errors.invalid(this, prop, pathOf(c), 'a GpuCluster (its groupName names the group its hosts report as)', 'has no group name');
    return name;
  }

  private clusterThresholds(o: ClusterWatchOptions): ClusterThresholds {
    return {
      gpuIdlePercent: this.percent('gpuIdlePercent', o.gpuIdlePercent, DEFAULTS.gpuIdlePercent),
      gpuIdleMinutes: this.minutes('gpuIdleMinutes', o.gpuIdleMinutes, DEFAULTS.gpuIdleMinutes),
      agentDownMinutes: this.minutes('agentDownMinutes', o.agentDownMinutes, DEFAULTS.agentDownMinutes),
      driftPsi: this.positive('driftPsi', o.driftPsi, DEFAULTS.driftPsi, 10, 'a PSI above 0 and at most 10 (0.2 is the usual "significant shift")'),
    };
  }

  private pipelineThresholds(p: IWatchablePipeline, o: PipelineWatchOptions): PipelineThresholds {
    if (typeof p.pipelineName !== 'string' || (!Token.isUnresolved(p.pipelineName) && !/^[a-z][a-z0-9-]{0,62}$/.test(p.pipelineName))) {
      throw Errors.invalid(this, 'watch(pipeline).pipelineName', p.pipelineName, 'a pipeline name: lower-case letters, digits and -');
    }
    const period = p.schedulePeriodSeconds;
    if (o.maxAge !== undefined && !(o.maxAge instanceof Duration)) throw Errors.invalid(this, 'maxAge', o.maxAge, 'a Duration, e.g. Duration.hours(26)');
    // A period whose slack would pass CloudWatch's 7-day look-back (weekly schedules) is watched over
    // the whole 7 days: the alarm then needs each run to succeed no later in its week than the last one.
    const longPeriod = period !== undefined && period + DEFAULTS.maxAgeSlackSeconds > MAX_AGE.max && period <= MAX_AGE.max;
    const maxAgeSeconds = o.maxAge?.toSeconds()
      ?? (period !== undefined ? Math.min(period + DEFAULTS.maxAgeSlackSeconds, longPeriod ? MAX_AGE.max : Infinity) : DEFAULTS.maxAgeUnscheduledSeconds);
    const shown = o.maxAge?.toString() ?? `${maxAgeSeconds} seconds (default)`;
    if (maxAgeSeconds < MAX_AGE.min || maxAgeSeconds > MAX_AGE.max) {
      throw Errors.outOfRange(this, 'maxAge', shown, period !== undefined && period > MAX_AGE.max
        ? `from 10 minutes to 7 days (the longest a CloudWatch alarm looks back); a schedule of ${period} seconds cannot be watched for staleness, only for failures`
        : 'from 10 minutes to 7 days (the longest a CloudWatch alarm looks back)');
    }
    if (longPeriod && maxAgeSeconds > period! - DEFAULTS.maxAgeSlackSeconds) {
      Annotations.of(this).addWarning(`maxAge ${shown} on a schedule of ${period} seconds: CloudWatch looks back at most 7 days, so a run that ` +
        'finishes later in its period than the previous one did leaves the pipeline-stale alarm in ALARM until it succeeds');
    } else if (period !== undefined && maxAgeSeconds <= period) {
      throw Errors.conflict(this, 'maxAge', shown, `longer than the schedule's period (${period} seconds), with room for a run to finish`,
        'is not longer than the schedule period, so every run would look stale');
    }
    return { maxAgeSeconds };
  }

  private endpointThresholds(o: EndpointWatchOptions): EndpointThresholds {
    return {
      p99LatencyMs: this.positive('p99LatencyMs', o.p99LatencyMs, DEFAULTS.p99LatencyMs, 3_600_000, 'a latency in milliseconds above 0 (at most 3600000)'),
      errorRatePercent: this.percent('errorRatePercent', o.errorRatePercent, DEFAULTS.errorRatePercent),
      evaluationMinutes: this.minutes('evaluationMinutes', o.evaluationMinutes, DEFAULTS.evaluationMinutes),
    };
  }

  private percent(prop: string, v: number | undefined, d: number): number {
    return this.positive(prop, v, d, 100, 'a percentage above 0 and at most 100');
  }

  private positive(prop: string, v: number | undefined, d: number, max: number, allowed: string): number {
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) throw Errors.outOfRange(this, prop, v, allowed);
    return v;
  }

  private minutes(prop: string, v: number | undefined, d: number): number {
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1440) throw Errors.outOfRange(this, prop, v, 'a whole number of minutes from 1 to 1440');
    return v;
  }

  /** The construct id of a watched construct, unique in this stack. */
  private watchId(x: unknown, fallback: string): string {
    const base = isConstruct(x) ? x.node.id : Token.isUnresolved(fallback) ? 'pipeline' : fallback;
    let id = base;
    for (let n = 2; this.ids.has(id); n++) id = `${base}-${n}`;
    this.ids.add(id);
    return id;
  }
}

function isConstruct(x: unknown): x is IConstruct {
  return typeof x === 'object' && x !== null && 'node' in x && typeof (x as IConstruct).node?.path === 'string';
}

function pathOf(x: unknown): string {
  return isConstruct(x) ? x.node.path : typeof x;
}
