/**
 * GCP's rules, encoded: no GCP provider binary is reachable here, so every synthesized GCP stack is
 * checked against the documented limits of the APIs it will meet at apply time. Each rule names its
 * source; test/gcp-rules.test.ts runs them over the examples and a variant matrix and shows each failing.
 */
import type { TerraformJson } from '../helpers';
import { queueRules } from './gcp-rules-queue';

export type Res = Record<string, any>;
export interface Violation { rule: string; at: string; problem: string }

const literal = (v: unknown): v is string => typeof v === 'string' && !v.includes('${');
const each = (json: TerraformJson, type: string): [string, Res][] => Object.entries(json.resource?.[type] ?? {}) as [string, Res][];
export const googleTypes = (json: TerraformJson) => Object.keys(json.resource ?? {}).filter((t) => t.startsWith('google_'));

// ------------------------------------------------------------------------------------------ rules

/** RFC 1035 label: Compute Engine resource names. https://cloud.google.com/compute/docs/naming-resources */
const RFC1035 = (max: number) => new RegExp(`^[a-z](?:[-a-z0-9]{0,${max - 2}}[a-z0-9])?$`);

/**
 * Name rules per resource type and field: [type, field, pattern, what, source].
 */
const NAME_RULES: [string, string, RegExp, string, string][] = [
  // https://cloud.google.com/compute/docs/naming-resources (1-63, RFC 1035)
  ...['google_compute_network', 'google_compute_subnetwork', 'google_compute_router', 'google_compute_firewall', 'google_compute_forwarding_rule',
    'google_compute_region_backend_service', 'google_compute_region_health_check', 'google_compute_region_instance_group_manager',
    'google_compute_global_address', 'google_compute_region_autoscaler', 'google_compute_resource_policy'].map((t): [string, string, RegExp, string, string] => [t, 'name', RFC1035(63), 'RFC 1035, 1-63', 'compute/docs/naming-resources']),
  // router NAT names follow the same rule (compute/docs/reference/rest/v1/routers: nats[].name, RFC 1035)
  ['google_compute_router_nat', 'name', RFC1035(63), 'RFC 1035, 1-63', 'compute/docs/reference/rest/v1/routers'],
  // instanceGroupManagers.baseInstanceName: [a-z](([-a-z0-9]{0,57})|...), at most 58 (instance names add a 4+ char suffix)
  ['google_compute_region_instance_group_manager', 'base_instance_name', RFC1035(58), 'RFC 1035, 1-58', 'compute/docs/reference/rest/v1/regionInstanceGroupManagers'],
  // Provider docs, compute_instance_template.name_prefix: over 37 characters the unique suffix is shortened (collisions).
  ['google_compute_instance_template', 'name_prefix', /^[a-z][-a-z0-9]{0,36}$/, 'RFC 1035 start, at most 37', 'registry.terraform.io google_compute_instance_template#name_prefix'],
  // https://cloud.google.com/iam/docs/service-accounts-create#creating: 6-30, [a-z][a-z0-9-]*[a-z0-9]
  ['google_service_account', 'account_id', /^[a-z][-a-z0-9]{4,28}[a-z0-9]$/, '6-30 lower-case letters, digits, -', 'iam/docs/service-accounts-create'],
  // https://cloud.google.com/iam/docs/creating-custom-roles#naming_the_role: [a-zA-Z0-9_.], 3-64
  ['google_project_iam_custom_role', 'role_id', /^[a-zA-Z0-9_.]{3,64}$/, '3-64 of [a-zA-Z0-9_.]', 'iam/docs/creating-custom-roles'],
  // https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create: [a-zA-Z_0-9-]{1,255}
  ['google_secret_manager_secret', 'secret_id', /^[a-zA-Z0-9_-]{1,255}$/, '1-255 of [a-zA-Z0-9_-]', 'secret-manager/docs/reference/rest/v1/projects.secrets/create'],
  // https://cloud.google.com/memorystore/docs/redis/reference/rest/v1/projects.locations.instances/create: 1-40, letter first, no trailing -
  ['google_redis_instance', 'name', /^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$/, '1-40, RFC 1035', 'memorystore/docs/redis/reference/rest/v1/projects.locations.instances/create'],
  // https://cloud.google.com/bigquery/docs/datasets#dataset-naming: letters, digits, _; at most 1024
  ['google_bigquery_dataset', 'dataset_id', /^[A-Za-z0-9_]{1,1024}$/, '1-1024 of [A-Za-z0-9_]', 'bigquery/docs/datasets#dataset-naming'],
  // https://cloud.google.com/bigquery/docs/tables#table_naming (our tables use the ASCII subset)
  ['google_bigquery_table', 'table_id', /^[A-Za-z0-9_]{1,1024}$/, '1-1024 of [A-Za-z0-9_]', 'bigquery/docs/tables#table_naming'],
  // https://cloud.google.com/bigtable/docs/reference/admin/rest/v2/projects.instances/create: instanceId [a-z][a-z0-9\-]+[a-z0-9], 6-33
  ['google_bigtable_instance', 'name', /^[a-z][-a-z0-9]{4,31}[a-z0-9]$/, '6-33, [a-z][a-z0-9-]+[a-z0-9]', 'bigtable/docs/reference/admin/rest/v2/projects.instances/create'],
  // https://cloud.google.com/bigtable/docs/reference/admin/rest/v2/projects.instances.tables/create: tableId [_a-zA-Z0-9][-_.a-zA-Z0-9]*, at most 50
  ['google_bigtable_table', 'name', /^[_a-zA-Z0-9][-_.a-zA-Z0-9]{0,49}$/, '1-50 of [-_.a-zA-Z0-9]', 'bigtable/docs/reference/admin/rest/v2/projects.instances.tables/create'],
  // Cloud Run: "Service name must use only letters, numbers and '-'. Must begin with a letter and cannot end with a '-'. Maximum length is 63" (field violation quoted in jamesward/cloud-run-button#4)
  ['google_cloud_run_v2_service', 'name', RFC1035(63), 'RFC 1035, 1-63', 'jamesward/cloud-run-button#4 (Cloud Run field violation)'],
  // https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs: JOB_ID [a-zA-Z\d_-]{1,500}
  ['google_cloud_scheduler_job', 'name', /^[a-zA-Z\d_-]{1,500}$/, '1-500 of [a-zA-Z0-9_-]', 'scheduler/docs/reference/rest/v1/projects.locations.jobs'],
];

function nameRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [type, field, re, what, source] of NAME_RULES) {
    for (const [name, r] of each(json, type)) {
      const v = r[field];
      if (literal(v) && !re.test(v)) out.push({ rule: 'name', at: `${type}.${name}.${field}`, problem: `${JSON.stringify(v)} is not ${what} (${source})` });
    }
  }
  // Bigtable cluster ids: 6-30, [a-z][a-z0-9-]+[a-z0-9]; display names 4-30 (bigtable admin API, clusters.create / instances).
  for (const [name, r] of each(json, 'google_bigtable_instance')) {
    for (const c of r.cluster ?? []) {
      if (literal(c.cluster_id) && !/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/.test(c.cluster_id)) out.push({ rule: 'name', at: `google_bigtable_instance.${name}.cluster_id`, problem: `${c.cluster_id} is not 6-30 (bigtable clusters.create)` });
    }
    if (literal(r.display_name) && (r.display_name.length < 4 || r.display_name.length > 30)) out.push({ rule: 'name', at: `google_bigtable_instance.${name}.display_name`, problem: 'not 4-30 characters (bigtable instances)' });
  }
  // Firewall target tags are RFC 1035 labels of at most 63 (compute/docs/reference/rest/v1/firewalls: targetTags).
  for (const [name, r] of each(json, 'google_compute_firewall')) {
    for (const t of r.target_tags ?? []) if (literal(t) && !RFC1035(63).test(t)) out.push({ rule: 'name', at: `google_compute_firewall.${name}.target_tags`, problem: `${t} is not RFC 1035` });
  }
  return out;
}

/**
 * GCS bucket names: 3-63 of [a-z0-9-_.], starting and ending with a letter or digit, no "goog" prefix
 * and no "google" inside; names are global across all projects.
 * https://cloud.google.com/storage/docs/buckets#naming
 */
function bucketRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [name, r] of each(json, 'google_storage_bucket')) {
    const v = r.name;
    if (!literal(v)) continue;
    if (!/^[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]$/.test(v) || v.startsWith('goog') || v.includes('google') || v.includes('..')) {
      out.push({ rule: 'bucket-name', at: `google_storage_bucket.${name}`, problem: `${v} breaks storage/docs/buckets#naming` });
    }
  }
  return out;
}

/** Resource type -> the API that serves it (each API's REST reference names its service endpoint). */
const API_OF: [RegExp, string][] = [
  [/^google_compute_/, 'compute.googleapis.com'],
  // Service account IAM policy is read and written through the IAM API (serviceAccounts.setIamPolicy).
  [/^google_(service_account|service_account_iam_member|project_iam_custom_role)$/, 'iam.googleapis.com'],
  // Project IAM policy is read and written through the Resource Manager API (projects.getIamPolicy/setIamPolicy).
  [/^google_project_iam_member$/, 'cloudresourcemanager.googleapis.com'],
  [/^google_secret_manager_/, 'secretmanager.googleapis.com'],
  [/^google_storage_/, 'storage.googleapis.com'],
  [/^google_cloud_run_v2_/, 'run.googleapis.com'],
  [/^google_cloud_scheduler_/, 'cloudscheduler.googleapis.com'],
  [/^google_bigquery_/, 'bigquery.googleapis.com'],
  [/^google_bigtable_/, 'bigtableadmin.googleapis.com'],
  [/^google_redis_/, 'redis.googleapis.com'],
  [/^google_service_networking_connection$/, 'servicenetworking.googleapis.com'],
  [/^google_monitoring_/, 'monitoring.googleapis.com'],
  [/^google_pubsub_/, 'pubsub.googleapis.com'],
  [/^google_kms_/, 'cloudkms.googleapis.com'],
  [/^google_logging_/, 'logging.googleapis.com'],
];

/**
 * Required APIs: a fresh project has them off and every create fails with SERVICE_DISABLED until
 * they are enabled (https://cloud.google.com/service-usage/docs/enable-disable). Each resource's API
 * is enabled by a google_project_service of the same provider, the resource waits for it, and it is
 * never disabled on destroy (provider docs: google_project_service#disable_on_destroy).
 */
function apiRules(json: TerraformJson, opts: { apisManagedElsewhere?: boolean } = {}): Violation[] {
  const out: Violation[] = [];
  const services = each(json, 'google_project_service');
  for (const [name, s] of services) {
    if (s.disable_on_destroy !== false) out.push({ rule: 'apis', at: `google_project_service.${name}`, problem: 'disable_on_destroy is not false' });
  }
  if (opts.apisManagedElsewhere) return out;
  for (const type of googleTypes(json)) {
    if (type === 'google_project_service') continue;
    const api = API_OF.find(([re]) => re.test(type))?.[1];
    if (!api) { out.push({ rule: 'apis', at: type, problem: 'no API known for this type: add it to API_OF' }); continue; }
    for (const [name, r] of each(json, type)) {
      const enabling = services.filter(([, s]) => s.service === api && s.provider === r.provider);
      if (!enabling.length) { out.push({ rule: 'apis', at: `${type}.${name}`, problem: `${api} is not enabled for provider ${r.provider}` }); continue; }
      if (!enabling.some(([sn]) => (r.depends_on ?? []).includes(`google_project_service.${sn}`))) {
        out.push({ rule: 'apis', at: `${type}.${name}`, problem: `does not wait for ${api} (depends_on)` });
      }
    }
  }
  return out;
}

/**
 * Labels: keys 1-63, lower-case letter first, [a-z0-9_-]; values 0-63 of [a-z0-9_-]; at most 64.
 * https://cloud.google.com/compute/docs/labeling-resources#requirements
 */
function labelRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  const check = (at: string, labels: Record<string, unknown> | undefined) => {
    if (!labels || typeof labels !== 'object') return;
    const entries = Object.entries(labels);
    if (entries.length > 64) out.push({ rule: 'labels', at, problem: `${entries.length} labels (at most 64)` });
    for (const [k, v] of entries) {
      if (!/^[a-z][a-z0-9_-]{0,62}$/.test(k)) out.push({ rule: 'labels', at, problem: `key ${JSON.stringify(k)}` });
      if (literal(v) && !/^[a-z0-9_-]{0,63}$/.test(v)) out.push({ rule: 'labels', at, problem: `value ${JSON.stringify(v)} of ${k}` });
    }
  };
  for (const [i, p] of ((json.provider?.google ?? []) as Res[]).entries()) check(`provider.google[${i}].default_labels`, p.default_labels);
  for (const type of googleTypes(json)) {
    for (const [name, r] of each(json, type)) {
      // Notification channels: `labels` is the channel's configuration (email_address, url); resource labels are user_labels.
      if (type !== 'google_monitoring_notification_channel') check(`${type}.${name}.labels`, r.labels);
      check(`${type}.${name}.user_labels`, r.user_labels);
      if (r.template?.labels) check(`${type}.${name}.template.labels`, r.template.labels);
    }
  }
  return out;
}

/** Cloud Run L4 regions (run/docs/configuring/services/gpu, "Supported regions", across its revisions). */
const CLOUD_RUN_GPU_REGIONS = ['us-central1', 'us-east4', 'europe-west1', 'europe-west4', 'asia-southeast1', 'asia-south1'];
const memGiB = (m: string) => (/^(\d+)Gi$/.exec(m) ? Number(/^(\d+)Gi$/.exec(m)![1]) : /^(\d+)Mi$/.exec(m) ? Number(/^(\d+)Mi$/.exec(m)![1]) / 1024 : NaN);

/**
 * Cloud Run services with a GPU (https://cloud.google.com/run/docs/configuring/services/gpu): one
 * nvidia-l4 per instance, at least 4 CPU and 16 GiB, CPU always allocated (instance-based billing), a
 * supported region. Startup probes: failureThreshold x periodSeconds within 240 s without a GPU
 * (run/docs/configuring/healthchecks) and 1800 s with one (run/docs/configuring/jobs/healthchecks:
 * "600 seconds (1800 for GPU)"), periodSeconds at most 240 (v2 API, Probe). Revision names start with
 * the service name; a traffic tag has at least 3 characters and with the service name at most 46
 * (PolicyEngine/policyengine-api#3729, policyengine-sim-api#656: Cloud Run's rejections). The provider
 * defaults deletion_protection to true, which blocks destroy: it must be set on purpose.
 */
function cloudRunRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [name, s] of each(json, 'google_cloud_run_v2_service')) {
    const at = `google_cloud_run_v2_service.${name}`;
    const bad = (problem: string) => out.push({ rule: 'cloud-run', at, problem });
    if (typeof s.deletion_protection !== 'boolean') bad('deletion_protection not set explicitly');
    const t = s.template ?? {};
    if (literal(s.name) && literal(t.revision) && (!t.revision.startsWith(`${s.name}-`) || t.revision.length > 63)) bad(`revision ${t.revision} does not start with ${s.name}- or is over 63`);
    const total = (s.traffic ?? []).reduce((a: number, x: Res) => a + (x.percent ?? 0), 0);
    if (s.traffic && total !== 100) bad(`traffic sums to ${total}`);
    for (const x of s.traffic ?? []) {
      if (x.tag !== undefined && (!/^[a-z0-9][-a-z0-9]{2,}$/.test(x.tag) || (literal(s.name) && s.name.length + x.tag.length > 46))) bad(`traffic tag ${x.tag} (3+ characters, with the service name at most 46)`);
      if (x.type === 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION' && literal(s.name) && !String(x.revision).startsWith(`${s.name}-`)) bad(`traffic to ${x.revision}, not a revision of ${s.name}`);
    }
    for (const c of t.containers ?? []) {
      const limits = c.resources?.limits ?? {};
      const gpu = limits['nvidia.com/gpu'] !== undefined;
      const probe = c.startup_probe;
      if (probe) {
        const window = (probe.period_seconds ?? 10) * (probe.failure_threshold ?? 3);
        if (window > (gpu ? 1800 : 240)) bad(`startup window ${window}s over ${gpu ? 1800 : 240}s`);
        if ((probe.period_seconds ?? 10) > 240) bad('startup period over 240s');
        if ((probe.timeout_seconds ?? 1) > (probe.period_seconds ?? 10)) bad('probe timeout longer than its period');
      }
      if (!gpu) continue;
      if (limits['nvidia.com/gpu'] !== '1') bad('more than one GPU per instance');
      if (t.node_selector?.accelerator !== 'nvidia-l4') bad('GPU without node_selector accelerator nvidia-l4');
      if (!(Number(limits.cpu) >= 4)) bad(`GPU with cpu ${limits.cpu} (at least 4)`);
      if (!(memGiB(limits.memory) >= 16)) bad(`GPU with memory ${limits.memory} (at least 16Gi)`);
      if (c.resources?.cpu_idle !== false) bad('GPU without CPU always allocated (cpu_idle false)');
      if (literal(s.location) && !CLOUD_RUN_GPU_REGIONS.includes(s.location)) bad(`GPU in ${s.location}`);
      if (t.scaling?.max_instance_count === undefined) bad('GPU without max_instance_count (GPU quota)');
    }
  }
  return out;
}

