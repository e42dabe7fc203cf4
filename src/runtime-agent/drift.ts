/**
 * Data drift: the population stability index (PSI) of a feature between its training reference and
 * a batch. A batch job writes `drift.json` into its artifact dir:
 *   { "<feature>": { "expected": [bin counts or proportions], "actual": [same bins] }, ... }
 * and the agent exports each score as the gauge `mlinfra_feature_drift_psi{feature="<feature>"}`.
 *
 * PSI = sum over bins of (a - e) * ln(a / e), with e and a the bins' shares of their totals.
 * 0 for identical distributions, symmetric in e and a; < 0.1 no shift, 0.1-0.2 moderate, > 0.2 significant.
 */
import { createServer, type Server } from 'node:http';
import { Gauge, type Registry } from 'prom-client';

/**
 * Share given to an empty bin, so ln stays finite: a bin empty on one side and holding x on the
 * other contributes (x - 1e-4) * ln(x / 1e-4). Only empty bins change; shares are not renormalised.
 */
export const PSI_EPSILON = 1e-4;
export const DRIFT_FILE = 'drift.json';
export const DRIFT_GAUGE = 'mlinfra_feature_drift_psi';
const MAX_BINS = 1000;
const FEATURE = /^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$/;

export class DriftInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DriftInputError';
  }
}

function shares(name: string, bins: unknown): number[] {
  if (!Array.isArray(bins) || bins.length < 2 || bins.length > MAX_BINS) {
    throw new DriftInputError(`${name}: expected an array of 2 to ${MAX_BINS} bins, got ${Array.isArray(bins) ? `${bins.length} bins` : typeof bins}`);
  }
  for (const [i, b] of bins.entries()) {
    if (typeof b !== 'number' || !Number.isFinite(b) || b < 0) throw new DriftInputError(`${name}[${i}]: expected a finite number >= 0, got ${JSON.stringify(b)}`);
  }
  const total = (bins as number[]).reduce((s, b) => s + b, 0);
  if (total <= 0) throw new DriftInputError(`${name}: all bins are empty`);
  return (bins as number[]).map((b) => b / total);
}

/** PSI of `actual` against `expected`: bin counts or proportions over the same bins (each normalised to its total). */
export function psi(expected: readonly number[], actual: readonly number[], epsilon = PSI_EPSILON): number {
  if (!(epsilon > 0 && epsilon < 0.01)) throw new DriftInputError(`epsilon: expected a number in (0, 0.01), got ${epsilon}`);
  const e = shares('expected', expected);
  const a = shares('actual', actual);
  if (e.length !== a.length) throw new DriftInputError(`actual: has ${a.length} bins, expected has ${e.length}; both must use the same bins`);
  let sum = 0;
  for (let i = 0; i < e.length; i++) {
    const ei = Math.max(e[i], epsilon);
    const ai = Math.max(a[i], epsilon);
    sum += (ai - ei) * Math.log(ai / ei);
  }
  return sum;
}

/** Scores every feature of a parsed drift.json. Throws DriftInputError naming the feature at fault. */
export function driftScores(doc: unknown): Record<string, number> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new DriftInputError(`${DRIFT_FILE}: expected an object of features`);
  const out: Record<string, number> = {};
  for (const [feature, v] of Object.entries(doc)) {
    if (!FEATURE.test(feature)) throw new DriftInputError(`${DRIFT_FILE}: feature name ${JSON.stringify(feature)} is not [A-Za-z_][A-Za-z0-9_.:/-]*`);
    if (typeof v !== 'object' || v === null) throw new DriftInputError(`${DRIFT_FILE}: ${feature}: expected { expected: [...], actual: [...] }`);
    const { expected, actual } = v as { expected?: unknown; actual?: unknown };
    try {
      out[feature] = psi(expected as number[], actual as number[]);
    } catch (err) {
      throw new DriftInputError(`${DRIFT_FILE}: ${feature}: ${(err as Error).message}`);
    }
  }
  return out;
}

/** The drift gauge on an agent's registry; the latest batch's score per feature wins. */
export class DriftMetrics {
  private readonly gauge: Gauge<'feature'>;

  constructor(registry: Registry) {
    this.gauge = new Gauge({ name: DRIFT_GAUGE, help: 'Population stability index of a feature: latest batch vs. training reference.', labelNames: ['feature'], registers: [registry] });
  }

  /** Parses drift.json text and sets the gauges; returns the scores. */
  public record(text: string): Record<string, number> {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new DriftInputError(`${DRIFT_FILE}: not JSON: ${(err as Error).message}`);
    }
    const scores = driftScores(doc);
    for (const [feature, value] of Object.entries(scores)) this.gauge.set({ feature }, value);
    return scores;
  }
}

/**
 * `serve --metrics-local-port N`: the registry, token-free, on 127.0.0.1 only, for the host's metrics
 * agent (CloudWatch agent, Ops Agent). Nothing else is served there.
 */
export async function startLocalMetricsServer(registry: Registry, port: number): Promise<{ readonly port: number; close(): Promise<void> }> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid option --metrics-local-port=${port}: an integer 0..65535`);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    }, () => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as { port: number }).port,
    close: () => (closed ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}
