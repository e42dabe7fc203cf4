// Every example synthesized once per test run, shared by the suites that only read its output
// (references, policy findings, secrets, per-cloud rules): synthesizing the examples was the largest
// cost of the suite when each file did it again. The cache directory comes from the global setup.
import { App } from 'cdktf';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { EXAMPLES } from '../../examples';
import { Policy, PolicyFinding } from '../../src/aspects/policy';

export interface ExampleOutput {
  /** The app's outdir (stacks/<id>/cdk.tf.json, cost.json, pictures). */
  readonly dir: string;
  /** Synthesized JSON by stack id. */
  readonly stacks: Record<string, any>;
  /** Policy findings over the whole app, and what the reporter printed. */
  readonly findings: PolicyFinding[];
  readonly printed: PolicyFinding[];
}

/** Synthesizes example `name` (with the policy pack applied) into `outdir`; returns the findings. */
export function synthExampleTo(name: string, outdir: string): { findings: PolicyFinding[]; printed: PolicyFinding[] } {
  const build = EXAMPLES[name];
  if (!build) throw new Error(`no example ${name}; examples: ${Object.keys(EXAMPLES).join(', ')}`);
  const app = new App({ outdir, skipValidation: false });
  build(app);
  const printed: PolicyFinding[] = [];
  Policy.apply(app, { reporter: (f) => printed.push(f) });
  app.synth();
  return { findings: Policy.findingsOf(app), printed };
}

function cacheRoot(): string {
  const dir = process.env.MLINFRA_EXAMPLES_CACHE ?? join(tmpdir(), `mlinfra-examples-${process.ppid}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const memo = new Map<string, ExampleOutput>();

/** The example's synthesized output, synthesized by whichever test worker asks first. */
export function exampleOutput(name: string): ExampleOutput {
  const hit = memo.get(name);
  if (hit) return hit;
  const final = join(cacheRoot(), name);
  const done = () => existsSync(join(final, 'findings.json'));
  if (!done()) {
    // One worker synthesizes; another that asks meanwhile waits for it rather than doing it again.
    let owner = false;
    try {
      closeSync(openSync(join(cacheRoot(), `.${name}.lock`), 'wx'));
      owner = true;
    } catch {
      const deadline = Date.now() + 180_000;
      while (!done() && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    if (owner || !done()) {
      const tmp = mkdtempSync(join(cacheRoot(), `.${name}-`));
      const result = synthExampleTo(name, join(tmp, 'out'));
      writeFileSync(join(tmp, 'findings.json'), JSON.stringify(result));
      try {
        renameSync(tmp, final);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another worker finished first: same bytes
      }
    }
  }
  const dir = join(final, 'out');
  const stacks: Record<string, any> = {};
  for (const id of readdirSync(join(dir, 'stacks')).sort()) stacks[id] = JSON.parse(readFileSync(join(dir, 'stacks', id, 'cdk.tf.json'), 'utf8'));
  const { findings, printed } = JSON.parse(readFileSync(join(final, 'findings.json'), 'utf8'));
  const out = { dir, stacks, findings, printed };
  memo.set(name, out);
  return out;
}

export const EXAMPLE_NAMES = Object.keys(EXAMPLES);
