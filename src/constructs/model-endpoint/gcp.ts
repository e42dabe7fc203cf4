/**
 * ModelEndpoint on GCP: a Cloud Run v2 service (with an L4 GPU when asked), named revisions and a
 * traffic split for rollouts, a service account that reads only the model's prefix. Terraform cannot
 * deploy a model to a Vertex AI endpoint (terraform-provider-google#15303), hence Cloud Run.
 */
import { Construct } from 'constructs';
import { Policy } from '../../aspects/policy/policy';
import { CloudRunV2Service, CloudRunV2ServiceTemplateContainersEnv, CloudRunV2ServiceTraffic } from '@cdktf/provider-google/lib/cloud-run-v2-service';
import { CloudRunV2ServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-service-iam-member';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { Errors } from '../../core/errors';
import { parseModelUri } from '../../core/model';
import { fitName } from '../../core/naming';
import { GcpTarget } from '../../core/targets';
import { ModelEndpointBackend, ModelEndpointPlan } from './plan';

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

/** Traffic targets for the rollout: a pure function of the plan, so tests and users can read it. */
export function cloudRunTraffic(service: string, plan: ModelEndpointPlan): CloudRunV2ServiceTraffic[] {
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

export function buildGcpModelEndpoint(endpoint: Construct, target: GcpTarget, given: ModelEndpointPlan): ModelEndpointBackend & { readonly resources: GcpModelEndpointResources } {
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
  const secretAccess = Object.entries(plan.secretEnv).map(([envName, ref], i) => {
    if (ref.store !== 'gcp-secret-manager') throw new Error(`${endpoint.node.path}: secretEnv.${envName} is not a Secret Manager reference`);
    return new SecretManagerSecretIamMember(iam, `secret-${i}`, {
      provider, project: ref.project, secretId: ref.secretId, role: 'roles/secretmanager.secretAccessor', member: serviceAccount.member,
    });
  });

  // ---- the service
  const gpu = !!plan.shape;
  const cpu = plan.cpu ?? (gpu ? 8 : 2);
  const memoryGiB = plan.memoryGiB ?? (gpu ? 32 : 4);
  const env: CloudRunV2ServiceTemplateContainersEnv[] = [
    { name: 'MODEL_URI', value: plan.model.uri },
    ...Object.entries(plan.env).map(([k, value]) => ({ name: k, value })),
    ...Object.entries(plan.secretEnv).map(([k, ref]) => ({
      name: k, valueSource: { secretKeyRef: { secret: ref.store === 'gcp-secret-manager' ? `projects/${ref.project}/secrets/${ref.secretId}` : '', version: 'latest' } },
    })),
  ];
  const probe = { httpGet: { path: plan.healthPath, port: plan.port } };
  const serving = new Construct(endpoint, 'serving');
  const service = new CloudRunV2Service(serving, 'service', {
    provider, project, location: target.region, name,
    description: `${endpoint.node.path}: model server`,
    // Private by default: reachable from VPC networks of the project (and Shared VPC / VPC-SC perimeter),
    // not from the internet nor through an external load balancer; callers also need run.invoker.
    ingress: plan.public ? 'INGRESS_TRAFFIC_ALL' : 'INGRESS_TRAFFIC_INTERNAL_ONLY',
    template: {
      // `<service>-<revision>`: a stable name traffic can point at while the next revision is tried.
      revision: `${name}-${plan.revision}`,
      serviceAccount: serviceAccount.email,
      executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2',
      scaling: { minInstanceCount: plan.replicas.min, maxInstanceCount: plan.replicas.max },
      ...(gpu ? { nodeSelector: { accelerator: CLOUD_RUN_GPU }, gpuZonalRedundancyDisabled: !plan.gpuZonalRedundancy } : {}),
      containers: [{
        name: 'server', image: plan.image, env,
        ports: { containerPort: plan.port },
        resources: {
          limits: { cpu: String(cpu), memory: `${memoryGiB}Gi`, ...(gpu ? { 'nvidia.com/gpu': '1' } : {}) },
          // GPU instances must keep CPU allocated (instance-based billing); CPU-only ones may idle it.
          cpuIdle: !gpu, startupCpuBoost: true,
        },
        // Model load can take minutes: the startup window is the longest Cloud Run allows for the kind.
        startupProbe: { ...probe, periodSeconds: 10, failureThreshold: (gpu ? CLOUD_RUN_STARTUP_WINDOW_SECONDS.gpu : CLOUD_RUN_STARTUP_WINDOW_SECONDS.cpu) / 10, timeoutSeconds: 5 },
        livenessProbe: { ...probe, periodSeconds: 30, failureThreshold: 3, timeoutSeconds: 5 },
      }],
    },
    traffic: cloudRunTraffic(name, plan),
    // The provider defaults deletion_protection to true, which makes `terraform destroy` fail. The
    // service holds no state (models live in the registry): destroy removes it like the rest.
    deletionProtection: false,
    dependsOn: [modelAccess, ...(previousModelAccess ? [previousModelAccess] : []), ...secretAccess],
  });
  const publicInvoker = plan.public ? new CloudRunV2ServiceIamMember(serving, 'public-invoker', {
    provider, project, location: target.region, name: service.name, role: 'roles/run.invoker', member: 'allUsers',
  }) : undefined;
  if (publicInvoker) {
    Policy.suppress(publicInvoker, 'gcp-iam-no-all-users', 'public: true was set on the ModelEndpoint: unauthenticated calls were asked for');
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
      if (p.kind !== 'gcp') throw new Error(`${endpoint.node.path}.grantInvoke: grantee is on ${p.kind}, the endpoint on gcp; grants do not cross clouds`);
      new CloudRunV2ServiceIamMember((grants ??= new Construct(endpoint, 'grants')), grantId, {
        provider, project, location: target.region, name: service.name, role: 'roles/run.invoker', member: p.member,
      });
    },
    resources: { serviceAccount, modelAccess, previousModelAccess, service, publicInvoker },
  };
}
