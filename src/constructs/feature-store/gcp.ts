/**
 * FeatureStore on GCP: GCS + BigQuery offline store, Bigtable or Memorystore Redis online store,
 * the registry in the offline bucket.
 */
import { Fn, TerraformIterator, Token } from 'cdktf';
import { Construct } from 'constructs';
import { BigqueryDataset } from '@cdktf/provider-google/lib/bigquery-dataset';
import { BigqueryDatasetIamMember } from '@cdktf/provider-google/lib/bigquery-dataset-iam-member';
import { BigqueryTable } from '@cdktf/provider-google/lib/bigquery-table';
import { BigtableGcPolicy } from '@cdktf/provider-google/lib/bigtable-gc-policy';
import { BigtableInstance } from '@cdktf/provider-google/lib/bigtable-instance';
import { BigtableInstanceIamMember } from '@cdktf/provider-google/lib/bigtable-instance-iam-member';
import { BigtableTable } from '@cdktf/provider-google/lib/bigtable-table';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member';
import { RedisInstance } from '@cdktf/provider-google/lib/redis-instance';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member';
import { SecretManagerSecretVersion } from '@cdktf/provider-google/lib/secret-manager-secret-version';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { Errors } from '../../core/errors';
import { IGrantable } from '../../core/grants';
import { fitName, resourceName, shortHash } from '../../core/naming';
import { GcpPrivateServiceAccess, GcpTarget } from '../../core/targets';
import { bigquerySchema, bigtableTableName, clusterable, REDIS_PASSWORD_REF } from './feast';
import type { FeatureStoreProps } from './index';
import { checkInt, FeatureStoreBackend, FeatureStorePlan, FeatureStoreTargetBackend, FeatureView, principalOn, refuseUnless } from './types';

/** The column family Feast's Bigtable store reads and writes. */
export const BIGTABLE_COLUMN_FAMILY = 'features';
/** Versions Feast keeps per cell (its `max_versions` default). */
export const BIGTABLE_MAX_VERSIONS = 2;
/** Hours a table Feast uploads to the scratch dataset (entity frames) lives. */
export const SCRATCH_TABLE_HOURS = 24;

/** Where clients keep Memorystore's CA (from `resources.redis.caSecret`): named in the Feast connection string. */
export function memorystoreCaPath(storeName: string): string {
  return `/etc/mlinfra/feast/${storeName}/server-ca.pem`;
}

/** A bucket name for this project: GCS names are global, so the project id goes into the hash. */
function gcsBucketName(project: string, base: string, suffix: string): string {
  const head = fitName(base, 63 - suffix.length - 10);
  const hash = Token.isUnresolved(project) ? Fn.substr(Fn.sha256(`${project}/${base}`), 0, 8) : shortHash(`${project}/${base}`);
  return `${head}-${hash}-${suffix}`;
}

export interface GcpFeatureStoreResources {
  readonly bucket: StorageBucket;
  readonly dataset: BigqueryDataset;
  /**
   * Where Feast writes temporary tables (the entity frame of get_historical_features): every grantee
   * may write here, tables expire after a day. Feast's `offline_store.dataset` names it.
   */
  readonly scratchDataset: BigqueryDataset;
  /** BigQuery table per view name. */
  readonly bigqueryTables: Readonly<Record<string, BigqueryTable>>;
  /** Bigtable instance and its tables by Feast table name (online: 'bigtable'). */
  readonly bigtable?: { readonly instance: BigtableInstance; readonly tables: Readonly<Record<string, BigtableTable>> };
  /** Memorystore and its private service access (online: 'redis'). */
  readonly redis?: {
    readonly instance: RedisInstance;
    /** The target's private services access (one per network, shared by every store). */
    readonly privateServiceAccess: GcpPrivateServiceAccess;
    readonly authSecret: SecretManagerSecret;
    /** Memorystore's server CA certificates (PEM): clients save them at `memorystoreCaPath(name)`. */
    readonly caSecret: SecretManagerSecret;
  };
}

/** What the GCP backend resolved from the props. */
interface GcpFeatureStorePlan extends FeatureStorePlan {
  readonly kmsKeyName?: string;
  readonly redisMemoryGiB: number;
  readonly bigtableMaxNodes: number;
}

