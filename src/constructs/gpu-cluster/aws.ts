/** GpuCluster on AWS: launch template + autoscaling group behind an internal NLB, one bucket, one secret. */
import { Fn, TerraformAsset, TerraformLocal, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { DataAwsSsmParameter } from '@cdktf/provider-aws/lib/data-aws-ssm-parameter';
import { IamInstanceProfile } from '@cdktf/provider-aws/lib/iam-instance-profile';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { IamRolePolicyAttachment } from '@cdktf/provider-aws/lib/iam-role-policy-attachment';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template';
import { Lb } from '@cdktf/provider-aws/lib/lb';
import { LbListener } from '@cdktf/provider-aws/lib/lb-listener';
import { LbTargetGroup } from '@cdktf/provider-aws/lib/lb-target-group';
import { PlacementGroup } from '@cdktf/provider-aws/lib/placement-group';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3Object } from '@cdktf/provider-aws/lib/s3-object';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { VpcSecurityGroupEgressRule } from '@cdktf/provider-aws/lib/vpc-security-group-egress-rule';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { Errors } from '../../core/errors';
import { AwsHostGroup } from '../../contracts/host-group';
import { resourceName } from '../../core/naming';
import { privateBucket, versionedBucketName } from '../../core/aws-bucket';
import { AwsTarget } from '../../core/targets';
import { awsCapabilities, awsRolePrincipal, importAwsGpuCluster, policyDocument, protectedPrefixes, Statement } from './aws-access';
import { checkAwsPlacement, clusterEfa, efaNetworkInterfaces, ncclEnvironment } from './aws-fabric';
import { AwsBacklogScaling, AwsJobQueue, buildAwsJobQueue, buildBacklogScaling, hostGroupStatements, hostQueueStatements } from './aws-queue';
import { awsHostMetricsFailedScript, awsHostMetricsScript, renderBootstrap, secretReadCommand, shq } from './bootstrap';
import { GpuClusterBackend, GpuClusterPlan, GpuClusterTarget, GpuClusterTargetRules } from './plan';
import type { GpuClusterProps } from './props';

export { awsRolePrincipal, importAwsGpuCluster, protectedPrefixes } from './aws-access';

/**
 * Files from the agent bundle AWS hosts load beside the agent: the SQS client (serve --queue) and the
 * rollouts a promotion may run from a pipeline step (one per endpoint target).
 */
export const AWS_HOST_FILES = ['queue-sqs.js', 'autoscaling-aws.js', 'rollout-sagemaker.js', 'rollout-cloudrun.js', 'rollout-kubernetes.js'] as const;

/** The unprivileged user jobs run as on hosts. */
export const JOB_USER = 'mlinfra-job';

/** Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04): NVIDIA driver, CUDA, aws CLI. */
export const AWS_GPU_AMI_PARAMETER = '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';

export interface AwsGpuClusterResources {
  readonly key: KmsKey;
  readonly bucket: S3Bucket;
  readonly agentObjects: { readonly script: S3Object; readonly storage: S3Object; readonly extras: readonly S3Object[] };
  readonly tokenSecret: SecretsmanagerSecret;
  readonly role: IamRole;
  readonly instanceProfile: IamInstanceProfile;
  readonly hostSecurityGroup: SecurityGroup;
  readonly loadBalancerSecurityGroup: SecurityGroup;
  readonly launchTemplate: LaunchTemplate;
  readonly autoscalingGroup: AutoscalingGroup;
  readonly placementGroup?: PlacementGroup;
  readonly loadBalancer: Lb;
  readonly targetGroup: LbTargetGroup;
  readonly listener: LbListener;
  /** The durable jobs queue and its dead-letter queue. */
  readonly queue: AwsJobQueue;
  /** Backlog target tracking, the wake-from-zero alarm and the drain lifecycle hook. */
  readonly scaling: AwsBacklogScaling;
}

