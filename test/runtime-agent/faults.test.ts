/**
 * The agent under faults (issue 21): disk full or read-only, leftover children holding the job's
 * pipes, stalled and vanishing log followers, timers past 24.8 days, a crash between spawn and pid
 * record, log bytes, two agents on one data dir, slow clients, a bad token.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { killRounds } from './kill-rounds';
import { BUNDLE, pidAlive, sleep, startAgent, stopAllAgents, tmpDir, waitFor, type AgentHandle } from './helpers';

const mounts: string[] = [];
afterAll(async () => {
  await stopAllAgents();
  for (const m of mounts.reverse()) {
    spawnSync('umount', ['-l', m]);
    fs.rmSync(m, { recursive: true, force: true });
  }
});

/** Mounts a tmpfs of `size` at `dir` (default: a fresh one); null when this machine does not let the test mount (not root). */
function tmpfs(size: string, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-agent-tmpfs-')), ro = false): string | null {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `${ro ? 'ro,' : ''}size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  mounts.push(dir);
  return dir;
}

const rssKiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

describe('disk full and read-only', () => {
  test('a job filling the disk fails with class disk; submits get 507 naming the disk; the agent stays up and recovers when space returns', async () => {
    const mnt = tmpfs('8m');
    if (!mnt) return void process.stderr.write('faults.test: cannot mount a tmpfs here (not root): disk-full case not run\n');
    const a = await startAgent({ dataDir: path.join(mnt, 'd') });
    const id = await a.submit({ argv: ['sh', '-c', 'head -c 20000000 /dev/zero | tr "\\0" x'] });
    const job = await a.waitJob(id, undefined, 30_000);
    expect(job).toMatchObject({ state: 'failed', failure: { class: 'disk', reason: expect.stringMatching(/ENOSPC|no space/i) } });
    const refused = await a.api('POST', '/v1/jobs', { argv: ['true'] });
    expect(refused.status).toBe(507);
    expect(refused.json.error).toMatchObject({ code: 'disk_full', field: 'disk' });
    expect((await a.api('GET', '/healthz')).json.fault).toMatchObject({ kind: 'full' });
    // a kill -9 and a restart on the full disk: status is served, submits refused, no crash loop
    await a.kill('SIGKILL');
    const b = await startAgent({ dataDir: a.dataDir });
    // the failure could not be journaled before the kill: the restart records the job interrupted
    expect(['failed', 'interrupted']).toContain((await b.job(id)).state);
    expect((await b.api('POST', '/v1/jobs', { argv: ['true'] })).status).toBe(507);
    // space returns: the agent accepts and runs jobs again
    fs.rmSync(path.join(a.dataDir, 'logs', `${id}.log`));
    fs.rmSync(path.join(a.dataDir, 'logs', `${id}.log.1`), { force: true });
    const next = await waitFor('submits accepted again', async () => {
      const r = await b.api('POST', '/v1/jobs', { argv: ['sh', '-c', 'echo back'] });
      return r.status === 201 ? (r.json.id as string) : undefined;
    }, 15_000, 200);
    expect(await b.waitJob(next)).toMatchObject({ state: 'succeeded' });
    expect(b.proc.exitCode).toBeNull();
  }, 60_000);

  test('a log dir turned read-only: the next output fails the job (class disk), submits get 503, recovery when writable again', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-agent-rolog-'));
    mounts.push(base);
    const logs = path.join(base, 'logs');
    if (!tmpfs('1m', logs)) return void process.stderr.write('faults.test: cannot mount a tmpfs here (not root): read-only case not run\n');
    const a = await startAgent({ dataDir: base });
    const dir = tmpDir();
    const id = await a.submit({ argv: ['sh', '-c', `while [ ! -e ${dir}/go ]; do sleep 0.05; done; echo first; sleep 30`] });
    await a.waitJob(id, ['running']);
    execFileSync('mount', ['-o', 'remount,ro', logs]);
    fs.writeFileSync(`${dir}/go`, '');
    expect(await a.waitJob(id)).toMatchObject({ state: 'failed', failure: { class: 'disk', reason: expect.stringContaining('EROFS') } });
    const r = await a.api('POST', '/v1/jobs', { argv: ['true'] });
    expect(r.status).toBe(503);
    expect(r.json.error).toMatchObject({ code: 'disk_read_only', field: 'disk' });
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    execFileSync('mount', ['-o', 'remount,rw', logs]);
    const next = await waitFor('accepted again', async () => {
      const x = await a.api('POST', '/v1/jobs', { argv: ['sh', '-c', 'echo ok'] });
      return x.status === 201 ? (x.json.id as string) : undefined;
    }, 15_000, 200);
    expect(await a.waitJob(next)).toMatchObject({ state: 'succeeded' });
    expect((await a.api('GET', `/v1/jobs/${next}/logs`)).text).toBe('ok\n');
  }, 40_000);
});

