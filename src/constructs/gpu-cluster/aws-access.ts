/** GpuCluster on AWS: what grants, the store and schedules use, for a created cluster and an imported one. */
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument } from '@cdktf/provider-aws/lib/data-aws-iam-policy-document';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { S3Object } from '@cdktf/provider-aws/lib/s3-object';
import { Errors } from '../../core/errors';
import { AwsHostGroup, StoredObject, StoreObjectOptions } from '../../contracts/host-group';
import { AwsPolicyStatement, AwsPrincipal, IGrantable } from '../../core/grants';
import { AwsTarget, Target } from '../../core/targets';
import { enqueueStatements } from './aws-queue';
import { awsStatements, GpuClusterBackend } from './plan';
import type { ClusterJobQueue, GpuClusterAttributes } from './props';

export type Statement = AwsPolicyStatement & { readonly effect?: 'Allow' | 'Deny' };

/** An IAM policy document from statements, as a data source (Terraform renders the JSON). */
export function policyDocument(scope: Construct, id: string, provider: AwsTarget['provider'], statements: readonly Statement[]): DataAwsIamPolicyDocument {
  return new DataAwsIamPolicyDocument(scope, id, {
    provider,
    statement: statements.map((s) => ({ effect: s.effect ?? 'Allow', actions: [...s.actions], resources: [...s.resources] })),
  });
}

/** Keys hosts may read but never write: the agent bundle and pipeline specs (`pipelines/<name>/spec-<hash>.json`). */
export function protectedPrefixes(bucketArn: string): string[] {
  return [`${bucketArn}/agent/*`, `${bucketArn}/pipelines/*/spec-*.json`];
}

/** The AWS principal of a role: each grant becomes one inline policy on exact ARNs. */
export function awsRolePrincipal(owner: Construct, target: AwsTarget, role: { readonly arn: string; readonly name: string; readonly id: string }): AwsPrincipal {
  let grants: Construct | undefined;
  return {
    kind: 'aws',
    roleArn: role.arn,
    roleName: role.name,
    addToPolicy(grantId, statements) {
      grants ??= new Construct(owner, 'granted');
      const doc = policyDocument(grants, `${grantId}-doc`, target.provider, statements);
      new IamRolePolicy(grants, grantId, { provider: target.provider, name: grantId, role: role.id, policy: doc.json });
    },
  };
}

/** What grants, the store and schedulers use of a cluster on AWS: ARNs and names, created or imported. */
export interface AwsClusterRefs {
  readonly bucketName: string;
  readonly bucketArn: string;
  /** The bucket as objects name it: after its versioning, when this app created it. */
  readonly objectBucket: string;
  readonly keyArn: string;
  readonly tokenSecretArn: string;
  readonly hostGroup: AwsHostGroup;
  /** The jobs queue (SQS), when the cluster has one: created here, or named by an imported cluster's attributes. */
  readonly jobQueue?: Extract<ClusterJobQueue, { kind: 'sqs' }>;
}

/** The cluster's capabilities on AWS: least-privilege grants on exact ARNs, objects in its bucket under its key. */
export function awsCapabilities(cluster: Construct, target: AwsTarget, r: AwsClusterRefs) {
  const grantTo = (grantee: IGrantable, grantId: string, statements: AwsPolicyStatement[], method: string) =>
    awsStatements(cluster, grantee, grantId, statements, method);
  return {
    hostGroup: r.hostGroup,
    grantAgentAccess: (g: IGrantable, id: string) => grantTo(g, id, [
      { actions: ['secretsmanager:GetSecretValue'], resources: [r.tokenSecretArn] },
      { actions: ['kms:Decrypt'], resources: [r.keyArn] },
    ], 'grantAgentAccess'),
    grantArtifactsRead: (g: IGrantable, id: string) => grantTo(g, id, [
      { actions: ['s3:ListBucket'], resources: [r.bucketArn] },
      { actions: ['s3:GetObject'], resources: [`${r.bucketArn}/*`] },
      { actions: ['kms:Decrypt'], resources: [r.keyArn] },
    ], 'grantArtifactsRead'),
    grantArtifactsWrite: (g: IGrantable, id: string) => grantTo(g, id, [
      { actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [`${r.bucketArn}/*`] },
      { actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [r.keyArn] },
    ], 'grantArtifactsWrite'),
    grantScale: (g: IGrantable, id: string) => grantTo(g, id, [
      { actions: ['autoscaling:SetDesiredCapacity', 'autoscaling:UpdateAutoScalingGroup'], resources: [r.hostGroup.arn] },
    ], 'grantScale'),
    jobQueue: r.jobQueue,
    ...(r.jobQueue ? { grantEnqueue: (g: IGrantable, id: string) => grantTo(g, id, enqueueStatements(r.jobQueue!.arn, r.jobQueue!.keyArn), 'grantEnqueue') } : {}),
    // Encrypted with the cluster's key like its other objects.
    storeObject: (scope: Construct, id: string, o: StoreObjectOptions): StoredObject => ({
      uri: `s3://${r.bucketName}/${o.key}`,
      keyArn: r.keyArn,
      resource: new S3Object(scope, id, {
        provider: target.provider, bucket: r.objectBucket, key: o.key, content: o.content, contentType: o.contentType,
        kmsKeyId: r.keyArn, serverSideEncryption: 'aws:kms',
      }),
    }),
  };
}

/** An existing cluster on AWS, from its attributes: grants, the store and schedules on its ARNs; nothing created. */
export function importAwsGpuCluster(scope: Construct, target: Target, attrs: GpuClusterAttributes): GpuClusterBackend {
  const t = target as AwsTarget;
  const a = attrs.aws;
  if (!a) throw Errors.missing(scope, 'aws', 'the host role, KMS key and Auto Scaling group ARN of the cluster (aws: { hostRoleArn, hostRoleName, kmsKeyArn, autoscalingGroupArn })');
  const health = a.targetGroupArnSuffix && a.loadBalancerArnSuffix
    ? { targetGroupArnSuffix: a.targetGroupArnSuffix, loadBalancerArnSuffix: a.loadBalancerArnSuffix } : undefined;
  const secret = attrs.agentTokenSecret;
  if (secret?.store !== 'aws-secrets-manager') {
    throw Errors.invalid(scope, 'agentTokenSecret', secret?.store, "an aws-secrets-manager reference ({ store: 'aws-secrets-manager', arn, name })");
  }
  const bucketArn = `arn:${t.partition}:s3:::${attrs.bucketName}`;
  return {
    agentUrl: attrs.agentUrl,
    agentTokenSecret: attrs.agentTokenSecret,
    artifactsUri: `s3://${attrs.bucketName}`,
    grantPrincipal: awsRolePrincipal(scope, t, { arn: a.hostRoleArn, name: a.hostRoleName, id: a.hostRoleName }),
    ...awsCapabilities(scope, t, {
      bucketName: attrs.bucketName, bucketArn, objectBucket: attrs.bucketName, keyArn: a.kmsKeyArn,
      tokenSecretArn: secret.arn,
      hostGroup: { kind: 'aws-autoscaling-group', name: attrs.groupName, arn: a.autoscalingGroupArn, ...(health ? { health } : {}) },
      // The queue is encrypted with the cluster's key, like everything else a GpuCluster stores.
      ...(a.jobsQueueUrl && a.jobsQueueArn ? { jobQueue: { kind: 'sqs' as const, url: a.jobsQueueUrl, arn: a.jobsQueueArn, keyArn: a.kmsKeyArn } } : {}),
    }),
  };
}

