/**
 * The reference platform (DESIGN §1) on each target with MlPlatformStack: features read by a GPU
 * cluster, a nightly pipeline promoting the model the endpoint serves, all of it watched.
 * `npm run synth` writes cdktf.out/stacks/platform-aws, platform-gcp and platform-k8s, each with
 * cost.json and picture.dot/.svg beside cdk.tf.json.
 */
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { AwsTarget, Duration, FeatureViewOptions, KubernetesTarget } from '../../src';
import { sharedAwsNetwork } from '../stack';
import { MlPlatformStack, MlPlatformStackProps } from '../../src/stacks';

const USER_STATS: FeatureViewOptions = {
  name: 'user_stats', entities: ['user_id'], ttl: Duration.days(2),
  features: [{ name: 'ltv_30d', type: 'float' }, { name: 'orders_7d', type: 'int64' }],
};

/** A platform stack whose state path is relative, so synth output stays byte-identical. */
function platform(app: App, id: string, props: MlPlatformStackProps): MlPlatformStack {
  const stack = new MlPlatformStack(app, id, props);
  new LocalBackend(stack, { path: `../../../terraform.${id}.tfstate` });
  return stack;
}

export function build(app: App): TerraformStack[] {
  const common = { notify: ['ml-oncall@example.com'], featureViews: [USER_STATS], endpointAlarms: { p99LatencyMs: 250, errorRatePercent: 1 } };
  return [
    platform(app, 'platform-aws', {
      ...common,
      // The examples' shared network (stack network-aws) instead of a VPC of its own.
      target: (stack) => new AwsTarget(stack, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) }),
      servingImage: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0.0',
    }),
    platform(app, 'platform-gcp', {
      ...common, target: 'gcp', project: 'ml-platform-prod', region: 'us-central1',
      servingImage: 'us-docker.pkg.dev/ml-platform-prod/serving/ltv-server:2.0.0',
    }),
    // An object store for artifacts: the pipeline's registry lives there and the endpoint serves pipeline.model.
    platform(app, 'platform-k8s', {
      ...common, spot: false,
      target: (stack) => new KubernetesTarget(stack, 'k8s', { namespace: 'ml-platform', artifactStore: { uri: 's3://ml-platform-artifacts/k8s', region: 'us-east-1' } }),
      servingImage: 'ghcr.io/acme/ltv-server:2.0.0',
      kubernetesMonitoring: { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' } },
    }),
  ];
}
