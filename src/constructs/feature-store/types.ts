/** The cloud-neutral shapes a FeatureStore hands its backends, and what a backend hands back. */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { Duration } from '../../core/duration';
import { Errors } from '../../core/errors';
import { GrantPrincipal, IGrantable, principalOn as corePrincipalOn } from '../../core/grants';
import { SecretRef } from '../../core/secrets';
import { Target } from '../../core/targets';
import type { AwsFeatureStoreResources } from './aws';
import type { GcpFeatureStoreResources } from './gcp';
import type { FeatureStoreProps } from './index';
import type { KubernetesFeatureStoreResources } from './kubernetes';

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

/** What a backend gets: the cloud-neutral, validated store-wide settings. */
export interface FeatureStorePlan {
  /** Base name for cloud resources: [a-z0-9-], starts with a letter, at most 40 characters. */
  readonly name: string;
  /** The Feast project. */
  readonly project: string;
  /** One of the backend's `online` kinds. */
  readonly online: OnlineStoreKind;
}

/**
 * One target's FeatureStore: its rules and its resources. `build` checks the props only this target
 * takes (and their fit with the online store) before it creates anything.
 */
export interface FeatureStoreTargetBackend<T extends Target = Target> {
  /** Online stores the target offers; the first is the default. */
  readonly online: readonly OnlineStoreKind[];
  build(store: Construct, target: T, props: FeatureStoreProps, plan: FeatureStorePlan): FeatureStoreBackend;
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
  /** Target rules for a view (e.g. table name limits): throws before `addView` creates anything. */
  checkView?(view: FeatureView): void;
  /** Creates the view's tables; the view is already validated. */
  addView(view: FeatureView): void;
  /** Online table names, in creation order (Bigtable: one per entity set). */
  onlineTableNames(): string[];
  /** Offline table per view: Glue `db.table`, BigQuery `project.dataset.table`, or a file URI. */
  offlineTableName(view: FeatureView): string;
  grantRead(grantee: IGrantable, grantId: string): void;
  grantWrite(grantee: IGrantable, grantId: string): void;
  /** Only the built target's is set. */
  readonly aws?: AwsFeatureStoreResources;
  readonly gcp?: GcpFeatureStoreResources;
  readonly kubernetes?: KubernetesFeatureStoreResources;
}

/** The principal of `grantee` on `kind`, or an MlInfraError naming both clouds. */
export function principalOn<K extends GrantPrincipal['kind']>(
  store: Construct, method: string, kind: K, grantee: IGrantable,
): Extract<GrantPrincipal, { kind: K }> {
  if (!grantee?.grantPrincipal) throw Errors.invalid(store, method, grantee, 'a GpuCluster or another IGrantable', 'has no grantPrincipal');
  return corePrincipalOn(store, method, grantee, kind, 'the feature store');
}

/** Checks, when the value is known at synth, that it is an integer from `min` to `max`. */
export function checkInt(store: Construct, prop: string, v: unknown, min: number, max: number, unit: string): void {
  if (Token.isUnresolved(v)) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw Errors.outOfRange(store, prop, v, `an integer from ${min} to ${max} ${unit}`);
}

/** Refuses a prop the store's online kind does not use (`allowed` says when it applies). */
export function refuseUnless(store: Construct, props: FeatureStoreProps, prop: keyof FeatureStoreProps, ok: boolean, allowed: string, kind: string, online: string): void {
  if (props[prop] !== undefined && !ok) throw Errors.conflict(store, prop, props[prop], allowed, `does not apply to ${kind} with online ${online}`);
}
