/**
 * ModelEndpoint on AWS, images outside ECR: SageMaker pulls only from ECR, so an image from a
 * supported upstream is served through an ECR pull-through cache rule and its mirrored URI
 * `<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<upstream repository>[:tag][@digest]`.
 * Sources: ECR CreatePullThroughCacheRule (upstream URLs; prefix 2-30 chars; credentialArn must be a
 * secret named `ecr-pullthroughcache/...` in the rule's account and region), ECR "IAM permissions
 * required to sync an upstream registry" (the puller needs ecr:BatchImportUpstreamImage, and
 * ecr:CreateRepository until the cached repository exists).
 */
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { DataAwsSecretsmanagerSecret } from '@cdktf/provider-aws/lib/data-aws-secretsmanager-secret';
import { EcrPullThroughCacheRule } from '@cdktf/provider-aws/lib/ecr-pull-through-cache-rule';
import { ContainerImage, SUPPORTED_UPSTREAMS, upstreamOf } from '../../core/container-image';
import { Errors } from '../../core/errors';
import { fitName, shortHash } from '../../core/naming';
import { suppressPolicyRule } from '../../core/suppressions';
import { AwsTarget } from '../../core/targets';
import { warmAwsImage } from './aws-image-warm';

/** ECR upstreams, for errors (the AWS half of SUPPORTED_UPSTREAMS). */
const AWS_UPSTREAMS = 'Docker Hub (docker.io), ghcr.io, quay.io, public.ecr.aws, registry.k8s.io, registry.gitlab.com, <name>.azurecr.io';

/** The credential secret of each rule created, by stack and prefix. */
const ruleCredentials = new WeakMap<Construct, Map<string, string | undefined>>();

/** How SageMaker will pull the image. */
export interface AwsImagePlan {
  /** The ECR URI SageMaker pulls. */
  readonly uri: string;
  /** Set when the image is mirrored: the rule's prefix and upstream. */
  readonly pullThrough?: { readonly prefix: string; readonly upstreamUrl: string; readonly credentialSecret?: string };
}

/** Checks that the image can be pulled on AWS; throws before any resource exists. */
export function planAwsImage(where: Construct, img: ContainerImage): AwsImagePlan {
  if (img.isToken || img.source === 'ecr') return { uri: img.reference };
  const upstream = upstreamOf(img.registry!);
  if (!upstream?.aws) {
    throw Errors.notOffered(where, 'image', img.reference,
      `${img.registry} cannot be pulled by SageMaker (ECR only) and ECR pull-through cache does not support it`,
      `an ECR image, or an image from ${AWS_UPSTREAMS} (mirrored through an ECR pull-through cache rule); all targets: ${SUPPORTED_UPSTREAMS}`);
  }
  const secret = img.options.awsCredentialSecret;
  if (upstream.aws.credential && !secret) {
    throw Errors.missing(where, 'image.awsCredentialSecret',
      `an ECR pull-through cache from ${upstream.name} needs credentials: ContainerImage.fromRegistry('${img.reference}', { awsCredentialSecret: 'ecr-pullthroughcache/${upstream.id}' }), `
      + 'a Secrets Manager secret (same account and region) with JSON { "username": ..., "accessToken": ... }');
  }
  // Per stack: two stacks in one account and region must not create the same prefix (rules are registry-wide).
  const prefix = `ml-${fitName(upstream.id, 20)}-${shortHash(TerraformStack.of(where).node.path, 6)}`;
  return { uri: '', pullThrough: { prefix, upstreamUrl: upstream.aws.upstreamUrl, credentialSecret: upstream.aws.credential ? secret : undefined } };
}

/**
 * Creates (once per stack, target and upstream) the pull-through cache rule and returns the mirrored URI
 * and the repository ARN pattern the execution role needs.
 */
export function buildAwsImage(scope: Construct, target: AwsTarget, img: ContainerImage, plan: AwsImagePlan): { uri: string; cacheRepositoryArn?: string } {
  const p = plan.pullThrough;
  if (!p) return { uri: plan.uri };
  const stack = TerraformStack.of(scope);
  // One rule per registry (target: account and region) and upstream.
  const id = `mlinfra-ecr-cache-${p.prefix}-${target.node.id}`;
  let rule = stack.node.tryFindChild(id) as EcrPullThroughCacheRule | undefined;
  const seen = ruleCredentials.get(stack) ?? new Map<string, string | undefined>();
  ruleCredentials.set(stack, seen);
  if (rule) {
    // One rule per prefix: every image from this upstream in the stack shares its credentials.
    if (seen.get(id) !== p.credentialSecret) {
      throw Errors.conflict(scope, 'image.awsCredentialSecret', p.credentialSecret ?? null, `${seen.get(id)} (the secret another endpoint in this stack uses for ${p.upstreamUrl})`, 'differs for the same upstream');
    }
  } else {
    let credentialArn: string | undefined;
    if (p.credentialSecret) {
      const secret = new DataAwsSecretsmanagerSecret(stack, `${id}-credential`, { provider: target.provider, name: p.credentialSecret });
      suppressPolicyRule(secret, 'aws-secrets-kms', 'a data source reading the user\'s existing secret: its key is chosen where the secret is created, not here');
      credentialArn = secret.arn;
    }
    rule = new EcrPullThroughCacheRule(stack, id, { provider: target.provider, ecrRepositoryPrefix: p.prefix, upstreamRegistryUrl: p.upstreamUrl, credentialArn });
    seen.set(id, p.credentialSecret);
  }
  // The registry id comes from a first pull through the rule, so SageMaker never meets a cold cache (aws-image-warm.ts).
  const host = `${warmAwsImage(scope, target, rule, p.prefix, img.repository!, img.digest ?? img.tag!)}.dkr.ecr.${target.region}.amazonaws.com`;
  return {
    uri: img.rewrite(host, p.prefix),
    cacheRepositoryArn: `arn:${target.partition}:ecr:${target.region}:${target.accountId}:repository/${p.prefix}/${img.repository}`,
  };
}
