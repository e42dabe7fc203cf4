/**
 * MlPlatformStack: the reference platform (README, "The whole platform in one stack") as one TerraformStack — a feature store, a GPU
 * cluster that reads it, a scheduled pipeline that promotes the model the endpoint serves, and
 * monitoring that watches the cluster, the pipeline and the endpoint.
 */
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { AcceleratorName, TargetKind, TARGET_KINDS } from '../core/accelerators';
import { ContainerImage } from '../core/container-image';
import { Duration } from '../core/duration';
import { Errors } from '../core/errors';
import { Notify } from '../core/notify';
import { AwsTarget, GcpTarget, KubernetesTarget, Target, targetKind } from '../core/targets';
import { FeatureStore, FeatureViewOptions } from '../constructs/feature-store';
import { GpuCluster, NodeRange } from '../constructs/gpu-cluster';
import { ModelEndpoint, ReplicaRange, RolloutSpec } from '../constructs/model-endpoint';
import { EndpointWatchOptions, MonitoringStack } from '../constructs/monitoring-stack';
import type { KubernetesMonitoringOptions } from '../constructs/monitoring-stack/kubernetes';
import { Schedule, Step, StepDefinition, TrainingPipeline } from '../constructs/training-pipeline';

/** Builds the stack's target inside it (targets are constructs, so they live under the stack). */
export type TargetFactory = (stack: Construct) => Target;

export interface MlPlatformStackProps {
  /**
   * Where everything runs: a target kind (the target is created with `region` / `project` /
   * `namespace` / `tags`) or a factory that builds a target under the stack.
   */
  readonly target: TargetKind | TargetFactory;
  /** AWS / GCP region. @default - `us-east-1` on aws, `us-central1` on gcp */
  readonly region?: string;
  /** GCP project id. Required with `target: 'gcp'`. */
  readonly project?: string;
  /** Kubernetes namespace (created). @default 'ml-platform' */
  readonly namespace?: string;
  /** AWS tags, GCP labels or Kubernetes labels on everything. @default - only the target's own */
  readonly tags?: Record<string, string>;

  /** GPU model of the training cluster. @default 'A100-80GB' */
  readonly trainingAccelerator?: AcceleratorName;
  /** GPUs per training node. @default 8 */
  readonly trainingAcceleratorsPerNode?: number;
  /** Training node bounds; a schedule needs `min: 0` on aws and gcp. @default { min: 0, max: 4 } */
  readonly trainingNodes?: NodeRange;
  /** Train on spot capacity. @default - true on aws and gcp; false on kubernetes (spot needs GKE node labels) */
  readonly spot?: boolean;
  /** @default 30 */
  readonly idleStopMinutes?: number;
  /** Passed to the GpuCluster. @default - this package's dist/agent */
  readonly agentBundleDir?: string;

  /** Feature views of the store. @default - none: add them with `stack.features.addFeatureView` */
  readonly featureViews?: FeatureViewOptions[];

  /** Pipeline steps. @default - featurize, train (2 retries), promote on val_auc */
  readonly steps?: StepDefinition[];
  /** @default Schedule.cron('0 3 * * *') */
  readonly schedule?: Schedule;
  /** Freshness alarm of the pipeline. @default Duration.hours(26) */
  readonly pipelineMaxAge?: Duration;

  /**
   * The serving image: `ContainerImage.fromRegistry('ghcr.io/acme/ltv-server:2.0')` (any supported
   * registry, made pullable on the target: an ECR pull-through cache rule on aws, an Artifact
   * Registry remote repository on gcp, as is on kubernetes), `.fromEcr(...)`,
   * `.fromArtifactRegistry(...)`, or a reference string.
   */
  readonly servingImage: string | ContainerImage;
  /** GPU model of the endpoint. GCP Cloud Run offers L4 only. @default 'L4' */
  readonly servingAccelerator?: AcceleratorName;
  /** @default - { min: 1, max: 8 }; { min: 0, max: 8 } on gcp (Cloud Run scales to zero) */
  readonly servingReplicas?: ReplicaRange;
  /** @default Rollout.allAtOnce() */
  readonly rollout?: RolloutSpec;
  /**
   * A hand-managed model the endpoint serves (`s3://` on aws, `gs://` on gcp, either on kubernetes).
   * Required on kubernetes without an `artifactStore` (the registry is then on the agent pods' volume).
   * @default - `pipeline.model`: the endpoint starts with no model and each promotion rolls out
   */
  readonly model?: string;

  /**
   * Who is told: `Notify.email(...)`, `Notify.slack({ webhookSecret })`, `Notify.pagerDuty({ routingKeySecret })`,
   * `Notify.webhook(url, { authSecret? })`, or strings (an email address or an https:// webhook URL).
   */
  readonly notify: (Notify | string)[];
  /** Endpoint alarm thresholds. @default - the MonitoringStack defaults */
  readonly endpointAlarms?: EndpointWatchOptions;
  /** Kubernetes: Prometheus/Alertmanager settings (SMTP is needed for email receivers). @default - MonitoringStack's */
  readonly kubernetesMonitoring?: KubernetesMonitoringOptions;
}

