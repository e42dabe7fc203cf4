/**
 * Multi-node (gang) jobs on the cluster queue. A gang of N nodes is N rank messages (ordinary cluster
 * jobs, so the queue depth counts nodes and a host holding a rank is busy like any other), plus a gang
 * record in the bucket. Everything the ranks agree on goes through conditional writes there:
 *
 *   <artifacts>/gangs/<id>/gang.json            the gang: its attempts and state (If-Match updates)
 *   <artifacts>/gangs/<id>/<A>/rank-<i>.json    rank i of gang attempt A registered (If-None-Match)
 *   <artifacts>/gangs/<id>/<A>/abort.json       the first failure of attempt A (If-None-Match): every rank stops
 *   <artifacts>/gangs/<id>/<A>/done-<i>.json    rank i of attempt A exited 0
 *
 * Each rank runs under `mlinfra-agent gang-rank` (gang-rank.ts): register, wait for all N (the barrier,
 * `gangTimeoutSeconds`), run the job under torchrun, watch abort.json. On every host, when a rank's
 * local run ends, `GangCoordinator` moves the gang on: all N done -> succeeded; an abort -> the whole
 * gang is re-queued as attempt A+1 (new rank messages; the old attempt's rank jobs are cancelled) or
 * failed. Exactly one host wins each move (If-Match on gang.json). No consensus code of our own.
 */
import type { Logger } from 'pino';
import { AgentError } from '../errors';
import type { Scheduler } from '../scheduler';
import { joinUri, PreconditionFailed, type Storage } from '../storage/index';
import type { JobRecord, JobSpec } from '../types';
import { CLUSTER_TERMINAL, newClusterJobId } from './records';
import type { ClusterWorker } from './worker';

export type GangState = 'queued' | 'succeeded' | 'failed' | 'cancelled';
/**
 * Why an attempt stopped: a rank's program failed, a rank's host stopped reporting (lost: kill -9, a
 * reclaim with no notice), a notice, the barrier timed out, a cancel. Only `exit` uses a retry.
 */
export type AbortKind = 'exit' | 'lost' | 'preempted' | 'timeout' | 'cancelled' | 'superseded';

export interface GangAttempt {
  readonly attempt: number;
  /** Cluster job ids of the N rank messages, rank order. */
  readonly rankJobs: string[];
  readonly queuedAt: string;
  endedAt?: string;
  outcome?: 'succeeded' | AbortKind;
  reason?: string;
}

export interface GangRecord {
  readonly v: 1;
  readonly id: string;
  readonly nodes: number;
  readonly gpusPerNode: number;
  readonly timeoutSeconds: number;
  /** The job every rank runs (argv, env, retries: gang attempts charged to failures). */
  readonly spec: JobSpec;
  state: GangState;
  attempts: GangAttempt[];
  failure?: { class: string; reason: string } | null;
  readonly createdAt: string;
  updatedAt: string;
}

export interface AbortRecord {
  readonly kind: AbortKind;
  readonly rank: number;
  readonly host: string;
  readonly reason: string;
  readonly at: string;
}

export interface GangInput {
  readonly spec: JobSpec;
  readonly nodes: number;
  readonly gpusPerNode: number;
  /** @default 600 */
  readonly timeoutSeconds?: number;
}

/** The env names a rank's job sees (the contract in src/contracts/pipeline-spec.ts). */
export const GANG_ENV = {
  id: 'MLINFRA_GANG_ID', attempt: 'MLINFRA_GANG_ATTEMPT', uri: 'MLINFRA_GANG_URI', timeout: 'MLINFRA_GANG_TIMEOUT_SECONDS',
  nodeRank: 'MLINFRA_NODE_RANK', nnodes: 'MLINFRA_NNODES', gpusPerNode: 'MLINFRA_GPUS_PER_NODE', rdzv: 'MLINFRA_RDZV_ENDPOINT',
} as const;

export const gangUri = (artifacts: string, id: string): string => joinUri(artifacts, `gangs/${id}`);
export const attemptUri = (gang: string, attempt: number): string => joinUri(gang, String(attempt));

