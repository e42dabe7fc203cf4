import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { SchedulerSchedule } from '@cdktf/provider-aws/lib/scheduler-schedule';
import { AwsTarget, Duration, GpuCluster, Schedule, Step, TrainingPipeline, TrainingPipelineProps } from '../../src';
import { bashSyntaxCheck, countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const STEPS = [
  Step.run('features', ['python3', 'featurize.py'], { gpus: 0, env: { DATA_DATE: 'yesterday' } }),
  Step.run('train', ['python3', 'train.py', '--lr', '0.1'], { after: ['features'], retries: 2, timeout: Duration.hours(2) }),
  Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
];

function build(props: Partial<TrainingPipelineProps> = {}, extra?: (stack: TerraformStack, p: TrainingPipeline) => void) {
  let pipeline!: TrainingPipeline;
  const out = synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: { min: 0, max: 2 }, agentBundleDir: testAgentBundle() });
    pipeline = new TrainingPipeline(stack, 'ltv', {
      cluster, schedule: Schedule.cron('0 3 * * *'), timezone: 'Europe/Paris', params: { dataset: 'ltv-v3', epochs: 5 }, steps: STEPS, ...props,
    });
    extra?.(stack, pipeline);
  });
  return { ...out, pipeline };
}

/** The start-up script hosts receive. */
function userData(json: TerraformJson): string {
  const lt = only(json, 'aws_launch_template');
  const m = /^\$\{base64encode\(local\.([A-Za-z0-9_-]+)\)\}$/.exec(lt.user_data as string)!;
  return renderTerraformString((json.locals as Record<string, string>)[m[1]]);
}

describe('TrainingPipeline on AWS: OOM escalation', () => {
  test('hosts fetch the bigger cluster\'s token at every agent start, to the file the spec names, with read on exactly its secret', () => {
    let specTokenFile = '';
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
      const big = new GpuCluster(stack, 'big', { target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
      const p = new TrainingPipeline(stack, 'ltv', {
        cluster, schedule: Schedule.cron('0 3 * * *'),
        steps: [Step.run('train', ['python3', 'train.py'], { onOom: big })],
      });
      const step = p.spec.steps[0];
      specTokenFile = step.kind === 'run' ? step.onOom!.tokenFile! : '';
    });
    expect(specTokenFile).toMatch(/^\/run\/mlinfra\/clusters\/test-big-[0-9a-f]{8}\/token$/);
    const scripts = Object.entries(json.locals as Record<string, string>);
    const trainScript = renderTerraformString(scripts.find(([k]) => k.startsWith('train_'))![1]);
    const bigScript = renderTerraformString(scripts.find(([k]) => k.startsWith('big_'))![1]);
    bashSyntaxCheck(trainScript);
    expect(trainScript).toContain(`> ${specTokenFile}.tmp\nmv ${specTokenFile}.tmp ${specTokenFile}\nMLINFRA_EOF`);
    expect(bigScript).not.toContain('/run/mlinfra/clusters/');
    const raw = scripts.find(([k]) => k.startsWith('train_'))![1];
    expect(raw).toMatch(/--secret-id '\$\{aws_secretsmanager_secret\.big_secret_agent-token_[0-9A-F]{8}\.arn\}'/);
    const grant = Object.entries(json.data!.aws_iam_policy_document as Record<string, any>).filter(([k]) => k.startsWith('train_granted'));
    expect(grant).toHaveLength(1);
    expect(grant[0][1].statement[0]).toMatchObject({ actions: ['secretsmanager:GetSecretValue'], resources: [expect.stringMatching(/aws_secretsmanager_secret\.big_secret_agent-token_/)] });
  });
});

