import { AgentError } from './errors';

/** A small HTTP client of the agent API (used by the CLI; usable from scripts). */
export class AgentClient {
  private readonly base: string;

  constructor(url: string, private readonly token: string) {
    this.base = url.replace(/\/+$/, '');
  }

  private async call(method: string, p: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    if (!res.ok) {
      let err: { code?: string; message?: string; field?: string } = {};
      try {
        err = ((await res.json()) as { error?: typeof err }).error ?? {};
      } catch {
        // not JSON
      }
      throw new AgentError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`, err.field);
    }
    return res;
  }

  async submit(spec: Record<string, unknown>): Promise<JobJson> {
    return (await this.call('POST', '/v1/jobs', spec)).json() as Promise<JobJson>;
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

export interface JobJson {
  id: string;
  state: string;
  exitCode: number | null;
  signal: string | null;
  failure: { class: string; reason: string } | null;
  attempts: number;
  argv: string[];
  [k: string]: unknown;
}
