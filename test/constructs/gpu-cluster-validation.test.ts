import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { AwsTarget, GcpTarget, GpuCluster, GpuClusterProps, KubernetesTarget, MlInfraError, Target } from '../../src';
import { caught, only, synth, testAgentBundle } from '../helpers';

type Kind = 'aws' | 'gcp' | 'kubernetes';

function attempt(kind: Kind, props: Partial<GpuClusterProps> | Record<string, unknown>, targetProps: Record<string, unknown> = {}): MlInfraError {
  const stack = new TerraformStack(new App(), 'v');
  const target: Target = kind === 'aws' ? new AwsTarget(stack, 't', { region: 'us-east-1', ...targetProps })
    : kind === 'gcp' ? new GcpTarget(stack, 't', { project: 'ml-prod-123', region: 'us-central1', ...targetProps })
      : new KubernetesTarget(stack, 't', { namespace: 'ml', ...targetProps });
  try {
    new GpuCluster(stack, 'cluster', { target, accelerator: 'A100-80GB', ...props } as GpuClusterProps);
  } catch (e) {
    if (e instanceof MlInfraError) return e;
    throw e;
  }
  throw new Error('expected an MlInfraError, none was thrown');
}

/** Each case: what is wrong, on which target, and what the message must name (prop, value, allowed). */
const cases: [string, Kind, Record<string, unknown>, string, RegExp[]][] = [
  ['the accelerator is unknown', 'aws', { accelerator: 'B300' }, 'accelerator', [/"B300"/, /T4, L4, A10G, L40S, V100, A100-40GB, A100-80GB, H100, H200/]],
  ['the accelerator is missing', 'aws', { accelerator: undefined }, 'accelerator', [/is required/, /one of T4/]],
  ['the accelerator is not offered on the target', 'gcp', { accelerator: 'A10G' }, 'accelerator', [/A10G is not offered on gcp/, /offered: T4, L4, V100/]],
  ['the count is not offered on gcp (H100 x3)', 'gcp', { accelerator: 'H100', acceleratorsPerNode: 3 }, 'acceleratorsPerNode', [/H100 x3 is not offered on gcp; offered: 1, 2, 4, 8/]],
  ['the count is not offered on aws but is elsewhere', 'aws', { accelerator: 'H100', acceleratorsPerNode: 4 }, 'acceleratorsPerNode', [/offered: 8 \(H100 x4 is offered on gcp, kubernetes\)/]],
  ['the count is not an integer', 'kubernetes', { acceleratorsPerNode: 1.5 }, 'acceleratorsPerNode', [/1\.5/, /1, 2, 4, 8/]],
  ['nodes.min is negative', 'aws', { nodes: { min: -1, max: 2 } }, 'nodes.min', [/-1/, /integer from 0 to 1000/]],
  ['nodes.max is zero', 'aws', { nodes: { min: 0, max: 0 } }, 'nodes.max', [/got 0/, /integer from 1 to 1000/]],
  ['nodes.max is below nodes.min', 'gcp', { nodes: { min: 3, max: 2 } }, 'nodes.max', [/below nodes.min/, />= nodes.min \(3\)/]],
  ['nodes.max is over the limit', 'kubernetes', { nodes: { min: 0, max: 5000 } }, 'nodes.max', [/5000/, /1 to 1000/]],
  ['onDemandBaseNodes is set without spot', 'aws', { onDemandBaseNodes: 1 }, 'onDemandBaseNodes', [/without spot/, /spot: true/]],
  ['onDemandBaseNodes exceeds nodes.max', 'aws', { spot: true, onDemandBaseNodes: 5, nodes: { min: 0, max: 2 } }, 'onDemandBaseNodes', [/got 5/, /0 to nodes.max \(2\)/]],
  ['onDemandBaseNodes is used on gcp', 'gcp', { spot: true, onDemandBaseNodes: 1 }, 'onDemandBaseNodes', [/not supported on gcp/, /aws targets only/]],
  ['spot is asked on kubernetes without GKE labels', 'kubernetes', { spot: true }, 'spot', [/gke-spot/, /'nvidia-gfd'/]],
  ['idleStopMinutes is negative', 'aws', { idleStopMinutes: -5 }, 'idleStopMinutes', [/-5/, /0 \(never\) to 10080/]],
  ['idleStopMinutes is fractional', 'gcp', { idleStopMinutes: 2.5 }, 'idleStopMinutes', [/2\.5/, /integer number of minutes/]],
  ['instanceType is given on gcp', 'gcp', { instanceType: 'p4d.24xlarge' }, 'instanceType', [/aws targets only/, /machineType on a gcp target/]],
  ['machineType is given on aws', 'aws', { machineType: 'a2-highgpu-1g' }, 'machineType', [/gcp targets only/, /instanceType on an aws target/]],
  ['instanceType is malformed', 'aws', { instanceType: 'big gpu box' }, 'instanceType', [/"big gpu box"/, /g5\.2xlarge/]],
  ['diskGiB is too small for a GPU image', 'aws', { diskGiB: 20 }, 'diskGiB', [/got 20/, /50 to 16384/]],
  ['agentPort is privileged', 'kubernetes', { agentPort: 80 }, 'agentPort', [/got 80/, /1024 to 65535/]],
  ['allowedCidrs opens the agent to the internet', 'aws', { allowedCidrs: ['0.0.0.0/0'] }, 'allowedCidrs', [/whole internet/, /narrower than \/0/]],
  ['allowedCidrs holds a non-CIDR', 'gcp', { allowedCidrs: ['10.0.0.0/33'] }, 'allowedCidrs', [/10\.0\.0\.0\/33/, /IPv4 CIDR/]],
  ['allowedCidrs is empty', 'aws', { allowedCidrs: [] }, 'allowedCidrs', [/non-empty list/]],
  ['agentImage is given on aws', 'aws', { agentImage: 'node:20' }, 'agentImage', [/kubernetes targets only/]],
  ['machineImage is given on kubernetes', 'kubernetes', { machineImage: 'ami-123' }, 'machineImage', [/agentImage on kubernetes/]],
  ['nodeVersion is too old', 'aws', { nodeVersion: '18.20.0' }, 'nodeVersion', [/18\.20\.0/, /22\.13\.0 or later/]],
  ['nodeDistUrl is not https', 'gcp', { nodeDistUrl: 'http://mirror.local/node' }, 'nodeDistUrl', [/https:\/\//]],
  ['the agent bundle directory has no built agent', 'aws', { agentBundleDir: '/nonexistent/agent' }, 'agentBundleDir', [/npm run build:agent/, /mlinfra-agent\.js/]],
  ['the target is not a target', 'aws', { target: { region: 'us-east-1' } }, 'target', [/AwsTarget, GcpTarget or KubernetesTarget/]],
];

describe('GpuCluster validation', () => {
  test.each(cases)('fails when %s', (_name, kind, props, prop, patterns) => {
    const err = attempt(kind, props);
    expect(err.prop).toBe(prop);
    expect(err.path).toBe('v/cluster');
    expect(err.message).toContain(`v/cluster: ${prop}`);
    for (const p of patterns) expect(err.message).toMatch(p);
  });

  test('fails before creating any resource', () => {
    const stack = new TerraformStack(new App(), 'v');
    const aws = new AwsTarget(stack, 't', { region: 'us-east-1' });
    const before = stack.node.findAll().length;
    expect(() => new GpuCluster(stack, 'cluster', { target: aws, accelerator: 'T4', nodes: { min: 2, max: 1 } })).toThrow(MlInfraError);
    // Only the (empty) cluster scope itself was added.
    expect(stack.node.findAll().length).toBe(before + 1);
  });

  test('error codes are stable', () => {
    expect(attempt('gcp', { accelerator: 'H100', acceleratorsPerNode: 3 }).code).toBe('NOT_OFFERED');
    expect(attempt('aws', { accelerator: 'B300' }).code).toBe('UNKNOWN_VALUE');
    expect(attempt('aws', { nodes: { min: 0, max: 0 } }).code).toBe('OUT_OF_RANGE');
    expect(attempt('aws', { onDemandBaseNodes: 1 }).code).toBe('CONFLICTING_PROPS');
    expect(attempt('aws', { agentBundleDir: '/nonexistent' }).code).toBe('MISSING_FILE');
  });
});

describe('target validation', () => {
  const fails = (fn: () => unknown, prop: string, pattern: RegExp) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(MlInfraError);
      expect((e as MlInfraError).prop).toBe(prop);
      expect((e as Error).message).toMatch(pattern);
      return;
    }
    throw new Error('expected an MlInfraError');
  };
  const stack = () => new TerraformStack(new App(), 's');
  test('fails when the AWS region is malformed', () => fails(() => new AwsTarget(stack(), 'a', { region: 'useast1' }), 'region', /us-east-1/));
  test('fails when the VPC CIDR is too small', () => fails(() => new AwsTarget(stack(), 'a', { region: 'us-east-1', vpcCidr: '10.0.0.0/28' }), 'vpcCidr', /\/16 to \/24/));
  test('fails when a given network has no subnets', () => fails(() => new AwsTarget(stack(), 'a', { region: 'us-east-1', network: { vpcId: 'vpc-1', subnetIds: [], cidrBlock: '10.0.0.0/16' } }), 'network.subnetIds', /at least one/));
  test('fails when the GCP project id is malformed', () => fails(() => new GcpTarget(stack(), 'g', { project: 'My Project', region: 'us-central1' }), 'project', /6-30 lower-case/));
  test('fails when a GCP zone is outside the region', () => fails(() => new GcpTarget(stack(), 'g', { project: 'ml-prod-123', region: 'us-central1', zones: ['europe-west4-a'] }), 'zones', /zones of us-central1/));
  test('fails when a GCP label is not lower-case', () => fails(() => new GcpTarget(stack(), 'g', { project: 'ml-prod-123', region: 'us-central1', labels: { team: 'ML' } }), 'labels.team', /lower-case/));
  test('fails when the namespace is not a DNS label', () => fails(() => new KubernetesTarget(stack(), 'k', { namespace: 'ML_Jobs' }), 'namespace', /DNS-1123/));
  test('fails when the GPU label scheme is unknown', () => fails(() => new KubernetesTarget(stack(), 'k', { namespace: 'ml', gpuNodeLabels: 'eks' as never }), 'gpuNodeLabels', /nvidia-gfd, gke, none/));
});

