// MonitoringStack destinations per target: what each target refuses, and why, at synth time.
import { TerraformStack, Testing } from 'cdktf';
import { AwsTarget, GcpTarget, KubernetesTarget, Target } from '../../src';
import { Notify } from '../../src/core/notify';
import { MonitoringStack } from '../../src/constructs/monitoring-stack';
import { caught } from '../helpers';

type Kind = 'aws' | 'gcp' | 'kubernetes';
function monitor(kind: Kind, notify: (Notify | string)[]) {
  const stack = new TerraformStack(Testing.app(), 'test');
  const target: Target = kind === 'aws' ? new AwsTarget(stack, 'aws', { region: 'us-east-1' })
    : kind === 'gcp' ? new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' })
      : new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
  new MonitoringStack(stack, 'ops', { target, notify });
  return JSON.parse(Testing.synth(stack)) as { resource: Record<string, Record<string, any>> };
}

describe('notify destinations per target', () => {
  test('aws: only emails need no delivery function', () => {
    const j = monitor('aws', ['ml@example.com']);
    expect(j.resource.aws_lambda_function).toBeUndefined();
  });

  test('aws: a plain webhook is delivered by the function (SNS https subscriptions need a confirming endpoint)', () => {
    const j = monitor('aws', [Notify.webhook('https://hooks.example.com/a', { authSecret: 'hook-token' })]);
    const fn = Object.values(j.resource.aws_lambda_function)[0];
    expect(JSON.parse(fn.environment.variables.MLINFRA_TARGETS)).toEqual([{ kind: 'webhook', url: 'https://hooks.example.com/a', secret: 'hook-token' }]);
    expect(Object.values(j.resource.aws_sns_topic_subscription).map((s: any) => s.protocol)).toEqual(['lambda']);
  });

  test('gcp: Slack with only a webhook secret, and a bearer webhook, synthesize (delivered by a function)', () => {
    const j = monitor('gcp', [Notify.slack({ webhookSecret: 'slack' }), Notify.webhook('https://h.example.com', { authSecret: 't' })]);
    expect(Object.values(j.resource.google_monitoring_notification_channel).map((c: any) => c.type)).toEqual(['pubsub']);
    expect(Object.keys(j.resource.google_cloudfunctions2_function)).toHaveLength(1);
  });

  test('kubernetes: Slack and PagerDuty need no SMTP relay', () => {
    expect(() => monitor('kubernetes', [Notify.slack({ webhookSecret: 'slack' }), Notify.pagerDuty({ routingKeySecret: 'pd' })])).not.toThrow();
  });

  test.each<[string, Kind, () => (Notify | string)[], string, RegExp]>([
    ['gcp: a Slack bot token is given without a channel', 'gcp', () => ['a@example.com', Notify.slack({ webhookSecret: 'slack', gcpAuthTokenSecret: 'bot' })], 'notify[1].channel', /gcpAuthTokenSecret/],
    ['gcp: a Slack webhook secret is not a Secret Manager id', 'gcp', () => [Notify.slack({ webhookSecret: 'team/slack' })], 'notify', /Secret Manager secret id/],
    ['gcp: a webhook token secret is not a Secret Manager id', 'gcp', () => [Notify.webhook('https://h.example.com', { authSecret: 'a.b' })], 'notify', /Secret Manager secret id/],
    ['gcp: a secret name is not a Secret Manager id', 'gcp', () => [Notify.pagerDuty({ routingKeySecret: 'team/pd' })], 'notify', /Secret Manager secret id/],
    ['kubernetes: a secret name is not a Kubernetes Secret name', 'kubernetes', () => [Notify.pagerDuty({ routingKeySecret: 'Team_PD' })], 'notify', /Kubernetes Secret name/],
    ['a destination repeats', 'aws', () => [Notify.email('a@example.com'), 'a@example.com'], 'notify', /each destination once/],
  ])('fails when %s', (_name, kind, notify, prop, message) => {
    const e = caught(() => monitor(kind, notify()));
    expect(e.prop).toBe(prop);
    expect(e.message).toMatch(message);
  });
});
