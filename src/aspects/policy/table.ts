import { PolicyRule } from './types';
import { rule as awsDynamodbEncryption } from './rules/aws-dynamodb-encryption';
import { rule as awsDynamodbPitr } from './rules/aws-dynamodb-pitr';
import { rule as awsEbsEncryption } from './rules/aws-ebs-encryption';
import { rule as awsElasticacheEncryption } from './rules/aws-elasticache-encryption';
import { rule as awsIamNoWildcardAction } from './rules/aws-iam-no-wildcard-action';
import { rule as awsIamNoWildcardResource } from './rules/aws-iam-no-wildcard-resource';
import { rule as awsImdsv2 } from './rules/aws-imdsv2';
import { rule as awsKmsKeyRotation } from './rules/aws-kms-key-rotation';
import { rule as awsS3Encryption } from './rules/aws-s3-encryption';
import { rule as awsS3PublicAccessBlock } from './rules/aws-s3-public-access-block';
import { rule as awsS3TlsOnly } from './rules/aws-s3-tls-only';
import { rule as awsS3Versioning } from './rules/aws-s3-versioning';
import { rule as awsSagemakerEncryption } from './rules/aws-sagemaker-encryption';
import { rule as awsSecretsKms } from './rules/aws-secrets-kms';
import { rule as awsSgOpenIngress } from './rules/aws-sg-open-ingress';
import { rule as awsSnsEncryption } from './rules/aws-sns-encryption';
import { rule as gcpBucketPublicAccessPrevention } from './rules/gcp-bucket-public-access-prevention';
import { rule as gcpBucketUniformAccess } from './rules/gcp-bucket-uniform-access';
import { rule as gcpFirewallOpenIngress } from './rules/gcp-firewall-open-ingress';
import { rule as gcpIamNoAllUsers } from './rules/gcp-iam-no-all-users';
import { rule as gcpInstanceNoPublicIp } from './rules/gcp-instance-no-public-ip';
import { rule as gcpInstanceShieldedVm } from './rules/gcp-instance-shielded-vm';
import { rule as k8sGpuNodeTaint } from './rules/k8s-gpu-node-taint';
import { rule as k8sGpuToleration } from './rules/k8s-gpu-toleration';
import { rule as k8sNetworkPolicy } from './rules/k8s-network-policy';
import { rule as k8sNoPrivilegeEscalation } from './rules/k8s-no-privilege-escalation';
import { rule as k8sPodNonRoot } from './rules/k8s-pod-non-root';
import { rule as k8sPodResourceLimits } from './rules/k8s-pod-resource-limits';
import { rule as k8sSecretsNotInEnv } from './rules/k8s-secrets-not-in-env';
import { rule as k8sServiceAccountToken } from './rules/k8s-service-account-token';

/** Every rule of the package, one per file under rules/: `PolicyPack.default()` is built from this table. */
export const POLICY_RULES: readonly PolicyRule[] = [
  awsDynamodbEncryption,
  awsDynamodbPitr,
  awsEbsEncryption,
  awsElasticacheEncryption,
  awsIamNoWildcardAction,
  awsIamNoWildcardResource,
  awsImdsv2,
  awsKmsKeyRotation,
  awsS3Encryption,
  awsS3PublicAccessBlock,
  awsS3TlsOnly,
  awsS3Versioning,
  awsSagemakerEncryption,
  awsSecretsKms,
  awsSgOpenIngress,
  awsSnsEncryption,
  gcpBucketPublicAccessPrevention,
  gcpBucketUniformAccess,
  gcpFirewallOpenIngress,
  gcpIamNoAllUsers,
  gcpInstanceNoPublicIp,
  gcpInstanceShieldedVm,
  k8sGpuNodeTaint,
  k8sGpuToleration,
  k8sNetworkPolicy,
  k8sNoPrivilegeEscalation,
  k8sPodNonRoot,
  k8sPodResourceLimits,
  k8sSecretsNotInEnv,
  k8sServiceAccountToken,
];
