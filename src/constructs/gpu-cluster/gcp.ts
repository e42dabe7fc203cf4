/**
 * GpuCluster on GCP: instance template + regional MIG behind an internal passthrough NLB, one bucket,
 * one secret, the Pub/Sub jobs queue (gcp-queue.ts) with an autoscaler on its backlog, and compact
 * placement for multi-node groups (gcp-placement.ts).
 */
import { Fn, TerraformAsset, Token } from 'cdktf';
import { Construct } from 'constructs';
import { ComputeFirewall } from '@cdktf/provider-google/lib/compute-firewall';
import { ComputeForwardingRule } from '@cdktf/provider-google/lib/compute-forwarding-rule';
import { ComputeInstanceTemplate } from '@cdktf/provider-google/lib/compute-instance-template';
import { ComputeRegionBackendService } from '@cdktf/provider-google/lib/compute-region-backend-service';
import { ComputeRegionHealthCheck } from '@cdktf/provider-google/lib/compute-region-health-check';
import { ComputeRegionAutoscaler } from '@cdktf/provider-google/lib/compute-region-autoscaler';
import { ComputeRegionInstanceGroupManager } from '@cdktf/provider-google/lib/compute-region-instance-group-manager';
import type { ComputeResourcePolicy } from '@cdktf/provider-google/lib/compute-resource-policy';
import { ProjectIamCustomRole } from '@cdktf/provider-google/lib/project-iam-custom-role';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member';
import { SecretManagerSecretVersion } from '@cdktf/provider-google/lib/secret-manager-secret-version';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object';
import { HOST_METRICS } from '../../contracts/host-metrics';
import { GcpHostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { IGrantable, principalOn } from '../../core/grants';
import { Errors } from '../../core/errors';
import { fitName, shortHash } from '../../core/naming';
import { GcpTarget } from '../../core/targets';
import { gcpHostMetricsScript, MLINFRA_HOME, renderBootstrap, secretReadCommand, shq } from './bootstrap';
import { gcpIdleStopScript } from './gcp-idle-stop';
import { checkGcpProps } from './gcp-props';
import { buildCompactPlacementPolicy, checkGcpPlacement, GCP_NCCL_ENV } from './gcp-placement';
import { buildGcpClusterQueue, buildGcpQueueAutoscaler, GcpClusterQueueResources } from './gcp-queue';
import { GpuClusterBackend, GpuClusterPlan, GpuClusterTarget } from './plan';

/**
 * Deep Learning VM image family: PyTorch 2.9 with CUDA 12.9 on Ubuntu 24.04, NVIDIA driver 580
 * preinstalled, gcloud. The former default (common-cu124-debian-11) had no PyTorch and its CUDA 12.4
 * images reached end of support (DLVM release notes, 2025-07-14).
 */
export const GCP_GPU_IMAGE = 'projects/deeplearning-platform-release/global/images/family/pytorch-2-9-cu129-ubuntu-2404-nvidia-580';
/** Seconds a host waits at boot for the NVIDIA driver to show all its GPUs before giving up. */
export const GCP_DRIVER_WAIT_SECONDS = 900;
/** A3 shapes (H100, H200) are sold through reservations, Spot or flex-start, not on demand. */
const RESERVATION_OR_SPOT_ONLY = /^a3-/;

/**
 * A bucket name for this project: GCS names are global, so the project id goes into the hash
 * (hashed in Terraform when the project is only known at apply). At most 63 characters.
 */
export function gcsBucketName(project: string, base: string, suffix: string): string {
  const head = fitName(base, 63 - suffix.length - 10);
  const hash = Token.isUnresolved(project) ? Fn.substr(Fn.sha256(`${project}/${base}`), 0, 8) : shortHash(`${project}/${base}`);
  return `${head}-${hash}-${suffix}`;
}
/** Source ranges of Google Cloud health checks (and of passthrough NLB probes). */
export const GCP_HEALTH_CHECK_RANGES: readonly string[] = ['35.191.0.0/16', '130.211.0.0/22'];

export interface GcpGpuClusterResources {
  readonly serviceAccount: ServiceAccount;
  /** Project-level roles of the host service account (logging, monitoring). */
  readonly hostProjectRoles: readonly ProjectIamMember[];
  readonly bucket: StorageBucket;
  readonly bucketHostAccess: StorageBucketIamMember;
  readonly agentScriptObject: StorageBucketObject;
  readonly agentStorageObject: StorageBucketObject;
  /** The rollout modules beside the agent (GCP_HOST_FILES). */
  readonly agentExtraObjects: readonly StorageBucketObject[];
  readonly secret: SecretManagerSecret;
  readonly secretVersion: SecretManagerSecretVersion;
  readonly secretHostAccess: SecretManagerSecretIamMember;
  readonly instanceTemplate: ComputeInstanceTemplate;
  readonly instanceGroupManager: ComputeRegionInstanceGroupManager;
  /** Agent port from `allowedCidrs` (or the subnetwork). */
  readonly clientFirewall: ComputeFirewall;
  /** Agent port from Google's health-check ranges. */
  readonly healthCheckFirewall: ComputeFirewall;
  /** All TCP between the cluster's hosts (multi-node only). */
  readonly peerFirewall?: ComputeFirewall;
  readonly healthCheck: ComputeRegionHealthCheck;
  readonly backendService: ComputeRegionBackendService;
  readonly forwardingRule: ComputeForwardingRule;
  /** Custom role to read and resize this cluster's group: created with idle stop or the first grantScale. */
  readonly scaleRole?: ProjectIamCustomRole;
  /** The host service account's conditional binding of `scaleRole` (idle stop only). */
  readonly autostopMember?: ProjectIamMember;
  /** The jobs topic, its pull subscription, the dead-letter topic and subscription, and their grants. */
  readonly queue: GcpClusterQueueResources;
  /** Scales the group out on the subscription's backlog; never in (hosts leave by idle stop). */
  readonly autoscaler: ComputeRegionAutoscaler;
  /** Compact placement of a multi-node group's hosts (A2, A3, G2). */
  readonly placementPolicy?: ComputeResourcePolicy;
}


/** Machine families that take Hyperdisk only (no Persistent Disk). */
const HYPERDISK_ONLY = /^(a3-ultragpu|a4-|a4x-)/;

/** GpuCluster on GCP, for the dispatch table in index.ts. */
export const GCP_GPU_CLUSTER: GpuClusterTarget = {
  checkProps: checkGcpProps,
  build: (cluster, target, plan) => buildGcpGpuCluster(cluster, target as GcpTarget, plan),
};

export function buildGcpGpuCluster(cluster: Construct, target: GcpTarget, plan: GpuClusterPlan): GpuClusterBackend & { readonly hostGroup: GcpHostGroup; readonly resources: GcpGpuClusterResources } {
  const provider = target.provider;
  const project = target.project;
  const region = target.region;
  const multiNode = plan.nodes.max > 1;
  const machineType = plan.shape.instanceType;
  const acceleratorType = plan.shape.gcpAcceleratorType;
  if (!machineType || !acceleratorType) {
    throw Errors.notOffered(cluster, 'accelerator', plan.shape.accelerator,
      `${plan.shape.accelerator} x${plan.shape.count} has no GCP machine type or accelerator type in the catalog`, 'the accelerators the catalog offers on gcp');
  }
  const reservation = target.reservationFor(machineType);
  // A MIG of on-demand A3 hosts stays at 0 with capacity errors: GCP sells them through reservations,
  // Spot or flex-start (docs.cloud.google.com/compute/docs/accelerator-optimized-machines#a3-vms).
  if (RESERVATION_OR_SPOT_ONLY.test(machineType) && !plan.spot && !reservation) {
    throw Errors.conflict(cluster, 'spot', plan.spot, `spot: true, or a reservation for ${machineType} in the GcpTarget's reservations ({ '${machineType}': '<reservation name>' })`,
      `is false, and ${machineType} (${plan.shape.accelerator}) is not sold on demand`);
  }
  // Multi-node groups need compact placement: refuse shapes that cannot have it, before anything exists.
  const placement = checkGcpPlacement(cluster, plan, machineType);
  target.requireApis('compute.googleapis.com', 'iam.googleapis.com', 'cloudresourcemanager.googleapis.com', 'secretmanager.googleapis.com',
    'storage.googleapis.com', 'logging.googleapis.com', 'monitoring.googleapis.com', 'pubsub.googleapis.com');

  // ---- identity: one service account for hosts
  const iam = new Construct(cluster, 'iam');
  const serviceAccount = new ServiceAccount(iam, 'host', {
    provider, project, accountId: fitName(plan.name, 30),
    displayName: `mlinfra ${plan.name} hosts`, description: `${cluster.node.path}: GPU hosts running mlinfra-agent`,
  });
  const hostMember = serviceAccount.member;
  // Project level: these roles have no narrower resource to bind on. They can only write logs and
  // metrics (the Deep Learning VM's Ops Agent, the agent's GPU metrics), never read or change anything.
  const hostProjectRoles = [['log-writer', 'roles/logging.logWriter'], ['metric-writer', 'roles/monitoring.metricWriter']].map(([id, role]) =>
    new ProjectIamMember(iam, id, { provider, project, role, member: hostMember }));

  // ---- storage: the cluster's own private bucket (agent bundle, artifacts, pipeline specs)
  const storage = new Construct(cluster, 'storage');
  // Google-managed encryption; a CMEK (encryption.default_kms_key_name) is a later option.
  const bucket = new StorageBucket(storage, 'bucket', {
    provider, project, name: gcsBucketName(project, plan.name, 'artifacts'), location: region, forceDestroy: false,
    uniformBucketLevelAccess: true, publicAccessPrevention: 'enforced',
    versioning: { enabled: true },
    lifecycleRule: [
      { action: { type: 'Delete' }, condition: { daysSinceNoncurrentTime: 30, withState: 'ARCHIVED' } },
      { action: { type: 'AbortIncompleteMultipartUpload' }, condition: { age: 7 } },
    ],
  });
  // Hosts read the agent bundle and keep artifacts, cluster job records, checkpoints and logs: get,
  // create, list and delete (GCS overwrites a record by delete + create) on this bucket only; objectUser
  // is those without objectAdmin's IAM and retention powers (iam/docs/roles-permissions/storage).
  const bucketHostAccess = new StorageBucketIamMember(storage, 'host-objects', {
    provider, bucket: bucket.name, role: 'roles/storage.objectUser', member: hostMember,
  });
  const upload = (id: string, asset: TerraformAsset) => new StorageBucketObject(storage, id, {
    provider, bucket: bucket.name, name: `agent/${asset.assetHash}/${asset.fileName}`, source: asset.path,
  });
  const agentScriptObject = upload('agent-script', plan.agentBundle.script);
  const agentStorageObject = upload('agent-storage', plan.agentBundle.storage!.asset);
  const agentExtraObjects = plan.agentBundle.extras.map((f, i) => upload(`agent-file-${i}`, f.asset));
  const gsUri = (o: StorageBucketObject) => `gs://${bucket.name}/${o.name}`;

  // ---- the durable jobs queue every host leases from
  const queue = buildGcpClusterQueue(cluster, { provider, project, name: plan.name, hostMember });

  // ---- the agent token: generated, kept only in Secret Manager
  const secrets = new Construct(cluster, 'secret');
  const secret = new SecretManagerSecret(secrets, 'agent-token', {
    provider, project, secretId: `${plan.name}-agent-token`, replication: { auto: {} },
  });
  const secretVersion = new SecretManagerSecretVersion(secrets, 'agent-token-value', { provider, secret: secret.id, secretData: plan.agentToken });
  const secretHostAccess = new SecretManagerSecretIamMember(secrets, 'host-access', {
    provider, project, secretId: secret.secretId, role: 'roles/secretmanager.secretAccessor', member: hostMember,
  });

  // ---- network: clients and health checks to the agent port; hosts to each other for rendezvous
  const net = new Construct(cluster, 'network');
  const firewall = (id: string, name: string, description: string, extra: { sourceRanges?: string[]; sourceTags?: string[]; ports?: string[] }) =>
    new ComputeFirewall(net, id, {
      provider, project, name, description, network: target.network, direction: 'INGRESS',
      allow: [{ protocol: 'tcp', ports: extra.ports }],
      sourceRanges: extra.sourceRanges, sourceTags: extra.sourceTags, targetTags: [plan.name],
      logConfig: { metadata: 'INCLUDE_ALL_METADATA' },
    });
  const agentPorts = [String(plan.agentPort)];
  const clientFirewall = firewall('agent-clients', `${plan.name}-agent`, `${cluster.node.path}: mlinfra-agent API clients`, {
    sourceRanges: [...(plan.allowedCidrs ?? [target.subnetCidr])], ports: agentPorts,
  });
  const healthCheckFirewall = firewall('health-checks', `${plan.name}-health`, `${cluster.node.path}: Google health checks`, {
    sourceRanges: [...GCP_HEALTH_CHECK_RANGES], ports: agentPorts,
  });
  const peerFirewall = multiNode ? firewall('peers', `${plan.name}-peers`, `${cluster.node.path}: torchrun rendezvous and NCCL between hosts`, {
    sourceTags: [plan.name],
  }) : undefined;

  // ---- compute
  const compute = new Construct(cluster, 'compute');
  const migName = plan.name;
  const migPath = `projects/${project}/regions/${region}/instanceGroupManagers/${migName}`;
  const migOnly = `resource.name == "${migPath}"`;

  // One custom role for reading and resizing this group, bound with a condition on the group only.
  // deleteInstances and resize need compute.instanceGroupManagers.update on the group (the MIG's own
  // service agent deletes the VM); gcloud resolves instance names with listManagedInstances (…get).
  let scaleRole: ProjectIamCustomRole | undefined;
  const ensureScaleRole = (): ProjectIamCustomRole => {
    scaleRole ??= new ProjectIamCustomRole(iam, 'scale-role', {
      provider, project, roleId: `mlinfra_${plan.name.replace(/-/g, '_')}_scale`,
      title: `mlinfra ${plan.name} scale`, description: `${cluster.node.path}: read and resize managed instance group ${migName}`,
      permissions: ['compute.instanceGroupManagers.get', 'compute.instanceGroupManagers.update'],
    });
    return scaleRole;
  };
  const bindScale = (scope: Construct, id: string, member: string) => new ProjectIamMember(scope, id, {
    provider, project, role: ensureScaleRole().name, member,
    condition: { title: `${migName} only`, description: `only managed instance group ${migName}`, expression: migOnly },
  });

  const stopScript = plan.idleStopMinutes > 0 ? gcpIdleStopScript({
    project, region, group: migName, minNodes: plan.nodes.min, bucket: bucket.name, nodePath: `${MLINFRA_HOME}/node/bin/node`,
  }) : undefined;
  const autostopMember = stopScript ? bindScale(iam, 'autostop', hostMember) : undefined;

  const script = renderBootstrap({
    clusterName: plan.name, nodeVersion: plan.nodeVersion, nodeDistUrl: plan.nodeDistUrl,
    copyCommand: (uri, dest) => `gcloud storage cp --no-user-output-enabled ${shq(uri)} ${dest}`,
    agentScriptUri: gsUri(agentScriptObject), agentStorageUri: gsUri(agentStorageObject), agentStorageFile: plan.agentBundle.storage!.fileName,
    agentExtraFiles: agentExtraObjects.map((o, i) => ({ uri: gsUri(o), file: plan.agentBundle.extras[i].fileName })),
    tokenCommand: secretReadCommand({ store: 'gcp-secret-manager', project, secretId: secret.secretId }, region),
    peerTokenFetches: plan.peerTokenFetches,
    stopScript, idleStopMinutes: plan.idleStopMinutes, agentPort: plan.agentPort, preemption: 'gcp',
    // The queue, the cluster's records under gs://BUCKET/cluster, then the guards (plan.extraAgentArgs).
    extraServeArgs: `${[...queue.agentArgs, '--cluster-artifacts', `gs://${bucket.name}/cluster`].map((a) => ` ${a}`).join('')}${plan.extraAgentArgs}`,
    environment: { MLINFRA_ARTIFACTS_URI: `gs://${bucket.name}`, GOOGLE_CLOUD_PROJECT: project, ...(multiNode ? GCP_NCCL_ENV : {}) },
    // The host service account already holds roles/monitoring.metricWriter and logging.logWriter.
    hostMetrics: gcpHostMetricsScript(plan.name),
    // The driver installs on first boot: the agent is told the catalog's count and starts once they show.
    gpus: plan.shape.count, gpuDriverWaitSeconds: GCP_DRIVER_WAIT_SECONDS,
    // Jobs get the image's PyTorch environment (login-shell PATH; /opt/conda/bin where the image has it).
    jobPathFromLoginShell: true,
  });

  const placementPolicy = placement.compact ? buildCompactPlacementPolicy(compute, {
    provider, project, region, name: `${plan.name}-compact`, description: `${cluster.node.path}: hosts of one multi-node group placed together`,
  }) : undefined;

  const instanceTemplate = new ComputeInstanceTemplate(compute, 'template', {
    // Prefixes over 37 characters get a shorter, collision-prone suffix (provider docs: name_prefix).
    provider, project, namePrefix: `${fitName(plan.name, 36)}-`,
    description: `${cluster.node.path}: ${plan.shape.accelerator} x${plan.shape.count}`,
    machineType,
    // Pre-attached on A2/A3/G2 (the API accepts a matching list); attached on N1.
    guestAccelerator: [{ type: acceleratorType, count: plan.shape.count }],
    scheduling: plan.spot ? {
      // DELETE, not STOP: the MIG repairs a preempted VM either way; a stopped one would only keep a
      // billed boot disk and a name the group then recreates in place.
      provisioningModel: 'SPOT', preemptible: true, automaticRestart: false,
      onHostMaintenance: 'TERMINATE', instanceTerminationAction: 'DELETE',
    } : {
      provisioningModel: 'STANDARD', preemptible: false, automaticRestart: true, onHostMaintenance: 'TERMINATE',
    },
    ...(reservation ? {
      reservationAffinity: { type: 'SPECIFIC_RESERVATION', specificReservation: { key: 'compute.googleapis.com/reservation-name', values: [reservation] } },
    } : {}),
    // GPUs cannot live-migrate: TERMINATE above. Secure Boot stays off: the NVIDIA driver the Deep
    // Learning VM installs on first boot is not signed for it; vTPM and integrity monitoring stay on.
    shieldedInstanceConfig: { enableSecureBoot: false, enableVtpm: true, enableIntegrityMonitoring: true },
    disk: [{
      boot: true, autoDelete: true, diskSizeGb: plan.diskGiB,
      diskType: HYPERDISK_ONLY.test(machineType) ? 'hyperdisk-balanced' : 'pd-balanced',
      sourceImage: plan.machineImage ?? GCP_GPU_IMAGE,
    }],
    // No access_config: no public IP; egress through the target's Cloud NAT.
    networkInterface: [{ subnetwork: target.subnetwork, ...(placement.gvnic ? { nicType: 'GVNIC' } : {}) }],
    // At most one policy per template (provider docs: resource_policies).
    ...(placementPolicy ? { resourcePolicies: [placementPolicy.selfLink] } : {}),
    metadata: {
      'startup-script': script,
      'enable-oslogin': 'TRUE',
      'block-project-ssh-keys': 'true',
      'install-nvidia-driver': 'True',
    },
    serviceAccount: { email: serviceAccount.email, scopes: ['cloud-platform'] },
    tags: [plan.name],
    // Ops Agent GPU metrics carry instance labels: MonitoringStack selects a cluster's hosts by this one.
    labels: { [HOST_METRICS.gcpInstanceLabel]: plan.name },
    lifecycle: { createBeforeDestroy: true },
  });

  // ---- internal passthrough NLB: a stable agentUrl; client-IP affinity keeps a client on one agent
  const lbScope = new Construct(cluster, 'load-balancer');
  const healthCheck = new ComputeRegionHealthCheck(lbScope, 'health-check', {
    provider, project, region, name: plan.name, description: `${cluster.node.path}: mlinfra-agent /healthz`,
    checkIntervalSec: 15, timeoutSec: 5, healthyThreshold: 2, unhealthyThreshold: 3,
    httpHealthCheck: { port: plan.agentPort, requestPath: '/healthz' },
  });

  const instanceGroupManager = new ComputeRegionInstanceGroupManager(compute, 'group', {
    provider, project, region, name: migName, baseInstanceName: plan.name,
    description: `${cluster.node.path}: ${plan.shape.accelerator} x${plan.shape.count} hosts`,
    version: [{ name: 'primary', instanceTemplate: instanceTemplate.selfLinkUnique }],
    // No target_size: the autoscaler below owns it (from nodes.min up); provider docs: "should never be
    // set" on a group attached to an autoscaler.
    ...(target.zones?.length ? { distributionPolicyZones: [...target.zones] } : {}),
    // GPUs are zonal and rendezvous wants one zone; Google's shape for tightly coupled batch work.
    distributionPolicyTargetShape: 'ANY_SINGLE_ZONE',
    // Non-EVEN shapes require instance_redistribution_type NONE. OPPORTUNISTIC: a new template
    // reaches hosts only when they are (re)created, never by killing a running training job.
    // Regional fixed surge/unavailable values must be 0 or at least the zone count (at most 4).
    updatePolicy: {
      type: 'OPPORTUNISTIC', minimalAction: 'REPLACE', instanceRedistributionType: 'NONE',
      maxSurgeFixed: 0, maxUnavailableFixed: Math.max(plan.nodes.max, 4),
    },
    namedPort: [{ name: 'agent', port: plan.agentPort }],
    // Driver wait, Node.js and npm install take minutes before /healthz answers: past the driver wait.
    autoHealingPolicies: { healthCheck: healthCheck.id, initialDelaySec: GCP_DRIVER_WAIT_SECONDS + 600 },
    waitForInstances: false,
    // The autoscaler and idle stop resize the group: Terraform never reverts them.
    lifecycle: { ignoreChanges: ['target_size'] },
  });
  // One queued job per GPU per host: a host leases only what its free GPUs can run.
  const autoscaler = buildGcpQueueAutoscaler(compute, {
    provider, project, region, name: plan.name, group: instanceGroupManager.id, description: `${cluster.node.path}: scale out on the jobs backlog`,
    minNodes: plan.nodes.min, maxNodes: plan.nodes.max, messagesPerHost: Math.max(1, plan.shape.count), subscriptionName: queue.resources.jobsSubscription.name,
  });

  const backendService = new ComputeRegionBackendService(lbScope, 'backend', {
    provider, project, region, name: plan.name, description: `${cluster.node.path}: mlinfra-agent hosts`,
    loadBalancingScheme: 'INTERNAL', protocol: 'TCP', sessionAffinity: 'CLIENT_IP',
    connectionDrainingTimeoutSec: 30, healthChecks: [healthCheck.id],
    backend: [{ group: instanceGroupManager.instanceGroup, balancingMode: 'CONNECTION' }],
  });
  const forwardingRule = new ComputeForwardingRule(lbScope, 'forwarding-rule', {
    provider, project, region, name: plan.name, description: `${cluster.node.path}: mlinfra-agent API`,
    loadBalancingScheme: 'INTERNAL', ipProtocol: 'TCP', ports: agentPorts,
    network: target.network, subnetwork: target.subnetwork, backendService: backendService.id,
  });

  // ---- grants: IAM members on exactly this cluster's secret, bucket or group
  let grants: Construct | undefined;
  const grantScope = () => (grants ??= new Construct(cluster, 'grants'));
  const principalOf = (grantee: IGrantable, method: string) => principalOn(cluster, method, grantee, 'gcp', 'the cluster');
  const bucketMember = (grantee: IGrantable, grantId: string, role: string, what: string) => {
    const member = principalOf(grantee, what).member;
    new StorageBucketIamMember(grantScope(), grantId, { provider, bucket: bucket.name, role, member });
  };

  const resources: GcpGpuClusterResources = {
    serviceAccount, hostProjectRoles, bucket, bucketHostAccess, agentScriptObject, agentStorageObject, agentExtraObjects,
    secret, secretVersion, secretHostAccess, instanceTemplate, instanceGroupManager,
    clientFirewall, healthCheckFirewall, peerFirewall, healthCheck, backendService, forwardingRule, autostopMember,
    queue: queue.resources, autoscaler, placementPolicy,
    get scaleRole() {
      return scaleRole;
    },
  };

  return {
    agentUrl: `http://${forwardingRule.ipAddress}:${plan.agentPort}`,
    agentTokenSecret: { store: 'gcp-secret-manager', project, secretId: secret.secretId },
    artifactsUri: `gs://${bucket.name}`,
    grantPrincipal: { kind: 'gcp', email: serviceAccount.email, member: hostMember },
    grantAgentAccess: (g, id) => {
      const member = principalOf(g, 'grantAgentAccess').member;
      new SecretManagerSecretIamMember(grantScope(), id, { provider, project, secretId: secret.secretId, role: 'roles/secretmanager.secretAccessor', member });
    },
    grantArtifactsRead: (g, id) => {
      bucketMember(g, id, 'roles/storage.objectViewer', 'grantArtifactsRead');
    },
    // Create only: writers add new objects (runs, models) and cannot overwrite or delete history.
    grantArtifactsWrite: (g, id) => {
      bucketMember(g, id, 'roles/storage.objectCreator', 'grantArtifactsWrite');
    },
    grantScale: (g, id) => {
      const member = principalOf(g, 'grantScale').member;
      bindScale(grantScope(), id, member);
    },
    hostGroup: { kind: 'gcp-instance-group-manager', name: instanceGroupManager.name, project, region },
    jobQueue: queue.jobQueue,
    // Publish on the jobs topic only: a submitter or a schedule, never a consumer.
    grantEnqueue: (g, id) => {
      queue.grantEnqueue(grantScope(), id, principalOf(g, 'grantEnqueue').member);
    },
    storeObject: (scope: Construct, id: string, o: StoreObjectOptions): StoredObject => ({
      uri: `gs://${bucket.name}/${o.key}`,
      resource: new StorageBucketObject(scope, id, { provider, bucket: bucket.name, name: o.key, content: o.content, contentType: o.contentType }),
    }),
    resources,
  };
}