describe('GpuCluster accepts Terraform references where the provider checks them', () => {
  const build = (kind: Kind, props: (stack: TerraformStack) => Partial<GpuClusterProps>) => synth((stack) => {
    const target: Target = kind === 'aws' ? new AwsTarget(stack, 't', { region: 'us-east-1' })
      : new KubernetesTarget(stack, 't', { namespace: 'ml' });
    new GpuCluster(stack, 'cluster', { target, accelerator: 'T4', agentBundleDir: testAgentBundle(), ...props(stack) } as GpuClusterProps);
  }).json;

  test('accepts a token for nodes.max on aws (the group\'s max_size)', () => {
    const json = build('aws', (stack) => ({ nodes: { min: 0, max: new TerraformVariable(stack, 'max_nodes', { type: 'number' }).numberValue } }));
    expect(only(json, 'aws_autoscaling_group').max_size).toBe('${var.max_nodes}');
  });

  test('accepts a token for diskGiB, agentPort and nodeDistUrl on aws', () => {
    const json = build('aws', (stack) => ({
      diskGiB: new TerraformVariable(stack, 'disk', { type: 'number' }).numberValue,
      agentPort: new TerraformVariable(stack, 'port', { type: 'number' }).numberValue,
      nodeDistUrl: new TerraformVariable(stack, 'mirror', { type: 'string' }).stringValue,
    }));
    const lt = only(json, 'aws_launch_template') as any;
    expect(lt.block_device_mappings[0].ebs.volume_size).toBe('${var.disk}');
    expect((only(json, 'aws_lb_listener') as any).port).toBe('${var.port}');
    expect(JSON.stringify(json.locals)).toContain('${var.mirror}');
  });

  test('accepts a token for agentImage on kubernetes', () => {
    const json = build('kubernetes', (stack) => ({ agentImage: new TerraformVariable(stack, 'agent_image', { type: 'string' }).stringValue }));
    expect(JSON.stringify(json.resource)).toContain('${var.agent_image}');
  });

  test('fails when nodes.max is a token on gcp, where the group\'s size is computed from it', () => {
    const stack = new TerraformStack(new App(), 'v');
    const target = new GcpTarget(stack, 't', { project: 'ml-prod-123', region: 'us-central1' });
    const e = caught(() => new GpuCluster(stack, 'cluster', {
      target, accelerator: 'T4', agentBundleDir: testAgentBundle(), nodes: { min: 0, max: new TerraformVariable(stack, 'm', { type: 'number' }).numberValue },
    }));
    expect({ code: e.code, prop: e.prop }).toEqual({ code: 'INVALID_PROP', prop: 'nodes.max' });
    expect(e.allowed).toMatch(/a Terraform reference is supported on aws targets only/);
  });
});
