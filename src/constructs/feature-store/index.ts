import { TerraformOutput, Token } from 'cdktf';
import { Construct } from 'constructs';
import { Duration } from '../../core/duration';
import { Errors } from '../../core/errors';
import { Grant, grantOnce, IGrantable } from '../../core/grants';
import { resourceName } from '../../core/naming';
import { SecretRef } from '../../core/secrets';
import { TargetKind } from '../../core/accelerators';
import { lazyModule } from '../../core/lazy';
import { Target, targetKind } from '../../core/targets';
import { renderFeastYaml } from './feast';
import {
  EntitySpec, FEATURE_TYPES, FeatureStoreBackend, FeatureStorePlan, FeatureStoreTargetBackend, FeatureType, FeatureView, FeatureViewOptions, OnlineStoreKind,
} from './types';

export {
  EntitySpec, FEATURE_TYPES, FeatureSpec, FeatureType, FeatureView, FeatureViewOptions, FeatureViewSource, OnlineStoreKind, ScalarFeatureType,
} from './types';
import type { AwsFeatureStoreResources } from './aws';
import type { GcpFeatureStoreResources } from './gcp';
import type { KubernetesFeatureStoreResources } from './kubernetes';

// One backend per target: its rules and resources. Each loads (with its provider package) when a
// construct first uses its target.
const BACKENDS: Record<TargetKind, () => FeatureStoreTargetBackend> = {
  aws: lazyModule(() => (require('./aws') as typeof import('./aws')).AWS_FEATURE_STORE as FeatureStoreTargetBackend),
  gcp: lazyModule(() => (require('./gcp') as typeof import('./gcp')).GCP_FEATURE_STORE as FeatureStoreTargetBackend),
  kubernetes: lazyModule(() => (require('./kubernetes') as typeof import('./kubernetes')).KUBERNETES_FEATURE_STORE as FeatureStoreTargetBackend),
};
export { REDIS_PASSWORD_ENV } from './feast';

export interface FeatureStoreProps {
  /** Where the store's infrastructure goes. */
  readonly target: Target;
  /**
   * Feast project name: letters, digits and `_`, not starting with `_` (Feast's rule), at most 60
   * characters. It prefixes online table names (`{project}.{view}`), so changing it means new tables.
   * @default - the construct id with every other character turned into `_` (`features` -> `features`, `ltv-store` -> `ltv_store`)
   */
  readonly project?: string;
  /**
   * Online store. AWS: `dynamodb` or `redis` (ElastiCache); GCP: `bigtable` or `redis` (Memorystore);
   * Kubernetes: `redis` (a StatefulSet).
   * @default - AWS `dynamodb`, GCP `bigtable`, Kubernetes `redis`. DynamoDB and Bigtable scale
   *   without capacity planning, need no network plumbing, and take IAM grants that tell readers
   *   from writers; a Redis password gives whoever holds it full access.
   */
  readonly online?: OnlineStoreKind;
  /**
   * Kubernetes: an object-store URI (`s3://bucket[/prefix]` or `gs://bucket[/prefix]`) for the offline
   * store and registry. The bucket is yours: grants give no access to it.
   * @default - a PersistentVolumeClaim holds the offline store and the registry
   */
  readonly offlineUri?: string;
  /**
   * GCP: a Cloud KMS key (`projects/P/locations/L/keyRings/R/cryptoKeys/K`) encrypting the bucket,
   * dataset, Bigtable cluster or Memorystore instance. Its service agents need Encrypter/Decrypter on it.
   * @default - Google-managed encryption
   */
  readonly kmsKeyName?: string;
  /**
   * AWS with `online: 'redis'`: ElastiCache node type.
   * @default 'cache.t4g.medium'
   */
  readonly redisNodeType?: string;
  /**
   * GCP with `online: 'redis'`: Memorystore capacity.
   * @default 5
   */
  readonly redisMemoryGiB?: number;
  /**
   * GCP with `online: 'bigtable'`: the most nodes the cluster autoscales to (it keeps at least one).
   * @default 3
   */
  readonly bigtableMaxNodes?: number;
  /**
   * Kubernetes: the Redis image. It must run as UID 999 (the official images' `redis` user).
   * @default 'redis:7.4-alpine'
   */
  readonly redisImage?: string;
  /**
   * Kubernetes: size of the Redis data volume.
   * @default 10
   */
  readonly onlineStorageGiB?: number;
  /**
   * Kubernetes without `offlineUri`: size of the offline store volume.
   * @default 100
   */
  readonly offlineStorageGiB?: number;
}

