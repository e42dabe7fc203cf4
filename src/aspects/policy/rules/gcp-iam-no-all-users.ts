import { blocks, strings } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';

const PUBLIC = ['allUsers', 'allAuthenticatedUsers'];

/** IAM member/binding resources that can name public principals (a member per resource or a list). */
export const GCP_IAM_TYPES: readonly string[] = [
  'google_project_iam_member', 'google_project_iam_binding',
  'google_storage_bucket_iam_member', 'google_storage_bucket_iam_binding',
  'google_cloud_run_v2_service_iam_member', 'google_cloud_run_v2_service_iam_binding',
  'google_cloud_run_service_iam_member', 'google_cloud_run_service_iam_binding',
  'google_cloudfunctions2_function_iam_member', 'google_cloudfunctions2_function_iam_binding',
  'google_bigquery_dataset_iam_member', 'google_bigquery_dataset_iam_binding',
  'google_bigquery_table_iam_member', 'google_bigquery_table_iam_binding',
  'google_bigtable_instance_iam_member', 'google_bigtable_instance_iam_binding',
  'google_secret_manager_secret_iam_member', 'google_secret_manager_secret_iam_binding',
  'google_pubsub_topic_iam_member', 'google_pubsub_topic_iam_binding',
  'google_artifact_registry_repository_iam_member', 'google_artifact_registry_repository_iam_binding',
  'google_service_account_iam_member', 'google_service_account_iam_binding',
  'google_iam_policy',
];

export const rule: PolicyRule = {
  id: 'gcp-iam-no-all-users',
  level: 'error',
  description: 'IAM grant to allUsers or allAuthenticatedUsers (anyone on the internet)',
  fix: 'grant the role to named service accounts, groups or users; a ModelEndpoint made public on purpose (`public: true`) marks its invoker grant itself',
  appliesTo: GCP_IAM_TYPES,
  check(el) {
    const members = el.type === 'google_iam_policy'
      ? blocks(el.attrs.binding).flatMap((b) => strings(b.members))
      : [...strings(el.attrs.member), ...strings(el.attrs.members)];
    const pub = members.filter((m) => PUBLIC.includes(m));
    return pub.length ? nonCompliant(`${String(el.attrs.role ?? 'a role')} granted to ${pub.join(', ')}`) : 'compliant';
  },
};
