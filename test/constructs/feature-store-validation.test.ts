import { App, TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { AwsTarget, Duration, GcpTarget, KubernetesTarget, MlInfraError, Target } from '../../src';
import { FeatureStore, FeatureStoreProps, FeatureViewOptions } from '../../src/constructs/feature-store';

type Kind = 'aws' | 'gcp' | 'kubernetes';
const target = (stack: TerraformStack, kind: Kind): Target => (kind === 'aws' ? new AwsTarget(stack, 't', { region: 'us-east-1' })
  : kind === 'gcp' ? new GcpTarget(stack, 't', { project: 'ml-prod-123', region: 'us-central1' }) : new KubernetesTarget(stack, 't', { namespace: 'ml' }));
const GOOD: FeatureViewOptions = { name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv_30d', type: 'float' }], ttl: Duration.days(2) };

function catchError(fn: () => void): MlInfraError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MlInfraError) return e;
    throw e;
  }
  throw new Error('expected an MlInfraError, none was thrown');
}

/** Props cases: [what is wrong, target, props, prop, patterns the message must match]. */
const propCases: [string, Kind, Record<string, unknown>, string, RegExp[]][] = [
  ['the project starts with an underscore', 'aws', { project: '_feast' }, 'project', [/"_feast"/, /letters, digits and _, not starting with _/]],
  ['the project has a dash', 'gcp', { project: 'ml-store' }, 'project', [/"ml-store"/, /Feast project name/]],
  ['the online store is not offered on the target (bigtable on aws)', 'aws', { online: 'bigtable' }, 'online', [/bigtable is not offered on aws/, /offered: dynamodb, redis/]],
  ['the online store is not offered on the target (dynamodb on kubernetes)', 'kubernetes', { online: 'dynamodb' }, 'online', [/dynamodb is not offered on kubernetes/, /offered: redis/]],
  ['the online store is unknown', 'gcp', { online: 'memcached' }, 'online', [/"memcached"/, /one of dynamodb, redis, bigtable/]],
  ['offlineUri is given on aws', 'aws', { offlineUri: 's3://b' }, 'offlineUri', [/"s3:\/\/b"/, /kubernetes targets only/]],
  ['offlineUri is not an s3:// or gs:// URI', 'kubernetes', { offlineUri: 'http://minio/bucket' }, 'offlineUri', [/"http:\/\/minio\/bucket"/, /s3:\/\/bucket\[\/prefix\] or gs:\/\/bucket/]],
  ['kmsKeyName is malformed', 'gcp', { kmsKeyName: 'my-key' }, 'kmsKeyName', [/"my-key"/, /projects\/P\/locations\/L\/keyRings\/R\/cryptoKeys\/K/]],
  ['redisNodeType is set without redis', 'aws', { redisNodeType: 'cache.r7g.large' }, 'redisNodeType', [/"cache\.r7g\.large"/, /online: 'redis'/]],
  ['bigtableMaxNodes is zero', 'gcp', { bigtableMaxNodes: 0 }, 'bigtableMaxNodes', [/got 0/, /integer from 1 to 1000 nodes/]],
];

