import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { Construct } from 'constructs';
import { Duration } from '../../src';
import { Errors, show } from '../../src/core/errors';
import { resourceName, slug } from '../../src/core/naming';
import { AwsTarget, GcpTarget, isCidr } from '../../src/core/targets';
import { fitName } from '../../src/core/naming';

describe('Duration', () => {
  test('converts between units', () => {
    expect(Duration.days(2).toHours()).toBe(48);
    expect(Duration.hours(26).toMinutes()).toBe(1560);
    expect(Duration.minutes(1.5).toSeconds()).toBe(90);
    expect(Duration.hours(1).toString()).toBe('1 hours');
  });
  test('fails when a conversion would lose precision', () => {
    expect(() => Duration.seconds(90).toMinutes()).toThrow(/whole minutes/);
  });
  test('fails when negative or fractional seconds, with MlInfraError codes', () => {
    expect(() => Duration.minutes(-1)).toThrow(expect.objectContaining({ code: 'OUT_OF_RANGE', path: 'Duration.minutes', message: expect.stringMatching(/got -1.*>= 0/) }));
    expect(() => Duration.seconds(0.5)).toThrow(expect.objectContaining({ code: 'INVALID_PROP', message: expect.stringMatching(/whole number of seconds/) }));
    expect(() => Duration.seconds(90).toMinutes()).toThrow(expect.objectContaining({ code: 'INVALID_PROP', prop: 'toMinutes()', message: expect.stringMatching(/"90 seconds"/) }));
  });
  test('fails when a Terraform value is given: durations are computed at synth, not at apply', () => {
    const stack = new TerraformStack(new App(), 's');
    const hours = new TerraformVariable(stack, 'h', { type: 'number' }).numberValue;
    expect(() => Duration.hours(hours)).toThrow(expect.objectContaining({ code: 'INVALID_PROP', message: expect.stringMatching(/not known at synth time.*a literal number >= 0/) }));
  });
});

describe('naming', () => {
  test('resource names are stable, bounded, and differ by construct path', () => {
    const make = () => {
      const stack = new TerraformStack(new App(), 'ml-platform');
      return [new Construct(stack, 'Train_Cluster'), new Construct(new Construct(stack, 'other'), 'Train_Cluster')];
    };
    const [a, b] = make();
    const [a2] = make();
    expect(resourceName(a)).toBe(resourceName(a2));
    expect(resourceName(a)).toMatch(/^ml-platform-train-cluster-[0-9a-f]{8}$/);
    expect(resourceName(a)).not.toBe(resourceName(b));
    expect(resourceName(a, { maxLength: 20 }).length).toBeLessThanOrEqual(20);
    expect(resourceName(a, { suffix: 'tg' })).not.toBe(resourceName(a));
    expect(slug('9 Lives!')).toBe('x-9-lives');
  });
  test('fitted names stay within the limit and apart when only their tails differ', () => {
    const a = fitName('platform-gcp-nightly-training-pipeline-0badcafe-sch', 30);
    const b = fitName('platform-gcp-nightly-training-pipeline-deadbeef-sch', 30);
    expect(a.length).toBeLessThanOrEqual(30);
    expect(a).not.toBe(b);
    expect(fitName('short-name', 30)).toBe('short-name');
  });
});

describe('errors', () => {
  test('messages name the path, prop, value and what is allowed', () => {
    const e = Errors.outOfRange('stack/c', 'nodes.max', 0, 'an integer from 1 to 1000');
    expect(e.message).toBe('[OUT_OF_RANGE] stack/c: nodes.max is out of range (got 0); allowed: an integer from 1 to 1000');
    expect(e).toMatchObject({ code: 'OUT_OF_RANGE', path: 'stack/c', prop: 'nodes.max', value: 0 });
  });
  test('long values are cut', () => {
    expect(show('x'.repeat(500)).length).toBeLessThanOrEqual(120);
  });
  test('accepts a token for the network CIDRs: Terraform carves the subnets (cidrsubnet)', () => {
    const stack = new TerraformStack(new App(), 's');
    const cidr = new TerraformVariable(stack, 'cidr', { type: 'string' }).stringValue;
    expect(() => new AwsTarget(stack, 'aws', { region: 'us-east-1', vpcCidr: cidr })).not.toThrow();
    expect(() => new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1', subnetCidr: cidr })).not.toThrow();
    expect(() => new AwsTarget(stack, 'aws2', { region: 'us-east-1', vpcCidr: '10.0.0.0/8' })).toThrow(expect.objectContaining({ prop: 'vpcCidr' }));
  });
  test('requireApis refuses a name that is no Google API, with an MlInfraError', () => {
    const stack = new TerraformStack(new App(), 's');
    const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1' });
    expect(() => gcp.requireApis('compute')).toThrow(expect.objectContaining({ code: 'INVALID_PROP', prop: 'requireApis', path: 's/gcp' }));
  });
  test('CIDR checks', () => {
    expect(isCidr('10.0.0.0/8')).toBe(true);
    expect(isCidr('10.0.0.256/8')).toBe(false);
    expect(isCidr('10.0.0.0/33')).toBe(false);
  });
});
