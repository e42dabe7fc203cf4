import type { JobView } from './job-view';
import { AgentError } from './errors';

/** A small HTTP client of the agent API (used by the CLI; usable from scripts). */
export class AgentClient {
  private readonly base: string;

  constructor(url: string, private readonly token: string) {
    this.base = url.replace(/\/+$/, '');
  }

  private async call(method: string, p: string, body?: unknown, signal?: AbortSignal, extra: Record<string, string> = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    if (!res.ok) {
      let err: { code?: string; message?: string; field?: string } = {};
      try {
        err = ((await res.json()) as { error?: typeof err }).error ?? {};
      } catch {
        // not JSON
      }
      const retryAfter = Number(res.headers.get('retry-after'));
      throw new AgentError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`, err.field,
        Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {});
    }
    return res;
  }

  /**
   * Submits a job. With an idempotency key, a refused connection, a 429 or a 503 is retried (Retry-After
   * honoured, up to `attempts` tries): the agent returns the same job however often the request arrived.
   */
  async submit(spec: Record<string, unknown>, o: { idempotencyKey?: string; attempts?: number } = {}): Promise<JobJson> {
    const key = o.idempotencyKey;
    const attempts = key === undefined ? 1 : (o.attempts ?? 6);
    for (let i = 1; ; i++) {
      try {
        return (await (await this.call('POST', '/v1/jobs', spec, undefined, key === undefined ? {} : { 'idempotency-key': key })).json()) as JobJson;
      } catch (e) {
        const retriable = e instanceof AgentError ? e.statusCode === 429 || e.statusCode === 503 : e instanceof TypeError;
        if (!retriable || i >= attempts) throw e;
        const wait = e instanceof AgentError && e.extra.retryAfterSeconds !== undefined ? e.extra.retryAfterSeconds * 1000 : 250 * 2 ** i;
        await new Promise((r) => setTimeout(r, Math.min(wait, 10_000)));
      }
    }
  }

  async get(id: string): Promise<JobJson> {
    return (await this.call('GET', `/v1/jobs/${encodeURIComponent(id)}`)).json() as Promise<JobJson>;
  }

  async list(state?: string): Promise<JobJson[]> {
    const q = state ? `?state=${encodeURIComponent(state)}` : '';
    return ((await (await this.call('GET', `/v1/jobs${q}`)).json()) as { jobs: JobJson[] }).jobs;
  }

  async cancel(id: string): Promise<JobJson> {
    return (await this.call('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`)).json() as Promise<JobJson>;
  }

  /** Reports a pipeline run's end to the agent's metrics (`POST /v1/pipeline-runs`). */
  async recordPipelineRun(end: { pipeline: string; state: 'succeeded' | 'failed'; runId: string; endedAt: string }, timeoutMs = 10_000): Promise<{ recorded: boolean }> {
    return (await this.call('POST', '/v1/pipeline-runs', end, AbortSignal.timeout(timeoutMs))).json() as Promise<{ recorded: boolean }>;
  }

  /** The job's log; with follow, live until the job ends. */
  async logs(id: string, follow: boolean): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.call('GET', `/v1/jobs/${encodeURIComponent(id)}/logs${follow ? '?follow=1' : ''}`);
    return (res.body ?? new ReadableStream<Uint8Array>()) as unknown as AsyncIterable<Uint8Array>;
  }
}

/** A job as the agent's API answers it: the server's own type (job-view.ts). */
export type JobJson = JobView;