describe('children that leave the process group', () => {
  let a: AgentHandle;
  beforeAll(async () => {
    a = await startAgent({ args: ['--grace-seconds', '1'] });
  });

  test('a setsid child holding stdout does not keep the job running; it is killed when the job ends', async () => {
    const dir = tmpDir();
    const t0 = Date.now();
    const id = await a.submit({ argv: ['sh', '-c', `setsid sh -c 'echo $$ > ${dir}/pid; exec sleep 600' & sleep 1; echo main-done`] });
    const job = await a.waitJob(id, undefined, 15_000);
    expect(job.state).toBe('succeeded');
    expect(Date.now() - t0).toBeLessThan(8000);
    const pid = Number(fs.readFileSync(`${dir}/pid`, 'utf8'));
    await waitFor('the setsid child to be killed', () => !pidAlive(pid), 5000);
  });

  test('timeout and cancel end a job whose setsid and double-forked children hold its pipes, and kill them', async () => {
    const dir = tmpDir();
    const daemon = `(sh -c 'echo $$ > ${dir}/daemon; exec sleep 600' &)`;
    const t1 = await a.submit({ timeoutSeconds: 1, argv: ['sh', '-c', `setsid sh -c 'echo $$ > ${dir}/s1; exec sleep 600' & ${daemon}; sleep 600`] });
    expect(await a.waitJob(t1, undefined, 15_000)).toMatchObject({ state: 'failed', failure: { class: 'timeout' } });
    for (const f of ['s1', 'daemon']) {
      const pid = Number(fs.readFileSync(`${dir}/${f}`, 'utf8'));
      await waitFor(`${f} killed`, () => !pidAlive(pid), 5000);
    }
    const c1 = await a.submit({ argv: ['sh', '-c', `setsid sh -c 'echo $$ > ${dir}/s2; exec sleep 600' & sleep 600`] });
    await waitFor('s2 pid', () => fs.existsSync(`${dir}/s2`) && fs.readFileSync(`${dir}/s2`, 'utf8').trim() !== '');
    await a.waitJob(c1, ['running']);
    expect((await a.api('POST', `/v1/jobs/${c1}/cancel`)).status).toBe(200);
    expect(await a.waitJob(c1, undefined, 10_000)).toMatchObject({ state: 'cancelled' });
    const s2 = Number(fs.readFileSync(`${dir}/s2`, 'utf8'));
    await waitFor('s2 killed', () => !pidAlive(s2), 5000);
  }, 40_000);

  test('SIGTERM of the agent does not hang on a job with a setsid child', async () => {
    const b = await startAgent({ args: ['--grace-seconds', '1'] });
    const id = await b.submit({ argv: ['sh', '-c', 'setsid sleep 600 & sleep 600'] });
    await b.waitJob(id, ['running']);
    const t0 = Date.now();
    expect(await b.kill('SIGTERM')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
  });
});

describe('log followers', () => {
  test('a stalled follower of a 120 MB log does not grow the agent\'s memory', async () => {
    const a = await startAgent({ args: ['--log-max-bytes', String(512 * 1024 * 1024)] });
    const dir = tmpDir();
    const id = await a.submit({ argv: ['sh', '-c', `while [ ! -e ${dir}/go ]; do sleep 0.05; done; head -c 120000000 /dev/zero | tr "\\0" x; sleep 30`] });
    await a.waitJob(id, ['running']);
    const before = rssKiB(a.pid);
    // a follower that reads nothing: the socket's buffers fill, then the agent must stop reading for it
    const sock = net.connect(a.port, '127.0.0.1');
    sock.write(`GET /v1/jobs/${id}/logs?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a.token}\r\n\r\n`);
    sock.pause();
    await sleep(300);
    fs.writeFileSync(`${dir}/go`, '');
    const logFile = path.join(a.dataDir, 'logs', `${id}.log`);
    await waitFor('120 MB written', () => fs.existsSync(logFile) && fs.statSync(logFile).size >= 120_000_000, 60_000, 200);
    await sleep(500);
    const grown = (rssKiB(a.pid) - before) / 1024;
    sock.destroy();
    await a.api('POST', `/v1/jobs/${id}/cancel`);
    expect(grown).toBeLessThan(40);
  }, 90_000);

  test('1,000 followers that disconnect during the history leak no fd', async () => {
    const a = await startAgent();
    const id = await a.submit({ argv: ['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" y; sleep 60'] });
    const logFile = path.join(a.dataDir, 'logs', `${id}.log`);
    await waitFor('history written', () => fs.existsSync(logFile) && fs.statSync(logFile).size >= 1_000_000, 20_000);
    const disconnect = (): Promise<void> => new Promise((resolve) => {
      const s = net.connect(a.port, '127.0.0.1', () => {
        s.write(`GET /v1/jobs/${id}/logs?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a.token}\r\n\r\n`);
      });
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => resolve());
    });
    await Promise.all(Array.from({ length: 20 }, () => disconnect()));
    await sleep(300);
    const before = fdCount(a.pid);
    for (let i = 0; i < 50; i++) await Promise.all(Array.from({ length: 20 }, () => disconnect()));
    await waitFor('fds back to their level', () => fdCount(a.pid) <= before + 5, 10_000, 100);
    await a.api('POST', `/v1/jobs/${id}/cancel`);
  }, 60_000);

  test('logs and submit --follow print the bytes as written (random bytes, UTF-8 split across chunks)', async () => {
    const a = await startAgent();
    const dir = tmpDir();
    const rnd = Buffer.alloc(1024 * 1024);
    const fd = fs.openSync('/dev/urandom', 'r');
    fs.readSync(fd, rnd, 0, rnd.length, null);
    fs.closeSync(fd);
    const text = Buffer.from('日本語のテキスト、ログの中で分割される。'.repeat(5000));
    const payload = Buffer.concat([text, rnd, text]);
    fs.writeFileSync(`${dir}/payload`, payload);
    const id = await a.submit({ argv: ['sh', '-c', `cat ${dir}/payload`] });
    await a.waitJob(id);
    const r = spawnSync(process.execPath, [BUNDLE, 'logs', id], { env: { ...process.env, MLINFRA_AGENT_URL: a.url, MLINFRA_AGENT_TOKEN: a.token }, maxBuffer: 64 * 1024 * 1024 });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, payload)).toBe(0);
  });
});

