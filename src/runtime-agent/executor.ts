import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { ExitFacts } from './failure';
import type { JobLog } from './logs';

export type StopReason = 'cancel' | 'timeout' | 'preemption' | 'shutdown';

export interface RunParams {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly log: JobLog;
  readonly timeoutSeconds?: number;
  /** Milliseconds between SIGTERM and SIGKILL. */
  readonly graceMs: number;
}

export interface RunHandle {
  readonly pid: number | null;
  /** The process group id: the child is a session and group leader (detached), so pgid = pid. */
  readonly pgid: number | null;
  /** Field 22 of /proc/PID/stat: tells a recorded pid from a reused one after a restart. */
  readonly procStart: string | null;
  readonly done: Promise<ExitFacts>;
  /** SIGTERM to the whole process group, SIGKILL after the grace period. First reason wins. */
  stop(reason: StopReason, graceMs?: number): void;
}

const STDERR_TAIL_BYTES = 64 * 1024;

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

/** Starts one process of a job in its own process group, its output appended to the job's log. */
export function runProcess(p: RunParams): RunHandle {
  const oomBefore = readOomKills();
  let stoppedBy: StopReason | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let exited = false;
  let stderrTail = Buffer.alloc(0);

  const child = spawn(p.argv[0], p.argv.slice(1), {
    cwd: p.cwd,
    env: p.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid ?? null;

  const stop = (reason: StopReason, graceMs = p.graceMs): void => {
    if (exited || pid === null) return;
    stoppedBy ??= reason;
    killGroup(pid, 'SIGTERM');
    if (!killTimer) {
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      killTimer.unref();
    }
  };

  const done = new Promise<ExitFacts>((resolve) => {
    let spawnError: string | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      exited = true;
      clearTimeout(killTimer);
      clearTimeout(timeoutTimer);
      const oomAfter = readOomKills();
      resolve({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stderrTail: stderrTail.toString('utf8'),
        stoppedBy,
        timeoutSeconds: p.timeoutSeconds,
        spawnError,
        kernelOomKill: oomBefore !== null && oomAfter !== null && oomAfter > oomBefore,
      });
    };
    child.on('error', (err) => {
      spawnError = err.message;
      if (pid === null) settle();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // leftovers of the job (background children) are part of the job: end them too
      if (pid !== null) killGroup(pid, 'SIGKILL');
    });
    child.on('close', (code, signal) => {
      if (pid === null) return; // the 'error' handler settles a process that never started
      exit ??= { code, signal };
      settle();
    });
  });

  child.stdout?.on('data', (c: Buffer) => p.log.write(c));
  child.stderr?.on('data', (c: Buffer) => {
    p.log.write(c);
    stderrTail = stderrTail.length + c.length > STDERR_TAIL_BYTES
      ? Buffer.concat([stderrTail, c]).subarray(-STDERR_TAIL_BYTES)
      : Buffer.concat([stderrTail, c]);
  });

  if (p.timeoutSeconds && pid !== null) {
    timeoutTimer = setTimeout(() => stop('timeout'), p.timeoutSeconds * 1000);
    timeoutTimer.unref();
  }

  return { pid, pgid: pid, procStart: pid === null ? null : procStartTime(pid), done, stop };
}
