import { TerraformOutput, Token } from 'cdktf';
import { Construct } from 'constructs';
import { ACCELERATOR_NAMES, AcceleratorName, AcceleratorShape, isAcceleratorName, TargetKind } from '../../core/accelerators';
import { ContainerImage } from '../../core/container-image';
import { Errors } from '../../core/errors';
import { Grant, GrantPrincipal, grantOnce, IGrantable } from '../../core/grants';
import { lazyModule } from '../../core/lazy';
import { IModelArtifact, IModelRegistry, isModelRegistry, parseModelUri } from '../../core/model';
import { resourceName } from '../../core/naming';
import { SecretRef } from '../../core/secrets';
import { Target, targetKind } from '../../core/targets';
import { tfLiteral } from '../../core/terraform-literal';
import type { AwsModelEndpointResources } from './aws';
import type { GcpModelEndpointResources } from './gcp';
import type { KubernetesModelEndpointResources } from './kubernetes';
import { Color, EndpointMetrics, ModelEndpointBackend, ModelEndpointPlan, ModelEndpointTargetBackend, ReplicaRange, RollbackAlarms, RollbackThresholds, RolloutSpec } from './plan';
import { checkRegistry } from './registry';
import { checkRollout } from './rollout';

// One backend per target: its rules and resources. Each loads (with its provider package) when a
// construct first uses its target.
const BACKENDS: Record<TargetKind, () => ModelEndpointTargetBackend> = {
  aws: lazyModule(() => (require('./aws') as typeof import('./aws')).AWS_MODEL_ENDPOINT as ModelEndpointTargetBackend),
  gcp: lazyModule(() => (require('./gcp') as typeof import('./gcp')).GCP_MODEL_ENDPOINT as ModelEndpointTargetBackend),
  kubernetes: lazyModule(() => (require('./kubernetes') as typeof import('./kubernetes')).KUBERNETES_MODEL_ENDPOINT as ModelEndpointTargetBackend),
};

export { Color, EndpointMetrics, MetricRef, ReplicaRange, RollbackAlarm, RollbackAlarms, RollbackThresholds, RolloutKind, RolloutSpec } from './plan';
export { Rollout } from './rollout';
export type { AwsModelEndpointResources } from './aws';
export type { GcpModelEndpointResources } from './gcp';
export type { KubernetesModelEndpointResources } from './kubernetes';

/** The version serving before this one, for canary, linear and blue/green rollouts on GCP and Kubernetes. */
export interface PreviousVersion {
  /** Its revision label (GCP: the Cloud Run revision is `<service>-<revision>`). */
  readonly revision: string;
  /**
   * GCP: true once an earlier apply created this revision (`<service>-<revision>`). Cloud Run rejects
   * traffic to a revision that does not exist, so a first deploy cannot split traffic.
   * @default false - GCP deploys all at once (with a synth warning) until the revision is known to exist
   */
  readonly deployed?: boolean;
  /** Kubernetes: the image the stable (or other-colour) pods keep running. Not used on GCP: the revision exists. */
  readonly image?: string;
  /** Kubernetes: the model the stable pods keep serving. @default - the same model as this version */
  readonly model?: IModelArtifact | string;
}

