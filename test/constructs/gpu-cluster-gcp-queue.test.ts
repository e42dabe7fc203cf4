/**
 * GpuCluster on GCP, issues 17 and 18: the Pub/Sub jobs queue (src/runtime-agent/queue/README.md, "GCP"),
 * its grants, the agent's queue and guard flags, the backlog autoscaler, compact placement, gVNIC and
 * the NCCL environment of multi-node groups.
 */
import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { GcpTarget, GcpTargetProps, GpuCluster, GpuClusterProps } from '../../src';
import { GCP_COMPACT_PLACEMENT_MAX_VMS } from '../../src/core/accelerators-gcp';
import { GCP_NCCL_ENV } from '../../src/constructs/gpu-cluster/gcp-placement';
import { buildGcpClusterQueue, PUBSUB_BACKLOG_METRIC } from '../../src/constructs/gpu-cluster/gcp-queue';
import { bashSyntaxCheck, countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const TARGET: GcpTargetProps = { project: 'ml-prod-123', region: 'us-central1' };
const BUNDLE = testAgentBundle();

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster) => void) =>
  synth((stack) => {
    const gcp = new GcpTarget(stack, 'gcp', TARGET);
    const c = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'A100-80GB', acceleratorsPerNode: 4, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: BUNDLE, ...props });
    extra?.(stack, c);
  });

const ref = (json: TerraformJson, type: string, attr: string, prefix = ''): string => {
  const name = Object.keys(resources(json, type)).find((k) => k.startsWith(prefix));
  if (!name) throw new Error(`no ${type} ${prefix}`);
  return `\${${type}.${name}.${attr}}`;
};
const byName = (json: TerraformJson, type: string, name: string): any => Object.values(resources(json, type)).find((r: any) => r.name === name);
const template = (json: TerraformJson): any => only(json, 'google_compute_instance_template');
const execStart = (json: TerraformJson): string => /^ExecStart=(.*)$/m.exec(template(json).metadata['startup-script'])![1];

