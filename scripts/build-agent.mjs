#!/usr/bin/env node
// Builds mlinfra-agent into deterministic files a host runs with nothing to install:
//   dist/agent/mlinfra-agent.js  the agent and its CLI (SQLite through node:sqlite, or better-sqlite3 on Node < 22.13)
//   dist/agent/storage-s3.js     @aws-sdk/client-s3 + lib-storage, required only when an s3:// URI is used
//   dist/agent/storage-gcs.js    @google-cloud/storage, required only when a gs:// URI is used
//   dist/agent/queue-sqs.js      @aws-sdk/client-sqs, required only when serve --queue is an SQS queue
//   dist/agent/autoscaling-aws.js  SigV4-signed Auto Scaling calls, required only with serve --lifecycle-hook
//   dist/agent/rollout-*.js      SageMaker / Cloud Run / Kubernetes rollouts of a promoted model version,
//                                required only when a promotion rolls out to an endpoint on that target
//   dist/agent/package.json      name, version, bin; no dependencies
// Usage: node scripts/build-agent.mjs [--outdir DIR] [--no-minify] [--metafile]
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argOut = process.argv.indexOf('--outdir');
const outdir = resolve(argOut > 0 ? process.argv[argOut + 1] : join(root, 'dist', 'agent'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// --no-minify: readable stacks and CPU profiles (bench/agent-profile.mjs); never for the shipped files
const minify = !process.argv.includes('--no-minify');

// Native, and needed only on a Node.js without node:sqlite (the tests' Node 20): never bundled.
const externals = ['better-sqlite3'];
// The storage backends: separate files, so start-up never parses the SDKs.
const storageFiles = { './s3': 'storage-s3.js', './gcs': 'storage-gcs.js' };
const queueFiles = { './sqs': 'queue-sqs.js' };
const autoscalingFiles = { './autoscaling-query': 'autoscaling-aws.js' };
const rolloutFiles = { './rollout-sagemaker': 'rollout-sagemaker.js', './rollout-cloudrun': 'rollout-cloudrun.js', './rollout-kubernetes': 'rollout-kubernetes.js' };

// fastify, fast-json-stringify and ajv-formats each carry their own copy of ajv 8 (~110 KiB minified
// apiece): resolve every `ajv` import to the one @fastify/ajv-compiler uses.
const requireFromAjvCompiler = createRequire(join(root, 'node_modules', '@fastify', 'ajv-compiler', 'index.js'));
const oneAjv = {
  name: 'one-ajv',
  setup(b) {
    b.onResolve({ filter: /^ajv($|\/)/ }, (args) => ({ path: requireFromAjvCompiler.resolve(args.path) }));
    // fastify.inject() (light-my-request) is for tests of fastify apps; the agent never calls it.
    b.onResolve({ filter: /^light-my-request$/ }, () => ({ path: 'light-my-request', namespace: 'stub' }));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
      contents: 'module.exports=function(){throw new Error("inject is not available in the mlinfra-agent bundle")};module.exports.isInjection=function(){return false};',
      loader: 'js',
    }));
  },
};
// In the main bundle, require('./s3') / require('./gcs') of storage/index.ts point at the files beside it.
const storageBesides = {
  name: 'storage-besides',
  setup(b) {
    b.onResolve({ filter: /^\.\/(s3|gcs)$/ }, (args) => (args.importer.endsWith(join('storage', 'index.ts'))
      ? { path: `./${storageFiles[args.path]}`, external: true } : undefined));
    b.onResolve({ filter: /^\.\/rollout-(sagemaker|cloudrun|kubernetes)$/ }, (args) => (args.importer.endsWith(join('registry', 'endpoints.ts'))
      ? { path: `./${rolloutFiles[args.path]}`, external: true } : undefined));
    b.onResolve({ filter: /^\.\/autoscaling-query$/ }, (args) => (args.importer.endsWith(join('cluster', 'aws-group.ts')) ? { path: `./${autoscalingFiles[args.path]}`, external: true } : undefined));
    b.onResolve({ filter: /^\.\/sqs$/ }, (args) => (args.importer.endsWith(join('queue', 'index.ts')) ? { path: `./${queueFiles[args.path]}`, external: true } : undefined));
  },
};

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify,
  legalComments: 'none',
  sourcemap: false,
  charset: 'utf8',
  external: externals,
  define: { 'process.env.NODE_ENV': '"production"' },
  metafile: true,
  logLevel: 'error',
};

mkdirSync(outdir, { recursive: true });
const outputs = [
  { entry: 'src/runtime-agent/cli.ts', file: 'mlinfra-agent.js', banner: { js: '#!/usr/bin/env node' }, plugins: [oneAjv, storageBesides], maxBytes: 1024 * 1024 },
  { entry: 'src/runtime-agent/storage/s3.ts', file: storageFiles['./s3'], plugins: [] },
  { entry: 'src/runtime-agent/storage/gcs.ts', file: storageFiles['./gcs'], plugins: [] },
  ...Object.entries(rolloutFiles).map(([p, file]) => ({ entry: `src/runtime-agent/registry/${p.slice(2)}.ts`, file, plugins: [] })),
  { entry: 'src/runtime-agent/queue/sqs.ts', file: queueFiles['./sqs'], plugins: [] },
  { entry: 'src/runtime-agent/cluster/autoscaling-query.ts', file: autoscalingFiles['./autoscaling-query'], plugins: [] },
];
for (const o of outputs) {
  const outfile = join(outdir, o.file);
  const result = await build({ ...common, entryPoints: [o.entry], outfile, plugins: o.plugins, ...(o.banner ? { banner: o.banner } : {}) });
  const bytes = readFileSync(outfile);
  if (bytes.includes(Buffer.from(root))) throw new Error(`${o.file} contains the absolute path ${root}: it would not be deterministic`);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const inputs = Object.keys(result.metafile.inputs).length;
  // --metafile: what the bundle is made of (esbuild's metafile), to see what start-up parses
  if (o.file === 'mlinfra-agent.js' && process.argv.includes('--metafile')) writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
  process.stdout.write(`${outfile}: ${bytes.length} bytes (${(bytes.length / 1024).toFixed(1)} KiB), ${inputs} inputs, sha256 ${sha}\n`);
  if (minify && o.maxBytes && bytes.length >= o.maxBytes) throw new Error(`${o.file} is ${bytes.length} bytes: it must stay under ${o.maxBytes}`);
}

const manifest = {
  name: 'mlinfra-agent',
  version: pkg.version,
  private: true,
  description: 'mlinfra-agent: run `node mlinfra-agent.js serve` on Node.js 22.13+ with the storage-*.js files beside it; nothing to install.',
  license: pkg.license,
  bin: { 'mlinfra-agent': 'mlinfra-agent.js' },
  main: 'mlinfra-agent.js',
  engines: { node: '>=22.13' },
};
writeFileSync(join(outdir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
process.stdout.write(`host files: ${outputs.map((o) => o.file).join(', ')}, package.json (no dependencies; better-sqlite3 only on Node < 22.13)\n`);
