import 'cdktf/lib/testing/adapters/jest';
import { CronJobV1 } from '@cdktf/provider-kubernetes/lib/cron-job-v1';
import { Duration, GpuCluster, KubernetesTarget, KubernetesTargetProps } from '../../src';
import { Schedule, Step, TrainingPipeline, TrainingPipelineProps } from '../../src';
import { countByType, only, resources, synth, testAgentBundle } from '../helpers';

function build(props: Partial<TrainingPipelineProps> = {}, target: Partial<KubernetesTargetProps> = {}) {
  let pipeline!: TrainingPipeline;
  const out = synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', createNamespace: false, ...target });
    const cluster = new GpuCluster(stack, 'train', { target: k8s, accelerator: 'T4', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
    const big = new GpuCluster(stack, 'big', { target: k8s, accelerator: 'A100-80GB', nodes: { min: 0, max: 1 }, agentBundleDir: testAgentBundle() });
    pipeline = new TrainingPipeline(stack, 'ltv', {
      cluster, schedule: Schedule.cron('0 3 * * *'),
      steps: [
        Step.run('features', ['python3', 'featurize.py'], { timeout: Duration.minutes(30) }),
        Step.run('train', ['python3', 'train.py'], { after: ['features'], retries: 1, timeout: Duration.hours(1), onOom: big }),
        Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
      ],
      ...props,
    });
  });
  return { ...out, pipeline };
}