export interface ModelEndpointProps {
  /** Where the endpoint runs. */
  readonly target: Target;
  /**
   * The model. `pipeline.model`: the pipeline's registry; Terraform starts the endpoint with no model and
   * each promotion rolls its version out (the server gets `MLINFRA_MODEL_VERSION`, and the files in
   * /opt/ml/model on AWS, `MLINFRA_MODEL_URI` on GCP, `MODEL_URI` on Kubernetes). A hand-managed model:
   * an artifact or an `s3://` / `gs://` URI, passed to the container as `MODEL_URI` and changed by deploys.
   */
  readonly model: IModelRegistry | IModelArtifact | string;
  /**
   * The serving image: `ContainerImage.fromRegistry('ghcr.io/acme/server:1.0')`, `.fromEcr(...)`,
   * `.fromArtifactRegistry(...)` or a string. Made pullable per target: AWS serves an image from
   * another registry through an ECR pull-through cache rule (SageMaker pulls only from ECR); GCP
   * through an Artifact Registry remote repository; Kubernetes pulls it as is (with the image's
   * `imagePullSecrets`). Tag and `@sha256:` digest are kept. The container must listen on `port`
   * and answer `healthPath`.
   */
  readonly image: string | ContainerImage;
  /** GPU model from the catalog. GCP (Cloud Run) offers L4 only. @default - CPU only */
  readonly accelerator?: AcceleratorName;
  /** GPUs per replica. @default 1 */
  readonly acceleratorsPerReplica?: number;
  /**
   * Replica bounds for autoscaling. `min: 0` scales to zero: GCP only (SageMaker real-time endpoints
   * and the Kubernetes HPA cannot).
   */
  readonly replicas: ReplicaRange;
  /** @default Rollout.allAtOnce() */
  readonly rollout?: RolloutSpec;
  /**
   * AWS: more CloudWatch alarm names that roll a deployment back when they fire, besides the endpoint's
   * own (`rollbackOn`). @default - none
   */
  readonly rollbackAlarms?: string[];
  /**
   * AWS: the endpoint's own rollback alarms (5xx error rate, p99 latency), which SageMaker watches during
   * every deployment and `MonitoringStack.watch(endpoint)` reuses.
   * @default - 5 % errors, 1000 ms p99, over 2 minutes
   */
  readonly rollbackOn?: RollbackThresholds;
  /** Plain environment for the container. Secret-looking names are refused: use `secretEnv`. @default - only MODEL_URI */
  readonly env?: Record<string, string>;
  /**
   * Secrets as environment: GCP Secret Manager (the endpoint's service account gets accessor on each)
   * or Kubernetes Secrets (secretKeyRef). Not on AWS: SageMaker models have no secret environment.
   * @default - none
   */
  readonly secretEnv?: Record<string, SecretRef>;
  /** Port the container listens on. AWS: must be 8080 (the SageMaker serving contract). @default 8080 */
  readonly port?: number;
  /** Readiness/liveness path. AWS: must be /ping (SageMaker's contract). @default '/ping' (one image serves on every target) */
  readonly healthPath?: string;
  /** AWS: SageMaker instance type (`ml.*`). @default - GPU: `ml.` + the catalog's EC2 type; CPU: ml.m5.xlarge */
  readonly instanceType?: string;
  /** AWS: invocations per instance per minute the autoscaler aims at. @default 100 */
  readonly invocationsPerInstanceTarget?: number;
  /** AWS: share of requests captured for drift monitoring (0 turns capture off). @default 20 */
  readonly captureSamplingPercent?: number;
  /** AWS: KMS key ARN the model objects are encrypted with; the execution role gets kms:Decrypt on it. @default - none needed */
  readonly modelKeyArn?: string;
  /** GCP, Kubernetes: vCPU per replica. @default - GCP GPU 8, CPU 2; Kubernetes from the catalog's smallest per-GPU share, CPU 2 */
  readonly cpu?: number;
  /** GCP, Kubernetes: memory per replica. @default - GCP GPU 32, CPU 4; Kubernetes from the catalog, CPU 4 */
  readonly memoryGiB?: number;
  /** GCP: allow unauthenticated calls from the internet (allUsers invoker, all ingress). @default false */
  readonly public?: boolean;
  /**
   * GCP: keep GPU capacity in reserve in other zones, so a zone outage does not stop the service.
   * It draws on the separate, scarcer zonal-redundancy GPU quota and costs more per GPU-second;
   * without it a zone outage can leave the service without GPUs until capacity returns.
   * @default false
   */
  readonly gpuZonalRedundancy?: boolean;
  /**
   * GCP, Kubernetes: the label of the version this program deploys. GCP: the revision is named
   * `<service>-<revision>` and revision names are unique, so change it with every new image, model or setting.
   * @default 'v1'
   */
  readonly revision?: string;
  /** GCP, Kubernetes: the version serving now; canary/linear/blue-green split traffic with it. @default - none: all traffic to this version */
  readonly previous?: PreviousVersion;
  /** GCP, Kubernetes, linear rollout: the step now applied (each re-apply advances one). @default 1 */
  readonly rolloutStep?: number;
  /** GCP, Kubernetes blue/green: the colour this version runs in (`previous` runs in the other). @default 'blue' */
  readonly color?: Color;
  /** GCP, Kubernetes blue/green: the colour that takes traffic. @default - the previous version's colour, or `color` with no previous */
  readonly live?: Color;
  /** Kubernetes: HPA CPU utilisation target. @default 70 */
  readonly cpuTargetPercent?: number;
  /**
   * Kubernetes: an existing service account for the pods (e.g. one bound to cloud credentials that can
   * read the model: the pod downloads it itself).
   * @default - a service account is created, without cloud credentials
   */
  readonly serviceAccountName?: string;
}

