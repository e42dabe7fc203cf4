/**
 * GCP's rules, encoded: no GCP provider binary is reachable here, so every synthesized GCP stack
 * (the examples and a variant matrix) is checked against the documented limits of the APIs it will
 * meet at apply time. Each rule names its source. Each rule is also shown to fail on a bad input.
 */
import { TerraformStack, TerraformVariable, Testing } from 'cdktf';
import { EXAMPLE_NAMES, exampleOutput } from './support/examples';
import {
  Duration, GcpTarget, GcpTargetProps, GpuCluster, GpuClusterProps, ModelEndpoint, MonitoringStack, Rollout, Schedule, Step, TrainingPipeline,
} from '../src';
import { FeatureStore } from '../src/constructs/feature-store';
import { TerraformJson, testAgentBundle } from './helpers';
import { checkGcpStack, googleTypes, Res } from './support/gcp-rules';

// --------------------------------------------------------------------------------------- stacks

interface Case { name: string; json: TerraformJson; opts?: { apisManagedElsewhere?: boolean } }

const isGcp = (json: TerraformJson) => googleTypes(json).length > 0;

const BUNDLE = testAgentBundle();
const LONG = 'recommendation-models-training-cluster-for-the-search-team';

/** One program over every GCP construct; the matrix varies its inputs. */
function platform(stack: TerraformStack, target: Partial<GcpTargetProps> & { project: string }, o: {
  ids?: string; cluster?: Partial<GpuClusterProps>; online?: 'redis' | 'bigtable'; endpointGpu?: boolean; rollout?: 'canary' | 'linear' | 'blue-green' | 'all';
} = {}): void {
  const gcp = new GcpTarget(stack, 'gcp', { region: 'us-central1', ...target });
  const id = (s: string) => (o.ids ? `${o.ids}-${s}` : s);
  const cluster = new GpuCluster(stack, id('train'), { target: gcp, accelerator: 'A100-80GB', acceleratorsPerNode: 4, nodes: { min: 0, max: 4 }, spot: true, idleStopMinutes: 30, agentBundleDir: BUNDLE, ...o.cluster });
  const store = new FeatureStore(stack, id('features'), { target: gcp, online: o.online ?? 'bigtable' });
  store.addFeatureView({ name: 'user_stats', entities: [{ name: 'user_id', type: 'int64' }], features: [{ name: 'ltv', type: 'float' }], ttl: Duration.days(1) });
  store.grantRead(cluster);
  const pipeline = new TrainingPipeline(stack, id('pipeline'), {
    cluster, schedule: Schedule.cron('0 3 * * *'),
    steps: [Step.run('train', ['python3', 'train.py'], { gpus: 1 }), Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] })],
  });
  const rollout = o.rollout ?? 'canary';
  const endpoint = new ModelEndpoint(stack, id('api'), {
    target: gcp, model: 'gs://ml-models/ltv/v3', image: 'us-docker.pkg.dev/p/serving/ltv:1.0', replicas: { min: 0, max: 3 },
    ...(o.endpointGpu === false ? {} : { accelerator: 'L4' as const }),
    ...(rollout === 'all' ? {} : {
      rollout: rollout === 'canary' ? Rollout.canary({ percent: 10 }) : rollout === 'linear' ? Rollout.linear({ percentPerStep: 25, stepMinutes: 5 }) : Rollout.blueGreen(),
      revision: 'v2', previous: { revision: 'v1', deployed: true, model: 'gs://ml-models/ltv/v2' },
    }),
  });
  new MonitoringStack(stack, id('ops'), { target: gcp, notify: ['ml-oncall@example.com'] })
    .watch(cluster).watch(pipeline, { maxAge: Duration.hours(26) }).watch(endpoint, { p99LatencyMs: 300, errorRatePercent: 1 });
}

function variant(name: string, build: (stack: TerraformStack) => void, opts?: Case['opts']): Case {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'v');
  build(stack);
  return { name, json: JSON.parse(Testing.synth(stack, true)), opts };
}

const GCP_SHAPES: [GpuClusterProps['accelerator'], number][] = [['T4', 1], ['T4', 4], ['L4', 1], ['L4', 8], ['V100', 8], ['A100-40GB', 1], ['A100-40GB', 16], ['A100-80GB', 8]];

