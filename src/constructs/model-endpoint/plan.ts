/** The cloud-neutral plan a ModelEndpoint hands its backend, and what a backend hands back. */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { AcceleratorName, AcceleratorShape } from '../../core/accelerators';
import { ContainerImage } from '../../core/container-image';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { ParsedModelUri } from '../../core/model';
import { SecretRef } from '../../core/secrets';
import { Target } from '../../core/targets';
import type { AwsModelEndpointResources } from './aws';
import type { GcpModelEndpointResources } from './gcp';
import type { ModelEndpointProps } from './index';
import type { KubernetesModelEndpointResources } from './kubernetes';
import type { RegistryPlan } from './registry';

export type RolloutKind = 'all-at-once' | 'canary' | 'linear' | 'blue-green';

/** A rollout as the user described it (validated by the endpoint, not by the factory). */
export interface RolloutSpec {
  readonly kind: RolloutKind;
  /** canary: share of traffic (AWS: of capacity) the new version gets first. */
  readonly percent?: number;
  /** linear: share added per step. */
  readonly percentPerStep?: number;
  /** linear: minutes between steps. */
  readonly stepMinutes?: number;
  /** canary, blue-green: minutes the new version is watched before the rest of the traffic moves. */
  readonly bakeMinutes?: number;
}

export interface ReplicaRange {
  readonly min: number;
  readonly max: number;
}

export type Color = 'blue' | 'green';

/**
 * The replica counts of a cost fact. A Terraform value is not known at synth: it counts 0 and the
 * fact says so (the note replaces any other).
 */
export function replicaQuantity(r: ReplicaRange): { quantity: ReplicaRange; note?: string; estimate?: boolean } {
  if (!Token.isUnresolved(r.min) && !Token.isUnresolved(r.max)) return { quantity: { min: r.min, max: r.max } };
  const known = (n: number) => (Token.isUnresolved(n) ? 0 : n);
  return { quantity: { min: known(r.min), max: known(r.max) }, estimate: true, note: 'replicas is a Terraform value: not known at synth, counted as 0' };
}

/** The version serving before this one (GCP: a revision that exists; Kubernetes: what the stable pods run). */
export interface PlannedPrevious {
  readonly revision: string;
  readonly image?: string;
  readonly modelUri?: string;
  /** GCP: the revision was created by an earlier apply. */
  readonly deployed?: boolean;
}

/**
 * The cloud-neutral plan: props checked against rules that hold on every target. Each backend reads its
 * own target's props from `props` and checks them itself (see `ModelEndpointTargetBackend`).
 */
export interface ModelEndpointPlan {
  /** Base name for cloud resources: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  readonly model: ParsedModelUri & { readonly uri: string };
  /** The image as given; the backend makes it pullable on its target. */
  readonly source: ContainerImage;
  /** The accelerator asked for (resolved to a shape by the backend); undefined for a CPU-only endpoint. */
  readonly accelerator?: { readonly name: AcceleratorName; readonly count: number };
  readonly replicas: ReplicaRange;
  readonly rollout: RolloutSpec;
  /** Values already escaped for Terraform templates. */
  readonly env: Readonly<Record<string, string>>;
  readonly secretEnv: Readonly<Record<string, SecretRef>>;
  readonly port: number;
  readonly healthPath: string;
  /** Versions, for targets that keep the previous one beside the new one (canary, linear, blue/green). */
  readonly revision: string;
  readonly previous?: PlannedPrevious;
  readonly rolloutStep: number;
  readonly color: Color;
  readonly live: Color;
  /** Set when the model is `pipeline.model`: Terraform starts the endpoint with no model; promotions roll out. */
  readonly registry?: RegistryPlan;
}

/** What a backend built: the endpoint's public surface on its target, and its escape hatch. */
export interface ModelEndpointBackend {
  readonly url: string;
  readonly metrics: EndpointMetrics;
  readonly grantPrincipal: GrantPrincipal;
  /** The catalog shape on this target; undefined for a CPU-only endpoint. */
  readonly shape?: AcceleratorShape;
  grantInvoke(grantee: IGrantable, grantId: string): void;
  readonly rollbackAlarms?: RollbackAlarms;
  /** Only the built target's is set. */
  readonly aws?: AwsModelEndpointResources;
  readonly gcp?: GcpModelEndpointResources;
  readonly kubernetes?: KubernetesModelEndpointResources;
}

/**
 * One target's ModelEndpoint: its rules and its resources. `build` checks every rule of the target
 * (and every prop only it takes) before it creates anything, then creates the resources and records
 * their cost facts.
 */
export interface ModelEndpointTargetBackend<T extends Target = Target> {
  /** The fewest replicas the target keeps, with the reason when it is above 0. */
  readonly minReplicas: { readonly count: number; readonly why?: string };
  /** The model URI scheme the target reads without a cross-cloud copy; undefined: any. */
  readonly modelScheme?: 's3' | 'gs';
  /** Rollout rules tighter than the cloud-neutral ones (checked by the endpoint with the neutral ones). */
  readonly rollout?: {
    readonly maxCanaryPercent?: { readonly value: number; readonly why: string };
    readonly minLinearPercent?: { readonly value: number; readonly why: string };
  };
  /** Where secrets go instead of plain env on this target (for the error on a secret-looking env name). */
  readonly secretHint: string;
  build(endpoint: Construct, target: T, props: ModelEndpointProps, plan: ModelEndpointPlan): ModelEndpointBackend;
}

/** A metric a monitor can watch, named as the target's metrics system names it. */
export interface MetricRef {
  readonly system: 'cloudwatch' | 'cloud-monitoring' | 'prometheus';
  /** CloudWatch namespace, Cloud Monitoring metric type prefix, or undefined for Prometheus. */
  readonly namespace?: string;
  readonly name: string;
  readonly unit: 'microseconds' | 'milliseconds' | 'seconds' | 'count';
  /** CloudWatch dimensions, Cloud Monitoring resource/metric labels, or Prometheus labels that select this endpoint. */
  readonly dimensions: Readonly<Record<string, string>>;
  /** Extra selection: Cloud Monitoring filter text or a PromQL label matcher (e.g. 5xx only). */
  readonly filter?: string;
}

/** The metrics MonitoringStack watches on an endpoint. */
export interface EndpointMetrics {
  /** Latency per request: AWS in microseconds (ModelLatency), GCP in milliseconds, Kubernetes in seconds. */
  readonly latency: MetricRef;
  /** Server errors (5xx). */
  readonly errors: MetricRef;
  /** All requests. */
  readonly invocations: MetricRef;
}

/** Thresholds of an endpoint's own rollback alarms. */
export interface RollbackThresholds {
  /** Share of requests answered with a 5xx. @default 5 */
  readonly errorRatePercent?: number;
  /** p99 model latency in milliseconds. @default 1000 */
  readonly p99LatencyMs?: number;
  /** Minutes over threshold before an alarm fires (a bake should last longer). @default 2 */
  readonly evaluationMinutes?: number;
}

/** One rollback alarm: its name (what SageMaker watches), its ARN and its threshold. */
export interface RollbackAlarm {
  readonly name: string;
  readonly arn: string;
  readonly threshold: number;
  readonly evaluationMinutes: number;
}

/** An endpoint's own rollback alarms. */
export interface RollbackAlarms {
  /** 5xx share of requests, in percent. */
  readonly errorRate: RollbackAlarm;
  /** p99 latency; the threshold in milliseconds. */
  readonly p99Latency: RollbackAlarm;
}