const TERMINAL: readonly GangState[] = ['succeeded', 'failed', 'cancelled'];
/** Tries of a gang move after a rank ends (1, 2, 4 and 8 s apart by default). */
const MOVE_ON_TRIES = 5;
/** How long a look waits on an attempt ended on every rank before it moves the gang itself (the host that should may be gone). */
const STUCK_MS = 30_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads and updates gang records with conditional writes; `update` retries when another host won. */
export class GangStore {
  constructor(private readonly storage: Storage, readonly artifacts: string) {}

  uri(id: string): string {
    return gangUri(this.artifacts, id);
  }

  async read(id: string): Promise<GangRecord | null> {
    const v = await this.storage.readVersioned(joinUri(this.uri(id), 'gang.json'));
    return v ? (JSON.parse(v.text) as GangRecord) : null;
  }

  async create(g: GangRecord): Promise<void> {
    await this.storage.writeIf(joinUri(this.uri(g.id), 'gang.json'), `${JSON.stringify(g)}\n`, null);
  }

  /** Applies `fn` to the current record and writes it If-Match; `fn` returns false to write nothing. */
  async update(id: string, fn: (g: GangRecord) => boolean): Promise<GangRecord | null> {
    const uri = joinUri(this.uri(id), 'gang.json');
    for (let i = 0; i < 20; i++) {
      const v = await this.storage.readVersioned(uri);
      if (!v) return null;
      const g = JSON.parse(v.text) as GangRecord;
      if (!fn(g)) return g;
      g.updatedAt = new Date().toISOString();
      try {
        await this.storage.writeIf(uri, `${JSON.stringify(g)}\n`, v.tag);
        return g;
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e;
      }
    }
    throw new Error(`gang ${id}: gang.json kept changing under 20 conditional writes`);
  }

  async abortOf(id: string, attempt: number): Promise<AbortRecord | null> {
    const v = await this.storage.readVersioned(joinUri(attemptUri(this.uri(id), attempt), 'abort.json'));
    return v ? (JSON.parse(v.text) as AbortRecord) : null;
  }

  /** Writes the attempt's abort record unless one exists; returns the one that holds. */
  async abort(id: string, attempt: number, a: AbortRecord): Promise<AbortRecord> {
    return writeAbort(this.storage, attemptUri(this.uri(id), attempt), a);
  }

  async doneCount(id: string, attempt: number): Promise<number> {
    return (await this.progress(id, attempt)).done;
  }

  /** What the attempt's prefix shows: ranks registered, ranks done, whether it was aborted (one listing). */
  async progress(id: string, attempt: number): Promise<{ registered: number; done: number; aborted: boolean }> {
    const objs = await this.storage.list(attemptUri(this.uri(id), attempt));
    return {
      registered: objs.filter((o) => /^rank-\d+\.json$/.test(o.key)).length,
      done: objs.filter((o) => /^done-\d+\.json$/.test(o.key)).length,
      aborted: objs.some((o) => o.key === 'abort.json'),
    };
  }
}

/** The first abort of an attempt wins (If-None-Match); later ones read it back. */
export async function writeAbort(storage: Storage, attemptPrefix: string, a: AbortRecord): Promise<AbortRecord> {
  const uri = joinUri(attemptPrefix, 'abort.json');
  try {
    await storage.writeIf(uri, `${JSON.stringify(a)}\n`, null);
    return a;
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    const v = await storage.readVersioned(uri);
    return v ? (JSON.parse(v.text) as AbortRecord) : a;
  }
}

/** The spec of rank `rank` of attempt `attempt`: the gang's job with the rank's env and its own checkpoint prefix. */
export function rankSpec(g: GangRecord, artifacts: string, attempt: number, rank: number, storage: Storage): JobSpec {
  // per-node checkpoints, stable across gang attempts: rank i of attempt 2 restores what rank i saved in attempt 1
  const ckpt = joinUri(artifacts, `checkpoints/${g.id}/rank-${rank}`);
  return {
    ...g.spec,
    name: `${g.spec.name ?? 'gang'} rank ${rank}/${g.nodes}`.slice(0, 200),
    gpus: g.gpusPerNode,
    retries: 0, // the gang re-queues as a whole, never one rank alone
    ...(storage.isLocal(artifacts) ? {} : { checkpointDir: ckpt }),
    env: {
      ...g.spec.env,
      [GANG_ENV.id]: g.id, [GANG_ENV.attempt]: String(attempt), [GANG_ENV.uri]: gangUri(artifacts, g.id),
      [GANG_ENV.timeout]: String(g.timeoutSeconds), [GANG_ENV.nodeRank]: String(rank), [GANG_ENV.nnodes]: String(g.nodes),
      [GANG_ENV.gpusPerNode]: String(g.gpusPerNode),
      // a file:// bucket is a shared mount: the rank writes its checkpoint there directly
      ...(storage.isLocal(artifacts) ? { MLINFRA_GANG_CHECKPOINT_URI: ckpt } : {}),
    },
  };
}

