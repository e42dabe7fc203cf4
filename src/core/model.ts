/**
 * A cloud-neutral reference to a trained model: an object-store prefix (or object) a serving
 * container loads. A TrainingPipeline's `model` implements it; users can name any URI.
 */
import { Token } from 'cdktf';
import { IConstruct } from 'constructs';
import { Errors } from './errors';

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
