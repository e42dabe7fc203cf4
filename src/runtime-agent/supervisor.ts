import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { constants } from 'node:os';
import * as path from 'node:path';

/**
 * The run supervisor: a few lines of `/bin/sh` that the agent starts for every process of a job
 * (detached, so the shim leads the run's process group and session). It outlives the agent:
 * it keeps a read end of the run's FIFOs open so the job never gets EPIPE while no agent reads,
 * waits for the job, writes its exit status to `<runDir>/s` (the file's mtime is the end time) and
 * then kills what is left of the group. A restarted agent reads `s`, or re-attaches to a shim that
 * is still running (found by its journaled pid, else by `p`, the pid it writes first: a kill of the
 * agent between the spawn and the pid's journal record loses nothing). Cost measured against alternatives (see README): a Node process per job costs
 * ~40 ms and ~40 MiB; dash costs ~2 ms and ~1 MiB.
 *
 * `trap : TERM INT HUP`: a signal meant for the job (sent to the whole group) must not end the shim
 * before it records how the job ended; a trapped (not ignored) signal is reset to its default in the
 * job. `command -v` tells a missing program (status `N`) from a program that exits 127. The job runs
 * in a subshell that execs it: dash applies a simple command's redirections in the parent, so its
 * "Terminated" notice for a job killed by a signal would land in the job's own log.
 */
export const SHIM_SCRIPT = [
  'd=$1; shift',
  'echo $$ >"$d/p"',
  'trap : TERM INT HUP',
  'exec 3<>"$d/o" 4<>"$d/e"',
  'if command -v -- "$1" >/dev/null 2>&1; then',
  '  (exec "$@" >"$d/o" 2>"$d/e" 3>&- 4>&-)',
  '  r=$?',
  'else',
  '  r=N',
  'fi',
  'echo "$r" >"$d/s"',
  'exec 3>&- 4>&-',
  'kill -KILL 0',
].join('\n');

/** Name the shim shows in `ps` ($0). */
export const SHIM_NAME = 'mlinfra-run';

/** How a run ended, as the shim recorded it. */
export interface ShimStatus {
  /** The shell's status: the exit code, or 128+N for a job killed by signal N (null: never started). */
  readonly exitCode: number | null;
  /** The signal of a status 129..159 (the shell cannot tell it from a job that exits with that code). */
  readonly signal: NodeJS.Signals | null;
  /** The program was not found (nothing ran). */
  readonly notFound: boolean;
  /** When the shim wrote the status (the job's end). */
  readonly endedAt: Date;
}

/** Signal names by number, for the shell's 128+N exit statuses. */
const SIGNALS: Record<number, NodeJS.Signals> = Object.fromEntries(
  Object.entries(constants.signals as Record<string, number>).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/**
 * Reads `<runDir>/s`. Null while the shim has not written it (an empty or partial file is the shim
 * killed mid-write: no status). The shell reports a job killed by signal N as 128+N: both the code
 * and the signal are kept (a job that itself exits 129..159 also shows that signal).
 */
export function readShimStatus(runDir: string): ShimStatus | null {
  let text: string;
  let mtime: Date;
  try {
    const file = path.join(runDir, 's');
    text = fs.readFileSync(file, 'utf8');
    mtime = fs.statSync(file).mtime;
  } catch {
    return null;
  }
  if (!text.endsWith('\n')) return null;
  const v = text.trim();
  if (v === 'N') return { exitCode: null, signal: null, notFound: true, endedAt: mtime };
  if (!/^\d{1,3}$/.test(v)) return null;
  const rc = Number(v);
  return { exitCode: rc, signal: rc > 128 ? SIGNALS[rc - 128] ?? null : null, notFound: false, endedAt: mtime };
}

/** The pid the shim wrote to `<runDir>/p`, or null. */
export function readShimPid(runDir: string): number | null {
  try {
    const v = fs.readFileSync(path.join(runDir, 'p'), 'utf8');
    return /^\d+\n$/.test(v) ? Number(v) : null;
  } catch {
    return null;
  }
}

/** The run's directory: its FIFOs (`o`, `e`), the shim's pid (`p`) and status (`s`). */
export function runDirOf(dataDir: string, runId: number): string {
  return path.join(dataDir, 'runs', String(runId));
}

/** FIFO pairs made per `mkfifo` call: one exec for many runs instead of one per run (~2 ms each). */
const FIFO_BATCH = 32;

/**
 * Ready-made FIFO pairs under `<dataDir>/runs/.pool`, moved into a run's directory with two renames.
 * Refilled in the background with one `mkfifo` per batch.
 */
export class FifoPool {
  private readonly dir: string;
  private readonly free: number[] = [];
  private next = 0;
  private refilling: Promise<void> | undefined;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'runs', '.pool');
    try {
      // leftovers of an earlier agent are plain FIFOs nobody holds: start over
      fs.rmSync(this.dir, { recursive: true, force: true });
      // jobs (maybe another user: --job-user) cross runs/ to their own run dir, but cannot list it
      fs.mkdirSync(path.dirname(this.dir), { recursive: true });
      fs.chmodSync(path.dirname(this.dir), 0o711);
      fs.mkdirSync(this.dir, { mode: 0o700 });
    } catch {
      // a full or read-only disk: runs fail with class disk until it recovers (take() retries)
    }
  }

  /** Creates `runDir` (owned by `owner` when given) and moves a FIFO pair into it as `o` and `e`. */
  async take(runDir: string, owner?: { uid: number; gid: number }): Promise<void> {
    while (this.free.length === 0) await this.refill();
    const n = this.free.shift()!;
    if (this.free.length < FIFO_BATCH / 4) void this.refill().catch(() => undefined);
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    fs.renameSync(path.join(this.dir, `${n}.o`), path.join(runDir, 'o'));
    fs.renameSync(path.join(this.dir, `${n}.e`), path.join(runDir, 'e'));
    if (owner) {
      for (const f of [runDir, path.join(runDir, 'o'), path.join(runDir, 'e')]) fs.chownSync(f, owner.uid, owner.gid);
    }
  }

  private refill(): Promise<void> {
    this.refilling ??= new Promise<void>((resolve, reject) => {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const ids = Array.from({ length: FIFO_BATCH }, () => this.next++);
      const files = ids.flatMap((n) => [path.join(this.dir, `${n}.o`), path.join(this.dir, `${n}.e`)]);
      execFile('mkfifo', ['-m', '600', ...files], (err) => {
        this.refilling = undefined;
        if (err) {
          reject(new Error(`cannot create the run FIFOs (mkfifo): ${err.message}`));
          return;
        }
        this.free.push(...ids);
        resolve();
      });
    });
    return this.refilling;
  }
}
