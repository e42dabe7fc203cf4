/**
 * Grants between constructs, for the stack picture. No registry: each grant is a GrantFact in the
 * granting construct's metadata (core/facts.ts), so the record travels with the tree and apps share
 * nothing. New code calls `grantOnce` (core/grants.ts), which records the fact and makes the grant's
 * id stable; `recordGrant` remains for grant methods that still name their resources themselves.
 */
import { IConstruct } from 'constructs';
import { GRANT_FACT, GrantFact, grantFacts } from './facts';

export interface GrantRecord {
  /** The grantee: who gets access. */
  readonly from: IConstruct;
  /** The construct whose resources are granted. */
  readonly to: IConstruct;
  /** What was granted: read, write, invoke, agent, artifacts-read, artifacts-write, scale ... */
  readonly kind: string;
}

function isConstruct(x: unknown): x is IConstruct {
  return typeof x === 'object' && x !== null && 'node' in x && typeof (x as IConstruct).node?.path === 'string';
}

/**
 * Records that `grantee` was granted `kind` on `owner`'s resources; grantees that are not constructs are
 * skipped. Prefer `grantOnce`, which also names the grant's resources stably.
 */
export function recordGrant(owner: IConstruct, grantee: unknown, kind: string): void {
  if (!isConstruct(grantee)) return;
  const fact: GrantFact = { id: '', kind, owner: owner.node.path, grantee: grantee.node.path, granteeConstruct: grantee };
  owner.node.addMetadata(GRANT_FACT, fact, { stackTrace: false });
}

/** Grants recorded on constructs of the tree under `scope`, grantee to owner, in tree order. */
export function recordedGrants(scope: IConstruct): readonly GrantRecord[] {
  return scope.node.findAll().flatMap((owner) => grantFacts(owner)
    .filter((g) => g.granteeConstruct !== undefined)
    .map((g) => ({ from: g.granteeConstruct!, to: owner, kind: g.kind })));
}
