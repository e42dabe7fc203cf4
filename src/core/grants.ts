/**
 * Grants: access is granted, never assumed. A grantee exposes a principal for its target; the owner
 * of a resource turns a grant into the least-privilege form its cloud uses.
 */
import { DefaultTokenResolver, StringConcat, Token, Tokenization } from 'cdktf';
import { IConstruct } from 'constructs';
import { Errors } from './errors';
import { GRANT_FACT, GrantFact, grantFacts } from './facts';
import { resourceName, shortHash } from './naming';

/** One IAM statement on exact resources. */
export interface AwsPolicyStatement {
  readonly actions: readonly string[];
  readonly resources: readonly string[];
}

export interface AwsPrincipal {
  readonly kind: 'aws';
  readonly roleArn: string;
  readonly roleName: string;
  /** Adds statements to the grantee's role as one inline policy named after `grantId`. */
  addToPolicy(grantId: string, statements: readonly AwsPolicyStatement[]): void;
}

export interface GcpPrincipal {
  readonly kind: 'gcp';
  readonly email: string;
  /** `serviceAccount:<email>`, as IAM members are written. */
  readonly member: string;
}

export interface KubernetesPrincipal {
  readonly kind: 'kubernetes';
  readonly namespace: string;
  readonly serviceAccountName: string;
  /** Labels that select exactly the grantee's pods, for NetworkPolicy grants. */
  readonly podLabels?: Readonly<Record<string, string>>;
}

export type GrantPrincipal = AwsPrincipal | GcpPrincipal | KubernetesPrincipal;

/** Anything that can be granted access: a GpuCluster's hosts, a pipeline's scheduler, an endpoint. */
export interface IGrantable {
  readonly grantPrincipal: GrantPrincipal;
}

/**
 * The NetworkPolicy peer a grant admits: the grantee's own pods when it names their labels, else
 * pods in its namespace that carry `clientLabel: "true"`.
 */
export function kubernetesPeer(p: KubernetesPrincipal, clientLabel: string): {
  namespaceSelector: { matchLabels: Record<string, string> };
  podSelector: { matchLabels: Record<string, string> };
} {
  return {
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.namespace } },
    podSelector: { matchLabels: p.podLabels ? { ...p.podLabels } : { [clientLabel]: 'true' } },
  };
}

/** A grant made: its stable id, what it opens and to whom (see core/facts.ts GrantFact). */
export type Grant = GrantFact;

function isConstruct(x: unknown): x is IConstruct {
  return typeof x === 'object' && x !== null && 'node' in x && typeof (x as IConstruct).node?.path === 'string';
}

/** Token-free text of a value: Terraform references as `${...}`, stable between synths (token numbers are not). */
function stableText(scope: IConstruct, value: string): string {
  if (!Token.isUnresolved(value)) return value;
  return String(Tokenization.resolve(value, { scope, resolver: new DefaultTokenResolver(new StringConcat()), preparing: false }));
}

/** Who a grantee is, stably: its construct path, else its principal's identity. */
export function granteeKey(scope: IConstruct, grantee: IGrantable): string {
  if (isConstruct(grantee)) return grantee.node.path;
  const p = grantee.grantPrincipal;
  switch (p.kind) {
    case 'aws': return `aws:${stableText(scope, p.roleArn)}`;
    case 'gcp': return `gcp:${stableText(scope, p.member)}`;
    case 'kubernetes': return `kubernetes:${stableText(scope, p.namespace)}/${stableText(scope, p.serviceAccountName)}`;
  }
}

/**
 * Makes one grant of `kind` on `owner`'s resources to `grantee`, once: `apply(id)` creates what the
 * grant needs, named by `id`, which derives from the owner's path, the kind and the grantee (so
 * reordering grant calls renames nothing). A repeated grant returns the first one's record and
 * creates nothing. The record is kept as metadata on `owner`, for the picture.
 */
export function grantOnce(owner: IConstruct, grantee: IGrantable, kind: string, apply: (id: string) => void): Grant {
  const key = granteeKey(owner, grantee);
  const id = `${resourceName(owner, { maxLength: 40 })}-${kind}-${shortHash(key, 8)}`;
  const done = grantFacts(owner).find((g) => g.id === id);
  if (done) return done;
  apply(id);
  const fact: GrantFact = { id, kind, owner: owner.node.path, grantee: key, ...(isConstruct(grantee) ? { granteeConstruct: grantee } : {}) };
  owner.node.addMetadata(GRANT_FACT, fact, { stackTrace: false });
  return fact;
}

/** The grantee's principal when it is on `ownerKind`; else a CROSS_CLOUD_GRANT error. */
export function principalOn<K extends GrantPrincipal['kind']>(where: IConstruct, method: string, grantee: IGrantable, ownerKind: K, owner = 'the construct'):
  Extract<GrantPrincipal, { kind: K }> {
  const p = grantee.grantPrincipal;
  if (p?.kind !== ownerKind) throw Errors.crossCloudGrant(where, method, String(p?.kind), ownerKind, owner);
  return p as Extract<GrantPrincipal, { kind: K }>;
}

/**
 * Records that the resources at `scope`/`id` (a policy and its `-doc`, an IAM member) open `kind` of
 * access arranged outside a grant method: a scheduler's role allowed to resize a group, an endpoint
 * reading a model bucket. The picture labels the edge those resources make with `kind`.
 */
export function recordAccess(scope: IConstruct, id: string, kind: string): void {
  const fact: GrantFact = { id, kind, owner: scope.node.path, grantee: '', path: `${scope.node.path}/${id}` };
  scope.node.addMetadata(GRANT_FACT, fact, { stackTrace: false });
}