/** True when this host already holds a rank of the same gang: one rank per host, so it puts the message back. */
export function holdsGangRank(spec: JobSpec, held: Iterable<{ job: { spec: JobSpec } }>): boolean {
  const id = spec.env?.[GANG_ENV.id];
  if (id === undefined) return false;
  for (const l of held) if (l.job.spec.env?.[GANG_ENV.id] === id) return true;
  return false;
}

/** A rank's local spec: the job runs under `mlinfra-agent gang-rank` (this very bundle), which does the barrier and torchrun. */
export function gangLaunch(spec: JobSpec): JobSpec {
  if (spec.env?.[GANG_ENV.id] === undefined) return spec;
  return { ...spec, argv: [process.execPath, process.argv[1], 'gang-rank', '--', ...spec.argv] };
}

/** Enqueues a gang's rank messages and keeps its record; a move after a rank ends happens on that rank's host. */
export class GangCoordinator {
  readonly store: GangStore;

  /** `backoffMs`: the first wait before a gang move is tried again (doubling, at most 16 s); `stuckMs`: see look(). */
  constructor(private readonly worker: ClusterWorker, private readonly storage: Storage, artifacts: string, private readonly maxAttempts: number,
    private readonly logger: Logger, private readonly backoffMs = 1000, private readonly stuckMs = STUCK_MS) {
    this.store = new GangStore(storage, artifacts);
  }

  /** Gang attempts seen ended on every rank but not moved on: when this host first saw each. */
  private readonly stuck = new Map<string, number>();

  listen(scheduler: Scheduler): void {
    scheduler.on('job:finished', (job: JobRecord) => {
      const id = job.spec.env?.[GANG_ENV.id];
      if (id === undefined) return;
      const attempt = Number(job.spec.env[GANG_ENV.attempt]);
      void this.moveOn(id, attempt, job.state === 'succeeded');
    });
  }

  /**
   * rankEnded, tried again on a bucket error (a 5xx, a lock left by a writer that died): no other
   * host may see this rank end, so giving up here could leave the gang where it is for good.
   */
  private async moveOn(id: string, attempt: number, ok: boolean): Promise<void> {
    await this.retrying(() => this.rankEnded(id, attempt, ok), (e, i) => this.logger.warn({ gangId: id, attempt, err: e.message, try: i }, 'gang bookkeeping failed: trying again'))
      .catch((e: Error) => this.logger.error({ gangId: id, attempt, err: e.message }, `gang bookkeeping failed ${MOVE_ON_TRIES} times`));
  }

