import { Testing, TerraformStack } from 'cdktf';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AwsTarget, GpuCluster } from '../../src';
import { costReport, formatCostReport, RESOURCE_PRICES, SPOT_FRACTION, writeCostReport } from '../../src/aspects/cost';
import { build as platforms } from '../../examples/platform/main';
import { testAgentBundle } from '../helpers';
import { MlPlatformStack } from '../../src/stacks';

function awsCluster(): TerraformStack {
  const stack = new TerraformStack(Testing.app(), 'cost');
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  new GpuCluster(stack, 'train', {
    target: aws, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: testAgentBundle(),
  });
  return stack;
}

describe('cost report', () => {
  const r = costReport(awsCluster());
  const line = (item: RegExp) => {
    const found = r.lines.filter((l) => item.test(l.item));
    expect(found).toHaveLength(1);
    return found[0];
  };

  test('a GpuCluster A100-80GB x8, nodes 0..4: the catalog price x nodes x 730 h, spot at its share', () => {
    const node = line(/^p4de\.24xlarge node/);
    expect(node).toMatchObject({ construct: 'cost/train', constructType: 'GpuCluster', unitUsd: 27.45, per: 'hour', quantity: { min: 0, max: 4 }, hours: 730, spotFraction: 0.35 });
    expect(node.monthlyUsd.min).toBe(0);
    expect(node.monthlyUsd.max).toBeCloseTo(4 * 27.45 * 730, 2);
    expect(node.monthlyUsd.spotMax).toBeCloseTo(SPOT_FRACTION.aws * 4 * 27.45 * 730, 2);
    expect(node.source).toMatch(/AWS EC2 On-Demand/);
  });

  test('fixed items: NAT gateway and public IP on the target, the NLB, key and secret on the cluster', () => {
    expect(line(/^NAT gateway/)).toMatchObject({ construct: 'cost/aws', constructType: 'AwsTarget', unitUsd: 0.045, quantity: { min: 1, max: 1 } });
    expect(line(/^NAT gateway/).monthlyUsd.min).toBeCloseTo(0.045 * 730, 2);
    expect(line(/^NAT gateway/).monthlyUsd.spotMax).toBeCloseTo(0.045 * 730, 2);
    expect(line(/^public IPv4/).monthlyUsd.max).toBeCloseTo(0.005 * 730, 2);
    expect(line(/^load balancer/)).toMatchObject({ construct: 'cost/train', unitUsd: RESOURCE_PRICES.aws_lb.usd, per: 'hour' });
    expect(line(/^load balancer/).monthlyUsd.max).toBeCloseTo(0.0225 * 730, 1);
    expect(r.lines.filter((l) => l.item === 'KMS key').every((l) => l.per === 'month' && l.hours === 1 && l.monthlyUsd.max === 1)).toBe(true);
    expect(line(/^Secrets Manager/).monthlyUsd.max).toBe(0.4);
    for (const l of r.lines) expect(l.source).toBeTruthy();
  });

  test('totals add the lines; per construct too', () => {
    const sum = (k: 'min' | 'max' | 'spotMin' | 'spotMax') => r.lines.reduce((s, l) => s + l.monthlyUsd[k], 0);
    expect(r.total.max).toBeCloseTo(sum('max'), 2);
    expect(r.total.spotMax).toBeCloseTo(sum('spotMax'), 2);
    expect(r.total.min).toBeCloseTo(sum('min'), 2);
    expect(r.constructs.map((c) => c.path)).toEqual(['cost/aws', 'cost/train']);
    expect(formatCostReport(r)).toMatch(/cost\/train\s+p4de\.24xlarge node .*0\.\.4\s+0\.00\s+80,154\.00\s+0\.00\.\.28,053\.90/);
  });

  test('spot share can be overridden', () => {
    const o = costReport(awsCluster(), { spotFraction: { aws: 0.5 } });
    expect(o.lines.find((l) => l.constructType === 'GpuCluster' && /node/.test(l.item))!.monthlyUsd.spotMax).toBeCloseTo(0.5 * 4 * 27.45 * 730, 2);
  });

  test('every construct of the platform example is priced on each target, and cost.json is written', () => {
    const app = Testing.app();
    const stacks = platforms(app);
    const out = mkdtempSync(join(tmpdir(), 'mlinfra-cost-'));
    try {
      for (const s of stacks) {
        const rep = writeCostReport(s, out);
        const priced = rep.constructs.map((c) => c.path);
        for (const c of [(s as MlPlatformStack).cluster, (s as MlPlatformStack).features, (s as MlPlatformStack).endpoint, (s as MlPlatformStack).pipeline, (s as MlPlatformStack).monitoring]) {
          expect(priced).toContain(c.node.path);
        }
        const file = join(out, 'stacks', s.node.id, 'cost.json');
        expect(existsSync(file)).toBe(true);
        expect(JSON.parse(readFileSync(file, 'utf8')).total).toEqual(rep.total);
      }
      const gcp = costReport(stacks[1]);
      // Cloud Run: 8 vCPU, 32 GiB and one L4, min 0 instances.
      const run = gcp.lines.find((l) => l.item.startsWith('Cloud Run'))!;
      expect(run.quantity).toEqual({ min: 0, max: 8 });
      expect(run.unitUsd).toBeCloseTo((8 * 0.000018 + 32 * 0.000002 + 0.0001867) * 3600, 3);
      const bigtable = gcp.lines.find((l) => l.item.startsWith('Bigtable'))!;
      expect(bigtable).toMatchObject({ unitUsd: 0.65, quantity: { min: 1, max: 3 } });
      const aws = costReport(stacks[0]);
      const sm = aws.lines.find((l) => l.item.startsWith('SageMaker'))!;
      expect(sm).toMatchObject({ item: 'SageMaker ml.g6.xlarge instance', quantity: { min: 1, max: 8 }, estimate: true });
      expect(sm.unitUsd).toBeCloseTo(0.8048 * 1.4, 4);
      // 5 cluster + 2 pipeline + 2 endpoint rollback alarms (monitoring reuses them) + the cluster's wake alarm
      expect(aws.lines.filter((l) => l.item === 'CloudWatch alarm')).toHaveLength(10);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
