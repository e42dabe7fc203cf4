/**
 * Facts a backend records about what it built, for the cost report and the picture. The aspects read
 * these from construct metadata instead of reading escape hatches or parsing construct ids, so a
 * target's rules (prices included) stay in its backend. Metadata is not written to the synthesized
 * JSON: recording facts never changes a stack's output.
 */
import { IConstruct } from 'constructs';

/** Metadata type of a cost fact. */
export const COST_FACT = 'mlinfra:cost';
/** Metadata type of an edge fact. */
export const EDGE_FACT = 'mlinfra:edge';
/** Metadata type of a grant record (core/grants.ts writes it on the granting construct). */
export const GRANT_FACT = 'mlinfra:grant';

/** One priced item: monthly = unitUsd x quantity x hours (hours is 1 for monthly prices). */
export interface CostFact {
  readonly item: string;
  readonly unitUsd: number;
  readonly per: 'hour' | 'month';
  readonly quantity: { readonly min: number; readonly max: number };
  /** The item can run on spot: the report adds the target's spot share. @default false */
  readonly spot?: boolean;
  /** Where the price comes from (a URL or the catalog entry). */
  readonly source: string;
  /** When the price was read (YYYY-MM-DD), or '-'. */
  readonly asOf: string;
  /** The figure is derived, not listed. @default false */
  readonly estimate?: boolean;
  readonly note?: string;
}

/** An edge of the picture that the tree alone does not show. */
export interface EdgeFact {
  readonly to: IConstruct;
  readonly kind: 'uses' | 'watches' | 'grant';
  /** Detail shown on the edge (a grant's kind, 'runs on', ...). */
  readonly label?: string;
}

/** Records a priced item owned by `owner` (one of our constructs). */
export function recordCost(owner: IConstruct, fact: CostFact): void {
  owner.node.addMetadata(COST_FACT, fact);
}

/** Records an edge from `from` to `fact.to`. */
export function recordEdge(from: IConstruct, fact: EdgeFact): void {
  from.node.addMetadata(EDGE_FACT, fact);
}

/** The cost facts recorded on `c` itself, in the order recorded. */
export function costFacts(c: IConstruct): readonly CostFact[] {
  return c.node.metadata.filter((m) => m.type === COST_FACT).map((m) => m.data as CostFact);
}

/** The edge facts recorded on `c` itself, in the order recorded. */
export function edgeFacts(c: IConstruct): readonly EdgeFact[] {
  return c.node.metadata.filter((m) => m.type === EDGE_FACT).map((m) => m.data as EdgeFact);
}

/**
 * A grant as recorded on the construct whose resources it opens. `id` names the resources the grant
 * created (a policy, an IAM member, a RoleBinding): it derives from the owner, the kind and the
 * grantee, never from the order of calls.
 */
export interface GrantFact {
  /** The id the grant's resources are named with. */
  readonly id: string;
  /** What was granted: read, write, invoke, agent, artifacts-read, artifacts-write, scale ... */
  readonly kind: string;
  /** Path of the construct whose resources are granted. */
  readonly owner: string;
  /** Path of the grantee construct, or its principal's identity when it is no construct. */
  readonly grantee: string;
  /** The grantee, when it is a construct. */
  readonly granteeConstruct?: IConstruct;
  /**
   * Path of the construct the grant's resources are named under, when `id` alone is not unique in the
   * stack (access a construct arranges itself: `recordAccess`).
   */
  readonly path?: string;
}

/** The grants recorded on `c` (the granting construct), in the order made. */
export function grantFacts(c: IConstruct): readonly GrantFact[] {
  return c.node.metadata.filter((m) => m.type === GRANT_FACT).map((m) => m.data as GrantFact);
}
