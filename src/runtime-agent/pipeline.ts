/**
 * `mlinfra-agent run-pipeline`: reads a TrainingPipeline spec (pipeline-spec.ts, the contract), runs its
 * DAG as jobs of an agent, promotes the model when a `deployIfBetter` step says so, and records the run
 * (`<artifactsUri>/runs/<run-id>/`). Also used in-process by `serve --pipeline-on-start`.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentClient, type JobJson } from './client';
import { AgentError } from './errors';
import { ModelStore, type CurrentModel } from './model-store';
import {
  PIPELINE_SPEC_VERSION, type DeployIfBetterStepSpec, type PipelineSpec, type PipelineStepSpec, type PipelineStepState, type RunStepSpec,
} from './pipeline-spec';
import { joinUri, schemeOf, type Storage } from './storage/index';
import { TERMINAL_STATES, type JobState } from './types';

/** A spec that cannot be read or is not valid: `run-pipeline` exits 2 with `toJSON()` on stderr. */
export class PipelineSpecError extends Error {
  constructor(
    message: string,
    /** The steps the problem is about (empty when it is about the whole spec). */
    readonly steps: readonly string[] = [],
    readonly field?: string,
    readonly code: 'invalid_spec' | 'spec_unreadable' = 'invalid_spec',
  ) {
    super(message);
    this.name = 'PipelineSpecError';
  }

  toJSON(): { error: { code: string; message: string; field?: string; steps: string[] } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}), steps: [...this.steps] } };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Canonical JSON, hashes, run ids

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

/** `JSON.stringify` with object keys sorted at every level (arrays keep their order). */
export function canonicalJson(value: unknown, indent?: number): string {
  return JSON.stringify(sortKeys(value), null, indent);
}

/** sha256 (hex) of the spec's canonical JSON (compact, keys sorted): the spec's content hash. */
export function specHash(spec: unknown): string {
  return createHash('sha256').update(canonicalJson(spec), 'utf8').digest('hex');
}

