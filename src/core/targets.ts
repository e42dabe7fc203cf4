/**
 * Targets: where a construct's resources go. A target owns its provider (created, or adopted from
 * the user), the region/project/namespace, the network, and the tags or labels on everything.
 */
import { Aspects, Fn, TerraformProvider, Token } from 'cdktf';
import { Construct } from 'constructs';
import { TargetKind } from './accelerators';
import { Errors } from './errors';
import { resourceName } from './naming';
import { DEFAULT_TAGS, ProviderTagsAspect } from './tags';
import { sameConstructs } from './compat';
import { lazyClass, requireProvider } from './lazy';

// Provider classes load on first use (see core/lazy.ts).
const AwsProvider = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/provider') as typeof import('@cdktf/provider-aws/lib/provider')).AwsProvider));
type AwsProvider = import('@cdktf/provider-aws/lib/provider').AwsProvider;
const DataAwsAvailabilityZones = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/data-aws-availability-zones') as typeof import('@cdktf/provider-aws/lib/data-aws-availability-zones')).DataAwsAvailabilityZones));
type DataAwsAvailabilityZones = import('@cdktf/provider-aws/lib/data-aws-availability-zones').DataAwsAvailabilityZones;
const DataAwsCallerIdentity = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/data-aws-caller-identity') as typeof import('@cdktf/provider-aws/lib/data-aws-caller-identity')).DataAwsCallerIdentity));
type DataAwsCallerIdentity = import('@cdktf/provider-aws/lib/data-aws-caller-identity').DataAwsCallerIdentity;
const DataAwsPartition = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/data-aws-partition') as typeof import('@cdktf/provider-aws/lib/data-aws-partition')).DataAwsPartition));
type DataAwsPartition = import('@cdktf/provider-aws/lib/data-aws-partition').DataAwsPartition;
const DefaultSecurityGroup = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/default-security-group') as typeof import('@cdktf/provider-aws/lib/default-security-group')).DefaultSecurityGroup));
type DefaultSecurityGroup = import('@cdktf/provider-aws/lib/default-security-group').DefaultSecurityGroup;
const Eip = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/eip') as typeof import('@cdktf/provider-aws/lib/eip')).Eip));
type Eip = import('@cdktf/provider-aws/lib/eip').Eip;
const InternetGateway = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/internet-gateway') as typeof import('@cdktf/provider-aws/lib/internet-gateway')).InternetGateway));
type InternetGateway = import('@cdktf/provider-aws/lib/internet-gateway').InternetGateway;
const NatGateway = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/nat-gateway') as typeof import('@cdktf/provider-aws/lib/nat-gateway')).NatGateway));
type NatGateway = import('@cdktf/provider-aws/lib/nat-gateway').NatGateway;
const RouteTable = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/route-table') as typeof import('@cdktf/provider-aws/lib/route-table')).RouteTable));
type RouteTable = import('@cdktf/provider-aws/lib/route-table').RouteTable;
const RouteTableAssociation = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/route-table-association') as typeof import('@cdktf/provider-aws/lib/route-table-association')).RouteTableAssociation));
type RouteTableAssociation = import('@cdktf/provider-aws/lib/route-table-association').RouteTableAssociation;
const Subnet = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/subnet') as typeof import('@cdktf/provider-aws/lib/subnet')).Subnet));
type Subnet = import('@cdktf/provider-aws/lib/subnet').Subnet;
const Vpc = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/vpc') as typeof import('@cdktf/provider-aws/lib/vpc')).Vpc));
type Vpc = import('@cdktf/provider-aws/lib/vpc').Vpc;
const VpcEndpoint = lazyClass(() => requireProvider('aws', () => (require('@cdktf/provider-aws/lib/vpc-endpoint') as typeof import('@cdktf/provider-aws/lib/vpc-endpoint')).VpcEndpoint));
type VpcEndpoint = import('@cdktf/provider-aws/lib/vpc-endpoint').VpcEndpoint;
const GoogleProvider = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/provider') as typeof import('@cdktf/provider-google/lib/provider')).GoogleProvider));
type GoogleProvider = import('@cdktf/provider-google/lib/provider').GoogleProvider;
const ComputeNetwork = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/compute-network') as typeof import('@cdktf/provider-google/lib/compute-network')).ComputeNetwork));
type ComputeNetwork = import('@cdktf/provider-google/lib/compute-network').ComputeNetwork;
const ComputeRouter = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/compute-router') as typeof import('@cdktf/provider-google/lib/compute-router')).ComputeRouter));
type ComputeRouter = import('@cdktf/provider-google/lib/compute-router').ComputeRouter;
const ComputeRouterNat = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/compute-router-nat') as typeof import('@cdktf/provider-google/lib/compute-router-nat')).ComputeRouterNat));
type ComputeRouterNat = import('@cdktf/provider-google/lib/compute-router-nat').ComputeRouterNat;
const ComputeSubnetwork = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/compute-subnetwork') as typeof import('@cdktf/provider-google/lib/compute-subnetwork')).ComputeSubnetwork));
type ComputeSubnetwork = import('@cdktf/provider-google/lib/compute-subnetwork').ComputeSubnetwork;
const KubernetesProvider = lazyClass(() => requireProvider('kubernetes', () => (require('@cdktf/provider-kubernetes/lib/provider') as typeof import('@cdktf/provider-kubernetes/lib/provider')).KubernetesProvider));
type KubernetesProvider = import('@cdktf/provider-kubernetes/lib/provider').KubernetesProvider;
const NamespaceV1 = lazyClass(() => requireProvider('kubernetes', () => (require('@cdktf/provider-kubernetes/lib/namespace-v1') as typeof import('@cdktf/provider-kubernetes/lib/namespace-v1')).NamespaceV1));
type NamespaceV1 = import('@cdktf/provider-kubernetes/lib/namespace-v1').NamespaceV1;

