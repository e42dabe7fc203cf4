// The aspects read what constructs record as metadata facts: cost lines, picture edges, grant labels
// and policy suppressions (core/facts.ts, core/grants.ts, core/suppressions.ts), not escape hatches or ids.
import { Testing, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { AwsTarget, GpuCluster, MlInfraError } from '../../src';
import { costReport, SPOT_FRACTION } from '../../src/aspects/cost';
import { stackGraph } from '../../src/aspects/picture';
import { Policy, PolicyPack } from '../../src/aspects/policy';
import { recordCost, recordEdge } from '../../src/core/facts';
import { suppressPolicyRule } from '../../src/core/suppressions';
import { testAgentBundle } from '../helpers';

function world(): { stack: TerraformStack; aws: AwsTarget; train: GpuCluster; ops: GpuCluster } {
  const stack = new TerraformStack(Testing.app(), 'facts');
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  const cluster = (id: string) => new GpuCluster(stack, id, { target: aws, accelerator: 'T4', nodes: { min: 1, max: 3 }, agentBundleDir: testAgentBundle() });
  return { stack, aws, train: cluster('train'), ops: cluster('ops') };
}

describe('cost report from cost facts', () => {
  test('prices what a construct records, with the arithmetic; spot items at the target\'s spot share', () => {
    const w = world();
    recordCost(w.train, { item: 'test item', unitUsd: 2, per: 'hour', quantity: { min: 1, max: 5 }, spot: true, source: 'https://example.com/prices', asOf: '2026-01-01', note: 'from a test' });
    const line = costReport(w.stack).lines.find((l) => l.item === 'test item')!;
    expect(line).toMatchObject({
      construct: 'facts/train', constructType: 'GpuCluster', unitUsd: 2, hours: 730, spotFraction: SPOT_FRACTION.aws,
      monthlyUsd: { min: 1460, max: 7300, spotMin: 511, spotMax: 2555 },
    });
    expect(line.note).toMatch(/^from a test; spot share: /);
  });

  test('the node line of a GpuCluster is the fact its constructor records', () => {
    const w = world();
    const lines = costReport(w.stack).lines.filter((l) => l.construct === 'facts/ops' && / node \(T4 x1\)$/.test(l.item));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ quantity: { min: 1, max: 3 }, unitUsd: w.ops.accelerator.price.usdPerHour, note: expect.stringMatching(/^runs on demand; spot share: /) });
  });
});

describe('picture from facts', () => {
  test('an edge a construct records is drawn; a grant is labelled by its kind', () => {
    const w = world();
    recordEdge(w.ops, { to: w.train, kind: 'uses', label: 'reads from' });
    w.train.grantAgentAccess(w.ops);
    const edges = stackGraph(w.stack).edges.map((e) => `${e.from} ${e.kind}${e.label ? ` ${e.label}` : ''} ${e.to}`);
    expect(edges).toEqual(expect.arrayContaining(['facts/ops uses reads from facts/train', 'facts/ops grant agent facts/train']));
  });
});

describe('policy suppressions recorded from core', () => {
  const build = (reason: string) => {
    const stack = new TerraformStack(Testing.app(), 'p');
    new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const holder = new Construct(stack, 'holder');
    new S3Bucket(holder, 'bucket', { bucket: 'plain' });
    suppressPolicyRule(holder, 'aws-s3-versioning', reason);
    Policy.apply(stack, { pack: PolicyPack.default().only('aws-s3-versioning'), reporter: () => undefined });
    Testing.synth(stack);
    return Policy.findingsOf(stack);
  };

  test('the policy aspect reports the finding as suppressed, with the reason', () => {
    const findings = build('a scratch bucket in a test, nothing to keep');
    expect(findings.map((f) => ({ rule: f.ruleId, reason: f.suppressed?.reason, at: f.suppressed?.path })))
      .toEqual([{ rule: 'aws-s3-versioning', reason: 'a scratch bucket in a test, nothing to keep', at: 'p/holder' }]);
  });

  test('fails when the reason is too short to say why', () => {
    expect(() => build('no')).toThrow(MlInfraError);
    expect(() => build('no')).toThrow(/reason/);
  });
});
