import { App, Testing, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { MlInfraError } from '../../src/core/errors';
import { formatFinding, Policy, PolicyFinding, PolicyPack, POLICY_SUPPRESSION_METADATA } from '../../src/aspects';

function awsStack(app: App = Testing.app()): TerraformStack {
  const stack = new TerraformStack(app, 'test');
  new AwsProvider(stack, 'aws', { region: 'us-east-1' });
  return stack;
}

/** A bare bucket: aws-s3-encryption (error) and aws-s3-versioning (warning) fire. */
const pack = PolicyPack.default().only('aws-s3-encryption', 'aws-s3-versioning');

describe('Policy.suppress', () => {
  test('fails when the reason is missing or too short', () => {
    const stack = awsStack();
    const bucket = new S3Bucket(stack, 'bucket', {});
    expect(() => Policy.suppress(bucket, 'aws-s3-versioning', '')).toThrow(MlInfraError);
    expect(() => Policy.suppress(bucket, 'aws-s3-versioning', 'because')).toThrow(/reason is required to suppress a policy rule/);
    expect(() => Policy.suppress(bucket, 'aws-s3-versioning', undefined as unknown as string)).toThrow(/\[INVALID_PROP\] test\/bucket/);
  });

  test('fails when the rule id is unknown', () => {
    const bucket = new S3Bucket(awsStack(), 'bucket', {});
    expect(() => Policy.suppress(bucket, 'aws-s3-encription', 'typo in the rule id here')).toThrow(/\[UNKNOWN_VALUE\].*aws-s3-encription/);
  });

  test('turns the finding into a suppressed one, with the reason, for the construct and its children', () => {
    const stack = awsStack();
    const group = new Construct(stack, 'group');
    new S3Bucket(group, 'bucket', {});
    Policy.suppress(group, 'aws-s3-encryption', 'objects are public release artifacts, encrypted upstream');
    const seen: PolicyFinding[] = [];
    Policy.apply(stack, { pack, reporter: (f) => seen.push(f) });
    expect(() => Testing.synth(stack, true)).not.toThrow();
    const enc = Policy.findingsOf(stack).find((f) => f.ruleId === 'aws-s3-encryption');
    expect(enc).toMatchObject({
      path: 'test/group/bucket', level: 'error',
      suppressed: { ruleId: 'aws-s3-encryption', reason: 'objects are public release artifacts, encrypted upstream', path: 'test/group' },
    });
    expect(seen).toContainEqual(enc);
    expect(formatFinding(enc!)).toMatch(/^\[policy suppressed error\] aws-s3-encryption at test\/group\/bucket .* Suppressed: objects are public/);
    // Kept on the construct, where anyone can read it.
    expect(group.node.metadata.filter((m) => m.type === POLICY_SUPPRESSION_METADATA)).toHaveLength(1);
  });
});

describe('errors and warnings', () => {
  test('an error fails Testing.synth(stack, true) naming the rule id, the path and the fix', () => {
    const stack = awsStack();
    new S3Bucket(stack, 'bucket', {});
    Policy.apply(stack, { pack, reporter: () => undefined });
    let message = '';
    try {
      Testing.synth(stack, true);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('aws-s3-encryption at test/bucket');
    expect(message).toContain('Fix: add an aws_s3_bucket_server_side_encryption_configuration');
    expect(message).not.toContain('aws-s3-versioning');
  });

  test('an error fails app.synth(), even with skipValidation', () => {
    for (const skipValidation of [false, true]) {
      const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'mlinfra-policy-')), skipValidation });
      new S3Bucket(awsStack(app), 'bucket', {});
      Policy.apply(app, { pack, reporter: () => undefined });
      expect(() => app.synth()).toThrow(/aws-s3-encryption at test\/bucket .*Fix: /);
    }
  });

  test('a warning prints to stderr by default and does not fail synth', () => {
    const stack = awsStack();
    new S3Bucket(stack, 'bucket', {});
    Policy.apply(stack, { pack: PolicyPack.default().only('aws-s3-versioning') });
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(() => Testing.synth(stack, true)).not.toThrow();
      expect(spy.mock.calls.map((c) => String(c[0]))).toEqual([
        expect.stringMatching(/^\[policy warning\] aws-s3-versioning at test\/bucket \(aws_s3_bucket\.bucket\): .*Fix: add an aws_s3_bucket_versioning/),
      ]);
    } finally {
      spy.mockRestore();
    }
  });

  test("level 'error' skips warnings", () => {
    const stack = awsStack();
    new S3Bucket(stack, 'bucket', {});
    const seen: PolicyFinding[] = [];
    Policy.apply(stack, { pack, level: 'error', reporter: (f) => seen.push(f) });
    expect(() => Testing.synth(stack, true)).toThrow();
    expect(seen.map((f) => f.ruleId)).toEqual(['aws-s3-encryption']);
  });

  test('synthesizing twice reports each finding once', () => {
    const stack = awsStack();
    new S3Bucket(stack, 'bucket', {});
    const seen: PolicyFinding[] = [];
    Policy.apply(stack, { pack: PolicyPack.default().only('aws-s3-versioning'), reporter: (f) => seen.push(f) });
    Testing.synth(stack, true);
    Testing.synth(stack, true);
    expect(seen).toHaveLength(1);
  });
});

describe('Policy.apply', () => {
  test('on an app: checks the stacks it has; fails when it has none yet', () => {
    expect(() => Policy.apply(Testing.app())).toThrow(/has no stacks yet/);
  });

  test('on an app: a stack added afterwards fails app.synth() instead of going unchecked', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'mlinfra-policy-')) });
    awsStack(app);
    Policy.apply(app, { reporter: () => undefined });
    new AwsProvider(new TerraformStack(app, 'late'), 'aws', { region: 'us-east-1' });
    expect(() => app.synth()).toThrow(/stack late was created after Policy.apply\(app\)/);
  });

  test('on a construct: only resources under it are checked', () => {
    const stack = awsStack();
    const checked = new Construct(stack, 'checked');
    new S3Bucket(checked, 'bucket', {});
    new S3Bucket(stack, 'other', {});
    const seen: PolicyFinding[] = [];
    Policy.apply(checked, { pack: PolicyPack.default().only('aws-s3-versioning'), reporter: (f) => seen.push(f) });
    Testing.synth(stack);
    expect(seen.map((f) => f.path)).toEqual(['test/checked/bucket']);
    expect(Policy.findingsOf(stack).map((f) => f.path)).toEqual(['test/checked/bucket']);
  });
});

describe('PolicyPack', () => {
  test('changes levels and drops rules by id; unknown ids fail', () => {
    const p = PolicyPack.default().withLevel('aws-s3-versioning', 'error').without('aws-s3-encryption');
    expect(p.rule('aws-s3-versioning')?.level).toBe('error');
    expect(p.rule('aws-s3-encryption')).toBeUndefined();
    expect(() => PolicyPack.default().without('nope')).toThrow(/UNKNOWN_VALUE/);
    expect(() => PolicyPack.fromTable('dup', [...p.rules, p.rules[0]])).toThrow(/twice/);
  });

  test('a raised level fails synth', () => {
    const stack = awsStack();
    new S3Bucket(stack, 'bucket', {});
    Policy.apply(stack, { pack: PolicyPack.default().only('aws-s3-versioning').withLevel('aws-s3-versioning', 'error'), reporter: () => undefined });
    expect(() => Testing.synth(stack, true)).toThrow(/\[policy error\] aws-s3-versioning/);
  });
});