/** FeatureStore on GCP: GCS + BigQuery offline, Bigtable or Memorystore Redis online. */
export const GCP_FEATURE_STORE: FeatureStoreTargetBackend<GcpTarget> = {
  online: ['bigtable', 'redis'],
  build(store, target, props, plan) {
    return buildGcpFeatureStore(store, target, checkGcp(store, props, plan));
  },
};

/** The GCP rules: checked before anything is created. */
function checkGcp(store: Construct, props: FeatureStoreProps, plan: FeatureStorePlan): GcpFeatureStorePlan {
  refuseUnless(store, props, 'redisMemoryGiB', plan.online === 'redis', "gcp targets with online: 'redis'", 'gcp', plan.online);
  refuseUnless(store, props, 'bigtableMaxNodes', plan.online === 'bigtable', "gcp targets with online: 'bigtable'", 'gcp', plan.online);
  const k = props.kmsKeyName;
  if (k !== undefined && !Token.isUnresolved(k) && !/^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/.test(k)) {
    throw Errors.invalid(store, 'kmsKeyName', k, 'a Cloud KMS key name: projects/P/locations/L/keyRings/R/cryptoKeys/K');
  }
  const redisMemoryGiB = props.redisMemoryGiB ?? 5;
  // Memorystore sizes: 1-300 GiB (Standard tier).
  checkInt(store, 'redisMemoryGiB', redisMemoryGiB, 1, 300, 'GiB');
  const bigtableMaxNodes = props.bigtableMaxNodes ?? 3;
  checkInt(store, 'bigtableMaxNodes', bigtableMaxNodes, 1, 1000, 'nodes');
  return { ...plan, kmsKeyName: k, redisMemoryGiB, bigtableMaxNodes };
}

