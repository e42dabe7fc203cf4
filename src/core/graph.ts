/**
 * A record of grants between constructs, for the stack picture: each `grant*` method calls
 * `recordGrant(this, grantee, kind)`. Kept per construct tree (keyed by its root), so apps do not share it.
 */
import { IConstruct } from 'constructs';

export interface GrantRecord {
  /** The grantee: who gets access. */
  readonly from: IConstruct;
  /** The construct whose resources are granted. */
  readonly to: IConstruct;
  /** What was granted: read, write, invoke, agent, artifacts-read, artifacts-write, scale ... */
  readonly kind: string;
}

const byRoot = new WeakMap<IConstruct, GrantRecord[]>();

function isConstruct(x: unknown): x is IConstruct {
  return typeof x === 'object' && x !== null && 'node' in x && typeof (x as IConstruct).node?.path === 'string';
}

/** Records that `grantee` was granted `kind` on `owner`'s resources; grantees that are not constructs are skipped. */
export function recordGrant(owner: IConstruct, grantee: unknown, kind: string): void {
  if (!isConstruct(grantee)) return;
  const root = owner.node.root;
  const list = byRoot.get(root) ?? [];
  list.push({ from: grantee, to: owner, kind });
  byRoot.set(root, list);
}

/** Grants recorded in the tree `scope` belongs to. */
export function recordedGrants(scope: IConstruct): readonly GrantRecord[] {
  return byRoot.get(scope.node.root) ?? [];
}
