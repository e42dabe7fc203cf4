/** Errors the HTTP API answers with: `{error: {code, message, field}}` and a 4xx status. */
export class AgentError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** 429 and 503: seconds the client should wait (the Retry-After header). */
    readonly extra: { readonly retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'AgentError';
  }

  toJSON(): { error: { code: string; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

export const badRequest = (message: string, field?: string): AgentError => new AgentError(400, 'bad_request', message, field);
export const notFound = (message: string): AgentError => new AgentError(404, 'not_found', message);
export const conflict = (message: string): AgentError => new AgentError(409, 'conflict', message);
