import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { execFileSync } from 'child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parse, stringify } from 'yaml';
import { Duration } from '../../src/core/duration';
import { KubernetesTarget } from '../../src/core/targets';
import { GpuCluster } from '../../src/constructs/gpu-cluster';
import { ModelEndpoint } from '../../src/constructs/model-endpoint';
import { MonitoringStack } from '../../src/constructs/monitoring-stack';
import { countByType, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';
import { describeWithTools, TOOLS } from '../support/tools';

const BUNDLE = testAgentBundle();
const PROMTOOL = '/usr/bin/promtool';

interface World { stack: TerraformStack; k8s: KubernetesTarget; ops: MonitoringStack }
const build = (extra?: (w: World) => void) => synth((stack) => {
  const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
  const cluster = new GpuCluster(stack, 'train', { target: k8s, accelerator: 'A100-80GB', acceleratorsPerNode: 8, nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE });
  const endpoint = new ModelEndpoint(stack, 'ltv-api', { target: k8s, model: 's3://ml-models/ltv/v3', image: 'ghcr.io/acme/ltv:1.0.0', accelerator: 'L4', replicas: { min: 1, max: 4 } });
  const ops = new MonitoringStack(stack, 'ops', {
    target: k8s, notify: ['ml-oncall@example.com', 'https://hooks.example.com/mlinfra'],
    kubernetes: { smtp: { smarthost: 'smtp.example.com:587', from: 'alerts@example.com' }, storageGiB: 50 },
  })
    .watch(cluster)
    .watch({ watchKind: 'training-pipeline', pipelineName: 'ltv', cluster, schedulePeriodSeconds: 86400 }, { maxAge: Duration.hours(26) })
    .watch(endpoint, { p99LatencyMs: 250, errorRatePercent: 1 });
  extra?.({ stack, k8s, ops });
});

const configMaps = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'kubernetes_config_map_v1')).map((c: any) => [c.metadata.name.replace(/^test-ops-[0-9a-f]{8}-/, ''), c]));
const deployments = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'kubernetes_deployment_v1')).map((d: any) => [d.metadata.name.replace(/^test-ops-[0-9a-f]{8}-/, ''), d]));
const files = (json: TerraformJson) => {
  const cm = configMaps(json);
  return {
    prometheus: renderTerraformString(cm.prometheus.data['prometheus.yml']),
    rules: renderTerraformString(cm.rules.data['rules.yml']),
    alertmanager: renderTerraformString(cm.alertmanager.data['alertmanager.yml']),
  };
};

/** Writes the rendered files where the config says, under a temp dir, with a token file per watched cluster. */
function promtoolDir(json: TerraformJson): string {
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-prom-'));
  const f = files(json);
  const cfg = parse(f.prometheus.replace(/\/etc\/prometheus/g, dir));
  // Debian's prometheus/promtool are built without Kubernetes service discovery: check the rest of
  // each job (relabelling, auth) against a static target instead.
  for (const job of cfg.scrape_configs) {
    if (job.kubernetes_sd_configs) {
      delete job.kubernetes_sd_configs;
      job.static_configs = [{ targets: ['127.0.0.1:9'] }];
    }
  }
  const prometheus = stringify(cfg);
  writeFileSync(join(dir, 'prometheus.yml'), prometheus);
  mkdirSync(join(dir, 'rules'));
  writeFileSync(join(dir, 'rules', 'rules.yml'), f.rules);
  for (const job of parse(prometheus).scrape_configs) {
    const file = job.authorization?.credentials_file;
    if (file) {
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, 'token\n');
    }
  }
  return dir;
}

