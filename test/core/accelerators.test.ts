import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { ACCELERATOR_NAMES, ACCELERATORS, hasLocalStorage, offeredCounts, PRICE_SOURCES, resolveAccelerator, SAGEMAKER_INSTANCE_TYPES, sagemakerInstanceType, targetsOffering } from '../../src/core/accelerators';
import { MlInfraError } from '../../src';

describe('accelerator catalog', () => {
  test('covers the accelerators the platform promises', () => {
    expect([...ACCELERATOR_NAMES]).toEqual(['T4', 'L4', 'A10G', 'L40S', 'V100', 'A100-40GB', 'A100-80GB', 'H100', 'H200']);
  });

  test.each(ACCELERATOR_NAMES)('%s: shapes are consistent (ascending counts, positive specs, per-GPU price sane)', (name) => {
    const spec = ACCELERATORS[name];
    expect(spec.gpuMemoryGiB).toBeGreaterThan(0);
    for (const shapes of [spec.aws, spec.gcp]) {
      const counts = shapes.map((s) => s.count);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(new Set(counts).size).toBe(counts.length);
      for (const s of shapes) {
        expect(s.vcpu).toBeGreaterThan(0);
        expect(s.memoryGiB).toBeGreaterThan(0);
        const perGpu = s.usdPerHour / s.count;
        expect(perGpu).toBeGreaterThan(0.1);
        expect(perGpu).toBeLessThan(20);
      }
    }
    if (spec.gcp.length) expect(spec.gcpAcceleratorType).toMatch(/^nvidia-/);
    expect(spec.kubernetesUsdPerGpuHour).toBeGreaterThan(0);
  });

  test('every price names its source and date', () => {
    for (const p of Object.values(PRICE_SOURCES)) {
      expect(p.source.length).toBeGreaterThan(10);
      expect(p.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  test('resolves shapes per target', () => {
    const aws = resolveAccelerator('aws', 'A100-80GB', 8, { where: 'x' });
    expect(aws).toMatchObject({ instanceType: 'p4de.24xlarge', vcpu: 96, memoryGiB: 1152, gpuMemoryGiB: 80, explicitType: false });
    expect(aws.price.usdPerHour).toBe(27.45);
    const gcp = resolveAccelerator('gcp', 'T4', 2, { where: 'x' });
    expect(gcp).toMatchObject({ instanceType: 'n1-standard-16', gcpAcceleratorType: 'nvidia-tesla-t4', count: 2 });
    const k8s = resolveAccelerator('kubernetes', 'H100', 4, { where: 'x' });
    expect(k8s.instanceType).toBeUndefined();
    expect(k8s.price.usdPerHour).toBeCloseTo(4 * ACCELERATORS.H100.kubernetesUsdPerGpuHour, 6);
  });

  test('an explicit type is priced per GPU from the cheapest catalog shape', () => {
    const s = resolveAccelerator('aws', 'A10G', 1, { where: 'x', explicitType: 'g5.8xlarge' });
    expect(s).toMatchObject({ instanceType: 'g5.8xlarge', explicitType: true });
    expect(s.price.usdPerHour).toBeCloseTo(Math.min(1.006, 5.672 / 4, 16.288 / 8), 4);
  });

  test('offered counts and targets', () => {
    expect(offeredCounts('H100', 'gcp')).toEqual([1, 2, 4, 8]);
    expect(offeredCounts('A10G', 'gcp')).toEqual([]);
    expect(targetsOffering('H100', 8)).toEqual(['aws', 'gcp', 'kubernetes']);
    expect(targetsOffering('L40S', 4)).toEqual(['aws', 'kubernetes']);
  });

  test('fails when the combination is not offered, naming the offered counts', () => {
    expect(() => resolveAccelerator('gcp', 'H100', 3, { where: 'stack/c' })).toThrow(
      '[NOT_OFFERED] stack/c: acceleratorsPerNode: H100 x3 is not offered on gcp; offered: 1, 2, 4, 8',
    );
    expect(() => resolveAccelerator('aws', 'L4', 2, { where: 'stack/c' })).toThrow(/L4 x2 is not offered on aws; offered: 1, 4, 8 \(L4 x2 is offered on gcp, kubernetes\)/);
    expect(() => resolveAccelerator('gcp', 'L40S', 1, { where: 's' })).toThrow(MlInfraError);
  });
});

describe('SageMaker instance types (endpoints), a table of their own', () => {
  test('every accelerator has SageMaker types, each an ml.* type of the same family as the EC2 shape', () => {
    for (const name of ACCELERATOR_NAMES) {
      const byCount = SAGEMAKER_INSTANCE_TYPES[name];
      expect(Object.keys(byCount).length).toBeGreaterThan(0);
      for (const [count, type] of Object.entries(byCount)) {
        expect(type).toMatch(/^ml\.[a-z0-9]+\.[0-9]*x?large$/);
        const ec2 = ACCELERATORS[name].aws.find((s) => s.count === Number(count));
        expect(ec2).toBeDefined();
        expect(type.split('.')[1]).toBe(ec2!.instanceType.split('.')[0]);
      }
    }
  });

  test('T4 x8 is EC2 g4dn.metal but not a SageMaker type: refused, naming the counts SageMaker has', () => {
    expect(ACCELERATORS.T4.aws.find((s) => s.count === 8)?.instanceType).toBe('g4dn.metal');
    expect(() => sagemakerInstanceType('T4', 8, { where: 'stack/endpoint' })).toThrow(/\[NOT_OFFERED\] stack\/endpoint: acceleratorsPerReplica: T4 x8 is not offered on SageMaker.*1, 4/);
    expect(sagemakerInstanceType('T4', 4, { where: 'x' })).toBe('ml.g4dn.12xlarge');
    expect(sagemakerInstanceType('A100-80GB', 8, { where: 'x' })).toBe('ml.p4de.24xlarge');
  });

  test('fails when the count is a Terraform value: the catalog picks the shape at synth', () => {
    const stack = new TerraformStack(new App(), 's');
    const count = new TerraformVariable(stack, 'n', { type: 'number' }).numberValue;
    let err: unknown;
    try {
      resolveAccelerator('aws', 'L4', count, { where: 's/c', countProp: 'acceleratorsPerNode' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect(err).toMatchObject({ code: 'INVALID_PROP', prop: 'acceleratorsPerNode' });
    expect((err as MlInfraError).message).toMatch(/a literal count of L4 offered on aws: 1, 4, 8/);
    expect((err as MlInfraError).message).not.toMatch(/e\+\d{3}/);
  });

  test('hasLocalStorage: NVMe families refuse a KMS key on SageMaker, EBS-only ones take it', () => {
    for (const t of ['ml.g5.xlarge', 'ml.g6.xlarge', 'ml.p4d.24xlarge', 'ml.m5d.large', 'ml.p5.48xlarge', 'ml.g4dn.xlarge']) expect({ t, local: hasLocalStorage(t) }).toEqual({ t, local: true });
    for (const t of ['ml.m5.xlarge', 'ml.c5.2xlarge', 'ml.p3.2xlarge', 'ml.inf2.xlarge']) expect({ t, local: hasLocalStorage(t) }).toEqual({ t, local: false });
  });
});
