// ModelEndpoint images per target: the ECR pull-through cache rule (AWS), the Artifact Registry
// remote repository (GCP), imagePullSecrets (Kubernetes), and the synth-time failures.
import { TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { AwsTarget, GcpTarget, KubernetesTarget, Target } from '../../src';
import { ContainerImage } from '../../src/core/container-image';
import { ModelEndpoint } from '../../src/constructs/model-endpoint';
import { execFile } from 'child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { createServer, Server } from 'http';
import { AddressInfo } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { WARM_HANDLER } from '../../src/constructs/model-endpoint/aws-image-warm';
import { caught } from '../helpers';

const execFileP = promisify(execFile);

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
    // One pull function for the rule, one pull per image.
    expect(all(j, 'aws_lambda_function').filter((f) => String(f.function_name).startsWith('mlinfra-ecr-warm-'))).toHaveLength(1);
    expect(all(j, 'aws_lambda_invocation')).toHaveLength(2);
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

describe('aws: the first deploy from a cold pull-through cache', () => {
  const w = world('aws');
  w.endpoint('api', ContainerImage.fromRegistry(`ghcr.io/acme/ltv-server:2.0@sha256:${'ab'.repeat(32)}`, { awsCredentialSecret: 'ecr-pullthroughcache/ghcr' }));
  w.endpoint('batch', 'quay.io/acme/batch:3');
  const j = w.json();
  const rules = Object.entries(j.resource.aws_ecr_pull_through_cache_rule);
  const ruleOf = (upstream: string) => rules.find(([, r]) => r.upstream_registry_url === upstream)!;
  const invocations = Object.entries(j.resource.aws_lambda_invocation ?? {});

  test('each mirrored image is pulled once through its rule before SageMaker sees it: the model URI reads the pull result', () => {
    expect(invocations).toHaveLength(2);
    for (const m of all(j, 'aws_sagemaker_model')) {
      const [, name] = /^\$\{jsondecode\(aws_lambda_invocation\.([^.]+)\.result\)\.registryId\}\.dkr\.ecr\.us-east-1\.amazonaws\.com\//.exec(m.primary_container.image) ?? [];
      expect(invocations.map(([n]) => n)).toContain(name);
    }
  });

  test('the pull asks for the mirrored repository by digest (or tag), from the rule\'s registry', () => {
    const [ghcrName, ghcr] = ruleOf('ghcr.io');
    const inputs = invocations.map(([, i]) => i.input as string);
    const ghcrInput = inputs.find((i) => i.includes('acme/ltv-server'))!;
    expect(ghcrInput).toContain(`"repository" = "${ghcr.ecr_repository_prefix}/acme/ltv-server"`);
    expect(ghcrInput).toContain(`"reference" = "sha256:${'ab'.repeat(32)}"`);
    expect(ghcrInput).toContain(`"registryId" = aws_ecr_pull_through_cache_rule.${ghcrName}.registry_id`);
    expect(inputs.find((i) => i.includes('acme/batch'))).toContain('"reference" = "3"');
    // A new tag re-invokes the pull.
    expect(invocations.map(([, i]) => i.triggers.image).sort()).toEqual([`${ghcr.ecr_repository_prefix}/acme/ltv-server@sha256:${'ab'.repeat(32)}`, `${ruleOf('quay.io')[1].ecr_repository_prefix}/acme/batch@3`]);
  });

  test('one pull function per rule, Node.js 22, allowed to import only into that rule\'s repositories', () => {
    const fns = all(j, 'aws_lambda_function').filter((f) => String(f.function_name).startsWith('mlinfra-ecr-warm-'));
    expect(fns).toHaveLength(2);
    expect(fns.every((f) => f.runtime === 'nodejs22.x' && f.timeout <= 900)).toBe(true);
    const docs = Object.values(j.data?.aws_iam_policy_document ?? {}) as any[];
    const pulls = docs.flatMap((d) => d.statement ?? []).filter((st: any) => st.sid === 'PullThroughCache' && st.actions.includes('ecr:GetDownloadUrlForLayer'));
    expect(pulls.map((st: any) => st.resources[0].replace(/^.*:repository\//, '')).sort())
      .toEqual([`${ruleOf('ghcr.io')[1].ecr_repository_prefix}/*`, `${ruleOf('quay.io')[1].ecr_repository_prefix}/*`].sort());
    expect(pulls[0].actions).toEqual(['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchImportUpstreamImage', 'ecr:CreateRepository']);
  });

  test('an ECR image needs no pull', () => {
    const e = world('aws');
    e.endpoint('api', ContainerImage.fromEcr({ account: '123456789012', region: 'us-east-1', repository: 'srv', tag: '1' }));
    expect(e.json().resource.aws_lambda_invocation).toBeUndefined();
  });
});

describe('the ECR pull function', () => {
  // The function as shipped, beside a stand-in for the SDK's ECR client (the Lambda runtime has the
  // real one); real HTTP to a local registry that answers 404 while it "imports", then the manifest.
  let dir: string;
  let registry: Server;
  let base: string;
  const got: { path: string; auth?: string; accept?: string }[] = [];
  let coldAnswers = 2;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ecr-warm-'));
    writeFileSync(join(dir, 'index.mjs'), WARM_HANDLER);
    const sdk = join(dir, 'node_modules', '@aws-sdk', 'client-ecr');
    mkdirSync(sdk, { recursive: true });
    writeFileSync(join(sdk, 'package.json'), JSON.stringify({ name: '@aws-sdk/client-ecr', type: 'module', main: 'index.js' }));
    writeFileSync(join(sdk, 'index.js'), `export class GetAuthorizationTokenCommand { constructor(input) { this.input = input; } }
export class ECRClient { async send() { return { authorizationData: [{ authorizationToken: Buffer.from('AWS:local-password').toString('base64') }] }; } }`);
    registry = createServer((req, res) => {
      got.push({ path: req.url!, auth: req.headers.authorization, accept: req.headers.accept });
      if (req.headers.authorization !== `Basic ${Buffer.from('AWS:local-password').toString('base64')}`) return void res.writeHead(401).end('{"errors":[{"code":"DENIED"}]}');
      if (req.url!.includes('/missing/')) return void res.writeHead(403).end('{"errors":[{"code":"DENIED","message":"upstream denied"}]}');
      if (coldAnswers-- > 0) return void res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      res.writeHead(200, { 'docker-content-digest': `sha256:${'cd'.repeat(32)}`, 'content-type': 'application/vnd.oci.image.index.v1+json' }).end('{"schemaVersion":2}');
    });
    await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  });
  afterAll(() => registry?.close());

  const invoke = (event: object) => execFileP(process.execPath, ['--input-type=module', '-e',
    `import { handler } from ${JSON.stringify(join(dir, 'index.mjs'))}; process.stdout.write(JSON.stringify(await handler(${JSON.stringify(event)})));`], {
    cwd: dir, env: { ...process.env, MLINFRA_REGISTRY_URL: base, MLINFRA_WARM_INTERVAL_MS: '50', MLINFRA_WARM_SECONDS: '5' },
  });

  test('GETs the manifest through the private registry with an ECR token, retrying while the cache imports', async () => {
    got.length = 0;
    coldAnswers = 2;
    const { stdout } = await invoke({ registry: '123456789012.dkr.ecr.us-east-1.amazonaws.com', registryId: '123456789012', repository: 'ml-ghcr-abc123/acme/ltv-server', reference: '2.0' });
    expect(JSON.parse(stdout)).toEqual({ registryId: '123456789012', digest: `sha256:${'cd'.repeat(32)}`, attempts: 3 });
    expect(got.map((g) => g.path)).toEqual(Array(3).fill('/v2/ml-ghcr-abc123/acme/ltv-server/manifests/2.0'));
    expect(got[0].accept).toContain('application/vnd.oci.image.index.v1+json');
    expect(got[0].accept).toContain('application/vnd.docker.distribution.manifest.v2+json');
  });

  test('fails at once, with the registry\'s answer, when the pull is denied', async () => {
    got.length = 0;
    await expect(invoke({ registry: 'r', registryId: '1', repository: 'ml-ghcr-abc123/missing/x', reference: '1' })).rejects.toThrow(/403 .*upstream denied.*credential secret/s);
    // a named error: the invocation's failure says which step failed
    await expect(invoke({ registry: 'r', registryId: '1', repository: 'ml-ghcr-abc123/missing/x', reference: '1' })).rejects.toThrow(/PullError: pulling ml-ghcr-abc123\/missing\/x:1/);
    expect(got).toHaveLength(2);
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
