/** A run step that ran out of memory on this cluster, run again on the bigger cluster's agent (`onOom`). */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { AgentClient, type JobJson } from './client';
import type { StepJobs } from './pipeline-jobs';
import type { RunStepSpec } from './pipeline-spec';
import type { RunnerFailureClass, StepRecord } from './pipeline-types';
import { joinUri } from './storage/index';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** What escalation needs from the run. */
export interface EscalateContext {
  readonly env: NodeJS.ProcessEnv | undefined;
  readonly runUri: string;
  readonly log: Logger;
  readonly jobs: StepJobs;
  /** Writes the run's files and uploads the run directory (the remote step reads it there). */
  readonly upload: () => Promise<void>;
}

function fail(rec: StepRecord, cls: RunnerFailureClass, reason: string): void {
  rec.state = 'failed';
  rec.failure = { class: cls, reason };
}

/** OOM on this cluster: run the step on the bigger cluster's agent (`onOom`). */
export async function escalateStep(c: EscalateContext, step: RunStepSpec, rec: StepRecord, body: Record<string, unknown>, local: JobJson): Promise<void> {
  const oom = step.onOom!;
  const base = { agentUrl: oom.agentUrl, clusterName: oom.clusterName ?? null };
  const impossible = (why: string): void => {
    rec.escalatedTo = { ...base, jobId: null, state: 'not_submitted', attempts: 0, exitCode: null, failure: null, reason: why };
    rec.failure = { class: 'oom', reason: `${local.failure?.reason ?? 'out of memory'}; escalation to ${oom.agentUrl} failed: ${why}` };
  };
  let token: string | undefined;
  try {
    if (oom.tokenFile) token = fs.readFileSync(oom.tokenFile, 'utf8').trim();
    else if (oom.tokenEnv) token = (c.env ?? process.env)[oom.tokenEnv]?.trim();
  } catch (e) {
    impossible(`cannot read onOom.tokenFile: ${errMsg(e)}`);
    return;
  }
  if (!token) {
    impossible(oom.tokenFile || oom.tokenEnv ? `no token in ${oom.tokenFile ?? `$${oom.tokenEnv}`}` : 'onOom has neither tokenFile nor tokenEnv');
    return;
  }
  const runUri = c.runUri;
  c.log.warn({ step: step.name, jobId: local.id, to: oom.agentUrl, reason: local.failure?.reason }, 'pipeline step ran out of memory: escalating');
  try {
    await c.upload();
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
  const following = c.jobs.follow(remote, job.id, step.name);
  let final: JobJson;
  try {
    final = await c.jobs.waitJob(remote, job.id);
  } catch (e) {
    rec.escalatedTo = { ...base, jobId: job.id, state: 'lost', attempts: 0, exitCode: null, failure: null, reason: local.failure?.reason ?? 'oom' };
    fail(rec, 'lost', errMsg(e));
    return;
  }
  await Promise.race([following, sleep(2000)]);
  await c.jobs.saveLog(remote, job.id, `${step.name}.escalated.log`);
  rec.escalatedTo = {
    ...base, jobId: job.id, state: final.state, attempts: final.attempts, exitCode: final.exitCode, failure: final.failure,
    reason: local.failure?.reason ?? 'oom',
  };
  rec.state = final.state === 'succeeded' ? 'succeeded' : 'failed';
  rec.exitCode = final.exitCode;
  rec.failure = rec.state === 'succeeded' ? null : (final.failure ?? { class: final.state, reason: `the escalated job ended ${final.state}` });
  rec.endedAt = (final.endedAt as string | null) ?? new Date().toISOString();
}