/** GpuCluster's rules on AWS: props other targets take are refused; the default AMI's GPU range. */
function checkAwsProps(cluster: Construct, props: GpuClusterProps): GpuClusterTargetRules {
  if (props.machineType !== undefined) {
    throw Errors.conflict(cluster, 'machineType', props.machineType, 'instanceType on an aws target', 'applies to gcp targets only, not aws');
  }
  if (props.instanceType !== undefined && !Token.isUnresolved(props.instanceType) && !/^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9-]+$/.test(props.instanceType)) {
    throw Errors.invalid(cluster, 'instanceType', props.instanceType, 'an EC2 instance type such as g5.2xlarge');
  }
  if (props.agentImage !== undefined) {
    throw Errors.conflict(cluster, 'agentImage', props.agentImage, 'kubernetes targets only (hosts on aws/gcp run the agent with Node.js directly)', 'does not apply to aws');
  }
  if (props.kubernetes !== undefined) throw Errors.conflict(cluster, 'kubernetes', 'set', 'kubernetes targets only', 'does not apply to aws');
  if (props.accelerator === 'V100' && props.machineImage === undefined) {
    // The default AMI ships NVIDIA's open kernel modules, which support Turing and newer GPUs only.
    throw Errors.notOffered(cluster, 'accelerator', 'V100',
      'V100 (p3) is not offered with the default AMI on aws: the Deep Learning Base OSS Nvidia Driver AMI supports Turing (T4) and newer GPUs only',
      'T4, L4, A10G, L40S, A100-40GB, A100-80GB, H100, H200; or V100 with machineImage set to an AMI with NVIDIA\'s proprietary driver (e.g. the Deep Learning Base Proprietary Nvidia Driver AMI)');
  }
  return { explicitType: props.instanceType, explicitTypeProp: 'instanceType', storageFile: 'storage-s3.js', hostFiles: AWS_HOST_FILES };
}

/** GpuCluster on AWS, for the dispatch table in index.ts. */
export const AWS_GPU_CLUSTER: GpuClusterTarget = {
  checkProps: checkAwsProps,
  build: (cluster, target, plan) => buildAwsGpuCluster(cluster, target as AwsTarget, plan),
  importCluster: (scope, target, attrs) => importAwsGpuCluster(scope, target, attrs),
};

