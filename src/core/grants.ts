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
}

export type GrantPrincipal = AwsPrincipal | GcpPrincipal | KubernetesPrincipal;

/** Anything that can be granted access: a GpuCluster's hosts, a pipeline's scheduler, an endpoint. */
export interface IGrantable {
  readonly grantPrincipal: GrantPrincipal;
}
