/**
 * Pipeline steps on Kubernetes pass files through the object store: a step's pod has its own disk, so
 * the runner's run directory travels to it and the step's new files travel back.
 *
 * - Before each step the runner uploads what changed in its run directory to the run's record
 *   (`<artifacts>/runs/<run-id>/`, the same place an escalated step restores from) and gives the step
 *   MLINFRA_RUN_DIR_URI (restored by k8s-wrap into MLINFRA_RUN_DIR) and MLINFRA_STEP_OUTPUT_URI.
 * - k8s-wrap, when the command succeeded, uploads every file of MLINFRA_RUN_DIR that is new or differs
 *   from what it restored to the step's own prefix `<artifacts>/step-outputs/<run-id>/<step>/`.
 * - After a step succeeds the runner merges that prefix into its run directory. Parallel steps never
 *   write the same object (one prefix each), and the merge order is defined: a step's file replaces
 *   the one from a step it ran after; between steps that ran in parallel, the step declared later in
 *   the pipeline wins, whichever finished first. `metrics.json` is merged key by key under the same
 *   rule, counting only the keys the step added or changed. Deletions do not travel back.
 *
 * Enabled on the runner by MLINFRA_STEP_FILES=object-store (the TrainingPipeline's CronJob sets it when
 * the target has an artifact store; with a file:// volume the runner and the pods share the directory).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { joinUri, type Storage } from '../storage/index';

export const STEP_FILES_ENV = 'MLINFRA_STEP_FILES';
export const STEP_OUTPUT_ENV = 'MLINFRA_STEP_OUTPUT_URI';
const METRICS = 'metrics.json';

/** Files under `dir` (relative, `/`-separated, sorted). */
export function walkFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const key = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), key);
      else if (e.isFile()) out.push(key);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** SHA-256 of each file under `dir`: what a step saw before it ran. */
export function digestDir(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of walkFiles(dir)) m.set(f, createHash('sha256').update(fs.readFileSync(path.join(dir, ...f.split('/')))).digest('hex'));
  return m;
}

/** k8s-wrap's half: uploads the files the step created or changed. Returns how many. */
export async function uploadStepOutputs(storage: Storage, runDir: string, before: ReadonlyMap<string, string>, outputUri: string): Promise<number> {
  const after = digestDir(runDir);
  let n = 0;
  for (const [f, sum] of after) {
    if (before.get(f) === sum) continue;
    await storage.put(path.join(runDir, ...f.split('/')), joinUri(outputUri, f));
    n++;
  }
  return n;
}

interface StepInfo { readonly name: string; readonly after: readonly string[] }

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function readMetrics(file: string): Record<string, unknown> {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return m !== null && typeof m === 'object' && !Array.isArray(m) ? m as Record<string, unknown> : {};
  } catch {
    return {};
  }
}

export interface MergeResult {
  /** Files (and `metrics.json#key`s) taken from the step. */
  readonly taken: string[];
  /** Those kept from a parallel step declared later, which wins. */
  readonly kept: string[];
}

