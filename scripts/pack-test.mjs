#!/usr/bin/env node
// Installs the package the way a user does and checks that it works: `npm pack` (prepack builds), a fresh
// project with the newest compatible cdktf 0.21.x and constructs 10.x from the registry, the README's first
// stack type-checked under the tsconfig `cdktf init` writes and synthesized with node, a Kubernetes-only
// program that loads no other provider, and `npx mlinfra-agent serve --port 0` up to a healthy /healthz.
// Usage: npm run test:pack   (needs the npm registry; prints figures, exits non-zero on any failure)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'mlinfra-pack-'));
const keep = process.env.KEEP_PACK_TEST === '1';
const started = Date.now();
const log = (msg) => process.stdout.write(`pack-test: ${msg}\n`);
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });

function fail(msg) {
  process.stderr.write(`pack-test: FAILED: ${msg}\n(work dir kept: ${work})\n`);
  process.exit(1);
}

// The tsconfig `cdktf init --template=typescript` writes (cdktf 0.21).
const CDKTF_INIT_TSCONFIG = {
  compilerOptions: {
    alwaysStrict: true, declaration: true, experimentalDecorators: true, inlineSourceMap: true, inlineSources: true,
    lib: ['es2018'], module: 'CommonJS', noEmitOnError: true, noFallthroughCasesInSwitch: true, noImplicitAny: true,
    noImplicitReturns: true, noImplicitThis: true, noUnusedLocals: true, noUnusedParameters: true, resolveJsonModule: true,
    strict: true, strictNullChecks: true, strictPropertyInitialization: true, stripInternal: true, target: 'ES2018',
    incremental: true, skipLibCheck: true,
  },
  include: ['**/*.ts'],
  exclude: ['node_modules', 'cdktf.out'],
};

/** The README's first TypeScript block under "## A first stack". */
function readmeFirstStack() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## A first stack'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) fail('README has no ```ts block under "## A first stack"');
  return m[1];
}

const K8S_PROGRAM = `import { App, TerraformStack } from 'cdktf';
import { GpuCluster, KubernetesTarget } from 'cdktf-mlinfra';

const app = new App();
const stack = new TerraformStack(app, 'k8s');
const k8s = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
new GpuCluster(stack, 'train', { target: k8s, accelerator: 'L4', nodes: { min: 0, max: 2 } });
app.synth();
const loaded = Object.keys(require.cache).map((f) => /@cdktf[\\\\/](provider-[a-z]+)/.exec(f)?.[1]).filter(Boolean);
process.stdout.write(JSON.stringify([...new Set(loaded)].sort()));
`;

