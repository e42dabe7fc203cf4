#!/usr/bin/env node
/**
 * `npm run validate:terraform`: every AWS stack the examples and the variant matrix
 * (examples/validate-variants.ts) synthesize, checked by the real hashicorp/aws provider from the
 * local filesystem mirror, offline:
 *   - `terraform validate`;
 *   - `terraform test`, tests/real.tftest.hcl: the real provider with fake credentials plans the stack
 *     (data sources that would call AWS overridden), running the provider's plan-time checks;
 *   - `terraform test`, tests/mock.tftest.hcl: a mocked provider with ARN-shaped values plans then
 *     applies, so every value is known when the provider's checks run.
 *   - scripts/validate/promotion.cjs: for each SageMaker endpoint serving `pipeline.model`, a plan
 *     (real provider, -refresh=false) against a state a promotion left (`<endpoint>-v3`) must be empty.
 * Each diagnostic is printed with the construct path from the stack's JSON metadata. Exits non-zero on
 * any error. Without terraform or the mirror it prints a skip line and exits 0, except under CI=true.
 *
 * Usage: node scripts/validate-terraform.mjs [--only NAME[,NAME]] [--keep] [--jobs N] [--verbose]
 * Needs `npm run build` first (it runs lib/examples/validate-variants.js; it compiles nothing).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const V = require('./validate/prepare.cjs');
const Promotion = require('./validate/promotion.cjs');

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const only = option('--only')?.split(',');
const jobs = Number(option('--jobs') ?? 2);
const verbose = flag('--verbose');
const started = Date.now();

const MIRROR_CANDIDATES = [process.env.MLINFRA_TF_MIRROR, '/opt/tf-plugins', join(process.env.HOME ?? '/root', '.terraform.d/plugins')].filter(Boolean);

function skipOrFail(what, install) {
  if (process.env.CI === 'true') {
    process.stderr.write(`validate:terraform: FAILED: ${what}. Install ${install} (CI=true makes this check required).\n`);
    process.exit(1);
  }
  process.stdout.write(`validate:terraform: SKIPPED: ${what} (install ${install} to run it)\n`);
  process.exit(0);
}

// ------------------------------------------------------------------------------------ preconditions
const tfVersion = spawnSync('terraform', ['version', '-json'], { encoding: 'utf8', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
if (tfVersion.error || tfVersion.status !== 0) skipOrFail('terraform is not on PATH', 'terraform >= 1.7 (terraform test with mock_provider and override_data)');
const mirror = MIRROR_CANDIDATES.find((d) => existsSync(join(d, 'registry.terraform.io/hashicorp/aws')));
if (!mirror) skipOrFail(`no filesystem mirror of hashicorp/aws in ${MIRROR_CANDIDATES.join(', ')}`, 'a provider mirror (terraform providers mirror <dir>) and set MLINFRA_TF_MIRROR=<dir>');
const awsVersion = readdirSync(join(mirror, 'registry.terraform.io/hashicorp/aws')).filter((v) => /^\d+\.\d+\.\d+$/.test(v)).sort().pop();
if (!awsVersion) skipOrFail(`the mirror ${mirror} holds no hashicorp/aws version`, 'the hashicorp/aws provider into the mirror');
const variantsProgram = join(root, 'lib/examples/validate-variants.js');
if (!existsSync(variantsProgram)) {
  process.stderr.write(`validate:terraform: ${variantsProgram} is missing: run \`npm run build\` first\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'mlinfra-validate-'));
const cliConfig = join(work, 'terraformrc');
// The mirror only, never the network: a missing provider fails init instead of downloading.
writeFileSync(cliConfig, `provider_installation {\n  filesystem_mirror {\n    path = ${JSON.stringify(mirror)}\n  }\n}\n`);
const env = { ...process.env, CHECKPOINT_DISABLE: '1', TF_CLI_CONFIG_FILE: cliConfig, TF_IN_AUTOMATION: '1', TF_INPUT: '0', AWS_EC2_METADATA_DISABLED: 'true' };
delete env.TF_PLUGIN_CACHE_DIR;

function run(cmd, argv, cwd) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, argv, { cwd, env });
    let stdout = ''; let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

// ------------------------------------------------------------------------------------------- synth
const outdir = join(work, 'synth');
const synth = spawnSync(process.execPath, [variantsProgram, outdir], { encoding: 'utf8', env, cwd: root });
if (synth.status !== 0) {
  process.stderr.write(`validate:terraform: synthesizing the examples and variants failed:\n${synth.stdout}${synth.stderr}\n`);
  process.exit(1);
}
const manifest = JSON.parse(readFileSync(join(outdir, 'validate-manifest.json'), 'utf8'));
const stacks = manifest.stacks
  .map((s) => ({ ...s, dir: join(outdir, 'stacks', s.name) }))
  .filter((s) => V.isAwsStack(JSON.parse(readFileSync(join(s.dir, 'cdk.tf.json'), 'utf8'))))
  .filter((s) => !only || only.includes(s.name));

// ------------------------------------------------------------------------------- provider schema
async function providerSchema() {
  const dir = join(work, '_schema');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.tf.json'), JSON.stringify({ terraform: { required_providers: { aws: { source: 'hashicorp/aws', version: awsVersion } } } }));
  const init = await run('terraform', ['init', '-backend=false', '-input=false', '-no-color'], dir);
  if (init.code !== 0) throw new Error(`terraform init against the mirror failed:\n${init.stdout}${init.stderr}`);
  const schema = await run('terraform', ['providers', 'schema', '-json'], dir);
  if (schema.code !== 0) throw new Error(`terraform providers schema failed:\n${schema.stderr}`);
  const all = JSON.parse(schema.stdout).provider_schemas;
  return Object.values(all)[0].resource_schemas;
}

// ------------------------------------------------------------------------------------ one stack
async function checkStack(stack, resourceSchemas) {
  const t0 = Date.now();
  const source = JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8'));
  const { json, standIns, dropped } = V.prepareStack(source, { awsVersion });
  V.withOfflineProvider(json);
  const dir = join(work, 'stacks', stack.name);
  mkdirSync(dir, { recursive: true });
  // Assets (the agent bundle, scripts) travel with the stack: aws_s3_object sources name them.
  for (const entry of readdirSync(stack.dir)) {
    if (entry !== 'cdk.tf.json' && !/\.(svg|dot)$/.test(entry) && entry !== 'cost.json') cpSync(join(stack.dir, entry), join(dir, entry), { recursive: true });
  }
  const text = JSON.stringify(json, null, 2);
  writeFileSync(join(dir, 'cdk.tf.json'), text);
  mkdirSync(join(dir, 'tests'));
  const real = V.renderRealTest(json);
  const mock = V.renderMockTest(json, resourceSchemas);
  writeFileSync(join(dir, 'tests/real.tftest.hcl'), real.text);
  writeFileSync(join(dir, 'tests/mock.tftest.hcl'), mock.text);

  const diagnostics = [];
  const add = (mode, d) => {
    const path = V.constructPathOf(json, d.address)
      ?? (d.range?.filename === 'cdk.tf.json' ? V.constructPathAt(text, json, d.range.start.line) : undefined);
    const entry = { mode, severity: d.severity, summary: d.summary, detail: d.detail, address: d.address ?? d.snippet?.context, path, line: d.range?.start?.line, file: d.range?.filename };
    // One line per distinct finding: terraform repeats a diagnostic once per reference in a string.
    if (diagnostics.some((x) => x.mode === entry.mode && x.summary === entry.summary && x.address === entry.address && x.line === entry.line && x.detail === entry.detail)) return;
    diagnostics.push(entry);
  };
  for (const m of [...real.missing, ...mock.missing]) add('prepare', { severity: 'error', summary: `no stand-in values for ${m}: add them to scripts/validate/prepare.cjs (dataValues)` });

  const init = await run('terraform', ['init', '-backend=false', '-input=false', '-no-color'], dir);
  if (init.code !== 0) {
    add('init', { severity: 'error', summary: 'terraform init failed', detail: `${init.stdout}${init.stderr}`.trim() });
    return { stack, diagnostics, standIns, dropped, seconds: (Date.now() - t0) / 1000 };
  }
  const validate = await run('terraform', ['validate', '-json', '-no-color'], dir);
  try {
    for (const d of JSON.parse(validate.stdout).diagnostics ?? []) add('validate', d);
  } catch {
    add('validate', { severity: 'error', summary: 'terraform validate printed no JSON', detail: `${validate.stdout}${validate.stderr}` });
  }
  if (!diagnostics.some((d) => d.severity === 'error')) {
    const test = await run('terraform', ['test', '-json', '-no-color'], dir);
    const seen = new Set();
    let runs = 0; let failed = 0;
    for (const line of test.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      let ev; try { ev = JSON.parse(line); } catch { continue; }
      if (ev.type === 'test_run' && ev.test_run?.progress === 'complete') { runs++; if (ev.test_run.status !== 'pass') failed++; }
      if (ev.type !== 'diagnostic' || !ev['@testrun']) continue; // teardown repeats the run's errors
      const mode = `${(ev['@testfile'] ?? '').replace(/^tests\/|\.tftest\.hcl$/g, '')} ${ev['@testrun']}`;
      const key = `${mode}|${ev.diagnostic.summary}|${ev.diagnostic.address}`;
      if (seen.has(key)) continue;
      seen.add(key);
      add(mode, ev.diagnostic);
    }
    if (runs !== 3 || (failed && !diagnostics.some((d) => d.severity === 'error'))) {
      add('test', { severity: 'error', summary: `terraform test completed ${runs} of 3 runs (${failed} failed)`, detail: `${test.stderr}`.trim().slice(0, 4000) });
    }
  }
  // Issue 16: a plan after a simulated promotion shows no change on registry-managed endpoints.
  let promotions = 0;
  if (!diagnostics.some((d) => d.severity === 'error')) {
    const checks = Promotion.preparePromotionChecks(json, { awsVersion, schema: resourceSchemas, workDir: dir });
    for (const d of await Promotion.runPromotionChecks(checks, run)) add('promotion', d);
    promotions = checks.length;
  }
  return { stack, diagnostics, standIns, dropped, promotions, seconds: (Date.now() - t0) / 1000 };
}

function report(result) {
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  const warnings = result.diagnostics.filter((d) => d.severity !== 'error');
  const lines = [`${errors.length ? 'FAIL' : 'ok  '} ${result.stack.name} (${result.stack.origin}) ${result.seconds.toFixed(1)}s` +
    `${warnings.length ? `, ${warnings.length} warning(s)` : ''}${result.promotions ? `, ${result.promotions} no-diff-after-promotion plan(s)` : ''}${result.dropped.length ? `, ${result.dropped.length} 6.x-only argument(s) dropped` : ''}`];
  for (const d of [...errors, ...(verbose ? warnings : [])]) {
    lines.push(`  ${d.severity} [${d.mode}] ${d.summary}`);
    lines.push(`    at ${d.path ?? '(no construct)'}${d.address ? ` (${d.address})` : ''}${d.line ? ` cdk.tf.json:${d.line}` : ''}`);
    if (d.detail) lines.push(...d.detail.split('\n').slice(0, 8).map((l) => `    ${l}`));
  }
  if (verbose) for (const d of result.dropped) lines.push(`  dropped ${d.address}.${d.argument}: ${d.reason}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main() {
  process.stdout.write(`validate:terraform: ${stacks.length} AWS stacks, hashicorp/aws ${awsVersion} from ${mirror}, ${jobs} at a time, in ${work}\n`);
  const schemas = await providerSchema();
  const queue = [...stacks];
  const results = [];
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      const r = await checkStack(s, schemas);
      report(r);
      results.push(r);
    }
  }));
  for (const f of manifest.failed ?? []) {
    process.stdout.write(`FAIL ${f.stack}/${f.variant} (variant) did not synthesize\n  error [synth] ${f.error.split('\n').join('\n    ')}\n`);
  }
  const errors = results.reduce((n, r) => n + r.diagnostics.filter((d) => d.severity === 'error').length, 0) + (manifest.failed?.length ?? 0);
  const failedStacks = [...results.filter((r) => r.diagnostics.some((d) => d.severity === 'error')).map((r) => r.stack.name),
    ...(manifest.failed ?? []).map((f) => `${f.stack}/${f.variant}`)];
  const examples = results.filter((r) => r.stack.origin === 'example').length;
  const variants = results.length - examples;
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  process.stdout.write(`validate:terraform: ${examples} example stacks, ${variants} variant stacks (${manifest.variants ?? '?'} variants), ` +
    `modes validate + real-provider plan + mock plan/apply, ${errors} errors${failedStacks.length ? ` in ${failedStacks.join(', ')}` : ''}, ${seconds}s\n`);
  if (!flag('--keep')) rmSync(work, { recursive: true, force: true });
  process.exitCode = errors ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`validate:terraform: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
