/**
 * FeatureStore on AWS: S3 + Glue (Athena) offline store, DynamoDB or ElastiCache Redis online
 * store, the registry in the offline bucket, one KMS key for all of it.
 */
import { Lazy, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AthenaWorkgroup } from '@cdktf/provider-aws/lib/athena-workgroup';
import { DynamodbTable } from '@cdktf/provider-aws/lib/dynamodb-table';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { ElasticacheSubnetGroup } from '@cdktf/provider-aws/lib/elasticache-subnet-group';
import { GlueCatalogDatabase } from '@cdktf/provider-aws/lib/glue-catalog-database';
import { GlueCatalogTable } from '@cdktf/provider-aws/lib/glue-catalog-table';
import { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule';
import { AwsPolicyStatement, IGrantable } from '../../core/grants';
import { Errors } from '../../core/errors';
import { generatedSecret } from '../../core/secrets';
import { privateBucket } from '../../core/aws-bucket';
import { AwsTarget } from '../../core/targets';
import { dynamodbTableName, glueColumns, REDIS_PASSWORD_REF } from './feast';
import type { FeatureStoreProps } from './index';
import { FeatureStoreBackend, FeatureStorePlan, FeatureStoreTargetBackend, FeatureView, principalOn, refuseUnless } from './types';

export const REDIS_PORT = 6379;
/** Attribute the online tables expire items by. Feast does not write it; writers that set it get expiry. */
export const DYNAMODB_TTL_ATTRIBUTE = 'expires_at';
/** Feast's temporary entity tables (athena.py: `offline_utils.get_temp_entity_table_name()`). */
export const FEAST_ENTITY_TABLE_PREFIX = 'feast_entity_df_';

/** Prefix under the offline bucket where Athena (Feast's offline store) stages query results. */
export const ATHENA_STAGING_PREFIX = 'athena-staging';

export interface AwsFeatureStoreResources {
  readonly key: KmsKey;
  readonly bucket: S3Bucket;
  readonly database: GlueCatalogDatabase;
  /** Athena workgroup Feast's offline store queries in (encrypted results in the staging prefix). */
  readonly workgroup: AthenaWorkgroup;
  /** Glue table per view name. */
  readonly glueTables: Readonly<Record<string, GlueCatalogTable>>;
  /** DynamoDB table per view name (online: 'dynamodb'). */
  readonly dynamodbTables: Readonly<Record<string, DynamodbTable>>;
  /** ElastiCache Redis and its surroundings (online: 'redis'). */
  readonly redis?: {
    readonly replicationGroup: ElasticacheReplicationGroup;
    readonly subnetGroup: ElasticacheSubnetGroup;
    readonly securityGroup: SecurityGroup;
    readonly passwordSecret: SecretsmanagerSecret;
  };
}

/** What the AWS backend resolved from the props. */
interface AwsFeatureStorePlan extends FeatureStorePlan {
  readonly redisNodeType: string;
}

/** FeatureStore on AWS: S3 + Glue + Athena offline, DynamoDB or ElastiCache Redis online. */
export const AWS_FEATURE_STORE: FeatureStoreTargetBackend<AwsTarget> = {
  online: ['dynamodb', 'redis'],
  build(store, target, props, plan) {
    return buildAwsFeatureStore(store, target, { ...plan, redisNodeType: checkAws(store, props, plan) });
  },
};

/** The AWS rules: checked before anything is created. Returns the ElastiCache node type. */
function checkAws(store: Construct, props: FeatureStoreProps, plan: FeatureStorePlan): string {
  refuseUnless(store, props, 'redisNodeType', plan.online === 'redis', "aws targets with online: 'redis'", 'aws', plan.online);
  const redisNodeType = props.redisNodeType ?? 'cache.t4g.medium';
  if (!Token.isUnresolved(redisNodeType) && !/^cache\.[a-z0-9]+\.[a-z0-9]+$/.test(redisNodeType)) {
    throw Errors.invalid(store, 'redisNodeType', redisNodeType, 'an ElastiCache node type such as cache.r7g.large');
  }
  return redisNodeType;
}

function buildAwsFeatureStore(store: Construct, target: AwsTarget, plan: AwsFeatureStorePlan): FeatureStoreBackend {
  const provider = target.provider;
  const region = target.region;
  const arn = (service: string, resource: string) => `arn:${target.partition}:${service}:${region}:${target.accountId}:${resource}`;

  // ---- offline: one encrypted, private, versioned bucket (history, registry, Athena staging)
  const offline = new Construct(store, 'offline');
  const key = new KmsKey(offline, 'key', {
    provider, description: `${store.node.path}: feature store (offline bucket, online tables, Redis)`, enableKeyRotation: true, deletionWindowInDays: 30,
  });
  new KmsAlias(offline, 'key-alias', { provider, name: `alias/mlinfra/${plan.name}`, targetKeyId: key.keyId });
  // Versioned: a bad `feast apply` or materialization can be rolled back (registry.db is one object).
  const bucket = privateBucket(offline, {
    provider, id: 'bucket', name: `${plan.name}-${target.accountId}`, kmsKeyArn: key.arn,
    // Query results and temporary entity tables: scratch, not history.
    extraLifecycleRules: [{ id: 'expire-athena-staging', status: 'Enabled', filter: [{ prefix: `${ATHENA_STAGING_PREFIX}/` }], expiration: [{ days: 7 }] }],
  });
  const databaseName = plan.name.replace(/-/g, '_');
  const database = new GlueCatalogDatabase(offline, 'database', {
    provider, name: databaseName, description: `${store.node.path}: Feast project ${plan.project}`,
    locationUri: `s3://${bucket.bucket}/features/`,
  });
  const offlineUri = `s3://${bucket.bucket}`;
  const registryUri = `${offlineUri}/registry.db`;
  // Feast's Athena offline store requires a workgroup (no default). Ours enforces encrypted results in
  // the staging prefix, whatever a client asks for. force_destroy: it holds only query history.
  const workgroup = new AthenaWorkgroup(offline, 'workgroup', {
    provider, name: plan.name, description: `${store.node.path}: Feast offline store queries`, forceDestroy: true,
    configuration: {
      enforceWorkgroupConfiguration: true, publishCloudwatchMetricsEnabled: true,
      resultConfiguration: {
        outputLocation: `${offlineUri}/${ATHENA_STAGING_PREFIX}/`,
        encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKeyArn: key.arn },
      },
    },
  });

  // ---- online
  const online = new Construct(store, 'online');
  let redis: AwsFeatureStoreResources['redis'];
  if (plan.online === 'redis') {
    const subnetGroup = new ElasticacheSubnetGroup(online, 'subnet-group', {
      provider, name: plan.name, subnetIds: target.subnetIds, description: `${store.node.path}: online store`,
    });
    const securityGroup = new SecurityGroup(online, 'security-group', {
      provider, name: `${plan.name}-redis`, vpcId: target.vpcId, description: 'Feast online store (Redis)',
    });
    new VpcSecurityGroupIngressRule(online, 'from-vpc', {
      provider, securityGroupId: securityGroup.id, ipProtocol: 'tcp', fromPort: REDIS_PORT, toPort: REDIS_PORT, cidrIpv4: target.vpcCidr, description: 'Redis clients in the VPC',
    });
    const password = generatedSecret(online, 'password');
    const passwordSecret = new SecretsmanagerSecret(online, 'password-secret', {
      // No recovery window: Terraform generates the value again, and a fixed name pending deletion would fail a re-apply.
      provider, name: `mlinfra/${plan.name}/redis-password`, kmsKeyId: key.arn, recoveryWindowInDays: 0,
      description: `${store.node.path}: Redis AUTH token of the Feast online store`,
    });
    new SecretsmanagerSecretVersion(online, 'password-value', { provider, secretId: passwordSecret.id, secretString: password.result });
    const replicationGroup = new ElasticacheReplicationGroup(online, 'redis', {
      provider, replicationGroupId: plan.name, description: `${store.node.path}: Feast online store`,
      engine: 'redis', engineVersion: '7.1', nodeType: plan.redisNodeType, port: REDIS_PORT,
      // Two nodes in two zones with failover: the serving path must survive a zone.
      numCacheClusters: 2, automaticFailoverEnabled: true, multiAzEnabled: true,
      subnetGroupName: subnetGroup.name, securityGroupIds: [securityGroup.id],
      atRestEncryptionEnabled: 'true', kmsKeyId: key.arn, transitEncryptionEnabled: true,
      // AUTH requires TLS; the token must reach ElastiCache itself (it also lives in Secrets Manager for clients).
      authToken: password.result,
      snapshotRetentionLimit: 1, autoMinorVersionUpgrade: 'true',
    });
    redis = { replicationGroup, subnetGroup, securityGroup, passwordSecret };
  }
  const redisEndpoint = redis ? `${redis.replicationGroup.primaryEndpointAddress}:${REDIS_PORT}` : undefined;

  const glueTables: Record<string, GlueCatalogTable> = {};
  const dynamodbTables: Record<string, DynamodbTable> = {};
  const views: FeatureView[] = [];
  let viewsScope: Construct | undefined;

  const feastConfig: Record<string, unknown> = {
    project: plan.project,
    registry: registryUri,
    provider: 'aws',
    online_store: redis
      ? { type: 'redis', redis_type: 'redis', connection_string: `${redisEndpoint},ssl=true,password=${REDIS_PASSWORD_REF}` }
      : { type: 'dynamodb', region },
    offline_store: {
      type: 'athena', region, data_source: 'AwsDataCatalog', database: database.name, workgroup: workgroup.name,
      s3_staging_location: `${offlineUri}/${ATHENA_STAGING_PREFIX}`,
    },
    entity_key_serialization_version: 3,
  };

  // ---- grants: exact ARNs; table lists are resolved at synth so views added after a grant are covered
  const tableArns = () => Lazy.listValue({ produce: () => views.map((v) => dynamodbTables[v.name].arn) });
  const workgroupArn = arn('athena', `workgroup/${workgroup.name}`);
  const glueArns = () => Lazy.listValue({
    produce: () => [arn('glue', 'catalog'), arn('glue', `database/${databaseName}`), ...views.map((v) => arn('glue', `table/${databaseName}/${v.name}`))],
  });
  const readStatements = (): AwsPolicyStatement[] => [
    ...(plan.online === 'dynamodb' ? [{ actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'], resources: tableArns() }] : []),
    ...(redis ? [{ actions: ['secretsmanager:GetSecretValue'], resources: [redis.passwordSecret.arn] }] : []),
    { actions: ['s3:ListBucket', 's3:GetBucketLocation'], resources: [bucket.arn] },
    { actions: ['s3:GetObject'], resources: [`${bucket.arn}/*`] },
    // GetTable needs the catalog, the database and the table ARN; Athena reads partitions too.
    { actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartition', 'glue:GetPartitions', 'glue:BatchGetPartition'], resources: glueArns() },
    { actions: ['kms:Decrypt'], resources: [key.arn] },
    // Reading offline features runs Athena queries in the store's workgroup: results and the uploaded
    // entity dataframe go to the staging prefix, and Feast makes (then drops) a temporary table for it.
    { actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution', 'athena:GetWorkGroup'], resources: [workgroupArn] },
    { actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:DeleteObject'], resources: [`${bucket.arn}/${ATHENA_STAGING_PREFIX}/*`] },
    { actions: ['kms:GenerateDataKey'], resources: [key.arn] },
    { actions: ['glue:CreateTable', 'glue:DeleteTable'], resources: [arn('glue', 'catalog'), arn('glue', `database/${databaseName}`), arn('glue', `table/${databaseName}/${FEAST_ENTITY_TABLE_PREFIX}*`)] },
  ];
  const writeStatements = (): AwsPolicyStatement[] => [
    // DescribeTable: `feast apply` checks that a table exists before it would create one (feast#5658).
    ...(plan.online === 'dynamodb' ? [{
      actions: ['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:DescribeTable'], resources: tableArns(),
    }] : []),
    { actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [`${bucket.arn}/*`] },
    // Deletes only in the scratch prefix: history and the registry's old versions stay.
    { actions: ['s3:DeleteObject'], resources: [`${bucket.arn}/${ATHENA_STAGING_PREFIX}/*`] },
    { actions: ['kms:GenerateDataKey'], resources: [key.arn] },
  ];
  let needsView = false;
  store.node.addValidation({
    validate: () => (needsView && plan.online === 'dynamodb' && views.length === 0
      ? [`${store.node.path}: a grant on the DynamoDB online store needs at least one feature view (addFeatureView) to name its tables`]
      : []),
  });
  const grant = (grantee: IGrantable, grantId: string, statements: AwsPolicyStatement[], what: string) => {
    principalOn(store, what, 'aws', grantee).addToPolicy(grantId, statements);
    needsView = true;
  };

  return {
    offlineUri, registryUri, feastConfig,
    onlinePasswordSecret: redis ? { store: 'aws-secrets-manager', arn: redis.passwordSecret.arn, name: redis.passwordSecret.name } : undefined,
    onlineEndpoint: redisEndpoint,
    checkView(view) {
      const table = dynamodbTableName(plan.project, view.name);
      if (plan.online === 'dynamodb' && table.length > 255) {
        throw Errors.invalid(store, 'featureView.name', view.name, `a name for which the DynamoDB table ${plan.project}.<name> has 3-255 characters (here ${table.length})`);
      }
    },
    addView(view) {
      viewsScope ??= new Construct(store, 'views');
      const scope = new Construct(viewsScope, view.name);
      glueTables[view.name] = new GlueCatalogTable(scope, 'offline-table', {
        provider, databaseName: database.name, name: view.name, tableType: 'EXTERNAL_TABLE',
        description: `Feast feature view ${view.name} (ttl ${view.ttl})`,
        parameters: { 'classification': 'parquet', 'EXTERNAL': 'TRUE', 'parquet.compression': 'SNAPPY', 'feast.ttl_seconds': String(view.ttl.toSeconds()) },
        storageDescriptor: {
          location: `${offlineUri}/${view.prefix}`,
          inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
          serDeInfo: { name: 'parquet', serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe', parameters: { 'serialization.format': '1' } },
          columns: glueColumns(view),
        },
      });
      if (plan.online === 'dynamodb') {
        // Feast's own schema (dynamodb.py): hash key entity_id (S), items {entity_id, event_ts, values}.
        dynamodbTables[view.name] = new DynamodbTable(scope, 'online-table', {
          provider, name: dynamodbTableName(plan.project, view.name), billingMode: 'PAY_PER_REQUEST',
          hashKey: 'entity_id', attribute: [{ name: 'entity_id', type: 'S' }],
          pointInTimeRecovery: { enabled: true },
          serverSideEncryption: { enabled: true, kmsKeyArn: key.arn },
          ttl: { attributeName: DYNAMODB_TTL_ATTRIBUTE, enabled: true },
          deletionProtectionEnabled: true,
        });
      }
      views.push(view);
    },
    onlineTableNames: () => (plan.online === 'dynamodb' ? views.map((v) => dynamodbTableName(plan.project, v.name)) : []),
    offlineTableName: (view) => `${databaseName}.${view.name}`,
    grantRead: (g, id) => grant(g, id, readStatements(), 'grantRead'),
    grantWrite: (g, id) => grant(g, id, [...readStatements(), ...writeStatements()], 'grantWrite'),
    aws: { key, bucket, database, workgroup, glueTables, dynamodbTables, redis },
  };
}