describe('GpuCluster on GCP: the Pub/Sub jobs queue', () => {
  const { json } = build();
  const base = (only(json, 'google_compute_region_instance_group_manager') as any).name as string;
  const jobsTopic = byName(json, 'google_pubsub_topic', `${base}-jobs`);
  const dlqTopic = byName(json, 'google_pubsub_topic', `${base}-jobs-dlq`);
  const jobsSub = byName(json, 'google_pubsub_subscription', `${base}-jobs`);
  const dlqSub = byName(json, 'google_pubsub_subscription', `${base}-jobs-dlq`);
  const topicRef = (suffix: string, attr: string) => {
    const [k] = Object.entries(resources(json, 'google_pubsub_topic')).find(([, r]: any) => r.name === `${base}${suffix}`)!;
    return `\${google_pubsub_topic.${k}.${attr}}`;
  };
  const subRef = (suffix: string, attr: string) => {
    const [k] = Object.entries(resources(json, 'google_pubsub_subscription')).find(([, r]: any) => r.name === `${base}${suffix}`)!;
    return `\${google_pubsub_subscription.${k}.${attr}}`;
  };

  test('jobs topic and dead-letter topic, Google-managed encryption without a key', () => {
    expect(jobsTopic).toMatchObject({ project: 'ml-prod-123' });
    expect(dlqTopic).toMatchObject({ project: 'ml-prod-123' });
    expect(jobsTopic.kms_key_name).toBeUndefined();
    expect(dlqTopic.kms_key_name).toBeUndefined();
  });

  test('jobs subscription: pull, 60 s deadline, 7 days retention, never expires, dead-letter backstop of 100, at-least-once', () => {
    expect(jobsSub).toMatchObject({
      topic: topicRef('-jobs', 'id'), ack_deadline_seconds: 60, message_retention_duration: '604800s',
      expiration_policy: { ttl: '' }, retain_acked_messages: false, enable_exactly_once_delivery: false,
      dead_letter_policy: { dead_letter_topic: topicRef('-jobs-dlq', 'id'), max_delivery_attempts: 100 },
    });
    expect(jobsSub.push_config).toBeUndefined();
  });

  test('the dead-letter topic keeps a subscription of its own (a topic without one drops messages), never expiring', () => {
    expect(dlqSub).toMatchObject({ topic: topicRef('-jobs-dlq', 'id'), message_retention_duration: '604800s', expiration_policy: { ttl: '' } });
    expect(dlqSub.dead_letter_policy).toBeUndefined();
  });

  test('hosts: subscriber on the jobs subscription, publisher on the jobs and dead-letter topics; nothing at project level', () => {
    const host = ref(json, 'google_service_account', 'member');
    const topicGrants = (Object.values(resources(json, 'google_pubsub_topic_iam_member')) as any[]).filter((g) => g.member === host);
    expect(topicGrants.map((g) => [g.topic, g.role]).sort()).toEqual([
      [topicRef('-jobs', 'name'), 'roles/pubsub.publisher'], [topicRef('-jobs-dlq', 'name'), 'roles/pubsub.publisher']].sort());
    const subGrants = (Object.values(resources(json, 'google_pubsub_subscription_iam_member')) as any[]).filter((g) => g.member === host);
    expect(subGrants.map((g) => [g.subscription, g.role])).toEqual([[subRef('-jobs', 'name'), 'roles/pubsub.subscriber']]);
    for (const m of Object.values(resources(json, 'google_project_iam_member')) as any[]) expect(m.role).not.toMatch(/pubsub/);
  });

  test('the Pub/Sub service agent may forward undeliverable jobs: publisher on the DLQ, subscriber on the jobs subscription', () => {
    const agent = /^serviceAccount:service-\$\{data\.google_project\.[^}]+\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/;
    const topicGrants = (Object.values(resources(json, 'google_pubsub_topic_iam_member')) as any[]).filter((g) => agent.test(g.member));
    expect(topicGrants.map((g) => [g.topic, g.role])).toEqual([[topicRef('-jobs-dlq', 'name'), 'roles/pubsub.publisher']]);
    const subGrants = (Object.values(resources(json, 'google_pubsub_subscription_iam_member')) as any[]).filter((g) => agent.test(g.member));
    expect(subGrants.map((g) => [g.subscription, g.role])).toEqual([[subRef('-jobs', 'name'), 'roles/pubsub.subscriber']]);
    expect((Object.values(json.data!.google_project) as any[])[0]).toMatchObject({ project_id: 'ml-prod-123' });
  });

  test('with a Cloud KMS key: both topics encrypted with it, and the Pub/Sub service agent may use it', () => {
    const key = 'projects/ml-prod-123/locations/us-central1/keyRings/ml/cryptoKeys/queue';
    const { json: j } = synth((stack) => {
      const gcp = new GcpTarget(stack, 'gcp', TARGET);
      buildGcpClusterQueue(new Construct(stack, 'c'), { provider: gcp.provider, project: 'ml-prod-123', name: 'train', hostMember: 'serviceAccount:h@x.iam.gserviceaccount.com', kmsKeyName: key });
    });
    for (const t of Object.values(resources(j, 'google_pubsub_topic')) as any[]) expect(t.kms_key_name).toBe(key);
    expect(only(j, 'google_kms_crypto_key_iam_member')).toMatchObject({
      crypto_key_id: key, role: 'roles/cloudkms.cryptoKeyEncrypterDecrypter', member: expect.stringMatching(/@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/),
    });
  });

  test('the agent leases from the queue: --queue, --dead-letter-queue, --cluster-artifacts gs://BUCKET/cluster, --preemption gcp', () => {
    const line = execStart(json);
    const bucket = ref(json, 'google_storage_bucket', 'name');
    expect(line).toContain(` --queue pubsub://ml-prod-123/${topicRef('-jobs', 'name')}/${subRef('-jobs', 'name')}`);
    expect(line).toContain(` --dead-letter-queue pubsub://ml-prod-123/${topicRef('-jobs-dlq', 'name')}`);
    expect(line).toContain(` --cluster-artifacts gs://${bucket}/cluster`);
    expect(line).toContain(' --preemption gcp');
    expect(line).not.toContain('--pipeline-on-start');
    // The agent takes its token from the metadata server: the VM's scope covers Pub/Sub.
    expect(template(json).service_account.scopes).toEqual(['cloud-platform']);
    bashSyntaxCheck(renderTerraformString(template(json).metadata['startup-script']));
  });

  test('guards reach the agent: defaults, and the props when set', () => {
    expect(execStart(json)).toMatch(/ --max-duration-seconds 259200 --dead-man-minutes 30 --idle-gpu-util-percent 5( |$)/);
    const { json: j } = build({ maxJobDurationSeconds: 3600, deadManMinutes: 10, idleGpuUtilPercent: 0 });
    expect(execStart(j)).toMatch(/ --max-duration-seconds 3600 --dead-man-minutes 10 --idle-gpu-util-percent 0( |$)/);
  });

  test('autoscaler: scale out only, on the subscription backlog, one queued job per GPU per host, between nodes.min and nodes.max', () => {
    const a = only(json, 'google_compute_region_autoscaler') as any;
    expect(a).toMatchObject({ project: 'ml-prod-123', region: 'us-central1', target: ref(json, 'google_compute_region_instance_group_manager', 'id') });
    expect(a.autoscaling_policy).toEqual({
      min_replicas: 0, max_replicas: 4, mode: 'ONLY_SCALE_OUT',
      metric: [{ name: PUBSUB_BACKLOG_METRIC, filter: `resource.type = pubsub_subscription AND resource.labels.subscription_id = "${subRef('-jobs', 'name')}"`, single_instance_assignment: 4 }],
    });
    const { json: j } = build({ accelerator: 'L4', acceleratorsPerNode: 1, nodes: { min: 2, max: 6 } });
    expect((only(j, 'google_compute_region_autoscaler') as any).autoscaling_policy).toMatchObject({ min_replicas: 2, max_replicas: 6, metric: [expect.objectContaining({ single_instance_assignment: 1 })] });
  });

  test('public surface: jobQueue names the jobs topic; grantEnqueue is publish on that topic only, once per grantee', () => {
    const grants: unknown[] = [];
    const { json: j } = build({}, (stack, c) => {
      const other = new GpuCluster(stack, 'ops', { target: c.target, accelerator: 'L4', idleStopMinutes: 0, agentBundleDir: BUNDLE });
      grants.push(c.grantEnqueue(other), c.grantEnqueue(other));
      expect(c.jobQueue?.kind).toBe('pubsub');
    });
    expect(grants[1]).toBe(grants[0]);
    const mine = Object.entries(resources(j, 'google_pubsub_topic_iam_member')).filter(([k]) => k.startsWith('train_grants_')).map(([, g]) => g as any);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ role: 'roles/pubsub.publisher', member: expect.stringMatching(/^\$\{google_service_account\.ops_iam_host_[^}]+\.member\}$/) });
    const trainJobs = Object.entries(resources(j, 'google_pubsub_topic')).find(([k, t]: any) => k.startsWith('train_') && t.name.endsWith('-jobs'))![0];
    expect(mine[0].topic).toBe(`\${google_pubsub_topic.${trainJobs}.name}`);
    // The jobs-queue output carries jobQueue.topicId.
    expect(Object.values(j.output!).map((o) => o.value)).toContain(`\${google_pubsub_topic.${trainJobs}.id}`);
    expect(Object.keys(resources(j, 'google_pubsub_subscription_iam_member')).filter((k) => k.startsWith('train_grants_'))).toEqual([]);
  });
});

