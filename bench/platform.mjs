// The whole reference platform: three MlPlatformStacks (aws, gcp, kubernetes) in one app, synthesized
// in a fresh node process, beside a bare require('cdktf'); then the same with cost report and picture.
// Figures, not assertions. Run after `npm run build`; `node bench/platform.mjs` or from bench/run.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

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
  return { name, runs: samples.length, medianMs: +ms[Math.floor(ms.length / 2)].toFixed(0), minMs: +ms[0].toFixed(0), peakRssMiB: +rss[rss.length - 1].toFixed(0) };
}

export async function benchPlatform(runs = Number(process.env.BENCH_RUNS ?? 5)) {
  const example = join(root, 'lib', 'examples', 'platform', 'main.js');
  const aspects = (name) => join(root, 'lib', 'src', 'aspects', name, 'index.js');
  if (!existsSync(example)) throw new Error('lib/examples/platform/main.js missing: run `npm run build` first');
  const synth = (extra) => `const {App}=require('cdktf');const app=new App();const stacks=require(${JSON.stringify(example)}).build(app);app.synth();${extra}`;
  const withExtras = synth(`const c=require(${JSON.stringify(aspects('cost'))});const p=require(${JSON.stringify(aspects('picture'))});`
    + '(async()=>{for(const s of stacks){c.writeCostReport(s,app.outdir);await p.writePicture(s,app.outdir);}})()');
  const inTemp = (code) => {
    const outdir = mkdtempSync(join(tmpdir(), 'mlinfra-bench-'));
    try {
      const m = measure(code, { CDKTF_OUTDIR: outdir });
      m.stacks = readdirSync(join(outdir, 'stacks')).length;
      return m;
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  };
  const rows = [
    summarize("node -e \"require('cdktf')\"", Array.from({ length: runs }, () => measure("require('cdktf')"))),
  ];
  const plain = Array.from({ length: runs }, () => inTemp(synth('')));
  rows.push(summarize(`synth reference platform (${plain[0].stacks} MlPlatformStacks)`, plain));
  rows.push(summarize('... plus cost.json and picture.dot/.svg', Array.from({ length: runs }, () => inTemp(withExtras))));
  process.stdout.write('\nreference platform: all five constructs on aws, gcp and kubernetes (fresh node process, peak RSS)\n');
  console.table(rows);
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await benchPlatform();
