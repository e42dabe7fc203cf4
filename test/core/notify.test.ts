import { Notify } from '../../src/core/notify';
import { caught } from '../helpers';

describe('Notify', () => {
  test('factories build typed destinations with secret names and default keys', () => {
    expect(Notify.email('ml-oncall@example.com').destination).toEqual({ kind: 'email', address: 'ml-oncall@example.com' });
    expect(Notify.slack({ webhookSecret: 'ml-slack-webhook' }).destination)
      .toEqual({ kind: 'slack', webhookSecret: { name: 'ml-slack-webhook', key: 'url' }, channel: undefined, gcpAuthTokenSecret: undefined });
    expect(Notify.pagerDuty({ routingKeySecret: { name: 'pd', key: 'key' } }).destination).toEqual({ kind: 'pagerduty', routingKeySecret: { name: 'pd', key: 'key' } });
    expect(Notify.webhook('https://hooks.example.com/a', { authSecret: 'hook-token' }).destination)
      .toEqual({ kind: 'webhook', url: 'https://hooks.example.com/a', authSecret: { name: 'hook-token', key: 'token' } });
  });

  test('strings stay accepted: an email address or an https webhook', () => {
    expect(Notify.of('a@example.com', 's/ops', 'notify[0]').kind).toBe('email');
    expect(Notify.of('https://hooks.example.com/x', 's/ops', 'notify[0]').destination).toEqual({ kind: 'webhook', url: 'https://hooks.example.com/x' });
  });

  test.each<[string, () => unknown, string, unknown, RegExp]>([
    ['an email is malformed', () => Notify.email('oncall@'), 'address', 'oncall@', /email address/],
    ['a webhook is plain http', () => Notify.webhook('http://x.example.com'), 'url', 'http://x.example.com', /https:\/\//],
    ['a Slack webhook URL is given as a string', () => Notify.of('https://hooks.slack.com/services/T/B/secret', 's/ops', 'notify[1]'), 'notify[1]', '(Slack webhook URL hidden)', /Notify\.slack/],
    ['the Slack webhook URL is given instead of a secret name', () => Notify.slack({ webhookSecret: 'https://hooks.slack.com/services/T/B/secret' }), 'webhookSecret', '(value hidden)', /name of a secret/],
    ['a Slack token is given instead of a secret name', () => Notify.slack({ webhookSecret: 'x', gcpAuthTokenSecret: 'xoxb-123-abc' }), 'gcpAuthTokenSecret', '(value hidden)', /name of a secret/],
    ['the PagerDuty secret is missing', () => Notify.pagerDuty({} as never), 'routingKeySecret', undefined, /name of a secret/],
    ['a Slack channel is malformed', () => Notify.slack({ webhookSecret: 's', channel: '#Has Spaces' }), 'channel', '#Has Spaces', /Slack channel name/],
    ['a string is neither email nor URL', () => Notify.of('oncall', 's/ops', 'notify[0]'), 'notify[0]', 'oncall', /Notify\.pagerDuty/],
  ])('fails when %s', (_name, fn, prop, value, allowed) => {
    const e = caught(fn);
    expect({ prop: e.prop, value: e.value }).toEqual({ prop, value });
    expect(e.message).toMatch(allowed);
    expect(e.message).not.toMatch(/xoxb-123|services\/T\/B/);
  });
});
