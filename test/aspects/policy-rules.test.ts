import { Testing, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { DynamodbTable } from '@cdktf/provider-aws/lib/dynamodb-table';
import { EksNodeGroup } from '@cdktf/provider-aws/lib/eks-node-group';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketServerSideEncryptionConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { SagemakerEndpointConfiguration } from '@cdktf/provider-aws/lib/sagemaker-endpoint-configuration';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider';
import { CloudRunV2ServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-service-iam-member';
import { ComputeFirewall } from '@cdktf/provider-google/lib/compute-firewall';
import { ComputeInstanceTemplate } from '@cdktf/provider-google/lib/compute-instance-template';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider';
import { CronJobV1 } from '@cdktf/provider-kubernetes/lib/cron-job-v1';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { readdirSync } from 'fs';
import { join } from 'path';
import { Policy, POLICY_RULES, PolicyFinding, PolicyPack } from '../../src/aspects';

function stackWithProviders(): TerraformStack {
  const stack = new TerraformStack(Testing.app(), 'test');
  new AwsProvider(stack, 'aws', { region: 'us-east-1' });
  new GoogleProvider(stack, 'google', { project: 'p', region: 'us-central1' });
  new KubernetesProvider(stack, 'k8s', {});
  return stack;
}

/** Synthesizes `build` with only `ruleId` applied; returns what the reporter got. */
function check(ruleId: string, build: (s: Construct) => void): PolicyFinding[] {
  const stack = stackWithProviders();
  build(stack);
  const seen: PolicyFinding[] = [];
  Policy.apply(stack, { pack: PolicyPack.default().only(ruleId), reporter: (f) => seen.push(f) });
  Testing.synth(stack);
  return seen;
}

// ---- fixtures: a compliant baseline per resource, and the one change that breaks it
const s3 = (s: Construct, o: { sse?: string; pab?: boolean; tls?: boolean; versioning?: boolean } = {}) => {
  const b = new S3Bucket(s, 'bucket', { bucket: 'b' });
  if (o.sse !== 'none') {
    new S3BucketServerSideEncryptionConfigurationA(s, 'sse', {
      bucket: b.id, rule: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: o.sse ?? 'aws:kms' } }],
    });
  }
  if (o.pab !== false) {
    new S3BucketPublicAccessBlock(s, 'pab', { bucket: b.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
  }
  if (o.tls !== false) {
    const doc = new DataAwsIamPolicyDocument(s, 'tls', {
      statement: [{
        effect: 'Deny', actions: ['s3:*'], resources: [b.arn, `${b.arn}/*`], principals: [{ type: '*', identifiers: ['*'] }],
        condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
      }],
    });
    new S3BucketPolicy(s, 'policy', { bucket: b.id, policy: doc.json });
  }
  if (o.versioning !== false) new S3BucketVersioningA(s, 'versioning', { bucket: b.id, versioningConfiguration: { status: 'Enabled' } });
};
const launchTemplate = (s: Construct, o: { encrypted?: boolean; tokens?: string } = {}) => new LaunchTemplate(s, 'lt', {
  blockDeviceMappings: [{ deviceName: '/dev/sda1', ebs: { encrypted: String(o.encrypted ?? true), volumeSize: 100 } }],
  metadataOptions: { httpTokens: o.tokens ?? 'required', httpEndpoint: 'enabled' },
});
const identityPolicy = (s: Construct, statement: object) => {
  const doc = new DataAwsIamPolicyDocument(s, 'doc', { statement: [statement] });
  new IamRolePolicy(s, 'policy', { role: 'r', policy: doc.json });
};
const table = (s: Construct, o: { pitr?: boolean; sse?: boolean } = {}) => new DynamodbTable(s, 'table', {
  name: 't', hashKey: 'id', attribute: [{ name: 'id', type: 'S' }], billingMode: 'PAY_PER_REQUEST',
  pointInTimeRecovery: { enabled: o.pitr ?? true }, serverSideEncryption: { enabled: o.sse ?? true },
});
const gcs = (s: Construct, o: { uniform?: boolean; pap?: string } = {}) => new StorageBucket(s, 'gcs', {
  name: 'b', location: 'US', uniformBucketLevelAccess: o.uniform ?? true, publicAccessPrevention: o.pap ?? 'enforced',
});
const template = (s: Construct, o: { gpu?: boolean; secureBoot?: boolean; vtpm?: boolean; publicIp?: boolean } = {}) => new ComputeInstanceTemplate(s, 'template', {
  machineType: 'g2-standard-8', disk: [{ sourceImage: 'debian-12', boot: true }],
  guestAccelerator: o.gpu ? [{ type: 'nvidia-l4', count: 1 }] : undefined,
  shieldedInstanceConfig: { enableSecureBoot: o.secureBoot ?? true, enableVtpm: o.vtpm ?? true, enableIntegrityMonitoring: true },
  networkInterface: [{ subnetwork: 's', accessConfig: o.publicIp ? [{}] : undefined }],
});

const LABELS = { app: 'server' };
/** A Deployment that passes every pod rule; `container` and `spec` change one thing. */
const deployment = (s: Construct, o: { container?: Record<string, unknown>; spec?: Record<string, unknown>; networkPolicy?: boolean } = {}) => {
  const sa = new ServiceAccountV1(s, 'sa', { metadata: { name: 'server', namespace: 'ml' }, automountServiceAccountToken: false });
  if (o.networkPolicy !== false) {
    new NetworkPolicyV1(s, 'netpol', {
      metadata: { name: 'server', namespace: 'ml' },
      spec: { podSelector: { matchLabels: LABELS }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { client: 'true' } } }] }] },
    });
  }
  return new DeploymentV1(s, 'deployment', {
    metadata: { name: 'server', namespace: 'ml' },
    spec: {
      selector: { matchLabels: LABELS },
      template: {
        metadata: { labels: LABELS },
        spec: {
          serviceAccountName: sa.metadata.name,
          securityContext: { runAsNonRoot: 'true', runAsUser: '1000' },
          toleration: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          container: [{
            name: 'server', image: 'server:1', port: [{ containerPort: 8080 }],
            env: [{ name: 'MODEL_URI', value: 's3://models/m' }],
            resources: { limits: { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '1' }, requests: { cpu: '1', memory: '1Gi' } },
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            ...o.container,
          }],
          ...o.spec,
        },
      },
    },
  } as any);
};

