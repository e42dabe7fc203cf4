import 'cdktf/lib/testing/adapters/jest';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job';
import { Duration, GcpTarget, GpuCluster } from '../../src';
import { Schedule, Step, TrainingPipeline, TrainingPipelineProps } from '../../src';
import { countByType, only, resources, synth, testAgentBundle } from '../helpers';

function build(props: Partial<TrainingPipelineProps> = {}) {
  let pipeline!: TrainingPipeline;
  const out = synth((stack) => {
    const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-prod', region: 'us-central1' });
    const cluster = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'L4', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
    pipeline = new TrainingPipeline(stack, 'ltv', {
      cluster, schedule: Schedule.cron('0 3 * * *'), timezone: 'America/New_York', autostop: false,
      steps: [
        Step.run('features', ['python3', 'featurize.py']),
        Step.run('train', ['python3', 'train.py'], { after: ['features'], retries: 1 }),
        Step.deployIfBetter('promote', { metric: 'val_loss', after: ['train'], higherIsBetter: false }),
      ],
      ...props,
    });
  });
  return { ...out, pipeline };
}

describe('TrainingPipeline on GCP', () => {
  const { text, json, pipeline } = build();
  const mig = Object.keys(resources(json, 'google_compute_region_instance_group_manager'))[0];
  const bucket = Object.keys(resources(json, 'google_storage_bucket'))[0];

  test('Cloud Scheduler job: cron, time zone, retries', () => {
    expect(text).toHaveResourceWithProperties(CloudSchedulerJob, {
      schedule: '0 3 * * *', time_zone: 'America/New_York', region: 'us-central1', project: 'ml-prod',
      retry_config: { retry_count: 5, min_backoff_duration: '30s', max_backoff_duration: '600s', max_doublings: 3, max_retry_duration: '3600s' },
    });
  });

  test('the scaling call: POST resize?size=1 on exactly the MIG, with an OAuth token of its own service account', () => {
    const job = only(json, 'google_cloud_scheduler_job') as any;
    expect(job.http_target.http_method).toBe('POST');
    expect(job.http_target.uri).toBe(
      `https://compute.googleapis.com/compute/v1/projects/ml-prod/regions/us-central1/instanceGroupManagers/\${google_compute_region_instance_group_manager.${mig}.name}/resize?size=1`);
    expect(job.http_target.oauth_token).toEqual({
      service_account_email: expect.stringMatching(/^\$\{google_service_account\.ltv_schedule_service-account_[0-9A-F]{8}\.email\}$/),
      scope: 'https://www.googleapis.com/auth/cloud-platform',
    });
  });

  test('the scheduler service account may only resize the group: the scale role, conditioned on the MIG', () => {
    const sa = Object.keys(resources(json, 'google_service_account')).find((k) => k.startsWith('ltv_'))!;
    const members = Object.values(resources(json, 'google_project_iam_member')).filter((m: any) => m.member === `\${google_service_account.${sa}.member}`) as any[];
    expect(members).toHaveLength(1);
    expect(members[0].role).toMatch(/^\$\{google_project_iam_custom_role\..+\.name\}$/);
    const migName = (resources(json, 'google_compute_region_instance_group_manager')[mig] as any).name;
    expect(members[0].condition.expression).toBe(`resource.name == "projects/ml-prod/regions/us-central1/instanceGroupManagers/${migName}"`);
    const role = only(json, 'google_project_iam_custom_role') as any;
    expect(role.permissions).toEqual(['compute.instanceGroupManagers.get', 'compute.instanceGroupManagers.update']);
    expect(Object.values(resources(json, 'google_storage_bucket_iam_member')).some((m: any) => m.member.includes(sa))).toBe(false);
  });

  test('the spec: a GCS object in the cluster bucket named by its hash, content the PipelineSpec', () => {
    const o = Object.values(resources(json, 'google_storage_bucket_object')).find((x: any) => String(x.name).startsWith('pipelines/')) as any;
    expect(o.name).toBe(`pipelines/${pipeline.name}/spec-${pipeline.specId}.json`);
    expect(o.bucket).toBe(`\${google_storage_bucket.${bucket}.name}`);
    expect(JSON.parse(o.content)).toEqual({
      version: 1, name: pipeline.name, artifactsUri: `gs://\${google_storage_bucket.${bucket}.name}/pipelines/${pipeline.name}`,
      autostop: false, params: {},
      steps: [
        { kind: 'run', name: 'features', argv: ['python3', 'featurize.py'], env: {}, after: [], retries: 0, gpus: 1 },
        { kind: 'run', name: 'train', argv: ['python3', 'train.py'], env: {}, after: ['features'], retries: 1, gpus: 1 },
        { kind: 'deployIfBetter', name: 'promote', after: ['train'], metric: 'val_loss', higherIsBetter: false },
      ],
    });
    expect(pipeline.specUri.startsWith('gs://')).toBe(true);
    expect(pipeline.specUri.endsWith(`/pipelines/${pipeline.name}/spec-${pipeline.specId}.json`)).toBe(true);
  });

  test('hosts started from zero run the pipeline', () => {
    const tpl = only(json, 'google_compute_instance_template') as any;
    expect(tpl.metadata['startup-script']).toContain(`--pipeline-on-start gs://\${google_storage_bucket.${bucket}.name}/pipelines/${pipeline.name}/spec-${pipeline.specId}.json`);
  });

  test('rates become crons; rates with no cron form fail', () => {
    expect((only(build({ schedule: Schedule.rate(Duration.minutes(15)) }).json, 'google_cloud_scheduler_job') as any).schedule).toBe('*/15 * * * *');
    expect(() => build({ schedule: Schedule.rate(Duration.minutes(90)) })).toThrow(/rate\(90 minutes\) cannot be written as a cron expression, which Cloud Scheduler needs/);
  });

  test('creates exactly these', () => {
    const all = countByType(json);
    expect({ job: all.google_cloud_scheduler_job, objects: all.google_storage_bucket_object, sa: all.google_service_account, members: all.google_project_iam_member })
      .toEqual({ job: 1, objects: 3, sa: 2, members: 4 });
  });

  test('snapshot', () => {
    const mine = Object.fromEntries(Object.entries(json.resource!).map(([type, byName]) => [type, Object.fromEntries(Object.entries(byName).filter(([k]) => k.startsWith('ltv') || k.startsWith('train_grants')))])
      .filter(([, byName]) => Object.keys(byName as object).length));
    expect(mine).toMatchSnapshot();
  });
});
