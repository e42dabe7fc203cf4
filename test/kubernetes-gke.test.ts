/**
 * GKE and image fixes on the Kubernetes target (issue 19, item 5): the agent container's command run
 * for real (sh, the built agent), and the DCGM exporter per node-label scheme.
 */
import 'cdktf/lib/testing/adapters/jest';
import { execFileSync } from 'child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AwsTarget, GpuCluster, GpuClusterProps, KubernetesTarget, KubernetesTargetProps } from '../src';
import { MonitoringStack } from '../src/constructs/monitoring-stack';
import { DEFAULT_JOB_IMAGE } from '../src/constructs/gpu-cluster/kubernetes-options';
import { GPU_ENV_SH, renderJob } from '../src/runtime-agent/k8s/objects';
import { MlInfraError } from '../src/core/errors';
import { resources, synth, TerraformJson, testAgentBundle } from './helpers';
import { gatewayConfigOf } from './kubernetes-support';

const BUNDLE = testAgentBundle();
const BUILT_AGENT = join(__dirname, '..', 'dist', 'agent', 'mlinfra-agent.js');

const cluster = (props: Partial<GpuClusterProps> = {}, target: Partial<KubernetesTargetProps> = {}) => synth((stack) => {
  const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
  new GpuCluster(stack, 'train', { target: k8s, accelerator: 'L4', acceleratorsPerNode: 8, nodes: { min: 0, max: 2 }, agentBundleDir: BUNDLE, ...props });
}).json;
const AGENT_NODE = '/opt/mlinfra/agent/bin/node';
/** The pod of a job the gateway would create for `gpus` GPUs, from the config the construct wrote. */
const podSpec = (json: TerraformJson, gpus = 8): any => (renderJob(gatewayConfigOf(json), 'j0123456789ab',
  { argv: ['python3', 'train.py'], env: {}, gpus, nodes: 1, priority: 0, retries: 0, kind: 'train' }) as any).spec.template.spec;
const agentContainer = (json: TerraformJson): any => podSpec(json).containers[0];

/** Runs the synthesized `sh -c SCRIPT NAME ...` with the program replaced by `argv`. */
function runWrapped(command: string[], argv: string[], env: NodeJS.ProcessEnv): string {
  expect(command.slice(0, 2)).toEqual(['sh', '-c']);
  return execFileSync('/bin/sh', ['-c', command[2], command[3], ...argv], { env, encoding: 'utf8' });
}
const envOf = (text: string) => Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

