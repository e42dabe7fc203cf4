/**
 * Scheduled pipeline runs through the cluster queue. A schedule (EventBridge Scheduler → SQS,
 * Cloud Scheduler → Pub/Sub) or `run-pipeline --queue` sends `{"v":1,"kind":"pipeline-run",
 * "pipeline":NAME,"spec":URI}`; exactly one agent leases it (the queue's lease, extended while the
 * run goes) and runs the pipeline in-process against itself.
 *
 * Two runs of one pipeline never overlap: a lock object `<artifacts>/pipelines/<name>/lock.json`,
 * taken and renewed by conditional writes, held for 3 leases past the last renewal. A message that
 * finds the pipeline locked by another message is dropped (acked) with a record in the lock object
 * (`dropped`): a schedule that fires while the previous run still goes skips that firing. The same
 * message coming back (its host died) waits for the lock to lapse, takes it over and resumes the run
 * the lock names (`runId`): same run id and directory, steps that succeeded are not run again
 * (pipeline-resume.ts).
 */
import type { Logger } from 'pino';
import type { JobQueue, LeasedMessage } from '../queue/index';
import { newRunId } from '../pipeline-load';
import { joinUri, type Storage } from '../storage/index';
import { isPreconditionFailed } from './records';

export interface PipelineRunMessage {
  readonly v: 1;
  readonly kind: 'pipeline-run';
  readonly pipeline: string;
  readonly spec: string;
}

/** What a pipeline run reports back to the worker. */
export interface PipelineRunOutcome {
  readonly state: 'succeeded' | 'failed';
  readonly runId?: string;
  readonly runUri?: string;
  readonly reason?: string;
}

/** Which run a message runs: a new one, or one whose host died (`resume`). */
export interface PipelineRunTarget {
  readonly runId: string;
  readonly messageId: string;
  /** Set when the run is taken over from a host whose lock lapsed. */
  readonly resume?: { readonly previousHost: string | null };
}

/** Runs one pipeline spec on this host (the agent wires it to runPipeline against itself). */
export type PipelineRunner = (specUri: string, pipeline: string, logger: Logger, target?: PipelineRunTarget) => Promise<PipelineRunOutcome>;

export interface LockRecord {
  v: 1;
  pipeline: string;
  state: 'running' | 'idle';
  messageId?: string;
  /** The run the message runs (a resume keeps it). */
  runId?: string;
  host?: string;
  since?: string;
  heldUntil?: string;
  /** `handedBack`: a notice stopped the run and released its message; the host that leases it next resumes it. */
  last?: { messageId: string; host: string; endedAt: string; handedBack?: boolean } & PipelineRunOutcome;
  /** The latest messages dropped because a run was going (at most 20, newest last). */
  dropped?: Array<{ messageId: string; at: string; reason: string }>;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * A pipeline-run message, or undefined when the body is not one (a cluster job). Throws on a
 * pipeline-run message that is malformed (it goes to the dead-letter queue with the reason).
 */
export function pipelineRunOf(body: string): PipelineRunMessage | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (o === null || typeof o !== 'object' || o.kind !== 'pipeline-run') return undefined;
  if (o.v !== 1) throw new Error(`pipeline-run message version ${JSON.stringify(o.v)}: this agent reads v 1`);
  if (typeof o.pipeline !== 'string' || !NAME.test(o.pipeline)) throw new Error(`pipeline-run "pipeline" ${JSON.stringify(o.pipeline)}: a pipeline name (lowercase letters, digits, dashes)`);
  if (typeof o.spec !== 'string' || !/^(s3|gs|file):\/\/./.test(o.spec)) throw new Error(`pipeline-run "spec" ${JSON.stringify(o.spec)}: the spec's s3://, gs:// or file:// URI`);
  return { v: 1, kind: 'pipeline-run', pipeline: o.pipeline, spec: o.spec };
}

/** The message body a schedule or `run-pipeline --queue` sends. */
export function pipelineRunBody(pipeline: string, spec: string): string {
  const body = JSON.stringify({ v: 1, kind: 'pipeline-run', pipeline, spec } satisfies PipelineRunMessage);
  pipelineRunOf(body);
  return body;
}

interface Active {
  readonly m: LeasedMessage;
  readonly run: PipelineRunMessage;
  readonly target: PipelineRunTarget;
  tag: string;
  lastExtendMs: number;
}

