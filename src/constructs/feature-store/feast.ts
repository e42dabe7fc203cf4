/**
 * Feast conventions: `feature_store.yaml` rendering, Feast's own online table names, and how Feast
 * value types map onto Glue (Hive) and BigQuery column types.
 */
import { createHash } from 'crypto';
import { stringify } from 'yaml';
import { FeatureType, FeatureView, ScalarFeatureType } from './types';

/**
 * Environment variable Feast substitutes for the Redis password. Feast reads feature_store.yaml
 * through `os.path.expandvars`, so `${REDIS_PASSWORD}` is filled in at load time from the
 * environment: the file holds only the variable's name, never the password.
 */
export const REDIS_PASSWORD_ENV = 'REDIS_PASSWORD';

/**
 * `${REDIS_PASSWORD}` as it must appear in a Terraform string: `$${` is Terraform's escape for a
 * literal `${`, so the output holds `${REDIS_PASSWORD}` instead of Terraform failing on an unknown
 * reference.
 */
export const REDIS_PASSWORD_REF = `$\${${REDIS_PASSWORD_ENV}}`;

/** Feast's default DynamoDB `table_name_template`: `{project}.{table_name}`. */
export function dynamodbTableName(project: string, view: string): string {
  return `${project}.${view}`;
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/**
 * The Bigtable table Feast uses for a view: one table per entity set, `{project}.{entities}` with the
 * sorted entity names joined by `-`, hashed to fit Bigtable's 50 characters (Feast's bigtable.py
 * `_get_table_name`, reproduced exactly so `feast apply` finds the tables Terraform made).
 */
export function bigtableTableName(project: string, entities: readonly string[]): string {
  const MAX = 50;
  const ENTITIES_MAX = 24;
  let entitiesPart = [...entities].sort().join('-');
  if (entitiesPart.length > ENTITIES_MAX) entitiesPart = md5(entitiesPart).slice(0, ENTITIES_MAX);
  const remaining = MAX - entitiesPart.length - 1;
  let projectPart = project;
  if (project.length > remaining) {
    const readable = 10;
    projectPart = `${project.slice(0, readable)}_${md5(project).slice(0, remaining - readable - 1)}`;
  }
  return `${projectPart}.${entitiesPart}`;
}

const isList = (t: FeatureType): boolean => t.endsWith('_list');
const scalarOf = (t: FeatureType): ScalarFeatureType => (isList(t) ? t.slice(0, -'_list'.length) : t) as ScalarFeatureType;

const HIVE: Record<ScalarFeatureType, string> = {
  int32: 'int', int64: 'bigint', float: 'float', double: 'double', string: 'string', bytes: 'binary', bool: 'boolean', unix_timestamp: 'timestamp',
};
/** Glue/Hive column type for parquet files written by Feast (pyarrow). */
export function glueType(t: FeatureType): string {
  return isList(t) ? `array<${HIVE[scalarOf(t)]}>` : HIVE[t as ScalarFeatureType];
}

// The legacy names, which the BigQuery API returns: using them keeps Terraform plans free of diffs.
const BQ: Record<ScalarFeatureType, string> = {
  int32: 'INTEGER', int64: 'INTEGER', float: 'FLOAT', double: 'FLOAT', string: 'STRING', bytes: 'BYTES', bool: 'BOOLEAN', unix_timestamp: 'TIMESTAMP',
};
export interface BigQueryField {
  readonly name: string;
  readonly type: string;
  readonly mode: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  readonly description?: string;
}
/** BigQuery schema for a view: entity columns, features, then the event timestamp. */
export function bigquerySchema(view: FeatureView): BigQueryField[] {
  const field = (name: string, t: FeatureType, description: string): BigQueryField =>
    ({ name, type: BQ[scalarOf(t)], mode: isList(t) ? 'REPEATED' : 'NULLABLE', description });
  return [
    ...view.entities.map((e) => field(e.name, e.type, `entity ${e.name}`)),
    ...view.features.map((f) => field(f.name, f.type, `feature ${f.name}`)),
    { name: view.timestampField, type: 'TIMESTAMP', mode: 'REQUIRED', description: 'event time' },
  ];
}
/** Types BigQuery accepts as clustering columns (non-repeated). */
export function clusterable(t: FeatureType): boolean {
  return ['int32', 'int64', 'string', 'bool', 'unix_timestamp'].includes(t);
}

/** Glue columns for a view: entity columns, features, then the event timestamp. */
export function glueColumns(view: FeatureView): { name: string; type: string; comment: string }[] {
  return [
    ...view.entities.map((e) => ({ name: e.name, type: glueType(e.type), comment: 'entity' })),
    ...view.features.map((f) => ({ name: f.name, type: glueType(f.type), comment: 'feature' })),
    { name: view.timestampField, type: 'timestamp', comment: 'event time' },
  ];
}

/**
 * Renders feature_store.yaml. No line folding: strings hold Terraform references that must stay
 * on one line. Key order is kept as given (Feast's own order: project, registry, provider, stores).
 */
export function renderFeastYaml(config: Record<string, unknown>): string {
  return stringify(config, { lineWidth: 0, minContentWidth: 0 });
}
