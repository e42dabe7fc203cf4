/**
 * `mlinfra-agent run-pipeline`: reads a TrainingPipeline spec (pipeline-spec.ts, the contract), runs its
 * DAG as jobs of an agent, promotes the model when a `deployIfBetter` step says so, and records the run
 * (`<artifactsUri>/runs/<run-id>/`, uploaded after every step that succeeds). Also run in-process for the
 * cluster queue's pipeline-run messages (pipeline-on-start.ts), where a run whose host died is resumed
 * (pipeline-resume.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentClient, type JobJson } from './client';
import { ModelStore, type CurrentModel } from './model-store';
import { registerRun, syncRegistryEndpoints, type RegistryOutcome } from './registry/promotion';
import { StepJobs, stepJobBody } from './pipeline-jobs';
import { escalateStep } from './pipeline-escalate';
import { applyResume, promotedBefore, restoreRun, type ResumeOptions, type ResumeRecord, type RestoredRun } from './pipeline-resume';
import { isGangStep, runGangStep, type GangStepContext } from './pipeline-gang';
import { RunDirSync } from './k8s/step-files';
import { newRunId, RUN_ID_PATTERN } from './pipeline-load';
import {
  canonicalJson, PipelineSpecError, specHash,
  type DeployIfBetterStepSpec, type PipelineSpec, type PipelineStepSpec, type RunStepSpec,
} from './pipeline-spec';
import type { PipelineRunOptions, PipelineRunResult, Promotion, RunnerFailureClass, StepRecord } from './pipeline-types';
import { joinUri } from './storage/index';

// The engine's neighbours, re-exported: callers import the pipeline from one place
export { canonicalJson, PIPELINE_NAME, PipelineSpecError, specHash, validatePipelineSpec } from './pipeline-spec';
export { loadPipelineSpec, newRunId, RUN_ID_PATTERN } from './pipeline-load';
export { runPipelinesOnStart, type OnStartOptions, type OnStartOutcome } from './pipeline-on-start';
export { runSummary, type PipelineRunOptions, type PipelineRunResult, type Promotion, type RunnerFailureClass, type StepEscalation, type StepRecord } from './pipeline-types';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Runs a validated spec to the end (see README "run-pipeline"). Throws only when the run cannot start. */
export async function runPipeline(o: PipelineRunOptions & ResumeOptions): Promise<PipelineRunResult> {
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
  private readonly jobs: StepJobs;
  private readonly files: RunDirSync | undefined;
  private metrics: Record<string, unknown> = {};
  private promoted: boolean | null = null;
  private startedAt = new Date();
  private resumes: ResumeRecord[] = [];

  constructor(private readonly o: PipelineRunOptions & ResumeOptions) {
    this.spec = o.spec;
    this.runId = o.runId ?? newRunId(this.startedAt);
    if (!RUN_ID_PATTERN.test(this.runId)) throw new PipelineSpecError(`run id must match ${RUN_ID_PATTERN.source}, got ${JSON.stringify(this.runId)}`, [], 'runId');
    this.runDir = path.resolve(o.workDir, this.spec.name, this.runId);
    this.store = new ModelStore(o.storage, this.spec.artifactsUri);
    this.files = RunDirSync.fromEnv(o.env ?? process.env, o.storage, this.spec.artifactsUri, this.runId, this.runDir, this.store.runUri(this.runId), this.spec.steps,
      () => this.store.uploadRun(this.runId, this.runDir));
    this.local = new AgentClient(o.agentUrl, o.token);
    this.hash = specHash(o.rawSpec ?? o.spec);
    this.jobs = new StepJobs({ pollMs: o.pollMs ?? 200, lostAfterMs: o.lostAfterMs ?? 120_000, runDir: this.runDir, logger: o.logger, onLog: o.onLog });
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
      host: os.hostname(), promoted: this.promoted, ...(this.resumes.length ? { resumes: this.resumes } : {}),
    };
  }

  async run(): Promise<PipelineRunResult> {
    // Fail before anything is written when the agent is unreachable or refuses the token.
    await this.local.list('running');
    // A resumed run (its host died) comes back from the bucket: succeeded steps are kept, not run again.
    const prior = this.o.resume ? await restoreRun(this.o.storage, this.store.runUri(this.runId), this.runDir) : undefined;
    if (!this.o.resume && fs.existsSync(this.runDir)) throw new PipelineSpecError(`the run directory ${this.runDir} already exists: pick another --run-id`, [], 'runId');
    fs.mkdirSync(path.join(this.runDir, 'logs'), { recursive: true });
    fs.mkdirSync(path.join(this.runDir, 'model'), { recursive: true });
    if (prior) {
      const ended = this.resume(prior);
      if (ended) return ended;
    }
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
              .then(() => this.checkpoint(rec))
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

  /** Takes over what the bucket held of the run; returns the recorded result when the run had already ended. */
  private resume(prior: RestoredRun): PipelineRunResult | undefined {
    this.startedAt = prior.startedAt ? new Date(prior.startedAt) : this.startedAt;
    this.promoted = prior.promoted;
    if (prior.endedAt && (prior.state === 'succeeded' || prior.state === 'failed')) {
      // it ended, but its host died before the queue heard: nothing runs (or promotes) again
      this.log.info({ runId: this.runId, state: prior.state }, 'pipeline run had already ended: not resumed');
      return {
        runId: this.runId, pipeline: this.spec.name, state: prior.state, runDir: this.runDir, runUri: this.store.runUri(this.runId), specHash: this.hash,
        steps: prior.steps, promoted: prior.promoted, startedAt: this.startedAt.toISOString(), endedAt: prior.endedAt,
      };
    }
    const r = applyResume(this.records, prior, this.o.resume!, os.hostname());
    this.resumes = [...prior.resumes, r];
    this.log.warn({ runId: this.runId, from: r.previousHost, skipped: r.skipped, rerun: r.rerun }, 'pipeline run resumed: steps that succeeded are not run again');
    return undefined;
  }

  /** Writes the run's files and uploads the run directory to `runs/<run-id>/`. */
  private async upload(): Promise<void> {
    this.writeRunFiles('running');
    await this.store.uploadRun(this.runId, this.runDir);
  }

  /** After a step succeeds, the bucket holds it (and its files): a resume on another host skips it. */
  private async checkpoint(rec: StepRecord): Promise<void> {
    if (rec.state !== 'succeeded') return;
    rec.endedAt ??= new Date().toISOString();
    try {
      await this.upload();
    } catch (e) {
      this.log.warn({ step: rec.name, err: errMsg(e) }, 'run directory not uploaded after the step: a resume would run it again');
    }
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

  private gangContext(): GangStepContext {
    const upload = (): Promise<void> => this.upload();
    return { ...this.o, runDir: this.runDir, runUri: this.store.runUri(this.runId), pollMs: this.o.pollMs ?? 200, lostAfterMs: this.o.lostAfterMs ?? 120_000, log: this.log, upload };
  }

  private async runStep(step: RunStepSpec, rec: StepRecord): Promise<void> {
    const body = stepJobBody(this.spec.name, step, { ...this.stepEnv(step), ...await this.files?.before(step.name) });
    if (isGangStep(step) && await runGangStep(this.gangContext(), step, body, rec)) {
      this.mergeMetrics();
      return;
    }
    let job: JobJson;
    try {
      job = await this.local.submit(body);
    } catch (e) {
      this.fail(rec, 'submit', `the agent refused the job: ${errMsg(e)}`);
      return;
    }
    rec.jobId = job.id;
    this.log.info({ step: step.name, jobId: job.id }, 'pipeline step submitted');
    const following = this.jobs.follow(this.local, job.id, step.name);
    let final: JobJson;
    try {
      final = await this.jobs.waitJob(this.local, job.id);
    } catch (e) {
      this.fail(rec, 'lost', errMsg(e));
      return;
    }
    StepJobs.applyJob(rec, final);
    await Promise.race([following, sleep(2000)]);
    await this.jobs.saveLog(this.local, job.id, `${step.name}.log`);
    if (rec.state === 'failed' && final.failure?.class === 'oom' && step.onOom) await escalateStep({ env: this.o.env, runUri: this.store.runUri(this.runId), log: this.log, jobs: this.jobs, upload: () => this.upload() }, step, rec, body, final);
    if (rec.state === 'succeeded') await this.files?.after(step.name);
    this.mergeMetrics();
  }

  /**
   * Steps merge their numbers into `$MLINFRA_RUN_DIR/metrics.json`; the runner reads it after every step
   * and keeps the union (the file wins for keys it has), so keys a step lost to a concurrent writer come back.
   */
  private mergeMetrics(): Record<string, unknown> {
    const file = path.join(this.runDir, 'metrics.json');
    try {
      const m = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (m !== null && typeof m === 'object' && !Array.isArray(m)) this.metrics = { ...this.metrics, ...m };
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
      const before = this.resumes.length ? await promotedBefore(this.store, this.o.storage, this.spec.name, this.runId, step.metric, value) : undefined;
      if (before) {
        this.promoted = true;
        rec.state = 'succeeded';
        rec.reason = before;
        say(before);
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
        // The registry first: the version rolls out to the endpoints before any pointer moves.
        const registered = await this.register(metrics, reason, say);
        if (registered && 'error' in registered) {
          await fs.promises.writeFile(path.join(this.runDir, 'promotion.json'), `${JSON.stringify({ ...promotion, promoted: false, registry: registered }, null, 2)}\n`);
          this.fail(rec, 'promote', registered.error);
          return;
        }
        // The run's files are in the store before models/current points at them.
        this.promoted = true;
        this.writeRunFiles('running');
        await fs.promises.writeFile(path.join(this.runDir, 'promotion.json'), `${JSON.stringify({ ...promotion, ...(registered ? { registry: registered } : {}) }, null, 2)}\n`);
        await this.store.uploadRun(this.runId, this.runDir);
        await this.store.promote(this.runId, step.metric, value, new Date());
        say(`promoted run ${this.runId}: ${this.store.currentUri}`);
      } else {
        this.promoted ??= false;
        await fs.promises.writeFile(path.join(this.runDir, 'promotion.json'), `${JSON.stringify(promotion, null, 2)}\n`);
        say(`not promoted: ${this.store.currentUri} still points at run ${current!.runId}`);
        // an endpoint added since the last promotion serves nothing until it gets the current version
        await syncRegistryEndpoints({ storage: this.o.storage, artifactsUri: this.spec.artifactsUri, pipeline: this.spec.name, say });
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

  private register(metrics: Record<string, unknown>, reason: string, say: (s: string) => void): Promise<RegistryOutcome | null> {
    return registerRun({
      storage: this.o.storage, artifactsUri: this.spec.artifactsUri, pipeline: this.spec.name, runId: this.runId,
      modelDir: path.join(this.runDir, 'model'), source: `${this.store.runUri(this.runId)}model/`, metrics, reason, say,
      codeVersion: this.o.codeVersion ?? null, dataVersion: this.o.dataVersion ?? null, pipelineSpecHash: this.hash,
    });
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
