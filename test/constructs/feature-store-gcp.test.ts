import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { parse } from 'yaml';
import { BigqueryTable } from '@cdktf/provider-google/lib/bigquery-table';
import { BigtableTable } from '@cdktf/provider-google/lib/bigtable-table';
import { RedisInstance } from '@cdktf/provider-google/lib/redis-instance';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { Duration, GcpTarget, GpuCluster } from '../../src';
import { FeatureStore, FeatureStoreProps } from '../../src/constructs/feature-store';
import { bigtableTableName } from '../../src/constructs/feature-store/feast';
import { memorystoreCaPath } from '../../src/constructs/feature-store/gcp';
import { countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const build = (props: Partial<FeatureStoreProps> = {}, extra?: (stack: TerraformStack, f: FeatureStore, gcp: GcpTarget) => void) => {
  let store!: FeatureStore;
  const out = synth((stack) => {
    const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1' });
    store = new FeatureStore(stack, 'features', { target: gcp, ...props });
    store.addFeatureView({ name: 'user_stats', entities: [{ name: 'user_id', type: 'int64' }], features: [{ name: 'ltv_30d', type: 'float' }, { name: 'tags', type: 'string_list' }], ttl: Duration.days(2) });
    store.addFeatureView({ name: 'user_flags', entities: ['user_id'], features: [{ name: 'churned', type: 'bool' }], ttl: Duration.days(30) });
    store.addFeatureView({ name: 'item_stats', entities: ['item_id', 'shop_id'], features: [{ name: 'ctr', type: 'double' }, { name: 'thumb', type: 'bytes' }], ttl: Duration.hours(6) });
    extra?.(stack, store, gcp);
  });
  return { ...out, store };
};

function feastYaml(json: TerraformJson): Record<string, any> {
  const [value] = Object.entries(json.output ?? {}).filter(([k]) => k.includes('feast-config')).map(([, o]) => o.value as string);
  return parse(renderTerraformString(value));
}
const dataset = (json: TerraformJson): any => Object.values(resources(json, 'google_bigquery_dataset')).find((d: any) => !d.dataset_id.endsWith('_scratch'));
const scratch = (json: TerraformJson): any => Object.values(resources(json, 'google_bigquery_dataset')).find((d: any) => d.dataset_id.endsWith('_scratch'));
const grantMembers = (json: TerraformJson, type: string) => Object.entries(resources(json, type)).filter(([k]) => k.startsWith('features_grants_')).map(([, v]) => v as any);

describe('FeatureStore on GCP', () => {
  const { text, json, store } = build({}, (s, f, gcp) => f.grantRead(new GpuCluster(s, 'train', { target: gcp, accelerator: 'L4', agentBundleDir: testAgentBundle() })));

  test('offline bucket: uniform access, public access prevention, versioning, old versions expire', () => {
    expect(text).toHaveResourceWithProperties(StorageBucket, {
      name: expect.stringMatching(/^test-features-[a-f0-9]{8}-[a-f0-9]{8}-offline$/), location: 'us-central1', uniform_bucket_level_access: true,
      public_access_prevention: 'enforced', versioning: { enabled: true }, force_destroy: false,
    });
    const b = Object.entries(resources(json, 'google_storage_bucket')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(b.encryption).toBeUndefined();
    expect(b.lifecycle_rule[0]).toEqual({ action: { type: 'Delete' }, condition: { days_since_noncurrent_time: 30, with_state: 'ARCHIVED' } });
  });

  test('CMEK, when given, encrypts bucket, dataset, tables and the Bigtable cluster', () => {
    const kms = 'projects/ml-prod-123/locations/us-central1/keyRings/ml/cryptoKeys/features';
    const { json: j } = build({ kmsKeyName: kms });
    const b = Object.entries(resources(j, 'google_storage_bucket')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(b.encryption).toEqual({ default_kms_key_name: kms });
    expect(dataset(j).default_encryption_configuration).toEqual({ kms_key_name: kms });
    for (const t of Object.values(resources(j, 'google_bigquery_table')) as any[]) expect(t.encryption_configuration).toEqual({ kms_key_name: kms });
    expect((only(j, 'google_bigtable_instance') as any).cluster[0].kms_key_name).toBe(kms);
  });

  test('BigQuery: one table per view, schema from the view, partitioned by event time, deletion protection', () => {
    expect(text).toHaveResourceWithProperties(BigqueryTable, { table_id: 'user_stats', deletion_protection: true, time_partitioning: { type: 'DAY', field: 'event_timestamp' }, clustering: ['user_id'] });
    const tables = Object.values(resources(json, 'google_bigquery_table')) as any[];
    expect(tables.map((t) => t.table_id).sort()).toEqual(['item_stats', 'user_flags', 'user_stats']);
    const schema = (id: string) => JSON.parse(tables.find((t) => t.table_id === id).schema).map((f: any) => [f.name, f.type, f.mode]);
    expect(schema('user_stats')).toEqual([
      ['user_id', 'INTEGER', 'NULLABLE'], ['ltv_30d', 'FLOAT', 'NULLABLE'], ['tags', 'STRING', 'REPEATED'], ['event_timestamp', 'TIMESTAMP', 'REQUIRED'],
    ]);
    expect(schema('item_stats')).toEqual([
      ['item_id', 'STRING', 'NULLABLE'], ['shop_id', 'STRING', 'NULLABLE'], ['ctr', 'FLOAT', 'NULLABLE'], ['thumb', 'BYTES', 'NULLABLE'], ['event_timestamp', 'TIMESTAMP', 'REQUIRED'],
    ]);
    expect(dataset(json)).toMatchObject({ dataset_id: expect.stringMatching(/^test_features_[a-f0-9]{8}$/), location: 'us-central1', delete_contents_on_destroy: false });
    expect(store.offlineTableNames.user_stats).toMatch(/^ml-prod-123\.test_features_[a-f0-9]{8}\.user_stats$/);
  });

  test('Bigtable: tables named as Feast names them, one per entity set, column family "features" keeping 2 versions', () => {
    expect(bigtableTableName('features', ['user_id'])).toBe('features.user_id');
    expect(bigtableTableName('features', ['shop_id', 'item_id'])).toBe('features.item_id-shop_id');
    const long = bigtableTableName('a_very_long_project_name_that_exceeds_everything', ['customer_identifier', 'merchant_identifier']);
    expect(long.length).toBeLessThanOrEqual(50);
    expect(long).toMatch(/^a_very_lon_[a-f0-9]+\.[a-f0-9]{24}$/);
    const tables = Object.values(resources(json, 'google_bigtable_table')) as any[];
    expect(tables.map((t) => t.name).sort()).toEqual(['features.item_id-shop_id', 'features.user_id']);
    expect(text).toHaveResourceWithProperties(BigtableTable, { name: 'features.user_id', column_family: [{ family: 'features' }], deletion_protection: 'PROTECTED' });
    for (const p of Object.values(resources(json, 'google_bigtable_gc_policy')) as any[]) expect(p).toMatchObject({ column_family: 'features', max_version: [{ number: 2 }] });
    const inst = only(json, 'google_bigtable_instance') as any;
    expect(inst.deletion_protection).toBe(true);
    expect(inst.cluster[0]).toMatchObject({ zone: 'us-central1-b', storage_type: 'SSD', autoscaling_config: { min_nodes: 1, max_nodes: 3, cpu_target: 60 } });
    expect(store.onlineTableNames).toEqual(['features.user_id', 'features.item_id-shop_id']);
  });

  test('feature_store.yaml: gcs registry, gcp provider, bigtable online, bigquery offline', () => {
    const y = feastYaml(json);
    expect(y).toEqual({
      project: 'features', registry: 'gs://TFREF/registry.db', provider: 'gcp',
      online_store: { type: 'bigtable', project_id: 'ml-prod-123', instance: 'TFREF', max_versions: 2 },
      offline_store: { type: 'bigquery', project_id: 'ml-prod-123', dataset: 'TFREF', location: 'us-central1' },
      entity_key_serialization_version: 3,
    });
  });

  test('grantRead: viewer roles on exactly the bucket, dataset and Bigtable instance', () => {
    const member = expect.stringMatching(/^\$\{google_service_account\.train_iam_host_[A-F0-9]+\.member\}$/);
    const bucket = expect.stringMatching(/google_storage_bucket\.features_offline_bucket_/);
    expect(grantMembers(json, 'google_storage_bucket_iam_member')).toEqual(expect.arrayContaining([
      expect.objectContaining({ role: 'roles/storage.objectViewer', member, bucket }), expect.objectContaining({ role: 'roles/storage.legacyBucketReader', member, bucket })]));
    expect(grantMembers(json, 'google_storage_bucket_iam_member')).toHaveLength(2);
    expect(grantMembers(json, 'google_bigquery_dataset_iam_member')).toEqual([
      expect.objectContaining({ role: 'roles/bigquery.dataViewer', member, dataset_id: expect.stringMatching(/google_bigquery_dataset\.features_offline_dataset_/) }),
      expect.objectContaining({ role: 'roles/bigquery.dataEditor', member, dataset_id: expect.stringMatching(/google_bigquery_dataset\.features_offline_scratch-dataset_/) })]);
    expect(grantMembers(json, 'google_bigtable_instance_iam_member')).toEqual([expect.objectContaining({ role: 'roles/bigtable.reader', member, instance: expect.stringMatching(/google_bigtable_instance\.features_online_bigtable_/) })]);
    // Project level only what has no narrower resource: running query jobs and Storage API read sessions.
    expect(grantMembers(json, 'google_project_iam_member').map((m) => [m.role, m.project])).toEqual([['roles/bigquery.jobUser', 'ml-prod-123'], ['roles/bigquery.readSessionUser', 'ml-prod-123']]);
  });

  // ---- defects of issue 15 (each of these failed before its fix)

  test('Feast can read its registry: storage.buckets.get (legacyBucketReader) on the offline bucket only, for readers and writers', () => {
    for (const grant of ['grantRead', 'grantWrite'] as const) {
      const { json: j } = build({}, (s, f, gcp) => f[grant](new GpuCluster(s, 'train', { target: gcp, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
      const m = grantMembers(j, 'google_storage_bucket_iam_member').filter((x) => x.role === 'roles/storage.legacyBucketReader');
      expect(m).toHaveLength(1);
      expect(m[0].bucket).toMatch(/google_storage_bucket\.features_offline_bucket_/);
    }
  });

  test('BigQuery offline store: jobs, read sessions, and a writable scratch dataset Feast uses for entity frames', () => {
    expect(scratch(json)).toMatchObject({ dataset_id: `${dataset(json).dataset_id}_scratch`, default_table_expiration_ms: 86_400_000, location: 'us-central1' });
    expect(feastYaml(json).offline_store.dataset).toBe('TFREF');
    const apis = Object.values(resources(json, 'google_project_service')).map((x: any) => x.service);
    expect(apis).toEqual(expect.arrayContaining(['bigquery.googleapis.com', 'bigquerystorage.googleapis.com']));
    const out = Object.entries(json.output ?? {}).find(([k]) => k.includes('feast-config'))![1].value as string;
    expect(out).toMatch(/dataset: \$\{google_bigquery_dataset\.features_offline_scratch-dataset_[A-F0-9]+\.dataset_id\}/);
  });

  test('bucket names collide globally: the project id is in the offline bucket name', () => {
    const name = (j: TerraformJson) => (Object.values(resources(j, 'google_storage_bucket'))[0] as any).name;
    const other = synth((stack) => new FeatureStore(stack, 'features', { target: new GcpTarget(stack, 'gcp', { project: 'ml-other-456', region: 'us-central1' }) }));
    const mine = synth((stack) => new FeatureStore(stack, 'features', { target: new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1' }) }));
    expect(name(other.json)).not.toBe(name(mine.json));
  });

  test('private services access: one range and one connection per network for two Redis stores; destroy abandons a given network\'s peering', () => {
    const { json: j } = build({ online: 'redis' }, (s, _f, gcp) => new FeatureStore(s, 'features2', { target: gcp, online: 'redis' }));
    expect(Object.keys(resources(j, 'google_redis_instance'))).toHaveLength(2);
    const conn = only(j, 'google_service_networking_connection') as any;
    // The target created this network: the peering goes with it on destroy.
    expect(conn).toMatchObject({ update_on_creation_fail: true });
    expect(conn.deletion_policy).toBeUndefined();
    const given = synth((stack) => new FeatureStore(stack, 'features', { online: 'redis', target: new GcpTarget(stack, 'gcp', {
      project: 'ml-prod-123', region: 'us-central1',
      network: { network: 'projects/ml-prod-123/global/networks/shared', subnetwork: 'projects/ml-prod-123/regions/us-central1/subnetworks/ml', cidrBlock: '10.8.0.0/20' },
    }) }));
    expect(only(given.json, 'google_service_networking_connection')).toMatchObject({ deletion_policy: 'ABANDON', network: 'projects/ml-prod-123/global/networks/shared' });
    const range = only(j, 'google_compute_global_address') as any;
    for (const r of Object.values(resources(j, 'google_redis_instance')) as any[]) {
      expect(r.reserved_ip_range).toBe(`\${google_compute_global_address.${Object.keys(resources(j, 'google_compute_global_address'))[0]}.name}`);
    }
    expect(range.purpose).toBe('VPC_PEERING');
    const adopt = synth((stack) => new FeatureStore(stack, 'features', { online: 'redis', target: new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1', privateServiceAccessRange: 'sql-psa-range' }) }));
    expect(resources(adopt.json, 'google_service_networking_connection')).toEqual({});
    expect((only(adopt.json, 'google_redis_instance') as any).reserved_ip_range).toBe('sql-psa-range');
  });

  test('Bigtable tables are named from Feast entity names, not join keys', () => {
    const { json: j } = synth((stack) => {
      const f = new FeatureStore(stack, 'features', { target: new GcpTarget(stack, 'gcp', { project: 'ml-prod-123', region: 'us-central1' }) });
      f.addFeatureView({ name: 'user_stats', entities: [{ name: 'user_id', entity: 'user', type: 'int64' }], features: [{ name: 'ltv', type: 'float' }], ttl: Duration.days(1) });
    });
    expect((only(j, 'google_bigtable_table') as any).name).toBe(bigtableTableName('features', ['user']));
    expect(() => build({}, (_s, f) => f.addFeatureView({ name: 'v', entities: [{ name: 'user_id', entity: 'bad name' }], features: [{ name: 'x', type: 'float' }], ttl: Duration.days(1) })))
      .toThrow(/entities\[0\]\.entity/);
  });

  test('Memorystore TLS: the server CA is published in Secret Manager and named in the connection string', () => {
    const { json: j } = build({ online: 'redis' }, (st, f, gcp) => f.grantRead(new GpuCluster(st, 'train', { target: gcp, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
    const ca = Object.entries(resources(j, 'google_secret_manager_secret_version')).find(([k]) => k.includes('ca-value'))![1] as any;
    // Every current CA (two during a rotation), joined: a valid expression, no nested interpolation.
    expect(ca.secret_data).toMatch(/^\$\{join\("\\n", \[ for key, val in toset\(google_redis_instance\.[^.]+\.server_ca_certs\): val\.cert\]\)\}$/);
    expect(feastYaml(j).online_store.connection_string).toContain(`ssl_ca_certs=${memorystoreCaPath('test-features-' + /test-features-([a-f0-9]{8})/.exec(JSON.stringify(j))![1])}`);
    expect(grantMembers(j, 'google_secret_manager_secret_iam_member').map((m) => m.secret_id)).toEqual([expect.stringMatching(/auth-secret/), expect.stringMatching(/ca-secret/)]);
  });

  test('grantWrite: editor roles on the same resources', () => {
    const { json: j } = build({}, (s, f, gcp) => f.grantWrite(new GpuCluster(s, 'train', { target: gcp, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
    expect(grantMembers(j, 'google_storage_bucket_iam_member').map((m) => m.role).sort()).toEqual(['roles/storage.legacyBucketReader', 'roles/storage.objectAdmin']);
    expect(grantMembers(j, 'google_bigquery_dataset_iam_member').map((m) => m.role)).toEqual(['roles/bigquery.dataEditor', 'roles/bigquery.dataEditor']);
    expect(grantMembers(j, 'google_bigtable_instance_iam_member').map((m) => m.role)).toEqual(['roles/bigtable.user']);
  });

  test('creates exactly these resources', () => {
    const { json: alone } = build();
    expect(countByType(alone)).toEqual({
      google_storage_bucket: 1, google_bigquery_dataset: 2, google_bigquery_table: 3, google_project_service: 6,
      google_bigtable_instance: 1, google_bigtable_table: 2, google_bigtable_gc_policy: 2,
    });
  });

  test('redis: Memorystore with TLS and AUTH over private service access, AUTH string in Secret Manager', () => {
    const { text: t, json: j, store: s } = build({ online: 'redis' }, (st, f, gcp) => f.grantRead(new GpuCluster(st, 'train', { target: gcp, accelerator: 'L4', agentBundleDir: testAgentBundle() })));
    expect(t).toHaveResourceWithProperties(RedisInstance, {
      tier: 'STANDARD_HA', memory_size_gb: 5, transit_encryption_mode: 'SERVER_AUTHENTICATION', auth_enabled: true, connect_mode: 'PRIVATE_SERVICE_ACCESS',
    });
    const redis = only(j, 'google_redis_instance') as any;
    expect(redis.authorized_network).toMatch(/google_compute_network\.gcp_network_vpc_/);
    expect(only(j, 'google_compute_global_address')).toMatchObject({ purpose: 'VPC_PEERING', address_type: 'INTERNAL', prefix_length: 20 });
    expect(only(j, 'google_service_networking_connection')).toMatchObject({ service: 'servicenetworking.googleapis.com' });
    const version = Object.entries(resources(j, 'google_secret_manager_secret_version')).find(([k]) => k.startsWith('features_'))![1] as any;
    expect(version.secret_data).toMatch(/^\$\{google_redis_instance\.[^.]+\.auth_string\}$/);
    expect(resources(j, 'google_bigtable_instance')).toEqual({});
    expect(s.onlineTableNames).toEqual([]);
    expect(feastYaml(j).online_store).toEqual({ type: 'redis', redis_type: 'redis', connection_string: expect.stringMatching(/^TFREF:TFREF,ssl=true,ssl_ca_certs=\/etc\/mlinfra\/feast\/test-features-[a-f0-9]{8}\/server-ca\.pem,password=\$\{REDIS_PASSWORD\}$/) });
    expect(grantMembers(j, 'google_secret_manager_secret_iam_member')[0]).toEqual(expect.objectContaining({ role: 'roles/secretmanager.secretAccessor', secret_id: expect.stringMatching(/features_online_auth-secret/) }));
    expect(JSON.stringify(j.output)).not.toMatch(/auth_string/);
  });

  test('a grantee on another cloud fails with both clouds named', () => {
    expect(() => build({}, (_s, f) => f.grantWrite({ grantPrincipal: { kind: 'kubernetes', namespace: 'ml', serviceAccountName: 'x' } })))
      .toThrow(expect.objectContaining({ code: 'CROSS_CLOUD_GRANT', prop: 'grantWrite', message: expect.stringMatching(/test\/features: grantWrite: grantee is on kubernetes, the feature store on gcp/) }));
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
