/**
 * ModelEndpoint on GCP, images outside Artifact Registry: Cloud Run pulls from Artifact Registry,
 * Container Registry and Docker Hub only (Cloud Run "Deploying container images"), so an image from
 * another supported upstream, and Docker Hub too (rate limits), is served through an Artifact
 * Registry remote repository in the service's region: `<region>-docker.pkg.dev/<project>/<repo>/<path>`.
 * Sources: Artifact Registry "Create remote repositories" (Docker: Docker Hub preset or a custom
 * upstream URI such as https://ghcr.io); google_artifact_registry_repository (mode
 * REMOTE_REPOSITORY, remote_repository_config.docker_repository.public_repository | custom_repository.uri).
 * Cloud Run's service agent reads Artifact Registry in its own project without an extra grant.
 */
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { ArtifactRegistryRepository } from '@cdktf/provider-google/lib/artifact-registry-repository';
import { ContainerImage, SUPPORTED_UPSTREAMS, upstreamOf } from '../../core/container-image';
import { Errors } from '../../core/errors';
import { fitName, shortHash } from '../../core/naming';
import { GcpTarget } from '../../core/targets';

/** Registries Cloud Run pulls from itself (used as is). */
const CLOUD_RUN_NATIVE = /^([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)$/;

export interface GcpImagePlan {
  readonly uri: string;
  readonly remote?: { readonly repositoryId: string; readonly upstream: { readonly publicRepository: 'DOCKER_HUB' } | { readonly customUri: string }; readonly name: string };
}

/** Checks that the image can be pulled by Cloud Run; throws before any resource exists. */
export function planGcpImage(where: Construct, img: ContainerImage): GcpImagePlan {
  if (img.isToken || CLOUD_RUN_NATIVE.test(img.registry!)) return { uri: img.reference };
  const upstream = upstreamOf(img.registry!);
  if (!upstream?.gcp) {
    throw Errors.notOffered(where, 'image', img.reference,
      `${img.registry} cannot be pulled by Cloud Run and no Artifact Registry remote repository is set up for it here`,
      `an Artifact Registry or Container Registry image, or one from ${SUPPORTED_UPSTREAMS} (mirrored through a remote repository)`);
  }
  // Per stack: repository ids are unique per project and location, and two stacks may share both.
  const repositoryId = `mlinfra-${fitName(upstream.id, 40)}-${shortHash(TerraformStack.of(where).node.path, 6)}`;
  return { uri: '', remote: { repositoryId, upstream: upstream.gcp, name: upstream.name } };
}

/** Creates (once per stack, region and upstream) the remote repository and returns the rewritten URI. */
export function buildGcpImage(scope: Construct, target: GcpTarget, img: ContainerImage, plan: GcpImagePlan): string {
  const r = plan.remote;
  if (!r) return plan.uri;
  const stack = TerraformStack.of(scope);
  const id = `mlinfra-ar-remote-${r.repositoryId}-${target.node.id}`;
  let repo = stack.node.tryFindChild(id) as ArtifactRegistryRepository | undefined;
  if (!repo) {
    target.requireApis('artifactregistry.googleapis.com');
    const docker = 'publicRepository' in r.upstream ? { publicRepository: r.upstream.publicRepository } : { customRepository: { uri: r.upstream.customUri } };
    repo = new ArtifactRegistryRepository(stack, id, {
      provider: target.provider, project: target.project, location: target.region, repositoryId: r.repositoryId,
      format: 'DOCKER', mode: 'REMOTE_REPOSITORY', description: `mlinfra: pull-through cache of ${r.name}`,
      remoteRepositoryConfig: { description: r.name, dockerRepository: docker },
    });
  }
  return img.rewrite(`${repo.location}-docker.pkg.dev/${repo.project}/${repo.repositoryId}`);
}
