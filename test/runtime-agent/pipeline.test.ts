import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalJson, newRunId, specHash, validatePipelineSpec, PipelineSpecError } from '../../src/runtime-agent/pipeline';
import { runIdTime } from '../../src/runtime-agent/model-store';
import { startFakeGcs } from './fake-gcs';
import { startAgent, stopAllAgents, tmpDir, type AgentHandle } from './helpers';
import { filesUnder, readJson, runCli, writeSpec } from './pipeline-helpers';

afterAll(stopAllAgents);

/** A shell step that stamps its start and end (ns) into $MLINFRA_RUN_DIR/times/<step>.{start,end}. */
const stamped = (body: string): string[] => ['sh', '-c',
  `mkdir -p "$MLINFRA_RUN_DIR/times"; date +%s%N > "$MLINFRA_RUN_DIR/times/$MLINFRA_STEP.start"; ${body}
   s=$?; date +%s%N > "$MLINFRA_RUN_DIR/times/$MLINFRA_STEP.end"; exit $s`];

const run = (name: string, body: string, after: string[] = [], extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'run', name, argv: stamped(body), env: {}, after, retries: 0, gpus: 0, ...extra,
});

/** prep -> {flaky (fails its first attempt), right} -> train -> promote (metric score, higher is better). */
function mainSpec(artifacts: string, score: number): Record<string, unknown> {
  return {
    version: 1, name: 'churn', artifactsUri: `file://${artifacts}`, autostop: false, params: { lr: 0.01, epochs: 3, note: 'x' },
    steps: [
      run('prep', `echo "prep run=$MLINFRA_RUN_ID pipeline=$MLINFRA_PIPELINE params=$MLINFRA_PARAMS code=$MLINFRA_CODE_VERSION data=$MLINFRA_DATA_VERSION greeting=$GREETING"
        mkdir -p "$MLINFRA_RUN_DIR/data" && echo rows > "$MLINFRA_RUN_DIR/data/rows.txt"
        echo '{"prep_rows": 10}' > "$MLINFRA_RUN_DIR/metrics.json"; sleep 0.2`, [], { env: { GREETING: 'hello' } }),
      run('flaky', `if [ "$MLINFRA_ATTEMPT" = 1 ]; then echo "flaky attempt 1 fails" >&2; exit 5; fi; sleep 0.6; echo "flaky ok attempt=$MLINFRA_ATTEMPT"`,
        ['prep'], { retries: 1, timeoutSeconds: 30 }),
      run('right', 'sleep 1; echo right done', ['prep']),
      run('train', `test -f "$MLINFRA_RUN_DIR/data/rows.txt" || exit 9; mkdir -p "$MLINFRA_RUN_DIR/model"
        echo "weights $SCORE" > "$MLINFRA_RUN_DIR/model/model.txt"
        printf '{"score": %s}' "$SCORE" > "$MLINFRA_RUN_DIR/metrics.json"; echo "trained score=$SCORE"`, ['flaky', 'right'], { env: { SCORE: String(score) } }),
      { kind: 'deployIfBetter', name: 'promote', after: ['train'], metric: 'score', higherIsBetter: true },
    ],
  };
}