const TAG_KEY = /^[a-zA-Z0-9 _.:/=+\-@]{1,128}$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const K8S_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** True for an IPv4 CIDR block such as 10.0.0.0/16. */
export function isCidr(value: string): boolean {
  const m = CIDR.exec(value);
  return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}

function checkTags(scope: Construct, prop: string, tags: Record<string, string> | undefined, key: RegExp, value: RegExp | undefined, allowed: string): void {
  for (const [k, v] of Object.entries(tags ?? {})) {
    if (!key.test(k)) throw Errors.invalid(scope, `${prop} key`, k, allowed);
    if (value && !Token.isUnresolved(v) && !value.test(v)) throw Errors.invalid(scope, `${prop}.${k}`, v, allowed);
  }
}

// ---------------------------------------------------------------------------------------------- AWS

export interface AwsNetworkAttributes {
  /** An existing VPC. */
  readonly vpcId: string;
  /**
   * Private subnets, at least one. Endpoints, load balancers and Redis use them all (two or more in
   * different zones for availability); a GPU cluster of more than one node uses only the first, since
   * its cluster placement group lives in one Availability Zone.
   */
  readonly subnetIds: string[];
  /** The VPC's CIDR block: the default source allowed to reach agents. */
  readonly cidrBlock: string;
}

export interface AwsTargetProps {
  /** Region, e.g. `us-east-1`. */
  readonly region: string;
  /**
   * An existing AWS provider to use instead of creating one (its region must be `region`).
   * @default - a provider for `region` is created, with `tags` as its default tags
   */
  readonly provider?: TerraformProvider;
  /**
   * An existing network.
   * @default - on first use, a VPC with two private subnets, one NAT gateway and an S3 gateway endpoint is created
   */
  readonly network?: AwsNetworkAttributes;
  /**
   * CIDR block of the created VPC.
   * @default '10.42.0.0/16'
   */
  readonly vpcCidr?: string;
  /**
   * Tags on every resource.
   * @default - only `managed-by: cdktf-mlinfra`
   */
  readonly tags?: Record<string, string>;
}

/** The created network, exposed for overrides. */
export interface AwsCreatedNetwork {
  readonly vpc: Vpc;
  readonly privateSubnets: Subnet[];
  readonly publicSubnet: Subnet;
  readonly natGateway: NatGateway;
  readonly s3Endpoint: VpcEndpoint;
}

/**
 * An AWS account and region to deploy into. Owns the `aws` provider (created with default tags, or
 * adopted through `provider`) and the network: the VPC and private subnets you give, or, on first use,
 * a private VPC with two subnets, one NAT gateway and an S3 gateway endpoint.
 *
 * @example
 * const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1', tags: { team: 'ml' } });
 * new GpuCluster(stack, 'train', { target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8 });
 */
export class AwsTarget extends Construct {
  public readonly kind = 'aws' as const;
  public readonly region: string;
  public readonly provider: TerraformProvider;
  public readonly tags: Readonly<Record<string, string>>;
  private readonly props: AwsTargetProps;
  private networkCache?: { vpcId: string; subnetIds: string[]; cidrBlock: string; created?: AwsCreatedNetwork };
  private identity?: DataAwsCallerIdentity;
  private partitionData?: DataAwsPartition;

