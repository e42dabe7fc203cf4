/**
 * ModelEndpoint on AWS, the first deploy from a cold ECR pull-through cache. ECR imports an upstream
 * image when it is first pulled through the private registry URI by a principal allowed
 * ecr:BatchImportUpstreamImage (and ecr:CreateRepository until the cache repository exists) — ECR user
 * guide, "Using pull through cache rules" / "Required IAM permissions". SageMaker's CreateModel checks
 * that the image exists in ECR ("Requested image ... not found" otherwise), and no AWS document says
 * that check imports through a cache rule. So the stack pulls the manifest itself before the model is
 * created: a small function, invoked by Terraform (aws_lambda_invocation), GETs
 * /v2/<prefix>/<repository>/manifests/<tag or digest> from the private registry with an ECR token,
 * the same request `docker pull` starts with, retrying while ECR imports. The mirrored URI's registry
 * id is read from the invocation's result, so SageMaker's model waits for the pull (and a new tag is
 * pulled before the model that serves it is replaced).
 */
import { AssetType, Fn, TerraformAsset, TerraformStack, Token } from 'cdktf';
import { Construct } from 'constructs';
import { createHash } from 'crypto';
import { existsSync, mkdirSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { EcrPullThroughCacheRule } from '@cdktf/provider-aws/lib/ecr-pull-through-cache-rule';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaInvocation } from '@cdktf/provider-aws/lib/lambda-invocation';
import { fitName, shortHash } from '../../core/naming';
import { AwsTarget } from '../../core/targets';

/** The pull function (Node.js 22, ESM; the Lambda runtime provides the AWS SDK v3). Exported for its tests. */
export const WARM_HANDLER = `// mlinfra: pull an image once through an ECR pull-through cache rule, so the cache holds it.
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';

const ecr = new ECRClient({});
// Every manifest kind an upstream may serve (multi-arch indexes included).
const ACCEPT = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

// Named, as the alert delivery functions' errors are: Terraform's invocation error and the log say which
// step failed. (This runs in Lambda on its own: the library's MlInfraError is not there.)
class PullError extends Error {
  constructor(message) { super(message); this.name = 'PullError'; }
}

export async function handler(event) {
  const out = await ecr.send(new GetAuthorizationTokenCommand({}));
  const token = out.authorizationData && out.authorizationData[0] && out.authorizationData[0].authorizationToken;
  if (!token) throw new PullError('ECR returned no authorization token');
  const base = process.env.MLINFRA_REGISTRY_URL || ('https://' + event.registry);
  const url = base + '/v2/' + event.repository + '/manifests/' + event.reference;
  const deadline = Date.now() + Number(process.env.MLINFRA_WARM_SECONDS || 600) * 1000;
  const pause = Number(process.env.MLINFRA_WARM_INTERVAL_MS || 5000);
  let last = '';
  for (let attempt = 1; ; attempt++) {
    let status = 0;
    try {
      const res = await fetch(url, { headers: { authorization: 'Basic ' + token, accept: ACCEPT }, signal: AbortSignal.timeout(60000) });
      status = res.status;
      const body = await res.text();
      if (res.ok) return { registryId: event.registryId, digest: res.headers.get('docker-content-digest') || '', attempts: attempt };
      last = status + ' ' + body.slice(0, 300);
    } catch (err) {
      last = err.message;
    }
    // 401/403 and other 4xx (but 404 while importing, 429) do not get better by waiting.
    const retry = status === 0 || status === 404 || status === 429 || status >= 500;
    if (!retry || Date.now() + pause > deadline) break;
    await new Promise((r) => setTimeout(r, pause));
  }
  throw new PullError('pulling ' + event.repository + ':' + event.reference + ' through the ECR pull-through cache failed: ' + last
    + ' (check the cache rule\\'s upstream credential secret and that the image exists upstream)');
}
`;