/** A time-sortable run id: `20261124T203000Z-1a2b3c` (UTC). */
export function newRunId(now: Date = new Date()): string {
  const ts = `${now.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
  return `${ts}-${randomBytes(3).toString('hex')}`;
}

export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const STEP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
export const PIPELINE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// ---------------------------------------------------------------------------------------------------------
// Validation

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/**
 * Checks a parsed spec and returns it with defaults filled in (`after: []`, `env: {}`, `retries: 0`,
 * `gpus: 0`, `params: {}`, `autostop: false`). Throws PipelineSpecError naming the step(s) and field.
 */
export function validatePipelineSpec(raw: unknown): PipelineSpec {
  const bad = (message: string, steps: string[] = [], field?: string): never => {
    throw new PipelineSpecError(message, steps, field);
  };
  if (!isObj(raw)) bad('the spec must be a JSON object', [], 'spec');
  const r = raw as Record<string, unknown>;
  if (r.version !== PIPELINE_SPEC_VERSION) {
    bad(`unsupported spec version ${JSON.stringify(r.version) ?? 'undefined'}: this agent reads version ${PIPELINE_SPEC_VERSION}`, [], 'version');
  }
  if (typeof r.name !== 'string' || !PIPELINE_NAME.test(r.name)) bad(`name must match ${PIPELINE_NAME.source}, got ${JSON.stringify(r.name)}`, [], 'name');
  if (typeof r.artifactsUri !== 'string' || !r.artifactsUri) bad('artifactsUri must be a file://, s3:// or gs:// URI', [], 'artifactsUri');
  try {
    schemeOf(r.artifactsUri as string);
  } catch (e) {
    bad(`artifactsUri: ${(e as Error).message}`, [], 'artifactsUri');
  }
  const params = r.params ?? {};
  if (!isObj(params)) bad('params must be an object of strings, numbers and booleans', [], 'params');
  for (const [k, v] of Object.entries(params as Record<string, unknown>)) {
    if (!['string', 'number', 'boolean'].includes(typeof v)) bad(`params.${k} must be a string, number or boolean`, [], `params.${k}`);
  }
  const autostop = r.autostop ?? false;
  if (typeof autostop !== 'boolean') bad('autostop must be a boolean', [], 'autostop');
  if (!Array.isArray(r.steps) || r.steps.length === 0) bad('steps must be a non-empty array', [], 'steps');

  const steps: PipelineStepSpec[] = [];
  const names = new Set<string>();
  (r.steps as unknown[]).forEach((s, i) => {
    const at = `steps[${i}]`;
    if (!isObj(s)) bad(`${at} must be an object`, [], at);
    const st = s as Record<string, unknown>;
    if (typeof st.name !== 'string' || !STEP_NAME.test(st.name)) bad(`${at}.name must match ${STEP_NAME.source}, got ${JSON.stringify(st.name)}`, [], `${at}.name`);
    const name = st.name as string;
    if (names.has(name)) bad(`duplicate step name "${name}"`, [name], `${at}.name`);
    names.add(name);
    const after = st.after ?? [];
    if (!Array.isArray(after) || !after.every((a) => typeof a === 'string')) bad(`step "${name}": after must be an array of step names`, [name], `${at}.after`);
    const deps = [...new Set(after as string[])];
    if (st.kind === 'run') {
      const argv = st.argv;
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string') || !argv[0]) {
        bad(`step "${name}": argv must be a non-empty array of strings`, [name], `${at}.argv`);
      }
      const env = st.env ?? {};
      if (!isObj(env)) bad(`step "${name}": env must be an object of strings`, [name], `${at}.env`);
      for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
        if (!ENV_NAME.test(k) || typeof v !== 'string') bad(`step "${name}": env.${k} must be a string with a valid name`, [name], `${at}.env.${k}`);
      }
      const retries = st.retries ?? 0;
      if (!isInt(retries, 0, 100)) bad(`step "${name}": retries must be an integer 0..100`, [name], `${at}.retries`);
      const gpus = st.gpus ?? 0;
      if (!isInt(gpus, 0, 1024)) bad(`step "${name}": gpus must be an integer 0..1024`, [name], `${at}.gpus`);
      if (st.timeoutSeconds !== undefined && (typeof st.timeoutSeconds !== 'number' || !(st.timeoutSeconds > 0) || st.timeoutSeconds > 31_536_000)) {
        bad(`step "${name}": timeoutSeconds must be a number > 0`, [name], `${at}.timeoutSeconds`);
      }
      let onOom: RunStepSpec['onOom'];
      if (st.onOom !== undefined) {
        const o = st.onOom;
        if (!isObj(o) || typeof o.agentUrl !== 'string' || !/^https?:\/\//.test(o.agentUrl)) bad(`step "${name}": onOom.agentUrl must be an http(s) URL`, [name], `${at}.onOom.agentUrl`);
        const oo = o as Record<string, unknown>;
        for (const k of ['tokenFile', 'tokenEnv', 'clusterName']) {
          if (oo[k] !== undefined && typeof oo[k] !== 'string') bad(`step "${name}": onOom.${k} must be a string`, [name], `${at}.onOom.${k}`);
        }
        onOom = {
          agentUrl: oo.agentUrl as string,
          ...(oo.tokenFile !== undefined ? { tokenFile: oo.tokenFile as string } : {}),
          ...(oo.tokenEnv !== undefined ? { tokenEnv: oo.tokenEnv as string } : {}),
          ...(oo.clusterName !== undefined ? { clusterName: oo.clusterName as string } : {}),
        };
      }
      steps.push({
        kind: 'run', name, argv: [...(argv as string[])], env: { ...(env as Record<string, string>) }, after: deps, retries: retries as number,
        gpus: gpus as number, ...(st.timeoutSeconds !== undefined ? { timeoutSeconds: st.timeoutSeconds as number } : {}), ...(onOom ? { onOom } : {}),
      });
    } else if (st.kind === 'deployIfBetter') {
      if (typeof st.metric !== 'string' || !st.metric) bad(`step "${name}": metric must be a non-empty string`, [name], `${at}.metric`);
      if (typeof st.higherIsBetter !== 'boolean') bad(`step "${name}": higherIsBetter must be a boolean`, [name], `${at}.higherIsBetter`);
      steps.push({ kind: 'deployIfBetter', name, after: deps, metric: st.metric as string, higherIsBetter: st.higherIsBetter as boolean });
    } else {
      bad(`step "${name}": kind must be "run" or "deployIfBetter", got ${JSON.stringify(st.kind)}`, [name], `${at}.kind`);
    }
  });

  const byName = new Map(steps.map((s) => [s.name, s]));
  steps.forEach((s, i) => {
    for (const d of s.after) {
      if (!byName.has(d)) bad(`step "${s.name}" runs after unknown step "${d}"`, [s.name, d], `steps[${i}].after`);
    }
  });
  // cycles: depth-first search; a back edge closes a cycle, reported as "a -> b -> a" (a runs after b)
  const color = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    color.set(n, 1);
    stack.push(n);
    for (const d of byName.get(n)!.after) {
      if (color.get(d) === 1) {
        const cycle = [...stack.slice(stack.indexOf(d)), d];
        bad(`steps form a dependency cycle: ${cycle.join(' -> ')} ("x -> y": x runs after y)`, [...new Set(cycle)], 'steps');
      }
      if (!color.has(d)) visit(d);
    }
    stack.pop();
    color.set(n, 2);
  };
  for (const s of steps) if (!color.has(s.name)) visit(s.name);

  return {
    version: PIPELINE_SPEC_VERSION, name: r.name as string, artifactsUri: r.artifactsUri as string, steps,
    params: { ...(params as Record<string, string | number | boolean>) }, autostop: autostop as boolean,
  };
}

/** Reads a spec (file://, s3://, gs:// or a local path) and validates it. */
export async function loadPipelineSpec(uri: string, storage: Storage): Promise<{ spec: PipelineSpec; raw: unknown; uri: string }> {
  const full = /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : path.resolve(uri);
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mlinfra-spec-'));
  let text: string;
  try {
    const local = path.join(tmp, 'spec.json');
    await storage.get(full, local);
    text = await fs.promises.readFile(local, 'utf8');
  } catch (e) {
    throw new PipelineSpecError(`cannot read the pipeline spec ${uri}: ${(e as Error).message}`, [], 'spec', 'spec_unreadable');
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PipelineSpecError(`the pipeline spec ${uri} is not JSON: ${(e as Error).message}`, [], 'spec', 'spec_unreadable');
  }
  return { spec: validatePipelineSpec(raw), raw, uri: full };
}

// ---------------------------------------------------------------------------------------------------------
// The run

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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Runs a validated spec to the end (see README "run-pipeline"). Throws only when the run cannot start. */
export async function runPipeline(o: PipelineRunOptions): Promise<PipelineRunResult> {
  const r = await new PipelineRun(o).run();
  await reportRunEnd(o, r);
  return r;
}

/**
 * Tells the agent the run ended (`POST /v1/pipeline-runs`: its `mlinfra_pipeline_*` metrics). Best
 * effort: a failure (an older agent, a lost connection) is logged and changes nothing else.
 */
async function reportRunEnd(o: PipelineRunOptions, r: PipelineRunResult): Promise<void> {
  try {
    await new AgentClient(o.agentUrl, o.token).recordPipelineRun({ pipeline: r.pipeline, state: r.state, runId: r.runId, endedAt: r.endedAt });
  } catch (e) {
    o.logger.warn({ err: errMsg(e), agentUrl: o.agentUrl, runId: r.runId }, 'could not report the run to the agent metrics');
  }
}

class PipelineRun {
  private readonly spec: PipelineSpec;
  private readonly runId: string;
  private readonly runDir: string;
  private readonly store: ModelStore;
  private readonly local: AgentClient;
  private readonly records = new Map<string, StepRecord>();
  private readonly hash: string;
  private readonly pollMs: number;
  private metrics: Record<string, unknown> = {};
  private promoted: boolean | null = null;
  private readonly startedAt = new Date();

  constructor(private readonly o: PipelineRunOptions) {
    this.spec = o.spec;
    this.runId = o.runId ?? newRunId(this.startedAt);
    if (!RUN_ID_PATTERN.test(this.runId)) throw new PipelineSpecError(`run id must match ${RUN_ID_PATTERN.source}, got ${JSON.stringify(this.runId)}`, [], 'runId');
    this.runDir = path.resolve(o.workDir, this.spec.name, this.runId);
    this.store = new ModelStore(o.storage, this.spec.artifactsUri);
    this.local = new AgentClient(o.agentUrl, o.token);
    this.hash = specHash(o.rawSpec ?? o.spec);
    this.pollMs = o.pollMs ?? 200;
    for (const s of this.spec.steps) {
      this.records.set(s.name, {
        name: s.name, kind: s.kind, after: [...s.after], state: 'pending', jobId: null, attempts: 0, exitCode: null, failure: null,
        startedAt: null, endedAt: null,
      });
    }
  }

  private get log(): Logger {
    return this.o.logger;
  }

  private runJson(state: string, endedAt: string | null): Record<string, unknown> {
    return {
      runId: this.runId, pipeline: this.spec.name, state, startedAt: this.startedAt.toISOString(), endedAt, specUri: this.o.specUri ?? null,
      specHash: this.hash, codeVersion: this.o.codeVersion ?? null, dataVersion: this.o.dataVersion ?? null, agentUrl: this.o.agentUrl,
      host: os.hostname(), promoted: this.promoted,
    };
  }

  async run(): Promise<PipelineRunResult> {
    // Fail before anything is written when the agent is unreachable or refuses the token.
    await this.local.list('running');
    if (fs.existsSync(this.runDir)) throw new PipelineSpecError(`the run directory ${this.runDir} already exists: pick another --run-id`, [], 'runId');
    fs.mkdirSync(path.join(this.runDir, 'logs'), { recursive: true });
    fs.mkdirSync(path.join(this.runDir, 'model'), { recursive: true });
    // Recorded in the store at once, so `serve --pipeline-on-start` sees a run that is still going (or died).
    await this.store.writeJson(joinUri(this.store.runUri(this.runId), 'run.json'), this.runJson('running', null));
    this.log.info({ runId: this.runId, pipeline: this.spec.name, runDir: this.runDir }, 'pipeline run started');

    const running = new Map<string, Promise<void>>();
    for (;;) {
      let changed = true;
      while (changed) {
        changed = false;
        for (const s of this.spec.steps) {
          const rec = this.records.get(s.name)!;
          if (rec.state !== 'pending') continue;
          const blocked = s.after.find((d) => ['failed', 'skipped'].includes(this.records.get(d)!.state));
          if (blocked) {
            rec.state = 'skipped';
            rec.reason = `not run: step "${blocked}" ${this.records.get(blocked)!.state}`;
            this.o.onStep?.(rec);
            changed = true;
          } else if (s.after.every((d) => this.records.get(d)!.state === 'succeeded')) {
            rec.state = 'running';
            rec.startedAt = new Date().toISOString();
            this.o.onStep?.(rec);
            const p = this.execute(s, rec)
              .catch((e: unknown) => this.fail(rec, 'lost', `internal error: ${errMsg(e)}`))
              .finally(() => {
                running.delete(s.name);
                rec.endedAt ??= new Date().toISOString();
                this.log.info({ step: s.name, state: rec.state, jobId: rec.jobId, failure: rec.failure }, 'pipeline step ended');
                this.o.onStep?.(rec);
              });
            running.set(s.name, p);
            changed = true;
          }
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    return this.finish();
  }

  private fail(rec: StepRecord, cls: RunnerFailureClass, reason: string): void {
    rec.state = 'failed';
    rec.failure = { class: cls, reason };
  }

  private execute(s: PipelineStepSpec, rec: StepRecord): Promise<void> {
    return s.kind === 'run' ? this.runStep(s, rec) : this.deployIfBetter(s, rec);
  }

  private stepEnv(step: RunStepSpec): Record<string, string> {
    return {
      ...step.env,
      MLINFRA_RUN_ID: this.runId,
      MLINFRA_PIPELINE: this.spec.name,
      MLINFRA_STEP: step.name,
      MLINFRA_RUN_DIR: this.runDir,
      MLINFRA_PARAMS: canonicalJson(this.spec.params),
      MLINFRA_CODE_VERSION: this.o.codeVersion ?? '',
      MLINFRA_DATA_VERSION: this.o.dataVersion ?? '',
    };
  }

  /** Polls a job until it is terminal. Throws when the agent stays unreachable for `lostAfterMs`. */
  private async waitJob(client: AgentClient, id: string): Promise<JobJson> {
    let failingSince: number | null = null;
    for (;;) {
      try {
        const j = await client.get(id);
        failingSince = null;
        if (TERMINAL_STATES.includes(j.state as JobState)) return j;
      } catch (e) {
        if (e instanceof AgentError && e.statusCode < 500) throw e;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > (this.o.lostAfterMs ?? 120_000)) throw new Error(`lost contact with the agent while waiting for job ${id}: ${errMsg(e)}`);
      }
      await sleep(this.pollMs);
    }
  }

  private async follow(client: AgentClient, id: string, step: string): Promise<void> {
    if (!this.o.onLog) return;
    try {
      for await (const chunk of await client.logs(id, true)) this.o.onLog(step, Buffer.from(chunk).toString('utf8'));
    } catch (e) {
      this.log.debug({ err: e, step }, 'log follow ended');
    }
  }

  private async saveLog(client: AgentClient, id: string, file: string): Promise<void> {
    const out = path.join(this.runDir, 'logs', file);
    try {
      const chunks: Buffer[] = [];
      for await (const c of await client.logs(id, false)) chunks.push(Buffer.from(c));
      await fs.promises.writeFile(out, Buffer.concat(chunks));
    } catch (e) {
      await fs.promises.writeFile(out, `[mlinfra-agent run-pipeline: could not fetch the log of job ${id}: ${errMsg(e)}]\n`);
    }
  }

  private static applyJob(rec: StepRecord, j: JobJson): void {
    rec.state = j.state === 'succeeded' ? 'succeeded' : 'failed';
    rec.attempts = j.attempts;
    rec.exitCode = j.exitCode;
    rec.failure = j.state === 'succeeded' ? null : (j.failure ?? { class: j.state, reason: `the job ended ${j.state}` });
    const runs = j.runs as Array<{ startedAt?: string }> | undefined;
    rec.startedAt = runs?.[0]?.startedAt ?? (j.startedAt as string | null) ?? rec.startedAt;
    rec.endedAt = (j.endedAt as string | null) ?? new Date().toISOString();
  }

  private jobBody(step: RunStepSpec, env: Record<string, string>): Record<string, unknown> {
    return {
      name: `${this.spec.name}/${step.name}`.slice(0, 200), argv: [...step.argv], env, gpus: step.gpus, retries: step.retries,
      ...(step.timeoutSeconds !== undefined ? { timeoutSeconds: step.timeoutSeconds } : {}),
    };
  }

  private async runStep(step: RunStepSpec, rec: StepRecord): Promise<void> {
    const body = this.jobBody(step, this.stepEnv(step));
    let job: JobJson;
    try {
      job = await this.local.submit(body);
    } catch (e) {
      this.fail(rec, 'submit', `the agent refused the job: ${errMsg(e)}`);
      return;
    }
    rec.jobId = job.id;
    this.log.info({ step: step.name, jobId: job.id }, 'pipeline step submitted');
    const following = this.follow(this.local, job.id, step.name);
    let final: JobJson;
    try {
      final = await this.waitJob(this.local, job.id);
    } catch (e) {
      this.fail(rec, 'lost', errMsg(e));
      return;
    }
    PipelineRun.applyJob(rec, final);
    await Promise.race([following, sleep(2000)]);
    await this.saveLog(this.local, job.id, `${step.name}.log`);
    if (rec.state === 'failed' && final.failure?.class === 'oom' && step.onOom) await this.escalate(step, rec, body, final);
    this.mergeMetrics();
  }

  /** OOM on this cluster: run the step on the bigger cluster's agent (`onOom`). */
  private async escalate(step: RunStepSpec, rec: StepRecord, body: Record<string, unknown>, local: JobJson): Promise<void> {
    const oom = step.onOom!;
    const base = { agentUrl: oom.agentUrl, clusterName: oom.clusterName ?? null };
    const impossible = (why: string): void => {
      rec.escalatedTo = { ...base, jobId: null, state: 'not_submitted', attempts: 0, exitCode: null, failure: null, reason: why };
      rec.failure = { class: 'oom', reason: `${local.failure?.reason ?? 'out of memory'}; escalation to ${oom.agentUrl} failed: ${why}` };
    };
    let token: string | undefined;
    try {
      if (oom.tokenFile) token = fs.readFileSync(oom.tokenFile, 'utf8').trim();
      else if (oom.tokenEnv) token = (this.o.env ?? process.env)[oom.tokenEnv]?.trim();
    } catch (e) {
      impossible(`cannot read onOom.tokenFile: ${errMsg(e)}`);
      return;
    }
    if (!token) {
      impossible(oom.tokenFile || oom.tokenEnv ? `no token in ${oom.tokenFile ?? `$${oom.tokenEnv}`}` : 'onOom has neither tokenFile nor tokenEnv');
      return;
    }
    const runUri = this.store.runUri(this.runId);
    this.log.warn({ step: step.name, jobId: local.id, to: oom.agentUrl, reason: local.failure?.reason }, 'pipeline step ran out of memory: escalating');
    try {
      this.writeRunFiles('running');
      await this.store.uploadRun(this.runId, this.runDir);
    } catch (e) {
      impossible(`cannot upload the run directory to ${runUri}: ${errMsg(e)}`);
      return;
    }
    const remote = new AgentClient(oom.agentUrl, token);
    const env = { ...(body.env as Record<string, string>), MLINFRA_RUN_DIR_URI: runUri, MLINFRA_ESCALATED_FROM: local.id };
    let job: JobJson;
    try {
      job = await remote.submit({ ...body, env, artifactUri: joinUri(runUri, `escalated/${step.name}/`) });
    } catch (e) {
      impossible(`the agent refused the job: ${errMsg(e)}`);
      return;
    }
    const following = this.follow(remote, job.id, step.name);
    let final: JobJson;
    try {
      final = await this.waitJob(remote, job.id);
    } catch (e) {
      rec.escalatedTo = { ...base, jobId: job.id, state: 'lost', attempts: 0, exitCode: null, failure: null, reason: local.failure?.reason ?? 'oom' };
      this.fail(rec, 'lost', errMsg(e));
      return;
    }
    await Promise.race([following, sleep(2000)]);
    await this.saveLog(remote, job.id, `${step.name}.escalated.log`);
    rec.escalatedTo = {
      ...base, jobId: job.id, state: final.state, attempts: final.attempts, exitCode: final.exitCode, failure: final.failure,
      reason: local.failure?.reason ?? 'oom',
    };
    rec.state = final.state === 'succeeded' ? 'succeeded' : 'failed';
    rec.exitCode = final.exitCode;
    rec.failure = rec.state === 'succeeded' ? null : (final.failure ?? { class: final.state, reason: `the escalated job ended ${final.state}` });
    rec.endedAt = (final.endedAt as string | null) ?? new Date().toISOString();
  }

  /**
   * Steps merge their numbers into `$MLINFRA_RUN_DIR/metrics.json`; the runner reads it after every step
   * and keeps the union (the file wins for keys it has), so keys a step lost to a concurrent writer come back.
   */
  private mergeMetrics(): Record<string, unknown> {
    const file = path.join(this.runDir, 'metrics.json');
    try {
      const m = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (isObj(m)) this.metrics = { ...this.metrics, ...m };
      else this.log.warn({ file }, 'metrics.json is not a JSON object: ignored');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file, err: errMsg(e) }, 'metrics.json is not readable JSON: ignored');
    }
    return this.metrics;
  }

  private async deployIfBetter(step: DeployIfBetterStepSpec, rec: StepRecord): Promise<void> {
    const lines: string[] = [];
    const say = (s: string): void => {
      lines.push(`${new Date().toISOString()} ${s}`);
    };
    try {
      const metrics = this.mergeMetrics();
      const value = metrics[step.metric];
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        const keys = Object.keys(metrics);
        const why = value === undefined
          ? `metric "${step.metric}" is not in the run's metrics.json (keys: ${keys.length ? keys.join(', ') : 'none'})`
          : `metric "${step.metric}" in metrics.json is not a finite number: ${JSON.stringify(value)}`;
        this.fail(rec, 'metric', why);
        say(`failed: ${why}`);
        return;
      }
      let current: CurrentModel | undefined;
      try {
        current = await this.store.current();
      } catch (e) {
        this.fail(rec, 'promote', `cannot read ${this.store.currentUri}: ${errMsg(e)}`);
        say(`failed: ${rec.failure!.reason}`);
        return;
      }
      let promoted: boolean;
      let reason: string;
      const dir = step.higherIsBetter ? 'higher' : 'lower';
      if (!current) {
        promoted = true;
        reason = 'no current model';
      } else if (current.metric !== step.metric) {
        promoted = true;
        reason = `the current model (run ${current.runId}) was promoted on metric "${current.metric}", not "${step.metric}": not comparable`;
      } else {
        promoted = step.higherIsBetter ? value > current.value : value < current.value;
        reason = `${step.metric} ${value} vs current ${current.value} (run ${current.runId}), ${dir} is better: ${promoted ? 'better' : 'not better'}`;
      }
      const promotion: Promotion = {
        promoted, metric: step.metric, newValue: value, currentValue: current?.value ?? null, currentRunId: current?.runId ?? null,
        higherIsBetter: step.higherIsBetter, reason,
      };
      say(reason);
      if (promoted) {
        // The run's files are in the store before models/current points at them.
        this.promoted = true;
        this.writeRunFiles('running');
        await fs.promises.writeFile(path.join(this.runDir, 'promotion.json'), `${JSON.stringify(promotion, null, 2)}\n`);
        await this.store.uploadRun(this.runId, this.runDir);
        await this.store.promote(this.runId, step.metric, value, new Date());
        say(`promoted run ${this.runId}: ${this.store.currentUri}`);
      } else {
        this.promoted ??= false;
        await fs.promises.writeFile(path.join(this.runDir, 'promotion.json'), `${JSON.stringify(promotion, null, 2)}\n`);
        say(`not promoted: ${this.store.currentUri} still points at run ${current!.runId}`);
      }
      rec.state = 'succeeded';
      rec.reason = reason;
      this.log.info({ step: step.name, ...promotion }, 'promotion decided');
    } catch (e) {
      this.fail(rec, 'promote', errMsg(e));
      say(`failed: ${errMsg(e)}`);
    } finally {
      rec.endedAt = new Date().toISOString();
      await fs.promises.writeFile(path.join(this.runDir, 'logs', `${step.name}.log`), `${lines.join('\n')}\n`);
      this.o.onLog?.(step.name, `${lines.join('\n')}\n`);
    }
  }

  private stepsJson(): Record<string, StepRecord> {
    return Object.fromEntries(this.spec.steps.map((s) => [s.name, this.records.get(s.name)!]));
  }

  private writeRunFiles(state: string): void {
    const w = (name: string, text: string): void => fs.writeFileSync(path.join(this.runDir, name), text);
    const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
    w('params.json', json(this.spec.params));
    w('versions.json', json({ code: this.o.codeVersion ?? null, data: this.o.dataVersion ?? null }));
    w('spec.json', `${canonicalJson(this.o.rawSpec ?? this.spec, 2)}\n`);
    w('spec-hash.txt', `${this.hash}\n`);
    w('steps.json', json(this.stepsJson()));
    w('run.json', json(this.runJson(state, state === 'running' ? null : new Date().toISOString())));
  }

  private async finish(): Promise<PipelineRunResult> {
    const steps = this.stepsJson();
    let state: 'succeeded' | 'failed' = Object.values(steps).every((r) => r.state === 'succeeded') ? 'succeeded' : 'failed';
    // Only here, with no step running, does the runner write metrics.json (the merged union).
    fs.writeFileSync(path.join(this.runDir, 'metrics.json'), `${JSON.stringify(this.mergeMetrics(), null, 2)}\n`);
    this.writeRunFiles(state);
    let uploadError: string | undefined;
    try {
      await this.store.uploadRun(this.runId, this.runDir);
    } catch (e) {
      uploadError = `cannot upload the run directory to ${this.store.runUri(this.runId)}: ${errMsg(e)}`;
      state = 'failed';
      this.log.error({ err: errMsg(e) }, 'run upload failed');
    }
    const endedAt = new Date().toISOString();
    this.log.info({ runId: this.runId, state, promoted: this.promoted }, 'pipeline run ended');
    return {
      runId: this.runId, pipeline: this.spec.name, state, runDir: this.runDir, runUri: this.store.runUri(this.runId), specHash: this.hash,
      steps, promoted: this.promoted, startedAt: this.startedAt.toISOString(), endedAt, ...(uploadError ? { uploadError } : {}),
    };
  }
}