describe('run-pipeline through a local agent', () => {
  let agent: AgentHandle;
  let env: NodeJS.ProcessEnv;
  let work: string;
  beforeAll(async () => {
    agent = await startAgent({ args: ['--max-cpu-jobs', '4'] });
    env = { MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: agent.token };
    work = tmpDir();
  });

  test('DAG order, parallel branches, a retried step, the run directory file by file, and promote-if-better both ways', async () => {
    const artifacts = tmpDir();
    const specDir = tmpDir();
    const spec1 = mainSpec(artifacts, 0.8);
    const r1 = await runCli(['run-pipeline', writeSpec(specDir, spec1), '--work-dir', work, '--code-version', 'abc123', '--data-version', 'snap-7'], env);
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(0);
    const runId1 = r1.summary.runId as string;
    expect(runId1).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    expect(r1.summary).toEqual({
      runId: runId1, pipeline: 'churn', state: 'succeeded', promoted: true, runUri: `file://${artifacts}/runs/${runId1}/`,
      steps: { prep: 'succeeded', flaky: 'succeeded', right: 'succeeded', train: 'succeeded', promote: 'succeeded' },
    });

    // the local run directory
    const dir = path.join(work, 'churn', runId1);
    const t = (step: string, which: 'start' | 'end'): bigint => BigInt(fs.readFileSync(path.join(dir, 'times', `${step}.${which}`), 'utf8').trim());
    expect(t('prep', 'end') <= t('flaky', 'start')).toBe(true);
    expect(t('prep', 'end') <= t('right', 'start')).toBe(true);
    expect(t('flaky', 'end') <= t('train', 'start')).toBe(true);
    expect(t('right', 'end') <= t('train', 'start')).toBe(true);
    // flaky (2nd attempt) and right ran at the same time
    expect(t('flaky', 'start') < t('right', 'end') && t('right', 'start') < t('flaky', 'end')).toBe(true);

    expect(readJson(path.join(dir, 'metrics.json'))).toEqual({ prep_rows: 10, score: 0.8 });
    expect(readJson(path.join(dir, 'params.json'))).toEqual({ lr: 0.01, epochs: 3, note: 'x' });
    expect(readJson(path.join(dir, 'versions.json'))).toEqual({ code: 'abc123', data: 'snap-7' });
    const specJson = readJson(path.join(dir, 'spec.json'));
    expect(specJson).toEqual(spec1);
    expect(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8')).toBe(`${canonicalJson(spec1, 2)}\n`);
    const hash = fs.readFileSync(path.join(dir, 'spec-hash.txt'), 'utf8').trim();
    expect(hash).toBe(createHash('sha256').update(canonicalJson(spec1)).digest('hex'));
    expect(hash).toBe(specHash(JSON.parse(JSON.stringify(spec1))));
    const steps = readJson(path.join(dir, 'steps.json'));
    expect(Object.keys(steps)).toEqual(['prep', 'flaky', 'right', 'train', 'promote']);
    expect(steps.flaky).toMatchObject({ state: 'succeeded', attempts: 2, exitCode: 0, failure: null, jobId: expect.stringMatching(/^j-/) });
    expect(steps.prep).toMatchObject({ state: 'succeeded', attempts: 1, exitCode: 0, failure: null, kind: 'run', after: [] });
    expect(steps.train.after).toEqual(['flaky', 'right']);
    for (const s of ['prep', 'flaky', 'right', 'train']) {
      expect(Date.parse(steps[s].startedAt)).toBeLessThanOrEqual(Date.parse(steps[s].endedAt));
      expect(steps[s].escalatedTo).toBeUndefined();
    }
    expect(Date.parse(steps.train.startedAt)).toBeGreaterThanOrEqual(Date.parse(steps.flaky.endedAt));
    expect(steps.promote).toMatchObject({ kind: 'deployIfBetter', state: 'succeeded', jobId: null, failure: null, reason: 'no current model' });
    const job = await agent.job(steps.flaky.jobId);
    expect(job).toMatchObject({ name: 'churn/flaky', retries: 1, timeoutSeconds: 30, attempts: 2 });
    expect(job.envKeys).toEqual(expect.arrayContaining(['MLINFRA_RUN_ID', 'MLINFRA_PIPELINE', 'MLINFRA_STEP', 'MLINFRA_RUN_DIR', 'MLINFRA_PARAMS',
      'MLINFRA_CODE_VERSION', 'MLINFRA_DATA_VERSION']));
    expect(fs.readFileSync(path.join(dir, 'logs', 'prep.log'), 'utf8'))
      .toBe(`prep run=${runId1} pipeline=churn params={"epochs":3,"lr":0.01,"note":"x"} code=abc123 data=snap-7 greeting=hello\n`);
    const flakyLog = fs.readFileSync(path.join(dir, 'logs', 'flaky.log'), 'utf8');
    expect(flakyLog).toContain('flaky attempt 1 fails');
    expect(flakyLog).toContain('flaky ok attempt=2');
    expect(fs.readFileSync(path.join(dir, 'logs', 'train.log'), 'utf8')).toBe('trained score=0.8\n');
    expect(fs.readFileSync(path.join(dir, 'logs', 'promote.log'), 'utf8')).toMatch(/no current model\n.*registered and serving v1 .*\n.*promoted run /);
    expect(fs.readFileSync(path.join(dir, 'model', 'model.txt'), 'utf8')).toBe('weights 0.8\n');
    expect(readJson(path.join(dir, 'promotion.json'))).toEqual({
      promoted: true, metric: 'score', newValue: 0.8, currentValue: null, currentRunId: null, higherIsBetter: true, reason: 'no current model',
      registry: { version: 'v1' },
    });
    expect(readJson(path.join(dir, 'run.json'))).toMatchObject({ runId: runId1, pipeline: 'churn', state: 'succeeded', specHash: hash, promoted: true });

    // the store: the same files under runs/<run-id>/, and models/current
    const stored = path.join(artifacts, 'runs', runId1);
    expect(filesUnder(stored)).toEqual(filesUnder(dir));
    expect(filesUnder(stored)).toEqual(expect.arrayContaining(['metrics.json', 'params.json', 'versions.json', 'spec.json', 'spec-hash.txt',
      'steps.json', 'run.json', 'promotion.json', 'model/model.txt', 'data/rows.txt', 'logs/prep.log', 'logs/flaky.log', 'logs/right.log',
      'logs/train.log', 'logs/promote.log']));
    expect(readJson(path.join(stored, 'steps.json'))).toEqual(steps);
    const current1 = readJson(path.join(artifacts, 'models', 'current'));
    expect(current1).toMatchObject({ runId: runId1, metric: 'score', value: 0.8, modelUri: `file://${artifacts}/runs/${runId1}/model/` });
    expect(Date.parse(current1.promotedAt)).toBeGreaterThan(0);

    // a worse run is not promoted: models/current still points at run 1
    const r2 = await runCli(['run-pipeline', writeSpec(specDir, mainSpec(artifacts, 0.5), 'worse.json'), '--work-dir', work, '--run-id', 'worse-run'], env);
    expect(r2.code).toBe(0);
    expect(r2.summary).toMatchObject({ runId: 'worse-run', state: 'succeeded', promoted: false });
    expect(readJson(path.join(work, 'churn', 'worse-run', 'promotion.json'))).toEqual({
      promoted: false, metric: 'score', newValue: 0.5, currentValue: 0.8, currentRunId: runId1, higherIsBetter: true,
      reason: `score 0.5 vs current 0.8 (run ${runId1}), higher is better: not better`,
    });
    expect(readJson(path.join(work, 'churn', 'worse-run', 'versions.json'))).toEqual({ code: null, data: null });
    expect(readJson(path.join(artifacts, 'models', 'current'))).toEqual(current1);
    expect(fs.existsSync(path.join(artifacts, 'runs', 'worse-run', 'promotion.json'))).toBe(true);

    // a better one is
    const r3 = await runCli(['run-pipeline', `file://${writeSpec(specDir, mainSpec(artifacts, 0.9), 'better.json')}`, '--work-dir', work], env);
    expect(r3.code).toBe(0);
    expect(r3.summary).toMatchObject({ state: 'succeeded', promoted: true });
    expect(readJson(path.join(artifacts, 'models', 'current'))).toMatchObject({ runId: r3.summary.runId, value: 0.9 });
    expect(readJson(path.join(artifacts, 'runs', r3.summary.runId, 'promotion.json'))).toMatchObject({ promoted: true, currentValue: 0.8, currentRunId: runId1 });
    expect(fs.readFileSync(path.join(artifacts, 'runs', r3.summary.runId, 'model', 'model.txt'), 'utf8')).toBe('weights 0.9\n');

    // the same run id twice is refused before anything runs
    const again = await runCli(['run-pipeline', writeSpec(specDir, mainSpec(artifacts, 0.1), 'again.json'), '--work-dir', work, '--run-id', 'worse-run'], env);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: { code: 'invalid_spec', field: 'runId', message: expect.stringContaining('already exists') } });
  }, 40_000);

  test('a failed step skips its dependents, an independent branch completes; a missing metric fails the promote step', async () => {
    const artifacts = tmpDir();
    const spec = {
      version: 1, name: 'branches', artifactsUri: `file://${artifacts}`, autostop: false, params: {},
      steps: [
        run('a', 'echo a'),
        run('bad', 'echo "something broke" >&2; exit 3', ['a']),
        run('after-bad', 'echo never', ['bad']),
        run('after-after-bad', 'echo never', ['after-bad', 'a']),
        run('good', `echo '{"other": 1}' > "$MLINFRA_RUN_DIR/metrics.json"; echo good`, ['a']),
        { kind: 'deployIfBetter', name: 'promote', after: ['good'], metric: 'auc', higherIsBetter: true },
        run('after-good', 'echo after-good', ['good']),
      ],
    };
    const r = await runCli(['run-pipeline', writeSpec(tmpDir(), spec), '--work-dir', work, '--follow'], env);
    expect(r.code).toBe(1);
    expect(r.summary).toMatchObject({
      state: 'failed', promoted: null,
      steps: { 'a': 'succeeded', 'bad': 'failed', 'after-bad': 'skipped', 'after-after-bad': 'skipped', 'good': 'succeeded', 'promote': 'failed', 'after-good': 'succeeded' },
    });
    // --follow: step output and state changes on stderr, prefixed
    expect(r.stderr).toContain('[bad] something broke\n');
    expect(r.stderr).toMatch(/\[bad\] failed \(job j-[^)]+\): exit: exited with code 3\n/);
    expect(r.stderr).toContain('[after-bad] skipped: not run: step "bad" failed\n');
    const dir = path.join(work, 'branches', r.summary.runId);
    const steps = readJson(path.join(dir, 'steps.json'));
    expect(steps.bad).toMatchObject({ state: 'failed', exitCode: 3, attempts: 1, failure: { class: 'exit', reason: 'exited with code 3' } });
    expect(steps['after-bad']).toMatchObject({ state: 'skipped', jobId: null, attempts: 0, reason: 'not run: step "bad" failed' });
    expect(steps['after-after-bad']).toMatchObject({ state: 'skipped', reason: 'not run: step "after-bad" skipped' });
    expect(steps.promote).toMatchObject({
      state: 'failed', failure: { class: 'metric', reason: 'metric "auc" is not in the run\'s metrics.json (keys: other)' },
    });
    expect(fs.readFileSync(path.join(dir, 'logs', 'bad.log'), 'utf8')).toBe('something broke\n');
    expect(fs.existsSync(path.join(dir, 'logs', 'after-bad.log'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'promotion.json'))).toBe(false);
    expect(fs.existsSync(path.join(artifacts, 'models', 'current'))).toBe(false);
    expect(readJson(path.join(artifacts, 'runs', r.summary.runId, 'run.json'))).toMatchObject({ state: 'failed' });
    expect((await agent.api('GET', '/v1/jobs?state=queued')).json.jobs).toEqual([]);
  }, 30_000);

  test('an OOM step is escalated to the bigger cluster\'s agent', async () => {
    const big = await startAgent({ token: 'big-cluster-token-0123', env: { MLINFRA_TEST_BIG: '1' }, args: ['--gpus', '2'] });
    const artifacts = tmpDir();
    const spec = {
      version: 1, name: 'oom', artifactsUri: `file://${artifacts}`, autostop: false, params: {},
      steps: [
        run('prep', 'echo prepared > "$MLINFRA_RUN_DIR/prepared.txt"'),
        run('big', `if [ "$MLINFRA_TEST_BIG" = 1 ]; then echo "big cluster: gpus=$MLINFRA_GPUS cuda=$CUDA_VISIBLE_DEVICES uri=$MLINFRA_RUN_DIR_URI from=$MLINFRA_ESCALATED_FROM"
          echo '{"auc": 0.7}' > "$MLINFRA_RUN_DIR/metrics.json"; exit 0; fi
          echo "RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB" >&2; exit 1`, ['prep'],
        { retries: 1, gpus: 1, onOom: { agentUrl: big.url, tokenFile: big.tokenFile, clusterName: 'big-gpus' } }),
        run('after', 'echo after sees "$(cat "$MLINFRA_RUN_DIR/prepared.txt")"', ['big']),
        { kind: 'deployIfBetter', name: 'promote', after: ['after'], metric: 'auc', higherIsBetter: true },
      ],
    };
    // the local agent has 1 GPU slot (the big one has 2)
    const small = await startAgent({ args: ['--gpus', '1'] });
    const r = await runCli(['run-pipeline', writeSpec(tmpDir(), spec), '--work-dir', work, '--url', small.url, '--token-file', small.tokenFile], {});
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ state: 'succeeded', promoted: true, steps: { prep: 'succeeded', big: 'succeeded', after: 'succeeded', promote: 'succeeded' } });
    const dir = path.join(work, 'oom', r.summary.runId);
    const steps = readJson(path.join(dir, 'steps.json'));
    expect(steps.big).toMatchObject({
      state: 'succeeded', attempts: 2, exitCode: 0, failure: null,
      escalatedTo: {
        agentUrl: big.url, clusterName: 'big-gpus', jobId: expect.stringMatching(/^j-/), state: 'succeeded', attempts: 1, exitCode: 0, failure: null,
        reason: 'out of memory: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB',
      },
    });
    const local = await small.job(steps.big.jobId);
    expect(local).toMatchObject({ state: 'failed', attempts: 2, failure: { class: 'oom' } });
    const remote = await big.job(steps.big.escalatedTo.jobId);
    expect(remote).toMatchObject({ state: 'succeeded', gpus: 1, name: 'oom/big', artifactUri: `file://${artifacts}/runs/${r.summary.runId}/escalated/big/` });
    expect(remote.envKeys).toEqual(expect.arrayContaining(['MLINFRA_RUN_DIR', 'MLINFRA_RUN_DIR_URI', 'MLINFRA_ESCALATED_FROM', 'MLINFRA_RUN_ID']));
    expect(fs.readFileSync(path.join(dir, 'logs', 'big.log'), 'utf8')).toContain('CUDA out of memory');
    expect(fs.readFileSync(path.join(dir, 'logs', 'big.escalated.log'), 'utf8'))
      .toBe(`big cluster: gpus=1 cuda=0 uri=file://${artifacts}/runs/${r.summary.runId}/ from=${steps.big.jobId}\n`);
    expect(fs.readFileSync(path.join(dir, 'logs', 'after.log'), 'utf8')).toBe('after sees prepared\n');
    expect(readJson(path.join(artifacts, 'models', 'current'))).toMatchObject({ runId: r.summary.runId, value: 0.7 });
    // the run directory was uploaded before the escalated job was submitted
    expect(fs.existsSync(path.join(artifacts, 'runs', r.summary.runId, 'prepared.txt'))).toBe(true);

    // no token for the bigger cluster: the step fails with the reason, escalatedTo says why
    const noTok = { ...spec, name: 'oom-no-token', steps: [spec.steps[1]].map((s) => ({ ...s, after: [], retries: 0, onOom: { agentUrl: big.url, tokenEnv: 'NO_SUCH_TOKEN_VAR' } })) };
    const r2 = await runCli(['run-pipeline', writeSpec(tmpDir(), noTok), '--work-dir', work, '--url', small.url, '--token-file', small.tokenFile], {});
    expect(r2.code).toBe(1);
    const s2 = readJson(path.join(work, 'oom-no-token', r2.summary.runId, 'steps.json'));
    expect(s2.big).toMatchObject({
      state: 'failed', failure: { class: 'oom', reason: expect.stringContaining('escalation to') },
      escalatedTo: { agentUrl: big.url, jobId: null, state: 'not_submitted', reason: 'no token in $NO_SUCH_TOKEN_VAR' },
    });
  }, 40_000);

  test('an unreachable agent or a missing token: exit 1, JSON error, no run directory', async () => {
    const artifacts = tmpDir();
    const w = tmpDir();
    const specFile = writeSpec(tmpDir(), { version: 1, name: 'xx', artifactsUri: `file://${artifacts}`, params: {}, autostop: false, steps: [run('a', 'true')] });
    const noToken = await runCli(['run-pipeline', specFile, '--work-dir', w, '--url', agent.url], {});
    expect(noToken.code).toBe(1);
    expect(JSON.parse(noToken.stderr)).toMatchObject({ error: { code: 'no_token' } });
    const wrong = await runCli(['run-pipeline', specFile, '--work-dir', w], { MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: 'wrong' });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stderr)).toMatchObject({ error: { code: 'unauthorized' } });
    const down = await runCli(['run-pipeline', specFile, '--work-dir', w, '--url', 'http://127.0.0.1:9'], { MLINFRA_AGENT_TOKEN: 't' });
    expect(down.code).toBe(1);
    expect(JSON.parse(down.stderr).error.message).toMatch(/fetch failed|ECONNREFUSED/);
    expect(filesUnder(w)).toEqual([]);
    expect(filesUnder(artifacts)).toEqual([]);
  });
});