  constructor(scope: Construct, id: string, props: AwsTargetProps) {
    super(sameConstructs(scope, id), id);
    if (!props || typeof props.region !== 'string' || (!Token.isUnresolved(props.region) && !/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(props.region))) {
      throw Errors.invalid(this, 'region', props?.region, 'an AWS region name such as us-east-1');
    }
    const vpcCidr = props.vpcCidr ?? '10.42.0.0/16';
    // Subnets are carved by Terraform (cidrsubnet): a Terraform value is checked there, not here.
    if (!Token.isUnresolved(vpcCidr) && (!isCidr(vpcCidr) || Number(vpcCidr.split('/')[1]) > 24 || Number(vpcCidr.split('/')[1]) < 16)) {
      throw Errors.invalid(this, 'vpcCidr', props.vpcCidr, 'an IPv4 CIDR block from /16 to /24, e.g. 10.42.0.0/16');
    }
    if (props.network) {
      if (!props.network.subnetIds?.length) throw Errors.invalid(this, 'network.subnetIds', props.network.subnetIds, 'at least one subnet id');
      if (!Token.isUnresolved(props.network.cidrBlock) && !isCidr(props.network.cidrBlock ?? '')) {
        throw Errors.invalid(this, 'network.cidrBlock', props.network.cidrBlock, 'the VPC CIDR block, e.g. 10.0.0.0/16');
      }
    }
    checkTags(this, 'tags', props.tags, TAG_KEY, /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u, 'AWS tag keys of 1-128 and values of 0-256 letters, digits, spaces and _.:/=+-@');
    this.props = { ...props, vpcCidr };
    this.region = props.region;
    this.tags = { ...DEFAULT_TAGS, ...props.tags };
    if (props.provider) {
      this.provider = props.provider;
      Aspects.of(scope).add(new ProviderTagsAspect(props.provider, 'tags', { ...this.tags }));
    } else {
      this.provider = new AwsProvider(this, 'provider', {
        region: props.region,
        alias: resourceName(this, { maxLength: 40 }).replace(/-/g, '_'),
        defaultTags: [{ tags: { ...this.tags } }],
      });
    }
  }

  /** Private subnets hosts run in. Creates the network on first use unless one was given. */
  public get subnetIds(): string[] {
    return this.network().subnetIds;
  }
  public get vpcId(): string {
    return this.network().vpcId;
  }
  public get vpcCidr(): string {
    return this.network().cidrBlock;
  }
  /**
   * This target's network as attributes another AwsTarget takes as `network`, so that stacks share one
   * VPC and NAT gateway (accounts start with quotas of 5 VPCs and 5 Elastic IPs per region). Creates the
   * network on first use. Across stacks, cdktf passes the values through outputs and remote state.
   */
  public get networkAttributes(): AwsNetworkAttributes {
    const n = this.network();
    return { vpcId: n.vpcId, subnetIds: [...n.subnetIds], cidrBlock: n.cidrBlock };
  }
  /** The network this target created, if it created one (after first use). */
  public get createdNetwork(): AwsCreatedNetwork | undefined {
    return this.networkCache?.created;
  }
  public get accountId(): string {
    this.identity ??= new DataAwsCallerIdentity(this, 'identity', { provider: this.provider });
    return this.identity.accountId;
  }
  /** `aws`, `aws-cn` or `aws-us-gov`, for ARNs. */
  public get partition(): string {
    this.partitionData ??= new DataAwsPartition(this, 'partition', { provider: this.provider });
    return this.partitionData.partition;
  }

  private network(): { vpcId: string; subnetIds: string[]; cidrBlock: string } {
    if (this.networkCache) return this.networkCache;
    if (this.props.network) {
      this.networkCache = { ...this.props.network };
      return this.networkCache;
    }
    const provider = this.provider;
    const ns = new Construct(this, 'network');
    const cidr = this.props.vpcCidr!;
    // Two private subnets of a quarter of the block each, one small public subnet for the NAT gateway.
    const sub = (index: number, bits: number) => Fn.cidrsubnet(cidr, bits, index);
    const zones = new DataAwsAvailabilityZones(ns, 'zones', { provider, state: 'available' });
    const name = resourceName(this, { maxLength: 48 });
    const vpc = new Vpc(ns, 'vpc', { provider, cidrBlock: cidr, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: name } });
    // Lock down the default security group: nothing may use it by accident.
    new DefaultSecurityGroup(ns, 'default-sg', { provider, vpcId: vpc.id, ingress: [], egress: [] });
    const privateSubnets = [0, 1].map((i) => new Subnet(ns, `private-${i}`, {
      provider, vpcId: vpc.id, cidrBlock: sub(i, 2), availabilityZone: Fn.element(zones.names, i),
      mapPublicIpOnLaunch: false, tags: { Name: `${name}-private-${i}` },
    }));
    const publicSubnet = new Subnet(ns, 'public', {
      provider, vpcId: vpc.id, cidrBlock: sub(8, 4), availabilityZone: Fn.element(zones.names, 0),
      mapPublicIpOnLaunch: false, tags: { Name: `${name}-public` },
    });
    const igw = new InternetGateway(ns, 'igw', { provider, vpcId: vpc.id, tags: { Name: name } });
    const eip = new Eip(ns, 'nat-ip', { provider, domain: 'vpc', tags: { Name: `${name}-nat` } });
    const nat = new NatGateway(ns, 'nat', { provider, allocationId: eip.id, subnetId: publicSubnet.id, tags: { Name: name }, dependsOn: [igw] });
    const publicRt = new RouteTable(ns, 'public-rt', { provider, vpcId: vpc.id, route: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }], tags: { Name: `${name}-public` } });
    new RouteTableAssociation(ns, 'public-rta', { provider, subnetId: publicSubnet.id, routeTableId: publicRt.id });
    const privateRt = new RouteTable(ns, 'private-rt', { provider, vpcId: vpc.id, route: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }], tags: { Name: `${name}-private` } });
    privateSubnets.forEach((s, i) => new RouteTableAssociation(ns, `private-rta-${i}`, { provider, subnetId: s.id, routeTableId: privateRt.id }));
    // S3 traffic (agent bundle, artifacts) stays off the NAT gateway: cheaper and private.
    const s3Endpoint = new VpcEndpoint(ns, 's3-endpoint', {
      provider, vpcId: vpc.id, serviceName: `com.amazonaws.${this.region}.s3`, vpcEndpointType: 'Gateway', routeTableIds: [privateRt.id],
    });
    this.networkCache = {
      vpcId: vpc.id, subnetIds: privateSubnets.map((s) => s.id), cidrBlock: cidr,
      created: { vpc, privateSubnets, publicSubnet, natGateway: nat, s3Endpoint },
    };
    return this.networkCache;
  }
}

