/**
 * Multi-node (gang) jobs: three agents on loopback share one cluster queue (the SQS fake) and one
 * bucket (file://) and run a real torch.distributed job (gloo on CPU, /usr/bin/python3 -m
 * torch.distributed.run): every rank reports its rank and world size, and an all-reduce gives the
 * right sum. A host killed mid-job stops every rank and the gang re-queues whole and resumes from its
 * checkpoints; a gang that cannot get its hosts times out and holds nothing afterwards.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, startAgent, tmpDir, waitFor, type AgentHandle } from './helpers';
import { readJson, runCli, writeSpec } from './pipeline-helpers';
import { clusterFlags, sqsForFile, type QueueFixture } from './queue-helpers';
import { describeWithTools, TOOLS } from '../support/tools';

const SCRIPT = path.join(FIXTURES, 'gang_allreduce.py');
const sqs = sqsForFile();
let n = 0;

function clusterArgs(q: QueueFixture, bucket: string): string[] {
  return clusterFlags(q, bucket, '--checkpoint-seconds', '0.5', '--log-ship-seconds', '0.5', '--max-attempts', '4', '--max-cpu-jobs', '2');
}

async function hosts(count: number, q: QueueFixture, bucket: string): Promise<AgentHandle[]> {
  const out: AgentHandle[] = [];
  for (let i = 0; i < count; i++) out.push(await startAgent({ args: clusterArgs(q, bucket), env: { ...q.env, MLINFRA_GANG_ADDRESS: '127.0.0.1' } }));
  started.push(...out);
  return out;
}

const started: AgentHandle[] = [];

async function waitGang(a: AgentHandle, id: string, states: string[], timeoutMs: number, bucket?: string): Promise<any> {
  let last: unknown;
  try {
    return await waitFor(`gang ${id} in ${states.join('|')}`, async () => {
      const r = await a.api('GET', `/v1/cluster/gangs/${id}`);
      last = r.json;
      return r.status === 200 && states.includes(r.json.state) ? r.json : undefined;
    }, timeoutMs, 200);
  } catch (e) {
    // what each host saw: a hang is otherwise a bare timeout
    const files = bucket ? fs.readdirSync(path.join(bucket, 'gangs', id), { recursive: true }).join(' ') : '';
    const logs = started.map((h) => `--- agent ${h.pid}\n${h.output().split('\n').filter((l) => l.includes(id) || /gang|cluster job|error|warn/i.test(l)).slice(-40).join('\n')}`);
    const ranks = last && typeof last === 'object' ? await gangLogs(a, last).catch((x: Error) => x.message) : '';
    const rankLines = ranks.split('\n').filter((l) => /gang-rank|Error|error/.test(l)).slice(-60).join('\n');
    throw new Error(`${(e as Error).message}\nrecord: ${JSON.stringify(last)}\nfiles: ${files}\n${logs.join('\n')}\n--- rank logs\n${rankLines}`);
  }
}

/** The rank jobs' logs, joined (shipped to the bucket by each rank's host). */
async function gangLogs(a: AgentHandle, g: any): Promise<string> {
  let out = '';
  for (const at of g.attempts) for (const j of at.rankJobs) out += (await a.api('GET', `/v1/cluster/jobs/${j}/logs`)).text;
  return out;
}

/** Every rank job's record ended, and the queue holds none of the gang's messages. */
async function holdsNothing(a: AgentHandle, q: QueueFixture, g: any): Promise<void> {
  await waitFor('every rank job ended and the queue empty', async () => {
    for (const at of g.attempts) {
      for (const j of at.rankJobs) {
        const r = (await a.api('GET', `/v1/cluster/jobs/${j}`)).json;
        if (!['succeeded', 'failed', 'cancelled'].includes(r.state)) return false;
      }
    }
    return sqs.fake.bodies(q.url.split('/').pop()!).length === 0;
  }, 60_000, 250);
}