const VARIANTS: Case[] = [
  variant('default platform', (s) => platform(s, { project: 'ml-prod-123' })),
  variant('long project id and long construct ids', (s) => platform(s, { project: 'a-very-long-project-id-123456' }, { ids: LONG, online: 'redis' })),
  variant('redis online store, CPU-only endpoint, linear', (s) => platform(s, { project: 'ml-prod-123' }, { online: 'redis', endpointGpu: false, rollout: 'linear' })),
  variant('blue/green, zones, multi-node', (s) => platform(s, { project: 'ml-prod-123', zones: ['us-central1-a', 'us-central1-c'] }, { rollout: 'blue-green', cluster: { nodes: { min: 0, max: 8 } } })),
  variant('all-at-once, no idle stop, labels', (s) => platform(s, { project: 'ml-prod-123', labels: { team: 'search', env: 'prod' } }, { rollout: 'all', cluster: { idleStopMinutes: 0 } })),
  variant('H100 on Spot; H200 from a reservation', (s) => {
    const gcp = new GcpTarget(s, 'gcp', { project: 'ml-prod-123', region: 'us-central1', reservations: { 'a3-ultragpu-8g': 'h200-block' } });
    new GpuCluster(s, 'h100', { target: gcp, accelerator: 'H100', acceleratorsPerNode: 8, spot: true, agentBundleDir: BUNDLE });
    new GpuCluster(s, 'h200', { target: gcp, accelerator: 'H200', acceleratorsPerNode: 8, spot: false, agentBundleDir: BUNDLE });
  }),
  variant('multi-node A3 High and G2 groups: compact placement, gVNIC, a schedule on a group kept up', (s) => {
    const gcp = new GcpTarget(s, 'gcp', { project: 'ml-prod-123', region: 'us-central1', zones: ['us-central1-a'] });
    new GpuCluster(s, 'h100', { target: gcp, accelerator: 'H100', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: BUNDLE });
    const l4 = new GpuCluster(s, 'l4', { target: gcp, accelerator: 'L4', acceleratorsPerNode: 4, nodes: { min: 1, max: 3 }, agentBundleDir: BUNDLE });
    new TrainingPipeline(s, 'nightly', { cluster: l4, schedule: Schedule.rate(Duration.hours(6)), steps: [Step.run('train', ['python3', 'train.py'], { gpus: 4 })] });
  }),
  variant('every catalog shape that GCE sells on demand', (s) => {
    const gcp = new GcpTarget(s, 'gcp', { project: 'ml-prod-123', region: 'us-central1' });
    GCP_SHAPES.forEach(([accelerator, n]) => new GpuCluster(s, `c-${accelerator.toLowerCase()}-${n}`, { target: gcp, accelerator, acceleratorsPerNode: n, spot: false, agentBundleDir: BUNDLE }));
  }),
  variant('two Redis stores on one network; a second project in the same stack', (s) => {
    const a = new GcpTarget(s, 'a', { project: 'ml-prod-123', region: 'us-central1' });
    const b = new GcpTarget(s, 'b', { project: 'ml-other-456', region: 'europe-west4' });
    new FeatureStore(s, 'online-a', { target: a, online: 'redis' });
    new FeatureStore(s, 'online-b', { target: a, online: 'redis' });
    new FeatureStore(s, 'online-c', { target: b, online: 'redis' });
    new ModelEndpoint(s, 'eu-api', { target: b, model: 'gs://ml-models/x/v1', image: 'us-docker.pkg.dev/p/s/x:1', accelerator: 'L4', replicas: { min: 0, max: 2 } });
  }),
  variant('a given network: the stack makes private services access on it', (s) => platform(s, {
    project: 'ml-prod-123',
    network: { network: 'projects/ml-prod-123/global/networks/shared', subnetwork: 'projects/ml-prod-123/regions/us-central1/subnetworks/ml', cidrBlock: '10.8.0.0/20' },
  }, { online: 'redis' })),
  variant('APIs managed centrally, adopted network and private services access', (s) => platform(s, {
    project: 'ml-prod-123', manageApis: false, privateServiceAccessRange: 'shared-psa',
    network: { network: 'projects/ml-prod-123/global/networks/shared', subnetwork: 'projects/ml-prod-123/regions/us-central1/subnetworks/ml', cidrBlock: '10.8.0.0/20' },
  }, { online: 'redis' }), { apisManagedElsewhere: true }),
];

// The examples come from the run's shared synth (test/support/examples.ts), as `cdktf synth` writes them.
const EXAMPLE_CASES: Case[] = EXAMPLE_NAMES.flatMap((example) =>
  Object.values(exampleOutput(example).stacks).filter(isGcp).map((json, i) => ({ name: `example ${example} #${i}`, json: json as TerraformJson })));

// ---------------------------------------------------------------------------------------- tests

