/**
 * A container image reference, parsed once and made pullable per target by the construct that runs
 * it (AWS: an ECR pull-through cache rule; GCP: an Artifact Registry remote repository; Kubernetes:
 * as is). Cloud-neutral: no provider imports here.
 */
import { Token } from 'cdktf';
import { Errors } from './errors';

/** How a target can pull from an upstream registry it does not host. */
export interface UpstreamRegistry {
  /** Short name used in errors and as the cache prefix (`ghcr`, `docker-hub` ...). */
  readonly id: string;
  /** Human name. */
  readonly name: string;
  /**
   * AWS: the `upstream_registry_url` of an ECR pull-through cache rule, and whether ECR needs a
   * Secrets Manager credential for it (Docker Hub, GHCR, GitLab and Azure do; ECR Public, Quay and
   * registry.k8s.io do not). Source: ECR CreatePullThroughCacheRule API reference.
   */
  readonly aws?: { readonly upstreamUrl: string; readonly credential: boolean };
  /**
   * GCP: the Artifact Registry remote repository source: Docker Hub is a preset public repository,
   * others a custom Docker remote (`custom_repository.uri`). Source: Artifact Registry "Create remote
   * repositories" (Docker: Docker Hub or any custom registry URL).
   */
  readonly gcp?: { readonly publicRepository: 'DOCKER_HUB' } | { readonly customUri: string };
}

const DOCKER_HUB_HOSTS = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** The upstream for a registry host, or undefined when none of the mechanisms supports it. */
export function upstreamOf(host: string): UpstreamRegistry | undefined {
  if (DOCKER_HUB_HOSTS.includes(host)) {
    return { id: 'docker-hub', name: 'Docker Hub', aws: { upstreamUrl: 'registry-1.docker.io', credential: true }, gcp: { publicRepository: 'DOCKER_HUB' } };
  }
  const fixed: Record<string, UpstreamRegistry> = {
    'ghcr.io': { id: 'ghcr', name: 'GitHub Container Registry', aws: { upstreamUrl: 'ghcr.io', credential: true }, gcp: { customUri: 'https://ghcr.io' } },
    'quay.io': { id: 'quay', name: 'Quay', aws: { upstreamUrl: 'quay.io', credential: false }, gcp: { customUri: 'https://quay.io' } },
    'public.ecr.aws': { id: 'ecr-public', name: 'ECR Public', aws: { upstreamUrl: 'public.ecr.aws', credential: false }, gcp: { customUri: 'https://public.ecr.aws' } },
    'registry.k8s.io': { id: 'k8s', name: 'registry.k8s.io', aws: { upstreamUrl: 'registry.k8s.io', credential: false }, gcp: { customUri: 'https://registry.k8s.io' } },
    'registry.gitlab.com': { id: 'gitlab', name: 'GitLab Container Registry', aws: { upstreamUrl: 'registry.gitlab.com', credential: true }, gcp: { customUri: 'https://registry.gitlab.com' } },
  };
  if (fixed[host]) return fixed[host];
  const azure = /^([a-z0-9]{5,50})\.azurecr\.io$/.exec(host);
  if (azure) {
    return { id: `azure-${azure[1]}`.slice(0, 24), name: 'Azure Container Registry', aws: { upstreamUrl: host, credential: true }, gcp: { customUri: `https://${host}` } };
  }
  return undefined;
}

/** The upstream registries some target can mirror, for error messages. */
export const SUPPORTED_UPSTREAMS = 'Docker Hub (docker.io), ghcr.io, quay.io, public.ecr.aws, registry.k8s.io, registry.gitlab.com, <name>.azurecr.io';

export type ContainerImageSource = 'registry' | 'ecr' | 'artifact-registry';

export interface FromRegistryOptions {
  /**
   * AWS, credentialed upstreams (Docker Hub, GHCR, GitLab, Azure): name of the Secrets Manager
   * secret with the upstream's `username` and `accessToken`. AWS requires the name to start with
   * `ecr-pullthroughcache/`, in the same account and region as the cache rule.
   * @default - none: a credentialed upstream on AWS fails at synth, naming this option
   */
  readonly awsCredentialSecret?: string;
  /**
   * Kubernetes: names of docker-registry Secrets (in the target's namespace) the pods pull with.
   * @default - none: the node's own credentials (public images)
   */
  readonly imagePullSecrets?: string[];
}

export interface EcrImageOptions {
  readonly account: string;
  readonly region: string;
  readonly repository: string;
  /** @default 'latest' unless `digest` is set */
  readonly tag?: string;
  /** `sha256:<64 hex>`. @default - none */
  readonly digest?: string;
}

