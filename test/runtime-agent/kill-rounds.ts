/** Random kill -9 rounds against one data dir: the shared body of the fast and the slow fault suites. */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, startAgent, tmpDir, TERMINAL, waitFor, type AgentHandle } from './helpers';

export interface RoundsResult {
  readonly rounds: number;
  readonly accepted: number;
  /** Accepted (201) jobs the journal no longer has. */
  readonly lost: number;
  /** Jobs with more than one run recorded `succeeded`: a completion recorded twice. */
  readonly duplicatedCompletions: number;
  /** Jobs whose command ran more than once: with run supervisors, a kill of the agent never re-runs a job. */
  readonly ranMoreThanOnce: number;
  /** Runs recorded `interrupted` by a restart: only runs killed before their spawn (re-queued without a retry). */
  readonly interruptedRuns: number;
  /** Agents that exited before the test killed them. */
  readonly crashes: number;
  readonly states: Record<string, number>;
}

/**
 * Each round starts the agent on the same data dir, submits `jobsPerRound` short jobs from 8
 * concurrent clients (each with an Idempotency-Key, retried on a refused connection), and kills
 * the agent with SIGKILL at a random moment (0-700 ms after `minPerRound` were accepted). A last
 * agent runs everything to the end.
 */
export async function killRounds(rounds: number, jobsPerRound: number, seed = 1, minPerRound = Math.floor(jobsPerRound / 3)): Promise<RoundsResult> {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const dataDir = tmpDir();
  const marks = tmpDir();
  const args = ['--max-cpu-jobs', '4', '--grace-seconds', '1'];
  const accepted = new Set<string>();
  let crashes = 0;
  for (let round = 0; round < rounds; round++) {
    const a: AgentHandle = await startAgent({ dataDir, args });
    let killed = false;
    void a.exited().then(() => {
      if (!killed) crashes++;
    });
    let next = 0;
    let acceptedThisRound = 0;
    const client = async (): Promise<void> => {
      while (next < jobsPerRound && !killed) {
        next++;
        const key = randomUUID();
        const ms = Math.floor(rnd() * 150);
        const body = { argv: ['sh', '-c', `echo "$MLINFRA_ATTEMPT" >> ${marks}/$MLINFRA_JOB_ID; sleep ${ms / 1000}`], retries: 3 };
        try {
          const r = await a.api('POST', '/v1/jobs', body, { 'idempotency-key': key });
          if (r.status === 201 || r.status === 200) {
            accepted.add(r.json.id as string);
            acceptedThisRound++;
          }
        } catch {
          // the agent was killed while this submit was in flight: not accepted
        }
      }
    };
    const clients = Promise.all(Array.from({ length: 8 }, client));
    // a loaded machine answers slowly: let some jobs in first, so every round kills with jobs queued and running
    await waitFor('jobs accepted this round', () => acceptedThisRound >= minPerRound || next >= jobsPerRound, 60_000, 10);
    await sleep(Math.floor(rnd() * 700));
    killed = true;
    await a.kill('SIGKILL');
    await clients;
  }
  const last = await startAgent({ dataDir, args });
  const list = await waitFor('every accepted job terminal', async () => {
    const jobs = (await last.api('GET', '/v1/jobs?limit=100000')).json.jobs as Array<{ id: string; state: string }>;
    return jobs.filter((j) => TERMINAL.includes(j.state)).length === jobs.length ? jobs : undefined;
  }, 120_000, 250);
  const byId = new Map(list.map((j) => [j.id, j]));
  let duplicatedCompletions = 0;
  let ranMoreThanOnce = 0;
  let interruptedRuns = 0;
  for (const id of accepted) {
    const full = await last.job(id);
    interruptedRuns += (full.runs as Array<{ outcome: string }>).filter((r) => r.outcome === 'interrupted').length;
    if ((full.runs as Array<{ outcome: string }>).filter((r) => r.outcome === 'succeeded').length > 1) duplicatedCompletions++;
    const file = path.join(marks, id);
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim().split('\n').length > 1) ranMoreThanOnce++;
  }
  const states: Record<string, number> = {};
  for (const j of list) states[j.state] = (states[j.state] ?? 0) + 1;
  await last.kill('SIGTERM');
  return {
    rounds, accepted: accepted.size, lost: [...accepted].filter((id) => !byId.has(id)).length,
    duplicatedCompletions, ranMoreThanOnce, interruptedRuns, crashes, states,
  };
}
