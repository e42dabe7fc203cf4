import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { AgentClient, JobJson } from './client';
import { AgentError } from './errors';
import type { RunStepSpec } from './pipeline-spec';
import type { StepRecord } from './pipeline-types';
import { TERMINAL_STATES, type JobState } from './types';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export interface StepJobsOptions {
  readonly pollMs: number;
  /** A job whose agent does not answer for this long is lost. */
  readonly lostAfterMs: number;
  /** The run directory: step logs are saved under `logs/`. */
  readonly runDir: string;
  readonly logger: Logger;
  readonly onLog?: (step: string, text: string) => void;
}

/** A pipeline step's job on an agent (the pipeline's own, or the one it escalates to): waited on, followed, its log saved. */
export class StepJobs {
  constructor(private readonly o: StepJobsOptions) {}

  async waitJob(client: AgentClient, id: string): Promise<JobJson> {
    let failingSince: number | null = null;
    for (;;) {
      try {
        const j = await client.get(id);
        failingSince = null;
        if (TERMINAL_STATES.includes(j.state as JobState)) return j;
      } catch (e) {
        if (e instanceof AgentError && e.statusCode < 500) throw e;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > (this.o.lostAfterMs)) throw new Error(`lost contact with the agent while waiting for job ${id}: ${errMsg(e)}`);
      }
      await sleep(this.o.pollMs);
    }
  }

  async follow(client: AgentClient, id: string, step: string): Promise<void> {
    if (!this.o.onLog) return;
    try {
      for await (const chunk of await client.logs(id, true)) this.o.onLog(step, Buffer.from(chunk).toString('utf8'));
    } catch (e) {
      this.o.logger.debug({ err: e, step }, 'log follow ended');
    }
  }

  async saveLog(client: AgentClient, id: string, file: string): Promise<void> {
    const out = path.join(this.o.runDir, 'logs', file);
    try {
      const chunks: Buffer[] = [];
      for await (const c of await client.logs(id, false)) chunks.push(Buffer.from(c));
      await fs.promises.writeFile(out, Buffer.concat(chunks));
    } catch (e) {
      await fs.promises.writeFile(out, `[mlinfra-agent run-pipeline: could not fetch the log of job ${id}: ${errMsg(e)}]\n`);
    }
  }

  static applyJob(rec: StepRecord, j: JobJson): void {
    rec.state = j.state === 'succeeded' ? 'succeeded' : 'failed';
    rec.attempts = j.attempts;
    rec.exitCode = j.exitCode;
    rec.failure = j.state === 'succeeded' ? null : (j.failure ?? { class: j.state, reason: `the job ended ${j.state}` });
    const runs = j.runs as Array<{ startedAt?: string }> | undefined;
    rec.startedAt = runs?.[0]?.startedAt ?? (j.startedAt as string | null) ?? rec.startedAt;
    rec.endedAt = (j.endedAt as string | null) ?? new Date().toISOString();
  }
}

/** The agent job body of a run step. A multi-node step also carries `nodes`/`gpusPerNode` (a Kubernetes gateway runs it as a JobSet). */
export function stepJobBody(pipeline: string, step: RunStepSpec, env: Record<string, string>): Record<string, unknown> {
  return {
    name: `${pipeline}/${step.name}`.slice(0, 200), argv: [...step.argv], env, gpus: step.gpus, retries: step.retries,
    ...(step.timeoutSeconds !== undefined ? { timeoutSeconds: step.timeoutSeconds } : {}),
    ...((step.nodes ?? 1) > 1 ? { nodes: step.nodes, gpusPerNode: step.gpusPerNode ?? step.gpus } : {}),
  };
}