/** View cases, on a store that already holds GOOD: [what is wrong, target, view, prop, patterns]. */
const viewCases: [string, Kind, Record<string, unknown>, string, RegExp[]][] = [
  ['two views share a name', 'aws', { ...GOOD }, 'featureView.name', [/"user_stats"/, /already a feature view/, /views so far: user_stats/]],
  ['a view name has a dash', 'gcp', { ...GOOD, name: 'user-stats' }, 'featureView.name', [/"user-stats"/, /no dashes/]],
  ['a view name starts with a digit', 'kubernetes', { ...GOOD, name: '7day_stats' }, 'featureView.name', [/"7day_stats"/, /starting with a letter or _/]],
  ['the DynamoDB table name would exceed 255 characters', 'aws', { ...GOOD, name: 'v'.repeat(250) }, 'featureView.name', [/3-255 characters \(here 259\)/]],
  ['a feature is named like an entity', 'aws', { ...GOOD, name: 'v2', features: [{ name: 'user_id', type: 'int64' }] }, 'featureViews.v2.features[0].name', [/"user_id"/, /clashes with the entity user_id/]],
  ['a feature type is unknown', 'gcp', { ...GOOD, name: 'v2', features: [{ name: 'x', type: 'float64' }] }, 'featureViews.v2.features[0].type', [/"float64"/, /int32, int64, float, double, string, bytes, bool, unix_timestamp, int32_list/]],
  ['an entity type is unknown', 'aws', { ...GOOD, name: 'v2', entities: [{ name: 'user_id', type: 'uuid' }] }, 'featureViews.v2.entities[0].type', [/"uuid"/, /one of int32/]],
  ['the entity list is empty', 'kubernetes', { ...GOOD, name: 'v2', entities: [] }, 'featureViews.v2.entities', [/got \[\]/, /non-empty list of join keys/]],
  ['a column name breaks BigQuery rules (reserved prefix)', 'gcp', { ...GOOD, name: 'v2', features: [{ name: '_partitiontime', type: 'int64' }] }, 'featureViews.v2.features[0].name', [/"_partitiontime"/, /reserved by BigQuery/]],
  ['a column name is too long for BigQuery', 'gcp', { ...GOOD, name: 'v2', features: [{ name: 'f'.repeat(301), type: 'int64' }] }, 'featureViews.v2.features[0].name', [/at most 300 characters/]],
  ['a feature is named like the event timestamp', 'aws', { ...GOOD, name: 'v2', features: [{ name: 'event_timestamp', type: 'unix_timestamp' }] }, 'featureViews.v2.features[0].name', [/clashes with the event timestamp column/]],
  ['ttl is not a Duration', 'aws', { ...GOOD, name: 'v2', ttl: 86400 }, 'featureViews.v2.ttl', [/got 86400/, /a Duration, e\.g\. Duration\.days\(2\)/]],
  ['ttl is zero', 'gcp', { ...GOOD, name: 'v2', ttl: Duration.seconds(0) }, 'featureViews.v2.ttl', [/"0 seconds"/, /a positive Duration/]],
  ['the features list is empty', 'aws', { ...GOOD, name: 'v2', features: [] }, 'featureViews.v2.features', [/non-empty list of \{ name, type \}/]],
  ['a source prefix climbs out of the store', 'kubernetes', { ...GOOD, name: 'v2', source: { prefix: 'features/../secrets' } }, 'featureViews.v2.source.prefix', [/"features\/\.\.\/secrets"/, /object prefix/]],
];

describe('FeatureStore validation', () => {
  test.each(propCases)('fails when %s', (_name, kind, props, prop, patterns) => {
    const stack = new TerraformStack(new App(), 'v');
    const t = target(stack, kind);
    const err = catchError(() => new FeatureStore(stack, 'features', { target: t, ...props } as unknown as FeatureStoreProps));
    expect(err.prop).toBe(prop);
    expect(err.path).toBe('v/features');
    expect(err.message).toContain(`v/features: ${prop}`);
    for (const p of patterns) expect(err.message).toMatch(p);
  });

  test.each(viewCases)('fails when %s', (_name, kind, view, prop, patterns) => {
    const stack = new TerraformStack(Testing.app(), 'v');
    const store = new FeatureStore(stack, 'features', { target: target(stack, kind) });
    store.addFeatureView(GOOD);
    const err = catchError(() => store.addFeatureView(view as unknown as FeatureViewOptions));
    expect(err.prop).toBe(prop);
    expect(err.path).toBe('v/features');
    for (const p of patterns) expect(err.message).toMatch(p);
    // Nothing was lost or half-made: the store still holds exactly its earlier view and synthesizes.
    expect(store.featureViews.map((v) => v.name)).toEqual(['user_stats']);
    const json = JSON.parse(Testing.synth(stack, true));
    const text = JSON.stringify(json.resource);
    // Kubernetes keeps no per-view objects (Redis has no tables); the clouds have a table per view.
    if (kind !== 'kubernetes') expect(text).toContain('user_stats');
    expect(text).not.toMatch(/features_views_(?!user_stats)/);
    expect(Object.keys(store.offlineTableNames)).toEqual(['user_stats']);
  });

  test('fails when the target is not a target', () => {
    const stack = new TerraformStack(new App(), 'v');
    const err = catchError(() => new FeatureStore(stack, 'features', { target: { region: 'us-east-1' } } as unknown as FeatureStoreProps));
    expect(err.prop).toBe('target');
    expect(err.message).toMatch(/AwsTarget, GcpTarget or KubernetesTarget/);
  });

  test('the default project comes from the construct id', () => {
    const stack = new TerraformStack(new App(), 'v');
    expect(new FeatureStore(stack, 'ltv-store', { target: target(stack, 'aws') }).project).toBe('ltv_store');
  });
});