interface Case {
  readonly id: string;
  readonly good: (s: Construct) => void;
  readonly bad: (s: Construct) => void;
  /** Construct path (under the stack) of the resource the finding names. */
  readonly path: string;
  readonly detail: RegExp;
}

const CASES: Case[] = [
  { id: 'aws-s3-encryption', good: (s) => s3(s), bad: (s) => s3(s, { sse: 'none' }), path: 'bucket', detail: /no server-side encryption/ },
  { id: 'aws-s3-encryption', good: (s) => s3(s, { sse: 'aws:kms:dsse' }), bad: (s) => s3(s, { sse: 'AES256' }), path: 'bucket', detail: /AES256/ },
  { id: 'aws-s3-public-access-block', good: (s) => s3(s), bad: (s) => s3(s, { pab: false }), path: 'bucket', detail: /no aws_s3_bucket_public_access_block/ },
  { id: 'aws-s3-tls-only', good: (s) => s3(s), bad: (s) => s3(s, { tls: false }), path: 'bucket', detail: /no bucket policy/ },
  { id: 'aws-s3-versioning', good: (s) => s3(s), bad: (s) => s3(s, { versioning: false }), path: 'bucket', detail: /no aws_s3_bucket_versioning/ },
  { id: 'aws-ebs-encryption', good: (s) => launchTemplate(s), bad: (s) => launchTemplate(s, { encrypted: false }), path: 'lt', detail: /unencrypted: \/dev\/sda1/ },
  { id: 'aws-imdsv2', good: (s) => launchTemplate(s), bad: (s) => launchTemplate(s, { tokens: 'optional' }), path: 'lt', detail: /http_tokens is optional/ },
  {
    id: 'aws-iam-no-wildcard-action',
    good: (s) => identityPolicy(s, { actions: ['s3:GetObject'], resources: ['arn:aws:s3:::b/*'] }),
    bad: (s) => identityPolicy(s, { actions: ['s3:*'], resources: ['arn:aws:s3:::b/*'] }),
    path: 'doc', detail: /allows s3:\*/,
  },
  {
    id: 'aws-iam-no-wildcard-action',
    // Key policies name principals: "kms:*" for the account root is the standard key policy.
    good: (s) => new KmsKey(s, 'key', { policy: new DataAwsIamPolicyDocument(s, 'doc', { statement: [{ actions: ['kms:*'], resources: ['*'], principals: [{ type: 'AWS', identifiers: ['arn:aws:iam::1:root'] }] }] }).json }),
    bad: (s) => new IamRolePolicy(s, 'inline', { role: 'r', policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }) }),
    path: 'inline', detail: /allows \*/,
  },
  {
    id: 'aws-iam-no-wildcard-resource',
    good: (s) => identityPolicy(s, { actions: ['cloudwatch:PutMetricData'], resources: ['*'], condition: [{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: ['ML'] }] }),
    bad: (s) => identityPolicy(s, { actions: ['cloudwatch:PutMetricData'], resources: ['*'] }),
    path: 'doc', detail: /"\*" resource for cloudwatch:PutMetricData/,
  },
  {
    id: 'aws-iam-no-wildcard-resource',
    good: (s) => identityPolicy(s, { actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
    bad: (s) => identityPolicy(s, { actions: ['s3:GetObject', 'ecr:GetAuthorizationToken'], resources: ['*'] }),
    path: 'doc', detail: /s3:GetObject/,
  },
  {
    id: 'aws-sg-open-ingress',
    good: (s) => new VpcSecurityGroupIngressRule(s, 'in', { securityGroupId: 'sg', ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIpv4: '10.0.0.0/8' }),
    bad: (s) => new VpcSecurityGroupIngressRule(s, 'in', { securityGroupId: 'sg', ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIpv4: '0.0.0.0/0' }),
    path: 'in', detail: /0\.0\.0\.0\/0/,
  },
  {
    id: 'aws-sg-open-ingress',
    good: (s) => new SecurityGroup(s, 'sg', { ingress: [{ fromPort: 22, toPort: 22, protocol: 'tcp', cidrBlocks: ['10.0.0.0/8'] }] }),
    bad: (s) => new SecurityGroup(s, 'sg', { ingress: [{ fromPort: 22, toPort: 22, protocol: 'tcp', ipv6CidrBlocks: ['::/0'] }] }),
    path: 'sg', detail: /::\/0/,
  },
  { id: 'aws-dynamodb-pitr', good: (s) => table(s), bad: (s) => table(s, { pitr: false }), path: 'table', detail: /point_in_time_recovery/ },
  { id: 'aws-dynamodb-encryption', good: (s) => table(s), bad: (s) => table(s, { sse: false }), path: 'table', detail: /server_side_encryption/ },
  {
    id: 'aws-secrets-kms',
    good: (s) => new SecretsmanagerSecret(s, 'secret', { name: 's', kmsKeyId: new KmsKey(s, 'key', { enableKeyRotation: true }).arn }),
    bad: (s) => new SecretsmanagerSecret(s, 'secret', { name: 's' }), path: 'secret', detail: /kms_key_id/,
  },
  {
    id: 'aws-sns-encryption',
    good: (s) => new SnsTopic(s, 'topic', { kmsMasterKeyId: 'alias/k' }), bad: (s) => new SnsTopic(s, 'topic', {}), path: 'topic', detail: /kms_master_key_id/,
  },
  {
    id: 'aws-elasticache-encryption',
    good: (s) => new ElasticacheReplicationGroup(s, 'redis', { replicationGroupId: 'r', description: 'r', atRestEncryptionEnabled: 'true', transitEncryptionEnabled: true }),
    bad: (s) => new ElasticacheReplicationGroup(s, 'redis', { replicationGroupId: 'r', description: 'r', atRestEncryptionEnabled: 'true' }),
    path: 'redis', detail: /transit_encryption_enabled not true/,
  },
  {
    id: 'aws-sagemaker-encryption',
    // ml.g6 has local NVMe storage: SageMaker rejects kms_key_arn there.
    good: (s) => new SagemakerEndpointConfiguration(s, 'config', { productionVariants: [{ variantName: 'v', modelName: 'm', instanceType: 'ml.g6.xlarge' }] }),
    bad: (s) => new SagemakerEndpointConfiguration(s, 'config', {
      productionVariants: [{ variantName: 'v', modelName: 'm', instanceType: 'ml.m5.xlarge' }],
      dataCaptureConfig: { initialSamplingPercentage: 10, destinationS3Uri: 's3://b/c', captureOptions: [{ captureMode: 'Input' }] },
    }),
    path: 'config', detail: /kms_key_arn is not set for ml\.m5\.xlarge; data_capture_config\.kms_key_id/,
  },
  {
    id: 'aws-kms-key-rotation',
    good: (s) => new KmsKey(s, 'key', { enableKeyRotation: true }), bad: (s) => new KmsKey(s, 'key', {}), path: 'key', detail: /enable_key_rotation/,
  },
  { id: 'gcp-bucket-uniform-access', good: (s) => gcs(s), bad: (s) => gcs(s, { uniform: false }), path: 'gcs', detail: /uniform_bucket_level_access/ },
  { id: 'gcp-bucket-public-access-prevention', good: (s) => gcs(s), bad: (s) => gcs(s, { pap: 'inherited' }), path: 'gcs', detail: /inherited/ },
  {
    id: 'gcp-instance-shielded-vm',
    // GPU VMs may keep Secure Boot off (unsigned NVIDIA driver); vTPM must stay on.
    good: (s) => template(s, { gpu: true, secureBoot: false }), bad: (s) => template(s, { gpu: true, secureBoot: false, vtpm: false }), path: 'template', detail: /enable_vtpm off/,
  },
  { id: 'gcp-instance-shielded-vm', good: (s) => template(s), bad: (s) => template(s, { secureBoot: false }), path: 'template', detail: /enable_secure_boot off/ },
  { id: 'gcp-instance-no-public-ip', good: (s) => template(s), bad: (s) => template(s, { publicIp: true }), path: 'template', detail: /access_config/ },
  {
    id: 'gcp-firewall-open-ingress',
    good: (s) => new ComputeFirewall(s, 'fw', { name: 'f', network: 'n', allow: [{ protocol: 'tcp', ports: ['22'] }], sourceRanges: ['35.235.240.0/20'] }),
    bad: (s) => new ComputeFirewall(s, 'fw', { name: 'f', network: 'n', allow: [{ protocol: 'tcp', ports: ['22'] }], sourceRanges: ['0.0.0.0/0'] }),
    path: 'fw', detail: /0\.0\.0\.0\/0/,
  },
  {
    id: 'gcp-iam-no-all-users',
    good: (s) => new CloudRunV2ServiceIamMember(s, 'invoker', { name: 'svc', location: 'us-central1', role: 'roles/run.invoker', member: 'serviceAccount:a@p.iam.gserviceaccount.com' }),
    bad: (s) => new CloudRunV2ServiceIamMember(s, 'invoker', { name: 'svc', location: 'us-central1', role: 'roles/run.invoker', member: 'allUsers' }),
    path: 'invoker', detail: /roles\/run\.invoker granted to allUsers/,
  },
  {
    id: 'k8s-pod-non-root',
    good: (s) => deployment(s),
    bad: (s) => deployment(s, { container: { securityContext: { allowPrivilegeEscalation: false, runAsUser: '0' } } }),
    path: 'deployment', detail: /may run as root: server/,
  },
  {
    id: 'k8s-pod-resource-limits', good: (s) => deployment(s),
    bad: (s) => deployment(s, { container: { resources: { requests: { cpu: '1' } } } }), path: 'deployment', detail: /server \(cpu, memory\)/,
  },
  {
    id: 'k8s-no-privilege-escalation', good: (s) => deployment(s),
    bad: (s) => deployment(s, { container: { securityContext: { privileged: true } } }), path: 'deployment', detail: /privileged, allow_privilege_escalation not false/,
  },
  {
    id: 'k8s-gpu-toleration', good: (s) => deployment(s),
    bad: (s) => deployment(s, { spec: { toleration: [{ key: 'dedicated', operator: 'Exists' }] } }), path: 'deployment', detail: /nvidia\.com\/gpu/,
  },
  {
    id: 'k8s-gpu-node-taint',
    good: (s) => new EksNodeGroup(s, 'gpus', {
      clusterName: 'c', nodeRoleArn: 'r', subnetIds: ['s'], scalingConfig: { minSize: 0, maxSize: 2, desiredSize: 0 }, amiType: 'AL2023_x86_64_NVIDIA',
      instanceTypes: ['g6.xlarge'], taint: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NO_SCHEDULE' }],
    }),
    bad: (s) => new EksNodeGroup(s, 'gpus', {
      clusterName: 'c', nodeRoleArn: 'r', subnetIds: ['s'], scalingConfig: { minSize: 0, maxSize: 2, desiredSize: 0 }, instanceTypes: ['p5.48xlarge'],
    }),
    path: 'gpus', detail: /NO_SCHEDULE/,
  },
  {
    id: 'k8s-secrets-not-in-env', good: (s) => deployment(s, { container: { env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }] } }),
    bad: (s) => deployment(s, { container: { env: [{ name: 'DB_PASSWORD', value: 'hunter2hunter2' }] } }), path: 'deployment', detail: /server: DB_PASSWORD/,
  },
  {
    id: 'k8s-secrets-not-in-env', good: (s) => deployment(s, { container: { env: [{ name: 'TOKEN_FILE', value: '/var/run/token' }] } }),
    bad: (s) => deployment(s, { container: { env: [{ name: 'CONFIG', value: 'AKIAABCDEFGHIJKLMNOP' }] } }), path: 'deployment', detail: /server: CONFIG/,
  },
  {
    id: 'k8s-network-policy', good: (s) => deployment(s), bad: (s) => deployment(s, { networkPolicy: false }), path: 'deployment', detail: /no NetworkPolicy in namespace ml/,
  },
  {
    id: 'k8s-service-account-token',
    good: (s) => {
      deployment(s, { spec: { automountServiceAccountToken: true } });
      new RoleBindingV1(s, 'binding', {
        metadata: { name: 'b', namespace: 'ml' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
        subject: [{ kind: 'ServiceAccount', name: (s.node.findChild('sa') as ServiceAccountV1).metadata.name, namespace: 'ml' }],
      });
    },
    bad: (s) => deployment(s, { spec: { automountServiceAccountToken: true } }), path: 'deployment', detail: /bound to no role/,
  },
];

