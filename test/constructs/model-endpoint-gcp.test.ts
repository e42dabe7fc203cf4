import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { CloudRunV2Service } from '@cdktf/provider-google/lib/cloud-run-v2-service';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member';
import { GcpTarget } from '../../src/core/targets';
import { CLOUD_RUN_PRICES } from '../../src/core/accelerators';
import { costFacts } from '../../src/core/facts';
import { ModelEndpoint, ModelEndpointProps, Rollout } from '../../src/constructs/model-endpoint';
import { countByType, only, resources, synth, TerraformJson } from '../helpers';

const IMAGE = 'us-docker.pkg.dev/ml-platform-prod/serving/ltv-server:1.4.0';

const build = (props: Partial<ModelEndpointProps> = {}, extra?: (stack: TerraformStack, e: ModelEndpoint, gcp: GcpTarget) => void) =>
  synth((stack) => {
    const gcp = new GcpTarget(stack, 'gcp', { project: 'ml-platform-prod', region: 'us-central1' });
    const e = new ModelEndpoint(stack, 'ltv-api', {
      target: gcp, model: 'gs://ml-models/ltv/v3', image: IMAGE, accelerator: 'L4', replicas: { min: 0, max: 4 }, ...props,
    });
    extra?.(stack, e, gcp);
  });

const service = (json: TerraformJson): any => only(json, 'google_cloud_run_v2_service');
const container = (json: TerraformJson): any => service(json).template.containers[0];
const invokers = (json: TerraformJson): any[] => Object.values(resources(json, 'google_cloud_run_v2_service_iam_member'));
const NAME = /^test-ltv-api-[0-9a-f]{8}$/;