describe('FeatureStore with Terraform values', () => {
  /** Synthesizes a store whose props come from `props(v)`, with one view; returns the stack JSON. */
  function synthWith(kind: Kind, props: (v: (name: string, type: 'number' | 'string') => any) => Partial<FeatureStoreProps>): any {
    const stack = new TerraformStack(new App(), 'v');
    const v = (name: string, type: 'number' | 'string') => {
      const variable = new TerraformVariable(stack, name, { type });
      return type === 'number' ? variable.numberValue : variable.stringValue;
    };
    new FeatureStore(stack, 'features', { target: target(stack, kind), ...props(v) }).addFeatureView(GOOD);
    return JSON.parse(Testing.synth(stack));
  }
  const only = (json: any, type: string): any => {
    const all = Object.values(json.resource[type] ?? {});
    expect(all).toHaveLength(1);
    return all[0];
  };

  test('accepts a token for bigtableMaxNodes and kmsKeyName on gcp', () => {
    const json = synthWith('gcp', (v) => ({ bigtableMaxNodes: v('nodes', 'number'), kmsKeyName: v('key', 'string') }));
    const cluster = only(json, 'google_bigtable_instance').cluster[0];
    expect(cluster.autoscaling_config.max_nodes).toBe('${var.nodes}');
    expect(cluster.kms_key_name).toBe('${var.key}');
  });

  test('accepts a token for redisMemoryGiB on gcp', () => {
    const json = synthWith('gcp', (v) => ({ online: 'redis', redisMemoryGiB: v('gib', 'number') }));
    expect(only(json, 'google_redis_instance').memory_size_gb).toBe('${var.gib}');
  });

  test('accepts a token for redisNodeType on aws', () => {
    const json = synthWith('aws', (v) => ({ online: 'redis', redisNodeType: v('node', 'string') }));
    expect(only(json, 'aws_elasticache_replication_group').node_type).toBe('${var.node}');
  });

  test('accepts a token for the volume sizes and the Redis image on kubernetes', () => {
    const json = synthWith('kubernetes', (v) => ({ onlineStorageGiB: v('online', 'number'), offlineStorageGiB: v('offline', 'number'), redisImage: v('image', 'string') }));
    expect(only(json, 'kubernetes_persistent_volume_claim_v1').spec.resources.requests.storage).toBe('${var.offline}Gi');
    const sts = only(json, 'kubernetes_stateful_set_v1');
    expect(sts.spec.volume_claim_template[0].spec.resources.requests.storage).toBe('${var.online}Gi');
    expect(sts.spec.template.spec.container[0].image).toBe('${var.image}');
  });

  test('accepts a token for offlineUri on kubernetes: no volume, the registry under it', () => {
    const stack = new TerraformStack(new App(), 'v');
    const uri = new TerraformVariable(stack, 'uri', { type: 'string' }).stringValue;
    const store = new FeatureStore(stack, 'features', { target: target(stack, 'kubernetes'), offlineUri: uri });
    const json = JSON.parse(Testing.synth(stack));
    expect(json.resource.kubernetes_persistent_volume_claim_v1).toBeUndefined();
    expect(json.output[Object.keys(json.output).find((k) => k.includes('registry-uri'))!].value).toBe('${var.uri}/registry.db');
    expect(store.offlineUri).toBe(uri);
  });
});
