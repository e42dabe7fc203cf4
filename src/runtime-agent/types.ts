/** Shared types of mlinfra-agent (no runtime code). */

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
export type FailureClass = 'exit' | 'signal' | 'oom' | 'timeout' | 'preempted' | 'cancelled' | 'disk';
export type JobKind = 'train' | 'batch';

export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];

export interface Failure {
  readonly class: FailureClass;
  readonly reason: string;
}

/** What a client submits (validated by the server's JSON schema, then normalised). */
export interface JobSpec {
  readonly name?: string;
  readonly argv: string[];
  readonly env: Record<string, string>;
  readonly cwd?: string;
  readonly gpus: number;
  readonly priority: number;
  readonly retries: number;
  readonly timeoutSeconds?: number;
  readonly kind: JobKind;
  /** Local path or storage URI; the job sees a local directory in MLINFRA_CHECKPOINT_DIR. */
  readonly checkpointDir?: string;
  /** Storage URI (prefix) that the files the job writes to MLINFRA_ARTIFACT_DIR are uploaded to. */
  readonly artifactUri?: string;
  /** Batch only: input prefix (URI or path) and output prefix. */
  readonly input?: string;
  readonly output?: string;
}

export interface JobRecord {
  readonly seq: number;
  readonly id: string;
  readonly spec: JobSpec;
  readonly state: JobState;
  readonly attempts: number;
  /** Attempts that ended in a failure that counts against `retries` (crash interruptions included). */
  readonly charged: number;
  /** 1 when an interrupted job is re-queued on the next start whatever its retries (preemption, shutdown). */
  readonly requeue: boolean;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly failure: Failure | null;
  readonly gpuIds: string | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
}

export interface RunRecord {
  readonly runId: number;
  readonly jobId: string;
  readonly attempt: number;
  readonly shard: number | null;
  readonly pid: number | null;
  readonly pgid: number | null;
  readonly procStart: string | null;
  /** RUN_MARKER_ENV of the run's processes (journaled before the spawn): finds them after a crash. */
  readonly marker: string | null;
  readonly gpuIds: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly outcome: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly failure: Failure | null;
}

export interface ShardRecord {
  readonly jobId: string;
  readonly idx: number;
  readonly key: string;
  readonly inputUri: string;
  readonly outputUri: string;
  readonly state: 'pending' | 'done';
  readonly attempts: number;
}
