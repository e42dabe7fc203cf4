/**
 * The journal's SQLite connection through the smallest interface both drivers share: Node's built-in
 * `node:sqlite` when the runtime has it (Node 22.13+, 24: nothing to install on a host), else
 * `better-sqlite3` (Node 20, where the tests run). MLINFRA_AGENT_SQLITE=better-sqlite3|node:sqlite forces one.
 */

export interface SqlStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export interface SqlDb {
  readonly driver: 'node:sqlite' | 'better-sqlite3';
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  close(): void;
}

type NodeSqlite = { DatabaseSync: new (file: string) => { exec(sql: string): void; prepare(sql: string): SqlStatement; close(): void } };

function loadNodeSqlite(): NodeSqlite | null {
  // node:sqlite warns that it is experimental on first load: that warning is noise in the agent's log
  const emit = process.emitWarning;
  process.emitWarning = ((w: string | Error, ...rest: unknown[]) => {
    const text = typeof w === 'string' ? w : w.message;
    if (/SQLite/i.test(text)) return;
    (emit as (...a: unknown[]) => void).call(process, w, ...rest);
  }) as typeof process.emitWarning;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('node:sqlite') as NodeSqlite;
  } catch {
    return null;
  } finally {
    process.emitWarning = emit;
  }
}

export function openDatabase(file: string, env: NodeJS.ProcessEnv = process.env): SqlDb {
  const want = env.MLINFRA_AGENT_SQLITE;
  if (want !== 'better-sqlite3') {
    const mod = loadNodeSqlite();
    if (mod) {
      const db = new mod.DatabaseSync(file);
      return { driver: 'node:sqlite', exec: (s) => db.exec(s), prepare: (s) => db.prepare(s), close: () => db.close() };
    }
    if (want === 'node:sqlite') throw new Error(`MLINFRA_AGENT_SQLITE=node:sqlite but this Node.js (${process.version}) has no node:sqlite`);
  }
  let Database: typeof import('better-sqlite3');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Database = require('better-sqlite3') as typeof import('better-sqlite3');
  } catch (e) {
    throw new Error(`mlinfra-agent needs Node.js 22.13+ (built-in node:sqlite) or the better-sqlite3 package on Node ${process.version}: ${(e as Error).message}`);
  }
  const db = new Database(file);
  return { driver: 'better-sqlite3', exec: (s) => void db.exec(s), prepare: (s) => db.prepare(s) as unknown as SqlStatement, close: () => void db.close() };
}

export type DiskFault = 'full' | 'readonly';

/** Whether an error (SQLite of either driver, or fs) means the disk is full or read-only. */
export function diskFaultOf(e: unknown): DiskFault | null {
  const err = e as { code?: unknown; errcode?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const primary = typeof err?.errcode === 'number' ? err.errcode & 0xff : -1;
  const msg = typeof err?.message === 'string' ? err.message : '';
  if (['ENOSPC', 'EDQUOT', 'SQLITE_FULL'].includes(code) || primary === 13 || /disk is full|ENOSPC|no space left/i.test(msg)) return 'full';
  if (code === 'EROFS' || code.startsWith('SQLITE_READONLY') || primary === 8 || /readonly database|read-only file system|EROFS/i.test(msg)) return 'readonly';
  if (code.startsWith('SQLITE_IOERR') || primary === 10) return 'readonly';
  return null;
}
