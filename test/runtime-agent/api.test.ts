import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, requireBundle, startAgent, stopAllAgents, tmpDir, waitFor, writeExecutable, type AgentHandle } from './helpers';

afterAll(stopAllAgents);

describe('mlinfra-agent serve: HTTP API', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await startAgent({ args: ['--gpus', '4', '--max-cpu-jobs', '4'] });
  });

  test('/healthz is the only unauthenticated route', async () => {
    const h = await fetch(`${agent.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ ok: true, gpus: 4 });
    for (const [method, p] of [['GET', '/v1/jobs'], ['POST', '/v1/jobs'], ['GET', '/v1/jobs/x'], ['GET', '/v1/jobs/x/logs'], ['POST', '/v1/jobs/x/cancel'], ['GET', '/metrics']]) {
      for (const auth of [undefined, 'Bearer wrong-token', `Basic ${agent.token}`, 'Bearer', `Bearer ${agent.token}x`]) {
        const res = await fetch(`${agent.url}${p}`, { method, headers: auth ? { authorization: auth } : {} });
        expect(res.status).toBe(401);
        expect(await res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String), field: 'authorization' } });
      }
    }
  });

  test.each([
    [{ argv: 'echo hi' }, 'argv'],
    [{}, 'argv'],
    [{ argv: [] }, 'argv'],
    [{ argv: [1, 2] }, 'argv.0'],
    [{ argv: [''] }, 'argv.0'],
    [{ argv: ['true'], gpus: '2' }, 'gpus'],
    [{ argv: ['true'], gpus: 1.5 }, 'gpus'],
    [{ argv: ['true'], gpus: -1 }, 'gpus'],
    [{ argv: ['true'], retries: 'many' }, 'retries'],
    [{ argv: ['true'], timeoutSeconds: 0 }, 'timeoutSeconds'],
    [{ argv: ['true'], kind: 'serve' }, 'kind'],
    [{ argv: ['true'], env: { 'BAD-KEY': 'x' } }, 'env'],
    [{ argv: ['true'], env: { OK: 1 } }, 'env.OK'],
    [{ argv: ['true'], surprise: true }, 'surprise'],
    [{ argv: ['true'], kind: 'batch' }, 'input'],
    [{ argv: ['true'], kind: 'batch', input: '/tmp/in' }, 'output'],
    [{ argv: ['true'], input: 'ftp://x/y' }, 'input'],
    [{ argv: ['true'], cwd: 'relative/dir' }, 'cwd'],
    [[1, 2, 3], 'body'],
    ['"just a string"', 'body'],
  ])('malformed body %j -> 400 naming %s', async (body, field) => {
    const r = await agent.api('POST', '/v1/jobs', body);
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error: { code: 'bad_request', message: expect.any(String), field } });
  });

  test('broken JSON, wrong content type and oversized bodies are 4xx JSON', async () => {
    const broken = await agent.api('POST', '/v1/jobs', '{"argv": ["x"', { 'content-type': 'application/json' });
    expect(broken.status).toBe(400);
    expect(broken.json.error.field).toBe('body');
    const ct = await agent.api('POST', '/v1/jobs', 'argv=x', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(ct.status).toBe(415);
    expect(ct.json.error).toMatchObject({ code: 'unsupported_media_type', field: 'content-type' });
    const huge = await agent.api('POST', '/v1/jobs', { argv: ['x'.repeat(2 * 1024 * 1024)] });
    expect(huge.status).toBe(413);
    expect(huge.json.error.code).toBe('body_too_large');
    const nf = await agent.api('GET', '/v1/jobs/j-nope');
    expect(nf.status).toBe(404);
    expect(nf.json.error.code).toBe('not_found');
  });

  test('a job wanting more GPUs than the host has is rejected naming gpus and the count', async () => {
    const r = await agent.api('POST', '/v1/jobs', { argv: ['true'], gpus: 5 });
    expect(r.status).toBe(400);
    expect(r.json.error.field).toBe('gpus');
    expect(r.json.error.message).toContain('4');
  });

  test('submit, follow the log live, exit code and failure class', async () => {
    const id = await agent.submit({ argv: ['sh', '-c', 'echo first; sleep 0.5; echo second; echo oops >&2; exit 3'] });
    const res = await fetch(`${agent.url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${agent.token}` } });
    expect(res.status).toBe(200);
    const text = await res.text(); // ends only when the job ends
    expect(text).toBe('first\nsecond\noops\n');
    const job = await agent.job(id);
    expect(job).toMatchObject({ id, state: 'failed', exitCode: 3, attempts: 1, failure: { class: 'exit', reason: 'exited with code 3' } });
    const again = await agent.api('GET', `/v1/jobs/${id}/logs`);
    expect(again.text).toBe('first\nsecond\noops\n');
    const list = await agent.api('GET', '/v1/jobs');
    expect(list.json.jobs.map((j: { id: string }) => j.id)).toContain(id);
  });

  test('cancel a running job kills its whole process tree; a second cancel is 409', async () => {
    const dir = tmpDir();
    const pidFile = path.join(dir, 'grandchild.pid');
    const id = await agent.submit({ argv: ['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`] });
    await agent.waitJob(id, ['running']);
    const grandchild = Number(await waitFor('grandchild pid', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim()));
    const c = await agent.api('POST', `/v1/jobs/${id}/cancel`);
    expect(c.status).toBe(200);
    const job = await agent.waitJob(id);
    expect(job).toMatchObject({ state: 'cancelled', failure: { class: 'cancelled' } });
    await waitFor('the grandchild to die', () => {
      try { process.kill(grandchild, 0); return false; } catch { return true; }
    }, 5000);
    const again = await agent.api('POST', `/v1/jobs/${id}/cancel`);
    expect(again.status).toBe(409);
  });

  test('with --gpus 4, jobs wanting 2,2,2 never run three at once and get distinct CUDA_VISIBLE_DEVICES pairs', async () => {
    const dir = tmpDir();
    const script = 'echo "$CUDA_VISIBLE_DEVICES $(date +%s%N)" > "$D/$MLINFRA_JOB_ID.start"; sleep 1; echo "$(date +%s%N)" > "$D/$MLINFRA_JOB_ID.end"';
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await agent.submit({ argv: ['sh', '-c', script], gpus: 2, env: { D: dir } }));
    for (const id of ids) expect(await agent.waitJob(id)).toMatchObject({ state: 'succeeded' });
    const runs = ids.map((id) => {
      const [cvd, start] = fs.readFileSync(path.join(dir, `${id}.start`), 'utf8').trim().split(' ');
      const end = fs.readFileSync(path.join(dir, `${id}.end`), 'utf8').trim();
      return { cvd, start: BigInt(start), end: BigInt(end) };
    });
    for (const r of runs) {
      const ids2 = r.cvd.split(',');
      expect(ids2).toHaveLength(2);
      expect(new Set(ids2).size).toBe(2);
      for (const g of ids2) expect(['0', '1', '2', '3']).toContain(g);
    }
    // never three at once: at every start, count the runs alive
    for (const r of runs) {
      const alive = runs.filter((o) => o.start <= r.start && o.end > r.start);
      expect(alive.length).toBeLessThanOrEqual(2);
      if (alive.length === 2) {
        const [a, b] = alive.map((x) => x.cvd.split(','));
        expect(a.filter((g) => b.includes(g))).toEqual([]);
      }
    }
    // the first two ran concurrently on disjoint pairs
    expect(runs[1].start < runs[0].end).toBe(true);
  });

  test('a follower that disconnects early does not disturb the job; many followers see the same bytes', async () => {
    const id = await agent.submit({ argv: ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done'] });
    const ac = new AbortController();
    const early = await fetch(`${agent.url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${agent.token}` }, signal: ac.signal });
    const reader = early.body!.getReader();
    await reader.read();
    ac.abort();
    const followers = await Promise.all(Array.from({ length: 5 }, () =>
      fetch(`${agent.url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${agent.token}` } }).then((r) => r.text())));
    const expected = [1, 2, 3, 4, 5].map((i) => `tick ${i}\n`).join('');
    for (const text of followers) expect(text).toBe(expected);
    expect(await agent.job(id)).toMatchObject({ state: 'succeeded' });
    const bad = await agent.api('GET', `/v1/jobs/${id}/logs?follow=yes`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('follow');
    const filtered = await agent.api('GET', '/v1/jobs?state=succeeded&limit=500');
    expect(filtered.json.jobs.every((j: { state: string }) => j.state === 'succeeded')).toBe(true);
    expect(filtered.json.jobs.map((j: { id: string }) => j.id)).toContain(id);
  });

  test('a CPU-only job sees CUDA_VISIBLE_DEVICES="" and the MLINFRA_* variables', async () => {
    const id = await agent.submit({ argv: ['sh', '-c', 'echo "cvd=[$CUDA_VISIBLE_DEVICES] set=${CUDA_VISIBLE_DEVICES+yes} attempt=$MLINFRA_ATTEMPT ckpt=$MLINFRA_CHECKPOINT_DIR tok=[$MLINFRA_AGENT_TOKEN] x=$X"'], env: { X: 'y' } });
    await agent.waitJob(id);
    const log = (await agent.api('GET', `/v1/jobs/${id}/logs`)).text;
    expect(log).toContain('cvd=[] set=yes attempt=1');
    expect(log).toContain(`ckpt=${agent.dataDir}/checkpoints/${id}`);
    expect(log).toContain('tok=[]');
    expect(log).toContain('x=y');
  });

  test('priority: higher-priority queued jobs start first', async () => {
    const a = await startAgent({ args: ['--gpus', '0', '--max-cpu-jobs', '1', '--paused'] });
    const dir = tmpDir();
    const cmd = (n: string): Record<string, unknown> => ({ argv: ['sh', '-c', `echo ${n} >> ${dir}/order`] });
    const low = await a.submit({ ...cmd('low'), priority: -5 });
    const mid = await a.submit(cmd('mid'));
    const high = await a.submit({ ...cmd('high'), priority: 10 });
    expect((await a.job(low)).state).toBe('queued');
    await a.kill('SIGTERM');
    const b = await startAgent({ dataDir: a.dataDir, args: ['--max-cpu-jobs', '1'] });
    for (const id of [low, mid, high]) await b.waitJob(id);
    expect(fs.readFileSync(`${dir}/order`, 'utf8')).toBe('high\nmid\nlow\n');
  });
});