// ---------------------------------------------------------------------------------------------- GCP

export interface GcpNetworkAttributes {
  /** Self link or id of an existing VPC network. */
  readonly network: string;
  /** Self link or id of a subnetwork in the target's region. */
  readonly subnetwork: string;
  /** The subnetwork's primary range: the default source allowed to reach agents. */
  readonly cidrBlock: string;
}

export interface GcpTargetProps {
  readonly project: string;
  /** Region, e.g. `us-central1`. */
  readonly region: string;
  /**
   * Zones GPU groups may use (GPUs are zonal; name the zones that carry your accelerator).
   * @default - the managed instance group's own choice across the region
   */
  readonly zones?: string[];
  /**
   * An existing Google provider.
   * @default - a provider for `project` and `region` is created, with `labels` as default labels
   */
  readonly provider?: TerraformProvider;
  /**
   * An existing network.
   * @default - on first use, a custom-mode VPC, one private subnetwork and Cloud NAT are created
   */
  readonly network?: GcpNetworkAttributes;
  /**
   * Primary range of the created subnetwork.
   * @default '10.43.0.0/20'
   */
  readonly subnetCidr?: string;
  /**
   * Labels on every resource that takes labels.
   * @default - only `managed-by: cdktf-mlinfra`
   */
  readonly labels?: Record<string, string>;
  /**
   * Enable the Google APIs the stack's constructs need (`google_project_service`, never disabled on
   * destroy), and make every resource of this target wait for them. Set false where APIs are managed
   * centrally; `requiredApis` then lists what must be enabled.
   * @default true
   */
  readonly manageApis?: boolean;
  /**
   * Name of the allocated range of an existing private services access connection on `network`
   * (Cloud SQL and others make one per network): Memorystore reserves from it and no connection is made.
   * @default - on first use, one /20 range and one connection for the target's network; on a given `network`, destroy leaves the peering (others may use it)
   */
  readonly privateServiceAccessRange?: string;
  /**
   * Compute Engine reservations GPU groups consume, by machine type (`{ 'a3-highgpu-8g': 'my-h100s' }`).
   * A3 shapes are sold through reservations, Spot or flex-start, not on demand.
   * @default - none: on-demand or Spot capacity only
   */
  readonly reservations?: Readonly<Record<string, string>>;
}

/** Private services access for the target's network (Memorystore, and any other producer service). */
export interface GcpPrivateServiceAccess {
  /** The allocated range's name, for `reserved_ip_range`. */
  readonly rangeName: string;
  /** Created range and connection; undefined when `privateServiceAccessRange` adopted an existing one. */
  readonly range?: ComputeGlobalAddress;
  readonly connection?: ServiceNetworkingConnection;
}

// Loaded on first use, like the provider classes above.
const ProjectService = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/project-service') as typeof import('@cdktf/provider-google/lib/project-service')).ProjectService));
type ProjectService = import('@cdktf/provider-google/lib/project-service').ProjectService;
const ComputeGlobalAddress = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/compute-global-address') as typeof import('@cdktf/provider-google/lib/compute-global-address')).ComputeGlobalAddress));
type ComputeGlobalAddress = import('@cdktf/provider-google/lib/compute-global-address').ComputeGlobalAddress;
const ServiceNetworkingConnection = lazyClass(() => requireProvider('gcp', () => (require('@cdktf/provider-google/lib/service-networking-connection') as typeof import('@cdktf/provider-google/lib/service-networking-connection')).ServiceNetworkingConnection));
type ServiceNetworkingConnection = import('@cdktf/provider-google/lib/service-networking-connection').ServiceNetworkingConnection;

const GOOGLE_API = /^[a-z][a-z0-9-]*\.googleapis\.com$/;
/** The API serving each resource type this library creates: a resource waits for its own API only. */
const API_OF_TYPE: readonly [RegExp, string][] = [
  [/^google_compute_/, 'compute.googleapis.com'],
  [/^google_(service_account|project_iam_custom_role)$/, 'iam.googleapis.com'],
  [/^google_project_iam_/, 'cloudresourcemanager.googleapis.com'],
  [/^google_secret_manager_/, 'secretmanager.googleapis.com'],
  [/^google_storage_/, 'storage.googleapis.com'],
  [/^google_cloud_run_v2_/, 'run.googleapis.com'],
  [/^google_cloud_scheduler_/, 'cloudscheduler.googleapis.com'],
  [/^google_bigquery_/, 'bigquery.googleapis.com'],
  [/^google_bigtable_/, 'bigtableadmin.googleapis.com'],
  [/^google_redis_/, 'redis.googleapis.com'],
  [/^google_service_networking_/, 'servicenetworking.googleapis.com'],
  [/^google_monitoring_/, 'monitoring.googleapis.com'],
  [/^google_pubsub_/, 'pubsub.googleapis.com'],
  [/^google_logging_/, 'logging.googleapis.com'],
];

