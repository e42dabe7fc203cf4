/** The cloud-neutral plan a ModelEndpoint hands its backend, and what a backend hands back. */
import { AcceleratorShape } from '../../core/accelerators';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { ParsedModelUri } from '../../core/model';
import { SecretRef } from '../../core/secrets';

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

/** The version serving before this one (GCP: a revision that exists; Kubernetes: what the stable pods run). */
export interface PlannedPrevious {
  readonly revision: string;
  readonly image?: string;
  readonly modelUri?: string;
  /** GCP: the revision was created by an earlier apply. */
  readonly deployed?: boolean;
}

export interface ModelEndpointPlan {
  /** Base name for cloud resources: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  readonly model: ParsedModelUri & { readonly uri: string };
  /** The URI the target pulls (AWS: ECR, mirrored when from another registry; GCP: Artifact Registry when mirrored). */
  readonly image: string;
  /** AWS: the pull-through cache repository the execution role may import into. */
  readonly imageCacheRepositoryArn?: string;
  /** Kubernetes: docker-registry Secrets the pods pull with. */
  readonly imagePullSecrets: readonly string[];
  /** Undefined for a CPU-only endpoint. */
  readonly shape?: AcceleratorShape;
  readonly replicas: ReplicaRange;
  readonly rollout: RolloutSpec;
  readonly rollbackAlarms: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly secretEnv: Readonly<Record<string, SecretRef>>;
  readonly port: number;
  readonly healthPath: string;
  // AWS
  readonly instanceType?: string;
  readonly invocationsPerInstanceTarget: number;
  readonly captureSamplingPercent: number;
  readonly modelKeyArn?: string;
  // GCP and Kubernetes
  readonly cpu?: number;
  readonly memoryGiB?: number;
  readonly public: boolean;
  readonly gpuZonalRedundancy: boolean;
  readonly revision: string;
  readonly previous?: PlannedPrevious;
  readonly rolloutStep: number;
  readonly color: Color;
  readonly live: Color;
  readonly cpuTargetPercent: number;
  readonly serviceAccountName?: string;
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

export interface ModelEndpointBackend {
  readonly url: string;
  readonly metrics: EndpointMetrics;
  readonly grantPrincipal: GrantPrincipal;
  grantInvoke(grantee: IGrantable, grantId: string): void;
}
