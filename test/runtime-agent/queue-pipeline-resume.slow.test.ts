/**
 * A queued pipeline run whose host dies resumes elsewhere (the SQS fake, a file:// bucket): kill -9 the
 * agent running a two-step pipeline after step 1 succeeded and while step 2 runs; another agent leases
 * the message once the lease and the pipeline lock lapse, restores the run directory from the bucket,
 * skips step 1 (its marker file has one line) and runs step 2; the run ends succeeded under one run id,
 * and run.json records the resume. In process: a resume after the promotion does not promote again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { runPipeline, validatePipelineSpec } from '../../src/runtime-agent/pipeline';
import { ModelRegistry } from '../../src/runtime-agent/registry/registry';
import { Storage } from '../../src/runtime-agent/storage/index';
import { startAgent, tmpDir, waitFor, type AgentHandle } from './helpers';
import { readJson, writeSpec } from './pipeline-helpers';
import { sqsForFile } from './queue-helpers';

const sqs = sqsForFile();

const lines = (file: string): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);

test('kill -9 mid-run: another host resumes the run, skipping the step that succeeded', async () => {
  const q = await sqs.create('resume1');
  const bucket = tmpDir();
  const dir = tmpDir();
  const artifacts = path.join(dir, 'artifacts');
  const prepLog = path.join(dir, 'prep.log');
  const trainLog = path.join(dir, 'train.log');
  const uri = writeSpec(dir, {
    version: 1, name: 'nightly', artifactsUri: `file://${artifacts}`, params: {}, autostop: false,
    steps: [
      // step 1 leaves a file in the run directory: the resumed run must have it back from the bucket
      { kind: 'run', name: 'prep', argv: ['sh', '-c', `echo "$MLINFRA_RUN_ID" >> ${prepLog}; echo features > "$MLINFRA_RUN_DIR/features.txt"`], env: {}, after: [], retries: 0, gpus: 0 },
      {
        kind: 'run', name: 'train', after: ['prep'], retries: 0, gpus: 0, env: {},
        argv: ['sh', '-c', `echo "$MLINFRA_RUN_ID $(cat "$MLINFRA_RUN_DIR/features.txt")" >> ${trainLog}; sleep 3; echo '{"loss":0.5}' > "$MLINFRA_RUN_DIR/metrics.json"`],
      },
    ],
  });
  const args = ['--queue', q.url, '--dead-letter-queue', q.deadLetterUrl, '--cluster-artifacts', `file://${bucket}`, '--lease-seconds', '2', '--queue-poll-seconds', '0.2'];
  const a = await startAgent({ args, env: q.env });
  const sent = await a.api('POST', '/v1/cluster/pipeline-runs', { pipeline: 'nightly', spec: `file://${uri}` });
  expect(sent.status).toBe(201);
  // step 2 has started on host A (so step 1 succeeded and was uploaded): kill it without a chance to clean up
  await waitFor('step 2 running on host A', () => lines(trainLog).length === 1, 30_000, 50);
  const runId = lines(prepLog)[0];
  expect(runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
  await a.kill('SIGKILL');

  const b: AgentHandle = await startAgent({ args, env: q.env });
  const rec = await waitFor('the run ended on host B', async () => {
    const r = await b.api('GET', '/v1/cluster/pipelines/nightly');
    return r.status === 200 && r.json.state === 'idle' ? r.json : undefined;
  }, 60_000, 200);
  expect(rec.last).toMatchObject({ state: 'succeeded', messageId: sent.json.messageId, runId });
  expect(rec.last.host.endsWith(`/${b.pid}`)).toBe(true);
  // step 1 ran exactly once; step 2 ran on A (killed) and again on B, with step 1's file restored, all in one run
  expect(lines(prepLog)).toEqual([runId]);
  expect(lines(trainLog)).toEqual([`${runId} features`, `${runId} features`]);
  expect(fs.readdirSync(path.join(artifacts, 'runs'))).toEqual([runId]);
  const run = readJson(path.join(artifacts, 'runs', runId, 'run.json'));
  expect(run).toMatchObject({ runId, state: 'succeeded', endedAt: expect.any(String) });
  expect(run.resumes).toHaveLength(1);
  expect(run.resumes[0]).toMatchObject({ messageId: sent.json.messageId, skipped: ['prep'], rerun: ['train'] });
  expect(run.resumes[0].previousHost.endsWith(`/${a.pid}`)).toBe(true);
  const steps = readJson(path.join(artifacts, 'runs', runId, 'steps.json'));
  expect(steps.prep.state).toBe('succeeded');
  expect(steps.train.state).toBe('succeeded');
  expect(readJson(path.join(artifacts, 'runs', runId, 'metrics.json'))).toEqual({ loss: 0.5 });
  await waitFor('the message acked', () => sqs.fake.bodies('resume1').length === 0, 10_000, 100);
}, 100_000);

test('a resume after the promotion does not promote twice; a resume of an ended run runs nothing', async () => {
  const agent = await startAgent();
  const dir = tmpDir();
  const artifacts = path.join(dir, 'artifacts');
  const marker = path.join(dir, 'train.log');
  const spec = validatePipelineSpec({
    version: 1, name: 'resumed', artifactsUri: `file://${artifacts}`, params: {}, autostop: false,
    steps: [
      { kind: 'run', name: 'train', after: [], retries: 0, gpus: 0, env: {},
        argv: ['sh', '-c', `echo "$MLINFRA_RUN_ID" >> ${marker}; mkdir -p "$MLINFRA_RUN_DIR/model"; echo w > "$MLINFRA_RUN_DIR/model/w.txt"; echo '{"score":0.9}' > "$MLINFRA_RUN_DIR/metrics.json"`] },
      { kind: 'deployIfBetter', name: 'promote', after: ['train'], metric: 'score', higherIsBetter: true },
    ],
  });
  const storage = new Storage();
  const base = { spec, agentUrl: agent.url, token: agent.token, storage, logger: pino({ level: 'silent' }), pollMs: 50 };
  const first = await runPipeline({ ...base, workDir: path.join(dir, 'host-a') });
  expect(first).toMatchObject({ state: 'succeeded', promoted: true });
  const registry = new ModelRegistry(storage, `file://${artifacts}`, 'resumed');
  expect(await registry.list()).toHaveLength(1);
  // as if host A died after moving models/current but before recording the promote step and the run's end
  const runDir = path.join(artifacts, 'runs', first.runId);
  const steps = readJson(path.join(runDir, 'steps.json'));
  fs.writeFileSync(path.join(runDir, 'steps.json'), JSON.stringify({ ...steps, promote: { ...steps.promote, state: 'running', reason: undefined } }));
  fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({ ...readJson(path.join(runDir, 'run.json')), state: 'running', endedAt: null }));

  const resume = { messageId: 'm-1', previousHost: 'host-a/1' };
  const second = await runPipeline({ ...base, workDir: path.join(dir, 'host-b'), runId: first.runId, resume });
  expect(second).toMatchObject({ runId: first.runId, state: 'succeeded', promoted: true });
  expect(second.steps.promote.reason).toMatch(/promoted before the resume: .* already points at run /);
  expect(lines(marker)).toEqual([first.runId]);
  expect(await registry.list()).toHaveLength(1);
  const run = readJson(path.join(runDir, 'run.json'));
  expect(run).toMatchObject({ state: 'succeeded', promoted: true, startedAt: first.startedAt });
  expect(run.resumes).toEqual([expect.objectContaining({ messageId: 'm-1', previousHost: 'host-a/1', skipped: ['train'], rerun: ['promote'] })]);

  // the run ended but its message came back (its host died before the ack): the recorded result, nothing runs
  const third = await runPipeline({ ...base, workDir: path.join(dir, 'host-c'), runId: first.runId, resume: { ...resume, previousHost: 'host-b/2' } });
  expect(third).toMatchObject({ runId: first.runId, state: 'succeeded', promoted: true, endedAt: run.endedAt });
  expect(lines(marker)).toEqual([first.runId]);
  expect(readJson(path.join(runDir, 'run.json')).resumes).toHaveLength(1);
}, 60_000);
