import { Registry } from 'prom-client';
import { DriftInputError, DriftMetrics, driftScores, psi, PSI_EPSILON, startLocalMetricsServer } from '../../src/runtime-agent/drift';

describe('PSI', () => {
  test('identical distributions give 0, counts and proportions alike', () => {
    expect(psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5])).toBe(0);
    expect(psi([10, 10, 20], [0.25, 0.25, 0.5])).toBeCloseTo(0, 12);
  });

  test('a hand-computed case, to 4 decimals', () => {
    // (0.2-0.1)ln2 + (0.4-0.4)ln1 + (0.4-0.5)ln(0.8) = 0.0693147 + 0 + 0.0223144 = 0.0916291
    expect(psi([0.1, 0.4, 0.5], [0.2, 0.4, 0.4])).toBeCloseTo(0.0916, 4);
    expect(Number(psi([0.1, 0.4, 0.5], [0.2, 0.4, 0.4]).toFixed(4))).toBe(0.0916);
  });

  test('symmetric in expected and actual', () => {
    const e = [5, 20, 30, 45];
    const a = [10, 25, 40, 25];
    expect(psi(e, a)).toBeCloseTo(psi(a, e), 12);
  });

  test('empty bins use epsilon = 1e-4 instead of dividing by zero', () => {
    expect(PSI_EPSILON).toBe(1e-4);
    // bin 0: (0.5 - 1e-4) ln(0.5/1e-4); bin 1: (0.5 - 1) ln(0.5)
    const want = (0.5 - 1e-4) * Math.log(0.5 / 1e-4) + (0.5 - 1) * Math.log(0.5);
    expect(psi([0, 1], [0.5, 0.5])).toBeCloseTo(want, 10);
    expect(Number.isFinite(psi([0, 1], [1, 0]))).toBe(true);
  });

  test.each([
    ['different bin counts', [1, 2], [1, 2, 3], /same bins/],
    ['a single bin', [1], [1], /2 to 1000 bins/],
    ['a negative bin', [1, -1], [1, 1], /expected\[1\].*>= 0/],
    ['a NaN bin', [1, 2], [NaN, 1], /actual\[0\]/],
    ['all bins empty', [0, 0], [1, 1], /all bins are empty/],
  ])('rejects %s', (_name, e, a, message) => {
    expect(() => psi(e as number[], a as number[])).toThrow(DriftInputError);
    expect(() => psi(e as number[], a as number[])).toThrow(message);
  });

  test('drift.json: scores per feature, errors name the feature', () => {
    const s = driftScores({ ltv_30d: { expected: [1, 1], actual: [1, 1] }, age: { expected: [0.1, 0.4, 0.5], actual: [0.2, 0.4, 0.4] } });
    expect(s.ltv_30d).toBe(0);
    expect(s.age).toBeCloseTo(0.0916, 4);
    expect(() => driftScores({ age: { expected: [1, 2] } })).toThrow(/drift\.json: age: actual: expected an array/);
    expect(() => driftScores({ 'bad name': { expected: [1, 2], actual: [1, 2] } })).toThrow(/feature name/);
    expect(() => driftScores([1])).toThrow(/object of features/);
  });
});

describe('agent wiring', () => {
  test('the gauge is served token-free on 127.0.0.1 by the local metrics server', async () => {
    const registry = new Registry();
    const drift = new DriftMetrics(registry);
    drift.record(JSON.stringify({ age: { expected: [0.1, 0.4, 0.5], actual: [0.2, 0.4, 0.4] } }));
    expect(() => drift.record('{')).toThrow(/not JSON/);
    const server = await startLocalMetricsServer(registry, 0);
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(body).toMatch(/^mlinfra_feature_drift_psi\{feature="age"\} 0\.0916\d*$/m);
      expect((await fetch(`http://127.0.0.1:${server.port}/v1/jobs`)).status).toBe(404);
    } finally {
      await server.close();
      await server.close();
    }
  });
});
