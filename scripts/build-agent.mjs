#!/usr/bin/env node
// Builds mlinfra-agent into one deterministic file: dist/agent/mlinfra-agent.js (+ dist/agent/package.json
// naming the externals a host installs next to it with `npm install --omit=dev`).
// Usage: node scripts/build-agent.mjs [--outdir DIR]
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

// Native (better-sqlite3) or large and only needed for s3:// / gs:// URIs (loaded lazily with require).
const externals = ['better-sqlite3', '@aws-sdk/client-s3', '@google-cloud/storage'];
const versionOf = (name) => {
  const v = pkg.dependencies?.[name] ?? pkg.optionalDependencies?.[name] ?? pkg.devDependencies?.[name];
  if (!v) throw new Error(`${name} is not pinned in package.json`);
  return v;
};

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

mkdirSync(outdir, { recursive: true });
const outfile = join(outdir, 'mlinfra-agent.js');
const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/runtime-agent/cli.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  sourcemap: false,
  charset: 'utf8',
  banner: { js: '#!/usr/bin/env node' },
  external: externals,
  plugins: [oneAjv],
  define: { 'process.env.NODE_ENV': '"production"' },
  metafile: true,
  logLevel: 'warning',
});

const manifest = {
  name: 'mlinfra-agent',
  version: pkg.version,
  private: true,
  description: 'mlinfra-agent bundle: install these externals next to mlinfra-agent.js with `npm install --omit=dev`.',
  license: pkg.license,
  bin: { 'mlinfra-agent': 'mlinfra-agent.js' },
  main: 'mlinfra-agent.js',
  engines: { node: '>=20' },
  dependencies: Object.fromEntries(externals.map((n) => [n, versionOf(n)])),
};
writeFileSync(join(outdir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

const bytes = readFileSync(outfile);
if (bytes.includes(Buffer.from(root))) throw new Error(`the bundle contains the absolute path ${root}: it would not be deterministic`);
const sha = createHash('sha256').update(bytes).digest('hex');
const inputs = Object.keys(result.metafile.inputs).length;
process.stdout.write(`${outfile}: ${bytes.length} bytes (${(bytes.length / 1024).toFixed(1)} KiB), ${inputs} inputs, sha256 ${sha}\n`);
process.stdout.write(`externals (dist/agent/package.json): ${externals.map((n) => `${n}@${versionOf(n)}`).join(', ')}\n`);
if (bytes.length >= 1024 * 1024) throw new Error(`the bundle is ${bytes.length} bytes: it must stay under 1 MiB`);
