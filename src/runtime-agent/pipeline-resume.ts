/**
 * Resuming a pipeline run whose host died (cluster/pipeline-runs.ts hands the run id over): the run
 * directory comes back from `<artifactsUri>/runs/<run-id>/` (the runner uploads it after every step
 * that succeeds), steps recorded succeeded are kept and not run again, the rest run. Each resume is
 * recorded in run.json (`resumes`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelStore } from './model-store';
import type { StepRecord } from './pipeline-types';
import { ModelRegistry } from './registry/registry';
import type { Storage } from './storage/index';

/** Where a resumed run comes from. */
export interface ResumeFrom {
  /** The queue message the run belongs to. */
  readonly messageId: string | null;
  /** The host whose lock lapsed. */
  readonly previousHost: string | null;
}

/** The run options a resume adds (runPipeline). */
export interface ResumeOptions {
  /** Resume the run `runId` from the bucket instead of starting it. @default - a new run */
  readonly resume?: ResumeFrom;
}

/** One resume, as recorded in run.json. */
export interface ResumeRecord {
  readonly at: string;
  readonly host: string;
  readonly messageId: string | null;
  readonly previousHost: string | null;
  /** Steps that had succeeded: not run again, their files restored. */
  readonly skipped: string[];
  readonly rerun: string[];
}

/** What the bucket held of the run. */
export interface RestoredRun {
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  readonly state: string | null;
  readonly promoted: boolean | null;
  readonly resumes: ResumeRecord[];
  readonly steps: Readonly<Record<string, StepRecord>>;
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Copies `runs/<run-id>/` into the run directory; undefined when the bucket has nothing of the run. */
export async function restoreRun(storage: Storage, runUri: string, runDir: string): Promise<RestoredRun | undefined> {
  if ((await storage.getDir(runUri, runDir)) === 0) return undefined;
  const run = readJson(path.join(runDir, 'run.json')) ?? {};
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  return {
    startedAt: str(run.startedAt), endedAt: str(run.endedAt), state: str(run.state),
    promoted: typeof run.promoted === 'boolean' ? run.promoted : null,
    resumes: Array.isArray(run.resumes) ? (run.resumes as ResumeRecord[]) : [],
    steps: (readJson(path.join(runDir, 'steps.json')) ?? {}) as Record<string, StepRecord>,
  };
}

/** Keeps the records of steps that succeeded before the resume (the rest stay pending) and says which. */
export function applyResume(records: Map<string, StepRecord>, prior: RestoredRun, from: ResumeFrom, host: string): ResumeRecord {
  const skipped: string[] = [];
  const rerun: string[] = [];
  for (const [name, rec] of records) {
    const p = prior.steps[name];
    if (p?.state === 'succeeded' && p.kind === rec.kind) {
      records.set(name, { ...p, after: rec.after });
      skipped.push(name);
    } else {
      rerun.push(name);
    }
  }
  return { at: new Date().toISOString(), host, messageId: from.messageId, previousHost: from.previousHost, skipped, rerun };
}

/**
 * For a resumed run's deployIfBetter step: why the run already promoted itself before its host died,
 * or undefined. The registry makes a new version on every registration (even of one run id), and the
 * pointer comparison would read this run's own value, so the decision must not be taken twice. When
 * the registry already serves this run but the pointer was not moved yet, it is moved now.
 */
export async function promotedBefore(
  store: ModelStore, storage: Storage, pipeline: string, runId: string, metric: string, value: number,
): Promise<string | undefined> {
  const current = await store.current();
  if (current?.runId === runId) return `promoted before the resume: ${store.currentUri} already points at run ${runId}`;
  const serving = await new ModelRegistry(storage, store.artifactsUri, pipeline).current().catch(() => null);
  if (serving?.runId !== runId) return undefined;
  await store.promote(runId, metric, value, new Date());
  return `registered before the resume (version ${serving.version} serves run ${runId}): ${store.currentUri} moved to it now`;
}