/** The runner's half: one per run. Calls are serialized (parallel steps end at any time). */
export class RunDirSync {
  private readonly order: Map<string, number>;
  private readonly ancestors = new Map<string, Set<string>>();
  /** Which step wrote each file / metrics key last. */
  private readonly owner = new Map<string, string>();
  /** metrics.json as each step was given it. */
  private readonly metricsSeen = new Map<string, Record<string, unknown>>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly storage: Storage,
    private readonly runDir: string,
    private readonly runUri: string,
    private readonly outputsUri: string,
    steps: readonly StepInfo[],
    /** Sends what changed in the run directory to `runUri` (ModelStore.uploadRun: one record of what was sent, shared with the runner's own uploads). */
    private readonly upload: () => Promise<number>,
  ) {
    this.order = new Map(steps.map((s, i) => [s.name, i]));
    const byName = new Map(steps.map((s) => [s.name, s]));
    const up = (name: string, acc: Set<string>): Set<string> => {
      for (const d of byName.get(name)?.after ?? []) if (!acc.has(d)) { acc.add(d); up(d, acc); }
      return acc;
    };
    for (const s of steps) this.ancestors.set(s.name, up(s.name, new Set()));
  }

  /** From the runner's environment, or undefined when steps share the run directory. */
  static fromEnv(env: NodeJS.ProcessEnv, storage: Storage, artifactsUri: string, runId: string, runDir: string, runUri: string, steps: readonly StepInfo[], upload: () => Promise<number>): RunDirSync | undefined {
    if (env[STEP_FILES_ENV] !== 'object-store') return undefined;
    return new RunDirSync(storage, runDir, runUri, joinUri(artifactsUri, `step-outputs/${runId}/`), steps, upload);
  }

  /** One at a time; a failure names what was being done (the runner fails the step with it). */
  private serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const run = () => fn().catch((e: unknown) => { throw new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`); });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Uploads what changed since the last step started; returns the env the step's job needs. */
  before(step: string): Promise<Record<string, string>> {
    return this.serial(`cannot upload the run directory to ${this.runUri} for step "${step}"`, async () => {
      await this.upload();
      this.metricsSeen.set(step, readMetrics(path.join(this.runDir, METRICS)));
      return { MLINFRA_RUN_DIR_URI: this.runUri, [STEP_OUTPUT_ENV]: this.outputUri(step) };
    });
  }

  outputUri(step: string): string {
    return joinUri(this.outputsUri, `${step}/`);
  }

  /** `step` may replace what `other` wrote: it ran after it, or it is declared later in the pipeline. */
  private wins(step: string, other: string | undefined): boolean {
    if (other === undefined || other === step || this.ancestors.get(step)?.has(other)) return true;
    if (this.ancestors.get(other)?.has(step)) return false;
    return (this.order.get(step) ?? 0) > (this.order.get(other) ?? 0);
  }

  /** Brings a succeeded step's files into the run directory, in the order described above. */
  after(step: string): Promise<MergeResult> {
    return this.serial(`cannot bring step "${step}"'s files back from ${this.outputUri(step)}`, async () => {
      const taken: string[] = [];
      const kept: string[] = [];
      const objects = await this.storage.list(this.outputUri(step));
      const staging = fs.mkdtempSync(path.join(path.dirname(this.runDir), `.${path.basename(this.runDir)}-${step}-`));
      try {
        for (const o of objects) {
          const local = path.join(staging, ...o.key.split('/'));
          await this.storage.get(o.uri, local);
          if (o.key === METRICS) {
            this.mergeMetrics(step, readMetrics(local), taken, kept);
            continue;
          }
          if (!this.wins(step, this.owner.get(o.key))) {
            kept.push(o.key);
            continue;
          }
          const dest = path.join(this.runDir, ...o.key.split('/'));
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.renameSync(local, dest);
          this.owner.set(o.key, step);
          taken.push(o.key);
        }
      } finally {
        fs.rmSync(staging, { recursive: true, force: true });
      }
      return { taken, kept };
    });
  }

  private mergeMetrics(step: string, theirs: Record<string, unknown>, taken: string[], kept: string[]): void {
    const seen = this.metricsSeen.get(step) ?? {};
    const file = path.join(this.runDir, METRICS);
    const ours = readMetrics(file);
    for (const [k, v] of Object.entries(theirs)) {
      if (k in seen && same(seen[k], v)) continue;
      const key = `${METRICS}#${k}`;
      if (!this.wins(step, this.owner.get(key))) {
        kept.push(key);
        continue;
      }
      ours[k] = v;
      this.owner.set(key, step);
      taken.push(key);
    }
    fs.writeFileSync(file, `${JSON.stringify(ours, null, 2)}\n`);
  }
}