export interface ArtifactRegistryImageOptions {
  /** Region or multi-region (`us`, `europe`, `asia`) of the repository. */
  readonly location: string;
  readonly project: string;
  readonly repository: string;
  /** Image path inside the repository. */
  readonly image: string;
  /** @default 'latest' unless `digest` is set */
  readonly tag?: string;
  /** `sha256:<64 hex>`. @default - none */
  readonly digest?: string;
}

const HOST = /^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+|[a-z0-9-]+)(:\d{1,5})?$/;
const PATH_COMPONENT = /^[a-z0-9]+([._]|__|-+)?([a-z0-9]+([._]|__|-+)?)*[a-z0-9]*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const ECR_HOST = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/;
const AR_HOST = /^([a-z0-9-]+)-docker\.pkg\.dev$/;
const ALLOWED = 'an image reference [registry/]repository[:tag][@sha256:<64 hex>], lower-case repository, e.g. ghcr.io/acme/server:1.0';

/**
 * A container image: `ContainerImage.fromRegistry('ghcr.io/acme/ltv-server:2.0')`, `.fromEcr(...)`,
 * `.fromArtifactRegistry(...)`, or a plain string wherever an image is taken.
 */
export class ContainerImage {
  /** Any registry; the construct makes it pullable on its target (see the target's rules). */
  public static fromRegistry(ref: string, options: FromRegistryOptions = {}): ContainerImage {
    return ContainerImage.parse(ref, 'image', 'ContainerImage.fromRegistry', options);
  }

  /** An image in a private ECR repository (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>`). */
  public static fromEcr(o: EcrImageOptions | string): ContainerImage {
    const where = 'ContainerImage.fromEcr';
    if (typeof o === 'string') {
      const img = ContainerImage.parse(o, 'image', where);
      if (img.source !== 'ecr') throw Errors.invalid(where, 'image', o, 'an ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag][@sha256:...]', 'is not an ECR image');
      return img;
    }
    if (!o || typeof o !== 'object') throw Errors.missing(where, 'options', 'an ECR image URI or { account, region, repository, tag?, digest? }');
    if (typeof o.account !== 'string' || !/^\d{12}$/.test(o.account)) throw Errors.invalid(where, 'account', o.account, 'a 12-digit AWS account id');
    if (typeof o.region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d$/.test(o.region)) throw Errors.invalid(where, 'region', o.region, 'an AWS region such as us-east-1');
    return ContainerImage.parse(compose(`${o.account}.dkr.ecr.${o.region}.amazonaws.com`, o.repository, o.tag, o.digest), 'repository', where);
  }

  /** An image in an Artifact Registry Docker repository (`<location>-docker.pkg.dev/<project>/<repo>/<image>`). */
  public static fromArtifactRegistry(o: ArtifactRegistryImageOptions | string): ContainerImage {
    const where = 'ContainerImage.fromArtifactRegistry';
    if (typeof o === 'string') {
      const img = ContainerImage.parse(o, 'image', where);
      if (img.source !== 'artifact-registry') throw Errors.invalid(where, 'image', o, 'an Artifact Registry image: <location>-docker.pkg.dev/<project>/<repository>/<image>[:tag]', 'is not an Artifact Registry image');
      return img;
    }
    if (!o || typeof o !== 'object') throw Errors.missing(where, 'options', 'an image URI or { location, project, repository, image, tag?, digest? }');
    if (typeof o.location !== 'string' || !/^[a-z]+(-[a-z]+\d?)*$/.test(o.location)) throw Errors.invalid(where, 'location', o.location, 'a region (us-central1) or multi-region (us, europe, asia)');
    if (typeof o.project !== 'string' || !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(o.project)) throw Errors.invalid(where, 'project', o.project, 'a GCP project id (6-30 lower-case letters, digits, -)');
    if (typeof o.repository !== 'string' || !/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/.test(o.repository)) throw Errors.invalid(where, 'repository', o.repository, 'an Artifact Registry repository id (lower-case letters, digits, -)');
    return ContainerImage.parse(compose(`${o.location}-docker.pkg.dev`, `${o.project}/${o.repository}/${o.image}`, o.tag, o.digest), 'image', where);
  }

  /** A string or a ContainerImage as a ContainerImage; `where`/`prop` locate errors. Tokens pass unparsed. */
  public static of(x: string | ContainerImage, where: string, prop: string): ContainerImage {
    if (x instanceof ContainerImage) return x;
    return ContainerImage.parse(x, prop, where);
  }

