/**
 * The variant matrix `npm run validate:terraform` checks besides the examples: what the examples do
 * not show. Run as `node lib/examples/validate-variants.js <outdir>`: synthesizes every example and
 * every variant into `<outdir>/stacks` and writes `<outdir>/validate-manifest.json` (stack names,
 * origin, variant count, and the variants that failed to synthesize, each a check error).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { Construct } from 'constructs';
import { ACCELERATOR_NAMES, ACCELERATORS, SAGEMAKER_INSTANCE_TYPES } from '../src/core/accelerators';
import {
  AwsTarget, Duration, FeatureStore, GpuCluster, ModelEndpoint, MonitoringStack, Rollout, RolloutSpec, Schedule, Step, TrainingPipeline,
} from '../src';
import { EXAMPLES } from './index';

const ECR = '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0.0';
/** Strings Terraform would read as templates, plus a doubled dollar: each must arrive unchanged. */
const TEMPLATE_LIKE = ['${HOME}/data', '%{ if x }y%{ endif }', 'cost: $$5', 'a $ sign', '${jsonencode(1)}'];

export interface Variant {
  /** Stack it goes in. */
  readonly stack: string;
  /** Construct id, unique in its stack. */
  readonly name: string;
  readonly build: (scope: Construct, target: AwsTarget) => void;
}

function awsTarget(scope: Construct, network?: boolean): AwsTarget {
  return new AwsTarget(scope, 'aws', {
    region: 'us-east-1', tags: { team: 'ml-platform' },
    ...(network ? { network: { vpcId: 'vpc-0123456789abcdef0', subnetIds: ['subnet-0123456789abcdef0'], cidrBlock: '10.0.0.0/16' } } : {}),
  });
}

function endpoint(stack: string, name: string, props: Partial<ConstructorParameters<typeof ModelEndpoint>[2]>): Variant {
  return {
    stack, name,
    build: (scope, target) => new ModelEndpoint(scope, name, {
      target, model: `s3://ml-platform-models/${name}/v1`, image: ECR, accelerator: 'L4', replicas: { min: 1, max: 2 }, ...props,
    }),
  };
}

function rollouts(): Variant[] {
  const specs: Record<string, RolloutSpec> = {
    'all-at-once': Rollout.allAtOnce(),
    'canary-min': Rollout.canary({ percent: 1, bakeMinutes: 0 }),
    // The longest waits one apply can see through (the provider waits 60 minutes for an endpoint).
    'canary-max': Rollout.canary({ percent: 50, bakeMinutes: 59 }),
    'linear-min': Rollout.linear({ percentPerStep: 50, stepMinutes: 1 }),
    'linear-10x5': Rollout.linear({ percentPerStep: 10, stepMinutes: 5 }),
    'linear-max': Rollout.linear({ percentPerStep: 20, stepMinutes: 11 }),
    'blue-green-0': Rollout.blueGreen({ bakeMinutes: 0 }),
    'blue-green-max': Rollout.blueGreen({ bakeMinutes: 29 }),
  };
  return Object.entries(specs).map(([name, rollout]) => endpoint('v-rollouts', name, {
    rollout, ...(rollout.kind === 'canary' || rollout.kind === 'linear' ? { rollbackAlarms: [`${name}-5xx`, `${name}-p99`] } : {}),
  }));
}

function acceleratorShapes(): { accelerator: (typeof ACCELERATOR_NAMES)[number]; count: number }[] {
  return ACCELERATOR_NAMES.flatMap((accelerator) => ACCELERATORS[accelerator].aws.map((s) => ({ accelerator, count: s.count })));
}

/** What SageMaker offers (its own table: e.g. no T4 x8). */
function sagemakerShapes(): { accelerator: (typeof ACCELERATOR_NAMES)[number]; count: number }[] {
  return ACCELERATOR_NAMES.flatMap((accelerator) => Object.keys(SAGEMAKER_INSTANCE_TYPES[accelerator]).map((c) => ({ accelerator, count: Number(c) })));
}

