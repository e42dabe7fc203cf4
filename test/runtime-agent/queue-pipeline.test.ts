/**
 * Scheduled pipeline runs through the cluster queue (the SQS fake, a file:// bucket): the message a
 * schedule sends (`{"v":1,"kind":"pipeline-run",...}`, here sent by `run-pipeline --queue`) is run by
 * exactly one agent; two runs of one pipeline never overlap (the second is dropped, with a record);
 * a malformed one goes to the dead-letter queue; `serve --pipeline-on-start` is refused by name.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openQueue } from '../../src/runtime-agent/queue/index';
import { BUNDLE, startAgent, tmpDir, waitFor, type AgentHandle } from './helpers';
import { runCli, writeSpec } from './pipeline-helpers';
import { clusterFlags, sqsForFile, type QueueFixture } from './queue-helpers';

const sqs = sqsForFile();
let n = 0;

function clusterArgs(q: QueueFixture, bucket: string): string[] {
  return clusterFlags(q, bucket);
}

/** A one-step pipeline whose step appends a line to `shared/ran.log` (and sleeps `seconds`). */
function pipelineSpec(dir: string, name: string, seconds: number): { uri: string; artifacts: string; ranLog: string } {
  const artifacts = path.join(dir, 'artifacts');
  const ranLog = path.join(dir, 'ran.log');
  const uri = writeSpec(dir, {
    version: 1, name, artifactsUri: `file://${artifacts}`, params: {}, autostop: false,
    steps: [{ kind: 'run', name: 'train', argv: ['sh', '-c', `echo "$MLINFRA_RUN_ID" >> ${ranLog}; sleep ${seconds}`], env: {}, after: [], retries: 0, gpus: 0 }],
  });
  return { uri, artifacts, ranLog };
}

async function lockRecord(a: AgentHandle, name: string, until: (r: any) => boolean, timeoutMs = 60_000): Promise<any> {
  return waitFor(`pipeline ${name}'s record`, async () => {
    const r = await a.api('GET', `/v1/cluster/pipelines/${name}`);
    return r.status === 200 && until(r.json) ? r.json : undefined;
  }, timeoutMs, 200);
}

test('run-pipeline --queue enqueues the schedule\'s message; one agent runs it and records the run', async () => {
  const q = await sqs.create(`p${++n}`);
  const bucket = tmpDir();
  const dir = tmpDir();
  const p = pipelineSpec(dir, 'nightly', 0);
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const b = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  expect((await a.api('GET', '/v1/cluster/pipelines/nightly')).status).toBe(404);
  const sent = await runCli(['run-pipeline', p.uri, '--queue', q.url], q.env);
  expect(sent.code).toBe(0);
  expect(sent.summary).toMatchObject({ enqueued: true, pipeline: 'nightly', spec: `file://${p.uri}`, queue: 'sqs' });
  const rec = await lockRecord(b, 'nightly', (r) => r.state === 'idle');
  expect(rec.last).toMatchObject({ state: 'succeeded', messageId: sent.summary.messageId, runId: expect.any(String) });
  expect([`/${a.pid}`, `/${b.pid}`].some((s) => rec.last.host.endsWith(s))).toBe(true);
  // the run's end reaches the running host's pipeline metrics, as a hand-started run-pipeline's does
  const ran = rec.last.host.endsWith(`/${a.pid}`) ? a : b;
  await waitFor('the run counted in /metrics', async () =>
    /mlinfra_pipeline_runs_total\{pipeline="nightly",state="succeeded"\} 1\b/.test((await ran.api('GET', '/metrics')).text), 10_000, 100);
  // the step ran once, in that run; the run is recorded under the spec's artifactsUri; the message is gone
  expect(fs.readFileSync(p.ranLog, 'utf8').trim().split('\n')).toEqual([rec.last.runId]);
  expect(fs.existsSync(path.join(p.artifacts, 'runs', rec.last.runId))).toBe(true);
  await waitFor('the message acked', () => sqs.fake.bodies(q.url.split('/').pop()!).length === 0, 10_000, 100);
}, 90_000);

test('two runs of one pipeline never overlap: the second message is dropped with a record saying so', async () => {
  const q = await sqs.create(`p${++n}`);
  const bucket = tmpDir();
  const dir = tmpDir();
  const p = pipelineSpec(dir, 'hourly', 4);
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const b = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const first = await a.api('POST', '/v1/cluster/pipeline-runs', { pipeline: 'hourly', spec: `file://${p.uri}` });
  expect(first.status).toBe(201);
  await lockRecord(a, 'hourly', (r) => r.state === 'running');
  const second = await b.api('POST', '/v1/cluster/pipeline-runs', { pipeline: 'hourly', spec: `file://${p.uri}` });
  expect(second.status).toBe(201);
  const rec = await lockRecord(a, 'hourly', (r) => r.state === 'idle' && (r.dropped ?? []).length === 1);
  expect(rec.dropped[0]).toMatchObject({ messageId: second.json.messageId, reason: expect.stringMatching(/a run of hourly was going .*dropped, not queued/) });
  expect(rec.last).toMatchObject({ state: 'succeeded', messageId: first.json.messageId });
  expect(fs.readFileSync(p.ranLog, 'utf8').trim().split('\n')).toHaveLength(1);
  // the run's message is acked after its record is written
  await waitFor('both messages acked', () => sqs.fake.bodies(q.url.split('/').pop()!).length === 0, 10_000, 100);
}, 90_000);

test('bad pipeline runs: a bad name is refused at enqueue (400); a malformed message goes to the dead-letter queue', async () => {
  const q = await sqs.create(`p${++n}`);
  const bucket = tmpDir();
  const a = await startAgent({ args: clusterArgs(q, bucket), env: q.env });
  const bad = await a.api('POST', '/v1/cluster/pipeline-runs', { pipeline: 'Not A Name', spec: 's3://b/spec.json' });
  expect(bad.status).toBe(400);
  expect(bad.json.error).toMatchObject({ code: 'invalid_pipeline_run' });
  await openQueue(q.url, undefined, { ...process.env, ...q.env }).send(JSON.stringify({ v: 1, kind: 'pipeline-run', pipeline: 'nightly', spec: 'http://x/spec.json' }));
  const dead = await waitFor('the malformed run in the dead-letter queue', async () => {
    const d = await q.deadLettered();
    return d.length > 0 ? d : undefined;
  }, 30_000, 200);
  expect(dead[0].reason).toMatch(/malformed message: pipeline-run "spec" "http:\/\/x\/spec.json"/);
}, 60_000);

test('serve --pipeline-on-start is refused, naming what replaced it', () => {
  const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', tmpDir(), '--pipeline-on-start', 's3://b/spec.json'], {
    env: { ...process.env, MLINFRA_AGENT_TOKEN: 'test-token-0123456789' }, encoding: 'utf8', timeout: 20_000,
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--pipeline-on-start was removed: .*schedule now enqueues one run on the cluster queue.*run-pipeline SPEC_URI --queue QUEUE_URL/);
});
