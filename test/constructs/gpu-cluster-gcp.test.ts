import 'cdktf/lib/testing/adapters/jest';
import { TerraformStack } from 'cdktf';
import { ComputeForwardingRule } from '@cdktf/provider-google/lib/compute-forwarding-rule';
import { ComputeInstanceTemplate } from '@cdktf/provider-google/lib/compute-instance-template';
import { ComputeRegionBackendService } from '@cdktf/provider-google/lib/compute-region-backend-service';
import { ComputeRegionHealthCheck } from '@cdktf/provider-google/lib/compute-region-health-check';
import { ComputeRegionInstanceGroupManager } from '@cdktf/provider-google/lib/compute-region-instance-group-manager';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket';
import { GcpTarget, GcpTargetProps, GpuCluster, GpuClusterProps, IGrantable } from '../../src';
import { GCP_DRIVER_WAIT_SECONDS, GCP_GPU_IMAGE, GCP_HEALTH_CHECK_RANGES } from '../../src/constructs/gpu-cluster/gcp';
import { spawnSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { gpuDriverWaitScript } from '../../src/constructs/gpu-cluster/bootstrap';
import { bashSyntaxCheck, countByType, only, renderTerraformString, resources, synth, TerraformJson, testAgentBundle } from '../helpers';

const TARGET: GcpTargetProps = { project: 'ml-prod-123', region: 'us-central1' };

const BUNDLE = testAgentBundle();

const build = (props: Partial<GpuClusterProps> = {}, extra?: (stack: TerraformStack, c: GpuCluster) => void, target: Partial<GcpTargetProps> = {}) =>
  synth((stack) => {
    const gcp = new GcpTarget(stack, 'gcp', { ...TARGET, ...target });
    const c = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'A100-80GB', acceleratorsPerNode: 4, nodes: { min: 0, max: 4 }, spot: true, agentBundleDir: BUNDLE, ...props });
    extra?.(stack, c);
  });

const template = (json: TerraformJson): any => only(json, 'google_compute_instance_template');
const mig = (json: TerraformJson): any => only(json, 'google_compute_region_instance_group_manager');
const firewalls = (json: TerraformJson): any[] => Object.values(resources(json, 'google_compute_firewall'));
/** The start-up script exactly as synthesized (Terraform references still in). */
const rawScript = (json: TerraformJson): string => template(json).metadata['startup-script'];
/** The start-up script as the host receives it. */
const hostScript = (json: TerraformJson): string => renderTerraformString(rawScript(json));
const TOKEN_REFS = /\$\{random_password\.[^}]+\.result\}/g;
const TOKEN_REF = /\$\{random_password\.[^}]+\.result\}/;

