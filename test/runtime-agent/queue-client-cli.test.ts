/**
 * `mlinfra-agent cluster status|list|logs -f|cancel` against two real agents sharing the SQS fake and a
 * file:// bucket: the CLI follows a job across attempts and hosts through whichever host it is pointed at.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, requireBundle, startAgent, stopAllAgents, tmpDir, waitFor, type AgentHandle } from './helpers';
import { startSqsServer, type QueueFixture } from './queue-helpers';

let sqs: Awaited<ReturnType<typeof startSqsServer>>;
let n = 0;

beforeAll(async () => {
  requireBundle();
  sqs = await startSqsServer();
});
afterAll(async () => {
  await stopAllAgents();
  await sqs?.close();
});

function clusterArgs(q: QueueFixture, bucket: string): string[] {
  return ['--max-cpu-jobs', '1', '--queue', q.url, '--dead-letter-queue', q.deadLetterUrl, '--cluster-artifacts', `file://${bucket}`, '--lease-seconds', '3',
    '--checkpoint-seconds', '0.3', '--log-ship-seconds', '0.2', '--queue-poll-seconds', '0.2', '--max-attempts', '3'];
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