describe('GCP rules over every GCP stack', () => {
  test('the examples have GCP stacks to check', () => {
    expect(EXAMPLE_CASES.length).toBeGreaterThanOrEqual(5);
  });

  test.each([...EXAMPLE_CASES, ...VARIANTS].map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(checkGcpStack(c.json, c.opts)).toEqual([]);
  });

  test('bucket names are global: the same program in two projects gets disjoint bucket names; no name repeats anywhere', () => {
    const names = (project: string) => Object.values(variant('p', (s) => platform(s, { project }, { online: 'redis' })).json.resource?.google_storage_bucket ?? {}).map((b: any) => b.name as string);
    const a = names('ml-prod-123');
    const b = names('ml-stage-456');
    expect(a.length).toBeGreaterThan(0);
    expect(a.filter((n) => b.includes(n))).toEqual([]);
    for (const c of [...EXAMPLE_CASES, ...VARIANTS]) {
      const all = Object.values(c.json.resource?.google_storage_bucket ?? {}).map((x: any) => x.name);
      expect(new Set(all).size).toBe(all.length);
    }
  });

  test('a project id known only at apply time still goes into the bucket name (hashed by Terraform)', () => {
    const { json } = variant('token', (s) => platform(s, { project: new TerraformVariable(s, 'project', { type: 'string' }).stringValue }));
    for (const bkt of Object.values(json.resource?.google_storage_bucket ?? {}) as any[]) expect(bkt.name).toMatch(/sha256\(/);
  });
});

