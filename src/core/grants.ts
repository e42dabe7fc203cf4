/**
 * Grants: access is granted, never assumed. A grantee exposes a principal for its target; the owner
 * of a resource turns a grant into the least-privilege form its cloud uses.
 */

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
