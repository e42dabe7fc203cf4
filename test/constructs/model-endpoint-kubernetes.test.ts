import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { HorizontalPodAutoscalerV2 } from '@cdktf/provider-kubernetes/lib/horizontal-pod-autoscaler-v2';
import { KubernetesTarget, KubernetesTargetProps } from '../../src/core/targets';
import { ACCELERATORS } from '../../src/core/accelerators';
import { costFacts } from '../../src/core/facts';
import { ModelEndpoint, ModelEndpointProps, Rollout } from '../../src/constructs/model-endpoint';
import { countByType, only, resources, synth, TerraformJson } from '../helpers';

const IMAGE = 'ghcr.io/acme/ltv-server:1.4.0';
const OLD = 'ghcr.io/acme/ltv-server:1.3.0';

const build = (props: Partial<ModelEndpointProps> = {}, extra?: (stack: TerraformStack, e: ModelEndpoint, k8s: KubernetesTarget) => void, target: Partial<KubernetesTargetProps> = {}) =>
  synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'serving', ...target });
    const e = new ModelEndpoint(stack, 'ltv-api', {
      target: k8s, model: 's3://ml-models/ltv/v3', image: IMAGE, accelerator: 'L4', replicas: { min: 2, max: 6 }, ...props,
    });
    extra?.(stack, e, k8s);
  });

const deployments = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'kubernetes_deployment_v1')).map((d: any) => [d.metadata.name.replace(/^test-ltv-api-[0-9a-f]{8}-/, ''), d]));
const hpas = (json: TerraformJson): Record<string, any> =>
  Object.fromEntries(Object.values(resources(json, 'kubernetes_horizontal_pod_autoscaler_v2')).map((d: any) => [d.metadata.name.replace(/^test-ltv-api-[0-9a-f]{8}-/, ''), d]));
const server = (d: any): any => d.spec.template.spec.container[0];
const svc = (json: TerraformJson): any => only(json, 'kubernetes_service_v1');

