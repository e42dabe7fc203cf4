/**
 * GCP rules for a cluster's Pub/Sub queue, its backlog autoscaler, compact placement and scheduled
 * Pub/Sub publishes (issues 17, 18). No GCP provider runs here, so each documented limit is encoded
 * once, with its source, and test/gcp-rules.test.ts runs it over every GCP stack and shows it failing.
 */
import type { TerraformJson } from '../helpers';

type Res = Record<string, any>;
export interface Violation { rule: string; at: string; problem: string }

const literal = (v: unknown): v is string => typeof v === 'string' && !v.includes('${');
const each = (json: TerraformJson, type: string): [string, Res][] => Object.entries(json.resource?.[type] ?? {}) as [string, Res][];
/** `${type.name.attr}` references of resources of `type`. */
const refTo = (v: unknown, type: string): string | undefined => (typeof v === 'string' ? new RegExp(`^\\$\\{${type}\\.([^.}]+)\\.[a-z_]+\\}$`).exec(v)?.[1] : undefined);
const seconds = (d: unknown): number | undefined => (typeof d === 'string' && /^\d+(\.\d+)?s$/.test(d) ? Number(d.slice(0, -1)) : undefined);

/**
 * Pub/Sub (pubsub/docs/reference/rest/v1/projects.subscriptions, pubsub/docs/subscription-properties,
 * pubsub/docs/handling-failures, pubsub/docs/admin#resource_names):
 * - topic and subscription names: 3-255, a letter first, [A-Za-z0-9-_.~+%], not starting with "goog";
 * - ack_deadline_seconds 10-600; message_retention_duration 10 minutes to 31 days;
 * - expiration_policy ttl "" (never) or at least 1 day;
 * - dead_letter_policy: max_delivery_attempts 5-100; the dead-letter topic has a subscription (a message
 *   published to a topic without one is lost: provider docs, dead_letter_topic); the Pub/Sub service
 *   agent holds publisher on the dead-letter topic and subscriber on the subscription, or forwarding
 *   silently does nothing.
 */
export function pubsubRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  const bad = (at: string, problem: string) => out.push({ rule: 'pubsub', at, problem });
  for (const type of ['google_pubsub_topic', 'google_pubsub_subscription']) {
    for (const [name, r] of each(json, type)) {
      if (literal(r.name) && (!/^[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$/.test(r.name) || r.name.startsWith('goog'))) bad(`${type}.${name}`, `name ${r.name}`);
    }
  }
  const agent = /@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/;
  const topicMembers = each(json, 'google_pubsub_topic_iam_member').map(([, m]) => m);
  const subMembers = each(json, 'google_pubsub_subscription_iam_member').map(([, m]) => m);
  for (const [name, s] of each(json, 'google_pubsub_subscription')) {
    const at = `google_pubsub_subscription.${name}`;
    const ack = s.ack_deadline_seconds;
    if (ack !== undefined && (ack < 10 || ack > 600)) bad(at, `ack_deadline_seconds ${ack} (10-600)`);
    const keep = seconds(s.message_retention_duration);
    if (s.message_retention_duration !== undefined && (keep === undefined || keep < 600 || keep > 31 * 86400)) bad(at, `message_retention_duration ${s.message_retention_duration} (600s-2678400s)`);
    const ttl = s.expiration_policy?.ttl;
    if (ttl !== undefined && ttl !== '' && !((seconds(ttl) ?? 0) >= 86400)) bad(at, `expiration ttl ${ttl} ("" or at least 1 day)`);
    const dl = s.dead_letter_policy;
    if (!dl) continue;
    const n = dl.max_delivery_attempts;
    if (n !== undefined && (n < 5 || n > 100)) bad(at, `max_delivery_attempts ${n} (5-100)`);
    const dlq = refTo(dl.dead_letter_topic, 'google_pubsub_topic');
    if (!dlq) continue;
    if (!each(json, 'google_pubsub_subscription').some(([, o]) => refTo(o.topic, 'google_pubsub_topic') === dlq)) bad(at, `dead-letter topic ${dlq} has no subscription`);
    if (!topicMembers.some((m) => refTo(m.topic, 'google_pubsub_topic') === dlq && m.role === 'roles/pubsub.publisher' && agent.test(String(m.member)))) bad(at, 'Pub/Sub service agent cannot publish to the dead-letter topic');
    if (!subMembers.some((m) => refTo(m.subscription, 'google_pubsub_subscription') === name && m.role === 'roles/pubsub.subscriber' && agent.test(String(m.member)))) bad(at, 'Pub/Sub service agent cannot subscribe to forward from it');
  }
  return out;
}

/**
 * Autoscalers (compute/docs/reference/rest/v1/autoscalers, AutoscalingPolicyCustomMetricUtilization;
 * provider docs of the instance group managers):
 * - a metric filter joins selectors with AND and compares with = only (no OR, NOT, !=, functions);
 * - single_instance_assignment is never combined with target / type (utilization);
 * - min_replicas <= max_replicas, mode one of ON, OFF, ONLY_SCALE_OUT;
 * - the target group sets no target_size ("should never be set" when attached to an autoscaler);
 * - a per-group Pub/Sub metric names the subscription of this stack it scales on.
 */
