import { TerraformOutput, Token } from 'cdktf';
import { Construct } from 'constructs';
import { ACCELERATOR_NAMES, AcceleratorName, AcceleratorShape, isAcceleratorName, resolveAccelerator } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { tfLiteral } from '../../core/terraform-literal';
import { recordGrant } from '../../core/graph';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { IModelArtifact, parseModelUri } from '../../core/model';
import { resourceName } from '../../core/naming';
import { SecretRef } from '../../core/secrets';
import { AwsTarget, GcpTarget, KubernetesTarget, Target, targetKind } from '../../core/targets';
import { Color, EndpointMetrics, ModelEndpointBackend, ModelEndpointPlan, ReplicaRange, RolloutSpec } from './plan';
import type { AwsModelEndpointResources } from './aws';
import type { AwsImagePlan } from './aws-image';
import type { GcpImagePlan } from './gcp-image';
import { ContainerImage } from '../../core/container-image';
import type { GcpModelEndpointResources } from './gcp';
import type { KubernetesModelEndpointResources } from './kubernetes';
import { lazyFunction, lazyModule } from '../../core/lazy';

// Backends (and their provider packages) load when a construct first uses their target.
const buildAwsModelEndpoint = lazyFunction(() => (require('./aws') as typeof import('./aws')).buildAwsModelEndpoint);
const buildGcpModelEndpoint = lazyFunction(() => (require('./gcp') as typeof import('./gcp')).buildGcpModelEndpoint);
const gcpBackend = lazyModule(() => require('./gcp') as typeof import('./gcp'));
const awsImage = lazyModule(() => require('./aws-image') as typeof import('./aws-image'));
const gcpImage = lazyModule(() => require('./gcp-image') as typeof import('./gcp-image'));
const buildKubernetesModelEndpoint = lazyFunction(() => (require('./kubernetes') as typeof import('./kubernetes')).buildKubernetesModelEndpoint);

export { Color, EndpointMetrics, MetricRef, ReplicaRange, RolloutKind, RolloutSpec } from './plan';
export type { AwsModelEndpointResources } from './aws';
export type { GcpModelEndpointResources } from './gcp';
export type { KubernetesModelEndpointResources } from './kubernetes';

/** How a new version replaces the serving one. Checked by the endpoint, against its target. */
export class Rollout {
  /** Replace everything at once (AWS: SageMaker's blue/green fleet swap with no bake; Kubernetes: a full surge). */
  public static allAtOnce(): RolloutSpec {
    return { kind: 'all-at-once' };
  }
  /** `percent` (1-99, AWS at most 50) of traffic to the new version first, the rest after `bakeMinutes` (default 10). */
  public static canary(opts: { readonly percent: number; readonly bakeMinutes?: number }): RolloutSpec {
    return { kind: 'canary', percent: opts?.percent, bakeMinutes: opts?.bakeMinutes };
  }
  /** `percentPerStep` more traffic every `stepMinutes`; the step must divide 100 (5, 10, 20, 25, 50 ...). */
  public static linear(opts: { readonly percentPerStep: number; readonly stepMinutes: number }): RolloutSpec {
    return { kind: 'linear', percentPerStep: opts?.percentPerStep, stepMinutes: opts?.stepMinutes };
  }
  /** A full second fleet; traffic moves in one step, the old fleet stays `bakeMinutes` (default 10) for instant rollback. */
  public static blueGreen(opts: { readonly bakeMinutes?: number } = {}): RolloutSpec {
    return { kind: 'blue-green', bakeMinutes: opts?.bakeMinutes };
  }

  private constructor() {}
}

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
  /** The model: an artifact (e.g. `pipeline.model`) or an `s3://` / `gs://` URI, passed to the container as `MODEL_URI`. */
  readonly model: IModelArtifact | string;
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
  /** AWS: CloudWatch alarm names that roll a deployment back when they fire. @default - none */
  readonly rollbackAlarms?: string[];
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
  readonly target: Target;
  readonly url: string;
  readonly metrics: EndpointMetrics;
  grantInvoke(grantee: IGrantable): void;
}

