/**
 * Rolls a registry version out to a Cloud Run service with Cloud Run's own mechanism: a new revision
 * (named after the version, env MLINFRA_MODEL_URI / MLINFRA_MODEL_VERSION) created with a traffic split
 * that gives it the canary share, a bake time, then all traffic — or, if the revision is not Ready,
 * all traffic back to the revision that served. Cloud Run Admin API v2 over fetch
 * (cloud.google.com/run/docs/reference/rest/v2/projects.locations.services/patch; revision names must
 * start with the service name: cloud.google.com/run/docs/reference/rest/v2/RevisionTemplate).
 */
import { cloudRunConfigDigest } from './cloudrun-template';
import type { ModelVersion } from './registry';

export interface CloudRunRolloutConfig {
  /** projects/<p>/locations/<l>/services/<s> */
  readonly service: string;
  /** Share of traffic the new revision gets while it bakes; 100 moves all traffic at once. */
  readonly canaryPercent: number;
  readonly bakeSeconds: number;
  /** The serving image as Terraform last set it (the record); the live template keeps its own when absent. */
  readonly image?: string;
  /**
   * The revision template as Terraform last set it (the record, Admin API v2 shape, no revision name):
   * each rollout deploys it, so a changed template reaches serving. Absent (an older record): the live
   * template is kept and only its image and model env change.
   */
  readonly template?: Service['template'];
  /** @default 'https://run.googleapis.com' */
  readonly apiUrl?: string;
  /** @default 5 */
  readonly pollSeconds?: number;
  /** @default 1800 */
  readonly maxWaitSeconds?: number;
}

export interface CloudRunDeps {
  /** An OAuth access token for the Cloud Run API (the VM's service account by default). */
  readonly token?: () => Promise<string>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

interface Service {
  name: string;
  template: { revision?: string; containers: { image?: string; env?: { name: string; value?: string }[]; [k: string]: unknown }[]; [k: string]: unknown };
  traffic?: { type: string; revision?: string; percent?: number }[];
  latestReadyRevision?: string;
  trafficStatuses?: { type: string; revision?: string; percent?: number }[];
  [k: string]: unknown;
}

/**
 * Cloud Run revision names: the service name, a dash, the version (and the config's digest, when the
 * record carries a template: the same version with another template is another revision); 63
 * characters at most.
 */
export function revisionName(service: string, version: string, digest?: string): string {
  const s = service.split('/').pop()!;
  const tail = digest ? `${version}-${digest}` : version;
  return `${s.slice(0, 63 - tail.length - 1).replace(/-+$/, '')}-${tail}`;
}

async function defaultToken(): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { GoogleAuth } = require('google-auth-library') as typeof import('google-auth-library');
  const t = await new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] }).getAccessToken();
  if (!t) throw new Error('no Google access token (is a service account attached?)');
  return t;
}

export async function rolloutCloudRun(cfg: CloudRunRolloutConfig, v: ModelVersion, deps: CloudRunDeps = {}): Promise<{ revision: string; previousRevision: string | null }> {
  const api = (cfg.apiUrl ?? 'https://run.googleapis.com').replace(/\/+$/, '');
  const token = deps.token ?? defaultToken;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${api}/v2/${path}`, {
      method, headers: { authorization: `Bearer ${await token()}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) {
      let msg = text;
      try { msg = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text; } catch { /* not JSON */ }
      throw new Error(`Cloud Run ${method} ${path}: ${res.status} ${msg}`);
    }
    return JSON.parse(text) as T;
  };
  const deadline = now() + (cfg.maxWaitSeconds ?? 1800) * 1000;
  const waitOp = async (op: { name: string; done?: boolean; error?: { message?: string } }): Promise<void> => {
    while (!op.done) {
      if (now() > deadline) throw new Error(`Cloud Run operation ${op.name} not done after ${cfg.maxWaitSeconds ?? 1800} s`);
      await sleep((cfg.pollSeconds ?? 5) * 1000);
      op = await call('GET', op.name);
    }
    if (op.error) throw new Error(`Cloud Run operation ${op.name} failed: ${op.error.message ?? JSON.stringify(op.error)}`);
  };
  const patch = async (s: Service) => waitOp(await call('PATCH', cfg.service, s));

  const svc = await call<Service>('GET', cfg.service);
  const rev = revisionName(cfg.service, v.version, cloudRunConfigDigest(cfg));
  const previous = svc.latestReadyRevision ?? null;
  if (previous === rev) return { revision: rev, previousRevision: previous };
  const envOf = (c: Service['template']['containers'][number]) => [
    ...(c.env ?? []).filter((e) => e.name !== 'MLINFRA_MODEL_URI' && e.name !== 'MLINFRA_MODEL_VERSION'),
    { name: 'MLINFRA_MODEL_URI', value: v.modelUri }, { name: 'MLINFRA_MODEL_VERSION', value: v.version },
  ];
  const base = cfg.template ?? svc.template;
  const template = { ...base, revision: rev, containers: base.containers.map((c, i) => (i === 0 ? { ...c, ...(cfg.image ? { image: cfg.image } : {}), env: envOf(c) } : c)) };
  const split = (pct: number) => [
    { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: rev, percent: pct },
    ...(previous && pct < 100 ? [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: previous, percent: 100 - pct }] : []),
  ];
  const pct = previous ? Math.min(100, Math.max(1, Math.round(cfg.canaryPercent))) : 100;
  try {
    await patch({ ...svc, template, traffic: split(pct) });
  } catch (e) {
    throw new Error(`new revision ${rev} did not become ready, traffic stays on ${previous ?? 'nothing'}: ${(e as Error).message}`);
  }
  if (pct < 100) {
    await sleep(cfg.bakeSeconds * 1000);
    const baked = await call<Service>('GET', cfg.service);
    const ready = (baked.conditions as { type: string; state: string }[] | undefined)?.find((c) => c.type === 'RoutesReady');
    if (baked.latestReadyRevision !== rev || (ready && ready.state !== 'CONDITION_SUCCEEDED')) {
      await patch({ ...baked, traffic: split(0).filter((t) => t.revision !== rev).map((t) => ({ ...t, percent: 100 })) });
      throw new Error(`revision ${rev} was not ready after its ${cfg.bakeSeconds} s canary: all traffic back on ${previous}`);
    }
    await patch({ ...baked, traffic: split(100) });
  }
  return { revision: rev, previousRevision: previous };
}