/** An endpoint as other constructs see it. */
export interface IModelEndpoint extends IGrantable {
  /** What MonitoringStack watches it as. */
  readonly watchKind: 'model-endpoint';
  readonly target: Target;
  readonly url: string;
  readonly metrics: EndpointMetrics;
  /** AWS: the alarms SageMaker rolls a deployment back on (MonitoringStack.watch reuses them). */
  readonly rollbackAlarms?: RollbackAlarms;
  grantInvoke(grantee: IGrantable): Grant;
}

const DEFAULTS = { port: 8080, healthPath: '/ping', revision: 'v1' };
const MAX_REPLICAS = 1000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)/i;
const REVISION = /^[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?$/;
const IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
const RESERVED_ENV = ['MODEL_URI', 'PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION'];
const COLORS: readonly Color[] = ['blue', 'green'];
/** Targets whose backend takes `replicas.min: 0` (for the error on the others). */
const SCALES_TO_ZERO: readonly TargetKind[] = ['gcp'];

/**
 * Props that only some targets take, and why the others do not: a prop set for a target that does not
 * take it is an error, not silently ignored. The backends check the values.
 */
const TARGET_PROPS: { readonly [P in keyof ModelEndpointProps]?: { readonly on: readonly TargetKind[]; readonly hint?: string } } = {
  instanceType: { on: ['aws'], hint: 'use cpu and memoryGiB elsewhere' },
  invocationsPerInstanceTarget: { on: ['aws'] },
  captureSamplingPercent: { on: ['aws'] },
  modelKeyArn: { on: ['aws'] },
  rollbackAlarms: { on: ['aws'], hint: 'alarm-driven rollback is SageMaker\'s' },
  rollbackOn: { on: ['aws'], hint: 'alarm-driven rollback is SageMaker\'s' },
  cpu: { on: ['gcp', 'kubernetes'], hint: 'use instanceType on aws' },
  memoryGiB: { on: ['gcp', 'kubernetes'], hint: 'use instanceType on aws' },
  secretEnv: { on: ['gcp', 'kubernetes'], hint: 'SageMaker models have no secret environment' },
  public: { on: ['gcp'], hint: 'expose a Kubernetes Service through your own ingress; AWS endpoints are IAM-authenticated' },
  gpuZonalRedundancy: { on: ['gcp'] },
  revision: { on: ['gcp', 'kubernetes'], hint: 'SageMaker keeps the old fleet and shifts traffic itself' },
  previous: { on: ['gcp', 'kubernetes'], hint: 'SageMaker keeps the old fleet and shifts traffic itself' },
  rolloutStep: { on: ['gcp', 'kubernetes'], hint: 'SageMaker keeps the old fleet and shifts traffic itself' },
  live: { on: ['gcp', 'kubernetes'], hint: 'SageMaker keeps the old fleet and shifts traffic itself' },
  color: { on: ['gcp', 'kubernetes'] },
  cpuTargetPercent: { on: ['kubernetes'] },
  serviceAccountName: { on: ['kubernetes'] },
};

/**
 * An autoscaled HTTP model server with a safe rollout (all at once, canary, linear or blue/green).
 * - AWS: SageMaker model, endpoint config and endpoint with deployment guardrails and autoscaling.
 * - GCP: Cloud Run v2 service with a GPU and revision traffic split.
 * - Kubernetes: Deployment(s), Service, HorizontalPodAutoscaler and PodDisruptionBudget.
 *
 * @example
 * new ModelEndpoint(stack, 'ltv-api', {
 *   target: aws, model: ModelArtifact.fromUri('s3://acme-models/ltv/v3/'),
 *   image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0',
 *   accelerator: 'L4', replicas: { min: 1, max: 8 }, rollout: Rollout.canary({ percent: 10 }) });
 */
export class ModelEndpoint extends Construct implements IModelEndpoint {
  public readonly watchKind = 'model-endpoint' as const;
  public readonly target: Target;
  /** HTTPS invoke URL (AWS: SageMaker runtime; GCP: Cloud Run), or the in-cluster Service URL on Kubernetes. */
  public readonly url: string;
  public readonly metrics: EndpointMetrics;
  public readonly rollbackAlarms?: RollbackAlarms;
  /** The serving identity (execution role, service account): grant it what the model server reads. */
  public readonly grantPrincipal: GrantPrincipal;
  public readonly accelerator?: AcceleratorShape;
  public readonly replicas: ReplicaRange;
  public readonly rollout: RolloutSpec;
  public readonly modelUri: string;
  /** Escape hatches: the resources created on the target (only the one for `target` is set). */
  public readonly aws?: AwsModelEndpointResources;
  public readonly gcp?: GcpModelEndpointResources;
  public readonly kubernetes?: KubernetesModelEndpointResources;
  private readonly backend: ModelEndpointBackend;

  constructor(scope: Construct, id: string, props: ModelEndpointProps) {
    super(scope, id);
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target, model, image and replicas');
    const kind = targetKind(this, 'target', props.target);
    const rules = BACKENDS[kind]();
    const plan = this.plan(kind, rules, props);
    this.target = props.target;
    this.replicas = plan.replicas;
    this.rollout = plan.rollout;
    this.modelUri = plan.model.uri;

    // The backend checks its target's rules before it creates anything.
    const b = rules.build(this, props.target, props, plan);
    this.backend = b;
    this.accelerator = b.shape;
    this.aws = b.aws;
    this.gcp = b.gcp;
    this.kubernetes = b.kubernetes;
    this.url = b.url;
    this.metrics = b.metrics;
    this.rollbackAlarms = b.rollbackAlarms;
    this.grantPrincipal = b.grantPrincipal;

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'url', { value: this.url, description: `${this.node.path}: invoke URL` });
  }

  /** Lets `grantee` call the endpoint (AWS: sagemaker:InvokeEndpoint; GCP: run.invoker; Kubernetes: a NetworkPolicy). */
  public grantInvoke(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'invoke', (id) => this.backend.grantInvoke(grantee, id));
  }

  /** Checks the props against the cloud-neutral rules and resolves the plan; throws before any resource exists. */
  private plan(kind: TargetKind, rules: ModelEndpointTargetBackend, props: ModelEndpointProps): ModelEndpointPlan {
    const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
    const literal = (v: unknown) => !Token.isUnresolved(v);
    for (const [prop, t] of Object.entries(TARGET_PROPS) as [keyof ModelEndpointProps, { on: readonly TargetKind[]; hint?: string }][]) {
      if (props[prop] !== undefined && !t.on.includes(kind)) {
        throw Errors.conflict(this, prop, props[prop], `${t.on.join(' or ')} targets only${t.hint ? ` (${t.hint})` : ''}`, `does not apply to ${kind}`);
      }
    }

    // ---- model
    if (props.model === undefined) throw Errors.missing(this, 'model', 'an IModelArtifact (e.g. pipeline.model) or an s3:// / gs:// URI');
    const registry = isModelRegistry(props.model) ? props.model : undefined;
    const modelUri = typeof props.model === 'string' ? props.model : props.model?.uri;
    const model = { ...(registry ? checkRegistry(this, kind, props, registry) : parseModelUri(modelUri, this, 'model')), uri: modelUri as string };
    const want = rules.modelScheme;
    if (want && model.scheme !== want) {
      throw Errors.conflict(this, 'model', modelUri, `a ${want}:// URI on a ${kind} target (copy the model to ${want === 's3' ? 'S3' : 'GCS'} first: cross-cloud model copy is not done here)`,
        `is on ${model.scheme === 's3' ? 'S3' : 'GCS'}, the endpoint on ${kind}`);
    }

    // ---- image: parsed here, made pullable by the backend
    if (props.image === undefined) {
      throw Errors.missing(this, 'image', "a ContainerImage (e.g. ContainerImage.fromRegistry('ghcr.io/acme/server:1.0')) or an image reference string");
    }
    const source = ContainerImage.of(props.image, this.node.path, 'image');

    // ---- accelerator (the backend resolves the shape on its target)
    let accelerator: ModelEndpointPlan['accelerator'];
    if (props.accelerator === undefined) {
      if (props.acceleratorsPerReplica !== undefined) {
        throw Errors.conflict(this, 'acceleratorsPerReplica', props.acceleratorsPerReplica, 'set only with accelerator', 'has no effect without accelerator');
      }
    } else {
      if (!isAcceleratorName(props.accelerator)) throw Errors.unknown(this, 'accelerator', props.accelerator, ACCELERATOR_NAMES);
      accelerator = { name: props.accelerator as AcceleratorName, count: props.acceleratorsPerReplica ?? 1 };
    }

    // ---- replicas: a Terraform value is passed through unchecked
    const replicas = props.replicas;
    if (!replicas || typeof replicas !== 'object') throw Errors.missing(this, 'replicas', 'an object { min, max } of replica counts');
    const floor = rules.minReplicas.count;
    if (literal(replicas.min)) {
      if (!int(replicas.min) || replicas.min < 0 || replicas.min > MAX_REPLICAS) {
        throw Errors.outOfRange(this, 'replicas.min', replicas.min, `an integer from ${floor} to ${MAX_REPLICAS}`);
      }
      if (replicas.min < floor) {
        throw Errors.notOffered(this, 'replicas.min', replicas.min, `scale to zero is not offered on ${kind} (${rules.minReplicas.why})`,
          `${floor} to ${MAX_REPLICAS} (scale to zero: ${SCALES_TO_ZERO.join(', ')} targets)`);
      }
    }
    if (literal(replicas.max) && (!int(replicas.max) || replicas.max < 1 || replicas.max > MAX_REPLICAS)) {
      throw Errors.outOfRange(this, 'replicas.max', replicas.max, `an integer from 1 to ${MAX_REPLICAS}`);
    }
    if (literal(replicas.min) && literal(replicas.max) && replicas.max < replicas.min) {
      throw Errors.conflict(this, 'replicas.max', replicas.max, `an integer >= replicas.min (${replicas.min})`, 'is below replicas.min');
    }

    // ---- port, health, env
    const port = props.port ?? DEFAULTS.port;
    // The port names probes, the Service and the URL at synth: it cannot wait for apply.
    if (!literal(port)) throw Errors.invalid(this, 'port', '(a Terraform value)', 'a literal port number from 1 to 65535', 'is not known at synth time');
    if (!int(port) || port < 1 || port > 65535) throw Errors.outOfRange(this, 'port', props.port, 'an integer port from 1 to 65535');
    const healthPath = props.healthPath ?? DEFAULTS.healthPath;
    if (typeof healthPath !== 'string' || (literal(healthPath) && !/^\/[A-Za-z0-9._~\-/]*$/.test(healthPath))) {
      throw Errors.invalid(this, 'healthPath', props.healthPath, 'a URL path starting with /, e.g. /ping or /healthz');
    }
    const env = props.env ?? {};
    for (const [k, v] of Object.entries(env)) {
      if (!ENV_NAME.test(k)) throw Errors.invalid(this, 'env key', k, 'environment names of letters, digits and _, not starting with a digit');
      if (RESERVED_ENV.includes(k)) throw Errors.invalid(this, 'env key', k, `names other than ${RESERVED_ENV.join(', ')} (set by the endpoint or the platform)`, 'is reserved');
      if (SECRET_NAME.test(k)) throw Errors.invalid(this, `env.${k}`, '(value hidden)', `no secrets in plain env: ${rules.secretHint}`, 'looks like a secret');
      if (typeof v !== 'string') throw Errors.invalid(this, `env.${k}`, v, 'a string');
    }
    const secretEnv = props.secretEnv ?? {};
    for (const k of Object.keys(secretEnv)) {
      if (!ENV_NAME.test(k) || RESERVED_ENV.includes(k) || k in env) throw Errors.invalid(this, 'secretEnv key', k, 'environment names not in env and not reserved');
    }

    // ---- rollout and versions
    const rollout = checkRollout(this, kind, rules, props.rollout ?? { kind: 'all-at-once' });
    const revision = props.revision ?? DEFAULTS.revision;
    if (typeof revision !== 'string' || !REVISION.test(revision)) {
      throw Errors.invalid(this, 'revision', props.revision, 'a label of 1-16 lower-case letters, digits or -, e.g. v2');
    }
    const previous = props.previous;
    if (previous !== undefined) {
      if (rollout.kind === 'all-at-once') {
        throw Errors.conflict(this, 'previous', previous.revision, 'set only with a canary, linear or blueGreen rollout', 'has no effect with an all-at-once rollout');
      }
      if (typeof previous.revision !== 'string' || !REVISION.test(previous.revision)) {
        throw Errors.invalid(this, 'previous.revision', previous.revision, 'a label of 1-16 lower-case letters, digits or -, e.g. v1');
      }
      if (previous.revision === revision) throw Errors.conflict(this, 'previous.revision', previous.revision, `a label other than revision (${revision})`, 'equals revision');
      if (previous.image !== undefined && literal(previous.image) && !IMAGE.test(previous.image)) {
        throw Errors.invalid(this, 'previous.image', previous.image, 'a container image reference such as ghcr.io/acme/server:1.0');
      }
    }
    const prevModel = previous?.model === undefined ? undefined : typeof previous.model === 'string' ? previous.model : previous.model.uri;
    if (prevModel !== undefined) parseModelUri(prevModel, this, 'previous.model');
    const rolloutStep = props.rolloutStep ?? 1;
    if (props.rolloutStep !== undefined && rollout.kind !== 'linear') {
      throw Errors.conflict(this, 'rolloutStep', props.rolloutStep, 'set only with a linear rollout', `has no effect with a ${rollout.kind} rollout`);
    }
    const steps = rollout.kind === 'linear' ? 100 / rollout.percentPerStep! : 1;
    if (!int(rolloutStep) || rolloutStep < 1 || rolloutStep > steps) throw Errors.outOfRange(this, 'rolloutStep', rolloutStep, `an integer from 1 to ${steps}`);
    const color = props.color ?? 'blue';
    if (!COLORS.includes(color)) throw Errors.unknown(this, 'color', color, COLORS);
    if (props.live !== undefined && !COLORS.includes(props.live)) throw Errors.unknown(this, 'live', props.live, COLORS);
    const other: Color = color === 'blue' ? 'green' : 'blue';
    if ((props.color !== undefined || props.live !== undefined) && rollout.kind !== 'blue-green') {
      throw Errors.conflict(this, props.live !== undefined ? 'live' : 'color', props.live ?? props.color, 'set only with Rollout.blueGreen()', `has no effect with a ${rollout.kind} rollout`);
    }
    const live = props.live ?? (previous ? other : color);
    if (!previous && live !== color) {
      throw Errors.conflict(this, 'live', live, `'${color}' (the only colour deployed: without previous, nothing runs in ${other})`, 'names a colour with nothing in it');
    }

    return {
      name: resourceName(this, { maxLength: 40 }), model, source, accelerator, replicas: { min: replicas.min, max: replicas.max }, rollout,
      // Values reach Terraform as templates on every target: `${` and `%{` stay literal.
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, tfLiteral(v)])), secretEnv, port, healthPath, revision,
      previous: previous ? { revision: previous.revision, image: previous.image, modelUri: prevModel, deployed: previous.deployed } : undefined,
      rolloutStep, color, live, registry: registry ? { registry } : undefined,
    };
  }
}