export interface PipelineRunsDeps {
  readonly queue: JobQueue;
  readonly storage: Storage;
  readonly artifacts: string;
  readonly host: string;
  readonly leaseSeconds: number;
  readonly logger: Logger;
  readonly runner: PipelineRunner | undefined;
  /** True once the host got a notice or is shutting down: a run that ends then is handed back. */
  readonly draining: () => boolean;
  /** Keeps background work awaited by the worker's close(). */
  readonly track: (p: Promise<void>) => void;
}

/** The pipeline runs this host holds: lock, lease extension, run, record, ack. */
export class PipelineRuns {
  private readonly active = new Map<string, Active>();

  constructor(private readonly d: PipelineRunsDeps) {}

  get size(): number {
    return this.active.size;
  }

  lockUri(pipeline: string): string {
    return joinUri(this.d.artifacts, `pipelines/${pipeline}/lock.json`);
  }

  /** The pipeline's lock record (who runs it, the last run, dropped runs), or null before its first run. */
  async record(pipeline: string): Promise<LockRecord | null> {
    const v = await this.d.storage.readVersioned(this.lockUri(pipeline));
    return v ? (JSON.parse(v.text) as LockRecord) : null;
  }

  /** Takes a leased pipeline-run message: runs it, waits for its lock, or drops it with a record. */
  async take(m: LeasedMessage, run: PipelineRunMessage): Promise<void> {
    const log = this.d.logger.child({ pipeline: run.pipeline, messageId: m.messageId });
    if (!this.d.runner) {
      await this.d.queue.release(m, 0);
      log.warn('pipeline-run message released: this agent runs no pipelines');
      return;
    }
    if (this.d.draining()) {
      await this.d.queue.release(m, 0);
      return;
    }
    const lease = this.d.leaseSeconds;
    for (let round = 0; round < 5; round++) {
      const now = Date.now();
      const cur = await this.d.storage.readVersioned(this.lockUri(run.pipeline));
      const lock = cur ? (JSON.parse(cur.text) as LockRecord) : null;
      const held = lock?.state === 'running' && Date.parse(lock.heldUntil ?? '') > now;
      if (lock?.state === 'idle' && lock.last?.messageId === m.messageId && !lock.last.handedBack) {
        // its run ended and was recorded, but the host died before the ack: do not run it twice
        await this.d.queue.ack(m);
        log.warn({ runId: lock.last.runId, state: lock.last.state }, 'pipeline run message came back after its run ended: acked');
        return;
      }
      if (held && lock.messageId === m.messageId) {
        // this run's host died: its lock lapses within 3 leases; come back then
        const waitS = Math.min(20, Math.max(1, Math.ceil((Date.parse(lock.heldUntil!) - now) / 1000)));
        await this.d.queue.release(m, waitS);
        log.info({ holder: lock.host, waitSeconds: waitS }, 'pipeline run waits for its previous lease holder\'s lock to lapse');
        return;
      }
      if (held) {
        const reason = `a run of ${run.pipeline} was going (message ${lock.messageId} on ${lock.host} since ${lock.since}): this run was dropped, not queued`;
        const next: LockRecord = { ...lock, dropped: [...(lock.dropped ?? []), { messageId: m.messageId, at: new Date(now).toISOString(), reason }].slice(-20) };
        try {
          await this.d.storage.writeIf(this.lockUri(run.pipeline), `${JSON.stringify(next)}\n`, cur!.tag);
        } catch (e) {
          if (isPreconditionFailed(e)) continue;
          throw e;
        }
        await this.d.queue.ack(m);
        log.warn({ reason }, 'pipeline run dropped: another run of it is going');
        return;
      }
      // the lock lapsed under this very message: its host died mid-run, so that run is resumed here
      // (or a notice handed it back)
      const lapsed = lock?.state === 'running' && lock.messageId === m.messageId ? lock.runId : undefined;
      const handed = lock?.state === 'idle' && lock.last?.messageId === m.messageId && lock.last.handedBack ? lock.last.runId : undefined;
      const resumeId = lapsed ?? handed;
      const resume = resumeId ? { previousHost: (lapsed ? lock?.host : lock?.last?.host) ?? null } : undefined;
      const target: PipelineRunTarget = { runId: resumeId ?? newRunId(new Date(now)), messageId: m.messageId, ...(resume ? { resume } : {}) };
      const mine: LockRecord = {
        ...(lock ?? { v: 1, pipeline: run.pipeline }), v: 1, pipeline: run.pipeline, state: 'running',
        messageId: m.messageId, runId: target.runId, host: this.d.host, since: new Date(now).toISOString(), heldUntil: new Date(now + 3 * lease * 1000).toISOString(),
      };
      let tag: string;
      try {
        tag = await this.d.storage.writeIf(this.lockUri(run.pipeline), `${JSON.stringify(mine)}\n`, cur?.tag ?? null);
      } catch (e) {
        if (isPreconditionFailed(e)) continue;
        throw e;
      }
      const a: Active = { m, run, target, tag, lastExtendMs: Date.now() };
      this.active.set(m.messageId, a);
      log.info({ spec: run.spec, deliveries: m.attempt, runId: target.runId, resumedFrom: resume?.previousHost }, resume ? 'pipeline run leased: resuming it' : 'pipeline run leased');
      this.d.track(this.execute(a, log));
      return;
    }
    throw new Error(`the lock of pipeline ${run.pipeline} kept changing`);
  }

