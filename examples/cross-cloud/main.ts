/**
 * Train on GCP, serve on AWS: two stacks in one app.
 *
 * - `train-gcp`: features, an A100 cluster and the nightly pipeline that promotes
 *   `gs://<cluster bucket>/pipelines/<name>/models/current`.
 * - `serve-aws`: a SageMaker endpoint and its alarms. SageMaker reads only S3, and Terraform copies no
 *   objects between clouds, so the endpoint serves `MODEL_S3_URI`, a prefix a mirror job of yours keeps
 *   in step with the promoted model (e.g. `rclone sync` of the gs:// prefix to S3 after each promotion,
 *   or AWS DataSync reading GCS through its S3-compatible XML API), then rolls the endpoint.
 * - The serving stack consumes the training stack's values the cdktf way: passing
 *   `training.pipeline.model.uri` (a reference to a GCP bucket) into an AWS resource makes cdktf add an
 *   output to `train-gcp`, a `terraform_remote_state` data source to `serve-aws`, and a dependency
 *   (deploy train-gcp first). The server gets it as `MODEL_SOURCE_URI`, so it can report which
 *   training store the served model came from; the mirror job reads the same output.
 */
import { App, LocalBackend, TerraformOutput, TerraformStack } from 'cdktf';
import { AwsTarget, Duration, FeatureStore, GcpTarget, GpuCluster, ModelEndpoint, MonitoringStack, Schedule, Step, TrainingPipeline } from '../../src';

export const MODEL_S3_URI = 's3://ml-platform-models/ltv/current';

function stackWithState(app: App, id: string): TerraformStack {
  const stack = new TerraformStack(app, id);
  // A relative state path: the remote state data source in the other stack reads the same file.
  new LocalBackend(stack, { path: `../../../terraform.${id}.tfstate` });
  return stack;
}

export function build(app: App): TerraformStack[] {
  const train = stackWithState(app, 'train-gcp');
  const gcp = new GcpTarget(train, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
  const features = new FeatureStore(train, 'features', { target: gcp });
  features.addFeatureView({ name: 'user_stats', entities: ['user_id'], ttl: Duration.days(2), features: [{ name: 'ltv_30d', type: 'float' }] });
  const cluster = new GpuCluster(train, 'train', { target: gcp, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 2 }, spot: true });
  features.grantRead(cluster);
  const pipeline = new TrainingPipeline(train, 'ltv', {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [
      Step.run('featurize', ['python3', 'featurize.py'], { gpus: 0 }),
      Step.run('train', ['python3', 'train.py'], { after: ['featurize'], retries: 2 }),
      Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
    ],
  });
  new MonitoringStack(train, 'ops', { target: gcp, notify: ['ml-oncall@example.com'] })
    .watch(cluster).watch(pipeline, { maxAge: Duration.hours(26) });

  const serve = stackWithState(app, 'serve-aws');
  const aws = new AwsTarget(serve, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' } });
  const endpoint = new ModelEndpoint(serve, 'ltv-api', {
    target: aws, model: MODEL_S3_URI, image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0.0',
    accelerator: 'L4', replicas: { min: 1, max: 8 },
    // A cross-stack reference: becomes remote state of train-gcp in this stack.
    env: { MODEL_SOURCE_URI: pipeline.model.uri },
  });
  new MonitoringStack(serve, 'ops', { target: aws, notify: ['ml-oncall@example.com'] })
    .watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  new TerraformOutput(serve, 'model-source', { value: pipeline.model.uri, description: 'the gs:// prefix the served model is mirrored from' });
  return [train, serve];
}
