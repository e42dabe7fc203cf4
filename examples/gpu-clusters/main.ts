/**
 * One GpuCluster on each target: the same program, three platforms.
 * `npm run synth` writes cdktf.out/stacks/gpu-aws, gpu-gcp and gpu-k8s.
 */
import { App, TerraformStack } from 'cdktf';
import { exampleStack, sharedAwsNetwork } from '../stack';
import { AwsTarget, GcpTarget, GpuCluster, KubernetesTarget } from '../../src';

export function build(app: App): TerraformStack[] {
  const aws = exampleStack(app, 'gpu-aws');
  new GpuCluster(aws, 'train', {
    target: new AwsTarget(aws, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' }, network: sharedAwsNetwork(app) }),
    accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true, onDemandBaseNodes: 0, idleStopMinutes: 30,
  });

  const gcp = exampleStack(app, 'gpu-gcp');
  new GpuCluster(gcp, 'train', {
    target: new GcpTarget(gcp, 'gcp', { project: 'ml-platform-prod', region: 'us-central1', zones: ['us-central1-a', 'us-central1-c'] }),
    accelerator: 'L4', acceleratorsPerNode: 1, nodes: { min: 0, max: 8 }, spot: true,
  });

  const k8s = exampleStack(app, 'gpu-k8s');
  new GpuCluster(k8s, 'train', {
    target: new KubernetesTarget(k8s, 'k8s', {
      namespace: 'ml-training',
      // Checkpoints and artifacts outlive the pods: an S3-compatible store (MinIO here), credentials from a Secret.
      artifactStore: { uri: 's3://ml-artifacts', endpoint: 'http://minio.minio.svc:9000', credentialsSecret: { name: 'minio-credentials', key: 'credentials' } },
    }),
    accelerator: 'H100', acceleratorsPerNode: 8, nodes: { min: 1, max: 2 },
  });
  return [aws, gcp, k8s];
}