/**
 * Regional MIGs and their GPU templates:
 * - a target shape other than EVEN needs instance_redistribution_type NONE
 *   (compute/docs/instance-groups/regional-mig-distribution-shape);
 * - fixed maxSurge / maxUnavailable are 0 or at least the number of zones, and one of them is above 0
 *   (compute/docs/reference/rest/v1/InstanceGroupManagerUpdatePolicy; gcloud rolling-action defaults);
 * - distribution zones lie in the group's region; autohealing initial delay 0-3600 s
 *   (compute/docs/reference/rest/v1/regionInstanceGroupManagers);
 * - GPU hosts cannot live-migrate: on_host_maintenance TERMINATE; Spot VMs do not restart
 *   (compute/docs/gpus/create-vm-with-gpus, compute/docs/instances/spot);
 * - A3 shapes come from Spot, reservations or flex-start, not on demand
 *   (compute/docs/accelerator-optimized-machines#a3-vms), and A3 Ultra boots from Hyperdisk only.
 */
function migRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [name, m] of each(json, 'google_compute_region_instance_group_manager')) {
    const at = `google_compute_region_instance_group_manager.${name}`;
    const bad = (problem: string) => out.push({ rule: 'mig', at, problem });
    const shape = m.distribution_policy_target_shape ?? 'EVEN';
    const p = m.update_policy ?? {};
    if (shape !== 'EVEN' && p.instance_redistribution_type !== 'NONE') bad(`shape ${shape} with instance_redistribution_type ${p.instance_redistribution_type}`);
    const zones = (m.distribution_policy_zones as string[] | undefined)?.length ?? 3;
    for (const f of ['max_surge_fixed', 'max_unavailable_fixed']) {
      const v = p[f];
      if (v !== undefined && v !== 0 && v < zones) bad(`${f} ${v}: 0 or at least ${zones} (zones)`);
    }
    if (p.max_surge_fixed === 0 && p.max_unavailable_fixed === 0) bad('maxSurge and maxUnavailable both 0');
    for (const z of m.distribution_policy_zones ?? []) if (literal(m.region) && !String(z).startsWith(`${m.region}-`)) bad(`zone ${z} outside ${m.region}`);
    const delay = m.auto_healing_policies?.initial_delay_sec;
    if (delay !== undefined && (delay < 0 || delay > 3600)) bad(`initial_delay_sec ${delay}`);
  }
  for (const [name, t] of each(json, 'google_compute_instance_template')) {
    const at = `google_compute_instance_template.${name}`;
    const bad = (problem: string) => out.push({ rule: 'gpu-template', at, problem });
    const sch = t.scheduling ?? {};
    if (t.guest_accelerator?.length && sch.on_host_maintenance !== 'TERMINATE') bad('GPU host without on_host_maintenance TERMINATE');
    if (sch.provisioning_model === 'SPOT' && sch.automatic_restart !== false) bad('Spot with automatic_restart');
    if (/^a3-/.test(t.machine_type) && sch.provisioning_model !== 'SPOT' && t.reservation_affinity?.type !== 'SPECIFIC_RESERVATION') bad(`${t.machine_type} on demand`);
    if (/^(a3-ultragpu|a4-)/.test(t.machine_type) && !(t.disk ?? []).every((d: Res) => String(d.disk_type).startsWith('hyperdisk'))) bad(`${t.machine_type} without Hyperdisk`);
  }
  return out;
}