  /** `fn`, tried MOVE_ON_TRIES times (backoffMs, doubling, at most 16 s apart); throws the last error. */
  private async retrying<T>(fn: () => Promise<T>, onRetry: (e: Error, tried: number) => void = () => undefined): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (i >= MOVE_ON_TRIES) throw e;
        onRetry(e as Error, i);
        await sleep(Math.min(16_000, this.backoffMs * 2 ** (i - 1)));
      }
    }
  }

  /** Records the gang, then enqueues its N ranks. A queue failure part-way cancels what was sent: nothing is half-accepted. */
  async submit(input: GangInput): Promise<GangRecord> {
    const now = new Date().toISOString();
    const g: GangRecord = {
      v: 1, id: newClusterJobId(), nodes: input.nodes, gpusPerNode: input.gpusPerNode, timeoutSeconds: input.timeoutSeconds ?? 600,
      spec: input.spec, state: 'queued', attempts: [], createdAt: now, updatedAt: now,
    };
    await this.store.create(g);
    try {
      return await this.queueAttempt(g, 1);
    } catch (e) {
      await this.store.update(g.id, (r) => {
        Object.assign(r, { state: 'failed', failure: { class: 'queue', reason: `not all ${g.nodes} ranks were enqueued: ${(e as Error).message}` } });
        return true;
      }).catch(() => undefined);
      throw e;
    }
  }

  async cancel(id: string): Promise<GangRecord | null> {
    const g = await this.store.read(id);
    if (!g || TERMINAL.includes(g.state)) return g;
    const a = g.attempts[g.attempts.length - 1];
    if (a) await this.store.abort(id, a.attempt, { kind: 'cancelled', rank: -1, host: '', reason: 'cancelled by a user', at: new Date().toISOString() });
    return this.finish(id, a?.attempt ?? 0, 'cancelled', 'cancelled', 'cancelled by a user');
  }

  private async queueAttempt(g: GangRecord, attempt: number): Promise<GangRecord> {
    const sent: string[] = [];
    try {
      for (let r = 0; r < g.nodes; r++) sent.push((await this.worker.enqueue(rankSpec(g, this.store.artifacts, attempt, r, this.storage))).id);
    } catch (e) {
      for (const id of sent) await this.worker.cancel(id).catch(() => undefined);
      if (e instanceof AgentError) throw e;
      throw new AgentError(503, 'queue_unavailable', `the gang's ranks were not all enqueued (those sent are cancelled; retry): ${(e as Error).message}`);
    }
    let pushed = false;
    const updated = await this.store.update(g.id, (r) => {
      pushed = false;
      // ended meanwhile (a cancel), or another host queued this attempt (look): these ranks must not run
      if (TERMINAL.includes(r.state) || r.attempts.length !== attempt - 1) return false;
      r.attempts.push({ attempt, rankJobs: sent, queuedAt: new Date().toISOString() });
      pushed = true;
      return true;
    }).catch(async (e: unknown) => {
      // ranks the record does not name would run as nobody's attempt
      for (const j of sent) await this.worker.cancel(j).catch(() => undefined);
      throw e;
    });
    if (pushed) this.logger.info({ gangId: g.id, attempt, rankJobs: sent }, 'gang attempt queued');
    else for (const id of sent) await this.worker.cancel(id).catch(() => undefined);
    return updated ?? g;
  }

  /**
   * A look at a gang (GET) also moves on one that no host moved (that host stopped first), once it has
   * stayed so for STUCK_MS by this host's clock: every rank job of the current attempt ended (all done,
   * or an abort) and the attempt has no end; or its end is written but attempt A+1 was never queued
   * (twice as long: the host that wrote it may still be retrying the queue). Both moves are guarded
   * If-Match writes, so a host moving the gang meanwhile is never raced. Returns the record after.
   */
  async look(g: GangRecord, p: { done: number; aborted: boolean }): Promise<GangRecord> {
    const a = g.attempts[g.attempts.length - 1];
    if (TERMINAL.includes(g.state) || !a) return g;
    const requeue = a.outcome !== undefined;
    const key = `${g.id}/${a.attempt}${requeue ? '+' : ''}`;
    if (!requeue && p.done < g.nodes && !p.aborted) {
      this.stuck.delete(key);
      return g;
    }
    const jobs = requeue ? [] : await Promise.all(a.rankJobs.map((j) => this.worker.store.read(j).catch(() => null)));
    if (jobs.some((j) => !j || !CLUSTER_TERMINAL.includes(j.state))) return g;
    const since = this.stuck.get(key);
    if (since === undefined) {
      if (this.stuck.size > 1000) this.stuck.clear();
      this.stuck.set(key, Date.now());
      return g;
    }
    if (Date.now() - since < this.stuckMs * (requeue ? 2 : 1)) return g;
    this.stuck.delete(key);
    this.logger.warn({ gangId: g.id, attempt: a.attempt }, requeue ? 'gang attempt ended but the next was never queued: queued here' : 'every rank of the gang attempt ended but no host moved it on: moved here');
    if (requeue) {
      await this.cancelRanks(a);
      await this.queueAttempt(g, a.attempt + 1);
    } else {
      await this.rankEnded(g.id, a.attempt, jobs.every((j) => j!.state === 'succeeded'));
    }
    return (await this.store.read(g.id)) ?? g;
  }

  /** A rank of `attempt` ended on this host: succeed the gang when all N are done; otherwise move on from its abort. */
  private async rankEnded(id: string, attempt: number, ok: boolean): Promise<void> {
    const g = await this.store.read(id);
    if (!g || TERMINAL.includes(g.state) || g.attempts.length !== attempt) return;
    // decided already: another host marked this attempt's end and is sending the next one (counting
    // its failure again here would charge one failure twice)
    if (g.attempts[attempt - 1]?.outcome) return;
    if (ok) {
      if ((await this.store.doneCount(id, attempt)) >= g.nodes) await this.finish(id, attempt, 'succeeded', 'succeeded', undefined);
      return;
    }
    // no abort record: the rank ended before the wrapper could write one (killed, refused): it is an exit
    const abort = (await this.store.abortOf(id, attempt))
      ?? await this.store.abort(id, attempt, { kind: 'exit', rank: -1, host: '', reason: 'a rank ended without reaching its program', at: new Date().toISOString() });
    if (abort.kind === 'timeout' || abort.kind === 'cancelled') {
      await this.finish(id, attempt, abort.kind === 'timeout' ? 'failed' : 'cancelled', abort.kind, abort.reason);
      return;
    }
    const charged = g.attempts.filter((a) => a.outcome === 'exit').length + (abort.kind === 'exit' ? 1 : 0);
    if (charged > (g.spec.retries ?? 0) || attempt >= this.maxAttempts) {
      const why = attempt >= this.maxAttempts ? `${attempt} gang attempts (--max-attempts ${this.maxAttempts})` : `retries ${g.spec.retries ?? 0} used`;
      await this.finish(id, attempt, 'failed', abort.kind, `${abort.reason}; ${why}`);
      return;
    }
    // re-queue the gang as a whole: only the host whose If-Match write wins enqueues attempt + 1
    let won = false;
    const next = await this.store.update(id, (r) => {
      const last = r.attempts[r.attempts.length - 1];
      if (TERMINAL.includes(r.state) || r.attempts.length !== attempt || last.outcome) return false;
      Object.assign(last, { endedAt: new Date().toISOString(), outcome: abort.kind, reason: abort.reason });
      won = true;
      return true;
    });
    if (!won || !next) return;
    this.logger.warn({ gangId: id, attempt, reason: abort.reason }, 'gang attempt aborted: re-queued as a whole');
    await this.cancelRanks(next.attempts[attempt - 1]);
    // this host alone moves the gang on now (the attempt's end is written): a queue that keeps
    // refusing fails the gang with the cause rather than leave it queued with no ranks
    await this.retrying(() => this.queueAttempt(next, attempt + 1)).catch((e: Error) =>
      this.finish(id, attempt, 'failed', abort.kind, `${abort.reason}; attempt ${attempt + 1} could not be enqueued: ${e.message}`, 'queue'));
  }

  private async finish(id: string, attempt: number, state: GangState, outcome: GangAttempt['outcome'], reason: string | undefined, failureClass?: string): Promise<GangRecord | null> {
    let won = false;
    const g = await this.store.update(id, (r) => {
      if (TERMINAL.includes(r.state)) return false;
      const last = r.attempts[r.attempts.length - 1];
      if (last && last.attempt === attempt && !last.outcome) Object.assign(last, { endedAt: new Date().toISOString(), outcome, ...(reason ? { reason } : {}) });
      r.state = state;
      r.failure = state === 'succeeded' ? null : { class: failureClass ?? outcome ?? state, reason: reason ?? state };
      won = true;
      return true;
    });
    if (won && g && state !== 'succeeded') await this.cancelRanks(g.attempts[g.attempts.length - 1]);
    if (won) this.logger.info({ gangId: id, state, attempt, reason }, 'gang ended');
    return g;
  }

  /** Rank jobs still queued are dropped when leased; running ones see the abort record themselves. */
  private async cancelRanks(a: GangAttempt | undefined): Promise<void> {
    for (const j of a?.rankJobs ?? []) await this.worker.cancel(j).catch(() => undefined);
  }
}
