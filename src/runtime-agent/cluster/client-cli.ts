import { createHash, type Hash } from 'node:crypto';
import { type Command, InvalidArgumentError } from 'commander';
import { actionOf, type CliIo, connectionOf, connectionOptions, write } from '../cli-io';
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

/** A gang as GET /v1/cluster/gangs/:id answers it (gangJson in gang-routes.ts). */
interface GangJson {
  id: string;
  state: string;
  nodes: number;
  attempts: { attempt: number; rankJobs: string[] }[];
}

const GANG_TERMINAL = ['succeeded', 'failed', 'cancelled'];

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

  /** `unreadable`: records the agent could not read (named, never dropped unsaid). */
  async list(): Promise<{ jobs: ClusterJobJson[]; unreadable: { key: string; error: string }[] }> {
    const r = (await (await this.call('GET', '/v1/cluster/jobs')).json()) as { jobs: ClusterJobJson[]; unreadable?: { key: string; error: string }[] };
    return { jobs: r.jobs, unreadable: r.unreadable ?? [] };
  }

  async gang(id: string): Promise<GangJson> {
    return (await this.call('GET', `/v1/cluster/gangs/${encodeURIComponent(id)}`)).json() as Promise<GangJson>;
  }

  async cancel(id: string): Promise<ClusterJobJson> {
    return (await this.call('POST', `/v1/cluster/jobs/${encodeURIComponent(id)}/cancel`)).json() as Promise<ClusterJobJson>;
  }

  /** The whole shipped log, every attempt on every host, as bytes. */
  async logs(id: string): Promise<Buffer> {
    return Buffer.from(await (await this.call('GET', `/v1/cluster/jobs/${encodeURIComponent(id)}/logs`)).arrayBuffer());
  }

  /**
   * The log past byte `from`, the whole log's length and the digest of its first `from` bytes; null
   * `length` from a host that predates `?from` (it answered the whole log).
   */
  async logsFrom(id: string, from: number): Promise<{ bytes: Buffer; length: number | null; headSha256: string | null }> {
    const res = await this.call('GET', `/v1/cluster/jobs/${encodeURIComponent(id)}/logs?from=${from}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const length = res.headers.get('x-log-length');
    return { bytes, length: length === null ? null : Number(length), headSha256: res.headers.get('x-log-head-sha256') };
  }
}


const rankOf = (v: string): number => {
  if (!/^\d{1,3}$/.test(v)) throw new InvalidArgumentError('--rank must be a rank number 0..255');
  return Number(v);
};

const seconds = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0.05 || n > 3600) throw new InvalidArgumentError('--poll-seconds must be a number 0.05..3600');
  return n;
};

/**
 * Follows a cluster job's log until it is terminal: each poll reads the state, then only the bytes past
 * what was written (`?from=`), so a long job costs each poll its new bytes, not its whole log. A worker
 * ships its last chunk before it records the end, so the log read after a terminal state is complete.
 * Resolves with the final job.
 */
async function followClusterLogs(client: ClusterClient, id: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream, pollMs: number): Promise<ClusterJobJson> {
  let written = 0;
  // the digest of what was written, carried on (copied to compare): no need to keep the bytes
  let head: Hash = createHash('sha256');
  for (;;) {
    const job = await client.get(id);
    const part = await client.logsFrom(id, written);
    let bytes = part.bytes;
    if (part.length === null || part.length < written || part.headSha256 !== head.copy().digest('hex')) {
      // the whole log: a host without ?from sent it anyway, or the log changed before what was printed
      const whole = part.length === null ? part.bytes : await client.logs(id);
      const prefix = whole.subarray(0, written);
      // chunks sort by attempt: a late chunk of an earlier attempt (its lease lost) lands before text already written
      if (whole.length < written || createHash('sha256').update(prefix).digest('hex') !== head.copy().digest('hex')) {
        await write(err, `mlinfra-agent: the log of job ${id} changed before the part already printed (a late chunk of an earlier attempt); printing on from byte ${written}\n`);
        head = createHash('sha256').update(prefix);
      }
      bytes = whole.subarray(written);
    }
    if (bytes.length > 0) {
      await write(out, bytes);
      head.update(bytes);
      written += bytes.length;
    }
    if (CLUSTER_TERMINAL.includes(job.state)) return job;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Rank `rank`'s log of a gang, attempt after attempt (each rank of an attempt is a cluster job of its
 * own): a line on `err` names each attempt and its job, the job's bytes go to `out`. With `follow`,
 * each attempt is followed to its end and the next one waited for, until the gang ends. Resolves with
 * the gang as it ended (or as it is, without `follow`).
 */
async function gangLogs(client: ClusterClient, id: string, rank: number, out: NodeJS.WritableStream, err: NodeJS.WritableStream, pollMs: number, follow: boolean): Promise<GangJson> {
  let g = await client.gang(id);
  if (rank >= g.nodes) throw new AgentError(400, 'bad_request', `--rank ${rank}: gang ${id} has ${g.nodes} nodes (ranks 0..${g.nodes - 1})`, 'rank');
  let shown = 0;
  for (;;) {
    for (const a of g.attempts.slice(shown)) {
      const job = a.rankJobs[rank];
      await write(err, `mlinfra-agent: gang ${id} attempt ${a.attempt}, rank ${rank}: job ${job}\n`);
      if (follow) await followClusterLogs(client, job, out, err, pollMs);
      else await write(out, await client.logs(job));
      shown = a.attempt;
    }
    if (!follow) return g;
    g = await client.gang(id);
    if (g.attempts.length > shown) continue;
    if (GANG_TERMINAL.includes(g.state)) return g;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** `mlinfra-agent cluster status|list|logs|cancel`: the cluster's jobs through any host of it. */
export function addClusterCommand(program: Command, io: CliIo): void {
  const cluster = program.command('cluster').description('Cluster jobs (the queue and bucket shared by every host), through any host.');
  const opts = (c: Command): Command => connectionOptions(c, 'agent URL of any host on the cluster (or MLINFRA_AGENT_URL)');
  const clientOf = (o: Record<string, unknown>): ClusterClient => {
    const { url, token } = connectionOf(o, io.env);
    return new ClusterClient(url, token);
  };
  const run = actionOf(io);

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
      const all = await clientOf(o).list();
      const jobs = all.jobs.filter((j) => o.state === undefined || j.state === o.state);
      if (o.json) await write(io.stdout, `${JSON.stringify({ jobs, ...(all.unreadable.length > 0 ? { unreadable: all.unreadable } : {}) }, null, 2)}\n`);
      else for (const j of jobs) await write(io.stdout, `${j.id}\t${j.state}\t${j.exitCode ?? '-'}\t${j.attempt}\t${j.spec.argv.join(' ')}\n`);
      for (const u of all.unreadable) await write(io.stderr, `cluster list: record ${u.key} could not be read: ${u.error}\n`);
      return all.unreadable.length > 0 ? 1 : 0;
    }));

  opts(cluster.command('logs')).description('Print a cluster job\'s log across attempts and hosts (-f: follow until it ends; exit 0 if it succeeded, else 1). With --rank, the id is a gang\'s and the log is that rank\'s, attempt after attempt.')
    .option('-f, --follow', 'follow new chunks and attempts until the job ends', false)
    .option('--poll-seconds <s>', 'with -f: wait between reads of the bucket', seconds, 1)
    .option('--rank <n>', 'the id is a gang (submit --nodes): print rank n\'s log (0: the rank that usually reports)', rankOf)
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      const client = clientOf(o);
      if (o.rank !== undefined) {
        const g = await gangLogs(client, id, o.rank as number, io.stdout, io.stderr, (o.pollSeconds as number) * 1000, o.follow === true);
        return !o.follow || g.state === 'succeeded' ? 0 : 1;
      }
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