  private static parse(ref: unknown, prop: string, where: string, options: FromRegistryOptions = {}): ContainerImage {
    if (typeof ref !== 'string') throw Errors.invalid(where, prop, ref, ALLOWED);
    checkOptions(where, options);
    if (Token.isUnresolved(ref)) return new ContainerImage(ref, 'registry', undefined, undefined, undefined, undefined, options);
    let rest = ref;
    let digest: string | undefined;
    const at = rest.indexOf('@');
    if (at >= 0) {
      digest = rest.slice(at + 1);
      rest = rest.slice(0, at);
      if (!DIGEST.test(digest)) throw Errors.invalid(where, prop, ref, `${ALLOWED}; the digest must be sha256: and 64 lower-case hex digits`, 'has an invalid digest');
    }
    let tag: string | undefined;
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      tag = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!TAG.test(tag)) throw Errors.invalid(where, prop, ref, `${ALLOWED}; a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -`, 'has an invalid tag');
    }
    const parts = rest.split('/');
    let registry = 'docker.io';
    if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) registry = parts.shift()!;
    if (!HOST.test(registry)) throw Errors.invalid(where, prop, ref, ALLOWED, 'has an invalid registry host');
    // Docker Hub's official images live under library/.
    if (DOCKER_HUB_HOSTS.includes(registry) && parts.length === 1) parts.unshift('library');
    if (!parts.length || parts.some((p) => !PATH_COMPONENT.test(p))) throw Errors.invalid(where, prop, ref, ALLOWED, 'has an invalid repository');
    const repository = parts.join('/');
    if (repository.length > 255) throw Errors.invalid(where, prop, ref, `${ALLOWED}; the repository is at most 255 characters`, 'has a repository too long');
    if (tag === undefined && digest === undefined) tag = 'latest';
    const source: ContainerImageSource = ECR_HOST.test(registry) ? 'ecr' : AR_HOST.test(registry) ? 'artifact-registry' : 'registry';
    return new ContainerImage(ref, source, registry, repository, tag, digest, options);
  }

  /**
   * @param reference the reference as given (a token when unresolved)
   * @param registry host[:port]; docker.io for Docker Hub; undefined when the reference is a token
   */
  private constructor(
    public readonly reference: string,
    public readonly source: ContainerImageSource,
    public readonly registry: string | undefined,
    public readonly repository: string | undefined,
    public readonly tag: string | undefined,
    public readonly digest: string | undefined,
    public readonly options: FromRegistryOptions,
  ) {}

  /** True when the reference is a Terraform token (nothing about it is known at synth). */
  public get isToken(): boolean {
    return this.registry === undefined;
  }

  /** ECR account and region of an `ecr` image. */
  public get ecr(): { readonly account: string; readonly region: string } | undefined {
    const m = this.registry ? ECR_HOST.exec(this.registry) : null;
    return m ? { account: m[1], region: m[2] } : undefined;
  }

  /** The same image under another registry host and repository prefix; tag and digest kept. */
  public rewrite(host: string, prefix?: string): string {
    if (this.isToken) return this.reference;
    return compose(host, prefix ? `${prefix}/${this.repository}` : this.repository!, this.tag, this.digest);
  }

  /** The canonical reference: registry/repository[:tag][@digest]. */
  public toString(): string {
    return this.isToken ? this.reference : compose(this.registry!, this.repository!, this.tag, this.digest);
  }
}

function compose(host: string, repository: string, tag: string | undefined, digest: string | undefined): string {
  return `${host}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
}

function checkOptions(where: string, o: FromRegistryOptions): void {
  if (o === null || typeof o !== 'object') throw Errors.invalid(where, 'options', o, 'an object { awsCredentialSecret?, imagePullSecrets? }');
  const s = o.awsCredentialSecret;
  // AWS: the credential's ARN must match secret:ecr-pullthroughcache/... (CreatePullThroughCacheRule).
  if (s !== undefined && !Token.isUnresolved(s) && (typeof s !== 'string' || !/^ecr-pullthroughcache\/[A-Za-z0-9/_+=.@-]+$/.test(s))) {
    throw Errors.invalid(where, 'awsCredentialSecret', s, 'a Secrets Manager secret name starting with ecr-pullthroughcache/ (AWS requires the prefix for pull-through cache credentials)');
  }
  const p = o.imagePullSecrets;
  if (p !== undefined && (!Array.isArray(p) || p.some((n) => typeof n !== 'string' || (!Token.isUnresolved(n) && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(n))))) {
    throw Errors.invalid(where, 'imagePullSecrets', p, 'a list of Kubernetes Secret names (DNS subdomains)');
  }
}