export interface GcpCreatedNetwork {
  readonly network: ComputeNetwork;
  readonly subnetwork: ComputeSubnetwork;
  readonly router: ComputeRouter;
  readonly nat: ComputeRouterNat;
}

/**
 * A GCP project and region to deploy into. Owns the `google` provider (created with default labels,
 * or adopted) and the network: the VPC and subnetwork you give, or, on first use, a custom-mode VPC
 * with one subnetwork (private Google access) and Cloud NAT.
 *
 * @example
 * const gcp = new GcpTarget(stack, 'gcp', { project: 'acme-ml', region: 'us-central1' });
 * new GpuCluster(stack, 'train', { target: gcp, accelerator: 'L4', nodes: { min: 0, max: 2 }, spot: true });
 */
export class GcpTarget extends Construct {
  public readonly kind = 'gcp' as const;
  public readonly project: string;
  public readonly region: string;
  public readonly zones?: string[];
  public readonly provider: TerraformProvider;
  public readonly labels: Readonly<Record<string, string>>;
  private readonly props: GcpTargetProps;
  private networkCache?: { network: string; subnetwork: string; cidrBlock: string; created?: GcpCreatedNetwork };
  private readonly apis = new Map<string, ProjectService | undefined>();
  private apiScope?: Construct;
  private psa?: GcpPrivateServiceAccess;

  constructor(scope: Construct, id: string, props: GcpTargetProps) {
    super(sameConstructs(scope, id), id);
    if (!props || typeof props.project !== 'string' || (!Token.isUnresolved(props.project) && !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(props.project))) {
      throw Errors.invalid(this, 'project', props?.project, 'a GCP project id: 6-30 lower-case letters, digits or hyphens, starting with a letter');
    }
    if (typeof props.region !== 'string' || (!Token.isUnresolved(props.region) && !/^[a-z]+-[a-z]+\d+$/.test(props.region))) {
      throw Errors.invalid(this, 'region', props.region, 'a GCP region such as us-central1');
    }
    for (const z of props.zones ?? []) {
      if (!Token.isUnresolved(z) && !z.startsWith(`${props.region}-`)) {
        throw Errors.invalid(this, 'zones', z, `zones of ${props.region}, such as ${props.region}-a`);
      }
    }
    const subnetCidr = props.subnetCidr ?? '10.43.0.0/20';
    if (!Token.isUnresolved(subnetCidr) && (!isCidr(subnetCidr) || Number(subnetCidr.split('/')[1]) > 29)) {
      throw Errors.invalid(this, 'subnetCidr', props.subnetCidr, 'an IPv4 CIDR block of /29 or larger, e.g. 10.43.0.0/20');
    }
    checkTags(this, 'labels', props.labels, LABEL_KEY, LABEL_VALUE, 'GCP labels: keys of 1-63 and values of 0-63 lower-case letters, digits, _ or -; keys start with a letter');
    // Allocated range names are Compute Engine names (RFC 1035, at most 63 characters).
    if (props.privateServiceAccessRange !== undefined && !Token.isUnresolved(props.privateServiceAccessRange) && !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(props.privateServiceAccessRange)) {
      throw Errors.invalid(this, 'privateServiceAccessRange', props.privateServiceAccessRange, 'the name of an allocated range (purpose VPC_PEERING) on the network: 1-63 lower-case letters, digits or -');
    }
    for (const [machineType, reservation] of Object.entries(props.reservations ?? {})) {
      if (!/^[a-z][a-z0-9]*-[a-z0-9-]+$/.test(machineType)) throw Errors.invalid(this, 'reservations key', machineType, 'a machine type such as a3-highgpu-8g');
      if (!Token.isUnresolved(reservation) && !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(reservation)) {
        throw Errors.invalid(this, `reservations.${machineType}`, reservation, 'a reservation name: 1-63 lower-case letters, digits or -');
      }
    }
    this.props = { ...props, subnetCidr };
    this.project = props.project;
    this.region = props.region;
    this.zones = props.zones;
    this.labels = { ...DEFAULT_TAGS, ...props.labels };
    if (props.provider) {
      this.provider = props.provider;
      Aspects.of(scope).add(new ProviderTagsAspect(props.provider, 'labels', { ...this.labels }));
    } else {
      this.provider = new GoogleProvider(this, 'provider', {
        project: props.project, region: props.region,
        alias: resourceName(this, { maxLength: 40 }).replace(/-/g, '_'),
        defaultLabels: { ...this.labels },
      });
    }
    // A fresh project has its APIs off: every resource of this target waits for the enabled ones.
    const provider = this.provider;
    const apis = this.apis;
    Aspects.of(scope).add({
      visit(node) {
        const r = node as { terraformResourceType?: string; provider?: TerraformProvider; dependsOn?: string[]; fqn?: string };
        if (!r.terraformResourceType?.startsWith('google_') || r.terraformResourceType === 'google_project_service' || r.provider !== provider) return;
        // Its own API when known, every enabled one otherwise. Rendered as cdktf renders a dependable:
        // the address without ${}.
        const api = API_OF_TYPE.find(([re]) => re.test(r.terraformResourceType!))?.[1];
        const own = api ? apis.get(api) : undefined;
        const deps = (own ? [own] : [...apis.values()]).filter((s): s is ProjectService => !!s).map((s) => Token.asString({
          creationStack: [], toString: () => s.fqn,
          resolve: (context: { suppressBraces?: boolean }) => { context.suppressBraces = true; return s.fqn; },
        }));
        if (deps.length) r.dependsOn = [...new Set([...(r.dependsOn ?? []), ...deps])];
      },
    });
  }

