import 'cdktf/lib/testing/adapters/jest';
import { DefaultTokenResolver, StringConcat, TerraformStack, Tokenization } from 'cdktf';
import { parse } from 'yaml';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1';
import { StatefulSetV1 } from '@cdktf/provider-kubernetes/lib/stateful-set-v1';
import { Duration, GpuCluster, KubernetesTarget } from '../../src';
import { FeatureStore, FeatureStoreProps } from '../../src/constructs/feature-store';
import { spawn, spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { redisServerConfig } from '../../src/constructs/feature-store/kubernetes';
import { countByType, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';
import { describeWithTools, TOOLS } from '../support/tools';

const build = (props: Partial<FeatureStoreProps> = {}, extra?: (stack: TerraformStack, f: FeatureStore, k8s: KubernetesTarget) => void) => {
  let store!: FeatureStore;
  const out = synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
    store = new FeatureStore(stack, 'features', { target: k8s, ...props });
    store.addFeatureView({ name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv_30d', type: 'float' }], ttl: Duration.days(2) });
    store.addFeatureView({ name: 'item_stats', entities: ['item_id'], features: [{ name: 'ctr', type: 'double' }], ttl: Duration.hours(6) });
    extra?.(stack, store, k8s);
  });
  return { ...out, store };
};
function feastYaml(json: TerraformJson): Record<string, any> {
  const [value] = Object.entries(json.output ?? {}).filter(([k]) => k.includes('feast-config')).map(([, o]) => o.value as string);
  return parse(renderTerraformString(value));
}
const mine = (json: TerraformJson, type: string) => Object.entries(resources(json, type)).filter(([k]) => k.startsWith('features_')).map(([, v]) => v as any);

describe('FeatureStore on Kubernetes', () => {
  // The grantee's principal as Terraform will read it (its service account, namespace and pod labels).
  let grantee!: { serviceAccountName: string; namespace: string; podLabels?: Record<string, string> };
  const { text, json, store } = build({}, (s, f, k8s) => {
    const cluster = new GpuCluster(s, 'train', { target: k8s, accelerator: 'L4', agentBundleDir: testAgentBundle() });
    f.grantRead(cluster);
    grantee = Tokenization.resolve(cluster.grantPrincipal, { scope: s, resolver: new DefaultTokenResolver(new StringConcat()), preparing: false });
  });

  test('redis StatefulSet: non-root, read-only root, limits, password from the Secret, data on a volume', () => {
    expect(text).toHaveResourceWithProperties(StatefulSetV1, { spec: expect.objectContaining({ replicas: '1' }) });
    const sts = mine(json, 'kubernetes_stateful_set_v1')[0];
    const pod = sts.spec.template.spec;
    const c = pod.container[0];
    expect(c.image).toBe('redis:7.4-alpine');
    // The password is in a mounted config file: never on the command line (issue 15).
    expect(c.command).toEqual(['redis-server', '/etc/redis-mlinfra/redis.conf', '--appendonly', 'yes', '--dir', '/data', '--protected-mode', 'yes']);
    expect(JSON.stringify(c.command)).not.toMatch(/requirepass|PASSWORD/);
    expect(c.env).toBeUndefined();
    expect(c.volume_mount).toContainEqual({ name: 'config', mount_path: '/etc/redis-mlinfra', read_only: true });
    expect(pod.volume).toContainEqual({ name: 'config', secret: { secret_name: expect.stringMatching(/kubernetes_secret_v1\.features_online_password-secret_/), default_mode: '0440', items: [{ key: 'redis-conf', path: 'redis.conf' }] } });
    expect(c.security_context).toMatchObject({ run_as_non_root: true, run_as_user: '999', allow_privilege_escalation: false, read_only_root_filesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } });
    expect(pod.security_context).toMatchObject({ run_as_non_root: true, fs_group: '1000' });
    expect(pod.automount_service_account_token).toBe(false);
    expect(sts.spec.volume_claim_template[0].spec.resources.requests).toEqual({ storage: '10Gi' });
    const secret = mine(json, 'kubernetes_secret_v1')[0];
    expect(secret.data).toEqual({
      'password': expect.stringMatching(/^\$\{random_password\.[^.]+\.result\}$/),
      'redis-conf': expect.stringMatching(/^requirepass \$\{random_password\.[^.]+\.result\}\n$/),
    });
  });

  describeWithTools([TOOLS.redis])('redis-server', () => {
    test('the generated redis.conf, run by a real redis-server: AUTH required, and the password is not on its command line', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mlinfra-redis-'));
      const password = 'Abc123def456ghi789';
      writeFileSync(join(dir, 'redis.conf'), redisServerConfig(password), { mode: 0o440 });
      const port = 20000 + Math.floor(Math.random() * 20000);
      const server = spawn('redis-server', [join(dir, 'redis.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      try {
        const cli = (...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: '' } });
        for (let i = 0; i < 50 && !/NOAUTH|PONG/.test(cli('ping').stdout + cli('ping').stderr); i++) await new Promise((r) => setTimeout(r, 100));
        expect(cli('ping').stdout).toMatch(/NOAUTH/);
        expect(spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: password } }).stdout.trim()).toBe('PONG');
        expect(readFileSync(`/proc/${server.pid}/cmdline`, 'utf8')).not.toContain(password);
      } finally {
        server.kill('SIGTERM');
      }
    }, 20_000);
  });

  test('NetworkPolicy: Redis reachable only from labelled client pods on 6379', () => {
    const policy = resources(json, 'kubernetes_network_policy_v1')[Object.keys(resources(json, 'kubernetes_network_policy_v1')).find((k) => k.startsWith('features_online_policy'))!] as any;
    expect(policy.spec.policy_types).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([{ from: [{ pod_selector: { match_labels: { 'mlinfra.dev/feature-store-client': 'true' } } }], ports: [{ port: '6379', protocol: 'TCP' }] }]);
    expect(policy.spec.pod_selector.match_labels).toEqual({ 'app.kubernetes.io/name': 'feast-online-redis', 'app.kubernetes.io/instance': expect.stringMatching(/^test-features-[a-f0-9]{8}$/) });
  });

  test('offline store on a volume by default; registry on it', () => {
    expect(text).toHaveResourceWithProperties(PersistentVolumeClaimV1, { spec: expect.objectContaining({ access_modes: ['ReadWriteOnce'], resources: { requests: { storage: '100Gi' } } }) });
    expect(store.offlineUri).toBe('file:///var/lib/feast/offline');
    expect(store.registryUri).toBe('/var/lib/feast/registry.db');
    expect(store.offlineTableNames).toEqual({ user_stats: 'file:///var/lib/feast/offline/features/user_stats/', item_stats: 'file:///var/lib/feast/offline/features/item_stats/' });
  });

  test('feature_store.yaml: local provider, redis online with the password from the environment, file offline', () => {
    expect(feastYaml(json)).toEqual({
      project: 'features', registry: '/var/lib/feast/registry.db', provider: 'local',
      online_store: { type: 'redis', redis_type: 'redis', connection_string: 'TFREF.TFREF.svc.cluster.local:6379,password=${REDIS_PASSWORD}' },
      offline_store: { type: 'file' },
      entity_key_serialization_version: 3,
    });
  });

  test('offlineUri: the user bucket holds offline data and registry; no volume', () => {
    const { json: j, store: s } = build({ offlineUri: 's3://ml-features/prod/' });
    expect(mine(j, 'kubernetes_persistent_volume_claim_v1')).toEqual([]);
    expect(s.offlineUri).toBe('s3://ml-features/prod');
    expect(feastYaml(j).registry).toBe('s3://ml-features/prod/registry.db');
  });

  test('grantRead: a Role that can get exactly the password Secret, bound to the grantee, and ingress from its namespace', () => {
    const role = Object.entries(resources(json, 'kubernetes_role_v1')).filter(([k]) => k.startsWith('features_grants_')).map(([, v]) => v as any);
    expect(role).toHaveLength(1);
    expect(role[0].rule).toEqual([{ api_groups: [''], resources: ['secrets'], resource_names: [expect.stringMatching(/kubernetes_secret_v1\.features_online_password-secret_/)], verbs: ['get'] }]);
    const binding = Object.entries(resources(json, 'kubernetes_role_binding_v1')).filter(([k]) => k.startsWith('features_grants_')).map(([, v]) => v as any);
    expect(grantee.serviceAccountName).toMatch(/^\$\{kubernetes_service_account_v1\.train_/);
    expect(binding[0].subject).toEqual([{ kind: 'ServiceAccount', name: grantee.serviceAccountName, namespace: expect.stringMatching(/kubernetes_namespace_v1\.k8s_namespace_/) }]);
    const ingress = Object.entries(resources(json, 'kubernetes_network_policy_v1')).filter(([k]) => k.startsWith('features_grants_')).map(([, v]) => v as any);
    expect(Object.keys(grantee.podLabels ?? {}).length).toBeGreaterThan(0);
    expect(ingress[0].spec.ingress[0].from[0]).toEqual({
      namespace_selector: { match_labels: { 'kubernetes.io/metadata.name': expect.stringMatching(/kubernetes_namespace_v1/) } },
      // The grantee (a GpuCluster) names its pods' labels: exactly those pods are admitted.
      // (Its labels are the cluster's to choose; that they are set at all is checked below.)
      pod_selector: { match_labels: grantee.podLabels },
    });
  });

  test('creates exactly these resources', () => {
    const { json: alone } = build();
    expect(countByType(alone)).toEqual({
      kubernetes_namespace_v1: 1, kubernetes_secret_v1: 1, kubernetes_service_v1: 1, kubernetes_network_policy_v1: 1,
      kubernetes_stateful_set_v1: 1, kubernetes_persistent_volume_claim_v1: 1, random_password: 1,
    });
  });

  test('a grantee on another cloud fails with both clouds named', () => {
    expect(() => build({}, (_s, f) => f.grantRead({ grantPrincipal: { kind: 'aws', roleArn: 'arn', roleName: 'r', addToPolicy: () => undefined } })))
      .toThrow(expect.objectContaining({ code: 'CROSS_CLOUD_GRANT', prop: 'grantRead', message: expect.stringMatching(/test\/features: grantRead: grantee is on aws, the feature store on kubernetes/) }));
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
