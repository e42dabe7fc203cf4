/**
 * GpuCluster on AWS, issues 17 and 18: the jobs queue and its grants, scaling on backlog, scale-in
 * protection and the drain hook, EFA and single-AZ placement — each asserted on the synthesized JSON.
 */
import { TerraformStack } from 'cdktf';
import { AwsTarget, GpuCluster, GpuClusterProps } from '../../src';
import { AWS_EFA } from '../../src/core/accelerators';
import { bashSyntaxCheck, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster) => void) =>
  synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: testAgentBundle(), ...props });
    extra?.(stack, c);
  });

const ref = (json: TerraformJson, type: string, attr: string, prefix = 'train_') => {
  const ids = Object.keys(resources(json, type)).filter((k) => k.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return `\${${type}.${ids[0]}.${attr}}`;
};
const queueId = (json: TerraformJson, which: 'jobs' | 'dead-letter') =>
  Object.keys(resources(json, 'aws_sqs_queue')).find((k) => k.startsWith(`train_queue_${which}_`))!;
const queueRef = (json: TerraformJson, which: 'jobs' | 'dead-letter', attr: string) => `\${aws_sqs_queue.${queueId(json, which)}.${attr}}`;
const rawUserData = (json: TerraformJson) => {
  const m = /^\$\{base64encode\(local\.([A-Za-z0-9_-]+)\)\}$/.exec(only(json, 'aws_launch_template').user_data as string)!;
  return (json.locals as Record<string, string>)[m[1]];
};
const hostStatements = (json: TerraformJson) =>
  (Object.entries(json.data!.aws_iam_policy_document!).find(([k]) => k.startsWith('train_iam_host-doc'))![1] as any).statement as any[];

describe('GpuCluster on AWS: the jobs queue', () => {
  const { json } = build();
  const keyArn = ref(json, 'aws_kms_key', 'arn');

  test('jobs queue: standard, the README attributes, encrypted with the cluster key, redrive to the DLQ at 100 receives', () => {
    const jobs = resources(json, 'aws_sqs_queue')[queueId(json, 'jobs')] as any;
    expect(jobs).toMatchObject({
      visibility_timeout_seconds: 60, message_retention_seconds: 1209600, receive_wait_time_seconds: 20, max_message_size: 262144,
      kms_master_key_id: keyArn, kms_data_key_reuse_period_seconds: 300,
    });
    expect(jobs.name).toMatch(/^test-train-[0-9a-f]{8}-jobs$/);
    expect(jobs.fifo_queue).toBeUndefined();
    expect(jobs.redrive_policy).toBe(`\${jsonencode({"deadLetterTargetArn" = ${queueRef(json, 'dead-letter', 'arn').slice(2, -1)}, "maxReceiveCount" = 100})}`);
  });

  test('dead-letter queue: 14 days, encrypted; only the jobs queue may redrive into it', () => {
    const dlq = resources(json, 'aws_sqs_queue')[queueId(json, 'dead-letter')] as any;
    expect(dlq).toMatchObject({ message_retention_seconds: 1209600, kms_master_key_id: keyArn });
    expect(dlq.redrive_policy).toBeUndefined();
    const allow = only(json, 'aws_sqs_queue_redrive_allow_policy') as any;
    expect(allow.queue_url).toBe(queueRef(json, 'dead-letter', 'url'));
    expect(allow.redrive_allow_policy).toBe(`\${jsonencode({"redrivePermission" = "byQueue", "sourceQueueArns" = [${queueRef(json, 'jobs', 'arn').slice(2, -1)}]})}`);
  });

  test('both queues deny any request without TLS', () => {
    const policies = Object.values(resources(json, 'aws_sqs_queue_policy')) as any[];
    expect(policies.map((p) => p.queue_url).sort()).toEqual([queueRef(json, 'dead-letter', 'url'), queueRef(json, 'jobs', 'url')].sort());
    const docs = json.data!.aws_iam_policy_document as Record<string, any>;
    for (const p of policies) {
      const doc = docs[/^\$\{data\.aws_iam_policy_document\.([^.]+)\.json\}$/.exec(p.policy)![1]];
      expect(doc.statement).toEqual([{
        sid: 'DenyInsecureTransport', effect: 'Deny', actions: ['sqs:*'], resources: [p.queue_url.replace('.url}', '.arn}')],
        principals: [{ type: '*', identifiers: ['*'] }], condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
      }]);
    }
  });

  test('host role: exactly the README actions on exactly the two queues, and protection and the hook on exactly its group', () => {
    const st = hostStatements(json);
    const on = (arn: string) => st.filter((s) => s.resources.includes(arn));
    expect(on(queueRef(json, 'jobs', 'arn'))).toEqual([expect.objectContaining({
      effect: 'Allow', actions: ['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:SendMessage'], resources: [queueRef(json, 'jobs', 'arn')],
    })]);
    expect(on(queueRef(json, 'dead-letter', 'arn'))).toEqual([expect.objectContaining({ actions: ['sqs:SendMessage'], resources: [queueRef(json, 'dead-letter', 'arn')] })]);
    const group = ref(json, 'aws_autoscaling_group', 'arn');
    expect(st.find((s) => s.actions.includes('autoscaling:SetInstanceProtection'))).toEqual({
      effect: 'Allow', actions: ['autoscaling:SetInstanceProtection', 'autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'], resources: [group],
    });
    // The key the queues use is the one hosts already decrypt and encrypt with.
    expect(st.find((s) => s.actions.includes('kms:GenerateDataKey')).resources).toEqual([keyArn]);
    // No wildcard anywhere.
    for (const s of st) for (const r of s.resources) expect(r).not.toMatch(/^\*$|:\*$/);
  });

  test('the agent leases from the queue: --queue, --dead-letter-queue, --cluster-artifacts s3://BUCKET/cluster, --lifecycle-hook, --asg-name', () => {
    const raw = rawUserData(json);
    bashSyntaxCheck(renderTerraformString(raw));
    const hook = only(json, 'aws_autoscaling_lifecycle_hook') as any;
    const group = only(json, 'aws_autoscaling_group') as any;
    // the hook belongs to this group, and the agent is told both (IMDS instance tags stay disabled)
    expect(hook.autoscaling_group_name).toMatch(/^\$\{aws_autoscaling_group\..+\.name\}$/);
    expect(raw).toContain(` --preemption aws `);
    expect(raw).toContain(` --queue ${queueRef(json, 'jobs', 'url')} --dead-letter-queue ${queueRef(json, 'dead-letter', 'url')} --cluster-artifacts s3://${ref(json, 'aws_s3_bucket', 'bucket')}/cluster --lifecycle-hook ${hook.name} --asg-name ${group.name} `);
    expect(raw).not.toContain('--pipeline-on-start');
  });

  test('the cluster says where its queue is: jobQueue, and an output', () => {
    let c!: GpuCluster;
    const { json: j } = build({}, (_s, cluster) => { c = cluster; });
    expect(c.jobQueue).toEqual({ kind: 'sqs', url: expect.any(String), arn: expect.any(String), keyArn: expect.any(String) });
    const out = Object.entries(j.output as Record<string, any>).find(([k]) => k.includes('jobs-queue'))![1];
    expect(out.value).toBe(queueRef(j, 'jobs', 'url'));
  });

  test('grantEnqueue: SendMessage on exactly the jobs queue and the key, nothing else; repeated grants create nothing', () => {
    const { json: j } = build({}, (stack, c) => {
      const other = new GpuCluster(stack, 'ops', { target: c.target, accelerator: 'T4', agentBundleDir: testAgentBundle() });
      const a = c.grantEnqueue(other);
      expect(c.grantEnqueue(other)).toBe(a);
    });
    const docs = Object.entries(j.data!.aws_iam_policy_document!).filter(([k]) => k.startsWith('ops_granted'));
    expect(docs).toHaveLength(1);
    expect((docs[0][1] as any).statement).toEqual([
      { effect: 'Allow', actions: ['sqs:SendMessage'], resources: [queueRef(j, 'jobs', 'arn')] },
      { effect: 'Allow', actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [ref(j, 'aws_kms_key', 'arn')] },
    ]);
  });
});

describe('GpuCluster on AWS: scaling on backlog, never killing busy hosts', () => {
  const { json } = build();
  const group = ref(json, 'aws_autoscaling_group', 'name');

  test('target tracking on visible messages per in-service host (metric math), scale-in disabled', () => {
    const p = Object.values(resources(json, 'aws_autoscaling_policy')).find((x: any) => x.policy_type === 'TargetTrackingScaling') as any;
    expect(p.autoscaling_group_name).toBe(group);
    expect(p.estimated_instance_warmup).toBe(600);
    const tt = p.target_tracking_configuration;
    expect(tt.target_value).toBe(1);
    expect(tt.disable_scale_in).toBe(true);
    const metrics = tt.customized_metric_specification.metrics;
    expect(metrics).toEqual([
      { id: 'visible', label: 'jobs waiting', return_data: false, metric_stat: { stat: 'Sum', metric: {
        namespace: 'AWS/SQS', metric_name: 'ApproximateNumberOfMessagesVisible', dimensions: [{ name: 'QueueName', value: queueRef(json, 'jobs', 'name') }] } } },
      { id: 'hosts', label: 'hosts in service', return_data: false, metric_stat: { stat: 'Average', metric: {
        namespace: 'AWS/AutoScaling', metric_name: 'GroupInServiceInstances', dimensions: [{ name: 'AutoScalingGroupName', value: group }] } } },
      { id: 'backlog', label: 'jobs waiting per host', expression: 'IF(hosts > 0, visible / hosts, visible)', return_data: true },
    ]);
    // Exactly one series is returned, as target tracking requires.
    expect(metrics.filter((m: any) => m.return_data)).toHaveLength(1);
  });

  test('the group publishes the metrics the policies read, and launches hosts protected from scale-in', () => {
    const asg = only(json, 'aws_autoscaling_group') as any;
    expect(asg.protect_from_scale_in).toBe(true);
    expect(asg.enabled_metrics).toEqual(['GroupDesiredCapacity', 'GroupInServiceInstances']);
    expect(asg.metrics_granularity).toBe('1Minute');
  });

  test('from zero hosts: an alarm on waiting jobs with an empty group adds one host', () => {
    const wake = Object.entries(resources(json, 'aws_autoscaling_policy')).find(([, x]: [string, any]) => x.policy_type === 'SimpleScaling')!;
    expect(wake[1]).toMatchObject({ autoscaling_group_name: group, adjustment_type: 'ChangeInCapacity', scaling_adjustment: 1, cooldown: 300 });
    const alarm = only(json, 'aws_cloudwatch_metric_alarm') as any;
    expect(alarm.alarm_actions).toEqual([`\${aws_autoscaling_policy.${wake[0]}.arn}`]);
    expect(alarm).toMatchObject({ comparison_operator: 'GreaterThanOrEqualToThreshold', threshold: 1, evaluation_periods: 1, treat_missing_data: 'notBreaching' });
    const q = Object.fromEntries(alarm.metric_query.map((m: any) => [m.id, m]));
    expect(q.visible.metric).toMatchObject({ namespace: 'AWS/SQS', metric_name: 'ApproximateNumberOfMessagesVisible', dimensions: { QueueName: queueRef(json, 'jobs', 'name') } });
    expect(q.desired.metric).toMatchObject({ namespace: 'AWS/AutoScaling', metric_name: 'GroupDesiredCapacity', dimensions: { AutoScalingGroupName: group } });
    expect(q.wake).toMatchObject({ expression: 'IF(desired == 0 AND visible > 0, 1, 0)', return_data: true });
  });

  test('a terminating host drains first: a lifecycle hook that continues after the heartbeat timeout', () => {
    expect(only(json, 'aws_autoscaling_lifecycle_hook')).toMatchObject({
      autoscaling_group_name: group, lifecycle_transition: 'autoscaling:EC2_INSTANCE_TERMINATING', heartbeat_timeout: 600, default_result: 'CONTINUE',
    });
  });
});

describe('GpuCluster on AWS: multi-node placement and fabric', () => {
  test('a multi-node cluster: cluster placement group, hosts in one subnet (one AZ)', () => {
    const { json } = build();
    expect(only(json, 'aws_placement_group')).toMatchObject({ strategy: 'cluster' });
    const asg = only(json, 'aws_autoscaling_group') as any;
    expect(asg.placement_group).toBe(ref(json, 'aws_placement_group', 'id'));
    expect(asg.vpc_zone_identifier).toHaveLength(1);
    // The load balancer still spans every subnet.
    expect((only(json, 'aws_lb') as any).subnets.length).toBeGreaterThan(1);
  });

  test('existing subnets: only the first is used by a multi-node group', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'eu-west-1', network: { vpcId: 'vpc-1', subnetIds: ['subnet-a', 'subnet-b'], cidrBlock: '10.0.0.0/16' } });
      new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: { min: 0, max: 3 }, agentBundleDir: testAgentBundle() });
    });
    expect((only(json, 'aws_autoscaling_group') as any).vpc_zone_identifier).toEqual(['subnet-a']);
  });

  test.each([['A100-80GB', 'p4de.24xlarge'], ['H100', 'p5.48xlarge'], ['H200', 'p5en.48xlarge']] as const)(
    '%s x8 (%s) on several nodes: one EFA per network card, the host security group on each, NCCL over EFA', (accelerator, type) => {
      const { json } = build({ accelerator });
      const lt = only(json, 'aws_launch_template') as any;
      const sg = ref(json, 'aws_security_group', 'id', 'train_network_host-sg');
      expect(lt.vpc_security_group_ids).toBeUndefined();
      const nics = lt.network_interfaces as any[];
      expect(nics).toHaveLength(AWS_EFA[type].maxInterfaces);
      nics.forEach((n, card) => expect(n).toEqual({
        network_card_index: card, device_index: card === 0 ? 0 : 1, interface_type: 'efa', security_groups: [sg], delete_on_termination: 'true',
      }));
      const script = renderTerraformString(rawUserData(json));
      for (const line of ['Environment=FI_PROVIDER=efa', 'Environment=FI_EFA_USE_DEVICE_RDMA=1', 'Environment=FI_EFA_FORK_SAFE=1', 'Environment=NCCL_SOCKET_IFNAME=^lo,docker']) {
        expect(script.split('\n')).toContain(line);
      }
    });

  test('EFA needs all traffic to and from the host security group, both ways', () => {
    const { json } = build();
    const sg = ref(json, 'aws_security_group', 'id', 'train_network_host-sg');
    const self = (type: string) => (Object.values(resources(json, type)) as any[]).filter((r) => r.security_group_id === sg && r.referenced_security_group_id === sg);
    expect(self('aws_vpc_security_group_ingress_rule')).toEqual([expect.objectContaining({ ip_protocol: '-1' })]);
    expect(self('aws_vpc_security_group_egress_rule')).toEqual([expect.objectContaining({ ip_protocol: '-1' })]);
  });

  test('no EFA for one node, or on a type without it; NCCL still skips loopback on several nodes', () => {
    const one = build({ nodes: { min: 0, max: 1 } }).json;
    const lt1 = only(one, 'aws_launch_template') as any;
    expect(lt1.network_interfaces).toBeUndefined();
    expect(lt1.vpc_security_group_ids).toHaveLength(1);
    expect(renderTerraformString(rawUserData(one))).not.toMatch(/FI_PROVIDER|NCCL_SOCKET_IFNAME/);
    expect(resources(one, 'aws_placement_group')).toEqual({});

    const l4 = build({ accelerator: 'L4', acceleratorsPerNode: 8 }).json;
    expect((only(l4, 'aws_launch_template') as any).network_interfaces).toBeUndefined();
    const script = renderTerraformString(rawUserData(l4));
    expect(script).toContain('Environment=NCCL_SOCKET_IFNAME=^lo,docker');
    expect(script).not.toContain('FI_PROVIDER');
  });

  test('an explicit type with EFA gets it too (p5e.48xlarge: 32 interfaces)', () => {
    const { json } = build({ accelerator: 'H200', instanceType: 'p5e.48xlarge' });
    expect((only(json, 'aws_launch_template') as any).network_interfaces).toHaveLength(32);
  });

  test('a multi-node cluster on a type a cluster placement group refuses is refused at synth, naming the allowed shapes', () => {
    for (const type of ['t3.2xlarge', 'mac2.metal', 'm7i-flex.8xlarge']) {
      expect(() => build({ accelerator: 'T4', acceleratorsPerNode: 1, instanceType: type, spot: false })).toThrow(
        new RegExp(`NOT_OFFERED.*instanceType: .*cluster placement group, which ${type.replace('.', '\\.')} cannot join.*offered: g4dn\\.xlarge.*p5en\\.48xlarge`));
    }
    // One node needs no placement group: allowed.
    expect(() => build({ accelerator: 'T4', acceleratorsPerNode: 1, instanceType: 't3.2xlarge', spot: false, nodes: { min: 0, max: 1 } })).not.toThrow();
  });
});