const DEFAULT_STEPS = (): StepDefinition[] => [
  Step.run('featurize', ['python3', 'featurize.py'], { gpus: 0 }),
  Step.run('train', ['python3', 'train.py'], { after: ['featurize'], retries: 2 }),
  Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
];

/**
 * All five constructs on one target, wired: features -> cluster -> pipeline -> endpoint, all watched.
 *
 * @example
 * new MlPlatformStack(app, 'platform-aws', {
 *   target: (stack) => new AwsTarget(stack, 'aws', { region: 'us-east-1' }),
 *   servingImage: ContainerImage.fromRegistry('ghcr.io/acme/ltv-server:2.0', { awsCredentialSecret: 'ecr-pullthroughcache/ghcr' }),
 *   notify: [Notify.email('ml-oncall@example.com'), Notify.slack({ webhookSecret: 'ml-slack-webhook' })] });
 */
export class MlPlatformStack extends TerraformStack {
  public readonly target: Target;
  public readonly features: FeatureStore;
  public readonly cluster: GpuCluster;
  public readonly pipeline: TrainingPipeline;
  public readonly endpoint: ModelEndpoint;
  public readonly monitoring: MonitoringStack;

  constructor(scope: Construct, id: string, props: MlPlatformStackProps) {
    super(scope, id);
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target, servingImage and notify');
    this.target = this.makeTarget(props);
    const kind = targetKind(this, 'target', this.target);
    if (kind === 'kubernetes' && props.model === undefined && !(this.target as KubernetesTarget).artifactStore) {
      throw Errors.missing(this, 'model', "an s3:// or gs:// model URI on kubernetes without an artifactStore (the pipeline's registry is then on the agent pods' volume); "
        + 'or a target factory building a KubernetesTarget with artifactStore, so the endpoint serves pipeline.model');
    }

    this.features = new FeatureStore(this, 'features', { target: this.target });
    for (const v of props.featureViews ?? []) this.features.addFeatureView(v);

    this.cluster = new GpuCluster(this, 'train', {
      target: this.target,
      accelerator: props.trainingAccelerator ?? 'A100-80GB',
      acceleratorsPerNode: props.trainingAcceleratorsPerNode ?? 8,
      nodes: props.trainingNodes ?? { min: 0, max: 4 },
      spot: props.spot ?? kind !== 'kubernetes',
      idleStopMinutes: props.idleStopMinutes ?? 30,
      agentBundleDir: props.agentBundleDir,
    });
    // Training and featurizing read features; the store's grant is on its exact tables and bucket.
    this.features.grantRead(this.cluster);

    this.pipeline = new TrainingPipeline(this, 'pipeline', {
      cluster: this.cluster,
      schedule: props.schedule ?? Schedule.cron('0 3 * * *'),
      steps: props.steps ?? DEFAULT_STEPS(),
    });

    // The endpoint serves what the promote step writes (its backend grants itself read on that prefix).
    this.endpoint = new ModelEndpoint(this, 'endpoint', {
      target: this.target,
      model: props.model ?? this.pipeline.model,
      image: props.servingImage,
      accelerator: props.servingAccelerator ?? 'L4',
      replicas: props.servingReplicas ?? { min: kind === 'gcp' ? 0 : 1, max: 8 },
      rollout: props.rollout,
      // AWS: the endpoint's rollback alarms use the watch's thresholds, so the watch reuses them.
      rollbackOn: kind === 'aws' ? props.endpointAlarms : undefined,
    });

    this.monitoring = new MonitoringStack(this, 'ops', { target: this.target, notify: props.notify, kubernetes: props.kubernetesMonitoring })
      .watch(this.cluster)
      .watch(this.pipeline, { maxAge: props.pipelineMaxAge ?? Duration.hours(26) })
      .watch(this.endpoint, props.endpointAlarms ?? {});
  }

  private makeTarget(props: MlPlatformStackProps): Target {
    const t = props.target;
    if (typeof t === 'function') {
      const target = t(this);
      targetKind(this, 'target', target);
      if (TerraformStack.of(target) !== this) {
        throw Errors.conflict(this, 'target', target.node.path, 'a factory that builds the target under the stack it is given', 'returned a target in another stack');
      }
      return target;
    }
    const only = (prop: 'region' | 'project' | 'namespace', kinds: TargetKind[]) => {
      if (props[prop] !== undefined && !kinds.includes(t)) {
        throw Errors.conflict(this, prop, props[prop], `${kinds.join(' or ')} targets only`, `does not apply to ${t}`);
      }
    };
    only('region', ['aws', 'gcp']);
    only('project', ['gcp']);
    only('namespace', ['kubernetes']);
    switch (t) {
      case 'aws':
        return new AwsTarget(this, 'aws', { region: props.region ?? 'us-east-1', tags: props.tags });
      case 'gcp':
        if (props.project === undefined) throw Errors.missing(this, 'project', 'a GCP project id with target: gcp');
        return new GcpTarget(this, 'gcp', { project: props.project, region: props.region ?? 'us-central1', labels: props.tags });
      case 'kubernetes':
        return new KubernetesTarget(this, 'k8s', { namespace: props.namespace ?? 'ml-platform', labels: props.tags });
      default:
        throw Errors.unknown(this, 'target', t, [...TARGET_KINDS, 'a function (stack) => Target']);
    }
  }
}