/** A feature store as other constructs see it. */
export interface IFeatureStore {
  readonly target: Target;
  readonly project: string;
  readonly offlineUri: string;
  readonly registryUri: string;
  /** The generated feature_store.yaml (a Terraform value: see `FeatureStore.feastConfig`). */
  readonly feastConfig: string;
  grantRead(grantee: IGrantable): Grant;
  grantWrite(grantee: IGrantable): Grant;
}

/**
 * Props that only some targets take: set for another target they are an error, not silently ignored.
 * Each backend checks the values, and whether they fit its online store.
 */
const TARGET_PROPS: { readonly [P in keyof FeatureStoreProps]?: { readonly on: readonly TargetKind[]; readonly allowed: string } } = {
  offlineUri: { on: ['kubernetes'], allowed: 'kubernetes targets only (AWS and GCP stores create their own bucket)' },
  kmsKeyName: { on: ['gcp'], allowed: 'gcp targets only (the AWS store creates its own KMS key)' },
  redisNodeType: { on: ['aws'], allowed: "aws targets with online: 'redis'" },
  redisMemoryGiB: { on: ['gcp'], allowed: "gcp targets with online: 'redis'" },
  bigtableMaxNodes: { on: ['gcp'], allowed: "gcp targets with online: 'bigtable'" },
  redisImage: { on: ['kubernetes'], allowed: 'kubernetes targets only' },
  onlineStorageGiB: { on: ['kubernetes'], allowed: 'kubernetes targets only' },
  offlineStorageGiB: { on: ['kubernetes'], allowed: 'kubernetes targets without offlineUri' },
};
const PROJECT = /^[A-Za-z0-9][A-Za-z0-9_]{0,59}$/;
const NAME = /^[a-z_][a-z0-9_]*$/;
const NAME_RULE = 'lower-case letters, digits and _, starting with a letter or _ (no dashes: Feast, Glue and BigQuery names)';
/** Column name prefixes BigQuery reserves. */
const BQ_RESERVED = ['_table_', '_file_', '_partition', '_row_timestamp', '__root__', '_colon_'];
const MAX_COLUMN = 300;
const MAX_VIEW = 255; // Glue's table name limit

/**
 * A Feast feature store: offline store, online store, registry location and feature views declared in
 * code, plus the `feature_store.yaml` Feast reads (`feastConfig`), with no secret in it.
 * - AWS: S3 bucket (SSE-KMS, versioned, private) + Glue tables and Athena; DynamoDB (or ElastiCache Redis).
 * - GCP: GCS bucket + BigQuery dataset and tables; Bigtable (or Memorystore Redis).
 * - Kubernetes: Redis StatefulSet with a generated password Secret; offline data on a bucket or a PVC.
 *
 * @example
 * const features = new FeatureStore(stack, 'features', { target: aws, project: 'recsys' });
 * features.addFeatureView({ name: 'user_stats', entities: ['user_id'],
 *   features: [{ name: 'ltv_30d', type: 'float' }], ttl: Duration.days(2) });
 * features.grantRead(cluster);
 */
export class FeatureStore extends Construct implements IFeatureStore {
  public readonly target: Target;
  public readonly project: string;
  public readonly online: OnlineStoreKind;
  /** Offline store root: `s3://…`, `gs://…`, or `file://…` on the volume. */
  public readonly offlineUri: string;
  /** The Feast registry file. */
  public readonly registryUri: string;
  /**
   * The generated feature_store.yaml, as a Terraform value: references to created resources are
   * resolved at apply time, and Feast's `${REDIS_PASSWORD}` is written `$${REDIS_PASSWORD}` (the
   * Terraform escape for a literal `${`), so the applied output reads `${REDIS_PASSWORD}`.
   */
  public readonly feastConfig: string;
  /** Where the Redis password is kept (Redis online stores only): a reference, never the value. */
  public readonly onlinePasswordSecret?: SecretRef;
  /** `host:port` of the Redis online store; undefined for DynamoDB and Bigtable. */
  public readonly onlineEndpoint?: string;
  /** Escape hatches: the resources created on each target (only the one for `target` is set). */
  public readonly aws?: AwsFeatureStoreResources;
  public readonly gcp?: GcpFeatureStoreResources;
  public readonly kubernetes?: KubernetesFeatureStoreResources;
  private readonly backend: FeatureStoreBackend;
  private readonly views: FeatureView[] = [];