export function buildAwsGpuCluster(cluster: Construct, target: AwsTarget, plan: GpuClusterPlan): GpuClusterBackend & { readonly hostGroup: AwsHostGroup; readonly resources: AwsGpuClusterResources } {
  const provider = target.provider;
  // A referenced max may be above 1: plan for several nodes.
  const multiNode = Token.isUnresolved(plan.nodes.max) || plan.nodes.max > 1;
  checkAwsPlacement(cluster, plan, multiNode);
  const efa = clusterEfa(plan, multiNode);

  // ---- storage: the cluster's own encrypted, private bucket (agent bundle, artifacts, pipeline specs)
  const storage = new Construct(cluster, 'storage');
  const key = new KmsKey(storage, 'key', {
    provider, description: `${cluster.node.path}: artifacts and agent token`, enableKeyRotation: true, deletionWindowInDays: 30,
  });
  const bucket = privateBucket(storage, { provider, id: 'bucket', name: `${plan.name}-${target.accountId}`, kmsKeyArn: key.arn });
  const upload = (id: string, asset: TerraformAsset) => new S3Object(storage, id, {
    provider, bucket: versionedBucketName(bucket), key: `agent/${asset.assetHash}/${asset.fileName}`, source: asset.path,
    sourceHash: Fn.filemd5(asset.path), kmsKeyId: key.arn, serverSideEncryption: 'aws:kms',
  });
  const agentObjects = {
    script: upload('agent-script', plan.agentBundle.script), storage: upload('agent-storage', plan.agentBundle.storage!.asset),
    extras: plan.agentBundle.extras.map((f, i) => upload(`agent-file-${i}`, f.asset)),
  };
  const queue = buildAwsJobQueue(cluster, target, plan, key.arn);
  const s3Uri = (o: S3Object) => `s3://${bucket.bucket}/${o.key}`;

  // ---- the agent token: generated, kept only in Secrets Manager
  const secrets = new Construct(cluster, 'secret');
  const tokenSecret = new SecretsmanagerSecret(secrets, 'agent-token', {
    // No recovery window: the value is generated by Terraform and written again on the next apply, and a
    // secret pending deletion keeps its fixed name taken, so a destroy and re-apply within 7 days would fail.
    provider, name: `mlinfra/${plan.name}/agent-token`, kmsKeyId: key.arn, recoveryWindowInDays: 0,
    description: `${cluster.node.path}: bearer token of mlinfra-agent`,
  });
  new SecretsmanagerSecretVersion(secrets, 'agent-token-value', { provider, secretId: tokenSecret.id, secretString: plan.agentToken });

  // ---- identity
  const iam = new Construct(cluster, 'iam');
  const assume = new DataAwsIamPolicyDocument(iam, 'assume', {
    provider, statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['ec2.amazonaws.com'] }] }],
  });
  const role = new IamRole(iam, 'role', { provider, name: `${plan.name}-host`, assumeRolePolicy: assume.json, description: `${cluster.node.path} hosts` });
  // Session Manager instead of SSH: no key pairs, no port 22.
  new IamRolePolicyAttachment(iam, 'ssm', { provider, role: role.name, policyArn: `arn:${target.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore` });
  const instanceProfile = new IamInstanceProfile(iam, 'profile', { provider, name: `${plan.name}-host`, role: role.name });

  // ---- network: NLB security group -> host security group; intra-cluster traffic for rendezvous
  const net = new Construct(cluster, 'network');
  const sources = plan.allowedCidrs ?? [target.vpcCidr];
  const lbSg = new SecurityGroup(net, 'lb-sg', { provider, name: `${plan.name}-lb`, vpcId: target.vpcId, description: 'mlinfra-agent load balancer' });
  const hostSg = new SecurityGroup(net, 'host-sg', { provider, name: `${plan.name}-host`, vpcId: target.vpcId, description: 'mlinfra-agent hosts' });
  sources.forEach((cidr, i) => {
    new VpcSecurityGroupIngressRule(net, `lb-in-${i}`, {
      provider, securityGroupId: lbSg.id, ipProtocol: 'tcp', fromPort: plan.agentPort, toPort: plan.agentPort, cidrIpv4: cidr, description: 'agent API clients',
    });
    new VpcSecurityGroupIngressRule(net, `host-in-${i}`, {
      provider, securityGroupId: hostSg.id, ipProtocol: 'tcp', fromPort: plan.agentPort, toPort: plan.agentPort, cidrIpv4: cidr, description: 'agent API clients (direct)',
    });
  });
  new VpcSecurityGroupEgressRule(net, 'lb-out', {
    provider, securityGroupId: lbSg.id, ipProtocol: 'tcp', fromPort: plan.agentPort, toPort: plan.agentPort, referencedSecurityGroupId: hostSg.id, description: 'to agents',
  });
  new VpcSecurityGroupIngressRule(net, 'host-from-lb', {
    provider, securityGroupId: hostSg.id, ipProtocol: 'tcp', fromPort: plan.agentPort, toPort: plan.agentPort, referencedSecurityGroupId: lbSg.id, description: 'agent API and health checks via the load balancer',
  });
  if (multiNode) {
    // EFA's OS bypass needs all traffic to and from the group itself, both ways: the egress to
    // 0.0.0.0/0 below does not count for it (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html#efa-start-security).
    new VpcSecurityGroupIngressRule(net, 'host-peers', {
      provider, securityGroupId: hostSg.id, ipProtocol: '-1', referencedSecurityGroupId: hostSg.id, description: 'torchrun rendezvous, NCCL and EFA between hosts',
    });
    new VpcSecurityGroupEgressRule(net, 'host-peers-out', {
      provider, securityGroupId: hostSg.id, ipProtocol: '-1', referencedSecurityGroupId: hostSg.id, description: 'NCCL and EFA between hosts',
    });
  }
  // Hosts fetch Node.js, npm packages and cloud APIs through the NAT gateway.
  new VpcSecurityGroupEgressRule(net, 'host-out', { provider, securityGroupId: hostSg.id, ipProtocol: '-1', cidrIpv4: '0.0.0.0/0', description: 'outbound' });

  // ---- compute
  const compute = new Construct(cluster, 'compute');
  const imageId = plan.machineImage ?? new DataAwsSsmParameter(compute, 'gpu-ami', { provider, name: AWS_GPU_AMI_PARAMETER }).insecureValue;
  const placementGroup = multiNode ? new PlacementGroup(compute, 'placement', { provider, name: plan.name, strategy: 'cluster' }) : undefined;
  // A cluster placement group lives in one Availability Zone: AWS refuses a group spanning zones
  // ("You cannot specify multiple Availability Zones and a cluster placement group"), so hosts use the first subnet.
  const subnets = target.subnetIds;
  const hostSubnets = !placementGroup ? subnets : Token.isUnresolved(subnets) ? [Fn.element(subnets, 0)] : subnets.slice(0, 1);

  const stopScript = plan.idleStopMinutes > 0 ? [
    `IMDS=http://169.254.169.254/latest`,
    `TOKEN=$(curl -fsS -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')`,
    `INSTANCE=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/instance-id")`,
    `# The group refuses to go below its minimum size; that refusal is the floor we want.`,
    `aws autoscaling terminate-instance-in-auto-scaling-group --region ${target.region} --instance-id "$INSTANCE" --should-decrement-desired-capacity`,
  ].join('\n') : undefined;

  const script = renderBootstrap({
    clusterName: plan.name, nodeVersion: plan.nodeVersion, nodeDistUrl: plan.nodeDistUrl,
    copyCommand: (uri, dest) => `aws s3 cp --only-show-errors --region ${target.region} ${shq(uri)} ${dest}`,
    agentScriptUri: s3Uri(agentObjects.script), agentStorageUri: s3Uri(agentObjects.storage), agentStorageFile: plan.agentBundle.storage!.fileName,
    agentExtraFiles: agentObjects.extras.map((o, i) => ({ uri: s3Uri(o), file: plan.agentBundle.extras[i].fileName })),
    clusterQueue: { queue: queue.jobs.url, deadLetterQueue: queue.deadLetter.url, artifacts: `s3://${bucket.bucket}/cluster`, lifecycleHook: `${plan.name}-drain`, groupName: plan.name },
    tokenCommand: secretReadCommand({ store: 'aws-secrets-manager', arn: tokenSecret.arn, name: tokenSecret.name }, target.region),
    peerTokenFetches: plan.peerTokenFetches,
    stopScript, idleStopMinutes: plan.idleStopMinutes, agentPort: plan.agentPort, extraServeArgs: plan.extraAgentArgs, preemption: 'aws',
    environment: { MLINFRA_ARTIFACTS_URI: `s3://${bucket.bucket}`, AWS_REGION: target.region, ...ncclEnvironment(multiNode, efa) },
    // Publishing needs the grants a MonitoringStack adds when it watches this cluster.
    hostMetrics: awsHostMetricsScript(plan.name, target.region),
    hostMetricsFailed: awsHostMetricsFailedScript(plan.name, target.region),
    // Jobs run under the host role but not as root: the token file and the journal stay out of reach.
    jobUser: JOB_USER,
  });

  const instanceTags = { ...target.tags, Name: plan.name, 'mlinfra:cluster': cluster.node.path };
  const launchTemplate = new LaunchTemplate(compute, 'launch-template', {
    provider, name: plan.name, description: `${cluster.node.path}: ${plan.shape.accelerator} x${plan.shape.count}`,
    imageId, instanceType: plan.shape.instanceType, updateDefaultVersion: true,
    // The script lives in a local (JSON string escaping) and is encoded by Terraform.
    userData: Fn.base64encode(new TerraformLocal(compute, 'user-data', script).asString),
    iamInstanceProfile: { arn: instanceProfile.arn },
    // With EFA the security group goes on each interface; the ASG still picks the subnet.
    ...(efa ? { networkInterfaces: efaNetworkInterfaces(efa, hostSg.id) } : { vpcSecurityGroupIds: [hostSg.id] }),
    // IMDSv2 only; hop limit 1 keeps containers on the host away from the host's credentials.
    metadataOptions: { httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1, instanceMetadataTags: 'disabled' },
    blockDeviceMappings: [{
      deviceName: '/dev/sda1',
      ebs: { volumeSize: plan.diskGiB, volumeType: 'gp3', encrypted: 'true', deleteOnTermination: 'true' },
    }],
    monitoring: { enabled: true },
    tagSpecifications: [{ resourceType: 'instance', tags: instanceTags }, { resourceType: 'volume', tags: instanceTags }],
  });

  // ---- internal NLB: a stable agentUrl; source-IP stickiness keeps a client on one agent
  const lbScope = new Construct(cluster, 'load-balancer');
  const loadBalancer = new Lb(lbScope, 'nlb', {
    provider, name: resourceName(cluster, { maxLength: 32 }), internal: true, loadBalancerType: 'network',
    subnets: target.subnetIds, securityGroups: [lbSg.id], enableCrossZoneLoadBalancing: true,
  });
  const targetGroup = new LbTargetGroup(lbScope, 'agents', {
    provider, name: resourceName(cluster, { maxLength: 32, suffix: 'tg' }), port: plan.agentPort, protocol: 'TCP', vpcId: target.vpcId,
    targetType: 'instance', deregistrationDelay: '30',
    stickiness: { type: 'source_ip', enabled: true },
    healthCheck: { protocol: 'HTTP', path: '/healthz', port: 'traffic-port', interval: 15, healthyThreshold: 2, unhealthyThreshold: 3 },
  });
  const listener = new LbListener(lbScope, 'listener', {
    provider, loadBalancerArn: loadBalancer.arn, port: plan.agentPort, protocol: 'TCP',
    defaultAction: [{ type: 'forward', targetGroupArn: targetGroup.arn }],
  });

  const ltRef = { launchTemplateId: launchTemplate.id, version: Fn.tostring(launchTemplate.latestVersion) };
  const autoscalingGroup = new AutoscalingGroup(compute, 'group', {
    provider, name: plan.name, minSize: plan.nodes.min, maxSize: plan.nodes.max,
    vpcZoneIdentifier: hostSubnets, placementGroup: placementGroup?.id,
    targetGroupArns: [targetGroup.arn],
    // EC2 health only: a host spends minutes installing drivers and the agent before /healthz answers.
    healthCheckType: 'EC2', healthCheckGracePeriod: 900,
    waitForCapacityTimeout: '0', capacityRebalance: plan.spot,
    // New hosts start protected from scale-in; each agent clears its protection when idle and sets it
    // again when it leases (SetInstanceProtection), so only idle hosts are ever scaled in
    // (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-protection.html).
    // Destroy still works: the provider lifts protection before draining (hashicorp/terraform-provider-aws#23187).
    protectFromScaleIn: true,
    // The backlog policy and the wake alarm read these group metrics.
    enabledMetrics: ['GroupDesiredCapacity', 'GroupInServiceInstances'], metricsGranularity: '1Minute',
    ...(plan.spot ? {
      mixedInstancesPolicy: {
        instancesDistribution: {
          onDemandBaseCapacity: plan.onDemandBaseNodes, onDemandPercentageAboveBaseCapacity: 0,
          spotAllocationStrategy: 'price-capacity-optimized',
        },
        launchTemplate: { launchTemplateSpecification: ltRef, override: [{ instanceType: plan.shape.instanceType }] },
      },
    } : { launchTemplate: { id: ltRef.launchTemplateId, version: ltRef.version } }),
    tag: [{ key: 'mlinfra:cluster', value: cluster.node.path, propagateAtLaunch: true }],
    // Backlog scaling and idle stop move desired capacity; Terraform owns min and max only.
    lifecycle: { ignoreChanges: ['desired_capacity'] },
  });

  // ---- what hosts may do: exactly this cluster's bucket, secret, key and group
  const hostStatements: Statement[] = [
    { actions: ['s3:ListBucket'], resources: [bucket.arn] },
    { actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'], resources: [`${bucket.arn}/*`] },
    // Jobs run on hosts under this role: they must not rewrite what every future host boots (the
    // agent bundle) or runs (stored pipeline specs). An explicit deny wins over the allow above.
    { effect: 'Deny', actions: ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObjectAcl'], resources: protectedPrefixes(bucket.arn) },
    { actions: ['secretsmanager:GetSecretValue'], resources: [tokenSecret.arn] },
    { actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.arn] },
  ];
  // The queue (README "Grants"); the bucket's cluster/ prefix is within the bucket grant above.
  hostStatements.push(...hostQueueStatements(queue), ...hostGroupStatements(autoscalingGroup.arn));
  if (stopScript) hostStatements.push({ actions: ['autoscaling:TerminateInstanceInAutoScalingGroup'], resources: [autoscalingGroup.arn] });
  const scaling = buildBacklogScaling(cluster, target, plan, autoscalingGroup, queue);
  const hostDoc = policyDocument(iam, 'host-doc', provider, hostStatements);
  new IamRolePolicy(iam, 'host', { provider, name: 'mlinfra-host', role: role.id, policy: hostDoc.json });

  return {
    agentUrl: `http://${loadBalancer.dnsName}:${plan.agentPort}`,
    agentTokenSecret: { store: 'aws-secrets-manager', arn: tokenSecret.arn, name: tokenSecret.name },
    artifactsUri: `s3://${bucket.bucket}`,
    grantPrincipal: awsRolePrincipal(cluster, target, role),
    ...awsCapabilities(cluster, target, {
      bucketName: bucket.bucket, bucketArn: bucket.arn, objectBucket: versionedBucketName(bucket), keyArn: key.arn, tokenSecretArn: tokenSecret.arn,
      jobQueue: { kind: 'sqs', url: queue.jobs.url, arn: queue.jobs.arn, keyArn: key.arn },
      hostGroup: {
        kind: 'aws-autoscaling-group', name: autoscalingGroup.name, arn: autoscalingGroup.arn,
        health: { targetGroupArnSuffix: targetGroup.arnSuffix, loadBalancerArnSuffix: loadBalancer.arnSuffix },
      },
    }),
    resources: {
      key, bucket, agentObjects, tokenSecret, role, instanceProfile, hostSecurityGroup: hostSg, loadBalancerSecurityGroup: lbSg,
      launchTemplate, autoscalingGroup, placementGroup, loadBalancer, targetGroup, listener, queue, scaling,
    },
  };
}
