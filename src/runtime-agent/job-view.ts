import type { Journal } from './journal';
import type { Failure, FailureClass, JobKind, JobRecord, JobState } from './types';

/**
 * The HTTP shape of a job (GET /v1/jobs/:id, the list, submit and cancel answers): what the server
 * sends and what the client reads, one type for both. Changing it changes DESIGN §6's contract.
 */
export interface JobView {
  readonly id: string;
  readonly name: string | null;
  readonly state: JobState;
  readonly kind: JobKind;
  readonly argv: string[];
  /** The names of the job's environment variables (their values are never shown). */
  readonly envKeys: string[];
  readonly cwd: string | null;
  readonly gpus: number;
  readonly priority: number;
  readonly retries: number;
  readonly timeoutSeconds: number | null;
  readonly checkpointDir: string | null;
  readonly artifactUri: string | null;
  readonly input: string | null;
  readonly output: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly failure: Failure | null;
  readonly attempts: number;
  /** Attempts that counted against `retries`. */
  readonly failedAttempts: number;
  readonly cudaVisibleDevices: string | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  /** Detail only (GET /v1/jobs/:id): every run, oldest first. */
  readonly runs?: RunView[];
  /** Detail only, batch jobs. */
  readonly shards?: { readonly total: number; readonly done: number };
}

/** One run (a train attempt or a batch shard's try) in a job's detail. */
export interface RunView {
  readonly attempt: number;
  readonly shard: number | null;
  readonly pid: number | null;
  readonly cudaVisibleDevices: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly outcome: string | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly failure: { readonly class: FailureClass; readonly reason: string } | null;
}

/** A job as the API shows it. With the journal: its detail (runs, shards). */
export function jobView(j: JobRecord, journal?: Journal): JobView {
  const s = j.spec;
  const view: JobView = {
    id: j.id, name: s.name ?? null, state: j.state, kind: s.kind, argv: s.argv, envKeys: Object.keys(s.env), cwd: s.cwd ?? null,
    gpus: s.gpus, priority: s.priority, retries: s.retries, timeoutSeconds: s.timeoutSeconds ?? null,
    checkpointDir: s.checkpointDir ?? null, artifactUri: s.artifactUri ?? null, input: s.input ?? null, output: s.output ?? null,
    exitCode: j.exitCode, signal: j.signal, failure: j.failure, attempts: j.attempts, failedAttempts: j.charged,
    cudaVisibleDevices: j.gpuIds, createdAt: j.createdAt, startedAt: j.startedAt, endedAt: j.endedAt,
  };
  if (!journal) return view;
  const runs = journal.runsOf(j.id).map((r): RunView => ({
    attempt: r.attempt, shard: r.shard, pid: r.pid, cudaVisibleDevices: r.gpuIds, startedAt: r.startedAt, endedAt: r.endedAt,
    outcome: r.outcome, exitCode: r.exitCode, signal: r.signal, failure: r.failure,
  }));
  if (s.kind !== 'batch') return { ...view, runs };
  const shards = journal.shardsOf(j.id);
  return { ...view, runs, shards: { total: shards.length, done: shards.filter((x) => x.state === 'done').length } };
}