  /** Whether this target enables the APIs its constructs need (`manageApis`). */
  public get managesApis(): boolean {
    return this.props.manageApis ?? true;
  }

  /** Every API a construct on this target asked for, sorted (enabled by the target unless `manageApis` is false). */
  public get requiredApis(): string[] {
    return [...this.apis.keys()].sort();
  }

  /** Called by constructs: the Google APIs their resources need (`compute.googleapis.com` ...). */
  public requireApis(...apis: string[]): void {
    for (const api of apis) {
      if (!GOOGLE_API.test(api)) throw Errors.invalid(this, 'requireApis', api, 'a Google API service name such as compute.googleapis.com');
      if (this.apis.has(api)) continue;
      if (!this.managesApis) {
        this.apis.set(api, undefined);
        continue;
      }
      this.apiScope ??= new Construct(this, 'apis');
      // Never disabled on destroy: other stacks of the project may use the same API.
      this.apis.set(api, new ProjectService(this.apiScope, api.split('.')[0], {
        provider: this.provider, project: this.project, service: api, disableOnDestroy: false, disableDependentServices: false,
      }));
    }
  }

  /**
   * Private services access on the target's network: one allocated range and one connection per
   * network (a second connection for the same network fails), or the adopted `privateServiceAccessRange`.
   */
  public privateServiceAccess(): GcpPrivateServiceAccess {
    if (this.psa) return this.psa;
    if (this.props.privateServiceAccessRange) {
      this.psa = { rangeName: this.props.privateServiceAccessRange };
      return this.psa;
    }
    this.requireApis('compute.googleapis.com', 'servicenetworking.googleapis.com');
    const ns = new Construct(this, 'private-service-access');
    const range = new ComputeGlobalAddress(ns, 'range', {
      provider: this.provider, project: this.project, name: resourceName(this, { maxLength: 63, suffix: 'psa' }),
      purpose: 'VPC_PEERING', addressType: 'INTERNAL', prefixLength: 20, network: this.network,
    });
    const connection = new ServiceNetworkingConnection(ns, 'connection', {
      provider: this.provider, network: this.network, service: 'servicenetworking.googleapis.com', reservedPeeringRanges: [range.name],
      // A peering made earlier (Cloud SQL ...) gets our range added instead of Create failing. On a
      // network we were given, destroy abandons the peering others may use; on the network this target
      // created, it is deleted with the network (an abandoned peering would block deleting the network:
      // terraform-provider-google#16275, magic-modules#18476).
      updateOnCreationFail: true, ...(this.props.network ? { deletionPolicy: 'ABANDON' } : {}),
    });
    this.psa = { rangeName: range.name, range, connection };
    return this.psa;
  }

  /** The reservation GPU groups of `machineType` consume, if the target names one. */
  public reservationFor(machineType: string): string | undefined {
    return this.props.reservations?.[machineType];
  }

  public get network(): string {
    return this.ensureNetwork().network;
  }
  public get subnetwork(): string {
    return this.ensureNetwork().subnetwork;
  }
  public get subnetCidr(): string {
    return this.ensureNetwork().cidrBlock;
  }
  public get createdNetwork(): GcpCreatedNetwork | undefined {
    return this.networkCache?.created;
  }