describe.each(CASES.map((c, i) => [c.id, i, c] as const))('%s (case %i)', (id, _i, c) => {
  test('fires on the violating resource with its path and the fix', () => {
    const findings = check(id, c.bad);
    const rule = POLICY_RULES.find((r) => r.id === id)!;
    expect(findings).toEqual([expect.objectContaining({ ruleId: id, level: rule.level, path: `test/${c.path}`, fix: rule.fix, detail: expect.stringMatching(c.detail) })]);
  });
  test('passes the compliant variant', () => {
    expect(check(id, c.good)).toEqual([]);
  });
});

describe('the rule table', () => {
  test('has at least 20 rules spanning AWS, GCP and Kubernetes, each with a test case', () => {
    expect(POLICY_RULES.length).toBeGreaterThanOrEqual(20);
    for (const prefix of ['aws-', 'gcp-', 'k8s-']) expect(POLICY_RULES.filter((r) => r.id.startsWith(prefix)).length).toBeGreaterThan(0);
    expect([...new Set(CASES.map((c) => c.id))].sort()).toEqual(POLICY_RULES.map((r) => r.id).sort());
  });

  test('one rule per file under rules/, the id being the file name', () => {
    const dir = join(__dirname, '../../src/aspects/policy/rules');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
    expect(files).toEqual(POLICY_RULES.map((r) => `${r.id}.ts`).sort());
    for (const f of files) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      expect(require(join(dir, f)).rule.id).toBe(f.replace(/\.ts$/, ''));
    }
  });

  test('every rule says what is wrong and how to fix it', () => {
    for (const r of POLICY_RULES) {
      expect(r.description.length).toBeGreaterThan(10);
      expect(r.fix.length).toBeGreaterThan(10);
      expect(r.appliesTo.length).toBeGreaterThan(0);
    }
  });
});

describe('a CronJob (pod template under job_template)', () => {
  test('is checked like a Deployment', () => {
    const findings = check('k8s-pod-resource-limits', (s) => new CronJobV1(s, 'cron', {
      metadata: { name: 'c' },
      spec: { schedule: '0 * * * *', jobTemplate: { metadata: {}, spec: { template: { metadata: {}, spec: { container: [{ name: 'job', image: 'j' }] } } } } },
    }));
    expect(findings.map((f) => [f.ruleId, f.path, f.detail])).toEqual([['k8s-pod-resource-limits', 'test/cron', 'no limits: job (cpu, memory)']]);
  });
});