describe('gs:// spec and model store (fake GCS via STORAGE_EMULATOR_HOST)', () => {
  test('the spec is read from gs://, the run is uploaded there and models/current is compared there', async () => {
    const gcs = await startFakeGcs();
    try {
      const gcsEnv = { STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_CLOUD_PROJECT: 'test' };
      const agent = await startAgent({ env: gcsEnv });
      const specOf = (auc: number): Buffer => Buffer.from(JSON.stringify({
        version: 1, name: 'gcs-pipe', artifactsUri: 'gs://bkt/ml/gcs-pipe', params: {}, autostop: false,
        steps: [
          run('train', `mkdir -p "$MLINFRA_RUN_DIR/model"; echo w > "$MLINFRA_RUN_DIR/model/w.bin"; echo '{"loss": ${auc}}' > "$MLINFRA_RUN_DIR/metrics.json"`),
          { kind: 'deployIfBetter', name: 'promote', after: ['train'], metric: 'loss', higherIsBetter: false },
        ],
      }));
      gcs.objects.set('bkt/specs/p1.json', specOf(0.3));
      gcs.objects.set('bkt/specs/p2.json', specOf(0.4));
      const env = { ...gcsEnv, MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: agent.token };
      const work = tmpDir();
      const r1 = await runCli(['run-pipeline', 'gs://bkt/specs/p1.json', '--work-dir', work], env);
      expect(r1.stderr).toBe('');
      expect(r1.summary).toMatchObject({ state: 'succeeded', promoted: true, runUri: `gs://bkt/ml/gcs-pipe/runs/${r1.summary.runId}/` });
      const prefix = `bkt/ml/gcs-pipe/runs/${r1.summary.runId}/`;
      expect([...gcs.objects.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort())
        .toEqual(filesUnder(path.join(work, 'gcs-pipe', r1.summary.runId)));
      expect(gcs.objects.get(`${prefix}model/w.bin`)?.toString()).toBe('w\n');
      expect(JSON.parse(gcs.objects.get('bkt/ml/gcs-pipe/models/current')!.toString())).toMatchObject({ runId: r1.summary.runId, metric: 'loss', value: 0.3 });
      const r2 = await runCli(['run-pipeline', 'gs://bkt/specs/p2.json', '--work-dir', work], env);
      expect(r2.summary).toMatchObject({ state: 'succeeded', promoted: false });
      expect(JSON.parse(gcs.objects.get('bkt/ml/gcs-pipe/models/current')!.toString()).runId).toBe(r1.summary.runId);
      const missing = await runCli(['run-pipeline', 'gs://bkt/specs/none.json', '--work-dir', work], env);
      expect(missing.code).toBe(2);
      expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'spec_unreadable' } });
    } finally {
      await gcs.close();
    }
  }, 40_000);
});