/** The one line `run-pipeline` prints on stdout. */
export function runSummary(r: PipelineRunResult): Record<string, unknown> {
  return {
    runId: r.runId, pipeline: r.pipeline, state: r.state, steps: Object.fromEntries(Object.entries(r.steps).map(([k, v]) => [k, v.state])),
    promoted: r.promoted, runUri: r.runUri, ...(r.uploadError ? { uploadError: r.uploadError } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// serve --pipeline-on-start

export interface OnStartOptions {
  readonly specUris: readonly string[];
  /** Called with each loaded spec's name before any run, e.g. to create its metric series at 0. */
  readonly onSpecLoaded?: (pipeline: string) => void;
  readonly minIntervalMinutes: number;
  readonly agentUrl: string;
  readonly token: string;
  readonly workDir: string;
  readonly storage: Storage;
  readonly logger: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

export type OnStartOutcome =
  | { readonly specUri: string; readonly outcome: 'ran'; readonly summary: Record<string, unknown> }
  | { readonly specUri: string; readonly outcome: 'skipped'; readonly latestRunId: string; readonly minutesAgo: number }
  | { readonly specUri: string; readonly outcome: 'error'; readonly error: string };

/**
 * Runs each pipeline once (concurrently), unless its latest run under `<artifactsUri>/runs/` started
 * less than `minIntervalMinutes` ago. Never throws: outcomes are logged and returned.
 */
export async function runPipelinesOnStart(o: OnStartOptions): Promise<OnStartOutcome[]> {
  return Promise.all(o.specUris.map(async (specUri): Promise<OnStartOutcome> => {
    const log = o.logger.child({ specUri });
    try {
      const { spec, raw, uri } = await loadPipelineSpec(specUri, o.storage);
      o.onSpecLoaded?.(spec.name);
      const latest = await new ModelStore(o.storage, spec.artifactsUri).latestRunStart();
      if (latest) {
        const minutesAgo = (Date.now() - latest.startedAt) / 60_000;
        if (minutesAgo < o.minIntervalMinutes) {
          log.info({ pipeline: spec.name, latestRunId: latest.runId, minutesAgo: Number(minutesAgo.toFixed(2)) }, 'pipeline on start: skipped, ran recently');
          return { specUri, outcome: 'skipped', latestRunId: latest.runId, minutesAgo };
        }
      }
      log.info({ pipeline: spec.name }, 'pipeline on start: running');
      const r = await runPipeline({
        spec, rawSpec: raw, specUri: uri, agentUrl: o.agentUrl, token: o.token, workDir: o.workDir, storage: o.storage, logger: log, env: o.env,
        codeVersion: o.env?.MLINFRA_CODE_VERSION || null, dataVersion: o.env?.MLINFRA_DATA_VERSION || null,
      });
      const summary = runSummary(r);
      (r.state === 'succeeded' ? log.info.bind(log) : log.error.bind(log))({ summary }, `pipeline on start: run ${r.state}`);
      return { specUri, outcome: 'ran', summary };
    } catch (e) {
      log.error({ err: errMsg(e) }, 'pipeline on start: could not run');
      return { specUri, outcome: 'error', error: errMsg(e) };
    }
  }));
}
