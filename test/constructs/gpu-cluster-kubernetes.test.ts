/**
 * GpuCluster on Kubernetes (issue 19): no pod holds a GPU while no job runs. The gateway Deployment
 * serves the API; jobs are Kueue-admitted Jobs/JobSets it renders from the config the construct
 * writes; artifacts on the target's object store or on one single-node volume.
 */
import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1';
import { Policy } from '../../src/aspects/policy/policy';
import { PolicyPack } from '../../src/aspects/policy/pack';
import { GpuCluster, GpuClusterProps, IGrantable, KubernetesTarget, KubernetesTargetProps } from '../../src';
import { MlInfraError } from '../../src/core/errors';
import { JOB_CLUSTER_LABEL } from '../../src/constructs/gpu-cluster/kubernetes';
import { CLUSTER_LABEL, GatewayConfig, renderJob } from '../../src/runtime-agent/k8s/objects';
import { countByType, only, resources, synth, TerraformJson, testAgentBundle } from '../helpers';
import { gatewayConfigOf } from '../kubernetes-support';

const BUNDLE_DIR = testAgentBundle();

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster, k8s: KubernetesTarget) => void, target: Partial<KubernetesTargetProps> = {}) =>
  synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
    const c = new GpuCluster(stack, 'train', {
      target: k8s, accelerator: 'H100', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, agentBundleDir: BUNDLE_DIR, ...props,
    });
    extra?.(stack, c, k8s);
  });

const TOKEN_REFS = /\$\{random_password\.[^}]+\.result\}/g;
const NS_REF = /^\$\{kubernetes_namespace_v1\.k8s_namespace_[A-Z0-9]+\.metadata\[0\]\.name\}$/;
const S3 = { uri: 's3://acme-ml/artifacts', endpoint: 'http://minio.minio.svc:9000', credentialsSecret: { name: 'minio-credentials', key: 'credentials' } };

const gatewayConfig = (json: TerraformJson): GatewayConfig => gatewayConfigOf(json);
const warnings = (stack: IConstruct) => stack.node.findAll().flatMap((c) => c.node.metadata.filter((m) => /warn/i.test(m.type)).map((m) => String(m.data)));

