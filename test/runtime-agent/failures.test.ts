import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { classifyExit, findOomLine } from '../../src/runtime-agent/failure';
import { FIXTURES, PYTHON, startAgent, stopAllAgents, tmpDir, waitFor, type AgentHandle } from './helpers';

afterAll(stopAllAgents);

describe('failure classification (unit)', () => {
  test.each([
    ['CUDA out of memory. Tried to allocate 2.00 GiB', 'oom'],
    ['torch.OutOfMemoryError: CUDA out of memory.', 'oom'],
    ['RuntimeError: CUDA_ERROR_OUT_OF_MEMORY: out of memory', 'oom'],
    ['ValueError: bad shape', 'exit'],
  ])('stderr %j with exit 1 -> %s', (tail, cls) => {
    expect(classifyExit({ exitCode: 1, signal: null, stderrTail: `x\n${tail}\n` })?.class).toBe(cls);
  });
  test('exit 0 is success; stop reasons win over exit facts', () => {
    expect(classifyExit({ exitCode: 0, signal: null, stderrTail: '' })).toBeNull();
    expect(classifyExit({ exitCode: null, signal: 'SIGTERM', stderrTail: '', stoppedBy: 'timeout', timeoutSeconds: 5 })).toEqual({ class: 'timeout', reason: 'exceeded its timeout of 5 s and was killed' });
    expect(classifyExit({ exitCode: null, signal: 'SIGKILL', stderrTail: '', stoppedBy: 'cancel' })?.class).toBe('cancelled');
    expect(classifyExit({ exitCode: null, signal: 'SIGTERM', stderrTail: '', stoppedBy: 'preemption' })?.class).toBe('preempted');
    expect(classifyExit({ exitCode: null, signal: 'SIGKILL', stderrTail: '' })?.class).toBe('oom');
    expect(classifyExit({ exitCode: 1, signal: null, stderrTail: '', kernelOomKill: true })?.class).toBe('oom');
    expect(classifyExit({ exitCode: null, signal: 'SIGSEGV', stderrTail: '' })).toEqual({ class: 'signal', reason: 'terminated by SIGSEGV (11)' });
    expect(findOomLine('a\nb CUDA out of memory here\nc')).toBe('b CUDA out of memory here');
  });
});

describe('failure classes through the real agent', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await startAgent({ args: ['--max-cpu-jobs', '8', '--grace-seconds', '1'] });
  });

  test.each([
    ['exit 137 -> oom', ['sh', '-c', 'exit 137'], 'failed', 'oom', /137/],
    ['torch OOM message -> oom', [PYTHON, path.join(FIXTURES, 'torch_oom.py')], 'failed', 'oom', /torch\.OutOfMemoryError: CUDA out of memory/],
    ['exit 2 -> exit', ['sh', '-c', 'exit 2'], 'failed', 'exit', /code 2/],
    ['SIGSEGV -> signal', ['sh', '-c', 'kill -SEGV $$'], 'failed', 'signal', /SIGSEGV/],
    ['missing program -> exit', ['/nonexistent/program'], 'failed', 'exit', /could not start/],
    ['NUL byte in argv -> exit', ['echo', 'a\u0000b'], 'failed', 'exit', /setup or storage error/],
    ['timeout -> timeout', ['sleep', '30'], 'failed', 'timeout', /timeout of 0.5 s/],
  ])('%s', async (_name, argv, state, cls, reason) => {
    const id = await agent.submit({ argv, timeoutSeconds: 0.5 });
    const job = await agent.waitJob(id);
    expect(job.state).toBe(state);
    expect(job.failure.class).toBe(cls);
    expect(job.failure.reason).toMatch(reason);
  });

  test('a missing working directory is reported as such', async () => {
    const id = await agent.submit({ argv: ['true'], cwd: '/nonexistent/dir' });
    expect(await agent.waitJob(id)).toMatchObject({ state: 'failed', failure: { class: 'exit', reason: expect.stringContaining('/nonexistent/dir does not exist') } });
  });

  test('a job that ignores SIGTERM on timeout is SIGKILLed after the grace period', async () => {
    const t0 = Date.now();
    const id = await agent.submit({ argv: ['sh', '-c', "trap '' TERM; sleep 30 & wait; sleep 30"], timeoutSeconds: 0.3 });
    const job = await agent.waitJob(id);
    expect(job).toMatchObject({ state: 'failed', signal: 'SIGKILL', failure: { class: 'timeout' } });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
  });

  test('retries: a failing job is re-queued until its retries are spent', async () => {
    const id = await agent.submit({ argv: ['sh', '-c', 'echo try $MLINFRA_ATTEMPT; exit 4'], retries: 2 });
    const job = await agent.waitJob(id);
    expect(job).toMatchObject({ state: 'failed', attempts: 3, failedAttempts: 3, exitCode: 4 });
    expect((await agent.api('GET', `/v1/jobs/${id}/logs`)).text).toBe('try 1\ntry 2\ntry 3\n');
  });
});

