import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

describe('idle autostop', () => {
  test('runs the pre-stop hook, then the stop command, only after the host has been idle long enough', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'stop.log');
    const agent = await startAgent({
      args: ['--idle-stop-minutes', '0.01', '--pre-stop-command', `echo pre $(date +%s%N) >> ${log}`, '--stop-command', `echo stop $(date +%s%N) >> ${log}`],
    });
    // busy for ~1.5 s right away: the stop must not fire meanwhile (idle period is 0.6 s)
    const id = await agent.submit({ argv: ['sleep', '1.5'] });
    const job = await agent.waitJob(id);
    const lines = await waitFor('the stop command', () => {
      const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
      return text.length >= 2 ? text : undefined;
    }, 10_000);
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['pre', 'stop']);
    const firedAtMs = Number(BigInt(lines[0].split(' ')[1]) / 1_000_000n);
    expect(firedAtMs).toBeGreaterThanOrEqual(Date.parse(job.endedAt) + 500);
    expect(agent.output()).toContain('idle autostop');
  });

  test('a refused stop command is tried again after another idle period; a successful one is not', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'tries.log');
    // Refuses twice (exit 75, as a pod that is not the highest does), then succeeds.
    const stop = `echo try >> ${log}; [ $(wc -l < ${log}) -ge 3 ]`;
    await startAgent({ args: ['--idle-stop-minutes', '0.005', '--stop-command', stop] });
    await waitFor('three stop attempts', () => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').split('\n').length > 3 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  test('log rotation keeps one old generation within --log-max-bytes', async () => {
    const agent = await startAgent({ args: ['--log-max-bytes', '4096'] });
    const id = await agent.submit({ argv: ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo "line $i ........................"; i=$((i+1)); done'] });
    await agent.waitJob(id);
    const file = path.join(agent.dataDir, 'logs', `${id}.log`);
    expect(fs.statSync(file).size).toBeLessThanOrEqual(4096);
    expect(fs.statSync(`${file}.1`).size).toBeLessThanOrEqual(4096);
    const text = (await agent.api('GET', `/v1/jobs/${id}/logs`)).text;
    expect(text).toContain('line 399 ');
    expect(text).not.toContain('line 0 ');
  });
});