/**
 * Private services access: one connection per VPC network and producer service (a second Create
 * fails: the peering exists). On a network the stack did not create, destroy must not remove the
 * peering other services use (deletion_policy ABANDON); on one it created, the peering must go with
 * it, or the network cannot be deleted (terraform-provider-google#16275, magic-modules#18476;
 * cloud.google.com/vpc/docs/configure-private-services-access).
 */
function psaRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  const seen = new Map<string, string>();
  for (const [name, c] of each(json, 'google_service_networking_connection')) {
    const key = `${c.provider}|${c.network}|${c.service}`;
    if (seen.has(key)) out.push({ rule: 'psa', at: `google_service_networking_connection.${name}`, problem: `second connection for ${c.network} (first: ${seen.get(key)})` });
    seen.set(key, name);
    const created = /^\$\{google_compute_network\.[^.]+\.(id|self_link|name)\}$/.test(String(c.network)) && !!json.resource?.google_compute_network?.[String(c.network).split('.')[1]];
    if (!created && c.deletion_policy !== 'ABANDON') out.push({ rule: 'psa', at: `google_service_networking_connection.${name}`, problem: 'destroy would delete the peering of a network others use' });
    if (created && c.deletion_policy === 'ABANDON') out.push({ rule: 'psa', at: `google_service_networking_connection.${name}`, problem: 'an abandoned peering blocks deleting the network this stack created' });
  }
  return out;
}

/**
 * IAM condition titles: required, at most 100 characters; descriptions at most 256
 * (https://cloud.google.com/iam/docs/conditions-overview#structure... Expr in the IAM API).
 */
function iamRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const type of googleTypes(json).filter((t) => t.endsWith('_iam_member'))) {
    for (const [name, r] of each(json, type)) {
      const c = r.condition;
      if (!c) continue;
      if (!c.title || (literal(c.title) && c.title.length > 100)) out.push({ rule: 'iam', at: `${type}.${name}`, problem: 'condition title missing or over 100' });
      if (literal(c.description) && c.description.length > 256) out.push({ rule: 'iam', at: `${type}.${name}`, problem: 'condition description over 256' });
    }
  }
  return out;
}

/** Names unique where GCP scopes them: per project (and type) for the named resources above. */
function uniquenessRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [type, field] of [['google_secret_manager_secret', 'secret_id'], ['google_service_account', 'account_id'], ['google_compute_region_instance_group_manager', 'name'],
    ['google_redis_instance', 'name'], ['google_bigquery_dataset', 'dataset_id'], ['google_cloud_run_v2_service', 'name'], ['google_compute_firewall', 'name'],
    ['google_pubsub_topic', 'name'], ['google_pubsub_subscription', 'name'], ['google_compute_region_autoscaler', 'name'], ['google_compute_resource_policy', 'name']]) {
    const seen = new Set<string>();
    for (const [name, r] of each(json, type)) {
      const key = `${r.project ?? r.provider}|${r[field]}`;
      if (literal(r[field]) && seen.has(key)) out.push({ rule: 'unique', at: `${type}.${name}`, problem: `${field} ${r[field]} twice in one project` });
      seen.add(key);
    }
  }
  return out;
}

export function checkGcpStack(json: TerraformJson, opts: { apisManagedElsewhere?: boolean } = {}): Violation[] {
  return [...nameRules(json), ...bucketRules(json), ...apiRules(json, opts), ...labelRules(json), ...cloudRunRules(json), ...migRules(json),
    ...psaRules(json), ...iamRules(json), ...uniquenessRules(json), ...queueRules(json)];
}