describe('timers, crash windows, locks', () => {
  test('a timeout of a year does not fire at once; a grace of 3,000,000 s still lets SIGTERM be handled', async () => {
    const a = await startAgent({ args: ['--grace-seconds', '3000000'] });
    const id = await a.submit({ argv: ['sh', '-c', 'sleep 1; echo slept'], timeoutSeconds: 31_536_000 });
    expect(await a.waitJob(id)).toMatchObject({ state: 'succeeded' });
    const dir = tmpDir();
    const c = await a.submit({ argv: ['sh', '-c', `trap 'sleep 0.5; echo graceful > ${dir}/t; exit 0' TERM; echo up > ${dir}/up; sleep 600 & wait`] });
    await waitFor('job up', () => fs.existsSync(`${dir}/up`));
    await a.api('POST', `/v1/jobs/${c}/cancel`);
    await a.waitJob(c);
    expect(fs.readFileSync(`${dir}/t`, 'utf8')).toBe('graceful\n');
  });

  test('a crash between the spawn and the pid\'s journal record: the restart finds the supervisor by its pid file and re-attaches (no second run)', async () => {
    const dir = tmpDir();
    const a = await startAgent();
    const id = await a.submit({ argv: ['sh', '-c', `echo $$ >> ${dir}/pids; exec sleep 600`], retries: 1 });
    await waitFor('first attempt', () => fs.existsSync(`${dir}/pids`));
    await a.kill('SIGKILL');
    // what a kill between the spawn and the pid's record leaves: an open run without pid
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3');
    const db = new Database(path.join(a.dataDir, 'journal.sqlite'));
    expect(db.prepare('UPDATE runs SET pid = NULL, pgid = NULL WHERE ended_at IS NULL').run().changes).toBe(1);
    db.close();
    const first = Number(fs.readFileSync(`${dir}/pids`, 'utf8').trim());
    expect(pidAlive(first)).toBe(true);
    const b = await startAgent({ dataDir: a.dataDir });
    expect(b.output()).toMatch(/"reattached":1/);
    expect(await b.job(id)).toMatchObject({ state: 'running', attempts: 1 });
    expect(pidAlive(first)).toBe(true);
    await b.api('POST', `/v1/jobs/${id}/cancel`);
    expect(await b.waitJob(id)).toMatchObject({ state: 'cancelled', attempts: 1 });
    expect(pidAlive(first)).toBe(false);
    expect(fs.readFileSync(`${dir}/pids`, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  test('a job whose process never started before a crash is re-queued without counting a retry', async () => {
    const dir = tmpDir();
    const a = await startAgent();
    const id = await a.submit({ argv: ['sh', '-c', `echo $$ >> ${dir}/pids; exec sleep 600`], retries: 0 });
    await waitFor('first attempt', () => fs.existsSync(`${dir}/pids`));
    await a.kill('SIGKILL');
    // what a kill between the run's record and the spawn leaves: an open run, no pid, its run dir
    // with the FIFOs but no supervisor pid or status, no process
    process.kill(Number(fs.readFileSync(`${dir}/pids`, 'utf8')), 'SIGKILL');
    const runDir = path.join(a.dataDir, 'runs', '1');
    await waitFor('the supervisor to end', () => fs.existsSync(path.join(runDir, 's')));
    for (const f of ['p', 's']) fs.rmSync(path.join(runDir, f));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3');
    const db = new Database(path.join(a.dataDir, 'journal.sqlite'));
    db.prepare('UPDATE runs SET pid = NULL, pgid = NULL WHERE ended_at IS NULL').run();
    db.close();
    const b = await startAgent({ dataDir: a.dataDir });
    await waitFor('second attempt', () => fs.readFileSync(`${dir}/pids`, 'utf8').trim().split('\n').length === 2);
    expect(await b.job(id)).toMatchObject({ state: 'running', attempts: 2, failedAttempts: 0 });
    await b.api('POST', `/v1/jobs/${id}/cancel`);
  });

  test('a second agent on the same data dir is refused even when the first one\'s program file has another name', async () => {
    const renamed = path.join(path.dirname(BUNDLE), `renamed-${process.pid}.js`);
    expect(renamed).not.toContain('mlinfra-agent');
    fs.copyFileSync(BUNDLE, renamed);
    try {
      // no argument may name the program either (the data dir and token paths included)
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-check-'));
      mounts.push(dataDir);
      const a = await startAgent({ bundle: renamed, dataDir });
      const id = await a.submit({ argv: ['sleep', '30'] });
      await a.waitJob(id, ['running']);
      const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', a.dataDir, '--token-file', a.tokenFile], { encoding: 'utf8', timeout: 15_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/another mlinfra-agent \(pid \d+\) is serving data dir/);
      expect((await a.job(id)).state).toBe('running');
      await a.api('POST', `/v1/jobs/${id}/cancel`);
    } finally {
      fs.rmSync(renamed, { force: true });
    }
  });
});

describe('slow clients and bad tokens', () => {
  const slowBody = (a: AgentHandle, token: string): net.Socket => {
    const s = net.connect(a.port, '127.0.0.1');
    s.write(`POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"argv":`);
    s.on('error', () => undefined);
    s.resume();
    return s;
  };
  const closed = (s: net.Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

  test('a slow body is cut after the request timeout, also after its 401; SIGTERM does not wait for a slow client', async () => {
    const a = await startAgent({ args: ['--request-timeout-seconds', '1'] });
    const t0 = Date.now();
    const good = slowBody(a, a.token);
    const bad = slowBody(a, 'wrong-token-wrong-token');
    await Promise.all([closed(good), closed(bad)]);
    expect(Date.now() - t0).toBeLessThan(5000);
    const open = slowBody(a, a.token);
    await sleep(100);
    const t1 = Date.now();
    expect(await a.kill('SIGTERM')).toBe(0);
    expect(Date.now() - t1).toBeLessThan(3000);
    open.destroy();
  });

  test('an agent whose stdout reader died (EPIPE on its log) still shuts down on SIGTERM, with exit 0', async () => {
    const a = await startAgent();
    // what `npx mlinfra-agent serve` sees when its parent is killed: nobody reads its stdout any more
    a.proc.stdout!.destroy();
    await sleep(300);
    a.proc.kill('SIGTERM');
    const code = await Promise.race([a.exited(), sleep(10_000).then(() => 'hung')]);
    if (code === 'hung') await a.kill('SIGKILL');
    expect(code).toBe(0);
  });

  test('a token with whitespace inside, or too short, is refused at start with exit 2', async () => {
    for (const [token, msg] of [['abcd efgh ijkl mnop', /whitespace/], ['short', /at least 16/]] as const) {
      const dir = tmpDir();
      fs.writeFileSync(`${dir}/tok`, `${token}\n`);
      const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', `${dir}/d`, '--token-file', `${dir}/tok`], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });

  test('past --max-queued, submits get 429 with Retry-After; an Idempotency-Key returns the first job', async () => {
    const a = await startAgent({ args: ['--paused', '--max-queued', '3'] });
    const key = 'k-0123456789';
    const post = (k?: string): Promise<{ status: number; json: any; headers: Headers }> => a.api('POST', '/v1/jobs', { argv: ['true'] }, k ? { 'idempotency-key': k } : {});
    const keyed = await Promise.all(Array.from({ length: 5 }, () => post(key)));
    expect(new Set(keyed.map((r) => r.json.id)).size).toBe(1);
    expect(keyed.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
    await post();
    await post();
    const full = await post();
    expect(full.status).toBe(429);
    expect(full.json.error.code).toBe('queue_full');
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await post(key)).json.id).toBe(keyed[0].json.id);
    expect((await a.api('POST', '/v1/jobs', { argv: ['true'] }, { 'idempotency-key': 'has space' })).json.error.field).toBe('idempotency-key');
  });
});

describe('journal checked at open', () => {
  const serve = (dataDir: string, tokenFile: string, extra: string[] = []): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', dataDir, '--token-file', tokenFile, ...extra], { encoding: 'utf8', timeout: 15_000 });

  test('an empty or foreign journal file is refused with a clear error; --reset-journal keeps it aside and starts', async () => {
    const dir = tmpDir();
    fs.writeFileSync(`${dir}/tok`, 'token-0123456789abcdef\n');
    fs.mkdirSync(`${dir}/d`);
    fs.writeFileSync(`${dir}/d/journal.sqlite`, '');
    const empty = serve(`${dir}/d`, `${dir}/tok`);
    expect(empty.status).toBe(1);
    expect(empty.stderr).toMatch(/refusing the journal .*empty \(0 bytes\).*--reset-journal/s);
    fs.writeFileSync(`${dir}/d/journal.sqlite`, 'not a database at all, just text'.repeat(100));
    expect(serve(`${dir}/d`, `${dir}/tok`).stderr).toMatch(/not a readable SQLite database/);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3');
    fs.rmSync(`${dir}/d/journal.sqlite`);
    const foreign = new Database(`${dir}/d/journal.sqlite`);
    foreign.exec('CREATE TABLE invoices (id INTEGER)');
    foreign.close();
    expect(serve(`${dir}/d`, `${dir}/tok`).stderr).toMatch(/not an mlinfra-agent journal/);
    const a = await startAgent({ dataDir: `${dir}/d`, args: ['--reset-journal'] });
    expect((await a.api('GET', '/v1/jobs')).json.jobs).toEqual([]);
    expect(fs.readdirSync(`${dir}/d`).some((f) => f.startsWith('journal.sqlite.refused-'))).toBe(true);
  });

  test('a write-ahead log deleted or damaged after a crash is refused instead of silently dropping queued jobs', async () => {
    for (const damage of ['delete', 'corrupt'] as const) {
      const a = await startAgent({ args: ['--paused'] });
      for (let i = 0; i < 30; i++) await a.submit({ argv: ['true'] });
      await a.kill('SIGKILL');
      const wal = path.join(a.dataDir, 'journal.sqlite-wal');
      expect(fs.statSync(wal).size).toBeGreaterThan(8192);
      if (damage === 'delete') fs.rmSync(wal);
      else {
        const fd = fs.openSync(wal, 'r+');
        fs.writeSync(fd, Buffer.alloc(64, 0xab), 0, 64, 32 + 24 + 200);
        fs.closeSync(fd);
      }
      const r = serve(a.dataDir, a.tokenFile);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(damage === 'delete' ? /write-ahead log .*missing after an unclean stop/ : /write-ahead log is damaged at frame/);
    }
  });
});

describe('serve --job-user', () => {
  test('jobs run with that user\'s uid and gid, write their artifact dir, and cannot read the token, the journal or the logs', async () => {
    if (process.getuid?.() !== 0) return void process.stderr.write('faults.test: not root: --job-user case not run\n');
    const a = await startAgent({ args: ['--job-user', 'nobody'] });
    const script = [
      'id -u; id -g',
      `cat ${a.tokenFile} >/dev/null 2>&1 && echo token-read || echo token-denied`,
      `cat ${a.dataDir}/journal.sqlite >/dev/null 2>&1 && echo journal-read || echo journal-denied`,
      `ls ${a.dataDir}/logs >/dev/null 2>&1 && echo logs-read || echo logs-denied`,
      'echo model > "$MLINFRA_ARTIFACT_DIR/model.bin" && echo artifact-written',
      'echo "home=$HOME user=$USER"',
    ].join('; ');
    const id = await a.submit({ argv: ['sh', '-c', script] });
    expect(await a.waitJob(id)).toMatchObject({ state: 'succeeded' });
    expect((await a.api('GET', `/v1/jobs/${id}/logs`)).text).toBe(
      '65534\n65534\ntoken-denied\njournal-denied\nlogs-denied\nartifact-written\nhome=/nonexistent user=nobody\n');
  });

  test('an unknown --job-user stops the start with a message naming it', () => {
    const dir = tmpDir();
    fs.writeFileSync(`${dir}/tok`, 'token-0123456789abcdef\n');
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', `${dir}/d`, '--token-file', `${dir}/tok`, '--job-user', 'no-such-user-xyz'],
      { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--job-user "no-such-user-xyz": no such user');
  });
});

describe('random kill -9 rounds (the 20-round version is kill-rounds.slow.test.ts)', () => {
  test('3 rounds: 0 crashes, 0 lost, 0 completions recorded twice, 0 jobs run twice', async () => {
    const r = await killRounds(3, 30, 7);
    expect(r.accepted).toBeGreaterThan(10);
    expect(r).toMatchObject({ crashes: 0, lost: 0, duplicatedCompletions: 0, ranMoreThanOnce: 0 });
  }, 90_000);
});