describe('ModelEndpoint on GCP (Cloud Run)', () => {
  const { text, json } = build();

  test('one L4 GPU per instance, CPU always allocated, at least 4 vCPU and 16 GiB', () => {
    expect(text).toHaveResourceWithProperties(CloudRunV2Service, {
      template: expect.objectContaining({ node_selector: { accelerator: 'nvidia-l4' }, gpu_zonal_redundancy_disabled: true }),
    });
    expect(container(json).resources).toEqual({ limits: { 'cpu': '8', 'memory': '32Gi', 'nvidia.com/gpu': '1' }, cpu_idle: false, startup_cpu_boost: true });
    const { json: j } = build({ cpu: 4, memoryGiB: 16, gpuZonalRedundancy: true });
    expect(container(j).resources.limits).toEqual({ 'cpu': '4', 'memory': '16Gi', 'nvidia.com/gpu': '1' });
    expect(service(j).template.gpu_zonal_redundancy_disabled).toBe(false);
    const { json: cpu } = build({ accelerator: undefined });
    expect(service(cpu).template.node_selector).toBeUndefined();
    expect(container(cpu).resources).toEqual({ limits: { cpu: '2', memory: '4Gi' }, cpu_idle: true, startup_cpu_boost: true });
  });

  test('scaling bounds: min 0 scales to zero', () => {
    expect(service(json).template.scaling).toEqual({ min_instance_count: 0, max_instance_count: 4 });
    const { json: j } = build({ replicas: { min: 2, max: 10 } });
    expect(service(j).template.scaling).toEqual({ min_instance_count: 2, max_instance_count: 10 });
  });

  test('the model URI goes to the container as MODEL_URI; probes on the health path', () => {
    expect(container(json).env).toEqual([{ name: 'MODEL_URI', value: 'gs://ml-models/ltv/v3' }]);
    expect(container(json).ports).toEqual({ container_port: 8080 });
    expect(container(json).startup_probe.http_get).toEqual({ path: '/ping', port: 8080 });
    const { json: j } = build({ port: 9000, healthPath: '/healthz', env: { WORKERS: '2' } });
    expect(container(j).liveness_probe.http_get).toEqual({ path: '/healthz', port: 9000 });
    expect(container(j).env).toContainEqual({ name: 'WORKERS', value: '2' });
  });

  test('all-at-once (and any first deploy): all traffic to the latest revision, named <service>-<revision>', () => {
    expect(service(json).template.revision).toMatch(/^test-ltv-api-[0-9a-f]{8}-v1$/);
    expect(service(json).traffic).toEqual([{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }]);
    const { json: c } = build({ rollout: Rollout.canary({ percent: 10 }) });
    expect(service(c).traffic).toEqual([{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }]);
  });

  test('canary: the previous revision keeps 100-p percent, the new one gets p', () => {
    const { json: j } = build({ rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1', deployed: true } });
    const name = service(j).name;
    expect(name).toMatch(NAME);
    expect(service(j).template.revision).toBe(`${name}-v2`);
    expect(service(j).traffic).toEqual([
      { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: `${name}-v1`, percent: 90, tag: 'stable' },
      { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: `${name}-v2`, percent: 10, tag: 'canary' },
    ]);
  });

  test('linear: each step (rolloutStep) moves percentPerStep more, the last step moves all', () => {
    const lin = Rollout.linear({ percentPerStep: 25, stepMinutes: 10 });
    const { json: s2 } = build({ rollout: lin, revision: 'v2', previous: { revision: 'v1', deployed: true }, rolloutStep: 2 });
    expect(service(s2).traffic.map((t: any) => [t.revision.slice(-2), t.percent])).toEqual([['v1', 50], ['v2', 50]]);
    const { json: s1 } = build({ rollout: lin, revision: 'v2', previous: { revision: 'v1', deployed: true } });
    expect(service(s1).traffic.map((t: any) => t.percent)).toEqual([75, 25]);
    const { json: s4 } = build({ rollout: lin, revision: 'v2', previous: { revision: 'v1', deployed: true }, rolloutStep: 4 });
    expect(service(s4).traffic.map((t: any) => [t.revision.slice(-2), t.percent])).toEqual([['v2', 100], ['v1', 0]]);
  });

  test('blue/green: the live colour takes all traffic, the other keeps a tagged URL', () => {
    const bg = Rollout.blueGreen();
    const { json: staged } = build({ rollout: bg, revision: 'v2', color: 'green', previous: { revision: 'v1', deployed: true } });
    expect(service(staged).traffic.map((t: any) => [t.revision.slice(-2), t.percent, t.tag])).toEqual([['v1', 100, 'blue'], ['v2', 0, 'green']]);
    const { json: live } = build({ rollout: bg, revision: 'v2', color: 'green', previous: { revision: 'v1', deployed: true }, live: 'green' });
    expect(service(live).traffic.map((t: any) => [t.revision.slice(-2), t.percent, t.tag])).toEqual([['v1', 0, 'blue'], ['v2', 100, 'green']]);
  });

  test('the service account reads only the model prefix of its bucket', () => {
    expect(text).toHaveResourceWithProperties(StorageBucketIamMember, { bucket: 'ml-models', role: 'roles/storage.objectViewer' });
    const m: any = only(json, 'google_storage_bucket_iam_member');
    expect(m.member).toMatch(/^\$\{google_service_account\.[^}]+\.member\}$/);
    expect(m.condition.expression).toBe('resource.name.startsWith("projects/_/buckets/ml-models/objects/ltv/v3")'
      + ' || (resource.type == "storage.googleapis.com/Bucket" && api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("ltv/v3"))');
    expect(service(json).template.service_account).toMatch(/^\$\{google_service_account\.[^}]+\.email\}$/);
  });

  test('private by default: internal ingress and no allUsers', () => {
    expect(service(json).ingress).toBe('INGRESS_TRAFFIC_INTERNAL_ONLY');
    expect(text).not.toContain('allUsers');
    expect(invokers(json)).toHaveLength(0);
  });

  test('public: true adds exactly one allUsers invoker and opens ingress', () => {
    const { json: j, text: t } = build({ public: true });
    expect(service(j).ingress).toBe('INGRESS_TRAFFIC_ALL');
    expect(invokers(j)).toHaveLength(1);
    expect(invokers(j)[0]).toMatchObject({ role: 'roles/run.invoker', member: 'allUsers' });
    expect(t.match(/allUsers/g)).toHaveLength(1);
  });

  test('grantInvoke: run.invoker on the service for the grantee', () => {
    const { json: j } = build({}, (stack, e, gcp) => {
      const client = new ModelEndpoint(stack, 'client', { target: gcp, model: 'gs://ml-models/ranker/v1', image: IMAGE, replicas: { min: 0, max: 1 } });
      e.grantInvoke(client);
    });
    const inv = invokers(j);
    expect(inv).toHaveLength(1);
    expect(inv[0]).toMatchObject({ role: 'roles/run.invoker', location: 'us-central1', project: 'ml-platform-prod' });
    expect(inv[0].member).toMatch(/^\$\{google_service_account\.client_iam_service-account_[A-Z0-9]+\.member\}$/);
    expect(inv[0].name).toMatch(/^\$\{google_cloud_run_v2_service\.ltv-api_serving_service_[A-Z0-9]+\.name\}$/);
  });

  test('secretEnv: Secret Manager references, with accessor for the service account on each', () => {
    const { json: j } = build({ secretEnv: { HF_TOKEN: { store: 'gcp-secret-manager', project: 'ml-platform-prod', secretId: 'hf-token' } } });
    expect(container(j).env).toContainEqual({ name: 'HF_TOKEN', value_source: { secret_key_ref: { secret: 'projects/ml-platform-prod/secrets/hf-token', version: 'latest' } } });
    expect(only(j, 'google_secret_manager_secret_iam_member')).toMatchObject({ secret_id: 'hf-token', role: 'roles/secretmanager.secretAccessor' });
  });

  test('url, metrics and output', () => {
    let e!: ModelEndpoint;
    const { json: j } = build({}, (_s, ep) => { e = ep; });
    expect(e.metrics.latency).toMatchObject({ system: 'cloud-monitoring', name: 'run.googleapis.com/request_latencies', unit: 'milliseconds' });
    expect(e.metrics.errors).toMatchObject({ name: 'run.googleapis.com/request_count', filter: 'metric.labels.response_code_class = "5xx"' });
    expect(e.metrics.invocations.name).toBe('run.googleapis.com/request_count');
    expect(Object.values(j.output ?? {}).map((o) => o.value)).toEqual([expect.stringMatching(/^\$\{google_cloud_run_v2_service\.[^}]+\.uri\}$/)]);
  });

  test('creates exactly these resources', () => {
    expect(countByType(json)).toEqual({ google_service_account: 1, google_storage_bucket_iam_member: 1, google_cloud_run_v2_service: 1, google_project_service: 3 });
  });

  // ---- defects of issue 15 (each of these failed before its fix)

  test('a canary to a previous revision not known to exist deploys all at once and says what to do', () => {
    const { json: j, stack } = build({ rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1' } });
    expect(service(j).traffic).toEqual([{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }]);
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata).filter((m) => m.type === '@cdktf/warn').map((m) => String(m.data));
    expect(warnings).toEqual([expect.stringMatching(/revision test-ltv-api-[0-9a-f]{8}-v1 is not known to exist.*previous to \{ revision: 'v1', deployed: true \}/)]);
    const { json: ok } = build({ rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1', deployed: true } });
    expect(service(ok).traffic.map((t: any) => t.percent)).toEqual([90, 10]);
  });

  test('the canary keeps the old revision reading its own model: the condition covers both prefixes; another bucket gets its own member', () => {
    const { json: j } = build({ rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1', deployed: true, model: 'gs://ml-models/ltv/v2' } });
    const expr: string = (only(j, 'google_storage_bucket_iam_member') as any).condition.expression;
    expect(expr).toContain('objects/ltv/v3")');
    expect(expr).toContain('objects/ltv/v2")');
    const { json: k } = build({ rollout: Rollout.canary({ percent: 10 }), revision: 'v2', previous: { revision: 'v1', deployed: true, model: 'gs://old-models/ltv/v2' } });
    const members = Object.values(resources(k, 'google_storage_bucket_iam_member')) as any[];
    expect(members.map((m) => m.bucket).sort()).toEqual(['ml-models', 'old-models']);
    expect(members.find((m) => m.bucket === 'old-models').condition.expression).toContain('buckets/old-models/objects/ltv/v2")');
  });

  test('records its cost: Cloud Run instance seconds of vCPU, memory and the L4, per hour', () => {
    let gpu: ModelEndpoint | undefined;
    let cpu: ModelEndpoint | undefined;
    build({ cpu: 6, memoryGiB: 24 }, (_s, e) => { gpu = e; });
    build({ accelerator: undefined }, (_s, e) => { cpu = e; });
    const perSecond = (vcpu: number, gib: number, l4: number) => vcpu * CLOUD_RUN_PRICES.vcpuSecond + gib * CLOUD_RUN_PRICES.gibSecond + l4 * CLOUD_RUN_PRICES.l4Second;
    expect(costFacts(gpu!)).toEqual([{
      item: 'Cloud Run instance (6 vCPU, 24 GiB, 1 L4)', unitUsd: Math.round(perSecond(6, 24, 1) * 3600 * 10000) / 10000, per: 'hour', quantity: { min: 0, max: 4 },
      source: CLOUD_RUN_PRICES.source, asOf: CLOUD_RUN_PRICES.asOf, note: `${perSecond(6, 24, 1).toFixed(7)} USD/s x 3600; requests and zonal redundancy surcharges not included`,
    }]);
    // Without a GPU: the defaults, 2 vCPU and 4 GiB.
    expect(costFacts(cpu!)).toEqual([expect.objectContaining({ item: 'Cloud Run instance (2 vCPU, 4 GiB)', unitUsd: Math.round(perSecond(2, 4, 0) * 3600 * 10000) / 10000 })]);
  });

  test('Cloud Run defaults: no zonal redundancy unless asked, deletion protection off explicitly, startup windows within the limits', () => {
    expect(service(json).template.gpu_zonal_redundancy_disabled).toBe(true);
    expect(service(json).deletion_protection).toBe(false);
    const window = (j: TerraformJson) => container(j).startup_probe.period_seconds * container(j).startup_probe.failure_threshold;
    expect(window(json)).toBeLessThanOrEqual(1800);
    const { json: cpu } = build({ accelerator: undefined });
    expect(window(cpu)).toBeLessThanOrEqual(240);
    expect(container(cpu).startup_probe.period_seconds).toBeLessThanOrEqual(240);
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