  constructor(scope: Construct, id: string, props: FeatureStoreProps) {
    super(scope, id);
    if (!props) throw Errors.missing(this, 'props', 'an object with at least target');
    const kind = targetKind(this, 'target', props.target);
    const rules = BACKENDS[kind]();
    const plan = this.plan(kind, rules, props);
    this.target = props.target;
    this.project = plan.project;
    this.online = plan.online;

    // The backend checks its target's rules before it creates anything.
    this.backend = rules.build(this, props.target, props, plan);
    this.aws = this.backend.aws;
    this.gcp = this.backend.gcp;
    this.kubernetes = this.backend.kubernetes;
    this.offlineUri = this.backend.offlineUri;
    this.registryUri = this.backend.registryUri;
    this.onlinePasswordSecret = this.backend.onlinePasswordSecret;
    this.onlineEndpoint = this.backend.onlineEndpoint;
    this.feastConfig = renderFeastYaml(this.backend.feastConfig);

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'feast-config', { value: this.feastConfig, description: `${this.node.path}: feature_store.yaml (no secrets: the Redis password comes from $REDIS_PASSWORD)` });
    new TerraformOutput(outputs, 'offline-uri', { value: this.offlineUri, description: `${this.node.path}: offline store` });
    new TerraformOutput(outputs, 'registry-uri', { value: this.registryUri, description: `${this.node.path}: Feast registry` });
  }

  /** Feature views added so far, validated. */
  public get featureViews(): readonly FeatureView[] {
    return [...this.views];
  }
  /** Online tables Terraform created, under Feast's own names. */
  public get onlineTableNames(): string[] {
    return this.backend.onlineTableNames();
  }
  /** Offline table per view: Glue `database.table` (AWS), BigQuery `project.dataset.table` (GCP), a file URI (Kubernetes). */
  public get offlineTableNames(): Record<string, string> {
    return Object.fromEntries(this.views.map((v) => [v.name, this.backend.offlineTableName(v)]));
  }

  /**
   * Declares a feature view: its offline table (Glue / BigQuery schema) and online table are created
   * under Feast's names. Validates everything before creating anything: a bad view leaves the store as it was.
   */
  public addFeatureView(options: FeatureViewOptions): FeatureView {
    const view = this.validateView(options);
    this.backend.checkView?.(view);
    this.backend.addView(view);
    this.views.push(view);
    return view;
  }

  /** Read access to exactly this store's tables, objects and key (or Redis password). */
  public grantRead(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'read', (id) => this.backend.grantRead(grantee, id));
  }
  /** Read and write (materialize, write history, update the registry) on exactly this store's resources. */
  public grantWrite(grantee: IGrantable): Grant {
    return grantOnce(this, grantee, 'write', (id) => this.backend.grantWrite(grantee, id));
  }

  /** Checks the props against the cloud-neutral rules and resolves the plan; throws before any resource exists. */
  private plan(kind: TargetKind, rules: FeatureStoreTargetBackend, props: FeatureStoreProps): FeatureStorePlan {
    const project = props.project ?? defaultProject(this.node.id);
    if (typeof project !== 'string' || (!Token.isUnresolved(project) && !PROJECT.test(project))) {
      throw Errors.invalid(this, 'project', project, 'a Feast project name: 1-60 letters, digits and _, not starting with _');
    }
    const offered = rules.online;
    const online = props.online ?? offered[0];
    if (!(['dynamodb', 'redis', 'bigtable'] as unknown[]).includes(online)) {
      throw Errors.unknown(this, 'online', online, ['dynamodb', 'redis', 'bigtable']);
    }
    if (!offered.includes(online)) {
      throw Errors.notOffered(this, 'online', online, `online store ${online} is not offered on ${kind}`, offered.join(', '));
    }
    for (const [prop, t] of Object.entries(TARGET_PROPS) as [keyof FeatureStoreProps, { on: readonly TargetKind[]; allowed: string }][]) {
      if (props[prop] !== undefined && !t.on.includes(kind)) throw Errors.conflict(this, prop, props[prop], t.allowed, `does not apply to ${kind} with online ${online}`);
    }
    return { name: resourceName(this, { maxLength: 40 }), project, online };
  }

  private validateView(o: FeatureViewOptions): FeatureView {
    if (!o || typeof o !== 'object') throw Errors.missing(this, 'addFeatureView(options)', 'an object with name, entities, features and ttl');
    if (typeof o.name !== 'string' || !NAME.test(o.name) || o.name.length > MAX_VIEW) {
      throw Errors.invalid(this, 'featureView.name', o.name, `${NAME_RULE}, at most ${MAX_VIEW} characters`);
    }
    const at = `featureViews.${o.name}`;
    if (this.views.some((v) => v.name === o.name)) {
      throw Errors.conflict(this, 'featureView.name', o.name, `a name not yet used; views so far: ${this.views.map((v) => v.name).join(', ')}`, 'is already a feature view of this store');
    }
    if (!Array.isArray(o.entities) || o.entities.length === 0) {
      throw Errors.invalid(this, `${at}.entities`, o.entities, 'a non-empty list of join keys, e.g. [\'user_id\']');
    }
    if (!Array.isArray(o.features) || o.features.length === 0) {
      throw Errors.invalid(this, `${at}.features`, o.features, 'a non-empty list of { name, type }');
    }
    if (!(o.ttl instanceof Duration)) {
      throw Errors.invalid(this, `${at}.ttl`, o.ttl, 'a Duration, e.g. Duration.days(2)');
    }
    if (o.ttl.toSeconds() <= 0) {
      throw Errors.outOfRange(this, `${at}.ttl`, o.ttl.toString(), 'a positive Duration (Feast treats 0 as "never expires": say so explicitly with a long ttl)');
    }
    const timestampField = o.source?.timestampField ?? 'event_timestamp';
    const seen = new Map<string, string>();
    const column = (prop: string, name: unknown, role: string) => {
      if (typeof name !== 'string' || !NAME.test(name) || name.length > MAX_COLUMN) {
        throw Errors.invalid(this, prop, name, `${NAME_RULE}, at most ${MAX_COLUMN} characters (BigQuery's limit)`);
      }
      if (BQ_RESERVED.some((p) => name.startsWith(p))) {
        throw Errors.invalid(this, prop, name, `a name not starting with ${BQ_RESERVED.join(', ')} (reserved by BigQuery)`);
      }
      const other = seen.get(name);
      if (other) throw Errors.conflict(this, prop, name, `column names unique within the view; ${name} is already the ${other}`, `clashes with the ${other}`);
      seen.set(name, role);
    };
    column(`${at}.source.timestampField`, timestampField, 'event timestamp column');
    const type = (prop: string, t: unknown): FeatureType => {
      if (!(FEATURE_TYPES as readonly unknown[]).includes(t)) throw Errors.unknown(this, prop, t, FEATURE_TYPES);
      return t as FeatureType;
    };
    const entities = o.entities.map((e: string | EntitySpec, i) => {
      const spec = typeof e === 'string' ? { name: e } : e;
      column(`${at}.entities[${i}]`, spec?.name, `entity ${spec?.name}`);
      if (spec.entity !== undefined && (typeof spec.entity !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(spec.entity))) {
        throw Errors.invalid(this, `${at}.entities[${i}].entity`, spec.entity, 'a Feast entity name: 1-64 letters, digits or _, not starting with a digit');
      }
      return { name: spec.name, type: type(`${at}.entities[${i}].type`, spec.type ?? 'string'), entity: spec.entity ?? spec.name };
    });
    const features = o.features.map((f, i) => {
      column(`${at}.features[${i}].name`, f?.name, `feature ${f?.name}`);
      return { name: f.name, type: type(`${at}.features[${i}].type`, f.type) };
    });
    const prefix = o.source?.prefix ?? `features/${o.name}/`;
    if (typeof prefix !== 'string' || !/^[a-z0-9][a-z0-9_\-/.]*$/.test(prefix) || prefix.includes('..') || prefix.includes('//')) {
      throw Errors.invalid(this, `${at}.source.prefix`, prefix, 'an object prefix of lower-case letters, digits, _, -, . and /, e.g. features/user_stats/');
    }
    return { name: o.name, entities, features, ttl: o.ttl, prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, timestampField };
  }
}

/** A Feast project name from a construct id: `ltv-store` -> `ltv_store`. */
function defaultProject(id: string): string {
  const s = id.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60);
  return /^[A-Za-z0-9]/.test(s) ? s : `fs_${s}`.slice(0, 60);
}
