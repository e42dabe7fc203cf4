import type { Database as Db, Statement } from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Failure, FailureClass, JobRecord, JobSpec, JobState, RunRecord, ShardRecord } from './types';

type Row = Record<string, unknown>;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  spec TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  charged INTEGER NOT NULL DEFAULT 0,
  requeue INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER, signal TEXT, failure_class TEXT, failure_reason TEXT, gpu_ids TEXT,
  created_at TEXT NOT NULL, started_at TEXT, ended_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS runs (
  run_id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL, attempt INTEGER NOT NULL, shard INTEGER,
  pid INTEGER, pgid INTEGER, proc_start TEXT, gpu_ids TEXT NOT NULL,
  started_at TEXT NOT NULL, ended_at TEXT, outcome TEXT,
  exit_code INTEGER, signal TEXT, failure_class TEXT, failure_reason TEXT
);
CREATE INDEX IF NOT EXISTS runs_job ON runs(job_id);
CREATE INDEX IF NOT EXISTS runs_open ON runs(ended_at);
CREATE TABLE IF NOT EXISTS shards (
  job_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT NOT NULL,
  input_uri TEXT NOT NULL, output_uri TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, done_at TEXT,
  PRIMARY KEY (job_id, idx)
);
`;

const now = (): string => new Date().toISOString();

function failureOf(r: Row): Failure | null {
  return r.failure_class ? { class: r.failure_class as FailureClass, reason: String(r.failure_reason ?? '') } : null;
}

function jobOf(r: Row): JobRecord {
  return {
    seq: r.seq as number,
    id: r.id as string,
    spec: JSON.parse(r.spec as string) as JobSpec,
    state: r.state as JobState,
    attempts: r.attempts as number,
    charged: r.charged as number,
    requeue: r.requeue === 1,
    exitCode: (r.exit_code as number | null) ?? null,
    signal: (r.signal as string | null) ?? null,
    failure: failureOf(r),
    gpuIds: (r.gpu_ids as string | null) ?? null,
    createdAt: r.created_at as string,
    startedAt: (r.started_at as string | null) ?? null,
    endedAt: (r.ended_at as string | null) ?? null,
  };
}

function runOf(r: Row): RunRecord {
  return {
    runId: r.run_id as number,
    jobId: r.job_id as string,
    attempt: r.attempt as number,
    shard: (r.shard as number | null) ?? null,
    pid: (r.pid as number | null) ?? null,
    pgid: (r.pgid as number | null) ?? null,
    procStart: (r.proc_start as string | null) ?? null,
    gpuIds: r.gpu_ids as string,
    startedAt: r.started_at as string,
    endedAt: (r.ended_at as string | null) ?? null,
    outcome: (r.outcome as string | null) ?? null,
    exitCode: (r.exit_code as number | null) ?? null,
    signal: (r.signal as string | null) ?? null,
    failure: failureOf(r),
  };
}

function shardOf(r: Row): ShardRecord {
  return {
    jobId: r.job_id as string,
    idx: r.idx as number,
    key: r.key as string,
    inputUri: r.input_uri as string,
    outputUri: r.output_uri as string,
    state: r.state as 'pending' | 'done',
    attempts: r.attempts as number,
  };
}

export interface JobEnd {
  readonly state: JobState;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly failure: Failure | null;
  readonly charge: boolean;
  readonly requeue?: boolean;
}

/**
 * The durable journal: SQLite in WAL mode with synchronous=FULL, so a write has reached the disk
 * when the call returns. Every state change of a job goes through here before it is reported.
 */
export class Journal {
  private readonly db: Db;
  private readonly stmts: Record<string, Statement>;
  private closed = false;

  constructor(dataDir: string) {
    fs.mkdirSync(dataDir, { recursive: true });
    // Loaded here (not at the top) so the bundle keeps better-sqlite3 external and a clear error names it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    this.db = new Database(path.join(dataDir, 'journal.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const p = (sql: string): Statement => this.db.prepare(sql);
    this.stmts = {
      insert: p(`INSERT INTO jobs (id, spec, state, priority, created_at) VALUES (?, ?, 'queued', ?, ?)`),
      get: p('SELECT * FROM jobs WHERE id = ?'),
      list: p('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?'),
      listState: p('SELECT * FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?'),
      byState: p('SELECT * FROM jobs WHERE state = ? ORDER BY seq'),
      counts: p('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state'),
      start: p(`UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, ended_at = NULL,
                exit_code = NULL, signal = NULL, failure_class = NULL, failure_reason = NULL, requeue = 0 WHERE id = ? AND state = 'queued'`),
      end: p(`UPDATE jobs SET state = ?, exit_code = ?, signal = ?, failure_class = ?, failure_reason = ?,
              charged = charged + ?, requeue = ?, ended_at = ? WHERE id = ?`),
      requeue: p(`UPDATE jobs SET state = 'queued', requeue = 0, ended_at = NULL WHERE id = ?`),
      setGpus: p('UPDATE jobs SET gpu_ids = ? WHERE id = ?'),
      cancelQueued: p(`UPDATE jobs SET state = 'cancelled', failure_class = 'cancelled', failure_reason = ?, ended_at = ? WHERE id = ? AND state = 'queued'`),
      runInsert: p('INSERT INTO runs (job_id, attempt, shard, gpu_ids, started_at) VALUES (?, ?, ?, ?, ?)'),
      runPid: p('UPDATE runs SET pid = ?, pgid = ?, proc_start = ? WHERE run_id = ?'),
      runEnd: p(`UPDATE runs SET ended_at = ?, outcome = ?, exit_code = ?, signal = ?, failure_class = ?, failure_reason = ? WHERE run_id = ?`),
      runsOpen: p('SELECT * FROM runs WHERE ended_at IS NULL'),
      runsOf: p('SELECT * FROM runs WHERE job_id = ? ORDER BY run_id'),
      shardInsert: p(`INSERT OR IGNORE INTO shards (job_id, idx, key, input_uri, output_uri) VALUES (?, ?, ?, ?, ?)`),
      shardsOf: p('SELECT * FROM shards WHERE job_id = ? ORDER BY idx'),
      shardAttempt: p('UPDATE shards SET attempts = attempts + 1 WHERE job_id = ? AND idx = ?'),
      shardDone: p(`UPDATE shards SET state = 'done', done_at = ? WHERE job_id = ? AND idx = ?`),
    };
  }

  insertJob(id: string, spec: JobSpec): JobRecord {
    this.stmts.insert.run(id, JSON.stringify(spec), spec.priority, now());
    return this.getJob(id)!;
  }

  getJob(id: string): JobRecord | undefined {
    const r = this.stmts.get.get(id) as Row | undefined;
    return r ? jobOf(r) : undefined;
  }

  listJobs(limit: number, state?: JobState): JobRecord[] {
    const rows = (state ? this.stmts.listState.all(state, limit) : this.stmts.list.all(limit)) as Row[];
    return rows.map(jobOf);
  }

  jobsInState(state: JobState): JobRecord[] {
    return (this.stmts.byState.all(state) as Row[]).map(jobOf);
  }

  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.stmts.counts.all() as Row[]) out[r.state as string] = r.n as number;
    return out;
  }

  /** queued -> running; returns the updated record, or undefined when it was no longer queued. */
  startJob(id: string): JobRecord | undefined {
    const info = this.stmts.start.run(now(), id);
    return info.changes === 1 ? this.getJob(id) : undefined;
  }

  endJob(id: string, e: JobEnd): JobRecord {
    this.stmts.end.run(e.state, e.exitCode, e.signal, e.failure?.class ?? null, e.failure?.reason ?? null,
      e.charge ? 1 : 0, e.requeue ? 1 : 0, now(), id);
    return this.getJob(id)!;
  }

  requeueJob(id: string): JobRecord {
    this.stmts.requeue.run(id);
    return this.getJob(id)!;
  }

  setJobGpus(id: string, gpuIds: string): void {
    this.stmts.setGpus.run(gpuIds, id);
  }

  cancelQueued(id: string, reason: string): boolean {
    return this.stmts.cancelQueued.run(reason, now(), id).changes === 1;
  }

  insertRun(jobId: string, attempt: number, shard: number | null, gpuIds: string): number {
    return Number(this.stmts.runInsert.run(jobId, attempt, shard, gpuIds, now()).lastInsertRowid);
  }

  setRunPid(runId: number, pid: number, pgid: number, procStart: string | null): void {
    this.stmts.runPid.run(pid, pgid, procStart, runId);
  }

  endRun(runId: number, outcome: string, exitCode: number | null, signal: string | null, failure: Failure | null): void {
    this.stmts.runEnd.run(now(), outcome, exitCode, signal, failure?.class ?? null, failure?.reason ?? null, runId);
  }

  openRuns(): RunRecord[] {
    return (this.stmts.runsOpen.all() as Row[]).map(runOf);
  }

  runsOf(jobId: string): RunRecord[] {
    return (this.stmts.runsOf.all(jobId) as Row[]).map(runOf);
  }

  /** Records a batch job's shards once; later calls keep the first list (resume skips done shards). */
  recordShards(jobId: string, shards: ReadonlyArray<{ key: string; inputUri: string; outputUri: string }>): ShardRecord[] {
    const tx = this.db.transaction(() => {
      shards.forEach((s, idx) => this.stmts.shardInsert.run(jobId, idx, s.key, s.inputUri, s.outputUri));
    });
    tx();
    return this.shardsOf(jobId);
  }

  shardsOf(jobId: string): ShardRecord[] {
    return (this.stmts.shardsOf.all(jobId) as Row[]).map(shardOf);
  }

  shardAttempt(jobId: string, idx: number): void {
    this.stmts.shardAttempt.run(jobId, idx);
  }

  shardDone(jobId: string, idx: number): void {
    this.stmts.shardDone.run(now(), jobId, idx);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
