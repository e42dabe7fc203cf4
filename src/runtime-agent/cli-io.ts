/**
 * What the agent's CLIs share: the outside world they touch, how a client command finds its agent
 * (`--url`, `--token-file` or the environment) and how a failure is printed and becomes an exit code.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { AgentError } from './errors';

/** Everything the CLI touches from the outside world (tests and embedders can pass their own). */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly exit: (code: number) => void;
}

/** The bearer token from `file`, else MLINFRA_AGENT_TOKEN (trimmed; undefined when neither gives one). */
export function readToken(file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (file) return fs.readFileSync(file, 'utf8').trim();
  return env.MLINFRA_AGENT_TOKEN?.trim() || undefined;
}

/** Writes and waits for the stream to take more (a slow pipe holds the command, not its memory). */
export function write(s: NodeJS.WritableStream, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (s.write(data)) resolve();
    else s.once('drain', () => resolve());
  });
}

/** Adds `--url` and `--token-file` to a client command. */
export function connectionOptions(c: Command, urlHelp = 'agent URL (or MLINFRA_AGENT_URL)'): Command {
  return c.option('--url <url>', urlHelp).option('--token-file <file>', 'file holding the bearer token (or MLINFRA_AGENT_TOKEN)');
}

/** The agent a client command talks to; a 401 `no_token` error when no token is given. */
export function connectionOf(o: Record<string, unknown>, env: NodeJS.ProcessEnv): { url: string; token: string } {
  const url = (o.url as string | undefined) ?? env.MLINFRA_AGENT_URL ?? 'http://127.0.0.1:7070';
  const token = readToken(o.tokenFile as string | undefined, env);
  if (!token) throw new AgentError(401, 'no_token', 'no token: pass --token-file FILE or set MLINFRA_AGENT_TOKEN');
  return { url, token };
}

/**
 * Wraps a command's action: its resolved number is the exit code; a thrown error is printed as JSON
 * (`{"error": {...}}`) on stderr and exits with `codeOf(error)` (1 unless said otherwise).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const actionOf = (io: CliIo, codeOf: (e: unknown) => number = () => 1) => (fn: (...args: any[]) => Promise<number>) => async (...args: unknown[]): Promise<void> => {
  let code: number;
  try {
    code = await fn(...args);
  } catch (e) {
    const err = e instanceof AgentError ? e.toJSON() : { error: { code: 'client_error', message: (e as Error).message } };
    await write(io.stderr, `${JSON.stringify(err)}\n`);
    code = codeOf(e);
  }
  io.exit(code);
};