function clusters(): Variant[] {
  return acceleratorShapes().map(({ accelerator, count }, i) => ({
    // Two stacks keep each plan small enough to run beside another.
    stack: i % 2 ? 'v-clusters-b' : 'v-clusters-a',
    name: `c-${accelerator.toLowerCase()}-x${count}`,
    build: (scope, target) => new GpuCluster(scope, `c-${accelerator.toLowerCase()}-x${count}`, {
      target, accelerator, acceleratorsPerNode: count, nodes: { min: 0, max: 2 }, spot: true,
      // V100 needs NVIDIA's proprietary driver: the default AMI is refused for it.
      ...(accelerator === 'V100' ? { machineImage: 'ami-0123456789abcdef0' } : {}),
    }),
  }));
}

function endpoints(): Variant[] {
  return sagemakerShapes().map(({ accelerator, count }) =>
    endpoint('v-endpoints', `e-${accelerator.toLowerCase()}-x${count}`, { accelerator, acceleratorsPerReplica: count }));
}

function pipelines(): Variant[] {
  const schedules: Record<string, { schedule: Schedule; timezone?: string; maxAge?: Duration }> = {
    'rate-15m': { schedule: Schedule.rate(Duration.minutes(15)) },
    'rate-6h': { schedule: Schedule.rate(Duration.hours(6)) },
    'rate-1d': { schedule: Schedule.rate(Duration.days(1)) },
    'daily': { schedule: Schedule.cron('0 3 * * *') },
    'daily-tz': { schedule: Schedule.cron('30 2 * * *'), timezone: 'Europe/Berlin' },
    'weekly-tz': { schedule: Schedule.cron('0 4 * * 1'), timezone: 'America/New_York' },
    'weekly-max-age': { schedule: Schedule.cron('0 4 * * 0'), maxAge: Duration.days(7) },
  };
  return Object.entries(schedules).map(([name, s]) => ({
    stack: 'v-pipelines', name,
    build: (scope, target) => {
      const cluster = new GpuCluster(scope, `${name}-cluster`, { target, accelerator: 'L4', nodes: { min: 0, max: 1 } });
      const pipeline = new TrainingPipeline(scope, name, {
        cluster, schedule: s.schedule, timezone: s.timezone,
        params: Object.fromEntries(TEMPLATE_LIKE.map((v, i) => [`p${i}`, v])),
        steps: [
          Step.run('prep', ['bash', '-c', 'echo ${HOME} %{x} $$ $1', ...TEMPLATE_LIKE], { gpus: 0, env: Object.fromEntries(TEMPLATE_LIKE.map((v, i) => [`E${i}`, v])) }),
          Step.run('train', ['python3', 'train.py'], { after: ['prep'] }),
        ],
      });
      new MonitoringStack(scope, `${name}-ops`, { target, notify: ['ml-oncall@example.com'] })
        .watch(cluster).watch(pipeline, s.maxAge ? { maxAge: s.maxAge } : {});
    },
  }));
}