export function autoscalerRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [name, a] of each(json, 'google_compute_region_autoscaler')) {
    const at = `google_compute_region_autoscaler.${name}`;
    const bad = (problem: string) => out.push({ rule: 'autoscaler', at, problem });
    const p = a.autoscaling_policy ?? {};
    if (p.min_replicas > p.max_replicas) bad(`min_replicas ${p.min_replicas} above max_replicas ${p.max_replicas}`);
    if (p.mode !== undefined && !['ON', 'OFF', 'ONLY_SCALE_OUT'].includes(p.mode)) bad(`mode ${p.mode}`);
    for (const m of p.metric ?? []) {
      const f = String(m.filter ?? '');
      const selectors = f.split(/\s+AND\s+/);
      if (/\bOR\b|\bNOT\b|!=|[<>]|:|\(/.test(f.replace(/"[^"]*"/g, '""')) || selectors.some((x) => !/^[a-z_.]+\s*=\s*("[^"]*"|[A-Za-z0-9_./-]+)$/.test(x.trim()))) bad(`filter ${f}: AND and = only`);
      if (m.single_instance_assignment !== undefined && (m.target !== undefined || m.type !== undefined)) bad('single_instance_assignment with a utilization target');
      if (m.name === 'pubsub.googleapis.com/subscription/num_undelivered_messages') {
        const sub = /resource\.labels\.subscription_id = "\$\{google_pubsub_subscription\.([^.}]+)\.name\}"/.exec(f)?.[1];
        if (!sub || !json.resource?.google_pubsub_subscription?.[sub]) bad('Pub/Sub backlog metric without this stack\'s subscription');
        if (m.single_instance_assignment === undefined) bad('a per-group backlog metric needs single_instance_assignment');
      }
    }
    const group = refTo(a.target, 'google_compute_region_instance_group_manager');
    const mig = group ? json.resource?.google_compute_region_instance_group_manager?.[group] : undefined;
    if (!mig) bad('target is not a regional group of this stack');
    else if (mig.target_size !== undefined) bad(`its group ${group} sets target_size`);
  }
  return out;
}

/** Machine-type prefixes a compact placement policy may hold (ai-hypercomputer/docs/placement-policy-and-workload-policy). */
const COMPACT_SERIES = /^(a2-|a3-|a4-|a4x-|g2-|g4-|c2-|c2d-|c3-|c3d-|h3-|n2-|n2d-)/;

/**
 * Compact placement (compute/docs/instances/placement-policies-overview, provider docs):
 * - COLLOCATED only for machine series that support it, on hosts that TERMINATE on maintenance;
 * - at most one resource policy per template; the policy in the group's region;
 * - no vm_count on a policy of a group that scales (every VM waits for the full count: cluster-toolkit#1850);
 * - A3 hosts take gVNIC only (compute/docs/accelerator-optimized-machines, using-gvnic).
 */
export function placementRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  const policies: Record<string, Res> = json.resource?.google_compute_resource_policy ?? {};
  for (const [name, t] of each(json, 'google_compute_instance_template')) {
    const at = `google_compute_instance_template.${name}`;
    const bad = (problem: string) => out.push({ rule: 'placement', at, problem });
    if (/^a3-/.test(String(t.machine_type)) && !(t.network_interface ?? []).every((n: Res) => n.nic_type === 'GVNIC')) bad(`${t.machine_type} without gVNIC`);
    const rp: string[] = t.resource_policies ?? [];
    if (rp.length > 1) bad(`${rp.length} resource policies (at most 1)`);
    for (const r of rp) {
      const key = refTo(r, 'google_compute_resource_policy');
      const p: Res | undefined = key ? policies[key] : undefined;
      if (!p) { bad(`resource policy ${r} is not in this stack`); continue; }
      if (p.group_placement_policy?.collocation !== 'COLLOCATED') continue;
      if (literal(t.machine_type) && !COMPACT_SERIES.test(t.machine_type)) bad(`compact placement on ${t.machine_type}`);
      if (t.scheduling?.on_host_maintenance !== 'TERMINATE') bad('compact placement without on_host_maintenance TERMINATE');
      if (p.group_placement_policy.vm_count !== undefined) bad('vm_count on a policy of a scaling group');
      for (const [gname, g] of each(json, 'google_compute_region_instance_group_manager')) {
        const uses = (g.version ?? []).some((v: Res) => refTo(v.instance_template, 'google_compute_instance_template') === name);
        if (uses && literal(g.region) && literal(p.region) && g.region !== p.region) bad(`policy in ${p.region}, group ${gname} in ${g.region}`);
      }
    }
  }
  return out;
}

/**
 * Cloud Scheduler Pub/Sub targets (scheduler/docs/reference/rest/v1/projects.locations.jobs#PubsubTarget):
 * topic_name is a full projects/P/topics/T name (a topic's id), data is base64, and the job has no HTTP
 * target beside it (one target per job).
 */
export function schedulerRules(json: TerraformJson): Violation[] {
  const out: Violation[] = [];
  for (const [name, j] of each(json, 'google_cloud_scheduler_job')) {
    const at = `google_cloud_scheduler_job.${name}`;
    const bad = (problem: string) => out.push({ rule: 'scheduler', at, problem });
    const t = j.pubsub_target;
    if (!t) continue;
    if (j.http_target || j.app_engine_http_target) bad('more than one target');
    const topic = String(t.topic_name);
    if (!(/^\$\{google_pubsub_topic\.[^.}]+\.id\}$/.test(topic) || /^projects\/[^/]+\/topics\/[^/]+$/.test(topic))) bad(`topic_name ${topic} is not projects/P/topics/T`);
    const data = String(t.data ?? '');
    if (!(data.startsWith('${base64encode(') || (literal(data) && /^[A-Za-z0-9+/]+=*$/.test(data)))) bad('data is not base64');
  }
  return out;
}

export function queueRules(json: TerraformJson): Violation[] {
  return [...pubsubRules(json), ...autoscalerRules(json), ...placementRules(json), ...schedulerRules(json)];
}
