/**
 * Run supervisors (issue 21 item 1): every job runs under a shim that outlives the agent, so after
 * a kill -9 and a restart a job that ended meanwhile is recorded with its real exit, a job still
 * running is re-attached (its log keeps flowing, `logs -f` follows it to its end), nothing runs twice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive, sleep, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

/** How many times the job's command started (each start appends a line). */
const starts = (file: string): number => fs.readFileSync(file, 'utf8').trim().split('\n').length;

describe('a kill -9 of the agent does not end or repeat its jobs', () => {
  test('a job that ended while the agent was down is recorded with its real exit code, once, not re-run', async () => {
    const dir = tmpDir();
    const a = await startAgent();
    const id = await a.submit({ argv: ['sh', '-c', `echo $$ >> ${dir}/starts; sleep 0.5; echo bye; exit 3`], retries: 2 });
    await waitFor('job started', () => fs.existsSync(`${dir}/starts`));
    await a.kill('SIGKILL');
    const pid = Number(fs.readFileSync(`${dir}/starts`, 'utf8'));
    await waitFor('the job to end while no agent runs', () => !pidAlive(pid), 5000);
    const b = await startAgent({ dataDir: a.dataDir });
    const job = await b.waitJob(id);
    // exit 3 with retries left: a normal failure, retried as usual; the first attempt is not "interrupted"
    const runs = job.runs as Array<{ attempt: number; outcome: string; exitCode: number | null; failure: { class: string } | null }>;
    expect(runs[0]).toMatchObject({ attempt: 1, outcome: 'failed', exitCode: 3, failure: { class: 'exit' } });
    expect(job).toMatchObject({ state: 'failed', exitCode: 3, attempts: 3 });
    expect(starts(`${dir}/starts`)).toBe(3);
    expect(runs.map((r) => r.outcome)).toEqual(['failed', 'failed', 'failed']);
    const log = await b.api('GET', `/v1/jobs/${id}/logs`);
    expect(log.text).toContain('bye');
  }, 60_000);

  test('a job still running is re-attached: not re-run, its log keeps flowing, logs -f follows it, its exit is recorded', async () => {
    const dir = tmpDir();
    const a = await startAgent();
    const script = `echo $$ >> ${dir}/starts; i=0; while [ ! -e ${dir}/go ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done; echo done-ok`;
    const id = await a.submit({ argv: ['sh', '-c', script], retries: 3 });
    await waitFor('job started', () => fs.existsSync(`${dir}/starts`));
    await sleep(300);
    await a.kill('SIGKILL');
    // the job keeps running (and writing) with no agent; its output waits in the run's FIFO
    const pid = Number(fs.readFileSync(`${dir}/starts`, 'utf8'));
    await sleep(300);
    expect(pidAlive(pid)).toBe(true);
    const b = await startAgent({ dataDir: a.dataDir });
    expect(b.output()).toMatch(/"reattached":1/);
    expect((await b.job(id)).state).toBe('running');
    const follow = await fetch(`${b.url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${b.token}` } });
    const text = follow.text();
    // output written after the restart reaches the log and the follower
    const before = (await b.api('GET', `/v1/jobs/${id}/logs`)).text.length;
    await waitFor('more output after the restart', async () => (await b.api('GET', `/v1/jobs/${id}/logs`)).text.length > before + 20);
    fs.writeFileSync(`${dir}/go`, '');
    const all = await text;
    expect(all).toContain('tick-0\n');
    expect(all).toMatch(/tick-\d+\ndone-ok\n$/);
    const job = await b.waitJob(id);
    expect(job).toMatchObject({ state: 'succeeded', exitCode: 0, attempts: 1 });
    expect(job.runs).toHaveLength(1);
    expect(starts(`${dir}/starts`)).toBe(1);
    // the run's FIFOs and status are removed once its end is journaled (off the event loop: soon after)
    await waitFor('run dir removed', () => fs.readdirSync(path.join(b.dataDir, 'runs')).filter((e) => !e.startsWith('.')).length === 0, 5000);
  }, 60_000);

  test('a re-attached job can still be cancelled, and its timeout counts from its start', async () => {
    const dir = tmpDir();
    const a = await startAgent();
    const c = await a.submit({ argv: ['sh', '-c', `echo $$ > ${dir}/c; exec sleep 600`] });
    const t = await a.submit({ argv: ['sh', '-c', `echo $$ > ${dir}/t; exec sleep 600`], timeoutSeconds: 3 });
    await waitFor('both started', () => fs.existsSync(`${dir}/c`) && fs.existsSync(`${dir}/t`));
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir });
    await b.api('POST', `/v1/jobs/${c}/cancel`);
    expect(await b.waitJob(c)).toMatchObject({ state: 'cancelled' });
    expect(await b.waitJob(t, undefined, 15_000)).toMatchObject({ state: 'failed', failure: { class: 'timeout' } });
    for (const f of ['c', 't']) expect(pidAlive(Number(fs.readFileSync(`${dir}/${f}`, 'utf8')))).toBe(false);
  }, 60_000);
});
