import * as fs from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { CliIo } from '../cli';
import { AgentError } from '../errors';
import { CLUSTER_TERMINAL, type ClusterJobState } from './records';

/** A cluster job as GET /v1/cluster/jobs/:id answers it (clusterJobJson in routes.ts). */
interface ClusterJobJson {
  id: string;
  state: ClusterJobState;
  spec: { argv: string[]; kind?: string };
  attempt: number;
  exitCode: number | null;
}

/** The cluster routes of any host: they read the shared bucket, so every host answers for every job. */
class ClusterClient {
  private readonly base: string;

  constructor(url: string, private readonly token: string) {
    this.base = url.replace(/\/+$/, '');
  }

  private async call(method: string, p: string): Promise<Response> {
    const res = await fetch(`${this.base}${p}`, { method, headers: { authorization: `Bearer ${this.token}` } });
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

  async get(id: string): Promise<ClusterJobJson> {
    return (await this.call('GET', `/v1/cluster/jobs/${encodeURIComponent(id)}`)).json() as Promise<ClusterJobJson>;
  }

  async list(): Promise<ClusterJobJson[]> {
    return ((await (await this.call('GET', '/v1/cluster/jobs')).json()) as { jobs: ClusterJobJson[] }).jobs;
  }

  async cancel(id: string): Promise<ClusterJobJson> {
    return (await this.call('POST', `/v1/cluster/jobs/${encodeURIComponent(id)}/cancel`)).json() as Promise<ClusterJobJson>;
  }

  /** The whole shipped log, every attempt on every host, as bytes (the route has no offset: callers keep their own). */
  async logs(id: string): Promise<Buffer> {
    return Buffer.from(await (await this.call('GET', `/v1/cluster/jobs/${encodeURIComponent(id)}/logs`)).arrayBuffer());
  }
}

function write(s: NodeJS.WritableStream, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (s.write(data)) resolve();
    else s.once('drain', () => resolve());
  });
}

const seconds = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0.05 || n > 3600) throw new InvalidArgumentError('--poll-seconds must be a number 0.05..3600');
  return n;
};

/**
 * Follows a cluster job's log until it is terminal: each poll reads the state, then the log, and writes
 * only the bytes past what was written. A worker ships its last chunk before it records the end, so the
 * log read after a terminal state is complete. Resolves with the final job.
 */
async function followClusterLogs(client: ClusterClient, id: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream, pollMs: number): Promise<ClusterJobJson> {
  let written: Buffer = Buffer.alloc(0);
  for (;;) {
    const job = await client.get(id);
    const log = await client.logs(id);
    // chunks sort by attempt: a late chunk of an earlier attempt (its lease lost) lands before text already written
    if (log.length < written.length || !log.subarray(0, written.length).equals(written)) {
      await write(err, `mlinfra-agent: the log of job ${id} changed before the part already printed (a late chunk of an earlier attempt); printing on from byte ${written.length}\n`);
    }
    if (log.length > written.length) {
      await write(out, log.subarray(written.length));
      written = log;
    }
    if (CLUSTER_TERMINAL.includes(job.state)) return job;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** `mlinfra-agent cluster status|list|logs|cancel`: the cluster's jobs through any host of it. */
export function addClusterCommand(program: Command, io: CliIo): void {
  const cluster = program.command('cluster').description('Cluster jobs (the queue and bucket shared by every host), through any host.');
  const opts = (c: Command): Command => c
    .option('--url <url>', 'agent URL of any host on the cluster (or MLINFRA_AGENT_URL)')
    .option('--token-file <file>', 'file holding the bearer token (or MLINFRA_AGENT_TOKEN)');
  const clientOf = (o: Record<string, unknown>): ClusterClient => {
    const url = (o.url as string | undefined) ?? io.env.MLINFRA_AGENT_URL ?? 'http://127.0.0.1:7070';
    const file = o.tokenFile as string | undefined;
    const token = file ? fs.readFileSync(file, 'utf8').trim() : io.env.MLINFRA_AGENT_TOKEN?.trim();
    if (!token) throw new AgentError(401, 'no_token', 'no token: pass --token-file FILE or set MLINFRA_AGENT_TOKEN');
    return new ClusterClient(url, token);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const run = (fn: (...args: any[]) => Promise<number>) => async (...args: unknown[]): Promise<void> => {
    let code: number;
    try {
      code = await fn(...args);
    } catch (e) {
      const err = e instanceof AgentError ? e.toJSON() : { error: { code: 'client_error', message: (e as Error).message } };
      await write(io.stderr, `${JSON.stringify(err)}\n`);
      code = 1;
    }
    io.exit(code);
  };

  opts(cluster.command('status')).description('Print a cluster job as JSON: state, attempts (host, outcome) and exit code.')
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      await write(io.stdout, `${JSON.stringify(await clientOf(o).get(id), null, 2)}\n`);
      return 0;
    }));

  opts(cluster.command('list')).description('List cluster jobs: ID STATE EXIT ATTEMPTS COMMAND (tab separated).')
    .option('--state <state>', 'only jobs in this state')
    .option('--json', 'print {jobs: [...]} as JSON', false)
    .action(run(async (o: Record<string, unknown>) => {
      // the route has no filter: the bucket listing is read whole either way
      const jobs = (await clientOf(o).list()).filter((j) => o.state === undefined || j.state === o.state);
      if (o.json) await write(io.stdout, `${JSON.stringify({ jobs }, null, 2)}\n`);
      else for (const j of jobs) await write(io.stdout, `${j.id}\t${j.state}\t${j.exitCode ?? '-'}\t${j.attempt}\t${j.spec.argv.join(' ')}\n`);
      return 0;
    }));

  opts(cluster.command('logs')).description('Print a cluster job\'s log across attempts and hosts (-f: follow until it ends; exit 0 if it succeeded, else 1).')
    .option('-f, --follow', 'follow new chunks and attempts until the job ends', false)
    .option('--poll-seconds <s>', 'with -f: wait between reads of the bucket', seconds, 1)
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      const client = clientOf(o);
      if (!o.follow) {
        await write(io.stdout, await client.logs(id));
        return 0;
      }
      const job = await followClusterLogs(client, id, io.stdout, io.stderr, (o.pollSeconds as number) * 1000);
      return job.state === 'succeeded' ? 0 : 1;
    }));

  opts(cluster.command('cancel')).description('Cancel a cluster job wherever it runs.')
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      const job = await clientOf(o).cancel(id);
      await write(io.stdout, `${job.id}\t${job.state}\n`);
      return 0;
    }));
}
