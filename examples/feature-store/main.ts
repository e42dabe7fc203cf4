/**
 * One FeatureStore with two feature views on each target, read by a training cluster on the same
 * target (DESIGN §1). `npm run synth` writes cdktf.out/stacks/features-aws, features-gcp and features-k8s.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack, sharedAwsNetwork } from '../stack';
import { AwsTarget, Duration, FeatureStore, FeatureStoreProps, GcpTarget, GpuCluster, KubernetesTarget, Target } from '../../src';

function platform(stack: TerraformStack, target: Target, props: Partial<FeatureStoreProps> = {}): FeatureStore {
  const features = new FeatureStore(stack, 'features', { target, project: 'recsys', ...props });
  features.addFeatureView({
    name: 'user_stats', entities: [{ name: 'user_id', type: 'int64' }], ttl: Duration.days(2),
    features: [{ name: 'ltv_30d', type: 'float' }, { name: 'orders_7d', type: 'int64' }, { name: 'last_seen', type: 'unix_timestamp' }],
  });
  features.addFeatureView({
    name: 'item_stats', entities: ['item_id'], ttl: Duration.hours(6),
    features: [{ name: 'ctr_1d', type: 'double' }, { name: 'category', type: 'string' }, { name: 'embedding', type: 'float_list' }],
  });
  const cluster = new GpuCluster(stack, 'train', { target, accelerator: 'L4', nodes: { min: 0, max: 2 }, idleStopMinutes: 30 });
  features.grantRead(cluster);
  return features;
}

export function build(app: App): TerraformStack[] {
  const aws = exampleStack(app, 'features-aws');
  platform(aws, new AwsTarget(aws, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) }));

  const gcp = exampleStack(app, 'features-gcp');
  platform(gcp, new GcpTarget(gcp, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' }), { bigtableMaxNodes: 2 });

  const k8s = exampleStack(app, 'features-k8s');
  platform(k8s, new KubernetesTarget(k8s, 'k8s', { namespace: 'ml-features' }), { offlineUri: 's3://ml-platform-features/recsys' });
  return [aws, gcp, k8s];
}
