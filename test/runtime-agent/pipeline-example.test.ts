import * as fs from 'node:fs';
import * as path from 'node:path';
import { PYTHON, ROOT, startAgent, stopAllAgents, tmpDir } from './helpers';
import { filesUnder, readJson, runCli, writeSpec } from './pipeline-helpers';
import { describeWithTools, TOOLS } from '../support/tools';

afterAll(stopAllAgents);

const SCRIPTS = path.join(ROOT, 'examples', 'training-pipeline', 'scripts');
const py = (script: string, ...args: string[]): string[] => [PYTHON, path.join(SCRIPTS, script), ...args];

describeWithTools([TOOLS.torch])('examples/training-pipeline/scripts end to end (real PyTorch on CPU)', () => {
  test('featurize -> train_a, train_b in parallel -> compare -> promote on val_auc', async () => {
    const agent = await startAgent({ args: ['--max-cpu-jobs', '2'] });
    const artifacts = tmpDir();
    const work = tmpDir();
    const step = (name: string, argv: string[], after: string[] = []): Record<string, unknown> =>
      ({ kind: 'run', name, argv, env: {}, after, retries: 0, gpus: 0, timeoutSeconds: 120 });
    const spec = {
      version: 1, name: 'churn-model', artifactsUri: `file://${artifacts}`, autostop: true, params: { seed: 3, rows: 600 },
      steps: [
        step('featurize', py('featurize.py')),
        step('train_a', py('train.py', '--candidate', 'a', '--lr', '0.05', '--hidden', '0'), ['featurize']),
        step('train_b', py('train.py', '--candidate', 'b', '--lr', '0.02', '--hidden', '16'), ['featurize']),
        step('compare', py('compare.py', 'a', 'b'), ['train_a', 'train_b']),
        { kind: 'deployIfBetter', name: 'promote', after: ['compare'], metric: 'val_auc', higherIsBetter: true },
      ],
    };
    const r = await runCli(['run-pipeline', writeSpec(tmpDir(), spec), '--work-dir', work, '--code-version', 'git-1234', '--data-version', 'synthetic-3'],
      { MLINFRA_AGENT_URL: agent.url, MLINFRA_AGENT_TOKEN: agent.token });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({
      state: 'succeeded', promoted: true,
      steps: { featurize: 'succeeded', train_a: 'succeeded', train_b: 'succeeded', compare: 'succeeded', promote: 'succeeded' },
    });
    const runId = r.summary.runId as string;
    const dir = path.join(artifacts, 'runs', runId);
    expect(filesUnder(dir)).toEqual(filesUnder(path.join(work, 'churn-model', runId)));
    expect(filesUnder(dir)).toEqual(expect.arrayContaining(['data/train.csv', 'data/val.csv', 'model/a.pt', 'model/b.pt', 'model/model.pt',
      'model/best.json', 'metrics.json', 'params.json', 'versions.json', 'spec.json', 'spec-hash.txt', 'steps.json', 'promotion.json',
      'logs/featurize.log', 'logs/train_a.log', 'logs/train_b.log', 'logs/compare.log', 'logs/promote.log']));
    expect(filesUnder(dir).filter((f) => /lock|\.tmp$/.test(f))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'data', 'train.csv'), 'utf8').trim().split('\n')).toHaveLength(601);

    const metrics = readJson(path.join(dir, 'metrics.json'));
    expect(metrics).toMatchObject({ rows_train: 600, rows_val: 400, val_auc_a: expect.any(Number), val_auc_b: expect.any(Number) });
    expect(metrics.val_auc).toBe(Math.max(metrics.val_auc_a, metrics.val_auc_b));
    expect(metrics.val_auc).toBeGreaterThan(0.7);
    const best = readJson(path.join(dir, 'model', 'best.json'));
    expect(metrics[`val_auc_${best.candidate}`]).toBe(metrics.val_auc);
    expect(fs.readFileSync(path.join(dir, 'model', 'model.pt')).equals(fs.readFileSync(path.join(dir, 'model', `${best.candidate}.pt`)))).toBe(true);
    expect(readJson(path.join(dir, 'versions.json'))).toEqual({ code: 'git-1234', data: 'synthetic-3' });
    expect(readJson(path.join(dir, 'params.json'))).toEqual({ seed: 3, rows: 600 });
    expect(fs.readFileSync(path.join(dir, 'logs', 'train_a.log'), 'utf8')).toMatch(/^train a: hidden=0 lr=0\.05 .* val_auc=0\.\d{4} /);
    expect(fs.readFileSync(path.join(dir, 'logs', 'featurize.log'), 'utf8')).toContain('(data version synthetic-3)');

    const steps = readJson(path.join(dir, 'steps.json'));
    // the two candidates ran at the same time (2 CPU slots), both after featurize and before compare
    const ms = (s: string, k: 'startedAt' | 'endedAt'): number => Date.parse(steps[s][k]);
    expect(ms('train_a', 'startedAt')).toBeLessThan(ms('train_b', 'endedAt'));
    expect(ms('train_b', 'startedAt')).toBeLessThan(ms('train_a', 'endedAt'));
    for (const t of ['train_a', 'train_b']) {
      expect(ms(t, 'startedAt')).toBeGreaterThanOrEqual(ms('featurize', 'endedAt'));
      expect(ms('compare', 'startedAt')).toBeGreaterThanOrEqual(ms(t, 'endedAt'));
    }
    expect(readJson(path.join(artifacts, 'models', 'current'))).toMatchObject({ runId, metric: 'val_auc', value: metrics.val_auc });
    expect(readJson(path.join(dir, 'promotion.json'))).toMatchObject({ promoted: true, newValue: metrics.val_auc, currentValue: null, registry: { version: 'v1' } });
    // The model registry: the run's model/ files as version v1, which serves.
    expect(readJson(path.join(artifacts, 'models', 'registry.json'))).toMatchObject({ current: 'v1', history: [{ version: 'v1', action: 'promote', outcome: 'done', from: null }] });
    const v1 = readJson(path.join(artifacts, 'models', 'versions', 'v1', 'version.json'));
    expect(v1).toMatchObject({ version: 'v1', pipeline: 'churn-model', runId, codeVersion: 'git-1234', dataVersion: 'synthetic-3', metrics: { val_auc: metrics.val_auc } });
    expect(v1.files.map((f: { key: string }) => f.key)).toEqual(['a.pt', 'b.pt', 'best.json', 'model.pt']);
    expect(fs.readFileSync(path.join(artifacts, 'models', 'versions', 'v1', 'model', 'model.pt')).equals(fs.readFileSync(path.join(dir, 'model', 'model.pt')))).toBe(true);
  }, 60_000);
});