describe('bad specs: exit 2 and a JSON error naming the steps', () => {
  const base = (steps: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ version: 1, name: 'pp', artifactsUri: 'file:///tmp/x', params: {}, autostop: false, steps, ...extra });
  const r = (name: string, after: string[] = []): Record<string, unknown> => ({ kind: 'run', name, argv: ['true'], env: {}, after, retries: 0, gpus: 0 });

  test.each([
    ['a cycle', base([r('a', ['c']), r('b', ['a']), r('c', ['b']), r('d')]), 'steps form a dependency cycle: a -> c -> b -> a ("x -> y": x runs after y)', ['a', 'c', 'b']],
    ['a self dependency', base([r('a', ['a'])]), 'steps form a dependency cycle: a -> a ("x -> y": x runs after y)', ['a']],
    ['an unknown after', base([r('a'), r('b', ['a', 'nope'])]), 'step "b" runs after unknown step "nope"', ['b', 'nope']],
    ['duplicate names', base([r('a'), r('b'), r('a')]), 'duplicate step name "a"', ['a']],
    ['a wrong version', base([r('a')], { version: 2 }), 'unsupported spec version 2: this agent reads version 1', []],
    ['a bad step field', base([r('a'), { ...r('b'), retries: -1 }]), 'step "b": retries must be an integer 0..100', ['b']],
    ['a bad promote step', base([r('a'), { kind: 'deployIfBetter', name: 'p', after: ['a'], metric: 'auc' }]), 'step "p": higherIsBetter must be a boolean', ['p']],
  ])('%s', async (_what, spec, message, steps) => {
    expect(() => validatePipelineSpec(spec)).toThrow(PipelineSpecError);
    const res = await runCli(['run-pipeline', writeSpec(tmpDir(), spec)], {});
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    const err = JSON.parse(res.stderr).error;
    expect(err).toMatchObject({ code: 'invalid_spec', message, steps });
  });

  test('an unreadable or non-JSON spec is spec_unreadable (exit 2)', async () => {
    const missing = await runCli(['run-pipeline', '/nonexistent/pipeline.json'], {});
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'spec_unreadable', message: expect.stringContaining('/nonexistent/pipeline.json') } });
    const f = path.join(tmpDir(), 'bad.json');
    fs.writeFileSync(f, '{nope');
    const notJson = await runCli(['run-pipeline', f], {});
    expect(notJson.code).toBe(2);
    expect(JSON.parse(notJson.stderr)).toMatchObject({ error: { code: 'spec_unreadable', message: expect.stringContaining('not JSON') } });
  });

  test('defaults, canonical JSON and run ids', () => {
    const s = validatePipelineSpec({ version: 1, name: 'pp', artifactsUri: 's3://b/p', steps: [{ kind: 'run', name: 'a', argv: ['x'] }] });
    expect(s).toEqual({
      version: 1, name: 'pp', artifactsUri: 's3://b/p', params: {}, autostop: false,
      steps: [{ kind: 'run', name: 'a', argv: ['x'], env: {}, after: [], retries: 0, gpus: 0 }],
    });
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(specHash({ b: 1, a: 2 })).toBe(specHash({ a: 2, b: 1 }));
    const id = newRunId(new Date('2026-11-24T20:30:00.123Z'));
    expect(id).toMatch(/^20261124T203000Z-[0-9a-f]{6}$/);
    expect(runIdTime(id)).toBe(Date.parse('2026-11-24T20:30:00Z'));
    expect(runIdTime('custom')).toBeNull();
  });
});
