/**
 * `mlinfra-agent run-pipeline`: reads a TrainingPipeline spec (pipeline-spec.ts, the contract), runs its
 * DAG as jobs of an agent, promotes the model when a `deployIfBetter` step says so, and records the run
 * (`<artifactsUri>/runs/<run-id>/`). Also used in-process by `serve --pipeline-on-start`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentClient, type JobJson } from './client';
import { ModelStore, type CurrentModel } from './model-store';
import { registerRun, type RegistryOutcome } from './registry/promotion';
import { StepJobs } from './pipeline-jobs';
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
  private readonly jobs: StepJobs;
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
    const following = this.jobs.follow(remote, job.id, step.name);
    let final: JobJson;
    try {
      final = await this.jobs.waitJob(remote, job.id);
    } catch (e) {
      rec.escalatedTo = { ...base, jobId: job.id, state: 'lost', attempts: 0, exitCode: null, failure: null, reason: local.failure?.reason ?? 'oom' };
      this.fail(rec, 'lost', errMsg(e));
      return;
    }
    await Promise.race([following, sleep(2000)]);
    await this.jobs.saveLog(remote, job.id, `${step.name}.escalated.log`);
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