function buildGcpFeatureStore(store: Construct, target: GcpTarget, plan: GcpFeatureStorePlan): FeatureStoreBackend {
  const provider = target.provider;
  const project = target.project;
  const region = target.region;
  // bigquerystorage: Feast reads query results through the Storage Read API (read sessions).
  target.requireApis('storage.googleapis.com', 'bigquery.googleapis.com', 'bigquerystorage.googleapis.com', 'iam.googleapis.com', 'cloudresourcemanager.googleapis.com',
    ...(plan.online === 'bigtable' ? ['bigtableadmin.googleapis.com'] : ['redis.googleapis.com', 'secretmanager.googleapis.com']));

  // ---- offline: bucket (registry, files) and BigQuery dataset (history)
  const offline = new Construct(store, 'offline');
  const bucket = new StorageBucket(offline, 'bucket', {
    provider, project, name: gcsBucketName(project, plan.name, 'offline'), location: region, forceDestroy: false,
    uniformBucketLevelAccess: true, publicAccessPrevention: 'enforced',
    versioning: { enabled: true },
    ...(plan.kmsKeyName ? { encryption: { defaultKmsKeyName: plan.kmsKeyName } } : {}),
    lifecycleRule: [
      { action: { type: 'Delete' }, condition: { daysSinceNoncurrentTime: 30, withState: 'ARCHIVED' } },
      { action: { type: 'AbortIncompleteMultipartUpload' }, condition: { age: 7 } },
    ],
  });
  const datasetId = plan.name.replace(/-/g, '_');
  const dataset = new BigqueryDataset(offline, 'dataset', {
    provider, project, datasetId, location: region,
    description: `${store.node.path}: Feast project ${plan.project}`, deleteContentsOnDestroy: false,
    ...(plan.kmsKeyName ? { defaultEncryptionConfiguration: { kmsKeyName: plan.kmsKeyName } } : {}),
  });
  const scratchDataset = new BigqueryDataset(offline, 'scratch-dataset', {
    provider, project, datasetId: `${datasetId}_scratch`, location: region,
    description: `${store.node.path}: Feast temporary tables (entity frames)`, deleteContentsOnDestroy: true,
    defaultTableExpirationMs: SCRATCH_TABLE_HOURS * 3600 * 1000,
    ...(plan.kmsKeyName ? { defaultEncryptionConfiguration: { kmsKeyName: plan.kmsKeyName } } : {}),
  });
  const offlineUri = `gs://${bucket.name}`;
  const registryUri = `${offlineUri}/registry.db`;

  // ---- online
  const online = new Construct(store, 'online');
  let bigtable: { instance: BigtableInstance; tables: Record<string, BigtableTable> } | undefined;
  let redis: GcpFeatureStoreResources['redis'];
  if (plan.online === 'bigtable') {
    const instance = new BigtableInstance(online, 'bigtable', {
      provider, project, name: resourceName(store, { maxLength: 33 }), displayName: `Feast ${plan.project}`.slice(0, 30),
      deletionProtection: true,
      cluster: [{
        clusterId: resourceName(store, { maxLength: 30, suffix: 'c1' }),
        zone: target.zones?.[0] ?? `${region}-b`, storageType: 'SSD',
        autoscalingConfig: { minNodes: 1, maxNodes: plan.bigtableMaxNodes, cpuTarget: 60 },
        ...(plan.kmsKeyName ? { kmsKeyName: plan.kmsKeyName } : {}),
      }],
    });
    bigtable = { instance, tables: {} };
  } else {
    // Private services access: Memorystore sits in Google's network, peered into the target's. One
    // connection per network, owned by the target: a second one for the same network fails.
    const privateServiceAccess = target.privateServiceAccess();
    const instance = new RedisInstance(online, 'redis', {
      provider, project, region, name: plan.name, displayName: `Feast ${plan.project}`,
      tier: 'STANDARD_HA', memorySizeGb: plan.redisMemoryGiB, redisVersion: 'REDIS_7_2',
      authorizedNetwork: target.network, connectMode: 'PRIVATE_SERVICE_ACCESS', reservedIpRange: privateServiceAccess.rangeName,
      transitEncryptionMode: 'SERVER_AUTHENTICATION', authEnabled: true,
      ...(plan.kmsKeyName ? { customerManagedKey: plan.kmsKeyName } : {}),
      ...(privateServiceAccess.connection ? { dependsOn: [privateServiceAccess.connection] } : {}),
    });
    // Memorystore generates the AUTH string; clients read it from Secret Manager, never from outputs.
    const authSecret = new SecretManagerSecret(online, 'auth-secret', {
      provider, project, secretId: `${plan.name}-redis-auth`, replication: { auto: {} },
    });
    new SecretManagerSecretVersion(online, 'auth-value', { provider, secret: authSecret.id, secretData: instance.authString });
    // TLS with server authentication: Memorystore's certificates come from its own CA, which no system
    // trust store holds. Every current CA (two during a rotation) is published for clients.
    const caSecret = new SecretManagerSecret(online, 'ca-secret', {
      provider, project, secretId: `${plan.name}-redis-ca`, replication: { auto: {} },
    });
    new SecretManagerSecretVersion(online, 'ca-value', {
      provider, secret: caSecret.id, secretData: Fn.join('\n', Token.asList(TerraformIterator.fromList(instance.serverCaCerts).pluckProperty('cert'))),
    });
    redis = { instance, privateServiceAccess, authSecret, caSecret };
  }
  const redisEndpoint = redis ? `${redis.instance.host}:${redis.instance.port}` : undefined;

  const bigqueryTables: Record<string, BigqueryTable> = {};
  const views: FeatureView[] = [];
  let viewsScope: Construct | undefined;

  const feastConfig: Record<string, unknown> = {
    project: plan.project,
    registry: registryUri,
    provider: 'gcp',
    online_store: bigtable
      ? { type: 'bigtable', project_id: project, instance: bigtable.instance.name, max_versions: BIGTABLE_MAX_VERSIONS }
      // TLS with server authentication: redis-py verifies against the CA file named here (Feast passes
      // connection-string keys to redis.Redis as keyword arguments).
      : { type: 'redis', redis_type: 'redis', connection_string: `${redisEndpoint},ssl=true,ssl_ca_certs=${memorystoreCaPath(plan.name)},password=${REDIS_PASSWORD_REF}` },
    // `dataset` is where Feast creates its temporary tables: the writable scratch dataset. Feature
    // tables are addressed by their full names (offlineTableName).
    offline_store: { type: 'bigquery', project_id: project, dataset: scratchDataset.datasetId, location: region },
    entity_key_serialization_version: 3,
  };

  // ---- grants: IAM members on exactly this store's bucket, dataset, instance or secret
  let grants: Construct | undefined;
  const grantScope = (grantId: string) => new Construct((grants ??= new Construct(store, 'grants')), grantId);
  const grant = (grantee: IGrantable, grantId: string, write: boolean) => {
    const member = principalOn(store, write ? 'grantWrite' : 'grantRead', 'gcp', grantee).member;
    const scope = grantScope(grantId);
    // Object admin, not creator: Feast rewrites registry.db in place.
    new StorageBucketIamMember(scope, 'bucket', { provider, bucket: bucket.name, role: write ? 'roles/storage.objectAdmin' : 'roles/storage.objectViewer', member });
    // Feast's GCS registry calls get_bucket() (storage.buckets.get), which the object roles lack;
    // legacyBucketReader adds it (and objects.list), on this bucket only.
    new StorageBucketIamMember(scope, 'bucket-get', { provider, bucket: bucket.name, role: 'roles/storage.legacyBucketReader', member });
    new BigqueryDatasetIamMember(scope, 'dataset', { provider, project, datasetId: dataset.datasetId, role: write ? 'roles/bigquery.dataEditor' : 'roles/bigquery.dataViewer', member });
    // Feast uploads entity frames to its dataset (the scratch one) and queries with jobs: readers too.
    new BigqueryDatasetIamMember(scope, 'scratch', { provider, project, datasetId: scratchDataset.datasetId, role: 'roles/bigquery.dataEditor', member });
    // Queries run as jobs in the project and read results through the Storage Read API: neither has a
    // narrower resource to bind on (BigQuery access control docs: jobUser, readSessionUser).
    new ProjectIamMember(scope, 'job-user', { provider, project, role: 'roles/bigquery.jobUser', member });
    new ProjectIamMember(scope, 'read-session-user', { provider, project, role: 'roles/bigquery.readSessionUser', member });
    if (bigtable) {
      new BigtableInstanceIamMember(scope, 'bigtable', { provider, project, instance: bigtable.instance.name, role: write ? 'roles/bigtable.user' : 'roles/bigtable.reader', member });
    }
    if (redis) {
      new SecretManagerSecretIamMember(scope, 'redis-auth', { provider, project, secretId: redis.authSecret.secretId, role: 'roles/secretmanager.secretAccessor', member });
      new SecretManagerSecretIamMember(scope, 'redis-ca', { provider, project, secretId: redis.caSecret.secretId, role: 'roles/secretmanager.secretAccessor', member });
    }
  };

  return {
    offlineUri, registryUri, feastConfig,
    onlinePasswordSecret: redis ? { store: 'gcp-secret-manager', project, secretId: redis.authSecret.secretId } : undefined,
    onlineEndpoint: redisEndpoint,
    addView(view) {
      viewsScope ??= new Construct(store, 'views');
      const scope = new Construct(viewsScope, view.name);
      const clustering = view.entities.filter((e) => clusterable(e.type)).slice(0, 4).map((e) => e.name);
      bigqueryTables[view.name] = new BigqueryTable(scope, 'offline-table', {
        provider, project, datasetId: dataset.datasetId, tableId: view.name,
        description: `Feast feature view ${view.name} (ttl ${view.ttl})`,
        schema: JSON.stringify(bigquerySchema(view)),
        // Point-in-time joins scan by event time and join on entities: partition and cluster on them.
        timePartitioning: { type: 'DAY', field: view.timestampField },
        ...(clustering.length ? { clustering } : {}),
        deletionProtection: true,
        ...(plan.kmsKeyName ? { encryptionConfiguration: { kmsKeyName: plan.kmsKeyName } } : {}),
      });
      if (bigtable) {
        // Feast's _get_table_name joins the view's entity names (not join keys).
        const name = bigtableTableName(plan.project, view.entities.map((e) => e.entity));
        // Views with the same entities share one table (Feast keys rows by entity and view).
        if (!bigtable.tables[name]) {
          const t = new BigtableTable(scope, 'online-table', {
            provider, project, instanceName: bigtable.instance.name, name,
            columnFamily: [{ family: BIGTABLE_COLUMN_FAMILY }], deletionProtection: 'PROTECTED',
          });
          new BigtableGcPolicy(scope, 'online-gc', {
            provider, project, instanceName: bigtable.instance.name, table: t.name, columnFamily: BIGTABLE_COLUMN_FAMILY,
            maxVersion: [{ number: BIGTABLE_MAX_VERSIONS }], deletionPolicy: 'ABANDON',
          });
          bigtable.tables[name] = t;
        }
      }
      views.push(view);
    },
    onlineTableNames: () => (bigtable ? Object.keys(bigtable.tables) : []),
    offlineTableName: (view) => `${project}.${datasetId}.${view.name}`,
    grantRead: (g, id) => grant(g, id, false),
    grantWrite: (g, id) => grant(g, id, true),
    gcp: { bucket, dataset, scratchDataset, bigqueryTables, bigtable, redis },
  };
}