/** A fake metadata server: AWS IMDSv2 and GCP, with a switch to announce the preemption. */
async function fakeMetadata(): Promise<{ url: string; preempt(): void; close(): Promise<void>; seen: string[] }> {
  let preempted = false;
  const seen: string[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) { res.writeHead(400).end(); return; }
      res.writeHead(200).end('imds-token');
      return;
    }
    if (req.method === 'GET' && req.url === '/latest/meta-data/spot/instance-action') {
      if (req.headers['x-aws-ec2-metadata-token'] !== 'imds-token') { res.writeHead(401).end(); return; }
      if (!preempted) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ action: 'terminate', time: '2030-01-01T00:00:00Z' }));
      return;
    }
    if (req.method === 'GET' && req.url === '/computeMetadata/v1/instance/preempted') {
      if (req.headers['metadata-flavor'] !== 'Google') { res.writeHead(403).end(); return; }
      res.writeHead(200, { 'content-type': 'application/text' }).end(preempted ? 'TRUE' : 'FALSE');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    preempt: () => { preempted = true; },
    close: () => new Promise((r) => srv.close(() => r())),
    seen,
  };
}

describe('preemption', () => {
  test.each(['aws', 'gcp'])('%s notice: running jobs get SIGTERM (SIGKILL after grace), are recorded preempted, and resume on restart', async (provider) => {
    const md = await fakeMetadata();
    try {
      const flag = provider === 'aws' ? '--aws-imds-url' : '--gcp-metadata-url';
      const agent = await startAgent({ args: ['--preemption', provider, flag, md.url, '--preemption-poll-seconds', '0.1', '--grace-seconds', '1', '--max-cpu-jobs', '4'] });
      const dir = tmpDir();
      // a job that checkpoints on SIGTERM, and one that ignores SIGTERM (needs the SIGKILL)
      const polite = await agent.submit({ argv: ['sh', '-c', `trap 'echo saved > $MLINFRA_CHECKPOINT_DIR/ckpt; exit 0' TERM; echo "a$MLINFRA_ATTEMPT" >> ${dir}/polite; [ -f $MLINFRA_CHECKPOINT_DIR/ckpt ] && exit 0; sleep 30 & wait`] });
      const stubborn = await agent.submit({ argv: ['sh', '-c', `trap '' TERM; echo "a$MLINFRA_ATTEMPT" >> ${dir}/stubborn; [ "$MLINFRA_ATTEMPT" = 2 ] && exit 0; sleep 30 & wait; sleep 30`] });
      await agent.waitJob(polite, ['running']);
      await agent.waitJob(stubborn, ['running']);
      await waitFor('both jobs started', () => fs.existsSync(`${dir}/polite`) && fs.existsSync(`${dir}/stubborn`));
      await waitFor('a few polls', () => md.seen.length >= 2);
      md.preempt();
      const p = await agent.waitJob(polite, ['interrupted'], 10_000);
      const s = await agent.waitJob(stubborn, ['interrupted'], 10_000);
      expect(p.failure.class).toBe('preempted');
      expect(s.failure.class).toBe('preempted');
      expect(s.signal).toBe('SIGKILL');
      expect(fs.readFileSync(path.join(agent.dataDir, 'checkpoints', polite, 'ckpt'), 'utf8')).toBe('saved\n');
      const health = await (await fetch(`${agent.url}/healthz`)).json();
      expect(health).toMatchObject({ preempted: true, draining: true });
      const refused = await agent.api('POST', '/v1/jobs', { argv: ['true'] });
      expect(refused.status).toBe(409);
      await agent.kill('SIGTERM');
      // a restart on the same disk re-queues them; the polite one resumes from its checkpoint
      const again = await startAgent({ dataDir: agent.dataDir });
      expect(await again.waitJob(polite)).toMatchObject({ state: 'succeeded', attempts: 2, failedAttempts: 0 });
      expect(await again.waitJob(stubborn)).toMatchObject({ state: 'succeeded', attempts: 2 });
      await again.kill('SIGTERM');
    } finally {
      await md.close();
    }
  }, 30_000);
});
