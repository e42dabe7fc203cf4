// `npm run bench`: figures, not assertions. Synth of the example apps beside a bare require('cdktf'),
// then the reference platform (bench/platform.mjs), then the agent's own figures (bench/agent.mjs). Run after `npm run build`.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measure, root, summarize } from './measure.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

const rows = [];
rows.push(summarize("node -e \"require('cdktf')\"", Array.from({ length: RUNS }, () => measure("require('cdktf')"))));
// require('cdktf-mlinfra') alone, with one target and with all three: providers load on first use.
const lib = JSON.stringify(join(root, 'lib', 'src', 'index.js'));
const targets = {
  kubernetes: "new m.KubernetesTarget(s,'k8s',{namespace:'ml'});",
  aws: "new m.AwsTarget(s,'aws',{region:'us-east-1'});",
  gcp: "new m.GcpTarget(s,'gcp',{project:'acme-ml-1',region:'us-central1'});",
};
const load = (body) => `const m=require(${lib});const {App,TerraformStack}=require('cdktf');const s=new TerraformStack(new App(),'s');${body}`;
rows.push(summarize("require('cdktf-mlinfra')", Array.from({ length: RUNS }, () => measure(load('')))));
rows.push(summarize("require('cdktf-mlinfra') + KubernetesTarget", Array.from({ length: RUNS }, () => measure(load(targets.kubernetes)))));
rows.push(summarize("require('cdktf-mlinfra') + all three targets", Array.from({ length: RUNS }, () => measure(load(Object.values(targets).join(''))))));
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
if (existsSync(join(root, 'bench', 'queue.mjs'))) await (await import(join(root, 'bench', 'queue.mjs'))).benchQueue();
if (existsSync(join(root, 'bench', 'gang.mjs'))) await (await import(join(root, 'bench', 'gang.mjs'))).benchGang();
