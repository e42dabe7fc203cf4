/**
 * A Cloud Run endpoint's serving config as Terraform last set it (its record's `image` and `template`),
 * reduced to a short digest. The rollout names revisions `<service>-<version>-<digest>` and notes the
 * digest beside the served version: a `cdktf deploy` that changes the template (memory, env, scaling)
 * reaches serving at the next sync, though Terraform ignores the live template (the rollouts own it).
 * A module of its own: the sync reads it without loading the Cloud Run rollout (and its SDK). Keys
 * are sorted (canonicalJson), so the digest does not depend on the order Terraform wrote them in.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../contracts/pipeline-spec';

/** 8 hex digits of the config's SHA-256; undefined for a record without a template (written before records carried one). */
export function cloudRunConfigDigest(rec: { readonly image?: string; readonly template?: object }): string | undefined {
  if (!rec.template) return undefined;
  return createHash('sha256').update(canonicalJson({ image: rec.image ?? null, template: rec.template })).digest('hex').slice(0, 8);
}
