import 'cdktf/lib/testing/adapters/jest';
import { CronJobV1 } from '@cdktf/provider-kubernetes/lib/cron-job-v1';
import { Duration, GpuCluster, KubernetesTarget } from '../../src';
import { Schedule, Step, TrainingPipeline, TrainingPipelineProps } from '../../src';
import { SCALE_UP_SCRIPT } from '../../src/constructs/training-pipeline/kubernetes';
import { countByType, only, resources, synth, testAgentBundle } from '../helpers';

function build(props: Partial<TrainingPipelineProps> = {}) {
  let pipeline!: TrainingPipeline;
  const out = synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', createNamespace: false });
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
  const sts = (name: string) => Object.entries(resources(json, 'kubernetes_stateful_set_v1')).find(([k]) => k.startsWith(name))![0];

  test('CronJob: the schedule, one run at a time, history limits, deadlines', () => {
    expect(text).toHaveResourceWithProperties(CronJobV1, {
      spec: expect.objectContaining({
        schedule: '0 3 * * *', concurrency_policy: 'Forbid', starting_deadline_seconds: 3600,
        successful_jobs_history_limit: 3, failed_jobs_history_limit: 5,
      }),
    });
    expect(cron.metadata.namespace).toBe('ml');
    // Every run step has a timeout: 30 min + 2 x 1 h + 45 min for the agent to come up.
    expect(cron.spec.job_template.spec).toMatchObject({ backoff_limit: 1, active_deadline_seconds: 1800 + 7200 + 2700 });
    expect(pod.restart_policy).toBe('Never');
  });

  test('the pod scales the agent StatefulSet up, waits, then runs the pipeline against the agent', () => {
    const [install, scaleUp] = pod.init_container;
    expect(install.name).toBe('install');
    expect(scaleUp.command).toEqual(['node', '/etc/mlinfra/pipeline/scale-up.js']);
    const env = Object.fromEntries(scaleUp.env.map((e: any) => [e.name, e.value]));
    expect(env).toEqual({
      STATEFUL_SET: `\${kubernetes_stateful_set_v1.${sts('train_')}.metadata[0].name}`, MIN_REPLICAS: '1',
      AGENT_URL: expect.stringMatching(/^http:\/\/\$\{kubernetes_service_v1\.train_network_api_[0-9A-F]{8}\.metadata\[0\]\.name\}\.ml\.svc\.cluster\.local:7070$/),
      WAIT_SECONDS: '2700',
    });
    const [runner] = pod.container;
    expect(runner.command.slice(0, 4)).toEqual(['node', '/opt/mlinfra/agent/mlinfra-agent.js', 'run-pipeline', 'file:///etc/mlinfra/pipeline/spec.json']);
    expect(runner.command.slice(4)).toEqual(['--url', env.AGENT_URL, '--token-file', '/var/run/mlinfra/agent/token']);
    expect(runner.image).toBe(`\${kubernetes_stateful_set_v1.${sts('train_')}.spec[0].template[0].spec[0].init_container[0].image}`);
    expect(pipeline.specUri).toBe('file:///etc/mlinfra/pipeline/spec.json');
    // Allowed through the cluster's NetworkPolicy.
    expect(cron.spec.job_template.spec.template.metadata.labels['mlinfra.dev/agent-client']).toBe('true');
  });

  test('non-root, resource limits on every container', () => {
    expect(pod.security_context).toMatchObject({ run_as_non_root: true, run_as_user: '1000' });
    for (const c of [...pod.init_container, ...pod.container]) {
      expect(c.security_context).toMatchObject({ run_as_non_root: true, allow_privilege_escalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.resources.limits).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    }
  });

  test('the runner may scale exactly the StatefulSet and read exactly the agent tokens', () => {
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
    const stsName = (resources(json, 'kubernetes_stateful_set_v1')[sts('train_')] as any).metadata.name;
    // The agent tokens of the cluster and of the onOom cluster; the scale subresource of this cluster's StatefulSet.
    expect(rules).toEqual([
      `secrets get ${secret('big_')}`, `secrets get ${secret('train_')}`,
      `statefulsets get ${stsName}`, `statefulsets/scale get,patch,update ${stsName}`,
    ].sort());
  });

  test('the spec: a ConfigMap <name>-spec with spec.json; onOom names the bigger cluster and its mounted token', () => {
    const cm = Object.values(resources(json, 'kubernetes_config_map_v1')).find((c: any) => c.metadata.name.endsWith('-spec')) as any;
    expect(cm.metadata.name).toBe(`${pipeline.name}-spec`);
    expect(cm.data['scale-up.js']).toBe(SCALE_UP_SCRIPT);
    const spec = JSON.parse(cm.data['spec.json']);
    const train = spec.steps[1];
    expect(spec.artifactsUri).toBe(`file:///var/lib/mlinfra/artifacts/pipelines/${pipeline.name}`);
    expect(spec.steps.map((s: any) => s.name)).toEqual(['features', 'train', 'promote']);
    expect(train.onOom).toEqual({
      agentUrl: expect.stringMatching(/^http:\/\/\$\{kubernetes_service_v1\.big_network_api_[0-9A-F]{8}\.metadata\[0\]\.name\}\.ml\.svc\.cluster\.local:7070$/),
      clusterName: expect.stringMatching(/^test-big-[0-9a-f]{8}$/),
      tokenFile: `/var/run/mlinfra/clusters/${train.onOom.clusterName}/token`,
    });
    const runner = pod.container[0];
    expect(runner.volume_mount.map((m: any) => m.mount_path)).toContain(`/var/run/mlinfra/clusters/${train.onOom.clusterName}`);
    expect(SCALE_UP_SCRIPT).not.toContain('${');
  });

  test('fails when the time zone is not UTC (the CronJob binding has no time zone)', () => {
    expect(() => build({ timezone: 'Europe/Paris' })).toThrow(/timezone: a CronJob runs in the controller manager's time zone.*offered: UTC/);
  });

  test('creates exactly these', () => {
    const all = countByType(json);
    expect({ cron: all.kubernetes_cron_job_v1, cm: all.kubernetes_config_map_v1, sa: all.kubernetes_service_account_v1 }).toEqual({ cron: 1, cm: 3, sa: 3 });
  });

  test('snapshot', () => {
    const mine = Object.fromEntries(Object.entries(json.resource!).map(([type, byName]) => [type, Object.fromEntries(Object.entries(byName).filter(([k]) => k.startsWith('ltv')))])
      .filter(([, byName]) => Object.keys(byName as object).length));
    expect(mine).toMatchSnapshot();
  });
});
