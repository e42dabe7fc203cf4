import { TerraformStack } from 'cdktf';
import { Duration } from '../../src/core/duration';
import { AwsTarget, GcpTarget, KubernetesTarget } from '../../src/core/targets';
import { GpuCluster } from '../../src/constructs/gpu-cluster';
import { MonitoringStack, MonitoringStackProps } from '../../src/constructs/monitoring-stack';
import { App, testAgentBundle } from '../helpers';
import { caught } from '../helpers';

const BUNDLE = testAgentBundle();

interface World { stack: TerraformStack; aws: AwsTarget; cluster: GpuCluster; ops: MonitoringStack }
function world(props: Partial<MonitoringStackProps> = {}): World {
  const stack = new TerraformStack(new App(), 'test');
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  const cluster = new GpuCluster(stack, 'train', { target: aws, accelerator: 'T4', agentBundleDir: BUNDLE });
  const ops = new MonitoringStack(stack, 'ops', { target: aws, notify: ['ml@example.com'], ...props });
  return { stack, aws, cluster, ops };
}

const pipeline = (w: World, schedulePeriodSeconds?: number) => ({ watchKind: 'training-pipeline' as const, pipelineName: 'ltv', cluster: w.cluster, schedulePeriodSeconds });

describe('MonitoringStack validation', () => {
  test.each<[string, (w: World) => unknown, string, unknown, RegExp]>([
    ['notify is empty', () => world({ notify: [] }), 'notify', [], /non-empty list/],
    ['an email is malformed', () => world({ notify: ['ml-oncall@'] }), 'notify[0]', 'ml-oncall@', /an email address/],
    ['a webhook is not https', () => {
      const stack = new TerraformStack(new App(), 'k');
      new MonitoringStack(stack, 'ops', { target: new KubernetesTarget(stack, 'k8s', { namespace: 'ml' }), notify: ['http://hooks.example.com/x'] });
    }, 'notify[0]', 'http://hooks.example.com/x', /https:\/\//],
    // A Slack webhook URL is a credential: refused as a string, and not echoed in the error.
    ['a Slack webhook URL is given as a string', () => world({ notify: ['https://hooks.slack.com/services/T0/B0/abc'] }), 'notify[0]', '(Slack webhook URL hidden)', /Notify\.slack/],
    ['emails are given on kubernetes without smtp', () => {
      const stack = new TerraformStack(new App(), 'k');
      new MonitoringStack(stack, 'ops', { target: new KubernetesTarget(stack, 'k8s', { namespace: 'ml' }), notify: ['ml@example.com'] });
    }, 'kubernetes.smtp', undefined, /SMTP relay/],
    ['a threshold is negative', (w) => w.ops.watch(w.cluster, { gpuIdlePercent: -5 }), 'gpuIdlePercent', -5, /percentage above 0/],
    ['a percent is over 100', (w) => w.ops.watch(w.cluster, { gpuIdlePercent: 150 }), 'gpuIdlePercent', 150, /at most 100/],
    ['an error rate is over 100', (w) => w.ops.watch({ watchKind: 'model-endpoint', metrics: {}, url: 'x', target: w.aws } as never, { errorRatePercent: 101 }), 'errorRatePercent', 101, /at most 100/],
    ['p99 is 0', (w) => w.ops.watch({ watchKind: 'model-endpoint', metrics: {}, url: 'x', target: w.aws } as never, { p99LatencyMs: 0 }), 'p99LatencyMs', 0, /above 0/],
    ['minutes are fractional', (w) => w.ops.watch(w.cluster, { agentDownMinutes: 2.5 }), 'agentDownMinutes', 2.5, /whole number of minutes/],
    ['maxAge is shorter than the schedule period', (w) => w.ops.watch(pipeline(w, 86400), { maxAge: Duration.hours(20) }), 'maxAge', '20 hours', /longer than the schedule's period \(86400 seconds\)/],
    ['maxAge is longer than 7 days', (w) => w.ops.watch(pipeline(w), { maxAge: Duration.days(8) }), 'maxAge', '8 days', /7 days/],
    ['a cluster is on another target', (w) => {
      const gcp = new GcpTarget(w.stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
      w.ops.watch(new GpuCluster(w.stack, 'other', { target: gcp, accelerator: 'T4', agentBundleDir: BUNDLE }));
    }, 'watch(cluster).target', 'gcp', /this stack's target \(aws us-east-1\)/],
    ['a cluster is in another region', (w) => {
      const west = new AwsTarget(w.stack, 'west', { region: 'us-west-2' });
      w.ops.watch(new GpuCluster(w.stack, 'other', { target: west, accelerator: 'T4', agentBundleDir: BUNDLE }));
    }, 'watch(cluster).target', 'us-west-2', /aws us-east-1/],
    ['a construct is watched twice', (w) => w.ops.watch(w.cluster).watch(w.cluster), 'watch', 'test/train', /watched once/],
    ['something unwatchable is watched', (w) => w.ops.watch({} as never), 'watch', 'object', /a construct with a watchKind/],
  ])('fails when %s', (_name, fn, prop, value, allowed) => {
    const e = caught(() => fn(world()));
    expect({ prop: e.prop, value: e.value }).toEqual({ prop, value });
    expect(e.allowed).toMatch(allowed);
    expect(e.message).toContain(e.path);
  });

  test('defaults: maxAge is the schedule period plus 2 hours, capped to what the alarm can look back over', () => {
    const w = world();
    expect(() => w.ops.watch(pipeline(w, 3600))).not.toThrow();
    // Weekly: CloudWatch looks back at most 7 days, so the default is capped there instead of failing.
    expect(() => w.ops.watch({ ...pipeline(w, 7 * 86400) })).not.toThrow();
  });
});