describe('GpuCluster on Kubernetes: job containers on GKE (the Jobs the gateway creates)', () => {
  const json = cluster({}, { gpuNodeLabels: 'gke' });
  const command: string[] = agentContainer(json).command;

  test('the wrapper puts the GKE driver directory first on PATH and LD_LIBRARY_PATH, keeping the image\'s own', () => {
    const bare = envOf(runWrapped(command, ['/usr/bin/env'], { PATH: '/opt/conda/bin:/usr/bin:/bin' }));
    expect(bare.PATH).toBe('/usr/local/nvidia/bin:/opt/conda/bin:/usr/bin:/bin:/opt/mlinfra/agent/bin');
    // No empty element: it would make the loader search the working directory.
    expect(bare.LD_LIBRARY_PATH).toBe('/usr/local/nvidia/lib64:/usr/local/nvidia/lib');
    const set = envOf(runWrapped(command, ['/usr/bin/env'], { PATH: '/usr/bin:/bin', LD_LIBRARY_PATH: '/opt/conda/lib' }));
    expect(set.LD_LIBRARY_PATH).toBe('/usr/local/nvidia/lib64:/usr/local/nvidia/lib:/opt/conda/lib');
  });

  test('the wrapper finds nvidia-smi where GKE mounts it, before any other on PATH', () => {
    // A stand-in tree for /usr/local/nvidia: the script names the real path, so swap it in the script only.
    const root = mkdtempSync(join(tmpdir(), 'mlinfra-gke-'));
    try {
      execFileSync('mkdir', ['-p', join(root, 'bin'), join(root, 'other')]);
      writeFileSync(join(root, 'bin', 'nvidia-smi'), '#!/bin/sh\necho gke-driver\n');
      writeFileSync(join(root, 'other', 'nvidia-smi'), '#!/bin/sh\necho other\n');
      chmodSync(join(root, 'bin', 'nvidia-smi'), 0o755);
      chmodSync(join(root, 'other', 'nvidia-smi'), 0o755);
      const script = command[2].split('/usr/local/nvidia').join(root);
      const out = execFileSync('/bin/sh', ['-c', script, 'x', 'nvidia-smi'], { env: { PATH: `${join(root, 'other')}:/usr/bin:/bin` }, encoding: 'utf8' });
      expect(out.trim()).toBe('gke-driver');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('the job container runs the agent\'s k8s-wrap under the GPU environment script', () => {
    expect(command[2]).toBe(GPU_ENV_SH);
    expect(command.slice(3, 7)).toEqual(['mlinfra-agent', AGENT_NODE, '/opt/mlinfra/agent/mlinfra-agent.js', 'k8s-wrap']);
  });

  test('GPUs come from the request, never from nvidia-smi -L: the job asks for them, the wrapper is told the count', () => {
    expect(agentContainer(json).resources.limits['nvidia.com/gpu']).toBe('8');
    expect(agentContainer(json).env).toContainEqual({ name: 'MLINFRA_GPUS', value: '8' });
    expect(podSpec(json, 0).containers[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
  });

  test('jobs run in a CUDA + PyTorch image; the agent\'s Node.js is copied in by the install container', () => {
    expect(agentContainer(json).image).toBe(DEFAULT_JOB_IMAGE);
    expect(DEFAULT_JOB_IMAGE).toMatch(/^pytorch\/pytorch:[0-9.]+-cuda12\.[0-9]+-cudnn[0-9]+-runtime$/);
    const install = podSpec(json).initContainers[0];
    expect(install.image).toMatch(/^node:\d+/);
    expect(install.command[2]).toContain(`cp "\`command -v node\`" ${AGENT_NODE}`);
    expect(command[4]).toBe(AGENT_NODE);
    // The job image's root-owned layout leaves uid 1000 without a writable HOME.
    expect(agentContainer(json).env).toContainEqual({ name: 'HOME', value: '/tmp' });
    // The init container's script is valid sh, and Kubernetes finds no $(VAR) to expand in it.
    execFileSync('/bin/sh', ['-n', '-c', install.command[2]]);
    expect(install.command[2]).not.toContain('$(');
    expect(command[2]).not.toContain('$(');
  });

  test('a user image is used as given', () => {
    const j = cluster({ kubernetes: { image: 'ghcr.io/acme/train:1.2' } });
    expect(agentContainer(j).image).toBe('ghcr.io/acme/train:1.2');
  });

  test('fails when kubernetes.image is a Node.js image, saying jobs need CUDA there', () => {
    expect(() => cluster({ kubernetes: { image: 'node:20-bookworm' } })).toThrow(MlInfraError);
    expect(() => cluster({ kubernetes: { image: 'node:20-bookworm' } })).toThrow(/kubernetes\.image.*node:20-bookworm.*CUDA/s);
  });

  test('fails when kubernetes options are given on another target', () => {
    expect(() => synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', agentBundleDir: BUNDLE, kubernetes: { image: 'x/y:1' } });
    })).toThrow(/kubernetes.*does not apply to aws/);
  });

  test('the real agent wraps the job as the pod would run it, with no nvidia-smi anywhere', () => {
    // npm test builds it first; a missing build is a failure, not a skip.
    if (!existsSync(BUILT_AGENT)) throw new Error(`${BUILT_AGENT} is missing: run \`npm run build:agent\` first`);
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-gke-agent-'));
    try {
      // The pod's paths, mapped to this machine: Node.js and the built agent; the job prints its environment.
      const map: Record<string, string> = { [AGENT_NODE]: process.execPath, '/opt/mlinfra/agent/mlinfra-agent.js': BUILT_AGENT };
      const argv = [...command.slice(4, command.indexOf('--') + 1).map((a) => map[a] ?? a), '/usr/bin/env'];
      const env = Object.fromEntries(agentContainer(json).env.map((e: any) => [e.name, e.value]));
      const out = execFileSync('/bin/sh', ['-c', command[2], command[3], ...argv],
        { env: { PATH: '/usr/bin:/bin', ...env, HOME: dir, MLINFRA_TERMINATION_LOG: join(dir, 'termination-log'), MLINFRA_CHECKPOINT_URI: '' }, encoding: 'utf8' });
      const seen = envOf(out.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).join('\n'));
      expect(seen.MLINFRA_GPUS).toBe('8');
      expect(seen.PATH.split(':')[0]).toBe('/usr/local/nvidia/bin');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('DCGM exporter on Kubernetes', () => {
  const monitoring = (target: Partial<KubernetesTargetProps>, kubernetes: Record<string, unknown> = {}) => synth((stack) => {
    const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', ...target });
    new MonitoringStack(stack, 'ops', { target: k8s, notify: ['https://hooks.example.com/x'], kubernetes });
  }).json;
  const dcgm = (json: TerraformJson): any => Object.values(resources(json, 'kubernetes_daemon_set_v1'))[0];

  test('GKE: the host driver directory at /usr/local/nvidia, privileged, LD_LIBRARY_PATH set (NVML cannot start otherwise)', () => {
    const pod = dcgm(monitoring({ gpuNodeLabels: 'gke' })).spec.template.spec;
    const c = pod.container[0];
    expect(pod.volume).toContainEqual({ name: 'nvidia-driver', host_path: { path: '/home/kubernetes/bin/nvidia', type: 'Directory' } });
    expect(c.volume_mount).toContainEqual({ name: 'nvidia-driver', mount_path: '/usr/local/nvidia', read_only: true });
    expect(c.security_context.privileged).toBe(true);
    expect(c.env).toContainEqual({ name: 'LD_LIBRARY_PATH', value: '/usr/local/nvidia/lib64' });
    expect(pod.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_term[0].match_expressions)
      .toEqual([{ key: 'cloud.google.com/gke-accelerator', operator: 'Exists' }]);
  });

  test('elsewhere: not privileged, no host driver mount', () => {
    const c = dcgm(monitoring({})).spec.template.spec.container[0];
    expect(c.security_context.privileged).toBeUndefined();
    expect(c.security_context.allow_privilege_escalation).toBe(false);
    expect(c.volume_mount.map((m: any) => m.name)).not.toContain('nvidia-driver');
  });

  test('a writable /tmp under a read-only root filesystem', () => {
    for (const scheme of ['gke', 'nvidia-gfd'] as const) {
      const pod = dcgm(monitoring({ gpuNodeLabels: scheme })).spec.template.spec;
      expect(pod.container[0].security_context.read_only_root_filesystem).toBe(true);
      expect(pod.container[0].volume_mount).toContainEqual({ name: 'tmp', mount_path: '/tmp' });
      expect(pod.volume).toContainEqual({ name: 'tmp', empty_dir: { size_limit: '256Mi' } });
    }
  });

  test('gpuNodeLabels none: not deployed by default (nothing would keep it off CPU nodes)', () => {
    expect(resources(monitoring({ gpuNodeLabels: 'none' }), 'kubernetes_daemon_set_v1')).toEqual({});
  });

  test('gpuNodeLabels none with dcgmNodeSelector: deployed on those nodes only', () => {
    const pod = dcgm(monitoring({ gpuNodeLabels: 'none' }, { dcgmNodeSelector: { 'acme.com/gpu': 'true' } })).spec.template.spec;
    expect(pod.node_selector).toEqual({ 'acme.com/gpu': 'true' });
  });

  test('fails when dcgmExporter is true on gpuNodeLabels none without dcgmNodeSelector', () => {
    expect(() => monitoring({ gpuNodeLabels: 'none' }, { dcgmExporter: true })).toThrow(MlInfraError);
    expect(() => monitoring({ gpuNodeLabels: 'none' }, { dcgmExporter: true })).toThrow(/kubernetes\.dcgmNodeSelector.*CPU nodes/s);
  });
});
