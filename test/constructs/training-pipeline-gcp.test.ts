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
  const bucket = Object.keys(resources(json, 'google_storage_bucket'))[0];

  test('Cloud Scheduler job: cron, time zone, retries', () => {
    expect(text).toHaveResourceWithProperties(CloudSchedulerJob, {
      schedule: '0 3 * * *', time_zone: 'America/New_York', region: 'us-central1', project: 'ml-prod',
      retry_config: { retry_count: 5, min_backoff_duration: '30s', max_backoff_duration: '600s', max_doublings: 3, max_retry_duration: '3600s' },
    });
  });

  const jobsTopic = Object.keys(resources(json, 'google_pubsub_topic')).find((k) => (resources(json, 'google_pubsub_topic')[k] as any).name.endsWith('-jobs'))!;

  test('the schedule enqueues one run: a Pub/Sub target on the cluster\'s jobs topic, no HTTP call, nothing resized', () => {
    const job = only(json, 'google_cloud_scheduler_job') as any;
    expect(job.pubsub_target.topic_name).toBe(`\${google_pubsub_topic.${jobsTopic}.id}`);
    expect(job.http_target).toBeUndefined();
    // Ignored for Pub/Sub targets (Cloud Scheduler API): not set.
    expect(job.attempt_deadline).toBeUndefined();
    expect(JSON.stringify(job)).not.toMatch(/resize|instanceGroupManagers|compute\.googleapis/);
  });

  test('the message: base64 of {"v":1,"kind":"pipeline-run","pipeline":NAME,"spec":SPEC URI}, keys in that order', () => {
    const data: string = (only(json, 'google_cloud_scheduler_job') as any).pubsub_target.data;
    const m = /^\$\{base64encode\(join\("", \[(.*)\]\)\)\}$/.exec(data);
    expect(m).not.toBeNull();
    // The parts: HCL strings (their escapes here are JSON's) and bare references, written back as ${...}.
    const parts = m![1].replace(/(^|, )(google_[a-z_]+\.[^,\]]+)(?=, |$)/g, (_all, sep: string, r: string) => `${sep}"\${${r}}"`);
    const body = (JSON.parse(`[${parts}]`) as string[]).join('');
    expect(body).toBe(`{"v":1,"kind":"pipeline-run","pipeline":"${pipeline.name}","spec":"gs://\${google_storage_bucket.${bucket}.name}/pipelines/${pipeline.name}/spec-${pipeline.specId}.json"}`);
    // What Terraform sends once the bucket name is known decodes to the agent's message.
    const sent = Buffer.from(body.replace(/\$\{google_storage_bucket\.[^}]+\.name\}/, 'bkt'), 'utf8').toString('base64');
    expect(JSON.parse(Buffer.from(sent, 'base64').toString('utf8'))).toEqual({ v: 1, kind: 'pipeline-run', pipeline: pipeline.name, spec: `gs://bkt/pipelines/${pipeline.name}/spec-${pipeline.specId}.json` });
  });

  test('the Cloud Scheduler service agent may publish to exactly the jobs topic; no scheduler service account, no scale role', () => {
    const agent = /^serviceAccount:service-\$\{data\.google_project\.ltv_schedule_project_[^}]+\.number\}@gcp-sa-cloudscheduler\.iam\.gserviceaccount\.com$/;
    const grants = (Object.values(resources(json, 'google_pubsub_topic_iam_member')) as any[]).filter((g) => agent.test(g.member));
    expect(grants).toEqual([expect.objectContaining({ topic: `\${google_pubsub_topic.${jobsTopic}.name}`, role: 'roles/pubsub.publisher' })]);
    expect(Object.keys(resources(json, 'google_service_account')).filter((k) => k.startsWith('ltv_'))).toEqual([]);
    expect((Object.values(resources(json, 'google_project_iam_member')) as any[]).filter((m) => agent.test(m.member))).toEqual([]);
    expect(Object.values(resources(json, 'google_project_service')).map((x: any) => x.service)).toEqual(expect.arrayContaining(['cloudscheduler.googleapis.com', 'pubsub.googleapis.com']));
  });

  test('a cluster that keeps hosts up takes a schedule too: the run is queued, not started by raising the group', () => {
    expect(() => synth((stack) => {
      const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-prod', region: 'us-central1' });
      const cluster = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'L4', nodes: { min: 1, max: 2 }, agentBundleDir: testAgentBundle() });
      new TrainingPipeline(stack, 'p', { cluster, schedule: Schedule.cron('0 3 * * *'), steps: [Step.run('train', ['python3', 'train.py'])] });
    })).not.toThrow();
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

  test('hosts no longer run the pipeline at start', () => {
    const tpl = only(json, 'google_compute_instance_template') as any;
    expect(tpl.metadata['startup-script']).not.toContain('--pipeline-on-start');
  });

  test('rates become crons; rates with no cron form fail', () => {
    expect((only(build({ schedule: Schedule.rate(Duration.minutes(15)) }).json, 'google_cloud_scheduler_job') as any).schedule).toBe('*/15 * * * *');
    expect(() => build({ schedule: Schedule.rate(Duration.minutes(90)) })).toThrow(/rate\(90 minutes\) cannot be written as a cron expression, which Cloud Scheduler needs/);
  });

  test('creates exactly these', () => {
    const all = countByType(json);
    expect({ job: all.google_cloud_scheduler_job, objects: all.google_storage_bucket_object, sa: all.google_service_account, members: all.google_project_iam_member, topicMembers: all.google_pubsub_topic_iam_member })
      .toEqual({ job: 1, objects: 5, sa: 1, members: 3, topicMembers: 4 });
  });

  test('snapshot', () => {
    const mine = Object.fromEntries(Object.entries(json.resource!).map(([type, byName]) => [type, Object.fromEntries(Object.entries(byName).filter(([k]) => k.startsWith('ltv') || k.startsWith('train_grants')))])
      .filter(([, byName]) => Object.keys(byName as object).length));
    expect(mine).toMatchSnapshot();
  });
});