describe('TrainingPipeline on AWS', () => {
  const { text, json, pipeline } = build();
  const asgRef = (attr: string) => `\${aws_autoscaling_group.${Object.keys(resources(json, 'aws_autoscaling_group'))[0]}.${attr}}`;
  const bucketRef = `\${aws_s3_bucket.${Object.keys(resources(json, 'aws_s3_bucket'))[0]}`;

  test('schedule: EventBridge Scheduler, cron converted to 6 fields with ?, time zone, no flexible window', () => {
    expect(text).toHaveResourceWithProperties(SchedulerSchedule, {
      schedule_expression: 'cron(0 3 * * ? *)',
      schedule_expression_timezone: 'Europe/Paris',
      flexible_time_window: { mode: 'OFF' },
    });
    expect(pipeline.scheduleName).toBeDefined();
  });

  const queueRef = (attr: string) => `\${aws_sqs_queue.${Object.keys(resources(json, 'aws_sqs_queue')).find((k) => k.startsWith('train_queue_jobs_'))}.${attr}}`;

  test('the target enqueues one run on the cluster\'s jobs queue: the fixed pipeline-run body, as is', () => {
    const s = only(json, 'aws_scheduler_schedule') as any;
    expect(s.target.arn).toBe(queueRef('arn'));
    // Byte-exact: the agent's message kind, keys in this order.
    expect(s.target.input).toBe(`{"v":1,"kind":"pipeline-run","pipeline":"${pipeline.spec.name}","spec":"s3://${bucketRef}.bucket}/pipelines/${pipeline.name}/spec-${pipeline.specId}.json"}`);
    expect(s.target.retry_policy).toEqual({ maximum_event_age_in_seconds: 3600, maximum_retry_attempts: 10 });
    expect(s.target.role_arn).toMatch(/^\$\{aws_iam_role\.ltv_schedule_role_[0-9A-F]{8}\.arn\}$/);
    expect(s.target.sqs_parameters).toBeUndefined();
  });

  test('scheduler role: trusted by scheduler.amazonaws.com of this account only, allowed exactly SendMessage on the jobs queue and its key', () => {
    const docs = json.data!.aws_iam_policy_document as Record<string, any>;
    const assume = Object.entries(docs).find(([k]) => k.includes('ltv_schedule_assume'))![1];
    expect(assume.statement).toEqual([{
      effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['scheduler.amazonaws.com'] }],
      condition: [{ test: 'StringEquals', variable: 'aws:SourceAccount', values: [expect.stringMatching(/^\$\{data\.aws_caller_identity\..+\.account_id\}$/)] }],
    }]);
    const policies = Object.values(resources(json, 'aws_iam_role_policy')).filter((p: any) => String(p.role).includes('ltv_schedule_role')) as any[];
    expect(policies).toHaveLength(1);
    const doc = docs[/^\$\{data\.aws_iam_policy_document\.([^.]+)\.json\}$/.exec(policies[0].policy)![1]];
    expect(doc.statement).toEqual([
      { effect: 'Allow', actions: ['sqs:SendMessage'], resources: [queueRef('arn')] },
      { effect: 'Allow', actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [expect.stringMatching(/^\$\{aws_kms_key\.train_storage_key_[0-9A-F]{8}\.arn\}$/)] },
    ]);
    // Nothing may resize the group from a schedule any more.
    expect(JSON.stringify(docs)).not.toContain('autoscaling:SetDesiredCapacity');
    expect(asgRef('arn')).toContain('aws_autoscaling_group');
  });

  test('a cluster that keeps hosts up takes scheduled runs too (they are queued)', () => {
    const { json: j } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: { min: 1, max: 2 }, agentBundleDir: testAgentBundle() });
      new TrainingPipeline(stack, 'ltv', { cluster, schedule: Schedule.cron('0 3 * * *'), steps: STEPS });
    });
    expect(resources(j, 'aws_scheduler_schedule')).not.toEqual({});
  });

  test('the spec: an S3 object in the cluster bucket, KMS-encrypted, key named by its hash, content the PipelineSpec', () => {
    const o = Object.values(resources(json, 'aws_s3_object')).find((x: any) => String(x.key).startsWith('pipelines/')) as any;
    expect(o.key).toBe(`pipelines/${pipeline.name}/spec-${pipeline.specId}.json`);
    expect(pipeline.specId).toMatch(/^[0-9a-f]{16}$/);
    // The bucket's name through its versioning configuration: written once versioning is on.
    expect(o.bucket).toMatch(/^\$\{aws_s3_bucket_versioning\.train_storage_versioning_[A-F0-9]+\.bucket\}$/);
    expect(o.server_side_encryption).toBe('aws:kms');
    expect(o.kms_key_id).toMatch(/^\$\{aws_kms_key\..+\.arn\}$/);
    expect(o.content_type).toBe('application/json');
    const spec = JSON.parse(o.content);
    expect(spec).toEqual({
      version: 1, name: pipeline.name, artifactsUri: `s3://${bucketRef}.bucket}/pipelines/${pipeline.name}`,
      autostop: true, params: { dataset: 'ltv-v3', epochs: 5 },
      steps: [
        { kind: 'run', name: 'features', argv: ['python3', 'featurize.py'], env: { DATA_DATE: 'yesterday' }, after: [], retries: 0, gpus: 0 },
        { kind: 'run', name: 'train', argv: ['python3', 'train.py', '--lr', '0.1'], env: {}, after: ['features'], retries: 2, gpus: 1, timeoutSeconds: 7200 },
        { kind: 'deployIfBetter', name: 'promote', after: ['train'], metric: 'val_auc', higherIsBetter: true },
      ],
    });
    // Canonical: keys sorted at every level.
    expect(o.content).toBe(JSON.stringify(spec, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v)));
    expect(pipeline.specUri).toContain(`/pipelines/${pipeline.name}/spec-${pipeline.specId}.json`);
  });

  test('hosts are not told to run the pipeline at start any more: the agent has no --pipeline-on-start', () => {
    expect(userData(json)).not.toContain('--pipeline-on-start');
  });

  test('the spec hash follows the content', () => {
    const other = build({ params: { dataset: 'ltv-v4', epochs: 5 } }).pipeline;
    expect(other.specId).not.toBe(pipeline.specId);
    expect(build().pipeline.specId).toBe(pipeline.specId);
  });

  test('model, artifacts, outputs (no secrets)', () => {
    // pipeline.model is the registry (issue 16): its uri is the versions prefix.
    expect(pipeline.model.uri).toBe(`${pipeline.artifactsUri}/models/versions`);
    const outputs = Object.entries(json.output ?? {}).filter(([k]) => k.startsWith('ltv_outputs'));
    expect(outputs.map(([k]) => k.replace(/_[0-9A-F]{8}$/, '')).sort()).toEqual(['ltv_outputs_artifacts', 'ltv_outputs_schedule', 'ltv_outputs_spec-uri']);
    expect(JSON.stringify(outputs)).not.toMatch(/secret|password|token/i);
  });

  test('rate schedules use rate(...)', () => {
    const { json: j } = build({ schedule: Schedule.rate(Duration.hours(6)) });
    expect((only(j, 'aws_scheduler_schedule') as any).schedule_expression).toBe('rate(6 hours)');
  });

  test('weekday crons move day-of-week to AWS names and day-of-month to ?', () => {
    const { json: j } = build({ schedule: Schedule.cron('30 2 * * 1-5') });
    expect((only(j, 'aws_scheduler_schedule') as any).schedule_expression).toBe('cron(30 2 ? * MON-FRI *)');
  });

  test('no schedule: only the spec object, no schedule, no start-up hook', () => {
    const { json: j, pipeline: p } = build({ schedule: undefined });
    expect(resources(j, 'aws_scheduler_schedule')).toEqual({});
    expect(p.scheduleName).toBeUndefined();
    expect(userData(j)).not.toContain('--pipeline-on-start');
  });

  test('grantRead gives read of the artifacts (the cluster grant)', () => {
    const { json: j } = build({}, (stack, p) => {
      const reader = new GpuCluster(stack, 'reader', { target: p.cluster.target as AwsTarget, accelerator: 'L4', agentBundleDir: testAgentBundle() });
      p.grantRead(reader);
    });
    const docs = Object.entries(j.data!.aws_iam_policy_document as Record<string, any>).filter(([k]) => k.includes('artifacts-read'));
    expect(docs).toHaveLength(1);
    expect(docs[0][1].statement.map((s: any) => s.actions).flat()).toEqual(['s3:ListBucket', 's3:GetObject', 'kms:Decrypt']);
  });

  test('creates exactly these', () => {
    const all = countByType(json);
    expect({
      schedule: all.aws_scheduler_schedule, role: all.aws_iam_role, policy: all.aws_iam_role_policy, objects: all.aws_s3_object,
    }).toEqual({ schedule: 1, role: 2, policy: 2, objects: 8 });
  });

  test('snapshot', () => {
    const p = json.resource!;
    const mine = Object.fromEntries(Object.entries(p).map(([type, byName]) => [type, Object.fromEntries(Object.entries(byName).filter(([k]) => k.startsWith('ltv')))])
      .filter(([, byName]) => Object.keys(byName as object).length));
    expect(mine).toMatchSnapshot();
  });
});
