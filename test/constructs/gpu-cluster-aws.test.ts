import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { AwsTarget, GpuCluster, GpuClusterProps } from '../../src';
import { AWS_GPU_AMI_PARAMETER } from '../../src/constructs/gpu-cluster/aws';
import { bashSyntaxCheck, countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster) => void) =>
  synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1', tags: { team: 'ml' } });
    const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: testAgentBundle(), ...props });
    extra?.(stack, c);
  });

/** The start-up script as Terraform holds it: user_data = base64encode(local.<name>). */
function rawUserData(json: TerraformJson): string {
  const lt = only(json, 'aws_launch_template');
  const m = /^\$\{base64encode\(local\.([A-Za-z0-9_-]+)\)\}$/.exec(lt.user_data as string);
  if (!m) throw new Error(`user_data is not base64encode(local.x): ${String(lt.user_data).slice(0, 80)}`);
  return (json.locals as Record<string, string>)[m[1]];
}

/** The start-up script as the host receives it (references replaced by placeholders). */
function userData(json: TerraformJson): string {
  return renderTerraformString(rawUserData(json));
}

describe('GpuCluster on AWS', () => {
  const { text, json } = build();

  test('launch template: catalog instance type, SSM GPU AMI, IMDSv2 only, encrypted gp3 root', () => {
    expect(text).toHaveResourceWithProperties(LaunchTemplate, {
      instance_type: 'p4de.24xlarge',
      metadata_options: { http_endpoint: 'enabled', http_tokens: 'required', http_put_response_hop_limit: 1, instance_metadata_tags: 'disabled' },
      block_device_mappings: [{ device_name: '/dev/sda1', ebs: { volume_size: 200, volume_type: 'gp3', encrypted: 'true', delete_on_termination: 'true' } }],
    });
    expect(json.data?.aws_ssm_parameter).toBeDefined();
    expect(Object.values(json.data!.aws_ssm_parameter!)[0].name).toBe(AWS_GPU_AMI_PARAMETER);
    expect(only(json, 'aws_launch_template').image_id).toMatch(/^\$\{data\.aws_ssm_parameter\..+\.insecure_value\}$/);
  });

  test('autoscaling group: min/max, spot through a mixed instances policy with an on-demand base', () => {
    const asg = only(json, 'aws_autoscaling_group') as Record<string, any>;
    expect(asg.min_size).toBe(0);
    expect(asg.max_size).toBe(4);
    expect(asg.desired_capacity).toBeUndefined();
    expect(asg.lifecycle).toEqual({ ignore_changes: ['desired_capacity'] });
    expect(asg.capacity_rebalance).toBe(true);
    expect(asg.launch_template).toBeUndefined();
    expect(asg.mixed_instances_policy.instances_distribution).toEqual({
      on_demand_base_capacity: 0, on_demand_percentage_above_base_capacity: 0, spot_allocation_strategy: 'price-capacity-optimized',
    });
    expect(asg.mixed_instances_policy.launch_template.override).toEqual([{ instance_type: 'p4de.24xlarge' }]);
    expect(asg.placement_group).toMatch(/aws_placement_group\./);
  });

  test('on demand: a plain launch template, no mixed policy, no placement group for one node', () => {
    const { json: j } = build({ spot: false, nodes: { min: 1, max: 1 }, accelerator: 'L4', acceleratorsPerNode: 1 });
    const asg = only(j, 'aws_autoscaling_group') as Record<string, any>;
    expect(asg.mixed_instances_policy).toBeUndefined();
    expect(asg.launch_template.id).toMatch(/aws_launch_template\./);
    expect(asg.capacity_rebalance).toBe(false);
    expect(asg.min_size).toBe(1);
    expect(only(j, 'aws_launch_template').instance_type).toBe('g6.xlarge');
    expect(resources(j, 'aws_placement_group')).toEqual({});
  });

  test('onDemandBaseNodes sets the on-demand base of a spot group', () => {
    const { json: j } = build({ onDemandBaseNodes: 2 });
    const asg = only(j, 'aws_autoscaling_group') as Record<string, any>;
    expect(asg.mixed_instances_policy.instances_distribution.on_demand_base_capacity).toBe(2);
  });

  test('an explicit instance type overrides the catalog', () => {
    const { json: j } = build({ accelerator: 'A10G', acceleratorsPerNode: 1, instanceType: 'g5.8xlarge', spot: false });
    expect(only(j, 'aws_launch_template').instance_type).toBe('g5.8xlarge');
  });

  test('bucket: private, versioned, SSE-KMS with the cluster key, TLS only', () => {
    expect(text).toHaveResourceWithProperties(S3BucketPublicAccessBlock, {
      block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true,
    });
    expect(text).toHaveResourceWithProperties(S3Bucket, { force_destroy: false });
    const sse = only(json, 'aws_s3_bucket_server_side_encryption_configuration') as Record<string, any>;
    expect(sse.rule[0].apply_server_side_encryption_by_default.sse_algorithm).toBe('aws:kms');
    expect(sse.rule[0].apply_server_side_encryption_by_default.kms_master_key_id).toMatch(/aws_kms_key\..+\.arn/);
    expect((only(json, 'aws_s3_bucket_versioning') as any).versioning_configuration.status).toBe('Enabled');
    expect((only(json, 'aws_kms_key') as any).enable_key_rotation).toBe(true);
    const tls = Object.values(json.data!.aws_iam_policy_document!).find((d: any) => d.statement?.[0]?.sid === 'DenyInsecureTransport') as any;
    expect(tls.statement[0].condition).toEqual([{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }]);
  });

  test('agent bundle uploaded to the cluster bucket from a TerraformAsset, keyed by content hash', () => {
    const objects = Object.entries(resources(json, 'aws_s3_object')) as [string, any][];
    // The agent and the modules it loads (S3, the SQS queue client, rollouts): a self-contained bundle,
    // nothing installed on the host.
    const files = ['autoscaling-aws.js', 'mlinfra-agent.js', 'queue-sqs.js', 'rollout-cloudrun.js', 'rollout-kubernetes.js', 'rollout-sagemaker.js', 'storage-s3.js'];
    expect(objects.map(([, o]) => o.key.split('/').pop()).sort()).toEqual(files);
    const raw = rawUserData(json);
    for (const [id, o] of objects) {
      const file: string = o.key.split('/').pop();
      const esc = file.replace('.', '\\.');
      expect(o.source).toMatch(new RegExp(`^assets/.+/${esc}$`));
      expect(o.key).toMatch(new RegExp(`^agent/[0-9A-F]+/${esc}$`, 'i'));
      // ... and each lands beside the agent on the host.
      expect(raw).toContain(`/\${aws_s3_object.${id}.key}' "$MLINFRA_HOME/agent/${file}"`);
      expect(o.server_side_encryption).toBe('aws:kms');
    }
  });

  test('token only in Secrets Manager: the generated value is referenced once, by the secret version', () => {
    expect(text).toHaveResourceWithProperties(SecretsmanagerSecret, { recovery_window_in_days: 0 });
    const refs = text.match(/\$\{random_password\.[^}]+\.result\}/g) ?? [];
    expect(refs).toHaveLength(1);
    const version = only(json, 'aws_secretsmanager_secret_version') as any;
    expect(version.secret_string).toMatch(/^\$\{random_password\.[^}]+\.result\}$/);
    expect(JSON.stringify(only(json, 'aws_launch_template'))).not.toContain('random_password');
    expect(JSON.stringify(json.output)).not.toContain('random_password');
    expect(JSON.stringify(json.output)).not.toMatch(/secret_string/);
  });

  test('start-up script passes bash -n, installs Node and the agent, fetches the token at start, runs under systemd', () => {
    const script = userData(json);
    bashSyntaxCheck(script);
    expect(script).toMatch(/sha256sum -c -/);
    expect(script).toContain('aws secretsmanager get-secret-value');
    expect(script).toMatch(/ExecStartPre=\/opt\/mlinfra\/fetch-token\.sh/);
    expect(script).toMatch(/ExecStart=\/opt\/mlinfra\/node\/bin\/node \/opt\/mlinfra\/agent\/mlinfra-agent\.js serve .*--token-file \/run\/mlinfra\/token/);
    expect(script).toMatch(/--preemption aws/);
    expect(script).toMatch(/--idle-stop-minutes 30 --stop-command \/opt\/mlinfra\/stop\.sh/);
    expect(script).toContain('terminate-instance-in-auto-scaling-group');
    expect(script).toMatch(/Restart=always/);
    expect(script).toContain('systemctl enable --now mlinfra-agent.service');
    // Shell variables never use braces: Terraform would read them as references.
    const refs = rawUserData(json).match(/\$\{[^}]*\}/g) ?? [];
    for (const r of refs) expect(r).toMatch(/^\$\{(aws_|data\.aws_)/);
  });

  test('the agent guards are props with defaults, passed as flags; out-of-range values are refused', () => {
    expect(userData(json)).toMatch(/ --max-duration-seconds 259200 --dead-man-minutes 30 --idle-gpu-util-percent 5\n/);
    const { json: j2 } = build({ maxJobDurationSeconds: 3600, deadManMinutes: 0, idleGpuUtilPercent: 20 });
    expect(userData(j2)).toMatch(/ --max-duration-seconds 3600 --dead-man-minutes 0 --idle-gpu-util-percent 20\n/);
    expect(() => build({ maxJobDurationSeconds: 30 })).toThrow(/maxJobDurationSeconds.*30.*60 to 1209600/);
    expect(() => build({ maxJobDurationSeconds: 15 * 86400 })).toThrow(/maxJobDurationSeconds/);
    expect(() => build({ deadManMinutes: -1 })).toThrow(/deadManMinutes.*-1/);
    expect(() => build({ idleGpuUtilPercent: 101 })).toThrow(/idleGpuUtilPercent.*101.*0 .*to 100/);
    expect(() => build({ idleGpuUtilPercent: 2.5 })).toThrow(/idleGpuUtilPercent/);
  });

  test('idleStopMinutes 0: no stop script, no terminate permission', () => {
    const { json: j } = build({ idleStopMinutes: 0 });
    const script = userData(j);
    bashSyntaxCheck(script);
    expect(script).not.toContain('--idle-stop-minutes');
    expect(script).not.toContain('stop.sh');
    expect(JSON.stringify(j.data?.aws_iam_policy_document)).not.toContain('TerminateInstanceInAutoScalingGroup');
  });

  test('host role: exact ARNs only, no wildcard actions or resources', () => {
    const docs = Object.entries(j(json).data.aws_iam_policy_document) as [string, any][];
    const host = docs.find(([k]) => k.includes('host-doc'))![1];
    const actions = host.statement.flatMap((s: any) => s.actions);
    expect(actions).toEqual(expect.arrayContaining(['secretsmanager:GetSecretValue', 's3:GetObject', 'kms:Decrypt', 'autoscaling:TerminateInstanceInAutoScalingGroup']));
    for (const s of host.statement) {
      for (const a of s.actions) expect(a).not.toMatch(/\*/);
      // Allows on exact ARNs (or all keys of the bucket); the one Deny names the agent bundle and spec keys.
      const allowed = s.effect === 'Deny' ? /^\$\{aws_s3_bucket\.[^}]+\.arn\}\/(agent\/\*|pipelines\/\*\/spec-\*\.json)$/ : /^\$\{aws_[a-z0-9_]+\.[^}]+\.arn\}(\/\*)?$/;
      for (const r of s.resources) expect(r).toMatch(allowed);
    }
    const scaleIn = host.statement.find((s: any) => s.actions.includes('autoscaling:TerminateInstanceInAutoScalingGroup'));
    expect(scaleIn.resources).toEqual([expect.stringMatching(/^\$\{aws_autoscaling_group\..+\.arn\}$/)]);
  });

  test('security groups: agent port only from the VPC CIDR by default, via the NLB, peers talk when multi-node', () => {
    const ingress = Object.values(resources(json, 'aws_vpc_security_group_ingress_rule')) as any[];
    const cidrs = ingress.filter((r) => r.cidr_ipv4).map((r) => r.cidr_ipv4);
    expect(cidrs).toEqual(['10.42.0.0/16', '10.42.0.0/16']);
    for (const r of ingress.filter((x) => x.cidr_ipv4)) expect([r.from_port, r.to_port]).toEqual([7070, 7070]);
    expect(ingress.some((r) => r.ip_protocol === '-1' && r.referenced_security_group_id)).toBe(true);
    expect(JSON.stringify(ingress)).not.toContain('0.0.0.0/0');
  });

  test('allowedCidrs replace the default sources', () => {
    const { json: j2 } = build({ allowedCidrs: ['10.8.0.0/16', '192.168.4.0/24'], nodes: { min: 0, max: 1 } });
    const ingress = Object.values(resources(j2, 'aws_vpc_security_group_ingress_rule')) as any[];
    expect(ingress.filter((r) => r.cidr_ipv4).map((r) => r.cidr_ipv4).sort()).toEqual(['10.8.0.0/16', '10.8.0.0/16', '192.168.4.0/24', '192.168.4.0/24']);
    expect(ingress.some((r) => r.ip_protocol === '-1')).toBe(false);
  });

  test('internal NLB with source-IP stickiness and an HTTP /healthz check gives the agent URL', () => {
    const lb = only(json, 'aws_lb') as any;
    expect(lb.internal).toBe(true);
    expect(lb.load_balancer_type).toBe('network');
    const tg = only(json, 'aws_lb_target_group') as any;
    expect(tg.stickiness).toEqual({ type: 'source_ip', enabled: true });
    expect(tg.health_check).toMatchObject({ protocol: 'HTTP', path: '/healthz' });
    const out = Object.entries(json.output!).find(([k]) => k.includes('agent-url'))![1];
    expect(out.value).toMatch(/^http:\/\/\$\{aws_lb\..+\.dns_name\}:7070$/);
  });

  test('provider carries default tags; launched instances are tagged too', () => {
    const p = (json.provider as any).aws[0];
    expect(p.region).toBe('us-east-1');
    expect(p.default_tags[0].tags).toEqual({ 'managed-by': 'cdktf-mlinfra', team: 'ml' });
    const lt = only(json, 'aws_launch_template') as any;
    expect(lt.tag_specifications.map((t: any) => t.resource_type)).toEqual(['instance', 'volume']);
    expect(lt.tag_specifications[0].tags.team).toBe('ml');
  });

  test('every resource names its provider alias explicitly', () => {
    for (const byName of Object.values(json.resource ?? {})) {
      for (const r of Object.values(byName)) expect((r as any).provider).toMatch(/^(aws|random)\./);
    }
  });

  test('creates exactly this set of resources', () => {
    expect(countByType(json)).toEqual({
      aws_autoscaling_group: 1, aws_autoscaling_lifecycle_hook: 1, aws_autoscaling_policy: 2, aws_cloudwatch_metric_alarm: 1, aws_default_security_group: 1, aws_eip: 1, aws_iam_instance_profile: 1, aws_iam_role: 1,
      aws_iam_role_policy: 1, aws_iam_role_policy_attachment: 1, aws_internet_gateway: 1, aws_kms_key: 1, aws_launch_template: 1,
      aws_lb: 1, aws_lb_listener: 1, aws_lb_target_group: 1, aws_nat_gateway: 1, aws_placement_group: 1, aws_route_table: 2,
      aws_route_table_association: 3, aws_s3_bucket: 1, aws_s3_bucket_lifecycle_configuration: 1, aws_s3_bucket_ownership_controls: 1,
      aws_s3_bucket_policy: 1, aws_s3_bucket_public_access_block: 1, aws_s3_bucket_server_side_encryption_configuration: 1,
      aws_s3_bucket_versioning: 1, aws_s3_object: 7, aws_secretsmanager_secret: 1, aws_secretsmanager_secret_version: 1,
      aws_security_group: 2, aws_sqs_queue: 2, aws_sqs_queue_policy: 2, aws_sqs_queue_redrive_allow_policy: 1,
      aws_subnet: 3, aws_vpc: 1, aws_vpc_endpoint: 1, aws_vpc_security_group_egress_rule: 3,
      aws_vpc_security_group_ingress_rule: 4, random_password: 1,
    });
  });

  test('an existing network is used as given: no VPC created', () => {
    const { json: j2 } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'eu-west-1', network: { vpcId: 'vpc-123', subnetIds: ['subnet-a', 'subnet-b'], cidrBlock: '172.16.0.0/16' } });
      new GpuCluster(stack, 'c', { target: aws, accelerator: 'T4', agentBundleDir: testAgentBundle() });
    });
    expect(resources(j2, 'aws_vpc')).toEqual({});
    expect((only(j2, 'aws_autoscaling_group') as any).vpc_zone_identifier).toEqual(['subnet-a', 'subnet-b']);
    const cidrs = (Object.values(resources(j2, 'aws_vpc_security_group_ingress_rule')) as any[]).filter((r) => r.cidr_ipv4).map((r) => r.cidr_ipv4);
    expect(cidrs).toEqual(['172.16.0.0/16', '172.16.0.0/16']);
  });

  test('grants: another AWS cluster gets read on exactly the token secret and scale on exactly the group', () => {
    const { json: j2 } = build({}, (stack, c) => {
      const other = new GpuCluster(stack, 'ops', { target: c.target, accelerator: 'T4', agentBundleDir: testAgentBundle() });
      c.grantAgentAccess(other);
      c.grantScale(other);
      c.grantArtifactsRead(other);
    });
    const policies = Object.entries(resources(j2, 'aws_iam_role_policy')).filter(([k]) => k.startsWith('ops_granted'));
    expect(policies).toHaveLength(3);
    for (const [, p] of policies) expect((p as any).role).toMatch(/aws_iam_role\.ops_iam_role_/);
    const docs = Object.entries(j2.data!.aws_iam_policy_document!).filter(([k]) => k.startsWith('ops_granted'));
    const all = docs.flatMap(([, d]: [string, any]) => d.statement);
    const byAction = (a: string) => all.find((s: any) => s.actions.includes(a));
    expect(byAction('secretsmanager:GetSecretValue').resources).toEqual([expect.stringMatching(/^\$\{aws_secretsmanager_secret\.train_secret_agent-token_.+\.arn\}$/)]);
    expect(byAction('autoscaling:SetDesiredCapacity').resources).toEqual([expect.stringMatching(/^\$\{aws_autoscaling_group\.train_compute_group_.+\.arn\}$/)]);
    expect(byAction('s3:GetObject').resources).toEqual([expect.stringMatching(/^\$\{aws_s3_bucket\.train_storage_bucket_.+\.arn\}\/\*$/)]);
    expect(all.flatMap((s: any) => s.actions)).not.toContain('s3:PutObject');
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});

function j(json: TerraformJson): any {
  return json;
}