describe('GpuCluster on GCP: multi-node placement, gVNIC, NCCL', () => {
  test('a multi-node A2 group: a compact placement policy (COLLOCATED, no vm_count) named by the template', () => {
    const { json } = build();
    const p = only(json, 'google_compute_resource_policy') as any;
    expect(p).toMatchObject({ project: 'ml-prod-123', region: 'us-central1', group_placement_policy: { collocation: 'COLLOCATED' } });
    // vm_count would hold every VM until the full count exists: the group scales out one by one.
    expect(p.group_placement_policy.vm_count).toBeUndefined();
    expect(template(json).resource_policies).toEqual([ref(json, 'google_compute_resource_policy', 'self_link')]);
  });

  test.each([['H100', 8], ['H200', 8], ['L4', 4], ['A100-40GB', 16]] as const)('%s x%d across nodes gets compact placement too', (accelerator, count) => {
    const { json } = build({ accelerator, acceleratorsPerNode: count, nodes: { min: 0, max: 2 } });
    expect(countByType(json).google_compute_resource_policy).toBe(1);
    expect(template(json).resource_policies).toHaveLength(1);
  });

  test('one node: no placement policy, no NCCL environment', () => {
    const { json } = build({ nodes: { min: 0, max: 1 } });
    expect(resources(json, 'google_compute_resource_policy')).toEqual({});
    expect(template(json).resource_policies).toBeUndefined();
    expect(template(json).metadata['startup-script']).not.toContain('NCCL_');
  });

  test('multi-node jobs get the NCCL environment through the agent unit: sockets on every interface but lo and docker*', () => {
    const script: string = template(build().json).metadata['startup-script'];
    for (const [k, v] of Object.entries(GCP_NCCL_ENV)) expect(script).toContain(`\nEnvironment=${k}=${v}\n`);
    expect(GCP_NCCL_ENV.NCCL_SOCKET_IFNAME).toBe('^lo,docker');
    expect(GCP_NCCL_ENV).not.toHaveProperty('NCCL_NET_PLUGIN');
  });

  test('fails when a multi-node group runs on N1 (T4, V100): no compact placement there, the error names the shapes that have it', () => {
    expect(() => build({ accelerator: 'T4', acceleratorsPerNode: 1, nodes: { min: 0, max: 2 } }))
      .toThrow(/nodes\.max: T4 x1 runs on n1-standard-8 \(N1\), which a compact placement policy cannot hold.*a2-highgpu-\*.*a3-highgpu-\*.*g2-\*/);
    expect(() => build({ accelerator: 'V100', acceleratorsPerNode: 8, nodes: { min: 0, max: 3 } })).toThrow(/NOT_OFFERED.*n1-standard-64/);
    expect(() => build({ accelerator: 'V100', acceleratorsPerNode: 8, nodes: { min: 0, max: 1 } })).not.toThrow();
  });

  test(`fails when a compact group is larger than one policy holds (${GCP_COMPACT_PLACEMENT_MAX_VMS})`, () => {
    expect(() => build({ nodes: { min: 0, max: GCP_COMPACT_PLACEMENT_MAX_VMS + 1 } })).toThrow(/OUT_OF_RANGE.*nodes\.max.*at most 150 hosts/);
    expect(() => build({ nodes: { min: 0, max: GCP_COMPACT_PLACEMENT_MAX_VMS } })).not.toThrow();
  });

  test('an explicit machine type outside the catalog\'s series gets no policy and no refusal (the catalog does not know it)', () => {
    const { json } = build({ accelerator: 'L4', acceleratorsPerNode: 1, machineType: 'g4-standard-48' });
    expect(resources(json, 'google_compute_resource_policy')).toEqual({});
    expect(template(json).network_interface[0].nic_type).toBeUndefined();
  });
});
