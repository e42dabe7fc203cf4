/**
 * A cloud-neutral reference to a trained model: an object-store prefix (or object) a serving
 * container loads. A TrainingPipeline's `model` implements it; users can name any URI.
 */
import { Token } from 'cdktf';
import { IConstruct } from 'constructs';
import type { TargetKind } from './accelerators';
import { Errors } from './errors';
import type { IGrantable } from './grants';
import type { Target } from './targets';

/** A model artifact: where the serving container finds the model. */
export interface IModelArtifact {
  /**
   * `s3://bucket/prefix` or `gs://bucket/prefix` (a prefix or one object such as `model.tar.gz`).
   * The bucket and prefix may be Terraform references; the scheme must be literal.
   */
  readonly uri: string;
}

export type ModelUriScheme = 's3' | 'gs';

export interface ParsedModelUri {
  readonly scheme: ModelUriScheme;
  /** Bucket name (may be a Terraform reference). */
  readonly bucket: string;
  /** Key prefix without leading or trailing `/` (may hold Terraform references). */
  readonly prefix: string;
}

const ALLOWED = 's3://bucket/prefix or gs://bucket/prefix (a bucket and a non-empty key prefix)';
// Bucket rules shared closely enough by S3 and GCS: 3-63 lower-case letters, digits, dots, dashes.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const TOKEN_PART = /\$\{[^}]*\}/;

/**
 * Splits a model URI into scheme, bucket and prefix, or throws naming `where` and `prop`.
 * Terraform references are accepted in the bucket and prefix, not in the scheme.
 */
export function parseModelUri(uri: unknown, where: string | IConstruct = 'ModelArtifact.fromUri', prop = 'uri'): ParsedModelUri {
  if (typeof uri !== 'string' || uri.length === 0) throw Errors.invalid(where, prop, uri, ALLOWED);
  const m = /^(s3|gs):\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!m) {
    const problem = Token.isUnresolved(uri) && !/^(s3|gs):\/\//.test(uri)
      ? 'must start with a literal s3:// or gs:// (a whole-URI reference hides the cloud)'
      : 'is not an s3:// or gs:// model URI';
    throw Errors.invalid(where, prop, uri, ALLOWED, problem);
  }
  const [, scheme, bucket, rest] = m;
  if (!TOKEN_PART.test(bucket) && !BUCKET.test(bucket)) {
    throw Errors.invalid(where, prop, uri, `${ALLOWED}; bucket names are 3-63 lower-case letters, digits, dots or dashes`, 'names an invalid bucket');
  }
  const prefix = rest.replace(/^\/+|\/+$/g, '');
  if (prefix.length === 0) {
    throw Errors.invalid(where, prop, uri, `${ALLOWED}: serving from a whole bucket would grant read on all of it`, 'has no key prefix');
  }
  if (/\s|\*|\?/.test(prefix.replace(new RegExp(TOKEN_PART.source, 'g'), ''))) {
    throw Errors.invalid(where, prop, uri, `${ALLOWED}, without spaces or wildcards`, 'has spaces or wildcards in its prefix');
  }
  return { scheme: scheme as ModelUriScheme, bucket, prefix };
}

/** Model artifacts from a URI. */
export class ModelArtifact {
  /** A model at `s3://bucket/prefix` or `gs://bucket/prefix`; validated now, not at deploy time. */
  public static fromUri(uri: string): IModelArtifact {
    parseModelUri(uri, 'ModelArtifact.fromUri', 'uri');
    return { uri };
  }

  private constructor() {}
}

/** The object a registry keeps for a ModelEndpoint (`models/endpoints/<name>.json`), as its store made it. */
export interface RegistryObject {
  readonly uri: string;
  /** AWS: the KMS key the store encrypts with (the serving role decrypts model versions with it). */
  readonly keyArn?: string;
}

/** What a ModelRegistry needs from the cluster whose store holds it: plain attributes and capabilities. */
export interface RegistryStore extends IGrantable {
  readonly target: Target;
  readonly artifactsUri: string;
  storeObject?(scope: IConstruct, id: string, options: { key: string; content: string; contentType: string }): { uri: string; keyArn?: string };
}

/**
 * A pipeline's model registry (`pipeline.model`): versions under `<artifacts>/models/versions/v<N>/`,
 * the pointer in `models/registry.json`, and one record per serving endpoint in
 * `models/endpoints/<name>.json`, which a promotion reads to roll the version out. `uri` is the versions
 * prefix: every version a serving identity may load.
 */
export interface IModelRegistry extends IModelArtifact {
  readonly kind: 'model-registry';
  /** The pipeline's artifacts root (`s3://`, `gs://`, or `file://` on single-node Kubernetes). */
  readonly artifactsUri: string;
  readonly pipelineName: string;
  /** The target of the cluster that runs promotions, and so the rollouts. */
  readonly targetKind: TargetKind;
  /** The hosts that promote: they get the rollout grants. */
  readonly rolloutHosts: IGrantable;
  /** Keeps `models/endpoints/<name>.json` in the store. Absent where Terraform cannot write the store (Kubernetes). */
  storeEndpointRecord?(scope: IConstruct, id: string, endpointName: string, content: string): RegistryObject;
}

/** True for `pipeline.model`, false for a plain artifact or URI. */
export function isModelRegistry(x: unknown): x is IModelRegistry {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'model-registry';
}

/** The registry of the pipeline `pipelineName` whose artifacts root is `artifactsUri`, kept in `store`'s bucket. */
export function modelRegistry(pipelineName: string, artifactsUri: string, store: RegistryStore): IModelRegistry {
  const root = artifactsUri.replace(/\/+$/, '');
  const storeRoot = store.artifactsUri.replace(/\/+$/, '');
  // The record is written through the cluster's store: only under its bucket (a custom `artifacts` elsewhere
  // cannot), and not on Kubernetes, whose stack has no provider for the object store.
  const inStore = root.startsWith(`${storeRoot}/`) && !!store.storeObject && store.target.kind !== 'kubernetes';
  const keyOf = (rel: string) => `${root.slice(storeRoot.length + 1)}/${rel}`;
  return {
    kind: 'model-registry', uri: `${root}/models/versions`, artifactsUri: root, pipelineName, targetKind: store.target.kind,
    rolloutHosts: store,
    ...(inStore ? {
      storeEndpointRecord: (scope: IConstruct, id: string, endpointName: string, content: string) =>
        store.storeObject!(scope, id, { key: keyOf(`models/endpoints/${endpointName}.json`), content, contentType: 'application/json' }),
    } : {}),
  };
}
