import { ContainerImage, upstreamOf } from '../../src/core/container-image';
import { caught } from '../helpers';

const DIGEST = `sha256:${'a1'.repeat(32)}`;

describe('ContainerImage parsing', () => {
  test.each<[string, string, string, string | undefined, string | undefined, string]>([
    ['ghcr.io/acme/ltv-server:2.0', 'ghcr.io', 'acme/ltv-server', '2.0', undefined, 'registry'],
    ['nginx', 'docker.io', 'library/nginx', 'latest', undefined, 'registry'],
    ['acme/server:1', 'docker.io', 'acme/server', '1', undefined, 'registry'],
    [`quay.io/prometheus/prometheus@${DIGEST}`, 'quay.io', 'prometheus/prometheus', undefined, DIGEST, 'registry'],
    [`registry.k8s.io/pause:3.9@${DIGEST}`, 'registry.k8s.io', 'pause', '3.9', DIGEST, 'registry'],
    ['localhost:5000/team/img:dev', 'localhost:5000', 'team/img', 'dev', undefined, 'registry'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:2.0', '123456789012.dkr.ecr.us-east-1.amazonaws.com', 'ltv-server', '2.0', undefined, 'ecr'],
    ['us-docker.pkg.dev/my-project/serving/ltv:2.0', 'us-docker.pkg.dev', 'my-project/serving/ltv', '2.0', undefined, 'artifact-registry'],
  ])('%s', (ref, registry, repository, tag, digest, source) => {
    const img = ContainerImage.fromRegistry(ref);
    expect({ registry: img.registry, repository: img.repository, tag: img.tag, digest: img.digest, source: img.source })
      .toEqual({ registry, repository, tag, digest, source });
  });

  test('a rewrite keeps tag and digest', () => {
    const img = ContainerImage.fromRegistry(`ghcr.io/acme/ltv-server:2.0@${DIGEST}`);
    expect(img.rewrite('1.dkr.ecr.us-east-1.amazonaws.com', 'mlinfra-ghcr')).toBe(`1.dkr.ecr.us-east-1.amazonaws.com/mlinfra-ghcr/acme/ltv-server:2.0@${DIGEST}`);
    expect(ContainerImage.fromRegistry(`quay.io/a/b@${DIGEST}`).rewrite('h', 'p')).toBe(`h/p/a/b@${DIGEST}`);
    expect(ContainerImage.fromRegistry('nginx:1.27').rewrite('us-docker.pkg.dev/p/mlinfra-docker-hub')).toBe('us-docker.pkg.dev/p/mlinfra-docker-hub/library/nginx:1.27');
  });

  test('fromEcr and fromArtifactRegistry compose the registry URI', () => {
    expect(ContainerImage.fromEcr({ account: '123456789012', region: 'eu-west-1', repository: 'srv', tag: '3' }).toString())
      .toBe('123456789012.dkr.ecr.eu-west-1.amazonaws.com/srv:3');
    expect(ContainerImage.fromArtifactRegistry({ location: 'us-central1', project: 'my-project', repository: 'serving', image: 'ltv', digest: DIGEST }).toString())
      .toBe(`us-central1-docker.pkg.dev/my-project/serving/ltv@${DIGEST}`);
  });

  test('strings are accepted wherever an image is: of() parses them the same way', () => {
    expect(ContainerImage.of('ghcr.io/acme/x:1', 'stack/api', 'image').toString()).toBe('ghcr.io/acme/x:1');
    const img = ContainerImage.fromRegistry('ghcr.io/acme/x:1');
    expect(ContainerImage.of(img, 'stack/api', 'image')).toBe(img);
  });

  test('upstreams: each supported registry maps to an ECR upstream URL and an Artifact Registry source', () => {
    expect(upstreamOf('docker.io')).toMatchObject({ aws: { upstreamUrl: 'registry-1.docker.io', credential: true }, gcp: { publicRepository: 'DOCKER_HUB' } });
    expect(upstreamOf('ghcr.io')).toMatchObject({ aws: { upstreamUrl: 'ghcr.io', credential: true }, gcp: { customUri: 'https://ghcr.io' } });
    expect(upstreamOf('quay.io')?.aws?.credential).toBe(false);
    expect(upstreamOf('public.ecr.aws')?.aws?.credential).toBe(false);
    expect(upstreamOf('registry.k8s.io')?.aws?.credential).toBe(false);
    expect(upstreamOf('registry.gitlab.com')?.aws?.credential).toBe(true);
    expect(upstreamOf('acme12.azurecr.io')?.aws).toEqual({ upstreamUrl: 'acme12.azurecr.io', credential: true });
    expect(upstreamOf('nvcr.io')).toBeUndefined();
  });

  test.each<[string, () => unknown, string, RegExp]>([
    ['the repository is upper-case', () => ContainerImage.fromRegistry('ghcr.io/Acme/x:1'), 'image', /invalid repository/],
    ['the tag is invalid', () => ContainerImage.fromRegistry('ghcr.io/acme/x:-bad'), 'image', /invalid tag/],
    ['the digest is not sha256', () => ContainerImage.fromRegistry('ghcr.io/acme/x@md5:abc'), 'image', /invalid digest/],
    ['the reference is not a string', () => ContainerImage.fromRegistry(42 as never), 'image', /got 42/],
    ['the AWS credential secret lacks the ecr-pullthroughcache/ prefix', () => ContainerImage.fromRegistry('ghcr.io/a/b:1', { awsCredentialSecret: 'ghcr-token' }), 'awsCredentialSecret', /ecr-pullthroughcache\//],
    ['an imagePullSecret is not a Secret name', () => ContainerImage.fromRegistry('ghcr.io/a/b:1', { imagePullSecrets: ['Bad_Name'] }), 'imagePullSecrets', /Kubernetes Secret names/],
    ['fromEcr is given a non-ECR URI', () => ContainerImage.fromEcr('ghcr.io/a/b:1'), 'image', /not an ECR image/],
    ['fromEcr has a bad account', () => ContainerImage.fromEcr({ account: '12', region: 'us-east-1', repository: 'x' }), 'account', /12-digit/],
    ['fromArtifactRegistry is given a Docker Hub image', () => ContainerImage.fromArtifactRegistry('nginx:1'), 'image', /not an Artifact Registry image/],
  ])('fails when %s', (_name, fn, prop, message) => {
    const e = caught(fn);
    expect(e.prop).toBe(prop);
    expect(e.message).toMatch(message);
  });
});
