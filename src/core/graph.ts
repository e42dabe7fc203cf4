/**
 * Grants between constructs, for the stack picture. No registry: each grant is a GrantFact in the
 * granting construct's metadata (core/facts.ts), so the record travels with the tree and apps share
 * nothing. Grant methods call `grantOnce` (core/grants.ts), which records the fact and makes the
 * grant's id stable.
 */
import { IConstruct } from 'constructs';
import { grantFacts } from './facts';

export interface GrantRecord {
  /** The grantee: who gets access. */
  readonly from: IConstruct;
  /** The construct whose resources are granted. */
  readonly to: IConstruct;
  /** What was granted: read, write, invoke, agent, artifacts-read, artifacts-write, scale ... */
  readonly kind: string;
}

/** Grants recorded on constructs of the tree under `scope`, grantee to owner, in tree order. */
export function recordedGrants(scope: IConstruct): readonly GrantRecord[] {
  return scope.node.findAll().flatMap((owner) => grantFacts(owner)
    .filter((g) => g.granteeConstruct !== undefined)
    .map((g) => ({ from: g.granteeConstruct!, to: owner, kind: g.kind })));
}
