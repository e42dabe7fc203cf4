/** Monitoring wiring: --metrics-local-port, pipeline run metrics (POST /v1/pipeline-runs), autostop and drift gauges. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { psi } from '../../src/runtime-agent/drift';
import { BUNDLE, freePort, requireBundle, startAgent, stopAllAgents, tmpDir, waitFor, type AgentHandle } from './helpers';
import { runCli, writeSpec } from './pipeline-helpers';

afterAll(stopAllAgents);

/** The value of one series in Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(',') : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return undefined;
}

const metricsOf = async (agent: AgentHandle): Promise<string> => {
  const r = await agent.api('GET', '/metrics');
  expect(r.status).toBe(200);
  return r.text;
};

describe('serve --metrics-local-port', () => {
  test('token-free /metrics on 127.0.0.1 only; the API /metrics still needs the token', async () => {
    const port = await freePort();
    // the API on every address: the token-free port must still be loopback only
    const agent = await startAgent({ args: ['--host', '0.0.0.0', '--metrics-local-port', String(port)] });
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const body = await res.text();
    expect(body).toMatch(/^mlinfra_agent_gpus \d+$/m);
    expect(body).toContain('# TYPE mlinfra_agent_autostop_total counter');
    expect((await fetch(`http://127.0.0.1:${port}/v1/jobs`)).status).toBe(404);
    expect((await fetch(`${agent.url}/metrics`)).status).toBe(401);
    expect(agent.output()).toContain(`"metricsUrl":"http://127.0.0.1:${port}/metrics"`);
    const listeners = (p: number): string[] | undefined => {
      const ss = spawnSync('ss', ['-Hltn', `sport = :${p}`], { encoding: 'utf8' });
      return ss.status === 0 ? ss.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[3]) : undefined;
    };
    if (listeners(agent.port) !== undefined) {
      expect(listeners(agent.port)).toEqual([`0.0.0.0:${agent.port}`]);
      expect(listeners(port)).toEqual([`127.0.0.1:${port}`]);
    }
    await agent.kill();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  test.each(['0', '65536', 'abc', '1.5'])('--metrics-local-port %s exits 2 naming the option', (v) => {
    requireBundle();
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', tmpDir(), '--metrics-local-port', v],
      { env: { ...process.env, MLINFRA_AGENT_TOKEN: 't0k3n-long-enough-0123456789' }, encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`invalid option --metrics-local-port=${JSON.stringify(/^\d+$/.test(v) ? Number(v) : v)}: an integer 1..65535`);
  });
});

describe('pipeline run metrics', () => {
  let agent: AgentHandle;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    agent = await startAgent();
    env = { MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: agent.token };
  });

  const spec = (name: string, script: string): Record<string, unknown> => ({
    version: 1, name, artifactsUri: `file://${tmpDir()}`, steps: [{ kind: 'run', name: 'only', argv: ['sh', '-c', script] }],
  });

  test('run-pipeline reports its end: succeeded and failed counts, last success time', async () => {
    const work = tmpDir();
    const before = Date.now() / 1000;
    const ok = await runCli(['run-pipeline', writeSpec(tmpDir(), spec('mon-ok', 'exit 0')), '--work-dir', work], env);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
    let m = await metricsOf(agent);
    expect(m).toContain('mlinfra_pipeline_runs_total{pipeline="mon-ok",state="succeeded"} 1\n');
    expect(sample(m, 'mlinfra_pipeline_runs_total', { pipeline: 'mon-ok', state: 'failed' })).toBe(0);
    const last = sample(m, 'mlinfra_pipeline_last_success_timestamp_seconds', { pipeline: 'mon-ok' })!;
    expect(last).toBeGreaterThanOrEqual(Math.floor(before));
    expect(last).toBeLessThanOrEqual(Date.now() / 1000 + 1);

    const bad = await runCli(['run-pipeline', writeSpec(tmpDir(), spec('mon-bad', 'exit 3')), '--work-dir', work], env);
    expect(bad.code).toBe(1);
    m = await metricsOf(agent);
    expect(sample(m, 'mlinfra_pipeline_runs_total', { pipeline: 'mon-bad', state: 'failed' })).toBe(1);
    expect(sample(m, 'mlinfra_pipeline_runs_total', { pipeline: 'mon-bad', state: 'succeeded' })).toBe(0);
    expect(sample(m, 'mlinfra_pipeline_last_success_timestamp_seconds', { pipeline: 'mon-bad' })).toBeUndefined();
    expect(sample(m, 'mlinfra_pipeline_runs_total', { pipeline: 'mon-ok', state: 'succeeded' })).toBe(1);
  });

  test('POST /v1/pipeline-runs: counted once per run id; bad bodies are 400 naming the field; token required', async () => {
    const endedAt = '2026-01-02T03:04:05.678Z';
    const body = { pipeline: 'mon-direct', state: 'succeeded', runId: 'r-1', endedAt };
    expect(await agent.api('POST', '/v1/pipeline-runs', body)).toMatchObject({ status: 200, json: { recorded: true } });
    expect(await agent.api('POST', '/v1/pipeline-runs', body)).toMatchObject({ status: 200, json: { recorded: false } });
    // an older success does not move the gauge back
    await agent.api('POST', '/v1/pipeline-runs', { ...body, runId: 'r-0', endedAt: '2025-01-01T00:00:00Z' });
    const m = await metricsOf(agent);
    expect(sample(m, 'mlinfra_pipeline_runs_total', { pipeline: 'mon-direct', state: 'succeeded' })).toBe(2);
    expect(sample(m, 'mlinfra_pipeline_last_success_timestamp_seconds', { pipeline: 'mon-direct' })).toBeCloseTo(Date.parse(endedAt) / 1000, 3);

    const cases: Array<[unknown, string]> = [
      [{ ...body, pipeline: 'Bad Name' }, 'pipeline'],
      [{ ...body, state: 'running' }, 'state'],
      [{ ...body, runId: '../x' }, 'runId'],
      [{ ...body, endedAt: 'yesterday' }, 'endedAt'],
      [{ ...body, endedAt: '2026-13-45T99:00:00Z' }, 'endedAt'],
      [{ pipeline: 'x', state: 'failed', runId: 'r' }, 'endedAt'],
      [{ ...body, extra: 1 }, 'extra'],
      [[body], 'body'],
    ];
    for (const [b, field] of cases) {
      const r = await agent.api('POST', '/v1/pipeline-runs', b);
      expect({ b, status: r.status, field: r.json?.error?.field }).toEqual({ b, status: 400, field });
      expect(r.json.error.code).toBe('bad_request');
    }
    expect((await agent.api('POST', '/v1/pipeline-runs', body, { authorization: 'Bearer wrong' })).status).toBe(401);
  });
});

describe('autostop and drift metrics', () => {
  test('idle autostop firing increments mlinfra_agent_autostop_total', async () => {
    const agent = await startAgent({ args: ['--idle-stop-minutes', '0.005', '--stop-command', 'true'] });
    await waitFor('autostop to fire', async () => sample(await metricsOf(agent), 'mlinfra_agent_autostop_total') === 1, 10_000, 100);
    expect(agent.output()).toContain('idle autostop');
  });

  const drift = {
    x: { expected: [100, 300, 400, 200], actual: [0.1, 0.2, 0.3, 0.4] },
    y: { expected: [1, 1], actual: [1, 1] },
  };

  test('a train job\'s drift.json sets mlinfra_feature_drift_psi per feature', async () => {
    const agent = await startAgent();
    const id = await agent.submit({ argv: ['sh', '-c', `printf '%s' '${JSON.stringify(drift)}' > "$MLINFRA_ARTIFACT_DIR/drift.json"`] });
    expect((await agent.waitJob(id)).state).toBe('succeeded');
    const m = await metricsOf(agent);
    const want = psi(drift.x.expected, drift.x.actual);
    expect(want).toBeGreaterThan(0.1);
    expect(sample(m, 'mlinfra_feature_drift_psi', { feature: 'x' })).toBeCloseTo(want, 10);
    expect(sample(m, 'mlinfra_feature_drift_psi', { feature: 'y' })).toBe(0);
  });

  test('a batch job: drift.json in the shared artifact dir is read once all shards are done', async () => {
    const agent = await startAgent({ args: ['--max-cpu-jobs', '2'] });
    const input = tmpDir();
    for (const k of ['a', 'b', 'c']) fs.writeFileSync(path.join(input, `${k}.txt`), k);
    const output = tmpDir();
    // each shard writes one feature; the job's drift.json is the merge of all of them
    const script = `set -e; test -n "$MLINFRA_ARTIFACT_DIR"; cp "$MLINFRA_INPUT" "$MLINFRA_OUTPUT"
      echo "[$MLINFRA_SHARD_INDEX, $((MLINFRA_SHARD_INDEX + 1))]" > "$MLINFRA_ARTIFACT_DIR/shard-$MLINFRA_SHARD_INDEX"
      cd "$MLINFRA_ARTIFACT_DIR"; ( flock 9; n=$(ls shard-* | wc -l)
        if [ "$n" = 3 ]; then printf '{"b0": {"expected": [1, 2], "actual": %s}, "b1": {"expected": [1, 2], "actual": %s}, "b2": {"expected": [1, 2], "actual": %s}}' \\
          "$(cat shard-0)" "$(cat shard-1)" "$(cat shard-2)" > drift.json; fi ) 9>lock`;
    const id = await agent.submit({ kind: 'batch', input: `file://${input}`, output: `file://${output}`, argv: ['sh', '-c', script] });
    expect((await agent.waitJob(id)).state).toBe('succeeded');
    const m = await metricsOf(agent);
    expect(sample(m, 'mlinfra_feature_drift_psi', { feature: 'b0' })).toBeCloseTo(psi([1, 2], [0, 1]), 10);
    expect(sample(m, 'mlinfra_feature_drift_psi', { feature: 'b1' })).toBeCloseTo(psi([1, 2], [1, 2]), 10);
    expect(sample(m, 'mlinfra_feature_drift_psi', { feature: 'b2' })).toBeCloseTo(psi([1, 2], [2, 3]), 10);
  });

  test.each([
    ['not JSON', '{"x": '],
    ['bins that do not match', '{"x": {"expected": [1, 2], "actual": [1, 2, 3]}}'],
  ])('a malformed drift.json (%s) leaves the job succeeded and logs a warning', async (_name, text) => {
    const agent = await startAgent();
    const id = await agent.submit({ argv: ['sh', '-c', `printf '%s' '${text}' > "$MLINFRA_ARTIFACT_DIR/drift.json"`] });
    const job = await agent.waitJob(id);
    expect(job.state).toBe('succeeded');
    expect(job.failure).toBeNull();
    const line = await waitFor('the warning', () => agent.output().split('\n').find((l) => l.includes('drift.json ignored')));
    expect(JSON.parse(line)).toMatchObject({ level: 40, jobId: id });
    expect(sample(await metricsOf(agent), 'mlinfra_feature_drift_psi', { feature: 'x' })).toBeUndefined();
  });
});
