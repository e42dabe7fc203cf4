/**
 * A nightly training pipeline on each target: featurize, train two candidates in parallel, compare,
 * promote the better model only if it beats the current one on val_auc.
 * `npm run synth` writes cdktf.out/stacks/pipeline-aws, pipeline-gcp and pipeline-k8s.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack, sharedAwsNetwork } from '../stack';
import { AwsTarget, Duration, GcpTarget, GpuCluster, GpuClusterProps, KubernetesTarget, Schedule, Step, Target, TrainingPipeline } from '../../src';

/** The same DAG on every target. */
function pipeline(stack: TerraformStack, target: Target, accelerator: GpuClusterProps['accelerator']): TrainingPipeline {
  const cluster = new GpuCluster(stack, 'train', { target, accelerator, acceleratorsPerNode: 1, nodes: { min: 0, max: 1 }, idleStopMinutes: 15 });
  const candidate = (name: string, lr: string, hidden: string) =>
    Step.run(`train_${name}`, ['python3', 'scripts/train.py', '--candidate', name, '--lr', lr, '--hidden', hidden], {
      after: ['featurize'], retries: 2, timeout: Duration.hours(2), gpus: 1,
    });
  return new TrainingPipeline(stack, 'ltv', {
    cluster,
    // Every day at 03:00 UTC: the schedule starts a host from zero; it stops itself when the run ends.
    schedule: Schedule.cron('0 3 * * *'),
    params: { dataset: 'ltv-daily', seed: 7 },
    steps: [
      Step.run('featurize', ['python3', 'scripts/featurize.py'], { gpus: 0, timeout: Duration.minutes(30), env: { FEATURE_WINDOW_DAYS: '30' } }),
      candidate('a', '0.1', '64'),
      candidate('b', '0.01', '128'),
      Step.run('compare', ['python3', 'scripts/compare.py', 'a', 'b'], { after: ['train_a', 'train_b'], gpus: 0, timeout: Duration.minutes(10) }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['compare'] }),
    ],
  });
}

export function build(app: App): TerraformStack[] {
  const aws = exampleStack(app, 'pipeline-aws');
  pipeline(aws, new AwsTarget(aws, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) }), 'L4');

  const gcp = exampleStack(app, 'pipeline-gcp');
  pipeline(gcp, new GcpTarget(gcp, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' }), 'L4');

  const k8s = exampleStack(app, 'pipeline-k8s');
  pipeline(k8s, new KubernetesTarget(k8s, 'k8s', { namespace: 'ml-training' }), 'T4');
  return [aws, gcp, k8s];
}
