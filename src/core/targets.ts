/**
 * Targets: where a construct's resources go. A target owns its provider (created, or adopted from
 * the user), the region/project/namespace, the network, and the tags or labels on everything.
 */
import { Aspects, Fn, TerraformProvider, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { DataAwsAvailabilityZones } from '@cdktf/provider-aws/lib/data-aws-availability-zones';
import { DataAwsCallerIdentity } from '@cdktf/provider-aws/lib/data-aws-caller-identity';
import { DataAwsPartition } from '@cdktf/provider-aws/lib/data-aws-partition';
import { DefaultSecurityGroup } from '@cdktf/provider-aws/lib/default-security-group';
import { Eip } from '@cdktf/provider-aws/lib/eip';
import { InternetGateway } from '@cdktf/provider-aws/lib/internet-gateway';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway';
import { RouteTable } from '@cdktf/provider-aws/lib/route-table';
import { RouteTableAssociation } from '@cdktf/provider-aws/lib/route-table-association';
import { Subnet } from '@cdktf/provider-aws/lib/subnet';
import { Vpc } from '@cdktf/provider-aws/lib/vpc';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider';
import { ComputeNetwork } from '@cdktf/provider-google/lib/compute-network';
import { ComputeRouter } from '@cdktf/provider-google/lib/compute-router';
import { ComputeRouterNat } from '@cdktf/provider-google/lib/compute-router-nat';
import { ComputeSubnetwork } from '@cdktf/provider-google/lib/compute-subnetwork';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider';
import { NamespaceV1 } from '@cdktf/provider-kubernetes/lib/namespace-v1';
import { TargetKind } from './accelerators';
import { Errors } from './errors';
import { resourceName } from './naming';
import { DEFAULT_TAGS, ProviderTagsAspect } from './tags';

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
  /** Private subnets for hosts, at least one (two or more in different zones for availability). */
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
    super(scope, id);
    if (!props || typeof props.region !== 'string' || (!Token.isUnresolved(props.region) && !/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(props.region))) {
      throw Errors.invalid(this, 'region', props?.region, 'an AWS region name such as us-east-1');
    }
    const vpcCidr = props.vpcCidr ?? '10.42.0.0/16';
    if (!isCidr(vpcCidr) || Number(vpcCidr.split('/')[1]) > 24 || Number(vpcCidr.split('/')[1]) < 16) {
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
}

export interface GcpCreatedNetwork {
  readonly network: ComputeNetwork;
  readonly subnetwork: ComputeSubnetwork;
  readonly router: ComputeRouter;
  readonly nat: ComputeRouterNat;
}

export class GcpTarget extends Construct {
  public readonly kind = 'gcp' as const;
  public readonly project: string;
  public readonly region: string;
  public readonly zones?: string[];
  public readonly provider: TerraformProvider;
  public readonly labels: Readonly<Record<string, string>>;
  private readonly props: GcpTargetProps;
  private networkCache?: { network: string; subnetwork: string; cidrBlock: string; created?: GcpCreatedNetwork };

  constructor(scope: Construct, id: string, props: GcpTargetProps) {
    super(scope, id);
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
    if (!isCidr(subnetCidr) || Number(subnetCidr.split('/')[1]) > 29) {
      throw Errors.invalid(this, 'subnetCidr', props.subnetCidr, 'an IPv4 CIDR block of /29 or larger, e.g. 10.43.0.0/20');
    }
    checkTags(this, 'labels', props.labels, LABEL_KEY, LABEL_VALUE, 'GCP labels: keys of 1-63 and values of 0-63 lower-case letters, digits, _ or -; keys start with a letter');
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
}

export class KubernetesTarget extends Construct {
  public readonly kind = 'kubernetes' as const;
  public readonly provider: TerraformProvider;
  /** The namespace name; a reference to the created namespace when this target creates it. */
  public readonly namespace: string;
  public readonly gpuNodeLabels: GpuNodeLabelScheme;
  public readonly labels: Readonly<Record<string, string>>;
  public readonly storageClassName?: string;
  public readonly namespaceResource?: NamespaceV1;

  constructor(scope: Construct, id: string, props: KubernetesTargetProps) {
    super(scope, id);
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