  /** Extends the leases of running pipelines and renews their locks (every third of a lease). */
  tick(now = Date.now()): void {
    const every = (this.d.leaseSeconds * 1000) / 3;
    for (const a of this.active.values()) {
      if (now - a.lastExtendMs < every) continue;
      a.lastExtendMs = now;
      this.d.queue.extend(a.m, this.d.leaseSeconds).catch((e: unknown) => this.d.logger.warn({ pipeline: a.run.pipeline, err: (e as Error).message }, 'pipeline run lease extension failed'));
      this.d.track(this.writeLock(a, (l) => ({ ...l, heldUntil: new Date(now + 3 * this.d.leaseSeconds * 1000).toISOString() })).then(() => undefined));
    }
  }

  private async execute(a: Active, log: Logger): Promise<void> {
    let out: PipelineRunOutcome;
    try {
      out = await this.d.runner!(a.run.spec, a.run.pipeline, log, a.target);
    } catch (e) {
      out = { state: 'failed', reason: (e as Error).message };
    }
    this.active.delete(a.m.messageId);
    const handBack = out.state === 'failed' && this.d.draining();
    await this.writeLock(a, (l) => ({
      ...l, state: 'idle', heldUntil: undefined,
      last: { messageId: a.m.messageId, host: this.d.host, endedAt: new Date().toISOString(), ...out, runId: out.runId ?? a.target.runId, ...(handBack ? { handedBack: true } : {}) },
    }));
    if (handBack) {
      // a notice or shutdown stopped its steps: another host runs it again
      await this.d.queue.release(a.m, 0);
      log.warn({ ...out }, 'pipeline run stopped by a notice or shutdown: released for another host');
      return;
    }
    await this.d.queue.ack(a.m);
    (out.state === 'succeeded' ? log.info.bind(log) : log.error.bind(log))({ ...out }, `pipeline run ${out.state}`);
  }

  /** Rewrites this host's lock, conditional on the version read; false when another host took it (it lapsed). */
  private async writeLock(a: Active, change: (l: LockRecord) => LockRecord): Promise<boolean> {
    for (let round = 0; round < 5; round++) {
      const cur = await this.d.storage.readVersioned(this.lockUri(a.run.pipeline)).catch(() => null);
      const lock = cur ? (JSON.parse(cur.text) as LockRecord) : null;
      if (!cur || !lock || lock.state !== 'running' || lock.messageId !== a.m.messageId || lock.host !== this.d.host) {
        this.d.logger.error({ pipeline: a.run.pipeline, holder: lock?.host }, 'pipeline lock lost (it lapsed and another host took it)');
        return false;
      }
      try {
        a.tag = await this.d.storage.writeIf(this.lockUri(a.run.pipeline), `${JSON.stringify(change(lock))}\n`, cur.tag);
        return true;
      } catch (e) {
        // a dropped run's record landed in between: read again
        if (isPreconditionFailed(e)) continue;
        this.d.logger.warn({ pipeline: a.run.pipeline, err: (e as Error).message }, 'pipeline lock not written');
        return false;
      }
    }
    return false;
  }
}