  private ensureNetwork(): { network: string; subnetwork: string; cidrBlock: string } {
    if (this.networkCache) return this.networkCache;
    if (this.props.network) {
      this.networkCache = { ...this.props.network };
      return this.networkCache;
    }
    const provider = this.provider;
    this.requireApis('compute.googleapis.com');
    const ns = new Construct(this, 'network');
    const name = resourceName(this, { maxLength: 50 });
    const network = new ComputeNetwork(ns, 'vpc', { provider, project: this.project, name, autoCreateSubnetworks: false, routingMode: 'REGIONAL' });
    const subnetwork = new ComputeSubnetwork(ns, 'subnet', {
      provider, project: this.project, region: this.region, name, network: network.id, ipCidrRange: this.props.subnetCidr!,
      privateIpGoogleAccess: true,
      logConfig: { aggregationInterval: 'INTERVAL_10_MIN', flowSampling: 0.5, metadata: 'INCLUDE_ALL_METADATA' },
    });
    const router = new ComputeRouter(ns, 'router', { provider, project: this.project, region: this.region, name, network: network.id });
    const nat = new ComputeRouterNat(ns, 'nat', {
      provider, project: this.project, region: this.region, name, router: router.name,
      natIpAllocateOption: 'AUTO_ONLY', sourceSubnetworkIpRangesToNat: 'ALL_SUBNETWORKS_ALL_IP_RANGES',
      logConfig: { enable: true, filter: 'ERRORS_ONLY' },
    });
    this.networkCache = { network: network.id, subnetwork: subnetwork.id, cidrBlock: this.props.subnetCidr!, created: { network, subnetwork, router, nat } };
    return this.networkCache;
  }
}

// ---------------------------------------------------------------------------------------- Kubernetes

/** How GPU nodes are labelled in the cluster, so pods can select the right accelerator. */
export type GpuNodeLabelScheme = 'nvidia-gfd' | 'gke' | 'none';

/**
 * Where Kubernetes jobs, checkpoints and pipeline runs keep artifacts: an object store, so they outlive
 * the pods. Credentials: a Secret in the target's namespace mounted as a file (never env), or, without
 * one, the job service account's workload identity (IRSA, GKE Workload Identity).
 */
export interface KubernetesArtifactStore {
  /** `s3://bucket/prefix` (AWS S3 or an S3-compatible store) or `gs://bucket/prefix`. */
  readonly uri: string;
  /**
   * S3-compatible endpoint, e.g. `http://minio.minio.svc:9000` (path-style addressing). s3:// only.
   * @default - AWS S3
   */
  readonly endpoint?: string;
  /** S3 region. s3:// only. @default 'us-east-1' */
  readonly region?: string;
  /**
   * Secret (in the target's namespace) with the credentials file: for s3:// an AWS shared credentials
   * file, for gs:// a service account key JSON.
   * @default - workload identity of the job service account
   */
  readonly credentialsSecret?: { readonly name: string; readonly key: string };
}

export interface KubernetesTargetProps {
  /** Namespace every object goes in. */
  readonly namespace: string;
  /**
   * Create the namespace.
   * @default true
   */
  readonly createNamespace?: boolean;
  /**
   * An existing Kubernetes provider.
   * @default - a provider reading `kubeconfigPath` (and `kubeconfigContext`) is created
   */
  readonly provider?: TerraformProvider;
  /** @default '~/.kube/config' */
  readonly kubeconfigPath?: string;
  /** @default - the kubeconfig's current context */
  readonly kubeconfigContext?: string;
  /**
   * Node labels that tell GPU models apart: NVIDIA GPU Feature Discovery's `nvidia.com/gpu.product`,
   * GKE's `cloud.google.com/gke-accelerator`, or none (any GPU node).
   * @default 'nvidia-gfd'
   */
  readonly gpuNodeLabels?: GpuNodeLabelScheme;
  /**
   * Labels on every object.
   * @default - only `managed-by: cdktf-mlinfra`
   */
  readonly labels?: Record<string, string>;
  /**
   * Storage class for persistent volumes.
   * @default - the cluster's default storage class
   */
  readonly storageClassName?: string;
  /**
   * Object store for artifacts, checkpoints and pipeline runs.
   * @default - a volume (`file://`): single-node use only; multi-node jobs are refused
   */
  readonly artifactStore?: KubernetesArtifactStore;
  /**
   * Kueue and JobSet: `'install'` installs the pinned versions with Helm (and the GpuClusters' queues
   * as a Helm release applied after them); `'existing'` requires them installed (checked at plan).
   * @default 'existing'
   */
  readonly kueueAndJobSet?: 'install' | 'existing';
  /**
   * The Helm provider for `kueueAndJobSet: 'install'`.
   * @default - one reading the same kubeconfig as this target's provider (required when `provider` is given)
   */
  readonly helmProvider?: TerraformProvider;
}

/**
 * A Kubernetes namespace to deploy into. Owns the `kubernetes` provider (from a kubeconfig context, or
 * adopted) and, unless told not to, creates the namespace. GPU nodes are found by the labels of
 * `gpuNodeLabels` (NVIDIA GPU Feature Discovery or GKE).
 *
 * @example
 * const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
 * new GpuCluster(stack, 'train', { target: k8s, accelerator: 'A100-80GB', acceleratorsPerNode: 8 });
 */
export class KubernetesTarget extends Construct {
  public readonly kind = 'kubernetes' as const;
  public readonly provider: TerraformProvider;
  /** The namespace name; a reference to the created namespace when this target creates it. */
  public readonly namespace: string;
  public readonly gpuNodeLabels: GpuNodeLabelScheme;
  public readonly labels: Readonly<Record<string, string>>;
  public readonly storageClassName?: string;
  public readonly namespaceResource?: NamespaceV1;
  public readonly artifactStore?: KubernetesArtifactStore;
  public readonly kueueAndJobSet: 'install' | 'existing';
  public readonly helmProvider?: TerraformProvider;
  /** The kubeconfig this target's own provider reads; undefined for an adopted provider. */
  public readonly kubeconfig?: { readonly path: string; readonly context?: string };

