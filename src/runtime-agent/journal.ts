import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDatabase, type SqlDb, type SqlStatement as Statement } from './db';
import { JournalRefusedError, walDamage, walMissing } from './journal-check';
import { WalSync } from './wal-sync';
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
  job_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT NOT NULL,
  input_uri TEXT NOT NULL, output_uri TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, done_at TEXT,
  PRIMARY KEY (job_id, idx)
);
`;

/** PRAGMA application_id of every journal: 'MLIA'. A file with another id is not ours. */
const APP_ID = 0x4d4c4941;
const OUR_TABLES = ['jobs', 'runs', 'shards'];

/** Columns added after the first release: added in place to an older journal. */
const MIGRATIONS: ReadonlyArray<readonly [table: string, column: string, sql: string]> = [
  ['runs', 'marker', 'ALTER TABLE runs ADD COLUMN marker TEXT'],
  ['jobs', 'idem_key', 'ALTER TABLE jobs ADD COLUMN idem_key TEXT'],
];

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
    marker: (r.marker as string | null) ?? null,
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
  private readonly db: SqlDb;
  private readonly stmts: Record<string, Statement>;
  private closed = false;

  readonly file: string;
  private depth = 0;
  /** Group commit of the `deferred` transactions (see WalSync). */
  readonly wal: WalSync;

  /** Which SQLite driver the journal runs on (node:sqlite or better-sqlite3). */
  get driver(): string {
    return this.db.driver;
  }

  /**
   * Opens (or creates) `<dataDir>/journal.sqlite` after checking it: a zero-length or foreign file, a
   * failed quick_check, a damaged write-ahead log, or one missing after an unclean stop is refused
   * (JournalRefusedError) unless `reset`, which moves the refused files aside and starts empty.
   */
  constructor(dataDir: string, opts: { readonly reset?: boolean } = {}) {
    fs.mkdirSync(dataDir, { recursive: true });
    this.file = path.join(dataDir, 'journal.sqlite');
    try {
      this.db = this.openChecked();
    } catch (e) {
      if (!(e instanceof JournalRefusedError) || !opts.reset) throw e;
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      for (const f of [this.file, `${this.file}-wal`, `${this.file}-shm`]) {
        if (fs.existsSync(f)) fs.renameSync(f, `${f}.refused-${stamp}`);
      }
      this.db = this.openChecked();
    }
    this.wal = new WalSync(`${this.file}-wal`);
    const p = (sql: string): Statement => this.db.prepare(sql);
    this.stmts = {
      insert: p(`INSERT INTO jobs (id, spec, state, priority, created_at, idem_key) VALUES (?, ?, 'queued', ?, ?, ?)`),
      byKey: p('SELECT * FROM jobs WHERE idem_key = ?'),
      setMeta: p('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
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
      runInsert: p('INSERT INTO runs (job_id, attempt, shard, gpu_ids, started_at, marker) VALUES (?, ?, ?, ?, ?, ?)'),
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

  private openChecked(): SqlDb {
    const f = this.file;
    const st = fs.statSync(f, { throwIfNoEntry: false });
    if (st && st.size === 0) throw new JournalRefusedError(f, 'it is empty (0 bytes), so every job it held is gone');
    const damage = walDamage(`${f}-wal`) ?? walMissing(f);
    if (damage) throw new JournalRefusedError(f, damage);
    const db = openDatabase(f);
    try {
      const one = (sql: string): Record<string, unknown> | undefined => db.prepare(sql).get() as Record<string, unknown> | undefined;
      db.exec('PRAGMA busy_timeout = 5000');
      let check: unknown;
      try {
        check = one('PRAGMA quick_check')?.quick_check;
      } catch (e) {
        throw new JournalRefusedError(f, `it is not a readable SQLite database (${(e as Error).message})`);
      }
      if (check !== 'ok') throw new JournalRefusedError(f, `PRAGMA quick_check reports: ${String(check).slice(0, 300)}`);
      const appId = Number(one('PRAGMA application_id')?.application_id ?? 0);
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map((r) => String(r.name));
      const ours = OUR_TABLES.every((t) => tables.includes(t));
      if (tables.length > 0 && appId !== APP_ID && !(appId === 0 && ours)) {
        throw new JournalRefusedError(f, `it is not an mlinfra-agent journal (application_id ${appId}, tables ${tables.slice(0, 10).join(', ') || 'none'})`);
      }
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec(SCHEMA);
      for (const [table, column, sql] of MIGRATIONS) {
        if (!(db.prepare(`PRAGMA table_info(${table})`).all() as Row[]).some((c) => c.name === column)) db.exec(sql);
      }
      db.exec('CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(idem_key) WHERE idem_key IS NOT NULL');
      if (appId !== APP_ID) db.exec(`PRAGMA application_id = ${APP_ID}`);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Records the open in the journal and checkpoints it: the first write, so it throws on a full or read-only disk. */
  markOpen(): void {
    this.stmts.setMeta.run('open', '1');
    this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  insertJob(id: string, spec: JobSpec, idempotencyKey?: string): JobRecord {
    this.stmts.insert.run(id, JSON.stringify(spec), spec.priority, now(), idempotencyKey ?? null);
    return this.getJob(id)!;
  }

  jobByKey(key: string): JobRecord | undefined {
    const r = this.stmts.byKey.get(key) as Row | undefined;
    return r ? jobOf(r) : undefined;
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

  insertRun(jobId: string, attempt: number, shard: number | null, gpuIds: string, marker: string): number {
    return Number(this.stmts.runInsert.run(jobId, attempt, shard, gpuIds, now(), marker).lastInsertRowid);
  }

  /** `sync` false: committed without its own fsync (the next synchronous commit carries it to disk). */
  setRunPid(runId: number, pid: number, pgid: number, procStart: string | null, sync = true): void {
    if (sync) {
      this.stmts.runPid.run(pid, pgid, procStart, runId);
      return;
    }
    this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      this.stmts.runPid.run(pid, pgid, procStart, runId);
    } finally {
      this.db.exec('PRAGMA synchronous = FULL');
    }
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
    this.transaction(() => {
      shards.forEach((s, idx) => this.stmts.shardInsert.run(jobId, idx, s.key, s.inputUri, s.outputUri));
    });
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

  /**
   * Runs fn in one transaction; nested calls join the outer one. Rolled back if fn or the commit throws.
   * `full` (the default): on disk when it returns (one fsync, on the event loop). `deferred`: committed
   * to the WAL without an fsync (safe against a kill of the agent, not a power loss); `sync()` then
   * makes it durable off the event loop, shared with other commits (group commit).
   */
  transaction<T>(fn: () => T, durability: 'full' | 'deferred' = 'full'): T {
    if (this.depth > 0) return fn();
    const deferred = durability === 'deferred';
    if (deferred) this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      this.db.exec('BEGIN IMMEDIATE');
      this.depth++;
      try {
        const out = fn();
        this.db.exec('COMMIT');
        return out;
      } catch (e) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // no transaction left to roll back
        }
        throw e;
      } finally {
        this.depth--;
      }
    } finally {
      if (deferred) this.db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** Resolves when every commit so far is on disk (see WalSync). */
  sync(): Promise<void> {
    return this.wal.sync();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.stmts.setMeta.run('open', '0');
    } catch {
      // full or read-only disk: the next open sees the write-ahead log and checks it
    }
    this.wal.close();
    this.db.close();
  }
}