describe('mlinfra-agent serve: start-up', () => {
  test('refuses to start without a token, with a clear message', () => {
    requireBundle();
    const env = { ...process.env };
    delete env.MLINFRA_AGENT_TOKEN;
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', tmpDir()], { env, encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('refusing to start without a token');
  });

  test('accepts the token from MLINFRA_AGENT_TOKEN', async () => {
    const dataDir = tmpDir();
    const env = { ...process.env, MLINFRA_AGENT_TOKEN: 'env-token-0123456789' };
    const { spawn } = await import('node:child_process');
    const p = spawn(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    const url = await waitFor('listening', () => /"url":"(http:[^"]+)"[^\n]*listening/.exec(out)?.[1]);
    const ok = await fetch(`${url}/v1/jobs`, { headers: { authorization: 'Bearer env-token-0123456789' } });
    expect(ok.status).toBe(200);
    p.kill('SIGTERM');
    await new Promise((r) => p.on('exit', r));
  });

  test('detects GPUs with nvidia-smi -L when --gpus is not given', async () => {
    const bin = tmpDir();
    writeExecutable(path.join(bin, 'nvidia-smi'), [
      '#!/bin/sh',
      '[ "$1" = "-L" ] || exit 1',
      'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555555)"',
      'echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555556)"',
      'echo "GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555557)"',
    ].join('\n'));
    const a = await startAgent({ env: { PATH: `${bin}:${process.env.PATH}` } });
    const h = (await (await fetch(`${a.url}/healthz`)).json()) as { gpus: number };
    expect(h.gpus).toBe(3);
    const r = await a.api('POST', '/v1/jobs', { argv: ['true'], gpus: 4 });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ field: 'gpus', message: expect.stringContaining('has 3') });
    const id = await a.submit({ argv: ['sh', '-c', 'echo $CUDA_VISIBLE_DEVICES'], gpus: 3 });
    await a.waitJob(id);
    expect((await a.api('GET', `/v1/jobs/${id}/logs`)).text).toBe('0,1,2\n');
  });

  test('graceful shutdown (SIGTERM) interrupts running jobs; the next start re-queues them without charging a retry', async () => {
    const a = await startAgent();
    const dir = tmpDir();
    const id = await a.submit({ argv: ['sh', '-c', `trap 'echo term >> ${dir}/t; exit 143' TERM; echo "a$MLINFRA_ATTEMPT" >> ${dir}/t; if [ "$MLINFRA_ATTEMPT" = 1 ]; then sleep 30 & wait; fi`] });
    await waitFor('attempt 1', () => fs.existsSync(`${dir}/t`));
    expect(await a.kill('SIGTERM')).toBe(0);
    const b = await startAgent({ dataDir: a.dataDir });
    const job = await b.waitJob(id);
    expect(job).toMatchObject({ state: 'succeeded', attempts: 2, failedAttempts: 0 });
    expect(job.runs[0]).toMatchObject({ attempt: 1, failure: { class: 'signal' } });
    expect(fs.readFileSync(`${dir}/t`, 'utf8')).toBe('a1\nterm\na2\n');
  });

  test('a second agent on the same data dir is refused; a follower of a queued job does not block shutdown', async () => {
    const a = await startAgent({ args: ['--paused'] });
    await expect(startAgent({ dataDir: a.dataDir })).rejects.toThrow(/another mlinfra-agent \(pid \d+\) is serving/);
    const id = await a.submit({ argv: ['true'] });
    const follower = fetch(`${a.url}/v1/jobs/${id}/logs?follow=1`, { headers: { authorization: `Bearer ${a.token}` } }).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    expect(await a.kill('SIGTERM')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await follower).toBe('');
    const b = await startAgent({ dataDir: a.dataDir });
    expect((await b.waitJob(id)).state).toBe('succeeded');
  });
});
