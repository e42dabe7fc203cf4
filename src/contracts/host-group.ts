import type { IConstruct } from 'constructs';

/**
 * How other constructs reach a GPU cluster's group of hosts without its provider resources: what a
 * scheduler resizes and what a monitor names. Plain attributes, so an imported cluster has them too.
 */

/** AWS: the Auto Scaling group of the hosts, and the agent load balancer's CloudWatch dimensions. */
export interface AwsHostGroup {
  readonly kind: 'aws-autoscaling-group';
  /** The group's name: host metrics carry it as the ClusterName dimension. */
  readonly name: string;
  readonly arn: string;
  /** `TargetGroup` / `LoadBalancer` dimensions of AWS/NetworkELB metrics (agent health), when the cluster has its NLB. */
  readonly health?: { readonly targetGroupArnSuffix: string; readonly loadBalancerArnSuffix: string };
}

/** GCP: the regional managed instance group of the hosts. */
export interface GcpHostGroup {
  readonly kind: 'gcp-instance-group-manager';
  /** The group's name: hosts carry it in their mlinfra-cluster label and metrics. */
  readonly name: string;
  readonly project: string;
  readonly region: string;
}

/** Kubernetes: the workload that runs the agent; metrics carry its name as the cluster label. */
export interface KubernetesHostGroup {
  readonly kind: 'kubernetes';
  readonly name: string;
  readonly namespace: string;
}

export type HostGroup = AwsHostGroup | GcpHostGroup | KubernetesHostGroup;

/** An object to keep in a cluster's store (its bucket). */
export interface StoreObjectOptions {
  /** Object key inside the cluster's store. */
  readonly key: string;
  readonly content: string;
  readonly contentType: string;
}

/** What `storeObject` made: the object's URI and the resource (for escape hatches). */
export interface StoredObject {
  /** `s3://bucket/key` or `gs://bucket/key`. */
  readonly uri: string;
  /** The provider resource holding the object, created in the caller's scope. */
  readonly resource: IConstruct;
  /** AWS: the KMS key the object (and the rest of the store) is encrypted with. */
  readonly keyArn?: string;
}