async function agentHealthy(dir) {
  const data = join(dir, 'agent-data');
  const token = join(dir, 'token');
  writeFileSync(token, 'pack-test-token-0123456789abcdef\n', { mode: 0o600 });
  // Its own process group: npx runs the agent as a child, and SIGTERM must reach the agent itself.
  const child = spawn('npx', ['--no-install', 'mlinfra-agent', 'serve', '--port', '0', '--data-dir', data, '--token-file', token], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    const deadline = Date.now() + 60_000;
    let port;
    while (!port && Date.now() < deadline) {
      const m = /"port":\s*(\d+)|listening on [^\s"]*:(\d+)|127\.0\.0\.1:(\d+)/.exec(out);
      if (m) port = Number(m[1] ?? m[2] ?? m[3]);
      else await new Promise((r) => setTimeout(r, 100));
      if (child.exitCode !== null) break;
    }
    if (!port) fail(`mlinfra-agent serve did not report a port:\n${out}`);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    if (res.status !== 200) fail(`/healthz answered ${res.status}: ${await res.text()}`);
    log(`npx mlinfra-agent serve --port 0: /healthz 200 on port ${port}`);
  } finally {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const { code, signal } = await exited;
  child.stdout.destroy();
  child.stderr.destroy();
  if (code !== 0 && signal !== 'SIGTERM') fail(`agent exit after SIGTERM: code ${code} signal ${signal}\n${out}`);
}

try {
  log(`packing ${pkg.name}@${pkg.version} (prepack builds lib/ and dist/agent/)`);
  // prepack's build prints to stdout too: the JSON report is the last thing npm writes.
  const packOut = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const packed = JSON.parse(packOut.slice(packOut.lastIndexOf('\n[\n') + 1))[0];
  const tarball = join(work, packed.filename);
  const files = packed.files.map((f) => f.path);
  const unexpected = files.filter((f) => !/^(lib\/src\/.*\.(js|d\.ts)|dist\/agent\/.*|README\.md|LICENSE|package\.json)$/.test(f));
  if (unexpected.length) fail(`tarball ships files outside lib/src, dist/agent, README, LICENSE: ${unexpected.slice(0, 10).join(', ')}`);
  for (const need of ['lib/src/index.js', 'lib/src/index.d.ts', 'dist/agent/mlinfra-agent.js', 'README.md', 'LICENSE']) {
    if (!files.includes(need)) fail(`tarball lacks ${need}`);
  }
  log(`tarball ${packed.filename}: ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${files.length} files`);

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'first-stack', private: true, version: '0.0.0' }, null, 2));
  const peers = pkg.peerDependencies;
  const deps = [
    tarball,
    `cdktf@${peers.cdktf.replace('^', '~')}`, // newest 0.21.x
    'constructs@^10', // newest 10.x
    `@cdktf/provider-aws@${peers['@cdktf/provider-aws']}`,
    `@cdktf/provider-kubernetes@${peers['@cdktf/provider-kubernetes']}`,
    `typescript@${pkg.devDependencies.typescript}`,
    `@types/node@${pkg.devDependencies['@types/node']}`,
  ];
  log(`npm install ${deps.map((d) => (d === tarball ? packed.filename : d)).join(' ')}`);
  run('npm', ['install', '--no-audit', '--no-fund', ...deps], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
  const version = (name) => JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')).version;
  log(`installed cdktf ${version('cdktf')}, constructs ${version('constructs')}`);
  if (existsSync(join(app, 'node_modules', 'cdktf-mlinfra', 'node_modules', 'constructs'))) fail('npm nested a second copy of constructs under cdktf-mlinfra');
  if (existsSync(join(app, 'node_modules', '@cdktf', 'provider-google'))) fail('the optional google provider was installed though the app did not ask for it');

  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(CDKTF_INIT_TSCONFIG, null, 2));
  writeFileSync(join(app, 'main.ts'), readmeFirstStack());
  writeFileSync(join(app, 'k8s.ts'), K8S_PROGRAM);
  try {
    run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: app });
  } catch (e) {
    fail(`the README's first stack does not type-check under cdktf init's tsconfig:\n${e.stdout}${e.stderr}`);
  }
  log('README first stack and a Kubernetes program type-check under cdktf init\'s strict tsconfig');

  const env = { ...process.env, CHECKPOINT_DISABLE: '1' };
  run(process.execPath, ['main.js'], { cwd: app, env });
  const stacks = readdirSync(join(app, 'cdktf.out', 'stacks'));
  const json = JSON.parse(readFileSync(join(app, 'cdktf.out', 'stacks', 'ml-platform', 'cdk.tf.json'), 'utf8'));
  if (!json.resource?.aws_autoscaling_group) fail('the first stack synthesized no autoscaling group');
  log(`node main.js synthesized ${stacks.join(', ')} (${Object.keys(json.resource).length} resource types)`);

  const loaded = JSON.parse(run(process.execPath, ['k8s.js'], { cwd: app, env }));
  if (loaded.includes('provider-aws') || loaded.includes('provider-google')) fail(`a Kubernetes-only program loaded ${loaded.join(', ')}`);
  log(`a Kubernetes-only program loaded only ${loaded.join(', ')}`);

  await agentHealthy(app);
  log(`passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
} finally {
  if (!keep && process.exitCode !== 1) rmSync(work, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
