/** What a pipeline run records and returns (shared by the run engine, the CLI and --pipeline-on-start). */
import type { Logger } from 'pino';
import type { PipelineSpec, PipelineStepSpec, PipelineStepState } from './pipeline-spec';
import type { Storage } from './storage/index';

/** A failure the runner itself records (the agent's classes are exit, signal, oom, timeout, preempted, cancelled). */
export type RunnerFailureClass = 'submit' | 'lost' | 'metric' | 'promote' | 'escalation';

export interface StepEscalation {
  readonly agentUrl: string;
  readonly clusterName: string | null;
  /** null when the job could not be submitted (see `reason`). */
  readonly jobId: string | null;
  readonly state: string;
  readonly attempts: number;
  readonly exitCode: number | null;
  readonly failure: { class: string; reason: string } | null;
  /** Why the step was escalated (the local job's OOM reason), or why escalation was impossible. */
  readonly reason: string;
}

export interface StepRecord {
  name: string;
  kind: PipelineStepSpec['kind'];
  after: string[];
  state: PipelineStepState;
  /** The job on the pipeline's agent (run steps). */
  jobId: string | null;
  attempts: number;
  exitCode: number | null;
  failure: { class: string; reason: string } | null;
  escalatedTo?: StepEscalation;
  /** Why a step was skipped, or what a promote step decided. */
  reason?: string;
  startedAt: string | null;
  endedAt: string | null;
}

export interface Promotion {
  readonly promoted: boolean;
  readonly metric: string;
  readonly newValue: number;
  readonly currentValue: number | null;
  readonly currentRunId: string | null;
  readonly higherIsBetter: boolean;
  readonly reason: string;
}

export interface PipelineRunResult {
  readonly runId: string;
  readonly pipeline: string;
  readonly state: 'succeeded' | 'failed';
  readonly runDir: string;
  readonly runUri: string;
  readonly specHash: string;
  readonly steps: Readonly<Record<string, StepRecord>>;
  /** null when the spec has no deployIfBetter step (or it did not get to decide). */
  readonly promoted: boolean | null;
  readonly startedAt: string;
  readonly endedAt: string;
  /** Set when the run directory could not be uploaded (the run then counts as failed). */
  readonly uploadError?: string;
}

export interface PipelineRunOptions {
  readonly spec: PipelineSpec;
  /** The spec as read (spec.json and spec-hash.txt are made from it); defaults to `spec`. */
  readonly rawSpec?: unknown;
  readonly specUri?: string;
  readonly agentUrl: string;
  readonly token: string;
  /** @default - a new time-sortable id (`newRunId`) */
  readonly runId?: string;
  readonly codeVersion?: string | null;
  readonly dataVersion?: string | null;
  /** The run directory is `<workDir>/<pipeline>/<run-id>` (on the agent's host: steps share it). */
  readonly workDir: string;
  readonly storage: Storage;
  readonly logger: Logger;
  /** Where `onOom.tokenEnv` is looked up. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Job status poll interval. @default 200 */
  readonly pollMs?: number;
  /** A job whose agent does not answer for this long fails the step (class `lost`). @default 120000 */
  readonly lostAfterMs?: number;
  /** Called with each step's log output as it is written (run-pipeline --follow). */
  readonly onLog?: (step: string, text: string) => void;
  /** Called when a step changes state. */
  readonly onStep?: (rec: Readonly<StepRecord>) => void;
}

/** The one line `run-pipeline` prints on stdout. */
export function runSummary(r: PipelineRunResult): Record<string, unknown> {
  return {
    runId: r.runId, pipeline: r.pipeline, state: r.state, steps: Object.fromEntries(Object.entries(r.steps).map(([k, v]) => [k, v.state])),
    promoted: r.promoted, runUri: r.runUri, ...(r.uploadError ? { uploadError: r.uploadError } : {}),
  };
}
