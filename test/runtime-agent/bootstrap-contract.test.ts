/**
 * The serve command line each GpuCluster start-up script writes must be one the built agent accepts:
 * the script is never run in tests, so this runs its exact flags against the real bundle.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TerraformStack, Testing } from 'cdktf';
import { AwsTarget, GcpTarget, GpuCluster, KubernetesTarget, Target } from '../../src';
import { renderTerraformString, testAgentBundle } from '../helpers';
import { BUNDLE, tmpDir } from './helpers';

function serveArgs(build: (stack: TerraformStack) => Target): string[] {
  const stack = new TerraformStack(Testing.app(), 'contract');
  const target = build(stack);
  new GpuCluster(stack, 'train', { target, accelerator: 'L4', nodes: { min: 0, max: 2 }, agentBundleDir: testAgentBundle() });
  const json = JSON.parse(Testing.synth(stack, true));
  const scripts = [
    ...Object.values((json.locals ?? {}) as Record<string, string>),
    ...Object.values(json.resource?.google_compute_instance_template ?? {}).map((t: any) => t.metadata['startup-script']),
  ];
  const line = renderTerraformString(scripts[0]).split('\n').find((l) => l.startsWith('ExecStart='))!;
  return line.slice(line.indexOf('mlinfra-agent.js ') + 'mlinfra-agent.js '.length).split(' ');
}

/** Host paths and ports swapped for local ones; every flag and value the script passes is kept. */
function localise(args: string[], dir: string): string[] {
  const swap: Record<string, string> = {
    '--host': '127.0.0.1', '--port': '0', '--data-dir': path.join(dir, 'data'), '--token-file': path.join(dir, 'token'),
    '--stop-command': 'true', '--metrics-local-port': String(20000 + Math.floor(Math.random() * 20000)),
    // The cluster's queue and bucket: a queue nobody answers (the worker keeps retrying) and a local prefix.
    '--cluster-artifacts': `file://${path.join(dir, 'cluster')}`,
    // the start-up script creates its job user; this machine has nobody
    '--job-user': 'nobody',
  };
  const queues: Record<string, [string, string]> = {
    '--queue': ['http://127.0.0.1:9/000000000000/jobs', 'pubsub://ml-prod-123/jobs/jobs-sub'],
    '--dead-letter-queue': ['http://127.0.0.1:9/000000000000/jobs-dlq', 'pubsub://ml-prod-123/jobs-dlq'],
  };
  return args.map((a, i) => {
    const q = i > 0 ? queues[args[i - 1]] : undefined;
    if (q) return a.startsWith('pubsub:') ? q[1] : q[0];
    return i > 0 && swap[args[i - 1]] !== undefined ? swap[args[i - 1]] : a;
  });
}

function startsListening(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BUNDLE, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`agent did not start: ${out}`)); }, 15_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (/"msg":"listening"/.test(out)) {
        clearTimeout(timer);
        proc.once('exit', () => resolve(out));
        proc.kill('SIGTERM');
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => { clearTimeout(timer); if (!/"msg":"listening"/.test(out)) reject(new Error(`agent exited ${code}: ${out}`)); });
  });
}

describe.each([
  ['aws', (s: TerraformStack) => new AwsTarget(s, 'aws', { region: 'us-east-1' }), { MLINFRA_TEST: '1' }],
  ['gcp', (s: TerraformStack) => new GcpTarget(s, 'gcp', { project: 'ml-prod-123', region: 'us-central1' }), { MLINFRA_TEST: '1' }],
] as const)('%s start-up script', (kind, build, env) => {
  test('its serve flags are all accepted by the built agent', async () => {
    const args = serveArgs(build);
    expect(args[0]).toBe('serve');
    expect(args).toEqual(expect.arrayContaining(['--preemption', kind, '--metrics-local-port', '--idle-stop-minutes', '--queue', '--cluster-artifacts',
      '--max-duration-seconds', '--dead-man-minutes', '--idle-gpu-util-percent']));
    expect(args).not.toContain('--pipeline-on-start');
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'token'), 'contract-test-token\n', { mode: 0o600 });
    // Metadata endpoints point nowhere: the preemption watcher must just keep polling.
    const local = [...localise(args, dir), '--aws-imds-url', 'http://127.0.0.1:9', '--gcp-metadata-url', 'http://127.0.0.1:9'];
    const out = await startsListening(local, env);
    expect(out).toContain('"msg":"listening"');
  }, 30_000);
});


describe('kubernetes gateway container', () => {
  test('its command and every flag it passes are the built agent\'s gateway command', async () => {
    const stack = new TerraformStack(Testing.app(), 'contract');
    new GpuCluster(stack, 'train', { target: new KubernetesTarget(stack, 'k8s', { namespace: 'ml' }), accelerator: 'L4', nodes: { min: 0, max: 2 }, agentBundleDir: testAgentBundle() });
    const json = JSON.parse(Testing.synth(stack, true));
    expect(json.resource.kubernetes_stateful_set_v1).toBeUndefined();
    const containers = Object.values(json.resource.kubernetes_deployment_v1 as Record<string, any>).flatMap((d: any) => d.spec.template.spec.container);  
    const command: string[] = containers.map((c: any) => c.command).find((c: string[] | undefined) => c?.some((a) => a.endsWith('mlinfra-agent.js')));  
    const args = command.slice(command.findIndex((a) => a.endsWith('mlinfra-agent.js')) + 1);
    expect(args[0]).toBe('gateway');
    const help = await new Promise<string>((resolve) => {
      const p = spawn(process.execPath, [BUNDLE, 'gateway', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.on('close', () => resolve(out));
    });
    const flags = args.filter((a) => a.startsWith('--'));
    expect(flags.length).toBeGreaterThan(2);
    for (const f of flags) expect(help).toContain(f);
    // Required options of the gateway command are all given.
    for (const required of ['--config', '--token-file']) expect(flags).toContain(required);
  }, 30_000);
});