describe('GpuCluster on Kubernetes: no agent StatefulSet, a gateway and Kueue-admitted jobs', () => {
  const { text, json, stack } = build();
  const config = gatewayConfig(json);

  test('no pod holds a GPU while no job runs: no StatefulSet, no DaemonSet, and only the ClusterQueue names nvidia.com/gpu', () => {
    expect(resources(json, 'kubernetes_stateful_set_v1')).toEqual({});
    expect(resources(json, 'kubernetes_daemon_set_v1')).toEqual({});
    const d = only(json, 'kubernetes_deployment_v1') as any;
    expect(JSON.stringify(d)).not.toContain('nvidia.com/gpu');
    const gpuNamers = Object.entries(json.resource!).flatMap(([type, byName]) => Object.values(byName)
      .filter((r) => JSON.stringify(r).includes('"nvidia.com/gpu":')).map((r: any) => `${type}:${r.manifest?.kind ?? ''}`));
    // No object requests the GPU resource; only the ClusterQueue holds a quota of it.
    expect(gpuNamers).toEqual([]);
    const cq = Object.values(resources(json, 'kubernetes_manifest')).map((m: any) => m.manifest).find((m) => m.kind === 'ClusterQueue');
    expect(cq.spec.resourceGroups[0].flavors[0].resources).toContainEqual({ name: 'nvidia.com/gpu', nominalQuota: '32' });
    expect(text).not.toMatch(/idle-stop|stop\.js|statefulsets/);
  });

  test('a job asking for a node\'s GPUs gets the catalog\'s CPU and memory share, node selector and tolerations', () => {
    const job = renderJob(config, 'j000000000001', { argv: ['python', 'train.py'], env: {}, gpus: 8, nodes: 1, priority: 0, retries: 0, kind: 'train' }) as any;
    const c = job.spec.template.spec.containers[0];
    // H100: the smallest per-GPU cloud share is 24 vCPU (p5.48xlarge) and 234 GiB (a3-highgpu); requests half of it.
    expect(c.resources.requests).toEqual({ 'cpu': '96', 'memory': '936Gi', 'nvidia.com/gpu': '8' });
    expect(job.spec.template.spec.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' });
    expect(job.spec.template.spec.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(job.metadata.labels['kueue.x-k8s.io/queue-name']).toBe('test-train-acae17ff');
    expect(job.spec.suspend).toBe(true);
  });

  test('node selector by the target\'s label scheme; spot on GKE selects and tolerates spot nodes', () => {
    const gke = gatewayConfig(build({ spot: true }, undefined, { gpuNodeLabels: 'gke' }).json);
    expect(gke.nodeSelector).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-h100-80gb', 'cloud.google.com/gke-spot': 'true' });
    expect(gke.tolerations).toContainEqual({ key: 'cloud.google.com/gke-spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' });
    expect(gatewayConfig(build({}, undefined, { gpuNodeLabels: 'none' }).json).nodeSelector).toEqual({});
  });

  test('fails when the accelerator has no GKE label on a gke-labelled target, naming those that have one', () => {
    let err: unknown;
    try {
      build({ accelerator: 'A10G', acceleratorsPerNode: 1 }, undefined, { gpuNodeLabels: 'gke' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect(err).toMatchObject({ code: 'NOT_OFFERED', prop: 'accelerator', path: 'test/train', allowed: 'T4, L4, V100, A100-40GB, A100-80GB, H100, H200' });
  });

  test('agentUrl is the gateway Service; the gateway serves this cluster\'s queue, quota and job image', () => {
    const url = Object.entries(json.output!).find(([k]) => k.includes('agent-url'))![1].value;
    {
      expect(url).toMatch(/^http:\/\/\$\{kubernetes_service_v1\.train_gateway_service_[A-Z0-9]+\.metadata\[0\]\.name\}\.\$\{kubernetes_namespace_v1\.[^}]+\}\.svc\.cluster\.local:7070$/);
    }
    expect(config).toMatchObject({
      namespace: 'ml', cluster: 'test-train-acae17ff', localQueue: 'test-train-acae17ff', quotaGpus: 32, gpusPerNode: 8, maxNodes: 4,
      image: 'pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime', jobServiceAccount: 'train_gateway_job-service-account',
    });
    const svc = Object.values(resources(json, 'kubernetes_service_v1')) as any[];
    expect(svc).toHaveLength(1);
    expect(svc[0].spec.selector).toEqual({ 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': 'test-train-acae17ff', 'app.kubernetes.io/component': 'gateway' });
  });

  test('the gateway: non-root, read-only root filesystem, the token as a file, two replicas', () => {
    const d = only(json, 'kubernetes_deployment_v1') as any;
    const pod = d.spec.template.spec;
    for (const c of [...pod.container, ...pod.init_container]) {
      expect(c.security_context).toMatchObject({ run_as_non_root: true, read_only_root_filesystem: true, allow_privilege_escalation: false, capabilities: { drop: ['ALL'] } });
    }
    expect(pod.volume).toContainEqual({ name: 'token', secret: { secret_name: expect.stringMatching(/kubernetes_secret_v1\.train_identity_agent-token_/), default_mode: '0400', items: [{ key: 'token', path: 'token' }] } });
    expect(JSON.stringify(pod)).not.toMatch(/secret_key_ref|"privileged":true|host_path/);
    expect(d.spec.replicas).toBe('2');
  });

  test('RBAC: one namespaced Role on exact kinds and verbs, bound to the gateway only', () => {
    expect(resources(json, 'kubernetes_cluster_role_v1')).toEqual({});
    const role = only(json, 'kubernetes_role_v1') as any;
    expect(role.metadata.namespace).toMatch(NS_REF);
    expect(role.rule.map((r: any) => [r.api_groups[0], r.resources[0], r.verbs.join(',')])).toEqual([
      ['batch', 'jobs', 'create,get,list,delete'], ['jobset.x-k8s.io', 'jobsets', 'create,get,list,delete'], ['', 'pods', 'list'], ['', 'pods/log', 'get'],
      ['kueue.x-k8s.io', 'localqueues', 'get'], ['', 'configmaps', 'get,update'],
    ]);
    // The only ConfigMap it may write is the cluster's pipeline-run record.
    expect(role.rule[5].resource_names).toEqual(['test-train-acae17ff-pipeline-runs']);
    const accounts = (Object.values(resources(json, 'kubernetes_service_account_v1')) as any[]).map((a) => a.automount_service_account_token).sort();
    // The gateway's (it calls the API) and the jobs' (no token).
    expect(accounts).toEqual([false, true]);
  });

  test('NetworkPolicies: the gateway port from client-labelled pods only; job pods from their own cluster\'s pods only', () => {
    const nps = Object.values(resources(json, 'kubernetes_network_policy_v1')) as any[];
    expect(nps).toHaveLength(2);
    const gw = nps.find((n) => n.spec.pod_selector.match_labels['app.kubernetes.io/component'] === 'gateway');
    expect(gw.spec.ingress).toEqual([{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/agent-client': 'true' } } }], ports: [{ port: '7070', protocol: 'TCP' }] }]);
    const jobs = nps.find((n) => n !== gw);
    expect(JOB_CLUSTER_LABEL).toBe(CLUSTER_LABEL);
    expect(jobs.spec).toEqual({
      pod_selector: { match_labels: { 'mlinfra.dev/cluster': 'test-train-acae17ff' } }, policy_types: ['Ingress'],
      ingress: [{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/cluster': 'test-train-acae17ff' } } }] }],
    });
    const { text: t } = build({ allowedCidrs: ['10.8.0.0/16'] });
    expect(t).toHaveResourceWithProperties(NetworkPolicyV1, {
      spec: expect.objectContaining({ ingress: [{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/agent-client': 'true' } } }, { ip_block: { cidr: '10.8.0.0/16' } }], ports: [{ port: '7070', protocol: 'TCP' }] }] }),
    });
    expect(text).not.toContain('0.0.0.0/0');
  });

  test('every object: the target\'s provider and namespace; the cluster\'s objects carry its labels', () => {
    for (const [type, byName] of Object.entries(json.resource!)) {
      if (!type.startsWith('kubernetes_') || type === 'kubernetes_namespace_v1') continue;
      for (const r of Object.values(byName) as any[]) {
        expect(r.provider).toBe('kubernetes.test_k8s_f1348bd0');
        const metadata = type === 'kubernetes_manifest' ? r.manifest.metadata : r.metadata;
        if (type !== 'kubernetes_manifest' || r.manifest.kind === 'LocalQueue') expect(metadata.namespace).toMatch(NS_REF);
        expect(metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'cdktf-mlinfra', 'app.kubernetes.io/instance': 'test-train-acae17ff' });
      }
    }
  });

  test('the token is only in the Secret, and no output names it', () => {
    const refs = text.match(TOKEN_REFS) ?? [];
    expect(refs).toHaveLength(1);
    expect((only(json, 'kubernetes_secret_v1') as any).data).toEqual({ token: refs[0] });
    expect(JSON.stringify(json.output)).not.toMatch(TOKEN_REFS);
  });

  test('file:// artifacts: one ReadWriteOnce volume the job pods mount, and a warning for more than one node', () => {
    const pvc = only(json, 'kubernetes_persistent_volume_claim_v1') as any;
    expect(pvc.spec).toEqual({ access_modes: ['ReadWriteOnce'], resources: { requests: { storage: '200Gi' } } });
    expect(pvc.wait_until_bound).toBe(false);
    expect(config.artifactsUri).toBe('file:///var/lib/mlinfra/artifacts');
    expect(config.storage).toEqual({ volumeClaim: 'train_bundle_artifacts' });
    const pod = (renderJob(config, 'j000000000001', { argv: ['x'], env: {}, gpus: 1, nodes: 1, priority: 0, retries: 0, kind: 'train' }) as any).spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'artifacts', persistentVolumeClaim: { claimName: 'train_bundle_artifacts' } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'artifacts', mountPath: '/var/lib/mlinfra/artifacts' });
    // Checkpoints default to the artifact store.
    expect(pod.containers[0].env).toContainEqual({ name: 'MLINFRA_CHECKPOINT_URI', value: 'file:///var/lib/mlinfra/artifacts/checkpoints/j000000000001/' });
    expect(warnings(stack).join('\n')).toMatch(/single-node use: multi-node jobs are refused.*artifactStore/s);
    const one = build({ nodes: { min: 0, max: 1 } });
    expect(warnings(one.stack)).toEqual([]);
  });

  test('an S3-compatible artifact store (MinIO): the storage module, endpoint, path style and a credentials file; no volume', () => {
    const { json: j } = build({}, undefined, { artifactStore: S3 });
    expect(resources(j, 'kubernetes_persistent_volume_claim_v1')).toEqual({});
    const c = gatewayConfig(j);
    expect(c.artifactsUri).toBe('s3://acme-ml/artifacts/test-train-acae17ff');
    expect(c.storage).toEqual({
      env: { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: 'http://minio.minio.svc:9000', AWS_S3_FORCE_PATH_STYLE: '1' },
      credentials: { secret: 'minio-credentials', key: 'credentials', envVar: 'AWS_SHARED_CREDENTIALS_FILE' },
      module: { configMap: 'train_bundle_storage-module', file: 'storage-s3.js' },
    });
    const mod = Object.values(resources(j, 'kubernetes_config_map_v1')).find((m: any) => m.data['storage-s3.js']) as any;
    expect(mod.data['storage-s3.js']).toMatch(/^\$\{file\("assets\/.*storage-s3\.js"\)\}$/);
    const pod = (renderJob(c, 'j000000000002', { argv: ['x'], env: {}, gpus: 1, nodes: 1, priority: 0, retries: 0, kind: 'train' }) as any).spec.template.spec;
    const env = pod.containers[0].env;
    expect(env).toEqual(expect.arrayContaining([
      { name: 'AWS_ENDPOINT_URL_S3', value: 'http://minio.minio.svc:9000' },
      { name: 'AWS_SHARED_CREDENTIALS_FILE', value: '/var/run/mlinfra/storage/credentials' },
      { name: 'MLINFRA_CHECKPOINT_URI', value: 's3://acme-ml/artifacts/test-train-acae17ff/checkpoints/j000000000002/' },
    ]));
    expect(JSON.stringify(env)).not.toMatch(/secretKeyRef/);
    expect(pod.volumes).toContainEqual({ name: 'storage-credentials', secret: { secretName: 'minio-credentials', defaultMode: 0o400, items: [{ key: 'credentials', path: 'credentials' }] } });
    expect(pod.initContainers[0].command[2]).toContain('cp /opt/mlinfra/storage-module/storage-s3.js /opt/mlinfra/agent/');
  });

  test('a GCS artifact store: storage-gcs.js and GOOGLE_APPLICATION_CREDENTIALS; workload identity without a Secret', () => {
    const c = gatewayConfig(build({}, undefined, { artifactStore: { uri: 'gs://acme-ml', credentialsSecret: { name: 'gcs-key', key: 'key.json' } } }).json);
    expect(c.storage).toMatchObject({ credentials: { envVar: 'GOOGLE_APPLICATION_CREDENTIALS', key: 'key.json' }, module: { file: 'storage-gcs.js' } });
    const wi = gatewayConfig(build({}, undefined, { artifactStore: { uri: 'gs://acme-ml' } }).json);
    expect(wi.storage?.credentials).toBeUndefined();
  });

  test('fails on a bad artifact store, naming the prop and what is allowed', () => {
    const cases: Array<[Partial<KubernetesTargetProps>['artifactStore'], string, RegExp]> = [
      [{ uri: 'file:///data' }, 'artifactStore.uri', /file:\/\/ is the default without artifactStore, for single-node use/],
      [{ uri: 'gs://acme', endpoint: 'http://minio:9000' }, 'artifactStore.endpoint', /s3:\/\/ stores only/],
      [{ uri: 's3://acme', endpoint: 'minio:9000' }, 'artifactStore.endpoint', /http\(s\):\/\/host/],
      [{ uri: 's3://acme', credentialsSecret: { name: 'Bad_Name', key: 'k' } }, 'artifactStore.credentialsSecret', /DNS-1123/],
    ];
    for (const [store, prop, allowed] of cases) {
      let err: unknown;
      try { build({}, undefined, { artifactStore: store }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(MlInfraError);
      expect(err).toMatchObject({ prop, path: 'test/k8s' });
      expect((err as MlInfraError).message).toMatch(allowed);
    }
  });

  test('grantAgentAccess to another namespace: get on exactly the token Secret, and a way through the gateway\'s NetworkPolicy', () => {
    const { json: j, text: t } = build({}, (stack, c) => {
      const other = new KubernetesTarget(stack, 'k8s-ops', { namespace: 'ops', provider: (c.target as KubernetesTarget).provider });
      c.grantAgentAccess(new GpuCluster(stack, 'ops', { target: other, accelerator: 'T4', agentBundleDir: BUNDLE_DIR }));
    });
    expect(t).toHaveResourceWithProperties(RoleV1, {
      rule: [{ api_groups: [''], resources: ['secrets'], resource_names: [expect.stringMatching(/kubernetes_secret_v1\.train_identity_agent-token_/)], verbs: ['get'] }],
    });
    const binding = Object.entries(resources(j, 'kubernetes_role_binding_v1')).find(([k]) => k.startsWith('train_grants_'))![1] as any;
    // A cluster's principal is what its jobs run as.
    expect(binding.subject).toEqual([{ kind: 'ServiceAccount', name: expect.stringMatching(/ops_gateway_job-service-account_/), namespace: expect.stringMatching(/k8s-ops_namespace_/) }]);
    const np = Object.entries(resources(j, 'kubernetes_network_policy_v1')).find(([k]) => k.startsWith('train_grants_'))![1] as any;
    expect(np.spec.pod_selector.match_labels).toEqual({ 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': 'test-train-acae17ff', 'app.kubernetes.io/component': 'gateway' });
    expect(np.spec.ingress[0].from[0].pod_selector.match_labels).toEqual({ 'mlinfra.dev/cluster': expect.stringMatching(/^test-ops-/) });
  });

  test('grantScale and artifact grants create nothing (Kueue and the autoscaler scale); a grantee off Kubernetes is refused', () => {
    const { json: j } = build({}, (_s, c) => {
      const ci: IGrantable = { grantPrincipal: { kind: 'kubernetes', namespace: 'ml', serviceAccountName: 'ci' } };
      c.grantScale(ci);
      c.grantArtifactsRead(ci);
      c.grantArtifactsWrite(ci);
      const aws: IGrantable = { grantPrincipal: { kind: 'aws', roleArn: 'arn:aws:iam::123456789012:role/x', roleName: 'x', addToPolicy: () => undefined } };
      expect(() => c.grantAgentAccess(aws)).toThrow(MlInfraError);
      expect(() => c.grantScale(aws)).toThrow(/grantScale.*names a grantee on aws, the cluster is on kubernetes/);
    });
    expect(Object.keys(resources(j, 'kubernetes_role_v1')).filter((k) => k.startsWith('train_grants_'))).toEqual([]);
  });

  test('escape hatches and exactly these objects', () => {
    build({}, (_s, c) => {
      expect(c.kubernetes?.gateway.deployment).toBeInstanceOf(DeploymentV1);
      expect(c.kubernetes?.configMap).toBeInstanceOf(ConfigMapV1);
      expect(c.kubernetes?.secret).toBeInstanceOf(SecretV1);
      expect(c.kubernetes?.artifactsVolumeClaim).toBeInstanceOf(PersistentVolumeClaimV1);
      expect(c.kubernetes?.storageModule).toBeUndefined();
      expect(c.artifactsUri).toBe('file:///var/lib/mlinfra/artifacts');
    });
    expect(countByType(json)).toEqual({
      kubernetes_namespace_v1: 1,
      kubernetes_service_account_v1: 2,
      kubernetes_secret_v1: 1,
      // The agent bundle, the gateway's config and its pipeline-run record.
      kubernetes_config_map_v1: 3,
      kubernetes_persistent_volume_claim_v1: 1,
      kubernetes_role_v1: 1,
      kubernetes_role_binding_v1: 1,
      kubernetes_deployment_v1: 1,
      kubernetes_service_v1: 1,
      kubernetes_network_policy_v1: 2,
      kubernetes_pod_disruption_budget_v1: 1,
      // Kueue: ResourceFlavor, ClusterQueue, LocalQueue.
      kubernetes_manifest: 3,
      random_password: 1,
    });
  });

  test('zero policy findings with the default pack', () => {
    const findings: string[] = [];
    build({}, (s) => Policy.apply(s, { pack: PolicyPack.default(), reporter: (f) => findings.push(`${f.ruleId} ${f.path}: ${f.detail}`) }), { artifactStore: S3 });
    expect(findings).toEqual([]);
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
