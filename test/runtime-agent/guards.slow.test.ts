/**
 * Host guards on real agent processes: the dead-man switch (--dead-man-minutes) against an
 * unreachable queue, and hung-job reports (--idle-gpu-util-percent) from a fake nvidia-smi on PATH.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveServeOptions, ServeOptionError } from '../../src/runtime-agent/options';
import { BUNDLE, requireBundle, sleep, startAgent, stopAllAgents, tmpDir, waitFor, writeExecutable } from './helpers';

afterAll(stopAllAgents);

// Nothing listens on port 9: every receive fails at once (connection refused).
const GONE_QUEUE = 'http://127.0.0.1:9/000000000000/gone';
const FAKE_AWS = { AWS_ACCESS_KEY_ID: 'f', AWS_SECRET_ACCESS_KEY: 'f', AWS_REGION: 'us-east-1' };

function deadManArgs(stopLog: string): string[] {
  const bucket = tmpDir();
  // idle autostop stays off: only the dead-man switch can run the stop command
  return ['--queue', GONE_QUEUE, '--cluster-artifacts', `file://${bucket}`, '--queue-poll-seconds', '0.2',
    '--dead-man-minutes', '0.01', '--stop-command', `echo stop >> ${stopLog}`];
}

const lines = (file: string): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);

describe('dead-man switch', () => {
  test('a host whose queue is unreachable, with no jobs, runs the stop command once the period has passed', async () => {
    const stopLog = path.join(tmpDir(), 'stop.log');
    const started = Date.now();
    const agent = await startAgent({ args: deadManArgs(stopLog), env: FAKE_AWS });
    await waitFor('the dead-man stop', () => lines(stopLog).length > 0, 15_000);
    // the period is 0.6 s from the last good receive (never): not before
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(agent.output()).toMatch(/dead-man switch: the cluster queue is unreachable/);
    expect(agent.output()).toMatch(/cluster queue receive failed/);
    const metrics = (await agent.api('GET', '/metrics')).text;
    expect(metrics).toMatch(/^mlinfra_agent_dead_man_stops_total 1$/m);
    // a successful stop is not repeated
    await sleep(1500);
    expect(lines(stopLog)).toEqual(['stop']);
  });

  test('does not fire while a job runs; fires after it ends', async () => {
    const stopLog = path.join(tmpDir(), 'stop.log');
    const agent = await startAgent({ args: deadManArgs(stopLog), env: FAKE_AWS });
    const id = await agent.submit({ argv: ['sleep', '3'] });
    await agent.waitJob(id, ['running']);
    await waitFor('a failed receive', () => /cluster queue receive failed/.test(agent.output()), 10_000);
    await sleep(1800); // three periods of 0.6 s with the queue down and the job running
    expect((await agent.job(id)).state).toBe('running');
    expect(lines(stopLog)).toEqual([]);
    expect(agent.output()).not.toMatch(/dead-man switch/);
    const job = await agent.waitJob(id);
    expect(job.state).toBe('succeeded');
    await waitFor('the dead-man stop after the job', () => lines(stopLog).length > 0, 15_000);
  });

  test('a refused stop (exit 75) is tried again after another period; a successful one is not', async () => {
    const dir = tmpDir();
    const tries = path.join(dir, 'tries.log');
    const args = deadManArgs(path.join(dir, 'unused.log')).slice(0, -2);
    await startAgent({ args: [...args, '--stop-command', `echo try >> ${tries}; [ $(wc -l < ${tries}) -ge 2 ] || exit 75`], env: FAKE_AWS });
    await waitFor('two stop attempts', () => lines(tries).length >= 2, 15_000);
    await sleep(1500);
    expect(lines(tries)).toEqual(['try', 'try']);
  });

  test('without --queue it is accepted and does nothing', async () => {
    const stopLog = path.join(tmpDir(), 'stop.log');
    const agent = await startAgent({ args: ['--dead-man-minutes', '0.01', '--stop-command', `echo stop >> ${stopLog}`] });
    await sleep(1500);
    expect(lines(stopLog)).toEqual([]);
    expect(agent.output()).not.toMatch(/dead-man switch/);
  });
});

describe('hung-job reports from GPU utilisation', () => {
  test('a running job whose GPUs stay under the threshold is reported hung (and keeps running); a busy one is not', async () => {
    const bin = tmpDir();
    const utilFile = path.join(bin, 'util.csv');
    // GPU 0 idles at 2 %, GPU 1 works at 90 %
    fs.writeFileSync(utilFile, '0, 2\n1, 90\n');
    writeExecutable(path.join(bin, 'nvidia-smi'), [
      '#!/bin/sh',
      `[ "$1" = "--query-gpu=index,utilization.gpu" ] && [ "$2" = "--format=csv,noheader,nounits" ] || exit 9`,
      `cat ${utilFile}`,
    ].join('\n'));
    const agent = await startAgent({
      args: ['--gpus', '2', '--idle-gpu-util-percent', '5', '--idle-stop-minutes', '0.01'],
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    const a = await agent.submit({ argv: ['sleep', '30'], gpus: 1 });
    const b = await agent.submit({ argv: ['sleep', '30'], gpus: 1 });
    const ja = await agent.waitJob(a, ['running']);
    const jb = await agent.waitJob(b, ['running']);
    const [idle, busy] = ja.cudaVisibleDevices === '0' ? [a, b] : [b, a];
    expect([ja.cudaVisibleDevices, jb.cudaVisibleDevices].sort()).toEqual(['0', '1']);
    const report = await waitFor('the hung report', () => agent.output().split('\n').find((l) => l.includes('job looks hung')), 15_000);
    expect(JSON.parse(report)).toMatchObject({ jobId: idle, gpus: [0], gpuUtil: [2], thresholdPercent: 5 });
    const reported = agent.output().split('\n').filter((l) => l.includes('job looks hung')).map((l) => JSON.parse(l).jobId);
    expect(reported).toEqual([idle]);
    expect(busy).not.toBe(idle);
    expect((await agent.api('GET', '/metrics')).text).toMatch(/^mlinfra_agent_jobs_hung 1$/m);
    // reported, not killed
    expect((await agent.job(idle)).state).toBe('running');
    // GPU 0 busy again: the report clears
    fs.writeFileSync(utilFile, '0, 60\n1, 90\n');
    await waitFor('the report to clear', async () => /^mlinfra_agent_jobs_hung 0$/m.test((await agent.api('GET', '/metrics')).text), 15_000);
    expect(agent.output()).toContain('job no longer looks hung');
    expect((await agent.api('GET', '/metrics')).text).toMatch(/^mlinfra_agent_hung_jobs_total 1$/m);
    await agent.api('POST', `/v1/jobs/${idle}/cancel`);
    await agent.api('POST', `/v1/jobs/${busy}/cancel`);
  });
});

describe('guard flags', () => {
  test('Agent.start options are checked too (ServeOptionError naming the flag)', () => {
    const token = 'guard-token-0123456789';
    expect(() => resolveServeOptions({ token, deadManMinutes: -1 })).toThrow(ServeOptionError);
    expect(() => resolveServeOptions({ token, deadManMinutes: Number.NaN })).toThrow(/--dead-man-minutes=null: a number 0\.\.10080/);
    expect(() => resolveServeOptions({ token, idleGpuUtilPercent: 100.5 })).toThrow(/--idle-gpu-util-percent=100\.5/);
    expect(resolveServeOptions({ token })).toMatchObject({ deadManMinutes: 0, idleGpuUtilPercent: 0 });
    expect(resolveServeOptions({ token, deadManMinutes: 30, idleGpuUtilPercent: 5 })).toMatchObject({ deadManMinutes: 30, idleGpuUtilPercent: 5 });
  });

  test.each([
    ['--dead-man-minutes', '-1'], ['--dead-man-minutes', 'soon'], ['--dead-man-minutes', '20000'],
    ['--idle-gpu-util-percent', '101'], ['--idle-gpu-util-percent', '-5'], ['--idle-gpu-util-percent', 'x'],
  ])('%s %s is refused, naming the flag', (flag, value) => {
    requireBundle();
    const dir = tmpDir();
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', path.join(dir, 'd'), flag, value], {
      env: { ...process.env, MLINFRA_AGENT_TOKEN: 'guard-token-0123456789' }, encoding: 'utf8', timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(flag);
    expect(r.stderr).toMatch(/0\.\.(10080|100)/);
  });
});