describe('ModelEndpoint on Kubernetes', () => {
  const { text, json } = build();

  test('GPU requests from the catalog, node selector and toleration by the target\'s label scheme', () => {
    expect(text).toHaveResourceWithProperties(DeploymentV1, {
      spec: expect.objectContaining({
        template: expect.objectContaining({ spec: expect.objectContaining({ node_selector: { 'nvidia.com/gpu.product': 'NVIDIA-L4' } }) }),
      }),
    });
    const d = deployments(json).stable;
    expect(server(d).resources.limits).toEqual({ 'cpu': '2', 'memory': '8Gi', 'nvidia.com/gpu': '1' });
    expect(server(d).resources.requests).toEqual(server(d).resources.limits);
    expect(d.spec.template.spec.toleration).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    const { json: gke } = build({ acceleratorsPerReplica: 2, cpu: 6, memoryGiB: 40 }, undefined, { gpuNodeLabels: 'gke' });
    const g = deployments(gke).stable;
    expect(g.spec.template.spec.node_selector).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-l4' });
    expect(server(g).resources.limits).toEqual({ 'cpu': '6', 'memory': '40Gi', 'nvidia.com/gpu': '2' });
    const { json: cpu } = build({ accelerator: undefined });
    const c = deployments(cpu).stable;
    expect(c.spec.template.spec.node_selector).toBeUndefined();
    expect(c.spec.template.spec.toleration).toBeUndefined();
    expect(server(c).resources.limits).toEqual({ cpu: '2', memory: '4Gi' });
  });

  test('non-root, probes on the health path, MODEL_URI in env', () => {
    const d = deployments(json).stable;
    expect(d.spec.template.spec.security_context).toMatchObject({ run_as_non_root: true, run_as_user: '1000' });
    expect(server(d).security_context).toMatchObject({ run_as_non_root: true, allow_privilege_escalation: false, capabilities: { drop: ['ALL'] } });
    expect(server(d).readiness_probe.http_get).toEqual({ path: '/ping', port: '8080', scheme: 'HTTP' });
    expect(server(d).liveness_probe.http_get.path).toBe('/ping');
    expect(server(d).env).toContainEqual({ name: 'MODEL_URI', value: 's3://ml-models/ltv/v3' });
    expect(d.spec.template.spec.automount_service_account_token).toBe(false);
  });

  test('HPA (autoscaling/v2) on CPU with the replica bounds; the Deployment leaves replicas to it', () => {
    expect(text).toHaveResourceWithProperties(HorizontalPodAutoscalerV2, {
      spec: expect.objectContaining({
        min_replicas: 2, max_replicas: 6,
        metric: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', average_utilization: 70 } } }],
      }),
    });
    expect(deployments(json).stable.lifecycle).toEqual({ ignore_changes: ['spec[0].replicas'] });
    expect(deployments(json).stable.spec.replicas).toBe('2');
  });

  test('all-at-once: one Deployment, a full surge, never below capacity', () => {
    expect(Object.keys(deployments(json))).toEqual(['stable']);
    expect(deployments(json).stable.spec.strategy).toEqual({ type: 'RollingUpdate', rolling_update: { max_surge: '100%', max_unavailable: '0' } });
  });

  test('canary: a second Deployment whose replica share follows the percent, both behind the Service selector app', () => {
    const { json: j } = build({ rollout: Rollout.canary({ percent: 25 }), replicas: { min: 4, max: 8 }, revision: 'v2', previous: { revision: 'v1', image: OLD } });
    const d = deployments(j);
    expect(Object.keys(d).sort()).toEqual(['canary', 'stable']);
    expect(server(d.stable).image).toBe(OLD);
    expect(server(d.canary).image).toBe(IMAGE);
    // stable = ceil(4 * 75 / 100) = 3, canary = max(1, round(4 * 25 / 100)) = 1
    expect(d.stable.spec.replicas).toBe('3');
    expect(d.canary.spec.replicas).toBe('1');
    expect(hpas(j).stable.spec).toMatchObject({ min_replicas: 3, max_replicas: 6 });
    expect(hpas(j).canary.spec).toMatchObject({ min_replicas: 1, max_replicas: 2 });
    const app = svc(j).spec.selector.app;
    expect(svc(j).spec.selector).toEqual({ app });
    for (const x of Object.values(d)) expect(x.spec.template.metadata.labels.app).toBe(app);
    expect(d.canary.spec.template.metadata.labels['app.kubernetes.io/version']).toBe('v2');
    // Without a previous version there is nothing to canary against.
    const { json: first } = build({ rollout: Rollout.canary({ percent: 25 }) });
    expect(Object.keys(deployments(first))).toEqual(['stable']);
    // A small canary still gets one pod.
    const { json: small } = build({ rollout: Rollout.canary({ percent: 10 }), replicas: { min: 2, max: 4 }, revision: 'v2', previous: { revision: 'v1', image: OLD } });
    expect([deployments(small).stable.spec.replicas, deployments(small).canary.spec.replicas]).toEqual(['2', '1']);
  });

  test('linear: the canary share is rolloutStep x percentPerStep; the last step leaves one Deployment on the new version', () => {
    const lin = Rollout.linear({ percentPerStep: 50, stepMinutes: 10 });
    const { json: s1 } = build({ rollout: lin, replicas: { min: 4, max: 8 }, revision: 'v2', previous: { revision: 'v1', image: OLD } });
    expect([deployments(s1).stable.spec.replicas, deployments(s1).canary.spec.replicas]).toEqual(['2', '2']);
    const { json: s2 } = build({ rollout: lin, replicas: { min: 4, max: 8 }, revision: 'v2', previous: { revision: 'v1', image: OLD }, rolloutStep: 2 });
    expect(Object.keys(deployments(s2))).toEqual(['stable']);
    expect(server(deployments(s2).stable).image).toBe(IMAGE);
  });

  test('blue/green: two colours, the Service selects the live one', () => {
    const bg = Rollout.blueGreen();
    const { json: staged } = build({ rollout: bg, color: 'green', revision: 'v2', previous: { revision: 'v1', image: OLD, model: 's3://ml-models/ltv/v2' } });
    const d = deployments(staged);
    expect(Object.keys(d).sort()).toEqual(['blue', 'green']);
    expect(server(d.green).image).toBe(IMAGE);
    expect(server(d.blue).image).toBe(OLD);
    expect(server(d.blue).env).toContainEqual({ name: 'MODEL_URI', value: 's3://ml-models/ltv/v2' });
    expect(d.blue.spec.replicas).toBe('2');
    expect(d.green.spec.replicas).toBe('2');
    expect(svc(staged).spec.selector['mlinfra.dev/color']).toBe('blue');
    const { json: live } = build({ rollout: bg, color: 'green', live: 'green', revision: 'v2', previous: { revision: 'v1', image: OLD } });
    expect(svc(live).spec.selector['mlinfra.dev/color']).toBe('green');
    const { json: first } = build({ rollout: bg });
    expect(Object.keys(deployments(first))).toEqual(['blue']);
    expect(svc(first).spec.selector['mlinfra.dev/color']).toBe('blue');
  });

  test('private by default: a NetworkPolicy admits only client-labelled pods of the namespace on the port', () => {
    const np: any = only(json, 'kubernetes_network_policy_v1');
    expect(np.spec.ingress).toEqual([{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/endpoint-client': 'true' } } }], ports: [{ port: '8080', protocol: 'TCP' }] }]);
    expect(svc(json).spec.type).toBe('ClusterIP');
  });

  test('grantInvoke: a NetworkPolicy from the grantee\'s namespace', () => {
    const { json: j } = build({}, (_s, e) => e.grantInvoke({ grantPrincipal: { kind: 'kubernetes', namespace: 'apps', serviceAccountName: 'web' } }));
    const nps = Object.values(resources(j, 'kubernetes_network_policy_v1')) as any[];
    expect(nps).toHaveLength(2);
    const granted = nps.find((n) => n.spec.ingress[0].from[0].namespace_selector);
    expect(granted.spec.ingress[0].ports).toEqual([{ port: '8080', protocol: 'TCP' }]);
    expect(granted.spec.ingress[0].from).toEqual([{
      namespace_selector: { match_labels: { 'kubernetes.io/metadata.name': 'apps' } },
      pod_selector: { match_labels: { 'mlinfra.dev/endpoint-client': 'true' } },
    }]);
  });

  test('secretEnv only through secretKeyRef', () => {
    const { json: j, text: t } = build({ secretEnv: { HF_TOKEN: { store: 'kubernetes-secret', namespace: 'serving', name: 'hf', key: 'token' } } });
    expect(server(deployments(j).stable).env).toContainEqual({ name: 'HF_TOKEN', value_from: { secret_key_ref: { name: 'hf', key: 'token' } } });
    expect(t).not.toMatch(/"HF_TOKEN",\s*"value"/);
  });

  test('url, metrics, PodDisruptionBudget and output', () => {
    let e!: ModelEndpoint;
    const { json: j } = build({}, (_s, ep) => { e = ep; });
    expect(only(j, 'kubernetes_pod_disruption_budget_v1')).toMatchObject({ spec: { max_unavailable: '1' } });
    expect(e.metrics.latency).toMatchObject({ system: 'prometheus', name: 'http_request_duration_seconds', unit: 'seconds' });
    expect(e.metrics.errors).toMatchObject({ name: 'http_requests_total', filter: 'code=~"5.."' });
    expect(Object.values(j.output ?? {}).map((o) => o.value)).toEqual([
      expect.stringMatching(/^http:\/\/\$\{kubernetes_service_v1\.[^}]+\.metadata\[0\]\.name\}\.\$\{kubernetes_namespace_v1\.[^}]+\.metadata\[0\]\.name\}\.svc\.cluster\.local:8080$/),
    ]);
  });

  test('records its cost: GPU pods at the catalog\'s per-GPU share, CPU pods unpriced', () => {
    let gpu: ModelEndpoint | undefined;
    let cpu: ModelEndpoint | undefined;
    build({}, (_s, e) => { gpu = e; });
    build({ accelerator: undefined }, (_s, e) => { cpu = e; });
    expect(costFacts(gpu!)).toEqual([expect.objectContaining({
      item: 'GPU pod (L4 x1 share)', unitUsd: ACCELERATORS.L4.kubernetesUsdPerGpuHour, per: 'hour', quantity: { min: 2, max: 6 },
    })]);
    expect(costFacts(cpu!)).toEqual([{ item: 'CPU pod', unitUsd: 0, per: 'hour', quantity: { min: 2, max: 6 }, source: 'not priced: runs on your nodes', asOf: '-' }]);
  });

  test('creates exactly these resources', () => {
    expect(countByType(json)).toEqual({
      kubernetes_namespace_v1: 1, kubernetes_service_account_v1: 1, kubernetes_deployment_v1: 1, kubernetes_horizontal_pod_autoscaler_v2: 1,
      kubernetes_service_v1: 1, kubernetes_network_policy_v1: 1, kubernetes_pod_disruption_budget_v1: 1,
    });
    const { json: sa } = build({ serviceAccountName: 'model-reader' });
    expect(countByType(sa).kubernetes_service_account_v1).toBeUndefined();
    expect(deployments(sa).stable.spec.template.spec.service_account_name).toBe('model-reader');
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