function misc(): Variant[] {
  return [
    { stack: 'v-features-redis', name: 'features', build: (scope, target) => {
      const f = new FeatureStore(scope, 'features', { target, online: 'redis', project: 'recsys' });
      f.addFeatureView({ name: 'user_stats', entities: ['user_id'], ttl: Duration.days(1), features: [{ name: 'ltv', type: 'float' }] });
      const c = new GpuCluster(scope, 'reader', { target, accelerator: 'L4' });
      f.grantRead(c);
      f.grantWrite(c);
    } },
    { stack: 'v-features-dynamodb', name: 'features', build: (scope, target) => {
      const f = new FeatureStore(scope, 'features', { target, project: 'recsys' });
      f.addFeatureView({ name: 'user_stats', entities: ['user_id'], ttl: Duration.days(1), features: [{ name: 'ltv', type: 'float' }] });
      const c = new GpuCluster(scope, 'writer', { target, accelerator: 'L4' });
      f.grantWrite(c);
    } },
    // Existing network; on-demand hosts; a warm floor of nodes.
    { stack: 'v-existing-network', name: 'on-demand', build: (scope, target) => {
      new GpuCluster(scope, 'on-demand', { target, accelerator: 'A10G', nodes: { min: 1, max: 3 }, spot: false, idleStopMinutes: 0 });
    } },
    { stack: 'v-existing-network', name: 'spot-base', build: (scope, target) => {
      new GpuCluster(scope, 'spot-base', { target, accelerator: 'L4', acceleratorsPerNode: 4, nodes: { min: 2, max: 4 }, spot: true, onDemandBaseNodes: 1 });
    } },
    // Multi-node on an existing network: one subnet for the placement group, 32 EFA interfaces on an
    // explicit EFA type, the agent guards set.
    { stack: 'v-existing-network', name: 'efa-explicit-guards', build: (scope, target) => {
      new GpuCluster(scope, 'efa', {
        target, accelerator: 'H200', instanceType: 'p5e.48xlarge', nodes: { min: 0, max: 2 }, spot: true,
        maxJobDurationSeconds: 86400, deadManMinutes: 15, idleGpuUtilPercent: 10,
      });
    } },
    // Token-valued props: the image and nodes.max from Terraform variables.
    { stack: 'v-tokens', name: 'token-nodes-max', build: (scope, target) => {
      const maxNodes = new TerraformVariable(scope, 'max-nodes', { type: 'number', default: 2 });
      new GpuCluster(scope, 'cluster', { target, accelerator: 'L4', nodes: { min: 0, max: maxNodes.numberValue } });
    } },
    { stack: 'v-tokens', name: 'token-image', build: (scope, target) => {
      const image = new TerraformVariable(scope, 'image', { type: 'string', default: ECR });
      new ModelEndpoint(scope, 'endpoint', {
        target, model: 's3://ml-platform-models/tokens/v1', image: image.stringValue, accelerator: 'L4', replicas: { min: 1, max: 2 },
        env: Object.fromEntries(TEMPLATE_LIKE.map((v, i) => [`E${i}`, v])),
      });
    } },
  ];
}

export function variants(): Variant[] {
  return [...rollouts(), ...clusters(), ...endpoints(), ...pipelines(), ...misc()];
}

/** A variant that throws while being built: tried in a scratch app first, so one bad variant does not hide the rest. */
function synthError(v: Variant): string | undefined {
  const scratch = new TerraformStack(new App({ outdir: join(tmpdir(), 'mlinfra-variant-scratch') }), v.stack);
  try {
    v.build(scratch, awsTarget(scratch, v.stack === 'v-existing-network'));
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

function main(): void {
  const outdir = process.argv[2];
  if (!outdir) throw new Error('usage: node lib/examples/validate-variants.js <outdir>');
  mkdirSync(outdir, { recursive: true });
  const app = new App({ outdir });
  for (const build of Object.values(EXAMPLES)) build(app);
  // Every stack the examples made, the ones they share (network-aws) included.
  const stacks: { name: string; origin: 'example' | 'variant' }[] = app.node.children
    .filter((c): c is TerraformStack => c instanceof TerraformStack).map((s) => ({ name: s.node.id, origin: 'example' }));
  const all = variants();
  const failed: { stack: string; variant: string; error: string }[] = [];
  const byStack = new Map<string, { stack: TerraformStack; target: AwsTarget }>();
  for (const v of all) {
    const error = synthError(v);
    if (error) {
      failed.push({ stack: v.stack, variant: v.name, error });
      continue;
    }
    let entry = byStack.get(v.stack);
    if (!entry) {
      const stack = new TerraformStack(app, v.stack);
      entry = { stack, target: awsTarget(stack, v.stack === 'v-existing-network') };
      byStack.set(v.stack, entry);
      stacks.push({ name: v.stack, origin: 'variant' });
    }
    v.build(entry.stack, entry.target);
  }
  app.synth();
  writeFileSync(join(outdir, 'validate-manifest.json'), `${JSON.stringify({ stacks, variants: all.length, failed }, null, 2)}\n`);
  process.stdout.write(`synthesized ${stacks.length} stacks (${all.length} variants, ${failed.length} failed to synthesize) into ${outdir}\n`);
}

if (require.main === module) main();
