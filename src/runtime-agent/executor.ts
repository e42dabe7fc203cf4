import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { ExitFacts } from './failure';
import type { JobLog } from './logs';
import { setLongTimeout, type LongTimer } from './timers';

export type StopReason = 'cancel' | 'timeout' | 'preemption' | 'shutdown' | 'disk';

/** Every process of a run carries this variable: it finds the run's processes that left its group. */
export const RUN_MARKER_ENV = 'MLINFRA_RUN_MARKER';

export interface RunParams {
  readonly argv: readonly string[];
  /** Must hold RUN_MARKER_ENV = `marker`. */
  readonly env: NodeJS.ProcessEnv;
  readonly marker: string;
  readonly cwd?: string;
  readonly log: JobLog;
  readonly timeoutSeconds?: number;
  /** Milliseconds between SIGTERM and SIGKILL. */
  readonly graceMs: number;
  /** Run as this user (serve --job-user). */
  readonly uid?: number;
  readonly gid?: number;
}

export interface RunHandle {
  readonly pid: number | null;
  /** The process group id: the child is a session and group leader (detached), so pgid = pid. */
  readonly pgid: number | null;
  /** Field 22 of /proc/PID/stat: tells a recorded pid from a reused one after a restart. */
  readonly procStart: string | null;
  readonly done: Promise<ExitFacts>;
  /** SIGTERM to the whole process tree, SIGKILL after the grace period. First reason wins. */
  stop(reason: StopReason, graceMs?: number): void;
}

const STDERR_TAIL_BYTES = 64 * 1024;
/** After the main process exits, how long its pipes may stay open (a leftover child holding them) before they are cut. */
const PIPE_LINGER_MS = 250;

export function procStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 overall
  } catch {
    return null;
  }
}

/** The cgroup v2 oom_kill counter of the agent's cgroup (children share it), or null. */
export function readOomKills(): number | null {
  try {
    const line = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    if (!line) return null;
    const events = fs.readFileSync(`/sys/fs/cgroup${line.slice(3)}/memory.events`, 'utf8');
    const m = /^oom_kill (\d+)$/m.exec(events);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Pids of the processes whose environment holds `RUN_MARKER_ENV=marker`: a run's children that
 * called setsid or double-forked out of its process group still carry it.
 */
export function pidsWithMarker(marker: string): number[] {
  const needle = Buffer.from(`${RUN_MARKER_ENV}=${marker}\0`);
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    const c = e.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/environ`).includes(needle)) out.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** Signals a run's process group and every process carrying its marker. Returns how many were signalled. */
export function killRunTree(pgid: number | null, marker: string | null, signal: NodeJS.Signals): number {
  let n = pgid !== null && killGroup(pgid, signal) ? 1 : 0;
  if (marker) {
    for (const pid of pidsWithMarker(marker)) {
      try {
        process.kill(pid, signal);
        n++;
      } catch {
        // already gone
      }
    }
  }
  return n;
}

/** Starts one process of a job in its own process group, its output appended to the job's log. */
export function runProcess(p: RunParams): RunHandle {
  const oomBefore = readOomKills();
  let stoppedBy: StopReason | undefined;
  let killTimer: LongTimer | undefined;
  let timeoutTimer: LongTimer | undefined;
  let settled = false;
  let stderrTail = Buffer.alloc(0);
  let diskError: string | undefined;

  const child = spawn(p.argv[0], p.argv.slice(1), {
    cwd: p.cwd,
    env: p.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(p.uid !== undefined ? { uid: p.uid } : {}),
    ...(p.gid !== undefined ? { gid: p.gid } : {}),
  });
  const pid = child.pid ?? null;

  const stop = (reason: StopReason, graceMs = p.graceMs): void => {
    if (settled || pid === null) return;
    stoppedBy ??= reason;
    killRunTree(pid, p.marker, 'SIGTERM');
    killTimer ??= setLongTimeout(() => killRunTree(pid, p.marker, 'SIGKILL'), graceMs);
  };

  const onChunk = (c: Buffer): void => {
    const err = p.log.write(c);
    if (err && !diskError) {
      diskError = err.message;
      // the job's output can no longer be kept: end it (its failure names the cause)
      stop('disk');
    }
  };

  const done = new Promise<ExitFacts>((resolve) => {
    let spawnError: string | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    /** `lingered`: the pipes were still held after the exit, so something of the job is still running. */
    const settle = (lingered = false): void => {
      if (settled) return;
      settled = true;
      killTimer?.clear();
      timeoutTimer?.clear();
      child.stdout?.destroy();
      child.stderr?.destroy();
      const oomAfter = readOomKills();
      resolve({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stderrTail: stderrTail.toString('utf8'),
        stoppedBy,
        timeoutSeconds: p.timeoutSeconds,
        spawnError,
        diskError,
        kernelOomKill: oomBefore !== null && oomAfter !== null && oomAfter > oomBefore,
      });
      // leftovers that escaped the group (setsid, double fork) are part of the job too; the /proc scan
      // costs a few ms, so a job that simply exited with its pipes closed is not scanned
      if (pid !== null && (lingered || stoppedBy)) setImmediate(() => killRunTree(null, p.marker, 'SIGKILL'));
    };
    child.on('error', (err) => {
      spawnError = err.message;
      if (pid === null) settle();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // leftovers of the job (background children) are part of the job: end them too
      if (pid !== null) killGroup(pid, 'SIGKILL');
      // a child outside the group may still hold the pipes: do not wait on them for long
      setTimeout(() => settle(true), PIPE_LINGER_MS).unref();
    });
    child.on('close', (code, signal) => {
      if (pid === null) return; // the 'error' handler settles a process that never started
      exit ??= { code, signal };
      settle();
    });
  });

  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', (c: Buffer) => {
    onChunk(c);
    stderrTail = stderrTail.length + c.length > STDERR_TAIL_BYTES
      ? Buffer.concat([stderrTail, c]).subarray(-STDERR_TAIL_BYTES)
      : Buffer.concat([stderrTail, c]);
  });

  if (p.timeoutSeconds && pid !== null) timeoutTimer = setLongTimeout(() => stop('timeout'), p.timeoutSeconds * 1000);

  return { pid, pgid: pid, procStart: pid === null ? null : procStartTime(pid), done, stop };
}
