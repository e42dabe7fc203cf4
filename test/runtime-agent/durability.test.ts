import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

describe('durability: kill -9 and restart', () => {
  test('kill -9 with 50 jobs queued or running loses none; the running ones are re-attached (same processes), none runs twice', async () => {
    const a = await startAgent({ args: ['--max-cpu-jobs', '10'] });
    const dir = tmpDir();
    // each attempt records its pid, then waits for the go file: 10 are still running at the kill
    const script = `echo $$ > ${dir}/$MLINFRA_JOB_ID.$MLINFRA_ATTEMPT.pid; while [ ! -e ${dir}/go ]; do sleep 0.05; done`;
    const ids = await Promise.all(Array.from({ length: 50 }, () => a.submit({ argv: ['sh', '-c', script], retries: 1 })));
    expect(new Set(ids).size).toBe(50);
    await waitFor('10 jobs running', async () => (await a.api('GET', '/v1/jobs?state=running')).json.jobs.length === 10);
    await waitFor('10 pid files', () => fs.readdirSync(dir).length === 10);
    const firstPids = fs.readdirSync(dir).map((f) => Number(fs.readFileSync(path.join(dir, f), 'utf8')));
    expect(await a.kill('SIGKILL')).toBe(-1);
    // the jobs outlive the agent (their supervisors hold them)
    expect(firstPids.filter(pidAlive).length).toBe(10);

    const b = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '10'] });
    expect(b.output()).toMatch(/"orphansKilled":0,"interrupted":0,"requeued":0,"reattached":10/);
    // re-attached, not restarted: the same 10 processes, no second attempt
    expect(firstPids.filter(pidAlive).length).toBe(10);
    expect((await b.api('GET', '/v1/jobs?state=running')).json.jobs).toHaveLength(10);
    fs.writeFileSync(`${dir}/go`, '');
    const jobs = await waitFor('all 50 terminal', async () => {
      const list = (await b.api('GET', '/v1/jobs')).json.jobs as Array<{ id: string; state: string; attempts: number }>;
      return list.filter((j) => ['succeeded', 'cancelled', 'failed', 'interrupted'].includes(j.state)).length === 50 ? list : undefined;
    }, 60_000, 100);
    expect(jobs.map((j) => j.id).sort()).toEqual([...ids].sort());
    expect(jobs.filter((j) => j.state === 'succeeded')).toHaveLength(50);
    for (const j of jobs) {
      const full = await b.job(j.id);
      expect(full).toMatchObject({ attempts: 1, failedAttempts: 0, exitCode: 0 });
      expect(full.runs).toHaveLength(1);
    }
    // one pid file per job: every job ran exactly once
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.pid')).sort()).toEqual(ids.map((id) => `${id}.1.pid`).sort());
  }, 90_000);

  test('a running job without retries left is re-attached after kill -9; its real exit is recorded', async () => {
    const a = await startAgent();
    const dir = tmpDir();
    const id = await a.submit({ argv: ['sh', '-c', `touch ${dir}/up; while [ ! -e ${dir}/go ]; do sleep 0.05; done; exit 7`] });
    await waitFor('the process to run', () => fs.existsSync(`${dir}/up`));
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir });
    expect(await b.job(id)).toMatchObject({ state: 'running', attempts: 1 });
    fs.writeFileSync(`${dir}/go`, '');
    expect(await b.waitJob(id)).toMatchObject({ state: 'failed', attempts: 1, exitCode: 7, failure: { class: 'exit' } });
  });

  test('a job whose supervisor died with the agent (no status left) is recorded interrupted, its processes killed', async () => {
    const a = await startAgent();
    const dir = tmpDir();
    const id = await a.submit({ argv: ['sh', '-c', `echo $$ > ${dir}/pid; exec sleep 30`] });
    await waitFor('the process to run', () => fs.existsSync(`${dir}/pid`));
    const runDir = path.join(a.dataDir, 'runs', '1');
    await waitFor('the supervisor pid', () => fs.existsSync(path.join(runDir, 'p')));
    await a.kill('SIGKILL');
    // a host-level kill of the supervisor (kill -9, OOM killer) while no agent runs
    process.kill(Number(fs.readFileSync(path.join(runDir, 'p'), 'utf8')), 'SIGKILL');
    const job = Number(fs.readFileSync(`${dir}/pid`, 'utf8'));
    expect(pidAlive(job)).toBe(true);
    const b = await startAgent({ dataDir: a.dataDir });
    expect(await b.job(id)).toMatchObject({ state: 'interrupted', attempts: 1, failure: { class: 'signal', reason: expect.stringContaining('kill -9') } });
    expect(pidAlive(job)).toBe(false);
  });

  test('a killed batch job goes on: finished shards are not redone, running shards are re-attached, none runs twice', async () => {
    const root = tmpDir();
    const input = path.join(root, 'in');
    const output = path.join(root, 'out');
    const markers = path.join(root, 'markers');
    fs.mkdirSync(input);
    fs.mkdirSync(markers);
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(input, `part-${String(i).padStart(3, '0')}.txt`), `line ${i}\n`);
    // one marker file per shard execution; shards 0-1 are quick, 2-3 wait for the go file (running at the kill)
    const script = [
      'key=$(basename "$MLINFRA_INPUT")',
      `touch ${markers}/$key.attempt$MLINFRA_ATTEMPT.$$`,
      `case "$MLINFRA_SHARD_INDEX" in 0|1) ;; *) while [ ! -e ${root}/go ]; do sleep 0.05; done ;; esac`,
      'tr a-z A-Z < "$MLINFRA_INPUT" > "$MLINFRA_OUTPUT"',
    ].join('\n');
    const a = await startAgent({ args: ['--max-cpu-jobs', '2'] });
    const id = await a.submit({ kind: 'batch', input: `file://${input}`, output, argv: ['sh', '-c', script], retries: 1 });
    await waitFor('2 shards done', async () => (await a.job(id)).shards?.done === 2, 20_000);
    await waitFor('2 slow shards running', () => fs.readdirSync(markers).length === 4);
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '4'] });
    expect(b.output()).toMatch(/"reattached":2/);
    fs.writeFileSync(`${root}/go`, '');
    const job = await b.waitJob(id, undefined, 30_000);
    expect(job).toMatchObject({ state: 'succeeded', attempts: 1, shards: { total: 8, done: 8 } });
    for (let i = 0; i < 8; i++) {
      const name = `part-${String(i).padStart(3, '0')}.txt`;
      expect(fs.readFileSync(path.join(output, name), 'utf8')).toBe(`LINE ${i}\n`);
      // every shard ran once, in the one attempt
      expect(fs.readdirSync(markers).filter((m) => m.startsWith(`${name}.`)).map((r) => r.split('.')[2])).toEqual(['attempt1']);
    }
  }, 60_000);
});