describeWithTools([TOOLS.torch])('gang jobs on the cluster queue (real torch.distributed, gloo)', () => {
  test.each([2, 3])('a %i-node job runs one rank per host; each sees the world size and the all-reduce sums every rank', async (nodes) => {
    const q = await sqs.create(`g${++n}`);
    const bucket = tmpDir();
    const [a] = await hosts(3, q, bucket);
    const r = await a.api('POST', '/v1/cluster/gangs', { argv: ['/usr/bin/python3', SCRIPT], nodes, env: { STEPS: '2' }, gangTimeoutSeconds: 120 });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ kind: 'gang', state: 'queued', nodes, attempt: 1 });
    const g = await waitGang(a, r.json.id, ['succeeded', 'failed', 'cancelled'], 240_000, bucket);
    expect(g).toMatchObject({ state: 'succeeded', attempt: 1, failure: null });
    const jobs = await Promise.all(g.attempts[0].rankJobs.map(async (j: string) => (await a.api('GET', `/v1/cluster/jobs/${j}`)).json));
    // one rank per host: N distinct hosts ran them
    expect(new Set(jobs.map((j: any) => j.attempts[0].host)).size).toBe(nodes);
    expect(jobs.map((j: any) => j.state)).toEqual(Array(nodes).fill('succeeded'));
    const logs = await waitFor('every rank\'s shipped log', async () => {
      const t = await gangLogs(a, g);
      return (t.match(/ done$/gm) ?? []).length >= nodes ? t : undefined;
    }, 30_000);
    const expectedSum = (nodes * (nodes + 1)) / 2;
    const seen = [...logs.matchAll(/^rank (\d+) world (\d+) node (\d+) step (\d+) sum (\d+)$/gm)].map((m) => m.slice(1).map(Number));
    expect(new Set(seen.map(([rank]) => rank))).toEqual(new Set(Array.from({ length: nodes }, (_, i) => i)));
    expect(new Set(seen.map(([, , node]) => node))).toEqual(new Set(Array.from({ length: nodes }, (_, i) => i)));
    for (const [, world, , , sum] of seen) {
      expect(world).toBe(nodes);
      expect(sum).toBe(expectedSum);
    }
    expect(seen).toHaveLength(nodes * 2);
    await holdsNothing(a, q, g);
  }, 300_000);

  test('a host killed mid-job stops every rank; the gang re-queues whole, as lost (no retry used), and resumes from its checkpoints', async () => {
    const q = await sqs.create(`g${++n}`);
    const bucket = tmpDir();
    const hs = await hosts(3, q, bucket);
    // retries 0: a lost host is not the program's failure, so the gang runs again anyway
    const r = await hs[0].api('POST', '/v1/cluster/gangs', { argv: ['/usr/bin/python3', SCRIPT], nodes: 2, retries: 0, env: { STEPS: '12', STEP_SECONDS: '0.5', MLINFRA_GANG_HEARTBEAT_SECONDS: '1' }, gangTimeoutSeconds: 120 });
    const id = r.json.id as string;
    // wait for a checkpoint past step 3 on both nodes, then kill rank 1's host (agent and its jobs: kill -9)
    const ckpt = (rank: number): number => {
      try {
        return Number(fs.readFileSync(path.join(bucket, 'checkpoints', id, `rank-${rank}`, 'step'), 'utf8'));
      } catch {
        return 0;
      }
    };
    await waitFor('both nodes past step 3', () => ckpt(0) >= 3 && ckpt(1) >= 3, 180_000, 200);
    const g1 = (await hs[0].api('GET', `/v1/cluster/gangs/${id}`)).json;
    // past the barrier: shown running, with its ranks (the record itself stays queued until the end)
    expect(g1).toMatchObject({ state: 'running', attempt: 1, ranks: { registered: 2, done: 0 } });
    const rank1Job = (await hs[0].api('GET', `/v1/cluster/jobs/${g1.attempts[0].rankJobs[1]}`)).json;
    const victim = hs.find((h) => rank1Job.attempts[0].host.endsWith(`/${h.pid}`))!;
    expect(victim).toBeDefined();
    const pgids = processGroupsUnder(victim.pid);
    await victim.kill('SIGKILL');
    for (const pg of pgids) {
      try {
        process.kill(-pg, 'SIGKILL');
      } catch {
        // gone with the agent
      }
    }
    const survivor = hs.find((h) => h !== victim)!;
    const g = await waitGang(survivor, id, ['succeeded', 'failed', 'cancelled'], 240_000, bucket);
    // the failure and attempts show on a mismatch
    expect({ state: g.state, failure: g.failure, attempts: g.attempts }).toMatchObject({ state: 'succeeded', failure: null });
    expect(g.attempts.length).toBeGreaterThanOrEqual(2);
    // seen by the survivor (the victim's heartbeat stopped) or by the spare host that re-leased the
    // victim's rank (registered twice), whichever writes the abort first
    expect(g.attempts[0]).toMatchObject({ outcome: 'lost', reason: expect.stringMatching(/^rank \d (\(\S+\) stopped reporting for \d+s: its|registered twice in attempt 1: its first) host was lost/) });
    expect(g.attempts[g.attempts.length - 1]).toMatchObject({ outcome: 'succeeded' });
    const logs = await gangLogs(survivor, g);
    // the second attempt started from a saved step, not from 0, and every all-reduce summed 1 + 2
    expect(logs).toMatch(/rank \d resumed at step ([3-9]|1[0-2])/);
    for (const m of logs.matchAll(/sum (\d+)$/gm)) expect(Number(m[1])).toBe(3);
    expect(logs).toMatch(/step 11 sum 3/);
    await holdsNothing(survivor, q, g);
  }, 360_000);

  test('a gang that cannot get its hosts times out with a clear reason and holds nothing afterwards', async () => {
    const q = await sqs.create(`g${++n}`);
    const bucket = tmpDir();
    const [a] = await hosts(2, q, bucket);
    const t0 = Date.now();
    const r = await a.api('POST', '/v1/cluster/gangs', { argv: ['/usr/bin/python3', SCRIPT], nodes: 3, gangTimeoutSeconds: 4 });
    expect(r.status).toBe(201);
    const g = await waitGang(a, r.json.id, ['succeeded', 'failed', 'cancelled'], 60_000);
    expect(g.state).toBe('failed');
    expect(g.failure.class).toBe('timeout');
    expect(g.failure.reason).toMatch(/gang timeout: 2 of 3 ranks registered within 4s \(missing ranks \d\)/);
    expect(Date.now() - t0).toBeLessThan(40_000);
    expect(g.attempts).toHaveLength(1);
    await holdsNothing(a, q, g);
    // no program ever started
    expect(await gangLogs(a, g)).not.toMatch(/^rank \d world/m);
  }, 120_000);

  test('run-pipeline runs a 2-node step as a gang; its outputs come back for the next step', async () => {
    const q = await sqs.create(`g${++n}`);
    const [a] = await hosts(3, q, tmpDir());
    const root = tmpDir();
    const spec = {
      version: 1, name: 'gangs', artifactsUri: `file://${root}/pipe`,
      steps: [
        { kind: 'run', name: 'train', argv: ['/usr/bin/python3', SCRIPT], env: { STEPS: '2' }, nodes: 2, gpusPerNode: 0 },
        { kind: 'run', name: 'check', after: ['train'], argv: ['sh', '-c', 'grep -q \'"allreduce_sum": 3\' "$MLINFRA_RUN_DIR/metrics.json"'] },
      ],
    };
    const r = await runCli(['run-pipeline', writeSpec(root, spec), '--work-dir', path.join(root, 'work')], { MLINFRA_AGENT_URL: a.url, MLINFRA_AGENT_TOKEN: a.token });
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ state: 'succeeded', steps: { train: 'succeeded', check: 'succeeded' } });
    const runDir = path.join(root, 'work', 'gangs', r.summary.runId as string);
    const steps = readJson(path.join(runDir, 'steps.json'));
    expect(steps.train).toMatchObject({ state: 'succeeded', attempts: 1, failure: null });
    expect(steps.check).toMatchObject({ state: 'succeeded' });
    expect(readJson(path.join(runDir, 'metrics.json'))).toMatchObject({ allreduce_sum: 3, world: 2 });
    const log = fs.readFileSync(path.join(runDir, 'logs', 'train.log'), 'utf8');
    expect(log).toMatch(/node 0 .*\n[^]*rank \d world 2 node 0 step 1 sum 3/);
    expect(log).toMatch(/rank \d world 2 node 1 step 1 sum 3/);
  }, 300_000);

  test('bad gang input answers 400 JSON naming the field', async () => {
    const q = await sqs.create(`g${++n}`);
    const [a] = await hosts(1, q, tmpDir());
    const zero = await a.api('POST', '/v1/cluster/gangs', { argv: ['x.py'], nodes: 0 });
    expect(zero.status).toBe(400);
    expect(zero.json.error.code).toBeDefined();
    const batch = await a.api('POST', '/v1/cluster/gangs', { argv: ['x.py'], nodes: 2, kind: 'batch', input: '/a', output: '/b' });
    expect(batch.status).toBe(400);
    expect(batch.json.error).toMatchObject({ field: 'kind' });
    const both = await a.api('POST', '/v1/cluster/gangs', { argv: ['x.py'], nodes: 2, gpus: 1, gpusPerNode: 2 });
    expect(both.status).toBe(400);
    expect(both.json.error).toMatchObject({ field: 'gpus' });
    expect((await a.api('GET', '/v1/cluster/gangs/nope')).status).toBe(404);
    expect(sqs.fake.bodies(q.url.split('/').pop()!)).toEqual([]);
    // the CLI: submit --nodes N enqueues a gang of N rank messages; an agent without a queue says what is missing
    const cli = await runCli(['submit', '--url', a.url, '--nodes', '2', '--gpus-per-node', '0', '--gang-timeout-seconds', '120', '--', 'sleep', '9'], { MLINFRA_AGENT_TOKEN: a.token });
    expect(cli.code).toBe(0);
    const id = cli.stdout.trim();
    expect((await a.api('GET', `/v1/cluster/gangs/${id}`)).json).toMatchObject({ nodes: 2, gpusPerNode: 0, timeoutSeconds: 120, spec: { argv: ['sleep', '9'] } });
    // a long barrier timeout: the cancel below must not race the gang's own timeout on a loaded machine
    expect((await a.api('POST', `/v1/cluster/gangs/${id}/cancel`)).json).toMatchObject({ state: 'cancelled' });
    const plain = await startAgent();
    const refused = await runCli(['submit', '--url', plain.url, '--nodes', '2', '--', 'true'], { MLINFRA_AGENT_TOKEN: plain.token });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no_cluster_queue.*serve --queue/);
  }, 60_000);
});

/** Process groups of the descendants of `pid` (the agent's jobs are group leaders). */
function processGroupsUnder(pid: number): number[] {
  const parent = new Map<number, number>();
  const group = new Map<number, number>();
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(')').pop()!.trim().split(/\s+/);
      parent.set(Number(p), Number(f[1]));
      group.set(Number(p), Number(f[2]));
    } catch {
      // gone
    }
  }
  const out = new Set<number>();
  for (const p of parent.keys()) {
    for (let q = parent.get(p); q !== undefined && q > 1; q = parent.get(q)) {
      if (q === pid) {
        out.add(group.get(p)!);
        break;
      }
    }
  }
  out.delete(process.pid);
  return [...out];
}
