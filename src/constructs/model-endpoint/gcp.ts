/**
 * ModelEndpoint on GCP: a Cloud Run v2 service (with an L4 GPU when asked), named revisions and a
 * traffic split for rollouts, a service account that reads only the model's prefix. Terraform cannot
 * deploy a model to a Vertex AI endpoint (terraform-provider-google#15303), hence Cloud Run.
 * Cloud Run's rules (one L4, CPU and memory sizes) are checked here, and images from other registries
 * are mirrored (at the end of this file).
 */
import { TerraformStack, Token } from 'cdktf';
import { Construct } from 'constructs';
import { ArtifactRegistryRepository } from '@cdktf/provider-google/lib/artifact-registry-repository';
import { CloudRunV2Service, CloudRunV2ServiceTemplateContainersEnv, CloudRunV2ServiceTraffic } from '@cdktf/provider-google/lib/cloud-run-v2-service';
import { CloudRunV2ServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-service-iam-member';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { AcceleratorShape, CLOUD_RUN_PRICES, resolveAccelerator } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { recordCost } from '../../core/facts';
import { recordAccess } from '../../core/grants';
import { parseModelUri } from '../../core/model';
import { ContainerImage, SUPPORTED_UPSTREAMS, upstreamOf } from '../../core/container-image';
import { fitName, shortHash } from '../../core/naming';
import { suppressPolicyRule } from '../../core/suppressions';
import { GcpTarget } from '../../core/targets';
import type { ModelEndpointProps } from './index';
import { gcpRegistryRecord } from './gcp-registry';
import { ModelEndpointBackend, ModelEndpointPlan, ModelEndpointTargetBackend, replicaQuantity } from './plan';
import { NO_MODEL_VERSION } from './registry';

/**
 * Startup probe windows (failureThreshold x periodSeconds): Cloud Run caps them at 240 s without a GPU
 * and allows longer model loads with one (docs.cloud.google.com/run/docs/configuring/healthchecks).
 */
export const CLOUD_RUN_STARTUP_WINDOW_SECONDS = { cpu: 240, gpu: 1200 } as const;

/** The only GPU Cloud Run offers (one per instance). */
export const CLOUD_RUN_ACCELERATOR = 'L4';
const CLOUD_RUN_GPU = 'nvidia-l4';
const REVISION_TRAFFIC = 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION';
/** cdktf's warning metadata type (Annotations' WARN), shown by `cdktf synth`. */
const WARNING = '@cdktf/warn';
// Tags are at most 6 characters: a tag and the service name (at most 40) together may not pass 46.
const LATEST_TRAFFIC = 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST';

export interface GcpModelEndpointResources {
  readonly serviceAccount: ServiceAccount;
  /** objectViewer on the model bucket, conditioned on the model prefix (and the previous revision's). */
  readonly modelAccess: StorageBucketIamMember;
  /** objectViewer on the previous revision's model bucket, when it is another bucket. */
  readonly previousModelAccess?: StorageBucketIamMember;
  /** deletion_protection is false (the provider's default is true): `terraform destroy` removes the service. */
  readonly service: CloudRunV2Service;
  /** allUsers invoker: only with `public: true`. */
  readonly publicInvoker?: CloudRunV2ServiceIamMember;
}

const CLOUD_RUN_CPUS = [1, 2, 4, 6, 8];

/** What the GCP backend resolved from the props: Cloud Run's own settings. */
interface GcpEndpointPlan {
  readonly shape?: AcceleratorShape;
  readonly image: string;
  readonly cpu: number;
  readonly memoryGiB: number;
  readonly public: boolean;
  readonly gpuZonalRedundancy: boolean;
}

/** Cloud Run's rules: checked before anything is created. */
function checkGcp(endpoint: Construct, props: ModelEndpointProps, plan: ModelEndpointPlan): Omit<GcpEndpointPlan, 'image'> {
  if (plan.source.options.imagePullSecrets !== undefined) {
    throw Errors.conflict(endpoint, 'image.imagePullSecrets', plan.source.options.imagePullSecrets, 'kubernetes targets only', 'does not apply to gcp');
  }
  let shape: AcceleratorShape | undefined;
  const a = plan.accelerator;
  if (a) {
    // Cloud Run offers one L4 per instance; the catalog's Compute Engine shapes do not apply.
    if (a.name !== CLOUD_RUN_ACCELERATOR) {
      throw Errors.notOffered(endpoint, 'accelerator', a.name, `${a.name} is not offered on gcp Cloud Run (Terraform cannot deploy to Vertex endpoints: terraform-provider-google#15303)`, CLOUD_RUN_ACCELERATOR);
    }
    if (a.count !== 1) throw Errors.notOffered(endpoint, 'acceleratorsPerReplica', a.count, `${a.name} x${a.count} is not offered on gcp Cloud Run (one GPU per instance)`, '1');
    shape = resolveAccelerator('gcp', a.name, a.count, { where: endpoint.node.path, countProp: 'acceleratorsPerReplica' });
  }
  // CPU and memory size the instance and its price: literal numbers (docs.cloud.google.com/run/docs/configuring/services/cpu, .../memory-limits).
  if (props.cpu !== undefined && !CLOUD_RUN_CPUS.includes(props.cpu)) {
    throw Errors.outOfRange(endpoint, 'cpu', Token.isUnresolved(props.cpu) ? '(a Terraform value)' : props.cpu, `one of ${CLOUD_RUN_CPUS.join(', ')} vCPU (Cloud Run)`);
  }
  const m = props.memoryGiB;
  if (m !== undefined && !(typeof m === 'number' && Number.isInteger(m) && m >= 1 && m <= 32)) {
    throw Errors.outOfRange(endpoint, 'memoryGiB', Token.isUnresolved(m) ? '(a Terraform value)' : m, 'an integer from 1 to 32 GiB (Cloud Run)');
  }
  if (shape) {
    // Cloud Run GPU instances need at least 4 vCPU and 16 GiB.
    if (props.cpu !== undefined && props.cpu < 4) throw Errors.outOfRange(endpoint, 'cpu', props.cpu, 'at least 4 vCPU with a GPU on Cloud Run: 4, 6 or 8');
    if (m !== undefined && m < 16) throw Errors.outOfRange(endpoint, 'memoryGiB', m, 'at least 16 GiB with a GPU on Cloud Run, up to 32');
  }
  if (props.public !== undefined && typeof props.public !== 'boolean') throw Errors.invalid(endpoint, 'public', props.public, 'true or false');
  if (props.gpuZonalRedundancy !== undefined && !shape) {
    throw Errors.conflict(endpoint, 'gpuZonalRedundancy', props.gpuZonalRedundancy, 'set only with accelerator', 'has no effect without a GPU');
  }
  for (const [k, ref] of Object.entries(plan.secretEnv)) {
    if (!ref || ref.store !== 'gcp-secret-manager') throw Errors.invalid(endpoint, `secretEnv.${k}`, ref?.store, 'a gcp-secret-manager reference on gcp');
  }
  return {
    shape, cpu: props.cpu ?? (shape ? 8 : 2), memoryGiB: m ?? (shape ? 32 : 4),
    public: props.public ?? false, gpuZonalRedundancy: props.gpuZonalRedundancy ?? false,
  };
}

/** ModelEndpoint on GCP: Cloud Run's rules and resources. */
export const GCP_MODEL_ENDPOINT: ModelEndpointTargetBackend<GcpTarget> = {
  minReplicas: { count: 0 },
  modelScheme: 'gs',
  secretHint: 'use secretEnv (a Secret Manager or Kubernetes Secret reference)',
  build(endpoint, target, props, plan) {
    const checked = checkGcp(endpoint, props, plan);
    const imagePlan = planGcpImage(endpoint, plan.source);
    // Everything is checked: from here on, resources.
    const gcp: GcpEndpointPlan = { ...checked, image: buildGcpImage(endpoint, target, plan.source, imagePlan) };
    const built = buildGcpModelEndpoint(endpoint, target, plan, gcp);
    recordCloudRunCost(endpoint, plan, gcp);
    return built;
  },
};

/** Instance-based billing: vCPU, memory and GPU seconds of every instance that runs. */
function recordCloudRunCost(endpoint: Construct, plan: ModelEndpointPlan, gcp: GcpEndpointPlan): void {
  const gpu = gcp.shape ? 1 : 0;
  const perSecond = gcp.cpu * CLOUD_RUN_PRICES.vcpuSecond + gcp.memoryGiB * CLOUD_RUN_PRICES.gibSecond + gpu * CLOUD_RUN_PRICES.l4Second;
  recordCost(endpoint, {
    item: `Cloud Run instance (${gcp.cpu} vCPU, ${gcp.memoryGiB} GiB${gpu ? `, ${gpu} L4` : ''})`, unitUsd: Math.round(perSecond * 3600 * 10000) / 10000, per: 'hour',
    source: CLOUD_RUN_PRICES.source, asOf: CLOUD_RUN_PRICES.asOf,
    note: `${perSecond.toFixed(7)} USD/s x 3600; requests and zonal redundancy surcharges not included`,
    ...replicaQuantity(plan.replicas),
  });
}

/** Traffic targets for the rollout: a pure function of the plan, so tests and users can read it. */
export function cloudRunTraffic(service: string, plan: Pick<ModelEndpointPlan, 'revision' | 'previous' | 'rollout' | 'rolloutStep' | 'color' | 'live'>): CloudRunV2ServiceTraffic[] {
  const current = `${service}-${plan.revision}`;
  const prev = plan.previous ? `${service}-${plan.previous.revision}` : undefined;
  const rev = (revision: string, percent: number, tag?: string): CloudRunV2ServiceTraffic => ({ type: REVISION_TRAFFIC, revision, percent, ...(tag ? { tag } : {}) });
  if (!prev) return [{ type: LATEST_TRAFFIC, percent: 100 }];
  switch (plan.rollout.kind) {
    case 'canary':
      return [rev(prev, 100 - plan.rollout.percent!, 'stable'), rev(current, plan.rollout.percent!, 'canary')];
    case 'linear': {
      const share = Math.min(100, plan.rolloutStep * plan.rollout.percentPerStep!);
      return share >= 100 ? [rev(current, 100, 'stable'), rev(prev, 0, 'prev')] : [rev(prev, 100 - share, 'stable'), rev(current, share, 'canary')];
    }
    case 'blue-green': {
      // The new revision runs in `color`'s opposite of the previous one; the live colour takes all traffic,
      // the other keeps a tagged URL (https://<colour>---<service>...) for tests and instant rollback.
      const prevColor = plan.color === 'blue' ? 'green' : 'blue';
      return [rev(prev, plan.live === prevColor ? 100 : 0, prevColor), rev(current, plan.live === plan.color ? 100 : 0, plan.color)];
    }
    default:
      return [{ type: LATEST_TRAFFIC, percent: 100 }];
  }
}

function buildGcpModelEndpoint(endpoint: Construct, target: GcpTarget, given: ModelEndpointPlan, gcp: GcpEndpointPlan): ModelEndpointBackend {
  const provider = target.provider;
  const project = target.project;
  const name = given.name;
  // Cloud Run rejects traffic to a revision that does not exist, and a fresh service has none but
  // the one this apply creates: until `previous.deployed` says otherwise, deploy all at once.
  let plan = given;
  if (given.previous && !given.previous.deployed) {
    // A warning without a stack trace: synth output stays byte-identical between runs.
    endpoint.node.addMetadata(WARNING, `previous.revision '${given.previous.revision}': revision ${name}-${given.previous.revision} is not known to exist `
      + `(previous.deployed is not true), so this apply sends all traffic to ${name}-${given.revision}. To ${given.rollout.kind} against it, deploy it first, then set `
      + `revision to the new label and previous to { revision: '${given.previous.revision}', deployed: true }.`);
    plan = { ...given, previous: undefined };
  }
  target.requireApis('run.googleapis.com', 'iam.googleapis.com', 'storage.googleapis.com',
    ...(Object.keys(plan.secretEnv).length ? ['secretmanager.googleapis.com'] : []));

  // ---- identity: reads the model prefix, nothing else
  const iam = new Construct(endpoint, 'iam');
  const serviceAccount = new ServiceAccount(iam, 'service-account', {
    provider, project, accountId: fitName(name, 30),
    displayName: `mlinfra ${name} endpoint`, description: `${endpoint.node.path}: model server`,
  });
  // Every revision that takes traffic reads its own model: the previous one keeps its prefix while
  // the canary runs (both share this service account), or its cold starts get 403.
  const models = [{ bucket: plan.model.bucket, prefix: plan.model.prefix }];
  const prev = plan.previous?.modelUri ? parseModelUri(plan.previous.modelUri, endpoint, 'previous.model') : undefined;
  if (prev && prev.scheme !== 'gs') throw Errors.invalid(endpoint, 'previous.model', plan.previous!.modelUri, 'a gs:// model URI on GCP');
  if (prev && !(prev.bucket === plan.model.bucket && prev.prefix === plan.model.prefix)) models.push({ bucket: prev.bucket, prefix: prev.prefix });
  // Bucket-level objectViewer is the narrowest GCS role; the condition narrows it to the prefixes
  // (object reads by name, listings by the requested prefix). Needs uniform bucket-level access.
  const readPrefixes = (id: string, bucket: string, prefixes: string[]) => new StorageBucketIamMember(iam, id, {
    provider, bucket, role: 'roles/storage.objectViewer', member: serviceAccount.member,
    condition: {
      title: `model-prefix-${name}`.slice(0, 100),
      description: `${endpoint.node.path}: read the model under ${prefixes.join(', ')}`.slice(0, 256),
      expression: prefixes.map((prefix) => `resource.name.startsWith("projects/_/buckets/${bucket}/objects/${prefix}")`
        + ` || (resource.type == "storage.googleapis.com/Bucket" && api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("${prefix}"))`).join(' || '),
    },
  });
  const modelAccess = readPrefixes('model-read', plan.model.bucket, models.filter((m) => m.bucket === plan.model.bucket).map((m) => m.prefix));
  const otherBucket = models.find((m) => m.bucket !== plan.model.bucket);
  const previousModelAccess = otherBucket ? readPrefixes('previous-model-read', otherBucket.bucket, [otherBucket.prefix]) : undefined;
  // The picture labels these members' edge to the model's owner.
  recordAccess(iam, 'model-read', 'model-read');
  if (previousModelAccess) recordAccess(iam, 'previous-model-read', 'model-read');
  const secretAccess = Object.entries(plan.secretEnv).map(([envName, ref], i) => {
    if (ref.store !== 'gcp-secret-manager') throw Errors.invalid(endpoint, `secretEnv.${envName}`, ref.store, 'a gcp-secret-manager reference on gcp');
    return new SecretManagerSecretIamMember(iam, `secret-${i}`, {
      provider, project: ref.project, secretId: ref.secretId, role: 'roles/secretmanager.secretAccessor', member: serviceAccount.member,
    });
  });

  // ---- the service
  const gpu = !!gcp.shape;
  const { cpu, memoryGiB } = gcp;
  const env: CloudRunV2ServiceTemplateContainersEnv[] = [
    // pipeline.model: no model until the first promotion's revision (MLINFRA_MODEL_URI, registry.ts).
    plan.registry ? { name: 'MLINFRA_MODEL_VERSION', value: NO_MODEL_VERSION } : { name: 'MODEL_URI', value: plan.model.uri },
    ...Object.entries(plan.env).map(([k, value]) => ({ name: k, value })),
    ...Object.entries(plan.secretEnv).map(([k, ref]) => ({
      name: k, valueSource: { secretKeyRef: { secret: ref.store === 'gcp-secret-manager' ? `projects/${ref.project}/secrets/${ref.secretId}` : '', version: 'latest' } },
    })),
  ];
  const probe = { httpGet: { path: plan.healthPath, port: plan.port } };
  const serving = new Construct(endpoint, 'serving');
  const container = {
    name: 'server', image: gcp.image, env,
    resources: {
      limits: { cpu: String(cpu), memory: `${memoryGiB}Gi`, ...(gpu ? { 'nvidia.com/gpu': '1' } : {}) },
      // GPU instances must keep CPU allocated (instance-based billing); CPU-only ones may idle it.
      cpuIdle: !gpu, startupCpuBoost: true,
    },
    // Model load can take minutes: the startup window is the longest Cloud Run allows for the kind.
    startupProbe: { ...probe, periodSeconds: 10, failureThreshold: (gpu ? CLOUD_RUN_STARTUP_WINDOW_SECONDS.gpu : CLOUD_RUN_STARTUP_WINDOW_SECONDS.cpu) / 10, timeoutSeconds: 5 },
    livenessProbe: { ...probe, periodSeconds: 30, failureThreshold: 3, timeoutSeconds: 5 },
  };
  // The revision template, less its name and ports, in the field names Terraform and the Admin API v2 share.
  const template = {
    serviceAccount: serviceAccount.email,
    executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2',
    scaling: { minInstanceCount: plan.replicas.min, maxInstanceCount: plan.replicas.max },
    ...(gpu ? { nodeSelector: { accelerator: CLOUD_RUN_GPU }, gpuZonalRedundancyDisabled: !gcp.gpuZonalRedundancy } : {}),
  };
  const service = new CloudRunV2Service(serving, 'service', {
    provider, project, location: target.region, name,
    description: `${endpoint.node.path}: model server`,
    // Private by default: reachable from VPC networks of the project (and Shared VPC / VPC-SC perimeter),
    // not from the internet nor through an external load balancer; callers also need run.invoker.
    ingress: gcp.public ? 'INGRESS_TRAFFIC_ALL' : 'INGRESS_TRAFFIC_INTERNAL_ONLY',
    template: {
      // `<service>-<revision>`: a stable name traffic can point at while the next revision is tried.
      // pipeline.model: Cloud Run names the first; each promotion creates `<service>-v<N>-<config>`.
      revision: plan.registry ? undefined : `${name}-${plan.revision}`,
      ...template,
      containers: [{ ...container, ports: { containerPort: plan.port } }],
    },
    traffic: cloudRunTraffic(name, plan),
    // The provider defaults deletion_protection to true, which makes `terraform destroy` fail. The
    // service holds no state (models live in the registry): destroy removes it like the rest.
    deletionProtection: false,
    dependsOn: [modelAccess, ...(previousModelAccess ? [previousModelAccess] : []), ...secretAccess],
    // pipeline.model: each rollout PATCHes the template (the record's, named `<service>-v<N>-<config>`,
    // with the model's env) and the traffic split; Terraform must neither revert them nor re-send a
    // template whose revision name exists
    // (revision names are unique: cloud.google.com/run/docs/reference/rest/v2/RevisionTemplate;
    // developer.hashicorp.com/terraform/language/meta-arguments/lifecycle#ignore_changes).
    ...(plan.registry ? { lifecycle: { ignoreChanges: ['template', 'traffic'] } } : {}),
  });
  // The API's ports is a list (Terraform's a block): cloud.google.com/run/docs/reference/rest/v2/Container
  if (plan.registry) gcpRegistryRecord(endpoint, target, plan, plan.registry, service, serviceAccount, gcp.image, { ...template, containers: [{ ...container, ports: [{ containerPort: plan.port }] }] });
  const publicInvoker = gcp.public ? new CloudRunV2ServiceIamMember(serving, 'public-invoker', {
    provider, project, location: target.region, name: service.name, role: 'roles/run.invoker', member: 'allUsers',
  }) : undefined;
  if (publicInvoker) {
    suppressPolicyRule(publicInvoker, 'gcp-iam-no-all-users', 'public: true was set on the ModelEndpoint: unauthenticated calls were asked for');
  }

  const labels = { 'resource.type': 'cloud_run_revision', 'resource.labels.service_name': name };
  let grants: Construct | undefined;
  return {
    url: service.uri,
    metrics: {
      latency: { system: 'cloud-monitoring', namespace: 'run.googleapis.com', name: 'run.googleapis.com/request_latencies', unit: 'milliseconds', dimensions: labels },
      errors: {
        system: 'cloud-monitoring', namespace: 'run.googleapis.com', name: 'run.googleapis.com/request_count', unit: 'count', dimensions: labels,
        filter: 'metric.labels.response_code_class = "5xx"',
      },
      invocations: { system: 'cloud-monitoring', namespace: 'run.googleapis.com', name: 'run.googleapis.com/request_count', unit: 'count', dimensions: labels },
    },
    grantPrincipal: { kind: 'gcp', email: serviceAccount.email, member: serviceAccount.member },
    grantInvoke(grantee, grantId) {
      const p = grantee.grantPrincipal;
      if (p.kind !== 'gcp') throw Errors.crossCloudGrant(endpoint, 'grantInvoke', p.kind, 'gcp');
      new CloudRunV2ServiceIamMember((grants ??= new Construct(endpoint, 'grants')), grantId, {
        provider, project, location: target.region, name: service.name, role: 'roles/run.invoker', member: p.member,
      });
    },
    shape: gcp.shape,
    gcp: { serviceAccount, modelAccess, previousModelAccess, service, publicInvoker },
  };
}

// ---- Images from other registries

/**
 * ModelEndpoint on GCP, images outside Artifact Registry: Cloud Run pulls from Artifact Registry,
 * Container Registry and Docker Hub only (Cloud Run "Deploying container images"), so an image from
 * another supported upstream, and Docker Hub too (rate limits), is served through an Artifact
 * Registry remote repository in the service's region: `<region>-docker.pkg.dev/<project>/<repo>/<path>`.
 * Sources: Artifact Registry "Create remote repositories" (Docker: Docker Hub preset or a custom
 * upstream URI such as https://ghcr.io); google_artifact_registry_repository (mode
 * REMOTE_REPOSITORY, remote_repository_config.docker_repository.public_repository | custom_repository.uri).
 * Cloud Run's service agent reads Artifact Registry in its own project without an extra grant.
 */
/** Registries Cloud Run pulls from itself (used as is). */
const CLOUD_RUN_NATIVE = /^([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)$/;

export interface GcpImagePlan {
  readonly uri: string;
  readonly remote?: { readonly repositoryId: string; readonly upstream: { readonly publicRepository: 'DOCKER_HUB' } | { readonly customUri: string }; readonly name: string };
}

/** Checks that the image can be pulled by Cloud Run; throws before any resource exists. */
export function planGcpImage(where: Construct, img: ContainerImage): GcpImagePlan {
  if (img.isToken || CLOUD_RUN_NATIVE.test(img.registry!)) return { uri: img.reference };
  const upstream = upstreamOf(img.registry!);
  if (!upstream?.gcp) {
    throw Errors.notOffered(where, 'image', img.reference,
      `${img.registry} cannot be pulled by Cloud Run and no Artifact Registry remote repository is set up for it here`,
      `an Artifact Registry or Container Registry image, or one from ${SUPPORTED_UPSTREAMS} (mirrored through a remote repository)`);
  }
  // Per stack: repository ids are unique per project and location, and two stacks may share both.
  const repositoryId = `mlinfra-${fitName(upstream.id, 40)}-${shortHash(TerraformStack.of(where).node.path, 6)}`;
  return { uri: '', remote: { repositoryId, upstream: upstream.gcp, name: upstream.name } };
}

/** Creates (once per stack, region and upstream) the remote repository and returns the rewritten URI. */
export function buildGcpImage(scope: Construct, target: GcpTarget, img: ContainerImage, plan: GcpImagePlan): string {
  const r = plan.remote;
  if (!r) return plan.uri;
  const stack = TerraformStack.of(scope);
  const id = `mlinfra-ar-remote-${r.repositoryId}-${target.node.id}`;
  let repo = stack.node.tryFindChild(id) as ArtifactRegistryRepository | undefined;
  if (!repo) {
    target.requireApis('artifactregistry.googleapis.com');
    const docker = 'publicRepository' in r.upstream ? { publicRepository: r.upstream.publicRepository } : { customRepository: { uri: r.upstream.customUri } };
    repo = new ArtifactRegistryRepository(stack, id, {
      provider: target.provider, project: target.project, location: target.region, repositoryId: r.repositoryId,
      format: 'DOCKER', mode: 'REMOTE_REPOSITORY', description: `mlinfra: pull-through cache of ${r.name}`,
      remoteRepositoryConfig: { description: r.name, dockerRepository: docker },
    });
  }
  return img.rewrite(`${repo.location}-docker.pkg.dev/${repo.project}/${repo.repositoryId}`);
}