/** The handler's directory, written once per content (the asset hash is of the content: synth stays deterministic). */
function handlerDir(): string {
  const dir = join(tmpdir(), `mlinfra-ecr-warm-${createHash('sha256').update(WARM_HANDLER).digest('hex').slice(0, 16)}`);
  if (!existsSync(join(dir, 'index.mjs'))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.mjs'), WARM_HANDLER);
  }
  return dir;
}

/** One pull function per cache rule: it may import only into that rule's repositories. */
function warmFunction(stack: TerraformStack, target: AwsTarget, rule: EcrPullThroughCacheRule, prefix: string): LambdaFunction {
  const id = `${rule.node.id}-warm`;
  const existing = stack.node.tryFindChild(id) as Construct | undefined;
  if (existing) return existing.node.findChild('function') as LambdaFunction;
  const provider = target.provider;
  const scope = new Construct(stack, id);
  const name = fitName(`mlinfra-ecr-warm-${prefix}-${shortHash(`${stack.node.path}/${target.node.id}`, 6)}`, 64);
  const logGroup = new CloudwatchLogGroup(scope, 'logs', { provider, name: `/aws/lambda/${name}`, retentionInDays: 30 });
  const assume = new DataAwsIamPolicyDocument(scope, 'assume', {
    provider, statement: [{ effect: 'Allow', actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['lambda.amazonaws.com'] }] }],
  });
  const role = new IamRole(scope, 'role', { provider, name, assumeRolePolicy: assume.json, description: `${stack.node.path}: pulls mirrored images once through ${prefix}` });
  const repositories = `arn:${target.partition}:ecr:${target.region}:${target.accountId}:repository/${prefix}/*`;
  const doc = new DataAwsIamPolicyDocument(scope, 'policy-doc', {
    provider,
    statement: [
      { sid: 'Logs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`${logGroup.arn}:*`] },
      // ecr:GetAuthorizationToken has no resource-level permissions: AWS requires "*" for it.
      { sid: 'EcrLogin', effect: 'Allow', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] },
      { sid: 'PullThroughCache', effect: 'Allow', actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchImportUpstreamImage', 'ecr:CreateRepository'], resources: [repositories] },
    ],
  });
  const policy = new IamRolePolicy(scope, 'policy', { provider, name: 'mlinfra-ecr-warm', role: role.id, policy: doc.json });
  const code = new TerraformAsset(scope, 'code', { path: handlerDir(), type: AssetType.ARCHIVE });
  return new LambdaFunction(scope, 'function', {
    provider, functionName: name, role: role.arn, runtime: 'nodejs22.x', handler: 'index.handler',
    filename: code.path, sourceCodeHash: Fn.filebase64sha256(code.path),
    // Synchronous invocations wait for the function, up to its timeout (Lambda allows 900 s).
    timeout: 660, memorySize: 128, description: `${stack.node.path}: pulls mirrored images once through the ${prefix} cache`,
    dependsOn: [policy, logGroup],
  });
}

/**
 * Pulls `img` once through the cache rule before anything uses it; returns the registry id to build
 * the mirrored URI with (a reference to the pull's result, so users of the URI wait for it).
 */
export function warmAwsImage(scope: Construct, target: AwsTarget, rule: EcrPullThroughCacheRule, prefix: string, repository: string, reference: string): string {
  const stack = TerraformStack.of(scope);
  const fn = warmFunction(stack, target, rule, prefix);
  const registry = `${rule.registryId}.dkr.ecr.${target.region}.amazonaws.com`;
  const id = scope.node.tryFindChild('image-warm') ? `image-warm-${shortHash(`${repository}@${reference}`, 6)}` : 'image-warm';
  const pull = new LambdaInvocation(scope, id, {
    provider: target.provider, functionName: fn.functionName,
    input: Fn.jsonencode({ registry, registryId: rule.registryId, repository: `${prefix}/${repository}`, reference }),
    // A new tag or digest is pulled again (triggers re-invoke when they change; the provider's docs).
    triggers: { image: `${prefix}/${repository}@${reference}` },
  });
  return Token.asString(Fn.lookup(Fn.jsondecode(pull.result), 'registryId'));
}
