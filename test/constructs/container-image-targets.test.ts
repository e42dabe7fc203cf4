// ModelEndpoint images per target: the ECR pull-through cache rule (AWS), the Artifact Registry
// remote repository (GCP), imagePullSecrets (Kubernetes), and the synth-time failures.
import { TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { AwsTarget, GcpTarget, KubernetesTarget, Target } from '../../src';
import { ContainerImage } from '../../src/core/container-image';
import { ModelEndpoint } from '../../src/constructs/model-endpoint';
import { caught } from '../helpers';

type Kind = 'aws' | 'gcp' | 'kubernetes';
function world(kind: Kind) {
  const stack = new TerraformStack(Testing.app(), 'test');
  const target: Target = kind === 'aws' ? new AwsTarget(stack, 'aws', { region: 'us-east-1' })
    : kind === 'gcp' ? new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' })
      : new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
  const model = kind === 'gcp' ? 'gs://ml-models/ltv/v1' : 's3://ml-models/ltv/v1';
  const endpoint = (id: string, image: string | ContainerImage) => new ModelEndpoint(stack, id, { target, model, image, replicas: { min: 1, max: 2 } });
  const json = () => JSON.parse(Testing.synth(stack)) as { resource: Record<string, Record<string, any>>; data?: Record<string, Record<string, any>> };
  return { stack, endpoint, json };
}
const all = (j: { resource: Record<string, Record<string, any>> }, type: string) => Object.values(j.resource[type] ?? {});

describe('ModelEndpoint images on aws', () => {
  test('an ECR image is used as is: no rule', () => {
    const w = world('aws');
    w.endpoint('api', ContainerImage.fromEcr({ account: '123456789012', region: 'us-east-1', repository: 'srv', tag: '1' }));
    const j = w.json();
    expect(all(j, 'aws_ecr_pull_through_cache_rule')).toHaveLength(0);
    expect(all(j, 'aws_sagemaker_model')[0].primary_container.image).toBe('123456789012.dkr.ecr.us-east-1.amazonaws.com/srv:1');
  });

  test('a public upstream (quay.io, a plain string) needs no credential; two endpoints share one rule', () => {
    const w = world('aws');
    w.endpoint('a', 'quay.io/acme/a:1');
    w.endpoint('b', 'quay.io/acme/b:2');
    const j = w.json();
    const rules = all(j, 'aws_ecr_pull_through_cache_rule');
    expect(rules).toEqual([expect.objectContaining({ ecr_repository_prefix: expect.stringMatching(/^ml-quay-[0-9a-f]{6}$/), upstream_registry_url: 'quay.io' })]);
    const prefix = rules[0].ecr_repository_prefix;
    expect(rules[0].credential_arn).toBeUndefined();
    expect(all(j, 'aws_sagemaker_model').map((m) => m.primary_container.image.replace(/^\$\{[^}]+\}/, 'ACCOUNT')).sort())
      .toEqual([`ACCOUNT.dkr.ecr.us-east-1.amazonaws.com/${prefix}/acme/a:1`, `ACCOUNT.dkr.ecr.us-east-1.amazonaws.com/${prefix}/acme/b:2`]);
  });

  test('two stacks mirroring one upstream get distinct prefixes (rules are registry-wide)', () => {
    const app = Testing.app();
    const prefixes = ['a', 'b'].map((id) => {
      const stack = new TerraformStack(app, id);
      const target = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      new ModelEndpoint(stack, 'api', { target, model: 's3://ml-models/ltv/v1', image: 'quay.io/acme/a:1', replicas: { min: 1, max: 2 } });
      return Object.values(JSON.parse(Testing.synth(stack)).resource.aws_ecr_pull_through_cache_rule as Record<string, any>)[0].ecr_repository_prefix;
    });
    expect(new Set(prefixes).size).toBe(2);
  });

  test('Docker Hub official images keep library/ in the mirrored path', () => {
    const w = world('aws');
    w.endpoint('api', ContainerImage.fromRegistry('pytorch:2.3', { awsCredentialSecret: 'ecr-pullthroughcache/docker-hub' }));
    const j = w.json();
    expect(all(j, 'aws_ecr_pull_through_cache_rule')[0]).toMatchObject({ upstream_registry_url: 'registry-1.docker.io', ecr_repository_prefix: expect.stringMatching(/^ml-docker-hub-[0-9a-f]{6}$/) });
    expect(all(j, 'aws_sagemaker_model')[0].primary_container.image).toMatch(/\/ml-docker-hub-[0-9a-f]{6}\/library\/pytorch:2\.3$/);
  });

  test.each<[string, (w: ReturnType<typeof world>) => unknown, string, RegExp]>([
    ['fails when two endpoints name different credentials for one upstream', (w) => {
      w.endpoint('a', ContainerImage.fromRegistry('ghcr.io/acme/a:1', { awsCredentialSecret: 'ecr-pullthroughcache/one' }));
      w.endpoint('b', ContainerImage.fromRegistry('ghcr.io/acme/b:1', { awsCredentialSecret: 'ecr-pullthroughcache/two' }));
    }, 'image.awsCredentialSecret', /differs for the same upstream/],
    ['fails when imagePullSecrets are set on aws', (w) => w.endpoint('a', ContainerImage.fromRegistry('quay.io/a/b:1', { imagePullSecrets: ['x'] })), 'image.imagePullSecrets', /kubernetes targets only/],
    ['fails when the upstream is not supported', (w) => w.endpoint('a', 'nvcr.io/nvidia/tritonserver:24.01-py3'), 'image', /Docker Hub \(docker\.io\), ghcr\.io/],
  ])('%s', (_name, fn, prop, message) => {
    const e = caught(() => fn(world('aws')));
    expect(e.prop).toBe(prop);
    expect(e.message).toMatch(message);
  });
});