describe('TrainingPipeline on Kubernetes', () => {
  const { text, json, pipeline } = build();
  const cron = only(json, 'kubernetes_cron_job_v1') as any;
  const pod = cron.spec.job_template.spec.template.spec;
  const svc = (name: string) => Object.keys(resources(json, 'kubernetes_service_v1')).find((k) => k.startsWith(name))!;

  test('CronJob: the schedule, one run at a time, history limits, deadlines', () => {
    expect(text).toHaveResourceWithProperties(CronJobV1, {
      spec: expect.objectContaining({
        schedule: '0 3 * * *', concurrency_policy: 'Forbid', starting_deadline_seconds: 3600,
        successful_jobs_history_limit: 3, failed_jobs_history_limit: 5,
      }),
    });
    expect(cron.metadata.namespace).toBe('ml');
    // Every run step has a timeout: 30 min + 2 x 1 h + 45 min for the first nodes to come up. No second
    // runner pod: it would start a second run.
    expect(cron.spec.job_template.spec).toMatchObject({ backoff_limit: 0, active_deadline_seconds: 1800 + 7200 + 2700 });
    expect(pod.restart_policy).toBe('Never');
  });

  test('each tick enqueues one run: a CPU pod runs the pipeline against the gateway; nothing is scaled', () => {
    expect(text).not.toMatch(/scale-up|statefulset|STATEFUL_SET/i);
    expect(pod.init_container.map((c: any) => c.name)).toEqual(['install']);
    expect(pod.init_container[0].command[2]).toBe('set -e; cp /opt/mlinfra/bundle/mlinfra-agent.js /opt/mlinfra/agent/');
    const [runner] = pod.container;
    const url = `http://\${kubernetes_service_v1.${svc('train_gateway_service_')}.metadata[0].name}.ml.svc.cluster.local:7070`;
    // file:// artifacts: the run directory on the cluster's volume, where job pods mount it too.
    expect(runner.command).toEqual(['node', '/opt/mlinfra/agent/mlinfra-agent.js', 'run-pipeline', 'file:///etc/mlinfra/pipeline/spec.json',
      '--url', url, '--token-file', '/var/run/mlinfra/agent/token', '--work-dir', '/var/lib/mlinfra/artifacts/pipeline-runs']);
    expect(runner.volume_mount).toContainEqual({ name: 'artifacts', mount_path: '/var/lib/mlinfra/artifacts' });
    expect(pod.volume).toContainEqual({ name: 'artifacts', persistent_volume_claim: { claim_name: expect.stringMatching(/kubernetes_persistent_volume_claim_v1\.train_bundle_artifacts_/) } });
    expect(runner.image).toBe('node:24.18.1-bookworm-slim');
    expect(JSON.stringify(pod)).not.toContain('nvidia.com/gpu');
    expect(pipeline.specUri).toBe('file:///etc/mlinfra/pipeline/spec.json');
    // Allowed through the gateway's NetworkPolicy. Its API token is mounted (a promotion rolls out to
    // Kubernetes endpoints with it) but grants nothing until an endpoint serving this pipeline binds its Role.
    expect(cron.spec.job_template.spec.template.metadata.labels['mlinfra.dev/agent-client']).toBe('true');
    expect(pod.automount_service_account_token).toBe(true);
    const sa = `\${kubernetes_service_account_v1.${Object.keys(resources(json, 'kubernetes_service_account_v1')).find((k) => k.startsWith('ltv_'))}.metadata[0].name}`;
    const roles = resources(json, 'kubernetes_role_v1') as Record<string, any>;
    const runnerRules = Object.values(resources(json, 'kubernetes_role_binding_v1') as Record<string, any>)
      .filter((b) => b.subject.some((x: any) => x.name === sa))
      .flatMap((b) => roles[/^\$\{kubernetes_role_v1\.([^.]+)\./.exec(b.role_ref.name)![1]].rule);
    // Only its clusters' token Secrets (which it mounts anyway).
    expect(runnerRules.length).toBeGreaterThan(0);
    for (const r of runnerRules) expect(r).toMatchObject({ api_groups: [''], resources: ['secrets'], verbs: ['get'] });
  });

  test('an object store: the runner loads the storage module and reads the credentials file; no volume', () => {
    const { json: j } = build({}, { artifactStore: { uri: 's3://acme-ml', endpoint: 'http://minio.minio.svc:9000', credentialsSecret: { name: 'minio', key: 'credentials' } } });
    const p = (only(j, 'kubernetes_cron_job_v1') as any).spec.job_template.spec.template.spec;
    expect(p.init_container[0].command[2]).toMatch(/cp \/opt\/mlinfra\/storage-module\/storage-s3\.js \/opt\/mlinfra\/agent\/$/);
    expect(p.container[0].env).toEqual(expect.arrayContaining([
      { name: 'AWS_ENDPOINT_URL_S3', value: 'http://minio.minio.svc:9000' }, { name: 'AWS_SHARED_CREDENTIALS_FILE', value: '/var/run/mlinfra/storage/credentials' },
    ]));
    expect(p.volume.map((v: any) => v.name)).not.toContain('artifacts');
    const cm = Object.values(resources(j, 'kubernetes_config_map_v1')).find((c: any) => c.metadata.name.endsWith('-spec')) as any;
    expect(JSON.parse(cm.data['spec.json']).artifactsUri).toMatch(/^s3:\/\/acme-ml\/test-train-[0-9a-f]{8}\/pipelines\//);
  });

  test('an object store: steps get the run directory through it (the runner is told to sync); a volume: shared, not told', () => {
    const { json: j } = build({}, { artifactStore: { uri: 's3://acme-ml' } });
    const env = (only(j, 'kubernetes_cron_job_v1') as any).spec.job_template.spec.template.spec.container[0].env;
    expect(env).toContainEqual({ name: 'MLINFRA_STEP_FILES', value: 'object-store' });
    expect(pod.container[0].env.map((e: any) => e.name)).not.toContain('MLINFRA_STEP_FILES');
  });

  test('non-root, resource limits on every container', () => {
    expect(pod.security_context).toMatchObject({ run_as_non_root: true, run_as_user: '1000' });
    for (const c of [...pod.init_container, ...pod.container]) {
      expect(c.security_context).toMatchObject({ run_as_non_root: true, allow_privilege_escalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.resources.limits).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    }
  });

  test('the runner may read exactly the agent tokens, nothing else', () => {
    const sa = Object.keys(resources(json, 'kubernetes_service_account_v1')).find((k) => k.startsWith('ltv_'))!;
    expect(pod.service_account_name).toBe(`\${kubernetes_service_account_v1.${sa}.metadata[0].name}`);
    const roleNames = Object.values(resources(json, 'kubernetes_role_binding_v1'))
      .filter((b: any) => b.subject[0].name === `\${kubernetes_service_account_v1.${sa}.metadata[0].name}`)
      .map((b: any) => b.role_ref.name as string);
    const rules = Object.entries(resources(json, 'kubernetes_role_v1'))
      .filter(([k]) => roleNames.includes(`\${kubernetes_role_v1.${k}.metadata[0].name}`))
      .flatMap(([, r]: [string, any]) => r.rule)
      .map((r: any) => `${r.resources.join(',')} ${r.verbs.join(',')} ${r.resource_names.join(',')}`).sort();
    const secret = (c: string) => `\${kubernetes_secret_v1.${Object.keys(resources(json, 'kubernetes_secret_v1')).find((k) => k.startsWith(c))}.metadata[0].name}`;
    expect(rules).toEqual([`secrets get ${secret('big_')}`, `secrets get ${secret('train_')}`].sort());
  });

  test('the spec: a ConfigMap <name>-spec with spec.json; onOom names the bigger cluster and its mounted token', () => {
    const cm = Object.values(resources(json, 'kubernetes_config_map_v1')).find((c: any) => c.metadata.name.endsWith('-spec')) as any;
    expect(cm.metadata.name).toBe(`${pipeline.name}-spec`);
    expect(Object.keys(cm.data)).toEqual(['spec.json']);
    const spec = JSON.parse(cm.data['spec.json']);
    const train = spec.steps[1];
    expect(spec.artifactsUri).toBe(`file:///var/lib/mlinfra/artifacts/pipelines/${pipeline.name}`);
    expect(spec.steps.map((s: any) => s.name)).toEqual(['features', 'train', 'promote']);
    expect(train.onOom).toEqual({
      agentUrl: expect.stringMatching(/^http:\/\/\$\{kubernetes_service_v1\.big_gateway_service_[0-9A-F]{8}\.metadata\[0\]\.name\}\.ml\.svc\.cluster\.local:7070$/),
      clusterName: expect.stringMatching(/^test-big-[0-9a-f]{8}$/),
      tokenFile: `/var/run/mlinfra/clusters/${train.onOom.clusterName}/token`,
    });
    const runner = pod.container[0];
    expect(runner.volume_mount.map((m: any) => m.mount_path)).toContain(`/var/run/mlinfra/clusters/${train.onOom.clusterName}`);
  });

  describe('artifacts: where job pods can write, and each refusal names a way out', () => {
    const store = { artifactStore: { uri: 's3://acme-ml', endpoint: 'http://minio.minio.svc:9000' } };
    test('an s3:// URI in the target\'s object store is accepted as given', () => {
      const { pipeline: p } = build({ artifacts: 's3://acme-ml/ltv' }, store);
      expect(p.artifactsUri).toBe('s3://acme-ml/ltv');
    });
    test('a file:// URI on the cluster\'s volume is accepted (single-node use)', () => {
      const { pipeline: p } = build({ artifacts: 'file:///var/lib/mlinfra/artifacts/ltv' });
      expect(p.artifactsUri).toBe('file:///var/lib/mlinfra/artifacts/ltv');
    });
    test('fails on s3:// without an artifactStore, naming the KubernetesTarget prop that allows it', () => {
      expect(() => build({ artifacts: 's3://acme-ml/ltv' })).toThrow(
        /artifacts.*is an object-store URI, but this cluster's target has no artifactStore.*allowed: a file:\/\/ URI under \/var\/lib\/mlinfra\/artifacts.*or an s3:\/\/ or gs:\/\/ store given to the KubernetesTarget as artifactStore \(uri, endpoint for S3-compatible stores, credentialsSecret\)/s);
    });
    test('fails on file:// outside the volume (a pod\'s own disk), saying where it must be and how to go multi-node', () => {
      expect(() => build({ artifacts: 'file:///data/ltv' })).toThrow(/allowed: a file:\/\/ URI under \/var\/lib\/mlinfra\/artifacts, the volume job pods mount \(single-node use\).*give the KubernetesTarget an s3:\/\/ or gs:\/\/ artifactStore/s);
    });
    test('fails on file:// or gs:// with an s3:// store, naming the store to use', () => {
      expect(() => build({ artifacts: 'file:///var/lib/mlinfra/artifacts/ltv' }, store)).toThrow(/is a file:\/\/ URI, which no job pod shares with the runner.*allowed: a s3:\/\/ URI in the KubernetesTarget's artifactStore.*e\.g\. s3:\/\/acme-ml\//s);
      expect(() => build({ artifacts: 'gs://acme-ml/ltv' }, store)).toThrow(/is not in the target's artifact store/);
    });
  });

  describe('multi-node steps (JobSets)', () => {
    const twoNodes = (target: Partial<KubernetesTargetProps>) => synth((stack) => {
      const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', createNamespace: false, ...target });
      const cluster = new GpuCluster(stack, 'train', { target: k8s, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 2 }, agentBundleDir: testAgentBundle() });
      new TrainingPipeline(stack, 'ltv', { cluster, steps: [Step.run('train', ['python3', 'train.py'], { nodes: 2, gpusPerNode: 8 })] });
    });
    test('with an object store: the step carries nodes and gpusPerNode into the spec', () => {
      const { json: j } = twoNodes({ artifactStore: { uri: 's3://acme-ml' } });
      const cm = Object.values(resources(j, 'kubernetes_config_map_v1')).find((c: any) => c.metadata.name.endsWith('-spec')) as any;
      expect(JSON.parse(cm.data['spec.json']).steps[0]).toMatchObject({ name: 'train', nodes: 2, gpusPerNode: 8 });
    });
    test('fails on a cluster whose artifacts are its single-node volume, naming the artifactStore way out', () => {
      expect(() => twoNodes({})).toThrow(/steps.*have multi-node steps \("train"\), but this cluster keeps artifacts on a single-node volume.*for multi-node steps give the KubernetesTarget an artifactStore \(s3:\/\/ or gs:\/\/\)/s);
    });
  });

  test('fails when the time zone is not UTC (the CronJob binding has no time zone)', () => {
    expect(() => build({ timezone: 'Europe/Paris' })).toThrow(/timezone: a CronJob runs in the controller manager's time zone.*offered: UTC/);
  });

  test('creates exactly these', () => {
    // Per cluster (two): bundle, gateway config, pipeline-run record; the pipeline's spec.
    const all = countByType(json);
    expect({ cron: all.kubernetes_cron_job_v1, cm: all.kubernetes_config_map_v1, sa: all.kubernetes_service_account_v1 }).toEqual({ cron: 1, cm: 7, sa: 5 });
  });

  test('snapshot', () => {
    const mine = Object.fromEntries(Object.entries(json.resource!).map(([type, byName]) => [type, Object.fromEntries(Object.entries(byName).filter(([k]) => k.startsWith('ltv')))])
      .filter(([, byName]) => Object.keys(byName as object).length));
    expect(mine).toMatchSnapshot();
  });
});
