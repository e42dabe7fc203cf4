// The whole reference platform: three MlPlatformStacks (aws, gcp, kubernetes) in one app, synthesized
// in a fresh node process, beside a bare require('cdktf'); then the same with cost report and picture.
// Figures, not assertions. Run after `npm run build`; `node bench/platform.mjs` or from bench/run.mjs.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measure, root, summarize } from './measure.mjs';

export async function benchPlatform(runs = Number(process.env.BENCH_RUNS ?? 5)) {
  // BENCH_LIB: another compiled tree (e.g. of an older commit), to compare in one run.
  const lib = process.env.BENCH_LIB ?? join(root, 'lib');
  const example = join(lib, 'examples', 'platform', 'main.js');
  const aspects = (name) => join(lib, 'src', 'aspects', name, 'index.js');
  if (!existsSync(example)) throw new Error(`${example} missing: run \`npm run build\` first`);
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
