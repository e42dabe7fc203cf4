import { TerraformStack, Testing } from 'cdktf';
import { AwsTarget, Duration, GcpTarget, GpuCluster, MlInfraError, Schedule, Step, StepDefinition, TrainingPipeline, TrainingPipelineProps } from '../../src';
import { testAgentBundle } from '../helpers';

/** Builds a pipeline on an AWS L4 x1 cluster; returns the error it throws. */
function attempt(steps: StepDefinition[], props: Partial<TrainingPipelineProps> = {}, clusterNodes = { min: 0, max: 1 }): MlInfraError {
  const stack = new TerraformStack(Testing.app(), 'test');
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: clusterNodes, agentBundleDir: testAgentBundle() });
  try {
    new TrainingPipeline(stack, 'p', { cluster, steps, schedule: Schedule.cron('0 3 * * *'), ...props });
  } catch (e) {
    expect(e).toBeInstanceOf(MlInfraError);
    expect((e as MlInfraError).path).toBe('test/p');
    return e as MlInfraError;
  }
  throw new Error('expected the pipeline to be refused');
}

const run = (name: string, after: string[] = []) => Step.run(name, ['python3', `${name}.py`], { after });

describe('TrainingPipeline validation', () => {
  test('fails when there are no steps', () => {
    const e = attempt([]);
    expect(e.code).toBe('MISSING_PROP');
    expect(e.prop).toBe('steps');
  });

  test('fails when a step runs after an unknown step, naming both', () => {
    const e = attempt([run('features'), run('train', ['featurs'])]);
    expect(e.prop).toBe('steps[1].after');
    expect(e.value).toBe('featurs');
    expect(e.message).toContain('of step "train" names "featurs", which is not a step');
    expect(e.allowed).toBe('names of steps: features, train');
  });

  test('fails when steps form a cycle, naming the cycle in order', () => {
    const e = attempt([run('features', ['evaluate']), run('train', ['features']), run('evaluate', ['train'])]);
    expect(e.prop).toBe('steps');
    expect(e.value).toBe('features -> train -> evaluate -> features');
    expect(e.message).toContain('cycle through steps "features", "train", "evaluate"');
  });

  test('fails when a step depends on itself', () => {
    expect(attempt([run('train', ['train'])]).value).toBe('train -> train');
  });

  test('fails when two steps share a name', () => {
    const e = attempt([run('train'), run('train')]);
    expect(e.code).toBe('CONFLICTING_PROPS');
    expect(e.prop).toBe('steps[1].name');
    expect(e.message).toContain('repeats step "train" (steps[0] has it)');
  });

  test('fails when a step name is not [a-z][a-z0-9_-]*', () => {
    for (const bad of ['Train', '1st', 'train step', '']) {
      const e = attempt([Step.run(bad, ['x'])]);
      expect(e.prop).toBe('steps[0].name');
      expect(e.value).toBe(bad);
    }
  });

  test('fails when argv is empty', () => {
    const e = attempt([Step.run('train', [])]);
    expect(e.prop).toBe('steps[0].argv');
    expect(e.allowed).toContain('step "train"');
  });

  test('fails when retries are outside 0-10', () => {
    for (const retries of [-1, 11, 1.5]) {
      const e = attempt([Step.run('train', ['x'], { retries })]);
      expect(e.code).toBe('OUT_OF_RANGE');
      expect(e.prop).toBe('steps[0].retries');
      expect(e.allowed).toContain('step "train"');
    }
  });

  test('fails when a timeout is zero', () => {
    const e = attempt([Step.run('train', ['x'], { timeout: Duration.seconds(0) })]);
    expect(e.prop).toBe('steps[0].timeout');
    expect(e.allowed).toContain('step "train"');
  });

  test('fails when a step wants more GPUs than a node has', () => {
    const e = attempt([Step.run('train', ['x'], { gpus: 2 })]);
    expect(e.prop).toBe('steps[0].gpus');
    expect(e.allowed).toBe('an integer from 0 to 1 for step "train" (L4 x1 per node)');
  });

  test('fails when a promote step comes after no run step', () => {
    const none = attempt([run('train'), Step.deployIfBetter('promote', { metric: 'val_auc', after: [] })]);
    expect(none.prop).toBe('steps[1].after');
    expect(none.message).toContain('promote step "promote" names no run step');
    const onlyPromote = attempt([run('train'), Step.deployIfBetter('a', { metric: 'm', after: ['train'] }), Step.deployIfBetter('b', { metric: 'm', after: ['a'] })]);
    expect(onlyPromote.message).toMatch(/2 promote steps \("a", "b"\)/);
  });

  test('fails when there is more than one promote step', () => {
    const e = attempt([run('train'), Step.deployIfBetter('p1', { metric: 'auc', after: ['train'] }), Step.deployIfBetter('p2', { metric: 'auc', after: ['train'] })]);
    expect(e.code).toBe('CONFLICTING_PROPS');
    expect(e.value).toEqual(['p1', 'p2']);
  });

  test('fails when a promote metric is not a metrics.json key', () => {
    expect(attempt([run('train'), Step.deployIfBetter('promote', { metric: 'val auc', after: ['train'] })]).prop).toBe('steps[1].metric');
  });

  test('fails when env names look like secrets or are reserved', () => {
    const secret = attempt([Step.run('train', ['x'], { env: { WANDB_API_KEY: 'abc' } })]);
    expect(secret.message).toContain('names what looks like a secret');
    expect(secret.allowed).toContain('step "train"');
    expect(attempt([Step.run('train', ['x'], { env: { MLINFRA_RUN_ID: 'x' } })]).value).toBe('MLINFRA_RUN_ID');
    expect(attempt([Step.run('train', ['x'], { env: { 'BAD-NAME': 'x' } })]).value).toBe('BAD-NAME');
  });

  test('fails when the onOom cluster is on another target', () => {
    const stack = new TerraformStack(Testing.app(), 'test');
    const cluster = new GpuCluster(stack, 'train', { target: new AwsTarget(stack, 'aws', { region: 'us-east-1' }), accelerator: 'L4', agentBundleDir: testAgentBundle() });
    const big = new GpuCluster(stack, 'big', { target: new AwsTarget(stack, 'aws2', { region: 'us-west-2' }), accelerator: 'A100-80GB', agentBundleDir: testAgentBundle() });
    const gcpBig = new GpuCluster(stack, 'gbig', { target: new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' }), accelerator: 'L4', agentBundleDir: testAgentBundle() });
    for (const onOom of [big, gcpBig]) {
      try {
        new TrainingPipeline(stack, `p-${onOom.node.id}`, { cluster, steps: [Step.run('train', ['x'], { onOom })] });
        throw new Error('expected a refusal');
      } catch (e) {
        expect((e as MlInfraError).prop).toBe('steps[0].onOom');
        expect((e as Error).message).toContain('of step "train" is a cluster on another target');
      }
    }
    expect(() => new TrainingPipeline(stack, 'self', { cluster, steps: [Step.run('train', ['x'], { onOom: cluster })] })).toThrow(/names the pipeline's own cluster/);
  });

  test('a schedule on an aws cluster that keeps hosts up is accepted: runs are queued, not started with hosts', () => {
    expect(() => attempt([run('train')], {}, { min: 1, max: 2 })).toThrow(/expected the pipeline to be refused/);
  });

  test('fails when the time zone or params are invalid', () => {
    expect(attempt([run('train')], { timezone: 'Mars/Olympus' }).prop).toBe('timezone');
    expect(attempt([run('train')], { params: { 'bad key': 1 } }).prop).toBe('params key');
    expect(attempt([run('train')], { params: { lr: NaN } }).prop).toBe('params.lr');
  });

  test('fails when artifacts is not on the cluster\'s storage', () => {
    expect(attempt([run('train')], { artifacts: 'gs://elsewhere/x' }).prop).toBe('artifacts');
  });
});

describe('Schedule', () => {
  test('cron: converts to EventBridge Scheduler form', () => {
    expect(Schedule.cron('0 3 * * *').awsExpression).toBe('cron(0 3 * * ? *)');
    expect(Schedule.cron('*/15 * * * *').awsExpression).toBe('cron(*/15 * * * ? *)');
    expect(Schedule.cron('0 6 1 * *').awsExpression).toBe('cron(0 6 1 * ? *)');
    expect(Schedule.cron('0 6 * * 0').awsExpression).toBe('cron(0 6 ? * SUN *)');
    expect(Schedule.cron('0 6 * * 7').awsExpression).toBe('cron(0 6 ? * SUN *)');
    expect(Schedule.cron('0 6 * * 1,3,5').awsExpression).toBe('cron(0 6 ? * MON,WED,FRI *)');
    expect(Schedule.cron('0 6 * * sat,sun').awsExpression).toBe('cron(0 6 ? * SUN,SAT *)');
    expect(Schedule.cron('0 6 * jan-mar */2').awsExpression).toBe('cron(0 6 ? JAN-MAR SUN,TUE,THU,SAT *)');
    expect(Schedule.cron('0 3 * * *').toCron('x', 'y')).toBe('0 3 * * *');
  });

  test('rate: AWS rate() and a cron where one exists', () => {
    expect(Schedule.rate(Duration.minutes(1)).awsExpression).toBe('rate(1 minute)');
    expect(Schedule.rate(Duration.hours(6)).awsExpression).toBe('rate(6 hours)');
    expect(Schedule.rate(Duration.days(1)).awsExpression).toBe('rate(1 day)');
    expect(Schedule.rate(Duration.hours(6)).toCron('x', 'y')).toBe('0 */6 * * *');
    expect(Schedule.rate(Duration.hours(1)).toCron('x', 'y')).toBe('0 * * * *');
    expect(Schedule.rate(Duration.days(1)).toCron('x', 'y')).toBe('0 0 * * *');
    expect(() => Schedule.rate(Duration.hours(5)).toCron('x', 'Cloud Scheduler')).toThrow(MlInfraError);
  });

  test('fails when a cron expression is malformed', () => {
    for (const bad of ['0 3 * *', '0 3 * * * *', '60 3 * * *', '0 24 * * *', '0 3 0 * *', '0 3 * 13 *', '0 3 * * 8', '0 3 * * FOO', '5-1 * * * *', '*/0 * * * *', '0 3 1 * MON']) {
      expect(() => Schedule.cron(bad)).toThrow(MlInfraError);
    }
    expect(() => Schedule.cron('0 3 1 * MON')).toThrow(/restricts both day-of-month and day-of-week/);
    expect(() => Schedule.cron('61 3 * * *')).toThrow(/minute field "61" has 61, outside 0-59/);
  });

  test('fails when a rate is under a minute or not whole minutes', () => {
    expect(() => Schedule.rate(Duration.seconds(30))).toThrow(MlInfraError);
    expect(() => Schedule.rate(Duration.seconds(90))).toThrow(MlInfraError);
  });
});

describe('schedule periods (what freshness alarms must allow)', () => {
  test.each([
    ['0 3 * * *', 86400],
    ['*/15 * * * *', 900],
    ['0 9 * * 1-5', 3 * 86400],
    ['30 2 1 * *', 31 * 86400],
  ])('cron %s: longest gap %i s', (expr, seconds) => {
    expect(Schedule.cron(expr).periodSeconds).toBe(seconds);
  });
  test('rate: the interval', () => {
    expect(Schedule.rate(Duration.hours(6)).periodSeconds).toBe(21600);
  });
});