  constructor(scope: Construct, id: string, props: KubernetesTargetProps) {
    super(sameConstructs(scope, id), id);
    if (!props || typeof props.namespace !== 'string' || (!Token.isUnresolved(props.namespace) && !K8S_NAME.test(props.namespace))) {
      throw Errors.invalid(this, 'namespace', props?.namespace, 'a DNS-1123 label: 1-63 lower-case letters, digits or -, starting and ending alphanumeric');
    }
    const schemes: GpuNodeLabelScheme[] = ['nvidia-gfd', 'gke', 'none'];
    if (props.gpuNodeLabels !== undefined && !schemes.includes(props.gpuNodeLabels)) {
      throw Errors.unknown(this, 'gpuNodeLabels', props.gpuNodeLabels, schemes);
    }
    checkTags(this, 'labels', props.labels, /^([a-z0-9.-]{1,253}\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
      /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/, 'Kubernetes label keys ([prefix/]name) and values of at most 63 alphanumerics, -, _ or .');
    this.gpuNodeLabels = props.gpuNodeLabels ?? 'nvidia-gfd';
    this.labels = { 'app.kubernetes.io/managed-by': 'cdktf-mlinfra', ...props.labels };
    this.storageClassName = props.storageClassName;
    this.artifactStore = props.artifactStore && checkArtifactStore(this, props.artifactStore);
    if (props.kueueAndJobSet !== undefined && !['install', 'existing'].includes(props.kueueAndJobSet)) {
      throw Errors.unknown(this, 'kueueAndJobSet', props.kueueAndJobSet, ['install', 'existing']);
    }
    this.kueueAndJobSet = props.kueueAndJobSet ?? 'existing';
    this.helmProvider = props.helmProvider;
    if (!props.provider) this.kubeconfig = { path: props.kubeconfigPath ?? '~/.kube/config', context: props.kubeconfigContext };
    this.provider = props.provider ?? new KubernetesProvider(this, 'provider', {
      configPath: props.kubeconfigPath ?? '~/.kube/config',
      configContext: props.kubeconfigContext,
      alias: resourceName(this, { maxLength: 40 }).replace(/-/g, '_'),
    });
    if (props.createNamespace ?? true) {
      this.namespaceResource = new NamespaceV1(this, 'namespace', {
        provider: this.provider,
        metadata: { name: props.namespace, labels: { ...this.labels } },
      });
      this.namespace = this.namespaceResource.metadata.name;
    } else {
      this.namespace = props.namespace;
    }
  }
}

export type Target = AwsTarget | GcpTarget | KubernetesTarget;

/** The kinds a construct may be asked to run on, checked at runtime for JS callers. */
export function targetKind(scope: Construct, prop: string, target: unknown): TargetKind {
  if (target instanceof AwsTarget || target instanceof GcpTarget || target instanceof KubernetesTarget) return target.kind;
  throw Errors.invalid(scope, prop, target === undefined ? undefined : typeof target, 'an AwsTarget, GcpTarget or KubernetesTarget', 'is not a target');
}

/** Object store URIs the agent's storage modules read; the endpoint only for S3-compatible stores. */
function checkArtifactStore(t: Construct, a: KubernetesArtifactStore): KubernetesArtifactStore {
  if (typeof a.uri !== 'string' || !/^(s3|gs):\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/[^\s'"$`\\]*)?$/.test(a.uri)) {
    throw Errors.invalid(t, 'artifactStore.uri', a.uri, 's3://bucket[/prefix] or gs://bucket[/prefix] (file:// is the default without artifactStore, for single-node use)');
  }
  if ((a.endpoint !== undefined || a.region !== undefined) && !a.uri.startsWith('s3://')) {
    throw Errors.conflict(t, a.endpoint !== undefined ? 'artifactStore.endpoint' : 'artifactStore.region', a.endpoint ?? a.region, 's3:// stores only', 'does not apply to gs://');
  }
  if (a.endpoint !== undefined && !/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/.test(a.endpoint)) {
    throw Errors.invalid(t, 'artifactStore.endpoint', a.endpoint, 'an http(s)://host[:port] URL of an S3-compatible store, e.g. http://minio.minio.svc:9000');
  }
  if (a.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(a.region)) throw Errors.invalid(t, 'artifactStore.region', a.region, 'an AWS region name, e.g. us-east-1');
  const cs = a.credentialsSecret;
  if (cs !== undefined && (!K8S_NAME.test(cs.name ?? '') || !/^[-._a-zA-Z0-9]{1,253}$/.test(cs.key ?? ''))) {
    throw Errors.invalid(t, 'artifactStore.credentialsSecret', cs, '{ name, key } of a Secret in the target namespace (a DNS-1123 label and a data key)');
  }
  return { ...a };
}
