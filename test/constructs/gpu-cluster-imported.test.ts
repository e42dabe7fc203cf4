// An imported GpuCluster (fromGpuClusterAttributes): scheduled by a TrainingPipeline and watched by a
// MonitoringStack, through IGpuCluster only. Synthesizes examples/imported-cluster and reads the JSON.
import { App, Testing, TerraformStack } from 'cdktf';
import { build } from '../../examples/imported-cluster/main';
import { stackGraph } from '../../src/aspects/picture';
import { AwsTarget, GcpTarget, GpuCluster, MlInfraError, Schedule, Step, TrainingPipeline } from '../../src';
import { caught } from '../helpers';

function synth(): { json: any; stack: TerraformStack } {
  const app = Testing.app();
  const [stack] = build(app as App);
  return { json: JSON.parse(Testing.synth(stack)), stack };
}
const of = (json: any, type: string): Record<string, any> => json.resource?.[type] ?? {};

describe('imported GpuCluster (examples/imported-cluster)', () => {
  const { json, stack } = synth();

  test('creates nothing of the cluster', () => {
    for (const type of ['aws_autoscaling_group', 'aws_launch_template', 'aws_s3_bucket', 'aws_secretsmanager_secret', 'aws_lb', 'aws_security_group']) {
      expect({ type, n: Object.keys(of(json, type)).length }).toEqual({ type, n: 0 });
    }
    // The only role is the pipeline scheduler's, the only key the monitor's notifications'.
    expect(Object.keys(of(json, 'aws_iam_role'))).toEqual([expect.stringMatching(/^ltv_schedule_role_[0-9A-F]{8}$/)]);
    expect(Object.keys(of(json, 'aws_kms_key'))).toEqual([expect.stringMatching(/^ops_notifications_key_[0-9A-F]{8}$/)]);
  });

  test('the pipeline spec goes into the cluster\'s bucket, under its key', () => {
    const specs = Object.values(of(json, 'aws_s3_object'));
    expect(specs).toHaveLength(1);
    expect(specs[0]).toMatchObject({
      bucket: 'gpu-aws-train-8d1c9d6e-123456789012', content_type: 'application/json', server_side_encryption: 'aws:kms',
      kms_key_id: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    });
    expect(specs[0].key).toMatch(/^pipelines\/imported-aws-ltv-[0-9a-f]{8}\/spec-[0-9a-f]{16}\.json$/);
  });

  test('the schedule enqueues its runs into exactly the imported jobs queue, allowed SendMessage on it and its key only', () => {
    const [schedule] = Object.values(of(json, 'aws_scheduler_schedule'));
    const queueArn = 'arn:aws:sqs:us-east-1:123456789012:gpu-aws-train-8d1c9d6e-jobs';
    expect(schedule.target.arn).toBe(queueArn);
    expect(JSON.parse(schedule.target.input)).toEqual({ v: 1, kind: 'pipeline-run', pipeline: expect.stringMatching(/^imported-aws-ltv-/), spec: expect.stringMatching(/^s3:\/\/gpu-aws-train-8d1c9d6e-123456789012\/pipelines\//) });
    const docs = Object.values(json.data.aws_iam_policy_document) as any[];
    const send = docs.find((d) => d.statement?.[0]?.actions?.includes('sqs:SendMessage'));
    expect(send.statement).toEqual([
      { effect: 'Allow', actions: ['sqs:SendMessage'], resources: [queueArn] },
      { effect: 'Allow', actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: ['arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'] },
    ]);
    expect(docs.some((d) => JSON.stringify(d).includes('autoscaling:SetDesiredCapacity'))).toBe(false);
  });

  test('the monitor grants the imported host role its metric writes and alarms on its group and load balancer', () => {
    const policies = Object.values(of(json, 'aws_iam_role_policy')) as any[];
    expect(policies.filter((p) => p.name === 'mlinfra-host-metrics').map((p) => p.role)).toEqual(['gpu-aws-train-8d1c9d6e-host']);
    const alarms = Object.values(of(json, 'aws_cloudwatch_metric_alarm')) as any[];
    const down = alarms.find((a) => a.metric_name === 'UnHealthyHostCount');
    expect(down.dimensions).toEqual({ TargetGroup: expect.stringMatching(/^targetgroup\//), LoadBalancer: expect.stringMatching(/^net\//) });
    const drift = alarms.find((a) => a.metric_name === 'mlinfra_feature_drift_psi');
    expect(drift.dimensions).toEqual({ ClusterName: 'gpu-aws-train-8d1c9d6e' });
    const runs = alarms.filter((a) => a.metric_name === 'mlinfra_pipeline_runs_total');
    expect(runs.map((a) => a.dimensions.ClusterName)).toEqual(['gpu-aws-train-8d1c9d6e', 'gpu-aws-train-8d1c9d6e']);
  });

  test('an imported cluster without its queue attributes cannot take a schedule: the error names them', () => {
    const app = Testing.app();
    const st = new TerraformStack(app, 'noq');
    const aws = new AwsTarget(st, 'aws', { region: 'us-east-1' });
    const c = GpuCluster.fromGpuClusterAttributes(st, 'train', {
      target: aws, accelerator: 'T4', nodes: { min: 0, max: 1 }, agentUrl: 'http://agent:7070', bucketName: 'b', groupName: 'g',
      agentTokenSecret: { store: 'aws-secrets-manager', arn: 'arn:aws:secretsmanager:us-east-1:1:secret:x', name: 'x' },
      aws: { hostRoleArn: 'arn:aws:iam::1:role/r', hostRoleName: 'r', kmsKeyArn: 'arn:aws:kms:us-east-1:1:key/k', autoscalingGroupArn: 'arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u:autoScalingGroupName/g' },
    });
    expect(c.jobQueue).toBeUndefined();
    expect(caught(() => c.grantEnqueue(c)).message).toMatch(/aws\.jobsQueueUrl/);
    expect(() => new TrainingPipeline(st, 'p', { cluster: c, schedule: Schedule.cron('0 3 * * *'), steps: [Step.run('train', ['x'])] })).toThrow(/jobsQueueUrl and aws\.jobsQueueArn/);
  });

  test('the picture shows the pipeline running on it and the monitor watching it', () => {
    const edges = stackGraph(stack).edges.map((e) => `${e.from} -${e.kind}${e.label ? ` ${e.label}` : ''}-> ${e.to}`);
    expect(edges).toEqual(expect.arrayContaining([
      'imported-aws/ltv -uses runs on-> imported-aws/train',
      'imported-aws/ops -watches-> imported-aws/train',
      'imported-aws/ops -watches-> imported-aws/ltv',
    ]));
  });
});

describe('GpuCluster.fromGpuClusterAttributes', () => {
  const base = (target: AwsTarget | GcpTarget) => ({
    target, accelerator: 'T4' as const, nodes: { min: 0, max: 1 }, agentUrl: 'http://agent:7070', bucketName: 'b', groupName: 'g',
    agentTokenSecret: { store: 'aws-secrets-manager' as const, arn: 'arn:aws:secretsmanager:us-east-1:1:secret:x', name: 'x' },
  });

  test('fails when the aws attributes are missing', () => {
    const stack = new TerraformStack(Testing.app(), 's');
    const target = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const e = caught(() => GpuCluster.fromGpuClusterAttributes(stack, 'c', base(target)));
    expect(e).toBeInstanceOf(MlInfraError);
    expect({ code: e.code, prop: e.prop }).toEqual({ code: 'MISSING_PROP', prop: 'aws' });
  });

  test('fails when the target is gcp: importing is offered on aws', () => {
    const stack = new TerraformStack(Testing.app(), 's');
    const target = new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
    const e = caught(() => GpuCluster.fromGpuClusterAttributes(stack, 'c', base(target)));
    expect({ code: e.code, prop: e.prop, value: e.value }).toEqual({ code: 'NOT_OFFERED', prop: 'target', value: 'gcp' });
  });

  test('fails when an imported cluster is asked for a peer token (its hosts are configured elsewhere)', () => {
    const stack = new TerraformStack(Testing.app(), 's');
    const target = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const aws = { hostRoleArn: 'arn:aws:iam::1:role/h', hostRoleName: 'h', kmsKeyArn: 'arn:aws:kms:us-east-1:1:key/k', autoscalingGroupArn: 'arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x' };
    const c = GpuCluster.fromGpuClusterAttributes(stack, 'c', { ...base(target), aws });
    const e = caught(() => c.addPeerToken(c, 'big'));
    expect({ code: e.code, prop: e.prop }).toEqual({ code: 'CONFLICTING_PROPS', prop: 'addPeerToken' });
  });
});