describe('each rule fails on what it forbids', () => {
  const base = (): TerraformJson => JSON.parse(JSON.stringify(VARIANTS[0].json));
  const first = (json: TerraformJson, type: string): Res => Object.values(json.resource![type])[0] as Res;
  const rulesOf = (json: TerraformJson) => [...new Set(checkGcpStack(json).map((v) => v.rule))];
  const jobsSub = (json: TerraformJson): Res => Object.values(json.resource!.google_pubsub_subscription).find((x) => (x as Res).dead_letter_policy) as Res;

  test.each<[string, string, (j: TerraformJson) => void]>([
    ['name', 'service account id of 31 characters', (j) => { first(j, 'google_service_account').account_id = 'a'.repeat(31); }],
    ['name', 'instance template prefix over 37', (j) => { first(j, 'google_compute_instance_template').name_prefix = `${'a'.repeat(40)}-`; }],
    ['name', 'base instance name over 58', (j) => { first(j, 'google_compute_region_instance_group_manager').base_instance_name = 'a'.repeat(59); }],
    ['name', 'Bigtable table name over 50', (j) => { first(j, 'google_bigtable_table').name = 'p.'.padEnd(51, 'x'); }],
    ['bucket-name', 'bucket named goog-*', (j) => { first(j, 'google_storage_bucket').name = 'goog-data'; }],
    ['bucket-name', 'bucket name of 64', (j) => { first(j, 'google_storage_bucket').name = 'a'.repeat(64); }],
    ['apis', 'an API left on at destroy', (j) => { first(j, 'google_project_service').disable_on_destroy = true; }],
    ['apis', 'a resource that does not wait for its API', (j) => { first(j, 'google_redis_instance' in (j.resource ?? {}) ? 'google_redis_instance' : 'google_bigtable_instance').depends_on = []; }],
    ['labels', 'an upper-case label value', (j) => { first(j, 'google_compute_instance_template').labels = { team: 'Search' }; }],
    ['cloud-run', 'a GPU service with 2 vCPU', (j) => { first(j, 'google_cloud_run_v2_service').template.containers[0].resources.limits.cpu = '2'; }],
    ['cloud-run', 'a GPU service with CPU throttled', (j) => { first(j, 'google_cloud_run_v2_service').template.containers[0].resources.cpu_idle = true; }],
    ['cloud-run', 'deletion protection left to the provider', (j) => { delete first(j, 'google_cloud_run_v2_service').deletion_protection; }],
    ['cloud-run', 'a startup window of 20 minutes without a GPU', (j) => {
      const c = first(j, 'google_cloud_run_v2_service').template.containers[0];
      delete c.resources.limits['nvidia.com/gpu'];
      c.startup_probe.failure_threshold = 120;
    }],
    ['mig', 'ANY_SINGLE_ZONE with proactive redistribution', (j) => { first(j, 'google_compute_region_instance_group_manager').update_policy.instance_redistribution_type = 'PROACTIVE'; }],
    ['mig', 'maxUnavailable 2 over three zones', (j) => { first(j, 'google_compute_region_instance_group_manager').update_policy.max_unavailable_fixed = 2; }],
    ['gpu-template', 'an a3 host on demand', (j) => {
      const t = first(j, 'google_compute_instance_template');
      t.machine_type = 'a3-highgpu-8g';
      t.scheduling = { provisioning_model: 'STANDARD', on_host_maintenance: 'TERMINATE' };
    }],
    ['psa', 'a second connection on the same network', (j) => {
      const [k, c] = Object.entries(VARIANTS[1].json.resource!.google_service_networking_connection)[0] as [string, Res];
      j.resource!.google_service_networking_connection = { [k]: c, [`${k}_2`]: { ...c } };
    }],
    ['psa', 'a connection on a given network deleted on destroy', (j) => {
      j.resource!.google_service_networking_connection = { x: { ...(Object.values(VARIANTS[1].json.resource!.google_service_networking_connection)[0] as Res), network: 'projects/p/global/networks/shared' } };
    }],
    ['psa', 'a connection on the stack\'s own network abandoned on destroy', (j) => {
      const net = Object.keys(j.resource!.google_compute_network)[0];
      j.resource!.google_service_networking_connection = { x: { ...(Object.values(VARIANTS[1].json.resource!.google_service_networking_connection)[0] as Res), network: `\${google_compute_network.${net}.id}`, deletion_policy: 'ABANDON' } };
    }],
    ['iam', 'a condition title of 101', (j) => { first(j, 'google_project_iam_member').condition = { title: 'x'.repeat(101), expression: 'true' }; }],
    ['pubsub', 'an ack deadline of 601 s', (j) => { jobsSub(j).ack_deadline_seconds = 601; }],
    ['pubsub', 'a subscription keeping messages 32 days', (j) => { jobsSub(j).message_retention_duration = '2764800s'; }],
    ['pubsub', 'a subscription expiring after an hour', (j) => { jobsSub(j).expiration_policy = { ttl: '3600s' }; }],
    ['pubsub', 'a dead-letter policy of 101 attempts', (j) => { jobsSub(j).dead_letter_policy.max_delivery_attempts = 101; }],
    ['pubsub', 'dead-lettering the Pub/Sub service agent may not do', (j) => {
      const members = j.resource!.google_pubsub_topic_iam_member;
      for (const [k, m] of Object.entries(members)) if (/gcp-sa-pubsub/.test((m as Res).member)) delete members[k];
    }],
    ['pubsub', 'a dead-letter topic without a subscription', (j) => {
      const subs = j.resource!.google_pubsub_subscription;
      for (const [k, x] of Object.entries(subs)) if (!(x as Res).dead_letter_policy) delete subs[k];
    }],
    ['pubsub', 'a topic named goog-jobs', (j) => { first(j, 'google_pubsub_topic').name = 'goog-jobs'; }],
    ['autoscaler', 'an OR in the metric filter', (j) => { const m = first(j, 'google_compute_region_autoscaler').autoscaling_policy.metric[0]; m.filter = `${m.filter} OR resource.type = gce_instance`; }],
    ['autoscaler', 'a utilization target beside a single-instance assignment', (j) => { first(j, 'google_compute_region_autoscaler').autoscaling_policy.metric[0].target = 10; }],
    ['autoscaler', 'target_size on an autoscaled group', (j) => { first(j, 'google_compute_region_instance_group_manager').target_size = 0; }],
    ['placement', 'compact placement on an N1 host', (j) => { first(j, 'google_compute_instance_template').machine_type = 'n1-standard-8'; }],
    ['placement', 'vm_count on a scaling group\'s policy', (j) => { first(j, 'google_compute_resource_policy').group_placement_policy.vm_count = 4; }],
    ['placement', 'an A3 host without gVNIC', (j) => {
      const t = first(j, 'google_compute_instance_template');
      t.machine_type = 'a3-highgpu-8g';
      delete t.network_interface[0].nic_type;
    }],
    ['scheduler', 'a Pub/Sub target named by its short name', (j) => { first(j, 'google_cloud_scheduler_job').pubsub_target.topic_name = 'jobs'; }],
    ['scheduler', 'a Pub/Sub target with plain-text data', (j) => { first(j, 'google_cloud_scheduler_job').pubsub_target.data = '{"v":1}'; }],
    ['unique', 'two secrets with one id', (j) => {
      const secrets = j.resource!.google_secret_manager_secret;
      const [k, s] = Object.entries(secrets)[0];
      secrets[`${k}_copy`] = { ...(s as Res) };
    }],
  ])('%s: %s', (rule, _what, mutate) => {
    const json = base();
    expect(rulesOf(json)).toEqual([]);
    mutate(json);
    expect(rulesOf(json)).toContain(rule);
  });
});
