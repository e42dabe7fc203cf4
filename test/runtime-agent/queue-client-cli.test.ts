/**
 * `mlinfra-agent cluster status|list|logs -f|cancel` against two real agents sharing the SQS fake and a
 * file:// bucket: the CLI follows a job across attempts and hosts through whichever host it is pointed at.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, startAgent, tmpDir, waitFor, type AgentHandle } from './helpers';
import { clusterFlags, sqsForFile, type QueueFixture } from './queue-helpers';

const sqs = sqsForFile();
let n = 0;

function clusterArgs(q: QueueFixture, bucket: string): string[] {
  return clusterFlags(q, bucket, '--max-cpu-jobs', '1', '--checkpoint-seconds', '0.3', '--log-ship-seconds', '0.2', '--max-attempts', '3');
}

interface CliRun {
  readonly done: Promise<{ code: number | null; stdout: Buffer; stderr: string }>;
  stdout(): Buffer;
}

/** Runs the bundled CLI as its own process against host `h`. */
function cli(h: AgentHandle, args: string[]): CliRun {
  const p = spawn(process.execPath, [BUNDLE, 'cluster', ...args, '--url', h.url, '--token-file', h.tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  p.stdout.on('data', (c: Buffer) => out.push(c));
  p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  return {
    stdout: () => Buffer.concat(out),
    done: new Promise((resolve) => p.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }))),
  };
}

