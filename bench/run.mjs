// `npm run bench`: figures, not assertions. Synth of the example apps beside a bare require('cdktf'),
// then the reference platform (bench/platform.mjs), then the agent's own figures (bench/agent.mjs). Run after `npm run build`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

/** Runs `code` in a fresh node; returns wall ms and peak RSS (MiB) of that process. */
function measure(code, env = {}) {
  const probe = `${code};process.on('exit',()=>process.stderr.write('\\nBENCH '+JSON.stringify({rss:process.resourceUsage().maxRSS})+'\\n'))`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, env: { ...process.env, CHECKPOINT_DISABLE: '1', ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`bench child failed: ${r.stderr}`);
  const line = r.stderr.split('\n').find((l) => l.startsWith('BENCH '));
  return { ms, rssMiB: JSON.parse(line.slice(6)).rss / 1024 };
}

function summarize(name, samples) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const rss = samples.map((s) => s.rssMiB).sort((a, b) => a - b);
  const med = (xs) => xs[Math.floor(xs.length / 2)];
  return { name, runs: samples.length, medianMs: +med(ms).toFixed(0), minMs: +ms[0].toFixed(0), peakRssMiB: +rss[rss.length - 1].toFixed(0) };
}

const rows = [];
rows.push(summarize("node -e \"require('cdktf')\"", Array.from({ length: RUNS }, () => measure("require('cdktf')"))));
const synthFile = join(root, 'lib', 'examples', 'synth-all.js');
if (!existsSync(synthFile)) throw new Error('lib/examples/synth-all.js missing: run `npm run build` first');
let stacks = 0;
const synthRuns = Array.from({ length: RUNS }, () => {
  const outdir = mkdtempSync(join(tmpdir(), 'mlinfra-bench-'));
  try {
    const m = measure(`process.stdout.write=()=>true;require(${JSON.stringify(synthFile)})`, { CDKTF_OUTDIR: outdir });
    stacks = readdirSync(join(outdir, 'stacks')).length;
    return m;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
rows.push(summarize(`synth every example (${stacks} stacks)`, synthRuns));
process.stdout.write('\nsynth (wall time of a fresh node process, peak RSS)\n');
console.table(rows);

const platformBench = join(root, 'bench', 'platform.mjs');
if (existsSync(platformBench)) {
  const { benchPlatform } = await import(platformBench);
  await benchPlatform(RUNS);
}

const agentBench = join(root, 'bench', 'agent.mjs');
if (existsSync(agentBench)) {
  const { benchAgent } = await import(agentBench);
  await benchAgent();
}
