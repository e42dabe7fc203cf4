/**
 * The TrainingPipeline spec: written by the construct at synth time (stored as an object in the
 * cluster's bucket, named by its content hash) and executed by `mlinfra-agent run-pipeline`.
 * This file is the contract between the two sides: types only, no imports, no runtime state.
 */

export const PIPELINE_SPEC_VERSION = 1;

/** A command step: runs as one agent job. */
export interface RunStepSpec {
  readonly kind: 'run';
  readonly name: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Names of steps that must succeed first. */
  readonly after: readonly string[];
  readonly retries: number;
  readonly timeoutSeconds?: number;
  readonly gpus: number;
  /**
   * When an attempt is classified `oom`, resubmit the step to this (bigger) cluster's agent.
   * The token is read from `tokenFile` or the env var named by `tokenEnv` on the host running the pipeline.
   */
  readonly onOom?: { readonly agentUrl: string; readonly tokenFile?: string; readonly tokenEnv?: string; readonly clusterName?: string };
}

/** Promote the run's model to `models/current` only if `metric` beats the current model's. */
export interface DeployIfBetterStepSpec {
  readonly kind: 'deployIfBetter';
  readonly name: string;
  readonly after: readonly string[];
  /** Key in the run's metrics.json. */
  readonly metric: string;
  readonly higherIsBetter: boolean;
}

export type PipelineStepSpec = RunStepSpec | DeployIfBetterStepSpec;

export interface PipelineSpec {
  readonly version: typeof PIPELINE_SPEC_VERSION;
  /** Pipeline name: [a-z0-9-]. */
  readonly name: string;
  /**
   * Model store root (s3://, gs:// or file://). Each run writes `runs/<run-id>/`; promotion writes
   * `models/current` (JSON: {runId, metric, value, promotedAt}).
   */
  readonly artifactsUri: string;
  readonly steps: readonly PipelineStepSpec[];
  /** Free-form params recorded in the run's params.json and passed to steps as MLINFRA_PARAMS (JSON). */
  readonly params: Readonly<Record<string, string | number | boolean>>;
  /** Run the agent's stop command when the run ends (the schedule started this host from zero). */
  readonly autostop: boolean;
}

/**
 * What steps see (environment), in addition to the agent's job variables:
 * - MLINFRA_RUN_ID, MLINFRA_PIPELINE, MLINFRA_STEP
 * - MLINFRA_RUN_DIR: a local directory synced to `<artifactsUri>/runs/<run-id>/` when the run ends;
 *   a step writes `metrics.json` (merged across steps, flat {name: number}) and model files under
 *   `model/` there. Every step of a run sees the same directory, so later steps read earlier outputs.
 * - MLINFRA_PARAMS: the spec's params as JSON.
 * - MLINFRA_CODE_VERSION / MLINFRA_DATA_VERSION: from the run's options (git SHA or image digest;
 *   data snapshot id), recorded in the run directory.
 *
 * The run directory ends up with: model/ (whatever steps wrote), metrics.json, params.json,
 * versions.json ({code, data}), spec.json + spec-hash.txt, steps.json (per step: state, attempts,
 * failure, escalatedTo), logs/<step>.log, and promotion.json when a promote step ran.
 */
export type PipelineStepState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