describe('MonitoringStack on Kubernetes', () => {
  const { text, json } = build();

  test('network policies: Alertmanager and the DCGM exporter from Prometheus only, Prometheus from monitoring clients', () => {
    const policies = Object.entries(resources(json, 'kubernetes_network_policy_v1')).filter(([k]) => k.includes('network-policies')).map(([, v]) => v as any);
    const byPort = Object.fromEntries(policies.map((p) => [p.spec.ingress[0].ports[0].port, p.spec]));
    expect(Object.keys(byPort).sort()).toEqual(['9090', '9093', '9400']);
    const prometheusPods = byPort['9093'].ingress[0].from[0].pod_selector.match_labels;
    expect(byPort['9400'].ingress[0].from).toEqual([{ pod_selector: { match_labels: prometheusPods } }]);
    expect(byPort['9090'].pod_selector.match_labels).toEqual(prometheusPods);
    expect(byPort['9090'].ingress[0].from).toEqual([{ namespace_selector: {}, pod_selector: { match_labels: { 'mlinfra.dev/monitoring-client': 'true' } } }]);
  });
  const f = files(json);
  const rules = parse(f.rules).groups.flatMap((g: any) => g.rules);
  const byAlert = Object.fromEntries(rules.map((r: any) => [r.alert, r]));

  describeWithTools([TOOLS.promtool])('promtool', () => {
    test('the per-cluster GPU rules see this cluster\'s Job and JobSet pods (by the gateway\'s pod list), never another\'s', () => {
      const dir = promtoolDir(json);
      const c = 'test-train-acae17ff';
      const series = (name: string, labels: Record<string, string>, values: string) =>
        ({ series: `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`, values });
      const job = 'j0123456789ab-x7k2p';
      const rank1 = 'jaaaaaaaaaaaa-node-0-1-b8q4z';
      const other = 'jbbbbbbbbbbbb-r2d2c';
      writeFileSync(join(dir, 'test.yml'), stringify({
        rule_files: [join(dir, 'rules', 'rules.yml')],
        evaluation_interval: '1m',
        tests: [{
          interval: '1m',
          input_series: [
            series('mlinfra_agent_jobs_queued', { mlinfra_cluster: c, pod: 'gw-1' }, '1x50'),
            // Both gateway replicas list the same pods.
            ...['gw-1', 'gw-2'].flatMap((gw) => [job, rank1].map((p) => series('mlinfra_gateway_job_pod_info', { mlinfra_cluster: c, pod: gw, job_pod: p, job_id: p.slice(0, 13) }, '1x50'))),
            series('mlinfra_gateway_job_pod_info', { mlinfra_cluster: 'someone-else', pod: 'gw-9', job_pod: other, job_id: other.slice(0, 13) }, '1x50'),
            // This cluster's GPUs idle; another cluster's pod in the namespace busy (it would lift the average over 10).
            series('DCGM_FI_DEV_GPU_UTIL', { namespace: 'TFREF', pod: job, gpu: '0' }, '2x50'),
            series('DCGM_FI_DEV_GPU_UTIL', { namespace: 'TFREF', pod: rank1, gpu: '0' }, '4x50'),
            series('DCGM_FI_DEV_GPU_UTIL', { namespace: 'TFREF', pod: other, gpu: '0' }, '99x50'),
            series('DCGM_FI_DEV_XID_ERRORS', { namespace: 'TFREF', pod: rank1, gpu: '0' }, '0 0 79x48'),
            series('DCGM_FI_DEV_XID_ERRORS', { namespace: 'TFREF', pod: other, gpu: '0' }, '48x50'),
          ],
          alert_rule_test: [
            { eval_time: '40m', alertname: 'MlinfraGpuIdleWhileQueued', exp_alerts: [{ exp_labels: { watch: 'train', mlinfra_cluster: c, alarm: byAlert.MlinfraGpuIdleWhileQueued.labels.alarm, severity: 'warning' }, exp_annotations: byAlert.MlinfraGpuIdleWhileQueued.annotations }] },
            { eval_time: '10m', alertname: 'MlinfraGpuXidErrors', exp_alerts: [{ exp_labels: { watch: 'train', mlinfra_cluster: c, alarm: byAlert.MlinfraGpuXidErrors.labels.alarm, severity: 'critical', pod: rank1, gpu: '0' },
              exp_annotations: { ...byAlert.MlinfraGpuXidErrors.annotations, summary: `NVIDIA XID error on ${rank1} GPU 0 (XID 79)` } }] },
          ],
        }],
      }));
      const out = execFileSync(PROMTOOL, ['test', 'rules', join(dir, 'test.yml')], { stdio: 'pipe' }).toString();
      expect(out).toMatch(/SUCCESS/);
    });

    test('the rules and the scrape configuration are valid', () => {
      const dir = promtoolDir(json);
      execFileSync(PROMTOOL, ['check', 'rules', join(dir, 'rules', 'rules.yml')], { stdio: 'pipe' });
      const out = execFileSync(PROMTOOL, ['check', 'config', join(dir, 'prometheus.yml')], { stdio: 'pipe' }).toString();
      expect(out).toMatch(/SUCCESS: 1 rule files found/);
    });
  });

  test('alert rules: expression, threshold and duration per watched construct', () => {
    expect(rules.map((r: any) => r.alert)).toEqual([
      'MlinfraGpuIdleWhileQueued', 'MlinfraGpuXidErrors', 'MlinfraAgentDown', 'MlinfraFeatureDrift',
      'MlinfraPipelineFailed', 'MlinfraPipelineStale', 'MlinfraEndpointP99Latency', 'MlinfraEndpointErrorRate',
    ]);
    // The cluster name is the one its gateway reports as (a literal: no StatefulSet to reference).
    // Job and JobSet pods have random names: DCGM's pod label is joined to the gateway's list of the cluster's pods.
    expect(byAlert.MlinfraGpuIdleWhileQueued.expr).toBe('max(mlinfra_agent_jobs_queued{mlinfra_cluster="test-train-acae17ff"}) > 0 and on() avg((DCGM_FI_DEV_GPU_UTIL{namespace="TFREF"}'
      + ' * on (pod) group_left() label_replace(max by (job_pod) (mlinfra_gateway_job_pod_info{mlinfra_cluster="test-train-acae17ff"}), "pod", "$1", "job_pod", "(.+)"))) < 10');
    expect(byAlert.MlinfraGpuIdleWhileQueued.for).toBe('30m');
    expect(byAlert.MlinfraGpuXidErrors.expr).toContain('DCGM_FI_DEV_XID_ERRORS');
    expect(byAlert.MlinfraAgentDown).toMatchObject({ expr: 'up{mlinfra_cluster="test-train-acae17ff"} == 0', for: '15m' });
    expect(byAlert.MlinfraPipelineStale.expr).toContain('> 93600) or on() absent_over_time(');
    expect(byAlert.MlinfraEndpointP99Latency).toMatchObject({
      expr: expect.stringMatching(/^histogram_quantile\(0\.99, sum by \(le\) \(rate\(http_request_duration_seconds_bucket\{namespace="TFREF",app="test-ltv-api-[0-9a-f]{8}"\}\[5m\]\)\)\) > 0\.25$/), for: '5m',
    });
    expect(byAlert.MlinfraEndpointErrorRate.expr.replace(/test-ltv-api-[0-9a-f]{8}/g, 'APP')).toBe('100 * sum(rate(http_requests_total{namespace="TFREF",app="APP",code=~"5.."}[5m])) / sum(rate(http_requests_total{namespace="TFREF",app="APP"}[5m])) > 1');
    for (const r of rules) expect(r.labels.severity).toMatch(/^(warning|critical)$/);
  });

  test('scrape config: DCGM exporter, each cluster\'s agents with its token, endpoints', () => {
    const cfg = parse(f.prometheus);
    expect(cfg.scrape_configs.map((s: any) => s.job_name)).toEqual(['prometheus', 'dcgm-exporter', 'mlinfra-agent-train', 'mlinfra-endpoints']);
    const agent = cfg.scrape_configs[2];
    expect(agent.authorization).toEqual({ type: 'Bearer', credentials_file: '/etc/prometheus/credentials/train/token' });
    expect(agent.kubernetes_sd_configs).toEqual([{ role: 'pod', namespaces: { names: ['TFREF'] } }]);
    expect(cfg.scrape_configs[1].honor_labels).toBe(true);
    expect(cfg.rule_files).toEqual(['/etc/prometheus/rules/rules.yml']);
    expect(cfg.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['TFREF.TFREF.svc:9093']);
  });

  test('Prometheus: non-root, limits, the token Secret projected, PVC, discovery bound per namespace', () => {
    const d = deployments(json).prometheus;
    const pod = d.spec.template.spec;
    expect(pod.security_context).toMatchObject({ run_as_non_root: true, run_as_user: '65534', fs_group: '65534' });
    expect(pod.container[0].resources.limits).toEqual({ cpu: '1', memory: '4Gi' });
    expect(pod.container[0].image).toBe('quay.io/prometheus/prometheus:v2.53.2');
    const creds = pod.volume.find((v: any) => v.name === 'credentials');
    expect(creds.projected.sources).toEqual([{ secret: { name: expect.stringMatching(/kubernetes_secret_v1\.train_identity_agent-token/), items: [{ key: 'token', path: 'train/token' }] } }]);
    expect(pod.volume.find((v: any) => v.name === 'data').persistent_volume_claim.claim_name).toMatch(/kubernetes_persistent_volume_claim_v1/);
    expect(d.spec.template.metadata.labels['mlinfra.dev/agent-client']).toBe('true');
    const role = Object.values(resources(json, 'kubernetes_cluster_role_v1'))[0] as any;
    expect(role.rule).toEqual([{ api_groups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
    const bindings = Object.values(resources(json, 'kubernetes_role_binding_v1')).filter((b: any) => b.role_ref.kind === 'ClusterRole') as any[];
    expect(bindings).toHaveLength(1);
    expect(resources(json, 'kubernetes_cluster_role_binding_v1')).toEqual({});
  });

  test('DCGM exporter: pinned image on GPU nodes, no GPU requested, pod-resources mounted', () => {
    const ds = Object.values(resources(json, 'kubernetes_daemon_set_v1'))[0] as any;
    const pod = ds.spec.template.spec;
    expect(pod.container[0].image).toBe('nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04');
    expect(pod.node_selector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.toleration).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod.container[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(pod.container[0].port).toEqual([{ name: 'metrics', container_port: 9400, protocol: 'TCP' }]);
  });

  test('Alertmanager: email through the relay and the webhook', () => {
    const am = parse(f.alertmanager);
    expect(am.global).toMatchObject({ smtp_smarthost: 'smtp.example.com:587', smtp_from: 'alerts@example.com', smtp_require_tls: true });
    expect(am.receivers).toEqual([{
      name: 'mlinfra', email_configs: [{ to: 'ml-oncall@example.com', send_resolved: true }],
      webhook_configs: [{ url: 'https://hooks.example.com/mlinfra', send_resolved: true }],
    }]);
    expect(deployments(json).alertmanager.spec.template.spec.container[0].security_context.run_as_non_root).toBe(true);
  });

  test('Grafana dashboard ConfigMap: labelled, one panel per metric group', () => {
    const cm = configMaps(json).dashboard;
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    const d = JSON.parse(Object.values(cm.data as Record<string, string>)[0]);
    expect(d.panels.map((p: any) => p.title)).toEqual([
      'train: GPU utilisation (%)', 'train: GPU memory used (MiB), temperature (C), power (W)', 'train: jobs queued and running, GPUs busy',
      'train: job failures by class, autostops', 'train: feature drift (PSI)', 'ltv: pipeline runs', 'ltv-api: latency (s)', 'ltv-api: requests and 5xx errors (per second)',
    ]);
    expect(d.panels[0].targets[0].expr).toContain('DCGM_FI_DEV_GPU_UTIL');
  });

  test('watching one more cluster adds exactly 4 rules, a scrape job and a credential; still valid for promtool', () => {
    const { json: two } = build(({ stack, k8s, ops }) => {
      ops.watch(new GpuCluster(stack, 'batch', { target: k8s, accelerator: 'T4', agentBundleDir: BUNDLE }));
    });
    const rules2 = parse(files(two).rules).groups.flatMap((g: any) => g.rules);
    expect(rules2.length - rules.length).toBe(4);
    expect(parse(files(two).prometheus).scrape_configs).toHaveLength(5);
    // One more Deployment: the new cluster's gateway; the MonitoringStack's own stay as they were.
    expect(countByType(two).kubernetes_deployment_v1).toBe(countByType(json).kubernetes_deployment_v1 + 1);
    const pod = deployments(two).prometheus.spec.template.spec;
    expect(pod.volume.find((v: any) => v.name === 'credentials').projected.sources).toHaveLength(2);
    twoClusters = two;
  });
  let twoClusters: TerraformJson | undefined;

  describeWithTools([TOOLS.promtool])('promtool', () => {
    test('the configuration watching two clusters is valid', () => {
      expect(twoClusters).toBeDefined();
      const dir = promtoolDir(twoClusters!);
      execFileSync(PROMTOOL, ['check', 'config', join(dir, 'prometheus.yml')], { stdio: 'pipe' });
    });
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
