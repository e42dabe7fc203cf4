import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { constants } from 'node:os';
import * as path from 'node:path';

/**
 * The run supervisor: a few lines of `/bin/sh` that runs every process of a job in its own session and
 * process group (started by the run launcher, see launcher.ts, or spawned detached). It outlives the
 * agent: it keeps a read end of the run's FIFOs open so the job never gets EPIPE while no agent reads,
 * waits for the job, writes its exit status to `<runDir>/s` (the file's mtime is the end time) and
 * then kills what is left of the group. A restarted agent reads `s`, or re-attaches to a shim that
 * is still running (found by its journaled pid, else by `p`, the pid it writes first: a kill of the
 * agent between the spawn and the pid's journal record loses nothing). Cost measured against alternatives (see README): a Node process per job costs
 * ~40 ms and ~40 MiB; dash costs ~2 ms and ~1 MiB.
 *
 * The job itself is `<runDir>/c` (see commandScript), sourced in a subshell with its output on the
 * FIFOs. The shim holds `x`, a third FIFO the job never gets: its end of file tells the agent the shim
 * is gone (the shim is not the agent's child when the launcher started it).
 * `trap : TERM INT HUP`: a signal meant for the job (sent to the whole group) must not end the shim
 * before it records how the job ended; a trapped (not ignored) signal is reset to its default in the
 * job. The redirections sit inside the subshell: dash's "Terminated" notice for a job killed by a
 * signal goes to the shim's stderr (/dev/null), not into the job's log. `n` marks a program that was
 * not found (status `N`, told apart from a program that exits 127).
 */
export const SHIM_SCRIPT = [
  'd=$1',
  'echo $$ >"$d/p"',
  'trap : TERM INT HUP',
  'exec 3<>"$d/o" 4<>"$d/e" 5<>"$d/x"',
  '(exec >"$d/o" 2>"$d/e" 3>&- 4>&- 5>&-; . "$d/c")',
  'r=$?',
  '[ -e "$d/n" ] && r=N',
  'echo "$r" >"$d/s"',
  'exec 3>&- 4>&-',
  'kill -KILL 0',
].join('\n');

/** Every process of a run carries this variable: it finds the run's processes that left its group. */
export const RUN_MARKER_ENV = 'MLINFRA_RUN_MARKER';

/** A word for /bin/sh, quoted so that nothing in it is expanded. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The job as a script for the shim to source (`<runDir>/c`): its working directory, what its
 * environment changes against the shim's own (`from`), then the program. Null when the environment
 * cannot be written as shell assignments (a name that is no identifier, a NUL in a value): such a run
 * is spawned with its whole environment instead.
 */
export function commandScript(runDir: string, argv: readonly string[], cwd: string | undefined, env: NodeJS.ProcessEnv, from: NodeJS.ProcessEnv): string | null {
  const lines: string[] = [];
  if (cwd !== undefined) lines.push(`cd -- ${shellQuote(cwd)} || exit 1`);
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || from[k] === v) continue;
    if (!ENV_NAME.test(k) || v.includes('\0')) return null;
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  for (const k of Object.keys(from)) {
    if (env[k] !== undefined || from[k] === undefined) continue;
    if (!ENV_NAME.test(k)) return null;
    lines.push(`unset ${k}`);
  }
  if (argv.some((a) => a.includes('\0'))) return null;
  lines.push(
    `if command -v -- ${shellQuote(argv[0])} >/dev/null 2>&1; then exec ${argv.map(shellQuote).join(' ')}; fi`,
    `: >${shellQuote(path.join(runDir, 'n'))}`,
    'exit 127',
  );
  return `${lines.join('\n')}\n`;
}

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

/** The run's directory: its FIFOs (`o`, `e`, `x`), the job (`c`), the shim's pid (`p`) and status (`s`). */
export function runDirOf(dataDir: string, runId: number): string {
  return path.join(dataDir, 'runs', String(runId));
}

/** Run directories made per refill: one exec for many runs instead of one per run (~2 ms each). */
const FIFO_BATCH = 32;

const FIFOS = ['o', 'e', 'x'] as const;

/**
 * Ready-made run directories (each with its FIFOs `o`, `e`, `x`) under `<dataDir>/runs/.pool`, each
 * moved into place with one rename. Refilled in the background with one `/bin/sh` per batch.
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

  /** Moves a ready directory to `runDir` (owned by `owner` when given), with its FIFOs `o`, `e` and `x`. */
  async take(runDir: string, owner?: { uid: number; gid: number }): Promise<void> {
    while (this.free.length === 0) await this.refill();
    const n = this.free.shift()!;
    if (this.free.length < FIFO_BATCH / 4) void this.refill().catch(() => undefined);
    const from = path.join(this.dir, String(n));
    try {
      fs.renameSync(from, runDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // a stale directory of the same run id (removed at start, unless that failed): replace it
      fs.rmSync(runDir, { recursive: true, force: true });
      fs.renameSync(from, runDir);
    }
    if (owner) {
      for (const f of [runDir, ...FIFOS.map((k) => path.join(runDir, k))]) fs.chownSync(f, owner.uid, owner.gid);
    }
  }

  private refill(): Promise<void> {
    this.refilling ??= new Promise<void>((resolve, reject) => {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const ids = Array.from({ length: FIFO_BATCH }, () => this.next++);
      const dirs = ids.map((n) => path.join(this.dir, String(n)));
      const fifos = dirs.flatMap((d) => FIFOS.map((k) => path.join(d, k)));
      const script = `mkdir -m 700 -- ${dirs.map(shellQuote).join(' ')} && mkfifo -m 600 -- ${fifos.map(shellQuote).join(' ')}`;
      execFile('/bin/sh', ['-c', script], (err) => {
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

/**
 * Finished runs' directories: each moved aside with one rename, then removed in batches by one
 * `rm -rf` a second later (a recursive removal per run costs the event loop a dozen calls).
 * Whatever a stop left behind is removed at the next start.
 */
export class RunDirTrash {
  private readonly dir: string;
  private made = false;
  private timer: NodeJS.Timeout | undefined;
  private batch = 0;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'runs', '.trash');
    try {
      for (const e of fs.readdirSync(path.dirname(this.dir))) {
        if (e === '.trash' || e.startsWith('.trash.')) fs.rmSync(path.join(path.dirname(this.dir), e), { recursive: true, force: true });
      }
    } catch {
      // no runs yet, or a disk fault (discard() then fails, and its caller retries)
    }
  }

  /** Moves `runDir` aside for removal. Throws what the rename throws (a disk fault), except that it is gone already. */
  discard(runDir: string): void {
    if (!this.made) {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.made = true;
    }
    try {
      fs.renameSync(runDir, path.join(this.dir, path.basename(runDir)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    this.timer ??= setTimeout(() => this.flush(), TRASH_DELAY_MS).unref();
  }

  private flush(): void {
    this.timer = undefined;
    const batch = `${this.dir}.${this.batch++}`;
    try {
      fs.renameSync(this.dir, batch);
      this.made = false;
    } catch {
      return; // retried with the next discard
    }
    execFile('rm', ['-rf', '--', batch], () => undefined);
  }
}

/** How long finished run directories wait to be removed together. */
const TRASH_DELAY_MS = 1000;
