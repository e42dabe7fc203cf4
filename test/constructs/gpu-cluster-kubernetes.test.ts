import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { execFile, execFileSync } from 'child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { createServer, Server } from 'https';
import { AddressInfo } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import { StatefulSetV1 } from '@cdktf/provider-kubernetes/lib/stateful-set-v1';
import { GpuCluster, GpuClusterProps, IGrantable, KubernetesTarget, KubernetesTargetProps } from '../../src';
import { MlInfraError } from '../../src/core/errors';
import { GPU_ENV_SH, renderStopScript } from '../../src/constructs/gpu-cluster/kubernetes';
import { countByType, only, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const BUNDLE_DIR = testAgentBundle();

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster, k8s: KubernetesTarget) => void, target: Partial<KubernetesTargetProps> = {}) =>
  synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
    const c = new GpuCluster(stack, 'train', {
      target: k8s, accelerator: 'H100', acceleratorsPerNode: 8, nodes: { min: 0, max: 4 }, agentBundleDir: BUNDLE_DIR, ...props,
    });
    extra?.(stack, c, k8s);
  });

const sts = (json: TerraformJson): any => only(json, 'kubernetes_stateful_set_v1');
const podSpec = (json: TerraformJson): any => sts(json).spec.template.spec;
const agent = (json: TerraformJson): any => podSpec(json).container.find((c: any) => c.name === 'agent');
const TOKEN_REFS = /\$\{random_password\.[^}]+\.result\}/g;
const NS_REF = /^\$\{kubernetes_namespace_v1\.k8s_namespace_[A-Z0-9]+\.metadata\[0\]\.name\}$/;