describe('ModelEndpoint images on gcp', () => {
  test('Artifact Registry and Container Registry images are used as is', () => {
    const w = world('gcp');
    w.endpoint('api', ContainerImage.fromArtifactRegistry({ location: 'us', project: 'ml-platform-prod', repository: 'serving', image: 'ltv', tag: '1' }));
    const j = w.json();
    expect(all(j, 'google_artifact_registry_repository')).toHaveLength(0);
    expect(all(j, 'google_cloud_run_v2_service')[0].template.containers[0].image).toBe('us-docker.pkg.dev/ml-platform-prod/serving/ltv:1');
  });

  test('Docker Hub goes through a remote repository with the DOCKER_HUB preset', () => {
    const w = world('gcp');
    w.endpoint('api', 'pytorch/torchserve:0.11.0');
    const j = w.json();
    expect(all(j, 'google_artifact_registry_repository')).toEqual([expect.objectContaining({
      mode: 'REMOTE_REPOSITORY', format: 'DOCKER', repository_id: expect.stringMatching(/^mlinfra-docker-hub-[0-9a-f]{6}$/), location: 'us-central1', project: 'ml-platform-prod',
      remote_repository_config: { description: 'Docker Hub', docker_repository: { public_repository: 'DOCKER_HUB' } },
    })]);
    expect(all(j, 'google_cloud_run_v2_service')[0].template.containers[0].image).toMatch(/\/pytorch\/torchserve:0\.11\.0$/);
    expect(all(j, 'google_project_service').map((s) => s.service)).toContain('artifactregistry.googleapis.com');
  });

  test('fails when the upstream is not supported', () => {
    const e = caught(() => world('gcp').endpoint('a', 'nvcr.io/nvidia/tritonserver:24.01-py3'));
    expect(e.code).toBe('NOT_OFFERED');
    expect(e.message).toMatch(/nvcr\.io.*Artifact Registry/);
  });
});

describe('ModelEndpoint images on kubernetes', () => {
  test('any image is used as is; without imagePullSecrets none are set', () => {
    const w = world('kubernetes');
    w.endpoint('api', 'nvcr.io/nvidia/tritonserver:24.01-py3');
    const d = all(w.json(), 'kubernetes_deployment_v1')[0];
    expect(d.spec.template.spec.container[0].image).toBe('nvcr.io/nvidia/tritonserver:24.01-py3');
    expect(d.spec.template.spec.image_pull_secrets).toBeUndefined();
  });
});

test('an unresolved image reference passes through unparsed', () => {
  const w = world('kubernetes');
  const image = new TerraformVariable(w.stack, 'image', { type: 'string' });
  w.endpoint('api', image.stringValue);
  expect(all(w.json(), 'kubernetes_deployment_v1')[0].spec.template.spec.container[0].image).toBe('${var.image}');
});
