import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

describe('durability: kill -9 and restart', () => {
  test('kill -9 with 50 jobs queued or running loses none; the running ones are interrupted, their orphans killed, and retried', async () => {
    const a = await startAgent({ args: ['--max-cpu-jobs', '10'] });
    const dir = tmpDir();
    // each attempt records its pid; attempt 1 runs long so it is still running at the kill
    const script = `echo $$ > ${dir}/$MLINFRA_JOB_ID.$MLINFRA_ATTEMPT.pid; if [ "$MLINFRA_ATTEMPT" = 1 ]; then sleep 30; else sleep 0.1; fi`;
    const ids = await Promise.all(Array.from({ length: 50 }, () => a.submit({ argv: ['sh', '-c', script], retries: 1 })));
    expect(new Set(ids).size).toBe(50);
    await waitFor('10 jobs running', async () => (await a.api('GET', '/v1/jobs?state=running')).json.jobs.length === 10);
    await waitFor('10 pid files', () => fs.readdirSync(dir).length === 10);
    const firstPids = fs.readdirSync(dir).map((f) => Number(fs.readFileSync(path.join(dir, f), 'utf8')));
    expect(await a.kill('SIGKILL')).toBe(-1);
    // the orphans are still alive until the next agent kills them
    expect(firstPids.filter(pidAlive).length).toBe(10);

    const b = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '10'] });
    expect(b.output()).toMatch(/"orphansKilled":10,"interrupted":10,"requeued":10/);
    for (const pid of firstPids) expect(pidAlive(pid)).toBe(false);
    // the 40 that never started run their first (long) attempt: cancel them after they start, so the test stays short
    const jobs = await waitFor('all 50 terminal', async () => {
      const list = (await b.api('GET', '/v1/jobs')).json.jobs as Array<{ id: string; state: string; attempts: number }>;
      for (const j of list) if (j.state === 'running' && j.attempts === 1) await b.api('POST', `/v1/jobs/${j.id}/cancel`);
      return list.filter((j) => ['succeeded', 'cancelled', 'failed', 'interrupted'].includes(j.state)).length === 50 ? list : undefined;
    }, 60_000, 100);
    expect(jobs.map((j) => j.id).sort()).toEqual([...ids].sort());
    const retried = jobs.filter((j) => j.state === 'succeeded');
    expect(retried).toHaveLength(10);
    for (const j of retried) {
      const full = await b.job(j.id);
      expect(full).toMatchObject({ attempts: 2, failedAttempts: 1 });
      expect(full.runs[0]).toMatchObject({ attempt: 1, outcome: 'interrupted' });
      expect(full.runs[1]).toMatchObject({ attempt: 2, outcome: 'succeeded' });
    }
    expect(jobs.filter((j) => j.state === 'cancelled')).toHaveLength(40);
  }, 90_000);

  test('a running job without retries left stays interrupted after kill -9', async () => {
    const a = await startAgent();
    const dir = tmpDir();
    // killed once its process runs (a job killed before its spawn is re-queued without a charge: faults.test.ts)
    const id = await a.submit({ argv: ['sh', '-c', `touch ${dir}/up; exec sleep 30`] });
    await waitFor('the process to run', () => fs.existsSync(`${dir}/up`));
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir });
    expect(await b.job(id)).toMatchObject({ state: 'interrupted', attempts: 1, failure: { class: 'signal', reason: expect.stringContaining('kill -9') } });
  });

  test('a killed batch job resumes without redoing finished shards', async () => {
    const root = tmpDir();
    const input = path.join(root, 'in');
    const output = path.join(root, 'out');
    const markers = path.join(root, 'markers');
    fs.mkdirSync(input);
    fs.mkdirSync(markers);
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(input, `part-${String(i).padStart(3, '0')}.txt`), `line ${i}\n`);
    // one marker file per shard execution; shards 0-1 are quick, the rest slow on the first attempt
    const script = [
      'key=$(basename "$MLINFRA_INPUT")',
      `touch ${markers}/$key.attempt$MLINFRA_ATTEMPT.$$`,
      'case "$MLINFRA_SHARD_INDEX" in 0|1) ;; *) [ "$MLINFRA_ATTEMPT" = 1 ] && sleep 30 ;; esac',
      'tr a-z A-Z < "$MLINFRA_INPUT" > "$MLINFRA_OUTPUT"',
    ].join('\n');
    const a = await startAgent({ args: ['--max-cpu-jobs', '2'] });
    const id = await a.submit({ kind: 'batch', input: `file://${input}`, output, argv: ['sh', '-c', script], retries: 1 });
    await waitFor('2 shards done', async () => (await a.job(id)).shards?.done === 2, 20_000);
    await waitFor('2 slow shards running', () => fs.readdirSync(markers).length === 4);
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '4'] });
    const job = await b.waitJob(id, undefined, 30_000);
    expect(job).toMatchObject({ state: 'succeeded', attempts: 2, shards: { total: 8, done: 8 } });
    for (let i = 0; i < 8; i++) {
      const name = `part-${String(i).padStart(3, '0')}.txt`;
      expect(fs.readFileSync(path.join(output, name), 'utf8')).toBe(`LINE ${i}\n`);
      const runs = fs.readdirSync(markers).filter((m) => m.startsWith(`${name}.`));
      // finished shards ran once; the two that were running at the kill ran twice; the rest once (attempt 2)
      if (i < 2) expect(runs.map((r) => r.split('.')[2])).toEqual(['attempt1']);
      else if (i < 4) expect(runs.map((r) => r.split('.')[2]).sort()).toEqual(['attempt1', 'attempt2']);
      else expect(runs.map((r) => r.split('.')[2])).toEqual(['attempt2']);
    }
  }, 60_000);
});