describe('GpuCluster on Kubernetes', () => {
  const { text, json } = build();

  test('the agent container requests all the node\'s GPUs, with CPU and memory from the catalog', () => {
    const r = agent(json).resources;
    expect(r.limits['nvidia.com/gpu']).toBe('8');
    expect(r.requests['nvidia.com/gpu']).toBe('8');
    // H100: the smallest per-GPU cloud share is 24 vCPU (p5.48xlarge) and 234 GiB (a3-highgpu).
    expect(r.requests).toEqual({ 'cpu': '96', 'memory': '936Gi', 'nvidia.com/gpu': '8' });
    expect(r.limits).toEqual({ 'cpu': '192', 'memory': '1872Gi', 'nvidia.com/gpu': '8' });
    const { json: one } = build({ accelerator: 'T4', acceleratorsPerNode: 1 });
    expect(agent(one).resources.limits).toEqual({ 'cpu': '4', 'memory': '16Gi', 'nvidia.com/gpu': '1' });
  });

  test('node selector by the target\'s label scheme: GPU Feature Discovery by default', () => {
    expect(text).toHaveResourceWithProperties(StatefulSetV1, {
      spec: expect.objectContaining({
        template: expect.objectContaining({ spec: expect.objectContaining({ node_selector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } }) }),
      }),
    });
    const { json: gke } = build({}, undefined, { gpuNodeLabels: 'gke' });
    expect(podSpec(gke).node_selector).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-h100-80gb' });
    const { json: none } = build({}, undefined, { gpuNodeLabels: 'none' });
    expect(podSpec(none).node_selector).toBeUndefined();
  });

  test('tolerates the nvidia.com/gpu taint, and nothing else without spot', () => {
    expect(podSpec(json).toleration).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  test('spot on GKE: selects and tolerates GKE spot nodes', () => {
    const { json: j } = build({ spot: true }, undefined, { gpuNodeLabels: 'gke' });
    expect(podSpec(j).node_selector).toEqual({ 'cloud.google.com/gke-accelerator': 'nvidia-h100-80gb', 'cloud.google.com/gke-spot': 'true' });
    expect(podSpec(j).toleration).toContainEqual({ key: 'cloud.google.com/gke-spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' });
  });

  test('fails when the accelerator has no GKE label on a gke-labelled target, naming those that have one', () => {
    let err: unknown;
    try {
      build({ accelerator: 'A10G', acceleratorsPerNode: 1 }, undefined, { gpuNodeLabels: 'gke' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    const e = err as MlInfraError;
    expect(e.code).toBe('NOT_OFFERED');
    expect(e.prop).toBe('accelerator');
    expect(e.path).toBe('test/train');
    expect(e.message).toMatch(/A10G has no GKE accelerator label/);
    expect(e.allowed).toBe('T4, L4, V100, A100-40GB, A100-80GB, H100, H200');
  });

  test('replicas start at nodes.min and are left to idle stop and schedules afterwards', () => {
    const s = sts(json);
    expect(s.spec.replicas).toBe('0');
    expect(s.lifecycle).toEqual({ ignore_changes: ['spec[0].replicas'] });
    expect(s.spec.pod_management_policy).toBe('Parallel');
    expect(s.wait_for_rollout).toBe(false);
    const { json: j } = build({ nodes: { min: 2, max: 3 } });
    expect(sts(j).spec.replicas).toBe('2');
  });

  test('every object: the target\'s provider, namespace and labels plus the agent labels', () => {
    for (const [type, byName] of Object.entries(json.resource!)) {
      if (!type.startsWith('kubernetes_') || type === 'kubernetes_namespace_v1') continue;
      for (const r of Object.values(byName) as any[]) {
        expect(r.provider).toBe('kubernetes.test_k8s_f1348bd0');
        // Kueue objects are kubernetes_manifest (test/kubernetes-kueue.test.ts); ResourceFlavor and ClusterQueue are cluster-scoped.
        const metadata = type === 'kubernetes_manifest' ? r.manifest.metadata : r.metadata;
        if (type !== 'kubernetes_manifest' || r.manifest.kind === 'LocalQueue') expect(metadata.namespace).toMatch(NS_REF);
        expect(metadata.labels).toEqual({
          'app.kubernetes.io/managed-by': 'cdktf-mlinfra', 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': 'test-train-acae17ff',
        });
      }
    }
  });

  test('volumes: a data claim per pod at the data dir, the bundle and an emptyDir for the installed agent', () => {
    const s = sts(json);
    expect(s.spec.volume_claim_template).toEqual([{
      metadata: { name: 'data', labels: expect.any(Object) },
      spec: { access_modes: ['ReadWriteOnce'], resources: { requests: { storage: '200Gi' } } },
    }]);
    expect(s.spec.persistent_volume_claim_retention_policy).toEqual([{ when_scaled: 'Retain', when_deleted: 'Retain' }]);
    expect(agent(json).volume_mount).toEqual(expect.arrayContaining([
      { name: 'data', mount_path: '/var/lib/mlinfra' },
      { name: 'agent', mount_path: '/opt/mlinfra/agent', read_only: true },
      { name: 'bundle', mount_path: '/opt/mlinfra/bundle', read_only: true },
    ]));
    expect(podSpec(json).volume).toContainEqual({ name: 'agent', empty_dir: {} });
    const { json: j } = build({ diskGiB: 500 }, undefined, { storageClassName: 'premium-rwo' });
    expect(sts(j).spec.volume_claim_template[0].spec).toMatchObject({ storage_class_name: 'premium-rwo', resources: { requests: { storage: '500Gi' } } });
  });

  test('the bundle ConfigMap carries the built agent; the init container copies it as non-root, installing nothing', () => {
    const cm = only(json, 'kubernetes_config_map_v1') as any;
    expect(cm.data['mlinfra-agent.js']).toMatch(/^\$\{file\("assets\/.+\/mlinfra-agent\.js"\)\}$/);
    expect(cm.data['package.json']).toBeUndefined();
    const init = podSpec(json).init_container;
    expect(init).toHaveLength(1);
    expect(init[0].name).toBe('install');
    expect(init[0].image).toBe('node:24.18.1-bookworm-slim');
    expect(init[0].command.join(' ')).toContain('/mlinfra-agent.js /opt/mlinfra/agent/');
    expect(init[0].command.join(' ')).not.toContain('npm');
    expect(init[0].security_context).toMatchObject({ run_as_non_root: true, run_as_user: '1000' });
    expect(init[0].resources.limits).toEqual({ cpu: '2', memory: '2Gi' });
  });

  test('agent command line: serve on all interfaces with the data dir and the mounted token file', () => {
    // Wrapped by the GPU environment script (test/kubernetes-gke.test.ts runs it); the agent's own Node.js.
    expect(agent(json).command.slice(0, 4)).toEqual(['sh', '-c', GPU_ENV_SH, 'mlinfra-agent']);
    expect(agent(json).command.slice(4)).toEqual([
      '/opt/mlinfra/agent/bin/node', '/opt/mlinfra/agent/mlinfra-agent.js', 'serve', '--host', '0.0.0.0', '--port', '7070',
      '--data-dir', '/var/lib/mlinfra', '--token-file', '/var/run/mlinfra/token', '--preemption', 'none', '--gpus', '8',
      '--idle-stop-minutes', '30', '--stop-command', '/opt/mlinfra/agent/bin/node /opt/mlinfra/bundle/stop.js',
    ]);
    expect(podSpec(json).termination_grace_period_seconds).toBe(90);
    expect(agent(json).readiness_probe.http_get).toEqual({ path: '/healthz', port: '7070', scheme: 'HTTP' });
    expect(agent(json).liveness_probe.http_get).toEqual({ path: '/healthz', port: '7070', scheme: 'HTTP' });
  });

  test('headless Service for rendezvous, ClusterIP Service with client affinity for the API', () => {
    expect(text).toHaveResourceWithProperties(ServiceV1, {
      metadata: expect.objectContaining({ name: 'test-train-acae17ff-peers' }),
      spec: expect.objectContaining({
        cluster_ip: 'None', publish_not_ready_addresses: true,
        port: [{ name: 'agent', port: 7070, target_port: '7070', protocol: 'TCP' }, { name: 'rendezvous', port: 29500, target_port: '29500', protocol: 'TCP' }],
      }),
    });
    expect(text).toHaveResourceWithProperties(ServiceV1, {
      metadata: expect.objectContaining({ name: 'test-train-acae17ff' }),
      spec: expect.objectContaining({ type: 'ClusterIP', session_affinity: 'ClientIP', port: [{ name: 'agent', port: 7070, target_port: '7070', protocol: 'TCP' }] }),
    });
    expect(sts(json).spec.service_name).toMatch(/^\$\{kubernetes_service_v1\.train_network_peers_[A-Z0-9]+\.metadata\[0\]\.name\}$/);
    const url = json.output!['train_outputs_agent-url_E2DE7A9D']?.value ?? Object.entries(json.output!).find(([k]) => k.includes('agent-url'))![1].value;
    expect(url).toMatch(/^http:\/\/\$\{kubernetes_service_v1\.train_network_api_[A-Z0-9]+\.metadata\[0\]\.name\}\.\$\{kubernetes_namespace_v1\..+\}\.svc\.cluster\.local:7070$/);
    expect(agent(json).env).toContainEqual({
      name: 'MLINFRA_RENDEZVOUS_ENDPOINT', value: expect.stringMatching(/^test-train-acae17ff-0\.test-train-acae17ff-peers\.\$\{.+\}\.svc\.cluster\.local:29500$/),
    });
  });

  test('multi-node clusters spread over hosts; one-node clusters carry no affinity', () => {
    expect(podSpec(json).affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution[0].pod_affinity_term.topology_key).toBe('kubernetes.io/hostname');
    const { json: j } = build({ nodes: { min: 0, max: 1 } });
    expect(podSpec(j).affinity).toBeUndefined();
  });

  test('PodDisruptionBudget: drains evict one pod at a time', () => {
    expect(text).toHaveResourceWithProperties(PodDisruptionBudgetV1, {
      spec: { max_unavailable: '1', selector: { match_labels: { 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': 'test-train-acae17ff' } } },
    });
  });

  test('NetworkPolicy: the agent port from client-labelled pods only; all ports between the cluster\'s own pods', () => {
    const np = only(json, 'kubernetes_network_policy_v1') as any;
    expect(np.spec.policy_types).toEqual(['Ingress']);
    expect(np.spec.pod_selector.match_labels).toEqual({ 'app.kubernetes.io/name': 'mlinfra-agent', 'app.kubernetes.io/instance': 'test-train-acae17ff' });
    expect(np.spec.ingress).toEqual([
      { from: [{ pod_selector: { match_labels: { 'mlinfra.dev/agent-client': 'true' } } }], ports: [{ port: '7070', protocol: 'TCP' }] },
      { from: [{ pod_selector: { match_labels: np.spec.pod_selector.match_labels } }] },
    ]);
    expect(text).not.toContain('0.0.0.0/0');
  });

  test('NetworkPolicy: allowedCidrs become ipBlocks on the agent port', () => {
    const { json: j, text: t } = build({ allowedCidrs: ['10.8.0.0/16', '192.168.4.0/24'] });
    expect(t).toHaveResourceWithProperties(NetworkPolicyV1, {
      spec: expect.objectContaining({
        ingress: [{
          from: [
            { pod_selector: { match_labels: { 'mlinfra.dev/agent-client': 'true' } } },
            { ip_block: { cidr: '10.8.0.0/16' } },
            { ip_block: { cidr: '192.168.4.0/24' } },
          ],
          ports: [{ port: '7070', protocol: 'TCP' }],
        }, expect.anything()],
      }),
    });
    expect(t).not.toContain('0.0.0.0/0');
    expect(countByType(j).kubernetes_network_policy_v1).toBe(1);
  });

  test('pods run as non-root with no privileges, RuntimeDefault seccomp and fsGroup 1000', () => {
    expect(agent(json).security_context).toEqual({
      run_as_non_root: true, run_as_user: '1000', allow_privilege_escalation: false, capabilities: { drop: ['ALL'] },
      read_only_root_filesystem: false, seccomp_profile: { type: 'RuntimeDefault' },
    });
    expect(podSpec(json).security_context).toMatchObject({ run_as_non_root: true, fs_group: '1000', seccomp_profile: { type: 'RuntimeDefault' } });
    expect(JSON.stringify(sts(json))).not.toMatch(/"privileged":true|host_network|host_path/);
  });

  test('the token is only in the Secret: its one reference is the Secret\'s data', () => {
    const refs = text.match(TOKEN_REFS) ?? [];
    expect(refs).toHaveLength(1);
    const secret = only(json, 'kubernetes_secret_v1') as any;
    expect(secret.type).toBe('Opaque');
    expect(secret.data).toEqual({ token: refs[0] });
    expect(json.output && JSON.stringify(json.output)).not.toMatch(TOKEN_REFS);
  });

  test('the token reaches the agent as a read-only file, never as an environment variable', () => {
    expect(podSpec(json).volume).toContainEqual({
      name: 'token',
      secret: {
        secret_name: expect.stringMatching(/^\$\{kubernetes_secret_v1\.train_identity_agent-token_[A-Z0-9]+\.metadata\[0\]\.name\}$/),
        default_mode: '0400', items: [{ key: 'token', path: 'token' }],
      },
    });
    expect(agent(json).volume_mount).toContainEqual({ name: 'token', mount_path: '/var/run/mlinfra', read_only: true });
    const envs = [...agent(json).env, ...(podSpec(json).init_container[0].env ?? [])];
    expect(JSON.stringify(envs)).not.toMatch(/secret_key_ref|TOKEN/i);
    expect(agent(json).env_from).toBeUndefined();
  });

  test('idle stop: RBAC on exactly the StatefulSet\'s scale subresource, bound to the pods\' service account', () => {
    expect(text).toHaveResourceWithProperties(RoleV1, {
      rule: [{ api_groups: ['apps'], resources: ['statefulsets/scale'], resource_names: ['test-train-acae17ff'], verbs: ['get', 'patch'] }],
    });
    expect(text).toHaveResourceWithProperties(RoleBindingV1, { role_ref: expect.objectContaining({ kind: 'Role' }) });
    const rb = only(json, 'kubernetes_role_binding_v1') as any;
    expect(rb.role_ref).toEqual({ api_group: 'rbac.authorization.k8s.io', kind: 'Role', name: expect.stringMatching(/kubernetes_role_v1\.train_identity_idle-stop-role_/) });
    expect(rb.subject).toEqual([{ kind: 'ServiceAccount', name: expect.stringMatching(/kubernetes_service_account_v1\.train_identity_service-account_/), namespace: expect.stringMatching(NS_REF) }]);
    expect(text).toHaveResourceWithProperties(ServiceAccountV1, { automount_service_account_token: true });
    expect(podSpec(json).service_account_name).toMatch(/kubernetes_service_account_v1\.train_identity_service-account_/);
    expect(Object.keys((only(json, 'kubernetes_config_map_v1') as any).data)).toContain('stop.js');
  });

  test('no idle stop: no RBAC, no API token in the pods, no stop script', () => {
    const { json: j, text: t } = build({ idleStopMinutes: 0 });
    expect(resources(j, 'kubernetes_role_v1')).toEqual({});
    expect(resources(j, 'kubernetes_role_binding_v1')).toEqual({});
    expect(t).toHaveResourceWithProperties(ServiceAccountV1, { automount_service_account_token: false });
    expect(podSpec(j).automount_service_account_token).toBe(false);
    expect(agent(j).command).not.toContain('--idle-stop-minutes');
    expect(agent(j).command).not.toContain('--stop-command');
    expect(Object.keys((only(j, 'kubernetes_config_map_v1') as any).data).sort()).toEqual(['mlinfra-agent.js']);
  });

  test('the stop script in the ConfigMap is valid JavaScript with no Terraform interpolation', () => {
    const stop = (only(json, 'kubernetes_config_map_v1') as any).data['stop.js'] as string;
    expect(stop).toBe(renderStopScript('test-train-acae17ff', 0));
    expect(stop).not.toContain('${');
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-stop-check-'));
    writeFileSync(join(dir, 'stop.js'), stop);
    expect(() => execFileSync(process.execPath, ['--check', join(dir, 'stop.js')], { stdio: 'pipe' })).not.toThrow();
  });

  test('grantAgentAccess to a cluster in another namespace: get on exactly the token Secret, bound to its service account, and a way through the NetworkPolicy', () => {
    const { json: j, text: t } = build({}, (stack, c) => {
      const other = new KubernetesTarget(stack, 'k8s-ops', { namespace: 'ops', provider: (c.target as KubernetesTarget).provider });
      const runner = new GpuCluster(stack, 'ops', { target: other, accelerator: 'T4', idleStopMinutes: 0, agentBundleDir: BUNDLE_DIR });
      c.grantAgentAccess(runner);
    });
    expect(t).toHaveResourceWithProperties(RoleV1, {
      rule: [{ api_groups: [''], resources: ['secrets'], resource_names: [expect.stringMatching(/^\$\{kubernetes_secret_v1\.train_identity_agent-token_[A-Z0-9]+\.metadata\[0\]\.name\}$/)], verbs: ['get'] }],
    });
    const grantRoles = Object.entries(resources(j, 'kubernetes_role_v1')).filter(([k]) => k.startsWith('train_grants_'));
    expect(grantRoles).toHaveLength(1);
    expect((grantRoles[0][1] as any).metadata.namespace).toMatch(/k8s_namespace_/);
    const binding = Object.entries(resources(j, 'kubernetes_role_binding_v1')).find(([k]) => k.startsWith('train_grants_'))![1] as any;
    expect(binding.subject).toEqual([{
      kind: 'ServiceAccount',
      name: expect.stringMatching(/kubernetes_service_account_v1\.ops_identity_service-account_/),
      namespace: expect.stringMatching(/kubernetes_namespace_v1\.k8s-ops_namespace_/),
    }]);
    expect(t).toHaveResourceWithProperties(NetworkPolicyV1, {
      spec: expect.objectContaining({
        ingress: [{
          from: [{ namespace_selector: { match_labels: { 'kubernetes.io/metadata.name': expect.stringMatching(/k8s-ops_namespace_/) } }, pod_selector: { match_labels: { 'app.kubernetes.io/instance': expect.stringMatching(/^test-ops-/), 'app.kubernetes.io/name': 'mlinfra-agent' } } }],
          ports: [{ port: '7070', protocol: 'TCP' }],
        }],
      }),
    });
  });

  test('grantAgentAccess within the namespace admits exactly the grantee\'s pods; grantScale covers the scale subresource only', () => {
    const { json: j } = build({}, (_stack, c, k8s) => {
      const runner = new GpuCluster(_stack, 'runner', { target: k8s, accelerator: 'T4', idleStopMinutes: 0, agentBundleDir: BUNDLE_DIR });
      c.grantAgentAccess(runner);
      c.grantScale(runner);
      c.grantArtifactsRead(runner);
      c.grantArtifactsWrite(runner);
    });
    const policies = Object.entries(resources(j, 'kubernetes_network_policy_v1')).filter(([k]) => k.startsWith('train_grants_')).map(([, v]) => v as any);
    expect(policies).toHaveLength(1);
    expect(policies[0].spec.ingress[0].from[0].pod_selector.match_labels).toEqual({ 'app.kubernetes.io/instance': expect.stringMatching(/^test-runner-/), 'app.kubernetes.io/name': 'mlinfra-agent' });
    // A grantee that names no pod labels, in the same namespace, relies on the client label: no extra policy.
    const { json: j2 } = build({}, (_stack, c, k8s) => {
      c.grantAgentAccess({ grantPrincipal: { kind: 'kubernetes', namespace: k8s.namespace, serviceAccountName: 'ci-runner' } });
    });
    expect(Object.keys(resources(j2, 'kubernetes_network_policy_v1')).filter((k) => k.startsWith('train_grants_'))).toEqual([]);
    const grantRoles = Object.entries(resources(j, 'kubernetes_role_v1')).filter(([k]) => k.startsWith('train_grants_')).map(([, r]) => r as any);
    expect(grantRoles).toHaveLength(2);
    const scale = grantRoles.find((r) => r.metadata.name.includes('-scale-'));
    expect(scale.rule).toEqual([
      { api_groups: ['apps'], resources: ['statefulsets/scale'], resource_names: ['test-train-acae17ff'], verbs: ['get', 'patch', 'update'] },
      { api_groups: ['apps'], resources: ['statefulsets'], resource_names: ['test-train-acae17ff'], verbs: ['get'] },
    ]);
    expect(Object.keys(resources(j, 'kubernetes_role_binding_v1')).filter((k) => k.startsWith('train_grants_'))).toHaveLength(2);
  });

  test('fails when the grantee is not on Kubernetes, naming both targets', () => {
    const awsGrantee: IGrantable = {
      grantPrincipal: { kind: 'aws', roleArn: 'arn:aws:iam::123456789012:role/x', roleName: 'x', addToPolicy: () => undefined },
    };
    const gcpGrantee: IGrantable = { grantPrincipal: { kind: 'gcp', email: 'x@p.iam.gserviceaccount.com', member: 'serviceAccount:x@p.iam.gserviceaccount.com' } };
    build({}, (_stack, c) => {
      expect(() => c.grantAgentAccess(awsGrantee)).toThrow(/test\/train\.grantAgentAccess: grantee is on aws, the cluster on kubernetes/);
      expect(() => c.grantArtifactsRead(gcpGrantee)).toThrow(/grantee is on gcp, the cluster on kubernetes/);
      expect(() => c.grantArtifactsWrite(awsGrantee)).toThrow(/grantee is on aws, the cluster on kubernetes/);
      expect(() => c.grantScale(gcpGrantee)).toThrow(/grantScale: grantee is on gcp, the cluster on kubernetes/);
      expect(c.node.tryFindChild('grants')).toBeUndefined();
    });
  });

  test('escape hatches: the created objects are exposed', () => {
    build({ idleStopMinutes: 0 }, (_stack, c) => {
      expect(c.kubernetes?.statefulSet).toBeInstanceOf(StatefulSetV1);
      expect(c.kubernetes?.configMap).toBeInstanceOf(ConfigMapV1);
      expect(c.kubernetes?.secret).toBeInstanceOf(SecretV1);
      expect(c.kubernetes?.role).toBeUndefined();
      expect(c.aws).toBeUndefined();
      expect(c.agentTokenSecret).toMatchObject({ store: 'kubernetes-secret', key: 'token' });
      expect(c.artifactsUri).toBe('file:///var/lib/mlinfra/artifacts');
      expect(c.grantPrincipal).toMatchObject({ kind: 'kubernetes' });
    });
  });

  test('creates exactly these objects', () => {
    expect(countByType(json)).toEqual({
      kubernetes_namespace_v1: 1,
      kubernetes_service_account_v1: 1,
      kubernetes_secret_v1: 1,
      kubernetes_config_map_v1: 1,
      kubernetes_role_v1: 1,
      kubernetes_role_binding_v1: 1,
      kubernetes_service_v1: 2,
      kubernetes_network_policy_v1: 1,
      kubernetes_stateful_set_v1: 1,
      kubernetes_pod_disruption_budget_v1: 1,
      // Kueue: ResourceFlavor, ClusterQueue, LocalQueue.
      kubernetes_manifest: 3,
      random_password: 1,
    });
    expect(Object.values(json.output!).map((o) => o.value)).not.toContainEqual(expect.stringMatching(TOKEN_REFS));
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});

/** A fake API server for the stop script: real TLS, real HTTP, a real node process. */
describe('the idle stop script', () => {
  let server: Server;
  let saDir: string;
  let state: { replicas: number; resourceVersion: string; patches: any[]; auth: string[]; paths: string[]; raceAfterGet?: boolean };

  beforeAll(async () => {
    saDir = mkdtempSync(join(tmpdir(), 'mlinfra-sa-'));
    mkdirSync(saDir, { recursive: true });
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(saDir, 'key.pem'), '-out', join(saDir, 'ca.crt'),
    ], { stdio: 'pipe' });
    writeFileSync(join(saDir, 'token'), 'sa-token\n');
    writeFileSync(join(saDir, 'namespace'), 'ml\n');
    server = createServer({ key: readFileSync(join(saDir, 'key.pem')), cert: readFileSync(join(saDir, 'ca.crt')) }, (req, res) => {
      state.auth.push(String(req.headers.authorization));
      state.paths.push(`${req.method} ${req.url}`);
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        if (req.method === 'PATCH') {
          const patch = JSON.parse(body);
          state.patches.push({ contentType: req.headers['content-type'], patch });
          if (patch.metadata.resourceVersion !== state.resourceVersion) {
            res.writeHead(409).end('{"reason":"Conflict"}');
            return;
          }
          state.replicas = patch.spec.replicas;
        }
        res.writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ kind: 'Scale', metadata: { resourceVersion: state.resourceVersion }, spec: { replicas: state.replicas } }));
        // Another writer changes the set between our read and our write.
        if (req.method === 'GET' && state.raceAfterGet) state.resourceVersion = '43';
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const run = (pod: string, replicas: number, min: number, raceAfterGet = false) => {
    state = { replicas, resourceVersion: '42', patches: [], auth: [], paths: [], raceAfterGet };
    const script = join(saDir, `stop-${min}.js`);
    writeFileSync(script, renderStopScript('train-abc', min));
    return new Promise<{ code: number; replicas: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [script], {
        env: {
          PATH: process.env.PATH, POD_NAME: pod, POD_NAMESPACE: 'ml', MLINFRA_SERVICEACCOUNT_DIR: saDir,
          KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port),
        },
      }, (err, stdout, stderr) => resolve({ code: err ? (err as any).code : 0, replicas: state.replicas, stdout, stderr }));
    });
  };

  test('the highest pod removes itself with a merge patch carrying the resourceVersion it read', async () => {
    const r = await run('train-abc-1', 2, 0);
    expect(r).toMatchObject({ code: 0, replicas: 1 });
    expect(state.paths).toEqual(['GET /apis/apps/v1/namespaces/ml/statefulsets/train-abc/scale', 'PATCH /apis/apps/v1/namespaces/ml/statefulsets/train-abc/scale']);
    expect(state.auth).toEqual(['Bearer sa-token', 'Bearer sa-token']);
    expect(state.patches).toEqual([{ contentType: 'application/merge-patch+json', patch: { metadata: { resourceVersion: '42' }, spec: { replicas: 1 } } }]);
    const last = await run('train-abc-0', 1, 0);
    expect(last).toMatchObject({ code: 0, replicas: 0 });
  });

  test('a lower pod leaves the set alone (exit 75): only the highest ordinal can go without killing a peer', async () => {
    const r = await run('train-abc-0', 3, 0);
    expect(r).toMatchObject({ code: 75, replicas: 3 });
    expect(state.patches).toEqual([]);
    expect(r.stderr).toMatch(/not the highest pod/);
  });

  test('fails on a conflicting write instead of undoing it', async () => {
    const r = await run('train-abc-1', 2, 0, true);
    expect(r).toMatchObject({ code: 1, replicas: 2 });
    expect(r.stderr).toMatch(/HTTP 409/);
  });

  test('never below nodes.min', async () => {
    const r = await run('train-abc-1', 2, 2);
    expect(r).toMatchObject({ code: 0, replicas: 2 });
    expect(state.patches).toEqual([]);
    const s = await run('train-abc-2', 3, 1);
    expect(s).toMatchObject({ code: 0, replicas: 2 });
  });

  test('fails when the API server cannot be reached', async () => {
    state = { replicas: 2, resourceVersion: '42', patches: [], auth: [], paths: [] };
    const script = join(saDir, 'stop-bad.js');
    writeFileSync(script, renderStopScript('train-abc', 0));
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [script], {
        env: { PATH: process.env.PATH, POD_NAME: 'train-abc-1', MLINFRA_SERVICEACCOUNT_DIR: saDir, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1' },
      }, (err, _stdout, stderr) => resolve({ code: err ? (err as any).code : 0, stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mlinfra stop: .*(ECONNREFUSED|connect)/);
  });
});
