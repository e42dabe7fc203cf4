import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { parse } from 'yaml';
import { DynamodbTable } from '@cdktf/provider-aws/lib/dynamodb-table';
import { ElasticacheReplicationGroup } from '@cdktf/provider-aws/lib/elasticache-replication-group';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { AwsTarget, Duration, GpuCluster } from '../../src';
import { FeatureStore, FeatureStoreProps } from '../../src/constructs/feature-store';
import { countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const build = (props: Partial<FeatureStoreProps> = {}, extra?: (stack: TerraformStack, f: FeatureStore, aws: AwsTarget) => void) => {
  let store!: FeatureStore;
  const out = synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    store = new FeatureStore(stack, 'features', { target: aws, ...props });
    store.addFeatureView({ name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv_30d', type: 'float' }, { name: 'orders', type: 'int64_list' }], ttl: Duration.days(2) });
    store.addFeatureView({
      name: 'item_stats', entities: [{ name: 'item_id', type: 'int64' }], features: [{ name: 'ctr', type: 'double' }, { name: 'embedding', type: 'float_list' }],
      ttl: Duration.hours(6), source: { prefix: 'items/stats', timestampField: 'ts' },
    });
    extra?.(stack, store, aws);
  });
  return { ...out, store };
};

/** feature_store.yaml as Feast reads it after apply (references replaced by TFREF). */
function feastYaml(json: TerraformJson): Record<string, any> {
  const [value] = Object.entries(json.output ?? {}).filter(([k]) => k.includes('feast-config')).map(([, o]) => o.value as string);
  return parse(renderTerraformString(value));
}

/** The statements of the inline policy a grant put on the grantee's role. */
function grantStatements(json: TerraformJson, grant: RegExp): Record<string, any>[] {
  const docs = Object.entries(json.data?.aws_iam_policy_document ?? {}).filter(([k]) => grant.test(k));
  expect(docs).toHaveLength(1);
  return (docs[0][1] as any).statement;
}

describe('FeatureStore on AWS', () => {
  const { text, json, store } = build({}, (_s, f, aws) => {
    const cluster = new GpuCluster(_s, 'train', { target: aws, accelerator: 'L4', agentBundleDir: testAgentBundle() });
    f.grantRead(cluster);
  });

  test('offline bucket: SSE-KMS with the store key, public access blocked, versioned, TLS only, old versions expire', () => {
    const buckets = Object.entries(resources(json, 'aws_s3_bucket')).filter(([k]) => k.startsWith('features_'));
    expect(buckets).toHaveLength(1);
    const enc = Object.entries(resources(json, 'aws_s3_bucket_server_side_encryption_configuration')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(enc.rule[0].apply_server_side_encryption_by_default).toEqual({ sse_algorithm: 'aws:kms', kms_master_key_id: expect.stringMatching(/^\$\{aws_kms_key\.features_offline_key_[A-F0-9]+\.arn\}$/) });
    expect(text).toHaveResourceWithProperties(S3BucketPublicAccessBlock, { block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true });
    expect(text).toHaveResourceWithProperties(S3BucketVersioningA, { versioning_configuration: { status: 'Enabled' } });
    const tls = Object.entries(json.data!.aws_iam_policy_document!).find(([k]) => k.startsWith('features_offline_tls-only'))![1] as any;
    expect(tls.statement[0]).toMatchObject({ effect: 'Deny', actions: ['s3:*'], condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }] });
    const lc = Object.entries(resources(json, 'aws_s3_bucket_lifecycle_configuration')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(lc.rule[0].noncurrent_version_expiration).toEqual([{ noncurrent_days: 30 }]);
    const key = Object.entries(resources(json, 'aws_kms_key')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(key.enable_key_rotation).toBe(true);
  });

  test('Glue: one parquet table per view, columns from the view, located under the offline bucket', () => {
    const tables = Object.values(resources(json, 'aws_glue_catalog_table')) as any[];
    expect(tables.map((t) => t.name).sort()).toEqual(['item_stats', 'user_stats']);
    const user = tables.find((t) => t.name === 'user_stats');
    expect(user.storage_descriptor.columns).toEqual([
      { name: 'user_id', type: 'string', comment: 'entity' },
      { name: 'ltv_30d', type: 'float', comment: 'feature' },
      { name: 'orders', type: 'array<bigint>', comment: 'feature' },
      { name: 'event_timestamp', type: 'timestamp', comment: 'event time' },
    ]);
    expect(user.storage_descriptor.location).toMatch(/^s3:\/\/\$\{aws_s3_bucket\.features_offline_bucket_[A-F0-9]+\.bucket\}\/features\/user_stats\/$/);
    expect(user.storage_descriptor.ser_de_info.serialization_library).toBe('org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe');
    expect(user.parameters['feast.ttl_seconds']).toBe('172800');
    const item = tables.find((t) => t.name === 'item_stats');
    expect(item.storage_descriptor.columns.map((c: any) => [c.name, c.type])).toEqual([['item_id', 'bigint'], ['ctr', 'double'], ['embedding', 'array<float>'], ['ts', 'timestamp']]);
    expect(item.storage_descriptor.location).toMatch(/\/items\/stats\/$/);
    expect(only(json, 'aws_glue_catalog_database').name).toMatch(/^test_features_[a-f0-9]{8}$/);
  });

  test('DynamoDB: Feast names and key schema, on demand, PITR, SSE with the store key, TTL attribute', () => {
    expect(text).toHaveResourceWithProperties(DynamodbTable, {
      name: 'features.user_stats', billing_mode: 'PAY_PER_REQUEST', hash_key: 'entity_id', attribute: [{ name: 'entity_id', type: 'S' }],
      point_in_time_recovery: { enabled: true }, ttl: { attribute_name: 'expires_at', enabled: true }, deletion_protection_enabled: true,
    });
    const tables = Object.values(resources(json, 'aws_dynamodb_table')) as any[];
    expect(tables.map((t) => t.name).sort()).toEqual(['features.item_stats', 'features.user_stats']);
    for (const t of tables) expect(t.server_side_encryption).toEqual({ enabled: true, kms_key_arn: expect.stringMatching(/aws_kms_key\.features_offline_key_/) });
    expect(store.onlineTableNames).toEqual(['features.user_stats', 'features.item_stats']);
    expect(store.offlineTableNames).toEqual({ user_stats: expect.stringMatching(/^test_features_[a-f0-9]{8}\.user_stats$/), item_stats: expect.stringMatching(/\.item_stats$/) });
  });

  test('feature_store.yaml: project, registry in the bucket, aws provider, dynamodb online, athena offline', () => {
    const y = feastYaml(json);
    expect(Object.keys(y)).toEqual(['project', 'registry', 'provider', 'online_store', 'offline_store', 'entity_key_serialization_version']);
    expect(y.project).toBe('features');
    expect(y.registry).toBe('s3://TFREF/registry.db');
    expect(y.provider).toBe('aws');
    expect(y.online_store).toEqual({ type: 'dynamodb', region: 'us-east-1' });
    expect(y.offline_store).toEqual({ type: 'athena', region: 'us-east-1', data_source: 'AwsDataCatalog', database: 'TFREF', workgroup: 'TFREF', s3_staging_location: 's3://TFREF/athena-staging' });
    expect(y.entity_key_serialization_version).toBe(3);
    expect(store.registryUri).toMatch(/\/registry\.db$/);
  });

  test('grantRead: read actions only, on exactly the store tables, bucket, Glue objects and key', () => {
    const st = grantStatements(json, /^train_granted_test-features-[a-f0-9]{8}-read-[a-f0-9]{8}-doc/);
    const actions = st.flatMap((s) => s.actions);
    expect([...actions].sort()).toEqual([
      'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:GetWorkGroup', 'athena:StartQueryExecution', 'athena:StopQueryExecution',
      'dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query',
      'glue:BatchGetPartition', 'glue:CreateTable', 'glue:DeleteTable', 'glue:GetDatabase', 'glue:GetPartition', 'glue:GetPartitions', 'glue:GetTable', 'glue:GetTables',
      'kms:Decrypt', 'kms:GenerateDataKey',
      's3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetBucketLocation', 's3:GetObject', 's3:ListBucket', 's3:ListMultipartUploadParts', 's3:PutObject',
    ]);
    // Reading offline features runs Athena queries: writes only to the staging prefix and Feast's temporary entity tables.
    for (const w of st.filter((x) => x.actions.some((a: string) => /Put|Write|Update|Delete|Create|\*/.test(a)))) {
      for (const r of w.resources) expect(r).toMatch(/\/athena-staging\/\*$|:catalog$|:database\/test_features_[a-f0-9]{8}$|\/feast_entity_df_\*$/);
    }
    const byAction = (a: string) => st.find((s) => s.actions.includes(a))!.resources;
    expect(byAction('dynamodb:GetItem')).toEqual([
      expect.stringMatching(/^\$\{aws_dynamodb_table\.features_views_user_stats_online-table_[A-F0-9]+\.arn\}$/),
      expect.stringMatching(/^\$\{aws_dynamodb_table\.features_views_item_stats_online-table_[A-F0-9]+\.arn\}$/),
    ]);
    expect(byAction('s3:ListBucket')).toEqual([expect.stringMatching(/^\$\{aws_s3_bucket\.features_offline_bucket_[A-F0-9]+\.arn\}$/)]);
    expect(byAction('s3:GetObject')).toEqual([expect.stringMatching(/^\$\{aws_s3_bucket\.features_offline_bucket_[A-F0-9]+\.arn\}\/\*$/)]);
    const glue = byAction('glue:GetTable') as string[];
    expect(glue).toHaveLength(4);
    expect(glue[0]).toMatch(/:glue:us-east-1:\$\{data\.aws_caller_identity\.[^}]+\}:catalog$/);
    expect(glue[1]).toMatch(/:database\/test_features_[a-f0-9]{8}$/);
    expect(glue.slice(2).map((g) => g.split(':').pop())).toEqual([expect.stringMatching(/^table\/test_features_[a-f0-9]{8}\/user_stats$/), expect.stringMatching(/\/item_stats$/)]);
    expect(byAction('kms:Decrypt')).toEqual([expect.stringMatching(/aws_kms_key\.features_offline_key_[A-F0-9]+\.arn/)]);
    expect(JSON.stringify(st)).not.toMatch(/"\*"|table\/\*|:\*"/);
  });

  test('grantWrite adds writes on the same resources; deletes only in the Athena staging prefix', () => {
    const { json: j } = build({}, (s, f, aws) => f.grantWrite(new GpuCluster(s, 'train', { target: aws, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
    const st = grantStatements(j, /^train_granted_test-features-[a-f0-9]{8}-write-[a-f0-9]{8}-doc/);
    const actions = st.flatMap((s) => s.actions);
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:DescribeTable', 's3:PutObject', 'kms:GenerateDataKey', 'dynamodb:GetItem']));
    expect(actions).not.toContain('dynamodb:CreateTable');
    expect(st.find((s) => s.actions.includes('s3:DeleteObject'))!.resources).toEqual([expect.stringMatching(/\/athena-staging\/\*$/)]);
  });

  test('a view added after the grant is covered too', () => {
    const { json: j } = build({}, (s, f, aws) => {
      f.grantRead(new GpuCluster(s, 'train', { target: aws, accelerator: 'L4', agentBundleDir: testAgentBundle() }));
      f.addFeatureView({ name: 'late', entities: ['user_id'], features: [{ name: 'x', type: 'bool' }], ttl: Duration.days(1) });
    });
    const st = grantStatements(j, /-read-[a-f0-9]{8}-doc/);
    expect(st.find((s) => s.actions.includes('dynamodb:GetItem'))!.resources).toHaveLength(3);
  });

  test('creates exactly these resources', () => {
    const counts = countByType(json);
    const mine = Object.fromEntries(Object.entries(counts).filter(([t]) => /s3|glue|dynamodb|kms|elasticache/.test(t)));
    expect(mine).toEqual({
      aws_kms_key: 2, aws_kms_alias: 1, // the cluster owns the other key
      aws_s3_bucket: 2, aws_s3_bucket_public_access_block: 2, aws_s3_bucket_ownership_controls: 2, aws_s3_bucket_versioning: 2,
      aws_s3_bucket_server_side_encryption_configuration: 2, aws_s3_bucket_lifecycle_configuration: 2, aws_s3_bucket_policy: 2, aws_s3_object: 7, // the agent bundle's files
      aws_glue_catalog_database: 1, aws_glue_catalog_table: 2, aws_dynamodb_table: 2,
    });
    const { json: alone } = build();
    expect(countByType(alone)).toEqual({
      aws_kms_key: 1, aws_kms_alias: 1, aws_s3_bucket: 1, aws_s3_bucket_public_access_block: 1, aws_s3_bucket_ownership_controls: 1,
      aws_s3_bucket_versioning: 1, aws_s3_bucket_server_side_encryption_configuration: 1, aws_s3_bucket_lifecycle_configuration: 1, aws_s3_bucket_policy: 1,
      aws_glue_catalog_database: 1, aws_glue_catalog_table: 2, aws_dynamodb_table: 2, aws_athena_workgroup: 1,
    });
  });

  test('redis: encrypted ElastiCache in the target subnets, open only to the VPC, token in Secrets Manager', () => {
    const { text: t, json: j, store: s } = build({ online: 'redis' }, (st, f, aws) => f.grantRead(new GpuCluster(st, 'train', { target: aws, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
    expect(t).toHaveResourceWithProperties(ElasticacheReplicationGroup, {
      engine: 'redis', node_type: 'cache.t4g.medium', at_rest_encryption_enabled: 'true', transit_encryption_enabled: true,
      automatic_failover_enabled: true, multi_az_enabled: true, num_cache_clusters: 2, port: 6379,
    });
    const rg = only(j, 'aws_elasticache_replication_group') as any;
    expect(rg.auth_token).toMatch(/^\$\{random_password\.[^.]+\.result\}$/);
    expect(rg.kms_key_id).toMatch(/aws_kms_key\.features_offline_key_/);
    expect((only(j, 'aws_elasticache_subnet_group') as any).subnet_ids).toEqual([expect.stringMatching(/aws_subnet\.aws_network_private-0/), expect.stringMatching(/aws_subnet\.aws_network_private-1/)]);
    const ingress = Object.entries(resources(j, 'aws_vpc_security_group_ingress_rule')).filter(([k]) => k.startsWith('features_')).map(([, v]) => v) as any[];
    expect(ingress).toEqual([expect.objectContaining({ from_port: 6379, to_port: 6379, cidr_ipv4: '10.42.0.0/16' })]);
    const versions = Object.entries(resources(j, 'aws_secretsmanager_secret_version')).filter(([k]) => k.startsWith('features_'));
    expect((versions[0][1] as any).secret_string).toBe(rg.auth_token);
    expect(resources(j, 'aws_dynamodb_table')).toEqual({});
    expect(s.onlineTableNames).toEqual([]);
    const y = feastYaml(j);
    expect(y.online_store).toEqual({ type: 'redis', redis_type: 'redis', connection_string: 'TFREF:6379,ssl=true,password=${REDIS_PASSWORD}' });
    // In Terraform the variable is escaped so it survives to Feast, which expands it from the environment.
    expect(Object.values(j.output!).find((o: any) => /connection_string/.test(o.value))!.value).toContain('password=$${REDIS_PASSWORD}');
    const st = grantStatements(j, /-read-[a-f0-9]{8}-doc/);
    expect(st.find((x) => x.actions.includes('secretsmanager:GetSecretValue'))!.resources).toEqual([expect.stringMatching(/aws_secretsmanager_secret\.features_online_password-secret_/)]);
    expect(st.flatMap((x) => x.actions).some((a: string) => a.startsWith('dynamodb:'))).toBe(false);
  });

  test('a grantee on another cloud fails with both clouds named', () => {
    expect(() => build({}, (_s, f) => f.grantRead({ grantPrincipal: { kind: 'gcp', email: 'a@b.iam.gserviceaccount.com', member: 'serviceAccount:a@b.iam.gserviceaccount.com' } })))
      .toThrow(expect.objectContaining({ code: 'CROSS_CLOUD_GRANT', prop: 'grantRead', message: expect.stringMatching(/test\/features: grantRead: grantee is on gcp, the feature store on aws/) }));
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