test('logs -f follows a job across a host that goes away and the attempt on the other host; status and list answer from the other host', async () => {
  const q = await sqs.create(`cli${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const b = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  // attempt 1 prints and waits to be stopped; attempt 2 prints across several shipping intervals (é: raw UTF-8 bytes)
  const script = 'echo "attempt $MLINFRA_CLUSTER_ATTEMPT start"; if [ "$MLINFRA_CLUSTER_ATTEMPT" = 1 ]; then sleep 60; fi; '
    + 'sleep 0.6; echo "attempt $MLINFRA_CLUSTER_ATTEMPT middle é"; sleep 0.6; echo "attempt $MLINFRA_CLUSTER_ATTEMPT end"';
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', script] });
  expect(r.status).toBe(201);
  const id = r.json.id as string;
  const running = await waitFor('attempt 1 running', async () => {
    const j = (await a.api('GET', `/v1/cluster/jobs/${id}`)).json;
    return j.state === 'running' ? j : undefined;
  }, 40_000, 100);
  const [first, other] = running.attempts[0].host.endsWith(`/${a.pid}`) ? [a, b] : [b, a];
  const follow = cli(other, ['logs', id, '-f', '--poll-seconds', '0.2']);
  await waitFor('attempt 1 output through the follower', () => follow.stdout().toString().includes('attempt 1 start\n'), 20_000);

  await first.kill('SIGTERM'); // shutdown: attempt 1 is interrupted and released; only the other host is left to take it
  const res = await follow.done;
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  const expected = 'attempt 1 start\nattempt 2 start\nattempt 2 middle é\nattempt 2 end\n';
  expect(res.stdout.equals(Buffer.from(expected, 'utf8'))).toBe(true);

  const st = await cli(other, ['status', id]).done;
  expect(st.code).toBe(0);
  const job = JSON.parse(st.stdout.toString());
  expect(job).toMatchObject({ id, state: 'succeeded', exitCode: 0, attempt: 2 });
  expect(job.attempts.map((x: any) => [x.attempt, x.outcome])).toEqual([[1, 'interrupted'], [2, 'succeeded']]);
  expect(job.attempts[0].host).toMatch(new RegExp(`/${first.pid}$`));
  expect(job.attempts[1].host).toMatch(new RegExp(`/${other.pid}$`));

  const ls = await cli(other, ['list']).done;
  expect(ls.code).toBe(0);
  expect(ls.stdout.toString().split('\n')).toContain(`${id}\tsucceeded\t0\t2\tsh -c ${script}`);
  const none = await cli(other, ['list', '--state', 'failed', '--json']).done;
  expect(JSON.parse(none.stdout.toString())).toEqual({ jobs: [] });

  // the whole log once, without -f, matches the followed bytes
  const once = await cli(other, ['logs', id]).done;
  expect(once.code).toBe(0);
  expect(once.stdout.equals(res.stdout)).toBe(true);
}, 120_000);

test('logs -f exits 1 when the job fails for good (exit 75 on every attempt); unknown ids answer 404 JSON and exit 1', async () => {
  const q = await sqs.create(`cli${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const b = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', 'echo "try $MLINFRA_CLUSTER_ATTEMPT"; exit 75'], retries: 1 });
  const id = r.json.id as string;
  const res = await cli(b, ['logs', id, '-f', '--poll-seconds', '0.2']).done;
  expect(res.code).toBe(1);
  expect(res.stdout.toString()).toBe('try 1\ntry 2\n');
  const job = JSON.parse((await cli(b, ['status', id]).done).stdout.toString());
  expect(job).toMatchObject({ state: 'failed', exitCode: 75, attempt: 2 });

  const missing = await cli(b, ['status', 'nope-000000000000']).done;
  expect(missing.code).toBe(1);
  expect(JSON.parse(missing.stderr).error.code).toBe('not_found');
  const bad = await cli(b, ['logs', id, '-f', '--poll-seconds', '0']).done;
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toContain('--poll-seconds');
  expect(fs.existsSync(path.join(bucket, 'jobs', `${id}.json`))).toBe(true);
}, 120_000);

test('logs -f reads only new bytes (?from= with the length and a digest of what came before); a late chunk of an earlier attempt is told once', async () => {
  const q = await sqs.create(`cli${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  // the rest waits for the test's go: on a loaded machine a timed pause could let 'second' ship with 'first'
  const go = path.join(tmpDir(), 'go');
  const r = await a.api('POST', '/v1/cluster/jobs', { argv: ['sh', '-c', `echo first; while [ ! -e ${go} ]; do sleep 0.1; done; echo second; sleep 1; echo third`] });
  const id = r.json.id as string;
  const follow = cli(a, ['logs', id, '-f', '--poll-seconds', '0.2']);
  await waitFor('the first line through the follower', () => follow.stdout().toString() === 'first\n', 30_000);
  // a chunk of attempt 0 sorts before what was printed (as a late chunk of a lost lease's attempt would)
  fs.writeFileSync(path.join(bucket, 'logs', id, '0000-000000.log'), 'late\n');
  fs.writeFileSync(go, '');
  const res = await follow.done;
  expect(res.code).toBe(0);
  expect(res.stderr.match(/changed before the part already printed/g)).toHaveLength(1);
  // printing goes on from byte 6 of the log as it is now ('late\nf' came before)
  expect(res.stdout.toString()).toBe('first\nirst\nsecond\nthird\n');

  const whole = Buffer.from('late\nfirst\nsecond\nthird\n');
  const tail = await fetch(`${a.url}/v1/cluster/jobs/${id}/logs?from=11`, { headers: { authorization: `Bearer ${a.token}` } });
  expect(tail.status).toBe(200);
  expect(await tail.text()).toBe('second\nthird\n');
  expect(tail.headers.get('x-log-length')).toBe(String(whole.length));
  expect(tail.headers.get('x-log-head-sha256')).toBe(createHash('sha256').update(whole.subarray(0, 11)).digest('hex'));
  const past = await fetch(`${a.url}/v1/cluster/jobs/${id}/logs?from=1000`, { headers: { authorization: `Bearer ${a.token}` } });
  expect(await past.text()).toBe('');
  expect(past.headers.get('x-log-head-sha256')).toBe(createHash('sha256').update(whole).digest('hex'));
  const bad = await a.api('GET', `/v1/cluster/jobs/${id}/logs?from=-1`);
  expect(bad.status).toBe(400);
  expect(bad.json.error).toMatchObject({ code: 'bad_request', field: 'from' });
  expect(bad.json.error.message).toContain('"-1"');
}, 120_000);

test('logs --rank follows one rank of a gang across its attempts; a rank the gang does not have is refused', async () => {
  const q = await sqs.create(`cli${++n}`);
  const bucket = tmpDir();
  const env = { ...q.env, MLINFRA_GANG_ADDRESS: '127.0.0.1' };
  const a = await startAgent({ args: clusterArgs(q, bucket), env });
  await startAgent({ args: clusterArgs(q, bucket), env });
  // attempt 1: rank 1 fails (exit 3, charged: retries 1 lets attempt 2 run); attempt 2 succeeds
  const script = 'echo "rank $MLINFRA_NODE_RANK attempt $MLINFRA_GANG_ATTEMPT"; '
    + 'if [ "$MLINFRA_GANG_ATTEMPT" = 1 ] && [ "$MLINFRA_NODE_RANK" = 1 ]; then exit 3; fi; sleep 0.5; echo "rank $MLINFRA_NODE_RANK done"';
  const r = await a.api('POST', '/v1/cluster/gangs', { argv: ['sh', '-c', script], nodes: 2, retries: 1, gangTimeoutSeconds: 60 });
  expect(r.status).toBe(201);
  const id = r.json.id as string;
  const res = await cli(a, ['logs', id, '--rank', '1', '-f', '--poll-seconds', '0.2']).done;
  expect(res.code).toBe(0);
  // the rank's own lines (the gang-rank wrapper's lines are in the same log)
  const own = (b: Buffer) => b.toString().split('\n').filter((l) => l && !l.startsWith('[gang-rank]')).join('\n');
  expect(own(res.stdout)).toBe('rank 1 attempt 1\nrank 1 attempt 2\nrank 1 done');
  const g = (await a.api('GET', `/v1/cluster/gangs/${id}`)).json;
  expect(g).toMatchObject({ state: 'succeeded', attempt: 2 });
  expect(g.attempts[0]).toMatchObject({ outcome: 'exit' });
  expect(res.stderr).toMatch(new RegExp(`gang ${id} attempt 1, rank 1: job \\S+\\n(.|\\n)*gang ${id} attempt 2, rank 1: job \\S+\\n`));

  const once = await cli(a, ['logs', id, '--rank', '0']).done;
  expect(once.code).toBe(0);
  expect(own(once.stdout)).toMatch(/^rank 0 attempt 1\n(rank 0 done\n)?rank 0 attempt 2\nrank 0 done$/);

  const bad = await cli(a, ['logs', id, '--rank', '2']).done;
  expect(bad.code).toBe(1);
  expect(JSON.parse(bad.stderr).error).toMatchObject({ code: 'bad_request', field: 'rank' });
  expect(JSON.parse(bad.stderr).error.message).toContain('has 2 nodes');
}, 120_000);
