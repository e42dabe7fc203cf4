import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, startAgent, stopAllAgents, tmpDir, type AgentHandle } from './helpers';

afterAll(stopAllAgents);
// each test starts several CLI processes (~0.5 s apiece on a busy 2-core machine)
jest.setTimeout(30_000);

interface CliResult { code: number | null; stdout: string; stderr: string }

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BUNDLE, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('client CLI (same binary)', () => {
  let agent: AgentHandle;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    agent = await startAgent({ args: ['--gpus', '2'] });
    env = { MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: agent.token };
  });

  test('submit --follow prints the output and exits with the job\'s exit code', async () => {
    const r = await cli(['submit', '--follow', '--', 'sh', '-c', 'echo from-the-job; echo err >&2; sleep 0.3; echo done; exit 7'], env);
    expect(r.stdout).toBe('from-the-job\nerr\ndone\n');
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^j-[a-z0-9-]+\n/);
    expect(r.stderr).toContain('exit: exited with code 7');
    const ok = await cli(['submit', '--follow', '--gpus', '1', '--', 'sh', '-c', 'echo gpu=$CUDA_VISIBLE_DEVICES'], env);
    expect(ok).toMatchObject({ code: 0, stdout: 'gpu=0\n' });
  });

  test('submit prints the id; status, logs, list and cancel work through env vars', async () => {
    const s = await cli(['submit', '--retries', '1', '--timeout', '60', '--env', 'GREETING=hi', '--', 'sh', '-c', 'echo $GREETING; sleep 30'], env);
    expect(s.code).toBe(0);
    const id = s.stdout.trim();
    expect(id).toMatch(/^j-[a-z0-9-]+$/);
    await agent.waitJob(id, ['running']);
    const st = await cli(['status', id], env);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ id, state: 'running', retries: 1, timeoutSeconds: 60, envKeys: ['GREETING'] });
    const list = await cli(['list'], env);
    expect(list.stdout).toContain(`${id}\trunning\t-\ttrain\tsh -c echo $GREETING; sleep 30`);
    const c = await cli(['cancel', id], env);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(new RegExp(`^${id}\\t`));
    const done = await agent.waitJob(id);
    expect(done.state).toBe('cancelled');
    const logs = await cli(['logs', '-f', id], env);
    expect(logs).toMatchObject({ code: 0, stdout: 'hi\n' });
    const json = await cli(['list', '--json', '--state', 'cancelled'], env);
    expect(JSON.parse(json.stdout).jobs.map((j: { id: string }) => j.id)).toContain(id);
  });

  test('flags instead of env: --url and --token-file; errors are JSON on stderr with exit 1', async () => {
    const file = path.join(tmpDir(), 'tok');
    fs.writeFileSync(file, `${agent.token}\n`);
    const noEnv = { MLINFRA_AGENT_URL: '', MLINFRA_AGENT_TOKEN: '' };
    const ok = await cli(['list', '--url', agent.url, '--token-file', file], noEnv);
    expect(ok.code).toBe(0);
    const wrong = await cli(['status', 'j-missing'], env);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stderr)).toMatchObject({ error: { code: 'not_found' } });
    const unauth = await cli(['list', '--url', agent.url], { MLINFRA_AGENT_TOKEN: 'nope' });
    expect(unauth.code).toBe(1);
    expect(JSON.parse(unauth.stderr)).toMatchObject({ error: { code: 'unauthorized' } });
    const tooMany = await cli(['submit', '--gpus', '3', '--', 'true'], env);
    expect(tooMany.code).toBe(1);
    expect(JSON.parse(tooMany.stderr)).toMatchObject({ error: { field: 'gpus' } });
  });

  test('cancel of a queued job (paused agent) is immediate', async () => {
    const paused = await startAgent({ args: ['--paused'] });
    const penv = { MLINFRA_AGENT_URL: paused.url, MLINFRA_AGENT_TOKEN: paused.token };
    const id = (await cli(['submit', '--', 'true'], penv)).stdout.trim();
    expect((await paused.job(id)).state).toBe('queued');
    const c = await cli(['cancel', id], penv);
    expect(c.stdout).toBe(`${id}\tcancelled\n`);
  });

  test('run-pipeline with an unreadable spec: exit 2 and a JSON error (pipeline.test.ts covers the rest)', async () => {
    const r = await cli(['run-pipeline', '/nonexistent/pipeline.json'], {});
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: 'spec_unreadable', message: expect.stringContaining('/nonexistent/pipeline.json') } });
  });
});