const DEFAULTS = { port: 8080, healthPath: '/ping', invocationsPerInstanceTarget: 100, captureSamplingPercent: 20, revision: 'v1', cpuTargetPercent: 70, bakeMinutes: 10 };
const MAX_REPLICAS = 1000;
const IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)/i;
const REVISION = /^[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?$/;
const RESERVED_ENV = ['MODEL_URI', 'PORT', 'K_SERVICE', 'K_REVISION', 'K_CONFIGURATION'];
const COLORS: readonly Color[] = ['blue', 'green'];
const CLOUD_RUN_CPUS = [1, 2, 4, 6, 8];

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
  public readonly target: Target;
  /** HTTPS invoke URL (AWS: SageMaker runtime; GCP: Cloud Run), or the in-cluster Service URL on Kubernetes. */
  public readonly url: string;
  public readonly metrics: EndpointMetrics;
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
  private grants = 0;
  private imageSource?: ContainerImage;
  private awsImagePlan?: AwsImagePlan;
  private gcpImagePlan?: GcpImagePlan;

  constructor(scope: Construct, id: string, props: ModelEndpointProps) {
    super(scope, id);
    let plan = this.plan(props);
    this.target = props.target;
    this.accelerator = plan.shape;
    this.replicas = plan.replicas;
    this.rollout = plan.rollout;
    this.modelUri = plan.model.uri;

    const t = props.target;
    let backend: ModelEndpointBackend;
    if (t instanceof AwsTarget) {
      const img = awsImage().buildAwsImage(this, t, this.imageSource!, this.awsImagePlan!);
      plan = { ...plan, image: img.uri, imageCacheRepositoryArn: img.cacheRepositoryArn };
      const b = buildAwsModelEndpoint(this, t, plan);
      this.aws = b.resources;
      backend = b;
    } else if (t instanceof GcpTarget) {
      plan = { ...plan, image: gcpImage().buildGcpImage(this, t, this.imageSource!, this.gcpImagePlan!) };
      const b = buildGcpModelEndpoint(this, t, plan);
      this.gcp = b.resources;
      backend = b;
    } else {
      const b = buildKubernetesModelEndpoint(this, t as KubernetesTarget, plan);
      this.kubernetes = b.resources;
      backend = b;
    }
    this.backend = backend;
    this.url = backend.url;
    this.metrics = backend.metrics;
    this.grantPrincipal = backend.grantPrincipal;

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'url', { value: this.url, description: `${this.node.path}: invoke URL` });
  }

  /** Lets `grantee` call the endpoint (AWS: sagemaker:InvokeEndpoint; GCP: run.invoker; Kubernetes: a NetworkPolicy). */
  public grantInvoke(grantee: IGrantable): void {
    recordGrant(this, grantee, 'invoke');
    this.grants += 1;
    this.backend.grantInvoke(grantee, `${resourceName(this, { maxLength: 40 })}-invoke-${this.grants}`);
  }

  /** Validates props and resolves the cloud-neutral plan; throws before any resource exists. */
  private plan(props: ModelEndpointProps): ModelEndpointPlan {
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target, model, image and replicas');
    const kind = targetKind(this, 'target', props.target);
    const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
    const only = (prop: keyof ModelEndpointProps, kinds: readonly string[], hint: string) => {
      if (props[prop] !== undefined && !kinds.includes(kind)) {
        throw Errors.conflict(this, prop, props[prop], `${kinds.join(' or ')} targets only${hint ? ` (${hint})` : ''}`, `does not apply to ${kind}`);
      }
    };

    // ---- model
    if (props.model === undefined) throw Errors.missing(this, 'model', 'an IModelArtifact (e.g. pipeline.model) or an s3:// / gs:// URI');
    const modelUri = typeof props.model === 'string' ? props.model : props.model?.uri;
    const model = { ...parseModelUri(modelUri, this, 'model'), uri: modelUri as string };
    const wantScheme = kind === 'aws' ? 's3' : kind === 'gcp' ? 'gs' : undefined;
    if (wantScheme && model.scheme !== wantScheme) {
      throw Errors.conflict(this, 'model', modelUri, `a ${wantScheme}:// URI on a ${kind} target (copy the model to ${kind === 'aws' ? 'S3' : 'GCS'} first: cross-cloud model copy is not done here)`,
        `is on ${model.scheme === 's3' ? 'S3' : 'GCS'}, the endpoint on ${kind}`);
    }

    // ---- image: parsed here, made pullable per target (mirror rules are created by the constructor)
    if (props.image === undefined) {
      throw Errors.missing(this, 'image', "a ContainerImage (e.g. ContainerImage.fromRegistry('ghcr.io/acme/server:1.0')) or an image reference string");
    }
    const source = ContainerImage.of(props.image, this.node.path, 'image');
    if (kind !== 'kubernetes' && source.options.imagePullSecrets !== undefined) {
      throw Errors.conflict(this, 'image.imagePullSecrets', source.options.imagePullSecrets, 'kubernetes targets only', `does not apply to ${kind}`);
    }
    this.imageSource = source;
    this.awsImagePlan = kind === 'aws' ? awsImage().planAwsImage(this, source) : undefined;
    this.gcpImagePlan = kind === 'gcp' ? gcpImage().planGcpImage(this, source) : undefined;
    const image = source.reference;

    // ---- accelerator and shape
    let shape: AcceleratorShape | undefined;
    if (props.accelerator === undefined) {
      if (props.acceleratorsPerReplica !== undefined) {
        throw Errors.conflict(this, 'acceleratorsPerReplica', props.acceleratorsPerReplica, 'set only with accelerator', 'has no effect without accelerator');
      }
    } else {
      if (!isAcceleratorName(props.accelerator)) throw Errors.unknown(this, 'accelerator', props.accelerator, ACCELERATOR_NAMES);
      const count = props.acceleratorsPerReplica ?? 1;
      if (kind === 'gcp') {
        // Cloud Run offers one L4 per instance; the catalog's Compute Engine shapes do not apply.
        if (props.accelerator !== gcpBackend().CLOUD_RUN_ACCELERATOR) {
          throw Errors.notOffered(this, 'accelerator', props.accelerator, `${props.accelerator} is not offered on gcp Cloud Run (Terraform cannot deploy to Vertex endpoints: terraform-provider-google#15303)`, gcpBackend().CLOUD_RUN_ACCELERATOR);
        }
        if (count !== 1) {
          throw Errors.notOffered(this, 'acceleratorsPerReplica', count, `${props.accelerator} x${count} is not offered on gcp Cloud Run (one GPU per instance)`, '1');
        }
      }
      shape = resolveAccelerator(kind, props.accelerator, count, {
        where: this.node.path, countProp: 'acceleratorsPerReplica',
        explicitType: kind === 'aws' && props.instanceType !== undefined ? props.instanceType.replace(/^ml\./, '') : undefined,
      });
    }
    only('instanceType', ['aws'], 'use cpu and memoryGiB elsewhere');
    if (props.instanceType !== undefined && !/^ml\.[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(props.instanceType)) {
      throw Errors.invalid(this, 'instanceType', props.instanceType, 'a SageMaker instance type such as ml.g6.xlarge or ml.m5.xlarge');
    }
    only('cpu', ['gcp', 'kubernetes'], 'use instanceType on aws');
    only('memoryGiB', ['gcp', 'kubernetes'], 'use instanceType on aws');
    if (props.cpu !== undefined) {
      const ok = kind === 'gcp' ? CLOUD_RUN_CPUS.includes(props.cpu) : typeof props.cpu === 'number' && props.cpu > 0 && props.cpu <= 256;
      if (!ok) throw Errors.outOfRange(this, 'cpu', props.cpu, kind === 'gcp' ? `one of ${CLOUD_RUN_CPUS.join(', ')} vCPU (Cloud Run)` : 'a number of vCPU from 0.1 to 256');
    }
    if (props.memoryGiB !== undefined) {
      const ok = int(props.memoryGiB) && props.memoryGiB >= 1 && props.memoryGiB <= (kind === 'gcp' ? 32 : 4096);
      if (!ok) throw Errors.outOfRange(this, 'memoryGiB', props.memoryGiB, kind === 'gcp' ? 'an integer from 1 to 32 GiB (Cloud Run)' : 'an integer from 1 to 4096 GiB');
    }
    if (kind === 'gcp' && shape) {
      // Cloud Run GPU instances need at least 4 vCPU and 16 GiB.
      if (props.cpu !== undefined && props.cpu < 4) throw Errors.outOfRange(this, 'cpu', props.cpu, 'at least 4 vCPU with a GPU on Cloud Run: 4, 6 or 8');
      if (props.memoryGiB !== undefined && props.memoryGiB < 16) throw Errors.outOfRange(this, 'memoryGiB', props.memoryGiB, 'at least 16 GiB with a GPU on Cloud Run, up to 32');
    }

    // ---- replicas
    const replicas = props.replicas;
    if (!replicas || typeof replicas !== 'object') throw Errors.missing(this, 'replicas', 'an object { min, max } of replica counts');
    const floor = kind === 'gcp' ? 0 : 1;
    if (!int(replicas.min) || replicas.min < 0 || replicas.min > MAX_REPLICAS) {
      throw Errors.outOfRange(this, 'replicas.min', replicas.min, `an integer from ${floor} to ${MAX_REPLICAS}`);
    }
    if (replicas.min < floor) {
      throw Errors.notOffered(this, 'replicas.min', replicas.min, kind === 'aws'
        ? 'scale to zero is not offered on aws (SageMaker real-time endpoints keep at least one instance)'
        : 'scale to zero is not offered on kubernetes (the HorizontalPodAutoscaler keeps at least one pod)', `1 to ${MAX_REPLICAS} (scale to zero: gcp targets)`);
    }
    if (!int(replicas.max) || replicas.max < 1 || replicas.max > MAX_REPLICAS) {
      throw Errors.outOfRange(this, 'replicas.max', replicas.max, `an integer from 1 to ${MAX_REPLICAS}`);
    }
    if (replicas.max < replicas.min) {
      throw Errors.conflict(this, 'replicas.max', replicas.max, `an integer >= replicas.min (${replicas.min})`, 'is below replicas.min');
    }

    // ---- port, health, env
    const port = props.port ?? DEFAULTS.port;
    if (!int(port) || port < 1 || port > 65535) throw Errors.outOfRange(this, 'port', props.port, 'an integer port from 1 to 65535');
    if (kind === 'aws' && port !== 8080) throw Errors.conflict(this, 'port', port, '8080 on aws (SageMaker sends requests to port 8080)', 'cannot be changed on SageMaker');
    const healthPath = props.healthPath ?? DEFAULTS.healthPath;
    if (typeof healthPath !== 'string' || !/^\/[A-Za-z0-9._~\-/]*$/.test(healthPath)) {
      throw Errors.invalid(this, 'healthPath', props.healthPath, 'a URL path starting with /, e.g. /ping or /healthz');
    }
    if (kind === 'aws' && healthPath !== '/ping') throw Errors.conflict(this, 'healthPath', healthPath, '/ping on aws (SageMaker checks GET /ping)', 'cannot be changed on SageMaker');
    const env = props.env ?? {};
    for (const [k, v] of Object.entries(env)) {
      if (!ENV_NAME.test(k)) throw Errors.invalid(this, 'env key', k, 'environment names of letters, digits and _, not starting with a digit');
      if (RESERVED_ENV.includes(k)) throw Errors.invalid(this, 'env key', k, `names other than ${RESERVED_ENV.join(', ')} (set by the endpoint or the platform)`, 'is reserved');
      if (SECRET_NAME.test(k)) {
        throw Errors.invalid(this, `env.${k}`, '(value hidden)', kind === 'aws' ? 'no secrets in plain env: read them from Secrets Manager in the server' : 'no secrets in plain env: use secretEnv (a Secret Manager or Kubernetes Secret reference)', 'looks like a secret');
      }
      if (typeof v !== 'string') throw Errors.invalid(this, `env.${k}`, v, 'a string');
    }
    const secretEnv = props.secretEnv ?? {};
    only('secretEnv', ['gcp', 'kubernetes'], 'SageMaker models have no secret environment');
    const wantStore = kind === 'gcp' ? 'gcp-secret-manager' : 'kubernetes-secret';
    for (const [k, ref] of Object.entries(secretEnv)) {
      if (!ENV_NAME.test(k) || RESERVED_ENV.includes(k) || k in env) throw Errors.invalid(this, 'secretEnv key', k, 'environment names not in env and not reserved');
      if (!ref || ref.store !== wantStore) throw Errors.invalid(this, `secretEnv.${k}`, ref?.store, `a ${wantStore} reference on ${kind}`);
    }

    // ---- rollout
    const rollout = this.checkRollout(kind, props.rollout ?? { kind: 'all-at-once' });
    const rollbackAlarms = props.rollbackAlarms ?? [];
    only('rollbackAlarms', ['aws'], 'alarm-driven rollback is SageMaker\'s');
    if (!Array.isArray(rollbackAlarms) || rollbackAlarms.some((a) => typeof a !== 'string' || (!Token.isUnresolved(a) && !/^[^\s][ -~]{0,254}$/.test(a)))) {
      throw Errors.invalid(this, 'rollbackAlarms', rollbackAlarms, 'CloudWatch alarm names (1-255 printable characters)');
    }
    if (rollbackAlarms.length > 10) throw Errors.outOfRange(this, 'rollbackAlarms', rollbackAlarms.length, 'at most 10 alarms (SageMaker)');

    // ---- AWS specifics
    only('invocationsPerInstanceTarget', ['aws'], '');
    const invocationsPerInstanceTarget = props.invocationsPerInstanceTarget ?? DEFAULTS.invocationsPerInstanceTarget;
    if (typeof invocationsPerInstanceTarget !== 'number' || !(invocationsPerInstanceTarget > 0) || invocationsPerInstanceTarget > 1e6) {
      throw Errors.outOfRange(this, 'invocationsPerInstanceTarget', invocationsPerInstanceTarget, 'a number of invocations per instance per minute above 0');
    }
    only('captureSamplingPercent', ['aws'], '');
    const captureSamplingPercent = props.captureSamplingPercent ?? DEFAULTS.captureSamplingPercent;
    if (!int(captureSamplingPercent) || captureSamplingPercent < 0 || captureSamplingPercent > 100) {
      throw Errors.outOfRange(this, 'captureSamplingPercent', captureSamplingPercent, 'an integer percent from 0 (off) to 100');
    }
    only('modelKeyArn', ['aws'], '');
    if (props.modelKeyArn !== undefined && !Token.isUnresolved(props.modelKeyArn) && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(props.modelKeyArn)) {
      throw Errors.invalid(this, 'modelKeyArn', props.modelKeyArn, 'a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)');
    }

    // ---- GCP and Kubernetes specifics
    only('public', ['gcp'], 'expose a Kubernetes Service through your own ingress; AWS endpoints are IAM-authenticated');
    if (props.public !== undefined && typeof props.public !== 'boolean') throw Errors.invalid(this, 'public', props.public, 'true or false');
    only('gpuZonalRedundancy', ['gcp'], '');
    if (props.gpuZonalRedundancy !== undefined && !shape) throw Errors.conflict(this, 'gpuZonalRedundancy', props.gpuZonalRedundancy, 'set only with accelerator', 'has no effect without a GPU');
    for (const p of ['revision', 'previous', 'rolloutStep', 'live'] as const) {
      only(p, ['gcp', 'kubernetes'], 'SageMaker keeps the old fleet and shifts traffic itself');
    }
    only('color', ['gcp', 'kubernetes'], '');
    only('cpuTargetPercent', ['kubernetes'], '');
    only('serviceAccountName', ['kubernetes'], '');
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
      if (kind === 'kubernetes' && previous.image === undefined) {
        throw Errors.missing(this, 'previous.image', 'the image the previous version runs (its pods are kept beside the new ones)');
      }
      if (previous.image !== undefined && !Token.isUnresolved(previous.image) && !IMAGE.test(previous.image)) {
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
    const cpuTargetPercent = props.cpuTargetPercent ?? DEFAULTS.cpuTargetPercent;
    if (!int(cpuTargetPercent) || cpuTargetPercent < 10 || cpuTargetPercent > 100) {
      throw Errors.outOfRange(this, 'cpuTargetPercent', cpuTargetPercent, 'an integer percent from 10 to 100');
    }
    if (props.serviceAccountName !== undefined && !Token.isUnresolved(props.serviceAccountName) && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(props.serviceAccountName)) {
      throw Errors.invalid(this, 'serviceAccountName', props.serviceAccountName, 'a Kubernetes service account name (DNS subdomain)');
    }

    return {
      name: resourceName(this, { maxLength: 40 }), model, image, shape, replicas: { min: replicas.min, max: replicas.max }, rollout, rollbackAlarms,
      // Values reach Terraform as templates on every target: `${` and `%{` stay literal.
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, tfLiteral(v)])), secretEnv, port, healthPath, instanceType: props.instanceType, invocationsPerInstanceTarget, captureSamplingPercent,
      modelKeyArn: props.modelKeyArn, cpu: props.cpu, memoryGiB: props.memoryGiB, public: props.public ?? false,
      gpuZonalRedundancy: props.gpuZonalRedundancy ?? false, revision,
      previous: previous ? { revision: previous.revision, image: previous.image, modelUri: prevModel, deployed: previous.deployed } : undefined,
      rolloutStep, color, live, cpuTargetPercent, serviceAccountName: props.serviceAccountName,
      imagePullSecrets: source.options.imagePullSecrets ?? [],
    };
  }

  private checkRollout(kind: string, r: RolloutSpec): RolloutSpec {
    const kinds = ['all-at-once', 'canary', 'linear', 'blue-green'];
    if (!r || !kinds.includes(r.kind)) throw Errors.unknown(this, 'rollout', r?.kind, ['Rollout.allAtOnce()', 'Rollout.canary()', 'Rollout.linear()', 'Rollout.blueGreen()']);
    const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
    const bake = (v: number | undefined) => {
      const b = v ?? DEFAULTS.bakeMinutes;
      // SageMaker waits at most 3600 s per step; the same bound keeps the other targets comparable.
      if (!int(b) || b < 0 || b > 60) throw Errors.outOfRange(this, 'rollout.bakeMinutes', v, 'an integer number of minutes from 0 to 60');
      return b;
    };
    switch (r.kind) {
      case 'all-at-once':
        return { kind: 'all-at-once' };
      case 'canary': {
        const max = kind === 'aws' ? 50 : 99;
        if (!int(r.percent) || r.percent < 1 || r.percent > max) {
          throw Errors.outOfRange(this, 'rollout.percent', r.percent, kind === 'aws'
            ? 'an integer percent from 1 to 50 on aws (SageMaker canaries are at most half the new fleet)'
            : 'an integer percent from 1 to 99');
        }
        return { kind: 'canary', percent: r.percent, bakeMinutes: bake(r.bakeMinutes) };
      }
      case 'linear': {
        const p = r.percentPerStep;
        const min = kind === 'aws' ? 10 : 1;
        const allowed = [1, 2, 4, 5, 10, 20, 25, 50].filter((v) => v >= min);
        if (!int(p) || p < min || p > 50 || 100 % p !== 0) {
          throw Errors.outOfRange(this, 'rollout.percentPerStep', p,
            `an integer percent that divides 100 into equal steps: ${allowed.join(', ')}${kind === 'aws' ? ' (SageMaker linear steps are 10-50%)' : ''}`);
        }
        const stepMinutes = r.stepMinutes;
        if (!int(stepMinutes) || stepMinutes < 1 || stepMinutes > 60) {
          throw Errors.outOfRange(this, 'rollout.stepMinutes', stepMinutes, 'an integer number of minutes from 1 to 60');
        }
        // SageMaker stops a deployment after 8 hours (MaximumExecutionTimeoutInSeconds <= 28800).
        if (kind === 'aws' && (100 / p) * stepMinutes > 470) {
          throw Errors.outOfRange(this, 'rollout.stepMinutes', stepMinutes, `at most ${Math.floor(470 / (100 / p))} minutes with ${p}% steps on aws (the whole rollout must finish within SageMaker's 8-hour limit)`);
        }
        return { kind: 'linear', percentPerStep: p, stepMinutes };
      }
      default:
        return { kind: 'blue-green', bakeMinutes: bake(r.bakeMinutes) };
    }
  }
}
