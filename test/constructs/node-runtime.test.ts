// Hosts run a supported Node.js LTS, its tarball pinned by sha256 (the fresh-machine issue, item 3).
import { App, TerraformStack } from 'cdktf';
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { renderBootstrap } from '../../src/constructs/gpu-cluster/bootstrap';
import { DEFAULT_AGENT_IMAGE, DEFAULT_NODE_VERSION, NODE_TARBALL_SHA256 } from '../../src/constructs/gpu-cluster/node-runtime';
import { AwsTarget, GpuCluster, MlInfraError } from '../../src';
import { testAgentBundle } from '../helpers';

const script = (nodeVersion: string) => renderBootstrap({
  clusterName: 'c1', nodeVersion, nodeDistUrl: 'https://nodejs.org/dist', copyCommand: (u: string, d: string) => `cp ${u} ${d}`,
  agentScriptUri: 's3://b/a.js', agentStorageUri: 's3://b/s.js', agentStorageFile: 'storage-s3.js', tokenCommand: 'echo t', idleStopMinutes: 0, agentPort: 7070,
  preemption: 'none',
} as unknown as Parameters<typeof renderBootstrap>[0]);

/** The Node.js install block of a start-up script, with curl stood in by a copy of `file`. */
function installBlock(s: string): string {
  const start = s.indexOf('if [ ! -x "$MLINFRA_HOME/node/bin/node" ]; then');
  const end = s.indexOf('\nfi\n', start);
  return s.slice(start, end + 4);
}

describe('Node.js runtime on hosts', () => {
  test('the default is Node 24 LTS, with sha256 sums for x64 and arm64; the Kubernetes image matches', () => {
    expect(DEFAULT_NODE_VERSION).toMatch(/^24\./);
    const sums = NODE_TARBALL_SHA256[DEFAULT_NODE_VERSION];
    expect(sums.x64).toMatch(/^[0-9a-f]{64}$/);
    expect(sums.arm64).toMatch(/^[0-9a-f]{64}$/);
    expect(DEFAULT_AGENT_IMAGE).toBe(`node:${DEFAULT_NODE_VERSION}-bookworm-slim`);
    const s = script(DEFAULT_NODE_VERSION);
    expect(s).toContain(`NODE_VERSION=${DEFAULT_NODE_VERSION}`);
    expect(s).toContain(`NODE_SHA256=${sums.x64}`);
    expect(s).toContain(`NODE_SHA256=${sums.arm64}`);
  });

  test.each([
    ['the pinned sum accepts the right tarball', true, true],
    ['the pinned sum refuses a tampered tarball', true, false],
  ])('%s (real bash and sha256sum)', (_name, _pinned, genuine) => {
    const dir = mkdtempSync(join(tmpdir(), 'mlinfra-node-'));
    const body = Buffer.from('a node tarball');
    const tarball = join(dir, 'node.tar.xz');
    writeFileSync(tarball, genuine ? body : Buffer.concat([body, Buffer.from('!')]));
    const sum = createHash('sha256').update(body).digest('hex');
    // The real block, with the download replaced by a copy and the sum table replaced by `sum`.
    const block = installBlock(script(DEFAULT_NODE_VERSION))
      .replace(/NODE_SHA256=[0-9a-f]{64}/g, `NODE_SHA256=${sum}`)
      .replace(/curl -fsSL [^\n]*-o "\$WORK\/\$TARBALL" [^\n]*/, `cp ${tarball} "$WORK/$TARBALL"`)
      .replace(/\n {2}install -d[\s\S]*$/, '\n  echo verified\nfi\n');
    const run = () => execFileSync('bash', ['-euo', 'pipefail', '-c', `MLINFRA_HOME=${dir}\nNODE_VERSION=${DEFAULT_NODE_VERSION}\n${block}`], { encoding: 'utf8', stdio: 'pipe' });
    if (genuine) expect(run()).toContain('verified');
    else expect(run).toThrow(/FAILED|did NOT match|Command failed/);
  });

  test('hosts install nothing: the agent and its storage module are copied, no npm', () => {
    const s = script(DEFAULT_NODE_VERSION);
    expect(s).not.toMatch(/\bnpm\b/);
    expect(s).toContain('cp s3://b/a.js "$MLINFRA_HOME/agent/mlinfra-agent.js"');
    expect(s).toContain('cp s3://b/s.js "$MLINFRA_HOME/agent/storage-s3.js"');
  });

  test('a version without a pinned sum falls back to the release SHASUMS256.txt', () => {
    const s = script('24.99.0');
    expect(s).toContain('NODE_SHA256= ;;');
    expect(s).toContain('SHASUMS256.txt');
  });

  test.each(['20.19.5', '22.12.0', 'lts'])('fails when nodeVersion is %s (node:sqlite needs 22.13+)', (nodeVersion) => {
    const stack = new TerraformStack(new App(), 's');
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    let err: unknown;
    try {
      new GpuCluster(stack, 'c', { target: aws, accelerator: 'L4', nodeVersion, agentBundleDir: testAgentBundle() });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect((err as MlInfraError).prop).toBe('nodeVersion');
    expect((err as Error).message).toMatch(/22\.13\.0 or later/);
  });
});