describe('GpuCluster on GCP', () => {
  const { text, json } = build();

  test('instance template: catalog machine type with its guest accelerator, DLVM image on pd-balanced', () => {
    expect(text).toHaveResourceWithProperties(ComputeInstanceTemplate, {
      machine_type: 'a2-ultragpu-4g',
      guest_accelerator: [{ type: 'nvidia-a100-80gb', count: 4 }],
      disk: [{ boot: true, auto_delete: true, disk_size_gb: 200, disk_type: 'pd-balanced', source_image: GCP_GPU_IMAGE }],
      service_account: expect.objectContaining({ scopes: ['cloud-platform'] }),
      lifecycle: { create_before_destroy: true },
    });
    const t = template(json);
    expect(t.name).toBeUndefined();
    expect(t.name_prefix).toMatch(/^test-train-[0-9a-f]{8}-$/);
    expect(t.service_account.email).toMatch(/^\$\{google_service_account\.train_iam_host_[^}]+\.email\}$/);
    expect(t.tags).toEqual([only(json, 'google_compute_region_instance_group_manager').base_instance_name]);
  });

  test.each([
    ['L4', 1, 'g2-standard-8', 'nvidia-l4'],
    ['T4', 2, 'n1-standard-16', 'nvidia-tesla-t4'],
    ['H100', 8, 'a3-highgpu-8g', 'nvidia-h100-80gb'],
  ] as const)('catalog: %s x%d -> %s with %s', (accelerator, count, machineType, type) => {
    // One node: N1 (T4) groups cannot be placed compactly, so they stay single-node.
    const { json: j } = build({ accelerator, acceleratorsPerNode: count, nodes: { min: 0, max: 1 } });
    expect(template(j).machine_type).toBe(machineType);
    expect(template(j).guest_accelerator).toEqual([{ type, count }]);
  });

  test('A2, A3 and G2 hosts get gVNIC, N1 keeps VirtIO; A3 Ultra (Hyperdisk only) boots from hyperdisk-balanced', () => {
    const { json: h100 } = build({ accelerator: 'H100', acceleratorsPerNode: 8 });
    expect(template(h100).network_interface[0].nic_type).toBe('GVNIC');
    expect(template(h100).disk[0].disk_type).toBe('pd-balanced');
    const { json: h200 } = build({ accelerator: 'H200', acceleratorsPerNode: 8 });
    expect(template(h200).machine_type).toBe('a3-ultragpu-8g');
    expect(template(h200).disk[0].disk_type).toBe('hyperdisk-balanced');
    expect(template(json).machine_type).toBe('a2-ultragpu-4g');
    expect(template(json).network_interface[0].nic_type).toBe('GVNIC');
    expect(template(build({ accelerator: 'L4', acceleratorsPerNode: 1 }).json).network_interface[0].nic_type).toBe('GVNIC');
    expect(template(build({ accelerator: 'T4', acceleratorsPerNode: 1, nodes: { min: 0, max: 1 } }).json).network_interface[0].nic_type).toBeUndefined();
  });

  test('an explicit machineType overrides the catalog; the GPU still comes from it', () => {
    const { json: j } = build({ accelerator: 'T4', acceleratorsPerNode: 1, machineType: 'n1-highmem-8', nodes: { min: 0, max: 1 } });
    expect(template(j).machine_type).toBe('n1-highmem-8');
    expect(template(j).guest_accelerator).toEqual([{ type: 'nvidia-tesla-t4', count: 1 }]);
  });

  test('an explicit machineImage replaces the Deep Learning VM family', () => {
    const { json: j } = build({ machineImage: 'projects/my-proj/global/images/gpu-golden' });
    expect(template(j).disk[0].source_image).toBe('projects/my-proj/global/images/gpu-golden');
  });

  test('spot: SPOT provisioning, preemptible, no automatic restart, TERMINATE on host maintenance', () => {
    expect(template(json).scheduling).toEqual({
      provisioning_model: 'SPOT', preemptible: true, automatic_restart: false,
      on_host_maintenance: 'TERMINATE', instance_termination_action: 'DELETE',
    });
  });

  test('on demand: STANDARD provisioning, restarts, still TERMINATE on host maintenance', () => {
    const { json: j } = build({ spot: false });
    expect(template(j).scheduling).toEqual({
      provisioning_model: 'STANDARD', preemptible: false, automatic_restart: true, on_host_maintenance: 'TERMINATE',
    });
  });

  test('shielded VM: vTPM and integrity monitoring on, secure boot off for the unsigned NVIDIA driver', () => {
    expect(template(json).shielded_instance_config).toEqual({ enable_secure_boot: false, enable_vtpm: true, enable_integrity_monitoring: true });
  });

  test('no public IP: the one interface is on the target subnetwork with no access_config', () => {
    const nics = template(json).network_interface;
    expect(nics).toHaveLength(1);
    expect(nics[0].access_config).toBeUndefined();
    expect(nics[0].subnetwork).toMatch(/^\$\{google_compute_subnetwork\.gcp_network_subnet_[^}]+\.id\}$/);
    expect(text).not.toContain('access_config');
  });

  test('metadata: OS Login, no project SSH keys, driver install, the start-up script', () => {
    const md = template(json).metadata;
    expect(Object.keys(md).sort()).toEqual(['block-project-ssh-keys', 'enable-oslogin', 'install-nvidia-driver', 'startup-script']);
    expect(md['enable-oslogin']).toBe('TRUE');
    expect(md['block-project-ssh-keys']).toBe('true');
    expect(md['install-nvidia-driver']).toBe('True');
  });

  test('managed instance group: regional, single zone, sized by its autoscaler from nodes.min, Terraform ignores resizes', () => {
    expect(text).toHaveResourceWithProperties(ComputeRegionInstanceGroupManager, {
      region: 'us-central1', project: 'ml-prod-123',
      distribution_policy_target_shape: 'ANY_SINGLE_ZONE',
      update_policy: { type: 'OPPORTUNISTIC', minimal_action: 'REPLACE', instance_redistribution_type: 'NONE', max_surge_fixed: 0, max_unavailable_fixed: 4 },
      named_port: [{ name: 'agent', port: 7070 }],
      auto_healing_policies: expect.objectContaining({ initial_delay_sec: GCP_DRIVER_WAIT_SECONDS + 600 }),
      lifecycle: { ignore_changes: ['target_size'] },
    });
    const m = mig(json);
    expect(m.version).toEqual([{ name: 'primary', instance_template: expect.stringMatching(/^\$\{google_compute_instance_template\.[^}]+\.self_link_unique\}$/) }]);
    expect(m.auto_healing_policies.health_check).toMatch(/^\$\{google_compute_region_health_check\.[^}]+\.id\}$/);
    expect(m.distribution_policy_zones).toBeUndefined();
    expect(m.name).toBe(m.base_instance_name);
    expect(m.name.length).toBeLessThanOrEqual(40);
    const { json: j } = build({ nodes: { min: 2, max: 3 } });
    // The autoscaler owns the size: it keeps the group at nodes.min or above, so Terraform sets none.
    expect(m.target_size).toBeUndefined();
    expect(mig(j).target_size).toBeUndefined();
    expect((only(j, 'google_compute_region_autoscaler') as any).autoscaling_policy.min_replicas).toBe(2);
  });

  test('zones named by the target become the distribution zones', () => {
    const { json: j } = build({}, undefined, { zones: ['us-central1-a', 'us-central1-c'] });
    expect(mig(j).distribution_policy_zones).toEqual(['us-central1-a', 'us-central1-c']);
  });

  test('firewall: agent port from the subnetwork by default, health-check ranges, peers when multi-node', () => {
    const fws = firewalls(json);
    expect(fws).toHaveLength(3);
    const tag = mig(json).base_instance_name;
    for (const f of fws) {
      expect(f.direction).toBe('INGRESS');
      expect(f.network).toMatch(/^\$\{google_compute_network\.gcp_network_vpc_[^}]+\.id\}$/);
      expect(f.target_tags).toEqual([tag]);
      expect(f.log_config).toEqual({ metadata: 'INCLUDE_ALL_METADATA' });
      expect(f.source_ranges ?? []).not.toContain('0.0.0.0/0');
    }
    const clients = fws.find((f) => f.name.endsWith('-agent'));
    expect(clients.source_ranges).toEqual(['10.43.0.0/20']);
    expect(clients.allow).toEqual([{ protocol: 'tcp', ports: ['7070'] }]);
    const health = fws.find((f) => f.name.endsWith('-health'));
    expect(health.source_ranges).toEqual(GCP_HEALTH_CHECK_RANGES);
    expect(health.allow).toEqual([{ protocol: 'tcp', ports: ['7070'] }]);
    const peers = fws.find((f) => f.name.endsWith('-peers'));
    expect(peers.source_tags).toEqual([tag]);
    expect(peers.source_ranges).toBeUndefined();
    expect(peers.allow).toEqual([{ protocol: 'tcp' }]);
    expect(text).not.toContain('0.0.0.0/0');
  });

  test('allowedCidrs replace the default sources; one node needs no peer rule', () => {
    const { json: j } = build({ allowedCidrs: ['10.8.0.0/16', '192.168.4.0/24'], agentPort: 8443, nodes: { min: 0, max: 1 } });
    const fws = firewalls(j);
    expect(fws).toHaveLength(2);
    const clients = fws.find((f) => f.name.endsWith('-agent'));
    expect(clients.source_ranges).toEqual(['10.8.0.0/16', '192.168.4.0/24']);
    expect(clients.allow).toEqual([{ protocol: 'tcp', ports: ['8443'] }]);
    expect(mig(j).named_port).toEqual([{ name: 'agent', port: 8443 }]);
  });

  test('an existing network is used as given: nothing created, its CIDR is the default source', () => {
    const { json: j } = build({}, undefined, {
      network: { network: 'projects/ml-prod-123/global/networks/shared', subnetwork: 'projects/ml-prod-123/regions/us-central1/subnetworks/gpu', cidrBlock: '172.20.0.0/20' },
    });
    expect(resources(j, 'google_compute_network')).toEqual({});
    expect(template(j).network_interface[0].subnetwork).toBe('projects/ml-prod-123/regions/us-central1/subnetworks/gpu');
    expect(firewalls(j).find((f) => f.name.endsWith('-agent')).source_ranges).toEqual(['172.20.0.0/20']);
    expect(only(j, 'google_compute_forwarding_rule').network).toBe('projects/ml-prod-123/global/networks/shared');
  });

  test('bucket: uniform access, public access prevented, versioned, noncurrent versions expire, never force-destroyed', () => {
    expect(text).toHaveResourceWithProperties(StorageBucket, {
      location: 'us-central1', project: 'ml-prod-123', uniform_bucket_level_access: true, public_access_prevention: 'enforced',
      versioning: { enabled: true }, force_destroy: false,
    });
    const b = only(json, 'google_storage_bucket') as any;
    expect(b.name).toMatch(/^test-train-[0-9a-f]{8}-[0-9a-f]{8}-artifacts$/);
    expect(b.lifecycle_rule).toContainEqual({ action: { type: 'Delete' }, condition: { days_since_noncurrent_time: 30, with_state: 'ARCHIVED' } });
  });

  test('agent bundle uploaded to the cluster bucket from TerraformAssets, keyed by content hash', () => {
    const objects = Object.values(resources(json, 'google_storage_bucket_object')) as any[];
    // The agent and the GCS module it loads: a self-contained bundle, nothing installed on the host.
    // Plus the Cloud Run and Kubernetes rollouts a promote step loads beside the agent.
    expect(objects.map((o) => o.name.split('/').pop()).sort()).toEqual(['mlinfra-agent.js', 'rollout-cloudrun.js', 'rollout-kubernetes.js', 'storage-gcs.js']);
    for (const o of objects) {
      expect(o.bucket).toMatch(/^\$\{google_storage_bucket\.train_storage_bucket_[^}]+\.name\}$/);
      expect(o.source).toMatch(/^assets\/.+\/(mlinfra-agent|storage-gcs|rollout-cloudrun|rollout-kubernetes)\.js$/);
      expect(o.name).toMatch(/^agent\/[0-9A-F]+\/(mlinfra-agent|storage-gcs|rollout-cloudrun|rollout-kubernetes)\.js$/i);
    }
    const script = hostScript(json);
    for (const f of ['rollout-cloudrun.js', 'rollout-kubernetes.js']) expect(script).toMatch(new RegExp(`gcloud storage cp --no-user-output-enabled 'gs://TFREF/TFREF' "\\$MLINFRA_HOME/agent/${f.replace('.', '\\.')}"`));
  });

  test('token only in Secret Manager: the generated value is referenced once, by the secret version', () => {
    expect(text).toHaveResourceWithProperties(SecretManagerSecret, { project: 'ml-prod-123', replication: { auto: {} } });
    const refs = text.match(TOKEN_REFS) ?? [];
    expect(refs).toHaveLength(1);
    const version = only(json, 'google_secret_manager_secret_version') as any;
    expect(version.secret_data).toMatch(/^\$\{random_password\.[^}]+\.result\}$/);
    expect(version.secret).toMatch(/^\$\{google_secret_manager_secret\.[^}]+\.id\}$/);
    // Every other resource and every output is free of it.
    const elsewhere = Object.entries(json.resource ?? {}).flatMap(([type, byName]) =>
      Object.entries(byName).filter(([, r]) => type !== 'google_secret_manager_secret_version' && TOKEN_REF.test(JSON.stringify(r))));
    expect(elsewhere).toEqual([]);
    expect(JSON.stringify(json.output)).not.toContain('random_password');
  });

  test('start-up script: bash -n, gcloud copies from the bucket, token from Secret Manager at every start, systemd', () => {
    const script = hostScript(json);
    bashSyntaxCheck(script);
    expect(script).toMatch(/gcloud storage cp --no-user-output-enabled 'gs:\/\/TFREF\/TFREF' "\$MLINFRA_HOME\/agent\/mlinfra-agent\.js"/);
    expect(script).toContain(`gcloud secrets versions access latest --secret='TFREF' --project='ml-prod-123' > /run/mlinfra/token.tmp`);
    expect(script).toMatch(/ExecStartPre=\/opt\/mlinfra\/fetch-token\.sh/);
    expect(script).toMatch(/ExecStart=\/opt\/mlinfra\/node\/bin\/node \/opt\/mlinfra\/agent\/mlinfra-agent\.js serve .*--token-file \/run\/mlinfra\/token/);
    expect(script).toMatch(/--preemption gcp/);
    expect(script).toMatch(/Environment=MLINFRA_ARTIFACTS_URI=gs:\/\/TFREF/);
    expect(script).toContain('systemctl enable --now mlinfra-agent.service');
    // Shell variables never use braces and no template directives: every ${...} is a Terraform reference.
    const raw = rawScript(json);
    for (const r of raw.match(/\$\{[^}]*\}/g) ?? []) expect(r).toMatch(/^\$\{google_(storage_bucket|storage_bucket_object|secret_manager_secret|pubsub_topic|pubsub_subscription)\.[^}]+\.(name|secret_id)\}$/);
    expect(raw).not.toContain('%{');
    expect(raw).not.toMatch(TOKEN_REF);
  });

  test('idle stop: the host deletes itself through the group, above nodes.min only, with a group-scoped custom role', () => {
    const script = hostScript(json);
    const name = mig(json).name;
    expect(script).toMatch(/--idle-stop-minutes 30 --stop-command \/opt\/mlinfra\/stop\.sh/);
    // Run for real against a fake API in idle-stop-gcp.test.ts; here: what it is told.
    expect(script).toContain('http://metadata.google.internal/computeMetadata/v1');
    expect(script).toContain(`"project":"ml-prod-123","region":"us-central1","group":"${name}","min":0`);
    expect(script).toContain("exec \"$NODE\" - <<'MLINFRA_STOP_JS'");
    expect(script).not.toContain('gcloud compute instance-groups');
    const role = only(json, 'google_project_iam_custom_role') as any;
    expect(role.permissions).toEqual(['compute.instanceGroupManagers.get', 'compute.instanceGroupManagers.update']);
    expect(role.role_id).toMatch(/^[a-zA-Z0-9_.]{3,64}$/);
    const bindings = Object.values(resources(json, 'google_project_iam_member')) as any[];
    const autostop = bindings.find((b) => b.condition);
    expect(autostop.role).toMatch(/^\$\{google_project_iam_custom_role\.[^}]+\.name\}$/);
    expect(autostop.member).toMatch(/^\$\{google_service_account\.[^}]+\.member\}$/);
    expect(autostop.condition.expression).toBe(`resource.name == "projects/ml-prod-123/regions/us-central1/instanceGroupManagers/${name}"`);
  });

  test('nodes.min is the floor the stop script keeps', () => {
    const { json: j } = build({ nodes: { min: 2, max: 4 } });
    expect(hostScript(j)).toContain('"min":2,');
  });

  test('idleStopMinutes 0: no stop script, no custom role, no scaling permission', () => {
    const { json: j } = build({ idleStopMinutes: 0 });
    const script = hostScript(j);
    bashSyntaxCheck(script);
    expect(script).not.toContain('stop.sh');
    expect(script).not.toContain('--idle-stop-minutes');
    expect(script).not.toContain('deleteInstances');
    expect(resources(j, 'google_project_iam_custom_role')).toEqual({});
    expect((Object.values(resources(j, 'google_project_iam_member')) as any[]).map((b) => b.role).sort())
      .toEqual(['roles/logging.logWriter', 'roles/monitoring.metricWriter']);
  });

  test('host service account: valid account id, object access on its bucket only, token access on its secret only', () => {
    const sa = only(json, 'google_service_account') as any;
    expect(sa.account_id).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
    const bucketIam = only(json, 'google_storage_bucket_iam_member') as any;
    // objectUser: get, create, list, delete (a job record is overwritten by delete + create), no IAM powers.
    expect(bucketIam).toMatchObject({ role: 'roles/storage.objectUser', member: expect.stringMatching(/google_service_account\..+\.member/) });
    expect(bucketIam.bucket).toMatch(/^\$\{google_storage_bucket\.train_storage_bucket_[^}]+\.name\}$/);
    const secretIam = only(json, 'google_secret_manager_secret_iam_member') as any;
    expect(secretIam).toMatchObject({ role: 'roles/secretmanager.secretAccessor', project: 'ml-prod-123' });
    expect(secretIam.secret_id).toMatch(/^\$\{google_secret_manager_secret\.train_secret_agent-token_[^}]+\.secret_id\}$/);
    // Nothing broad at project level: only the two write-only roles and the conditional scale role.
    for (const b of Object.values(resources(json, 'google_project_iam_member')) as any[]) {
      if (!b.condition) expect(['roles/logging.logWriter', 'roles/monitoring.metricWriter']).toContain(b.role);
    }
  });

  test('a long construct path still gives a valid, unique account id and role id', () => {
    const { json: j } = synth((stack) => {
      const gcp = new GcpTarget(stack, 'gcp', TARGET);
      new GpuCluster(stack, 'a-very-long-cluster-identifier-for-nightly-training', { target: gcp, accelerator: 'L4', agentBundleDir: BUNDLE });
    });
    expect((only(j, 'google_service_account') as any).account_id).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
    expect((only(j, 'google_project_iam_custom_role') as any).role_id).toMatch(/^[a-zA-Z0-9_.]{3,64}$/);
  });

  test('internal passthrough NLB: /healthz check, TCP backend on the group with client-IP affinity, forwarding rule on the agent port', () => {
    expect(text).toHaveResourceWithProperties(ComputeRegionHealthCheck, {
      region: 'us-central1', http_health_check: { port: 7070, request_path: '/healthz' },
    });
    expect(text).toHaveResourceWithProperties(ComputeRegionBackendService, {
      load_balancing_scheme: 'INTERNAL', protocol: 'TCP', session_affinity: 'CLIENT_IP',
      backend: [expect.objectContaining({ balancing_mode: 'CONNECTION' })],
    });
    const backend = only(json, 'google_compute_region_backend_service') as any;
    expect(backend.backend[0].group).toMatch(/^\$\{google_compute_region_instance_group_manager\.[^}]+\.instance_group\}$/);
    expect(text).toHaveResourceWithProperties(ComputeForwardingRule, {
      load_balancing_scheme: 'INTERNAL', ip_protocol: 'TCP', ports: ['7070'], region: 'us-central1',
    });
    const fr = only(json, 'google_compute_forwarding_rule') as any;
    expect(fr.backend_service).toMatch(/^\$\{google_compute_region_backend_service\.[^}]+\.id\}$/);
    expect(fr.subnetwork).toMatch(/google_compute_subnetwork\./);
  });

  test('public surface: agent URL on the forwarding rule, gs:// artifacts, the secret as a reference', () => {
    synth((stack) => {
      const gcp = new GcpTarget(stack, 'gcp', TARGET);
      const c = new GpuCluster(stack, 'train', { target: gcp, accelerator: 'T4', agentBundleDir: BUNDLE });
      expect(c.agentUrl).toMatch(/^http:\/\/\$\{TfToken\[TOKEN\.\d+\]\}:7070$/);
      expect(c.artifactsUri).toMatch(/^gs:\/\//);
      expect(c.agentTokenSecret).toMatchObject({ store: 'gcp-secret-manager', project: 'ml-prod-123' });
      expect(c.grantPrincipal).toMatchObject({ kind: 'gcp' });
      expect(c.gcp?.instanceGroupManager).toBeDefined();
      expect(c.gcp?.scaleRole).toBeDefined();
      expect(c.aws).toBeUndefined();
    });
    const out = json.output!;
    const values = Object.values(out).map((o) => String(o.value));
    expect(values).toContainEqual(expect.stringMatching(/^http:\/\/\$\{google_compute_forwarding_rule\.[^}]+\.ip_address\}:7070$/));
    expect(values).toContainEqual(expect.stringMatching(/^gs:\/\/\$\{google_storage_bucket\.[^}]+\.name\}$/));
    expect(values).toContainEqual(expect.stringMatching(/^projects\/ml-prod-123\/secrets\/\$\{google_secret_manager_secret\.[^}]+\.secret_id\}$/));
    expect(JSON.stringify(out)).not.toMatch(/random_password|secret_data/);
  });

  test('every resource names its provider alias and project explicitly', () => {
    const noProject = new Set(['google_storage_bucket_iam_member', 'google_storage_bucket_object', 'google_secret_manager_secret_version']);
    for (const [type, byName] of Object.entries(json.resource ?? {})) {
      for (const r of Object.values(byName) as any[]) {
        expect(r.provider).toMatch(/^(google|random)\./);
        if (type.startsWith('google_') && !noProject.has(type)) expect([type, r.project]).toEqual([type, 'ml-prod-123']);
      }
    }
  });

  test('creates exactly this set of resources', () => {
    expect(countByType(json)).toEqual({
      google_compute_firewall: 3, google_compute_forwarding_rule: 1, google_compute_instance_template: 1, google_compute_network: 1,
      google_compute_region_backend_service: 1, google_compute_region_health_check: 1, google_compute_region_instance_group_manager: 1,
      google_compute_router: 1, google_compute_router_nat: 1, google_compute_subnetwork: 1, google_project_iam_custom_role: 1,
      google_project_iam_member: 3, google_secret_manager_secret: 1, google_secret_manager_secret_iam_member: 1,
      google_secret_manager_secret_version: 1, google_service_account: 1, google_storage_bucket: 1, google_storage_bucket_iam_member: 1,
      google_storage_bucket_object: 4, random_password: 1, google_project_service: 8,
      google_pubsub_topic: 2, google_pubsub_subscription: 2, google_pubsub_topic_iam_member: 3, google_pubsub_subscription_iam_member: 2,
      google_compute_region_autoscaler: 1, google_compute_resource_policy: 1,
    });
  });

  // ---- defects of issue 15 (each of these failed before its fix)

  test('bucket names collide globally: the project id is in the name, so two projects get two names', () => {
    const a = (only(json, 'google_storage_bucket') as any).name;
    const { json: other } = build({}, undefined, { project: 'ml-other-456' });
    const b = (only(other, 'google_storage_bucket') as any).name;
    expect(a).not.toBe(b);
    expect(a.length).toBeLessThanOrEqual(63);
  });

  test('APIs: the stack enables what the cluster needs, never disabled on destroy, and every resource waits for them', () => {
    const services = Object.values(resources(json, 'google_project_service')) as any[];
    expect(services.map((x) => x.service).sort()).toEqual(['cloudresourcemanager.googleapis.com', 'compute.googleapis.com', 'iam.googleapis.com',
      'logging.googleapis.com', 'monitoring.googleapis.com', 'pubsub.googleapis.com', 'secretmanager.googleapis.com', 'storage.googleapis.com']);
    for (const x of services) expect(x).toMatchObject({ disable_on_destroy: false, project: 'ml-prod-123' });
    expect(mig(json).depends_on).toEqual(expect.arrayContaining([expect.stringMatching(/^google_project_service\.gcp_apis_compute_/)]));
    const { json: off } = build({}, undefined, { manageApis: false });
    expect(resources(off, 'google_project_service')).toEqual({});
  });

  test('fails when an A3 shape has neither spot nor a reservation; a reservation is consumed when named', () => {
    expect(() => build({ accelerator: 'H100', acceleratorsPerNode: 8, spot: false })).toThrow(/spot.*reservation|reservation.*spot/);
    expect(() => build({ accelerator: 'H200', acceleratorsPerNode: 8, spot: false })).toThrow(/a3-ultragpu-8g/);
    const { json: r } = build({ accelerator: 'H100', acceleratorsPerNode: 8, spot: false }, undefined, { reservations: { 'a3-highgpu-8g': 'my-h100s' } });
    expect(template(r).reservation_affinity).toEqual({ type: 'SPECIFIC_RESERVATION', specific_reservation: { key: 'compute.googleapis.com/reservation-name', values: ['my-h100s'] } });
    expect(() => build({ accelerator: 'A100-80GB', acceleratorsPerNode: 4, spot: false })).not.toThrow();
  });

  test('fails when a GcpTarget names a malformed reservation or private services access range', () => {
    expect(() => build({}, undefined, { reservations: { 'a3-highgpu-8g': 'Bad_Name' } })).toThrow(/reservations\.a3-highgpu-8g.*"Bad_Name".*reservation name/);
    expect(() => build({}, undefined, { reservations: { 'not a type': 'x' } })).toThrow(/reservations key.*machine type/);
    expect(() => build({}, undefined, { privateServiceAccessRange: '-psa' })).toThrow(/privateServiceAccessRange.*allocated range/);
  });

  test('hosts may see zero GPUs: --gpus from the catalog, and a bounded wait for the driver before the agent starts', () => {
    const script = hostScript(json);
    expect(script).toMatch(/mlinfra-agent\.js serve .*--gpus 4( |$)/m);
    const wait = script.indexOf("nvidia-smi -L");
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThan(script.indexOf('systemctl enable --now mlinfra-agent.service'));
    expect(script).toContain(`+ ${GCP_DRIVER_WAIT_SECONDS} ))`);
  });

  test('the driver wait, run by bash with a fake nvidia-smi: returns once the GPUs show, fails after its bound', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-gpu-wait-'));
    const fakeSmi = (lines: number) => writeFileSync(join(dir, 'nvidia-smi'),
      `#!/bin/sh\n${Array.from({ length: lines }, (_, i) => `echo "GPU ${i}: NVIDIA A100 (UUID: GPU-${i})"`).join('\n')}\n`, { mode: 0o755 });
    const run = (count: number, seconds: number) => spawnSync('bash', ['-c', `set -euo pipefail\n${gpuDriverWaitScript(count, seconds)}`], { env: { PATH: `${dir}:${process.env.PATH}` }, encoding: 'utf8' });
    fakeSmi(4);
    expect(run(4, 30)).toMatchObject({ status: 0, stdout: expect.stringContaining('4 GPU(s) visible') });
    fakeSmi(0);
    // the script's 5 s poll, shortened: the bound is what is under test
    writeFileSync(join(dir, 'sleep'), '#!/bin/sh\nexec /bin/sleep 0.2\n', { mode: 0o755 });
    const failed = run(4, 1);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('did not show 4 GPU(s) within 1s');
  }, 20_000);

  test('jobs can import torch: a PyTorch image family on a supported CUDA, and the image environment on the agent PATH', () => {
    expect(GCP_GPU_IMAGE).toMatch(/\/family\/pytorch-\d+-\d+-cu12[6-9]-/);
    expect(GCP_GPU_IMAGE).not.toMatch(/cu12[0-4]|cu11/);
    const script = hostScript(json);
    expect(script).toContain('/opt/conda/bin');
    expect(script).toContain('/etc/systemd/system/mlinfra-agent.service.d/path.conf');
  });

  test('grants: another GCP cluster gets members on exactly the secret, the bucket and (conditionally) the group', () => {
    const { json: j } = build({}, (stack, c) => {
      const other = new GpuCluster(stack, 'ops', { target: c.target, accelerator: 'T4', idleStopMinutes: 0, agentBundleDir: BUNDLE });
      c.grantAgentAccess(other);
      c.grantArtifactsRead(other);
      c.grantArtifactsWrite(other);
      c.grantScale(other);
    });
    const opsMember = /^\$\{google_service_account\.ops_iam_host_[^}]+\.member\}$/;
    const granted = <T>(type: string): T[] => Object.entries(resources(j, type)).filter(([k]) => k.startsWith('train_grants_')).map(([, r]) => r as T);

    const secretGrants = granted<any>('google_secret_manager_secret_iam_member');
    expect(secretGrants).toHaveLength(1);
    expect(secretGrants[0]).toMatchObject({ role: 'roles/secretmanager.secretAccessor', member: expect.stringMatching(opsMember) });
    expect(secretGrants[0].secret_id).toMatch(/^\$\{google_secret_manager_secret\.train_secret_agent-token_[^}]+\.secret_id\}$/);

    const bucketGrants = granted<any>('google_storage_bucket_iam_member');
    expect(bucketGrants.map((g) => g.role).sort()).toEqual(['roles/storage.objectCreator', 'roles/storage.objectViewer']);
    for (const g of bucketGrants) {
      expect(g.member).toMatch(opsMember);
      expect(g.bucket).toMatch(/^\$\{google_storage_bucket\.train_storage_bucket_[^}]+\.name\}$/);
    }

    const scale = granted<any>('google_project_iam_member');
    expect(scale).toHaveLength(1);
    expect(scale[0].member).toMatch(opsMember);
    expect(scale[0].role).toMatch(/^\$\{google_project_iam_custom_role\.train_iam_scale-role_[^}]+\.name\}$/);
    const trainMig = Object.entries(resources(j, 'google_compute_region_instance_group_manager')).find(([k]) => k.startsWith('train_'))![1] as any;
    expect(scale[0].condition.expression).toBe(`resource.name == "projects/ml-prod-123/regions/us-central1/instanceGroupManagers/${trainMig.name}"`);
    // One custom role per cluster, shared by idle stop and grants.
    expect(Object.keys(resources(j, 'google_project_iam_custom_role'))).toHaveLength(1);
  });

  test('grantScale on a cluster without idle stop creates the custom role on first use; a repeated grant creates nothing', () => {
    const grants: unknown[] = [];
    const { json: j } = build({ idleStopMinutes: 0 }, (stack, c) => {
      const other = new GpuCluster(stack, 'ops', { target: c.target, accelerator: 'T4', idleStopMinutes: 0, agentBundleDir: BUNDLE });
      grants.push(c.grantScale(other), c.grantScale(other));
    });
    expect(Object.keys(resources(j, 'google_project_iam_custom_role'))).toHaveLength(1);
    expect(Object.keys(resources(j, 'google_project_iam_member')).filter((k) => k.startsWith('train_grants_'))).toHaveLength(1);
    expect(grants[1]).toBe(grants[0]);
    expect(grants[0]).toMatchObject({ kind: 'scale', owner: 'test/train', grantee: 'test/ops' });
  });

  test('fails when the grantee is not on GCP, naming both clouds', () => {
    const awsGrantee: IGrantable = {
      grantPrincipal: { kind: 'aws', roleArn: 'arn:aws:iam::123456789012:role/x', roleName: 'x', addToPolicy: () => undefined },
    };
    const k8sGrantee: IGrantable = { grantPrincipal: { kind: 'kubernetes', namespace: 'ml', serviceAccountName: 'runner' } };
    build({}, (_stack, c) => {
      expect(() => c.grantAgentAccess(awsGrantee)).toThrow(/grantAgentAccess: grantee is on aws, the cluster on gcp/);
      expect(() => c.grantArtifactsRead(awsGrantee)).toThrow(/grantee is on aws, the cluster on gcp/);
      expect(() => c.grantArtifactsWrite(k8sGrantee)).toThrow(/grantee is on kubernetes, the cluster on gcp/);
      expect(() => c.grantScale(awsGrantee)).toThrow(/grantScale: grantee is on aws, the cluster on gcp/);
      // Nothing half-made: no grants scope was created by the failed calls.
      expect(c.node.tryFindChild('grants')).toBeUndefined();
    });
  });

  test('snapshot', () => {
    expect(text).toMatchSnapshot();
  });
});
