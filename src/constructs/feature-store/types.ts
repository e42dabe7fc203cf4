/** The cloud-neutral shapes a FeatureStore hands its backends, and what a backend hands back. */
import { Duration } from '../../core/duration';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { SecretRef } from '../../core/secrets';

/** Scalar value types, named as Feast's `ValueType` names them (lower-case). */
export const SCALAR_FEATURE_TYPES = ['int32', 'int64', 'float', 'double', 'string', 'bytes', 'bool', 'unix_timestamp'] as const;
export type ScalarFeatureType = (typeof SCALAR_FEATURE_TYPES)[number];
/** A Feast value type: a scalar or a list of one (`int64_list`, as Feast's `INT64_LIST`). */
export type FeatureType = ScalarFeatureType | `${ScalarFeatureType}_list`;
export const FEATURE_TYPES: readonly FeatureType[] = [...SCALAR_FEATURE_TYPES, ...SCALAR_FEATURE_TYPES.map((t) => `${t}_list` as const)];

export interface FeatureSpec {
  /** Column name: lower-case letters, digits and `_`, starting with a letter or `_`. */
  readonly name: string;
  readonly type: FeatureType;
}

export interface EntitySpec {
  /** The join key, e.g. `user_id`. */
  readonly name: string;
  /**
   * Value type of the join key.
   * @default 'string'
   */
  readonly type?: FeatureType;
  /**
   * The Feast entity's name, when it differs from its join key (`Entity(name='user', join_keys=['user_id'])`).
   * Feast names Bigtable tables after entity names.
   * @default - the join key
   */
  readonly entity?: string;
}

export interface FeatureViewSource {
  /**
   * Object prefix of the view's parquet files under the offline bucket (AWS: the Glue table's
   * location; Kubernetes: under `offlineUri` or the volume). Not used by BigQuery tables on GCP.
   * @default - `features/<view name>/`
   */
  readonly prefix?: string;
  /**
   * Event timestamp column.
   * @default 'event_timestamp'
   */
  readonly timestampField?: string;
}

export interface FeatureViewOptions {
  /** Feature view name: lower-case letters, digits and `_`, starting with a letter or `_`. */
  readonly name: string;
  /** Join keys: names (typed `string`) or `{ name, type }`. At least one. */
  readonly entities: ReadonlyArray<string | EntitySpec>;
  readonly features: readonly FeatureSpec[];
  /** How long a feature value stays valid (Feast's `ttl`); must be positive. */
  readonly ttl: Duration;
  /**
   * Where the view's history lives in the offline store.
   * @default - `features/<name>/` under the offline store, event time in `event_timestamp`
   */
  readonly source?: FeatureViewSource;
}

/** A validated feature view, as backends and users see it. */
export interface FeatureView {
  readonly name: string;
  /** `name` is the join key, `entity` the Feast entity's name. */
  readonly entities: readonly { readonly name: string; readonly type: FeatureType; readonly entity: string }[];
  readonly features: readonly FeatureSpec[];
  readonly ttl: Duration;
  /** Object prefix under the offline store, ending in `/`. */
  readonly prefix: string;
  readonly timestampField: string;
}

export type OnlineStoreKind = 'dynamodb' | 'redis' | 'bigtable';

/** What a backend gets: validated store-wide settings. */
export interface FeatureStorePlan {
  /** Base name for cloud resources: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  /** The Feast project. */
  readonly project: string;
  readonly online: OnlineStoreKind;
  readonly offlineUri?: string;
  readonly kmsKeyName?: string;
  readonly redisNodeType: string;
  readonly redisMemoryGiB: number;
  readonly bigtableMaxNodes: number;
  readonly redisImage: string;
  readonly onlineStorageGiB: number;
  readonly offlineStorageGiB: number;
}

/** What every backend provides: the store's public surface on its target. */
export interface FeatureStoreBackend {
  readonly offlineUri: string;
  readonly registryUri: string;
  /** The `feature_store.yaml` content as a plain object (Terraform references inside strings). */
  readonly feastConfig: Record<string, unknown>;
  /** Where the online store's password is kept, when it has one (Redis). */
  readonly onlinePasswordSecret?: SecretRef;
  /** Online endpoint (`host:port`) for Redis; undefined for DynamoDB and Bigtable. */
  readonly onlineEndpoint?: string;
  /** Creates the view's tables; the view is already validated. */
  addView(view: FeatureView): void;
  /** Online table names, in creation order (Bigtable: one per entity set). */
  onlineTableNames(): string[];
  /** Offline table per view: Glue `db.table`, BigQuery `project.dataset.table`, or a file URI. */
  offlineTableName(view: FeatureView): string;
  grantRead(grantee: IGrantable, grantId: string): void;
  grantWrite(grantee: IGrantable, grantId: string): void;
}

/** The principal of `grantee` on `kind`, or an Error naming both clouds. */
export function principalOn<K extends GrantPrincipal['kind']>(
  what: string, kind: K, grantee: IGrantable,
): Extract<GrantPrincipal, { kind: K }> {
  const p = grantee?.grantPrincipal;
  if (!p) throw new Error(`${what}: the grantee has no grantPrincipal (pass a GpuCluster or another IGrantable)`);
  if (p.kind !== kind) throw new Error(`${what}: grantee is on ${p.kind}, the feature store on ${kind}; grants do not cross clouds`);
  return p as Extract<GrantPrincipal, { kind: K }>;
}
