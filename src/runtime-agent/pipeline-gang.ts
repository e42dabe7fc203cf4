/**
 * A pipeline step with `nodes` > 1 on an agent cluster: submitted as a gang (POST /v1/cluster/gangs,
 * cluster/gang.ts) and waited on. Its nodes are other hosts, so the step reads and writes the bucket:
 * the run directory so far is uploaded first (MLINFRA_RUN_URI names it), and what the ranks wrote there
 * comes back into the local run directory after a success, for later steps and the run's metrics.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { AgentError } from './errors';
import type { RunStepSpec } from './pipeline-spec';
import type { StepRecord } from './pipeline-types';
import type { Storage } from './storage/index';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

export interface GangStepContext {
  readonly agentUrl: string;
  readonly token: string;
  readonly storage: Storage;
  readonly runDir: string;
  readonly runUri: string;
  readonly pollMs: number;
  readonly lostAfterMs: number;
  readonly log: Logger;
  /** Writes the run's files so far and uploads the run directory to `runUri`. */
  readonly upload: () => Promise<void>;
}

interface GangJson {
  id: string;
  state: string;
  attempt: number;
  attempts: Array<{ attempt: number; rankJobs: string[]; outcome?: string; reason?: string }>;
  failure: { class: string; reason: string } | null;
}

/** True when the step is a gang (nodes > 1). */
export const isGangStep = (step: RunStepSpec): boolean => (step.nodes ?? 1) > 1;

/**
 * Runs the step as a gang. Returns false when the agent has no gang route (a Kubernetes gateway, which
 * takes `nodes` on /v1/jobs, or an agent without `--queue`): the caller submits it as a job then.
 */
export async function runGangStep(c: GangStepContext, step: RunStepSpec, body: Record<string, unknown>, rec: StepRecord): Promise<boolean> {
  const call = async (method: string, p: string, json?: unknown): Promise<string> => {
    const res = await fetch(`${c.agentUrl.replace(/\/+$/, '')}${p}`, {
      method, headers: { authorization: `Bearer ${c.token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await res.text();
    if (!res.ok) {
      let err: { code?: string; message?: string; field?: string } = {};
      try {
        err = (JSON.parse(text) as { error?: typeof err }).error ?? {};
      } catch {
        // not JSON
      }
      throw new AgentError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`, err.field);
    }
    return text;
  };
  // does this agent have the gang route? (its own 404 says "no gang"; a gateway's or a plain agent's does not)
  const probe = await call('GET', '/v1/cluster/gangs/probe').then(() => true, (e: unknown) => e instanceof AgentError && e.statusCode === 404 && e.message.startsWith('no gang'));
  if (!probe) return false;
  try {
    await c.upload();
  } catch (e) {
    fail(rec, 'submit', `cannot upload the run directory to ${c.runUri} for a ${step.nodes}-node step: ${errMsg(e)}`);
    return true;
  }
  const env: Record<string, string> = { ...(body.env as Record<string, string>), MLINFRA_RUN_URI: c.runUri };
  // MLINFRA_RUN_DIR is a path on the runner's host, not on the gang's
  delete env.MLINFRA_RUN_DIR;
  let g: GangJson;
  try {
    g = JSON.parse(await call('POST', '/v1/cluster/gangs', { ...body, gpus: undefined, env, nodes: step.nodes, gpusPerNode: step.gpusPerNode ?? step.gpus })) as GangJson;
  } catch (e) {
    fail(rec, 'submit', `the agent refused the ${step.nodes}-node step: ${errMsg(e)}`);
    return true;
  }
  rec.jobId = g.id;
  c.log.info({ step: step.name, gangId: g.id, nodes: step.nodes }, 'pipeline step submitted as a gang');
  let failingSince: number | null = null;
  while (!TERMINAL.includes(g.state)) {
    await sleep(c.pollMs);
    try {
      g = JSON.parse(await call('GET', `/v1/cluster/gangs/${g.id}`)) as GangJson;
      failingSince = null;
    } catch (e) {
      if (e instanceof AgentError && e.statusCode < 500) {
        fail(rec, 'lost', `gang ${g.id}: ${errMsg(e)}`);
        return true;
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > c.lostAfterMs) {
        fail(rec, 'lost', `lost contact with the agent while waiting for gang ${g.id}: ${errMsg(e)}`);
        return true;
      }
    }
  }
  rec.state = g.state === 'succeeded' ? 'succeeded' : 'failed';
  rec.attempts = g.attempts.length;
  rec.exitCode = g.state === 'succeeded' ? 0 : null;
  rec.failure = g.state === 'succeeded' ? null : (g.failure ?? { class: g.state, reason: `the gang ended ${g.state}` });
  rec.endedAt = new Date().toISOString();
  // the ranks' logs, in rank order per attempt
  let log = '';
  for (const a of g.attempts) {
    for (const [i, j] of a.rankJobs.entries()) {
      const text = await call('GET', `/v1/cluster/jobs/${j}/logs`).catch((e: unknown) => `[could not fetch: ${errMsg(e)}]`);
      log += `==> gang ${g.id} attempt ${a.attempt} node ${i} (job ${j}) <==\n${text}\n`;
    }
  }
  if (rec.state === 'succeeded') {
    try {
      await c.storage.getDir(c.runUri, c.runDir);
    } catch (e) {
      fail(rec, 'lost', `the ${step.nodes}-node step succeeded but its outputs under ${c.runUri} could not be read back: ${errMsg(e)}`);
    }
  }
  await fs.promises.mkdir(path.join(c.runDir, 'logs'), { recursive: true });
  await fs.promises.writeFile(path.join(c.runDir, 'logs', `${step.name}.log`), log);
  return true;
}

function fail(rec: StepRecord, cls: string, reason: string): void {
  Object.assign(rec, { state: 'failed', failure: { class: cls, reason }, endedAt: new Date().toISOString() });
}
