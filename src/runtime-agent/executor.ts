import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { ExitFacts } from './failure';
import type { RunLauncher } from './launcher';
import type { JobLog } from './logs';
import { commandScript, readShimPid, readShimStatus, RUN_MARKER_ENV, SHIM_NAME, SHIM_SCRIPT, type FifoPool } from './supervisor';
import { setLongTimeout, type LongTimer } from './timers';

export { RUN_MARKER_ENV } from './supervisor';

export type StopReason = 'cancel' | 'timeout' | 'preemption' | 'shutdown' | 'disk';

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
  /** The run's directory (FIFOs and the shim's status): see supervisor.ts. */
  readonly runDir: string;
  readonly pool: FifoPool;
  /** Starts the shim without forking the agent (runs as the agent's user only). */
  readonly launcher?: RunLauncher;
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
  /** Stops watching the run without stopping it (`done` never settles): its supervisor records its end for the next agent. */
  detach(): void;
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
  // -1 would signal every process we may signal, -0 our own group: never a run's group
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
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

/** Opens a run FIFO for reading without blocking (a writer may not be there yet) as a stream. */
function openFifo(file: string): net.Socket {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  return new net.Socket({ fd, readable: true, writable: false });
}

/** How a supervised run is watched: a child of this agent, or a shim a previous agent left running. */
interface Watch {
  readonly pid: number;
  readonly procStart: string | null;
  /** Calls `exited` once, with the shim's own exit (the job's is in its status file). */
  onExit(exited: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** Whether `pid` still names the run's group (a re-attached shim that ended may have its pid reused). */
  ownsGroup(): boolean;
}

interface SuperviseParams {
  readonly runDir: string;
  readonly marker: string;
  readonly log: JobLog;
  readonly timeoutSeconds?: number;
  /** When the run started (a re-attached run's timeout counts from it). */
  readonly startedMs: number;
  readonly graceMs: number;
  readonly argv0: string;
}

/**
 * Follows a supervised run: its FIFOs into the job's log, its end from the shim's status file
 * (or the shim's own death when it could not write one), timeout and stop.
 */
function supervise(p: SuperviseParams, w: Watch, oomBefore: number | null, fifos?: { out: net.Socket; err: net.Socket }): RunHandle {
  const pid = w.pid;
  let stoppedBy: StopReason | undefined;
  let killTimer: LongTimer | undefined;
  let timeoutTimer: LongTimer | undefined;
  let settled = false;
  let stderrTail = Buffer.alloc(0);
  let diskError: string | undefined;

  const group = (): number | null => (w.ownsGroup() ? pid : null);
  const stop = (reason: StopReason, graceMs = p.graceMs): void => {
    if (settled) return;
    stoppedBy ??= reason;
    killRunTree(group(), p.marker, 'SIGTERM');
    killTimer ??= setLongTimeout(() => killRunTree(group(), p.marker, 'SIGKILL'), graceMs);
  };

  const onChunk = (c: Buffer): void => {
    const err = p.log.write(c);
    if (err && !diskError) {
      diskError = err.message;
      // the job's output can no longer be kept: end it (its failure names the cause)
      stop('disk');
    }
  };

  let out: net.Socket | undefined = fifos?.out;
  let err: net.Socket | undefined = fifos?.err;
  let openError: string | undefined;
  try {
    out ??= openFifo(path.join(p.runDir, 'o'));
    err ??= openFifo(path.join(p.runDir, 'e'));
  } catch (e) {
    // FIFOs gone (a shim that already ended and was cleaned up): its status still tells the end
    openError = (e as Error).message;
    out?.destroy();
    out = undefined;
  }

  const done = new Promise<ExitFacts>((resolve) => {
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let open = (out ? 1 : 0) + (err ? 1 : 0);
    /** `lingered`: the pipes were still held after the exit, so something of the job is still running. */
    const settle = (lingered = false): void => {
      if (settled || !exit) return;
      settled = true;
      killTimer?.clear();
      timeoutTimer?.clear();
      out?.destroy();
      err?.destroy();
      const status = readShimStatus(p.runDir);
      const oomAfter = readOomKills();
      resolve({
        exitCode: status ? status.exitCode : exit.code,
        signal: status ? status.signal : exit.signal,
        stderrTail: stderrTail.toString('utf8'),
        stoppedBy,
        timeoutSeconds: p.timeoutSeconds,
        spawnError: status?.notFound ? `spawn ${p.argv0} ENOENT` : undefined,
        diskError,
        kernelOomKill: oomBefore !== null && oomAfter !== null && oomAfter > oomBefore,
      });
      // leftovers that escaped the group (setsid, double fork) are part of the job too; the /proc scan
      // costs a few ms, so a job that simply exited with its pipes closed is not scanned
      if (lingered || stoppedBy || openError) setImmediate(() => killRunTree(null, p.marker, 'SIGKILL'));
    };
    const track = (s: net.Socket | undefined): void => {
      let over = false;
      const ended = (): void => {
        if (over) return;
        over = true;
        open--;
        if (open === 0) settle();
      };
      s?.on('end', ended).on('error', ended).on('close', ended);
    };
    track(out);
    track(err);
    w.onExit((code, signal) => {
      exit = { code, signal };
      // leftovers of the job (background children) are part of the job: end them too (the shim does
      // the same; this covers a shim killed before it could)
      const g = group();
      if (g !== null) killGroup(g, 'SIGKILL');
      if (open === 0) settle();
      // a child outside the group may still hold the pipes: do not wait on them for long
      else setTimeout(() => settle(true), PIPE_LINGER_MS).unref();
    });
  });

  out?.on('data', onChunk);
  err?.on('data', (c: Buffer) => {
    onChunk(c);
    stderrTail = stderrTail.length + c.length > STDERR_TAIL_BYTES
      ? Buffer.concat([stderrTail, c]).subarray(-STDERR_TAIL_BYTES)
      : Buffer.concat([stderrTail, c]);
  });

  if (p.timeoutSeconds) {
    const left = p.timeoutSeconds * 1000 - (Date.now() - p.startedMs);
    timeoutTimer = setLongTimeout(() => stop('timeout'), Math.max(0, left));
  }
  const detach = (): void => {
    settled = true;
    killTimer?.clear();
    timeoutTimer?.clear();
    out?.destroy();
    err?.destroy();
  };
  return { pid, pgid: pid, procStart: w.procStart, done, stop, detach };
}

/**
 * Starts one process of a job under its supervisor shim (see supervisor.ts), in its own session and
 * process group, through the run launcher when it can (else spawned detached); its output reaches
 * the job's log through the run's FIFOs. A program that cannot be started at all resolves `done`
 * with `spawnError`.
 */
export async function runProcess(p: RunParams): Promise<RunHandle> {
  const oomBefore = readOomKills();
  const owner = p.uid !== undefined ? { uid: p.uid, gid: p.gid ?? p.uid } : undefined;
  await p.pool.take(p.runDir, owner);
  const launcher = p.launcher?.usable && owner === undefined ? p.launcher : undefined;
  let script = launcher ? commandScript(p.runDir, p.argv, p.cwd, p.env, launcher.env) : null;
  const viaLauncher = launcher !== undefined && script !== null;
  script ??= commandScript(p.runDir, p.argv, p.cwd, p.env, p.env);
  // what spawn refuses too: the run fails as a setup error
  if (script === null) throw new TypeError(`the command ${JSON.stringify(p.argv)} holds a NUL byte`);
  const cmdFile = path.join(p.runDir, 'c');
  fs.writeFileSync(cmdFile, script, { mode: 0o600 });
  if (owner) fs.chownSync(cmdFile, owner.uid, owner.gid);
  // read ends open before the start: a pipe's data is dropped when its last fd closes, so a job that
  // ends before the agent opened them would lose its output
  const fifos = { out: openFifo(path.join(p.runDir, 'o')), err: openFifo(path.join(p.runDir, 'e')) };
  const common = { runDir: p.runDir, marker: p.marker, log: p.log, timeoutSeconds: p.timeoutSeconds, startedMs: Date.now(), graceMs: p.graceMs, argv0: p.argv[0] };
  if (viaLauncher) {
    // opened before the launch too: its end of file (the shim gone) is only seen by a reader that was there
    const shimEnd = openFifo(path.join(p.runDir, 'x'));
    const launched = await launcher.launch(p.runDir, p.marker);
    let pid = 'pid' in launched ? launched.pid : null;
    if ('lost' in launched) {
      // the launcher died with this request in flight: the shim may have started (its pid file says)
      pid = await waitForShimPid(p.runDir, LOST_LAUNCH_WAIT_MS);
      if (pid === null) {
        shimEnd.destroy();
        fifos.out.destroy();
        fifos.err.destroy();
        killRunTree(null, p.marker, 'SIGKILL');
        return notStarted(launched.lost);
      }
    }
    if (pid !== null) return launchedRun(common, pid, shimEnd, oomBefore, fifos);
    shimEnd.destroy(); // unavailable: nothing started, spawn instead
  }
  const child = spawn('/bin/sh', ['-c', SHIM_SCRIPT, SHIM_NAME, p.runDir], {
    cwd: p.cwd,
    env: p.env,
    detached: true,
    stdio: 'ignore',
    ...(p.uid !== undefined ? { uid: p.uid } : {}),
    ...(p.gid !== undefined ? { gid: p.gid } : {}),
  });
  if (child.pid === undefined) {
    fifos.out.destroy();
    fifos.err.destroy();
    return notStarted(await new Promise<string>((resolve) => child.once('error', (e) => resolve(e.message))));
  }
  child.on('error', () => undefined);
  const pid = child.pid;
  const watch: Watch = {
    pid,
    procStart: procStartTime(pid),
    // our child: its pid is not reused before we reap it, and the group outlives it while members remain
    ownsGroup: () => true,
    onExit: (exited) => {
      if (child.exitCode !== null || child.signalCode !== null) exited(child.exitCode, child.signalCode);
      else child.once('exit', exited);
    },
  };
  return supervise(common, watch, oomBefore, fifos);
}

function notStarted(spawnError: string): RunHandle {
  const facts: ExitFacts = { exitCode: null, signal: null, stderrTail: '', spawnError };
  return { pid: null, pgid: null, procStart: null, done: Promise.resolve(facts), stop: () => undefined, detach: () => undefined };
}

/** How long a launch the launcher died on may take to show its shim's pid file. */
const LOST_LAUNCH_WAIT_MS = 2000;

async function waitForShimPid(runDir: string, ms: number): Promise<number | null> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 50))) {
    const pid = readShimPid(runDir);
    if (pid !== null) return pid;
  }
  return readShimPid(runDir);
}

/** How often a launched shim's liveness is checked besides its end-of-file (a backstop: the FIFO is what ends it). */
const LAUNCHED_POLL_MS = 1000;

/** Watches a shim the launcher started: not our child, so its end is the end of file on `x`. */
function launchedRun(p: SuperviseParams, pid: number, shimEnd: net.Socket, oomBefore: number | null, fifos: { out: net.Socket; err: net.Socket }): RunHandle {
  const procStart = procStartTime(pid);
  let poll: NodeJS.Timeout | undefined;
  const watch: Watch = {
    pid,
    procStart,
    // reaped by the launcher once it ends: then its pid may be reused
    ownsGroup: () => shimAlive(pid, procStart),
    onExit: (exited) => {
      let fired = false;
      const fire = (): void => {
        if (fired) return;
        fired = true;
        clearInterval(poll);
        shimEnd.destroy();
        exited(null, 'SIGKILL');
      };
      shimEnd.on('end', fire).on('error', fire);
      shimEnd.resume();
      poll = setInterval(() => {
        if (!shimAlive(pid, procStart)) fire();
      }, LAUNCHED_POLL_MS);
      poll.unref();
    },
  };
  const h = supervise(p, watch, oomBefore, fifos);
  return {
    ...h,
    detach: () => {
      clearInterval(poll);
      shimEnd.removeAllListeners('end').removeAllListeners('error').on('error', () => undefined);
      shimEnd.destroy();
      h.detach();
    },
  };
}

/** How often a re-attached shim (not our child: no exit event) is checked. */
const ATTACHED_POLL_MS = 100;

export interface AttachParams extends SuperviseParams {
  readonly pid: number;
  readonly procStart: string | null;
}

/** Whether the shim a previous agent journaled is still that process (not a reused pid). */
export function shimAlive(pid: number, procStart: string | null): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // a zombie has ended (waiting for a parent to reap it): its status file is written
  return fields[0] !== 'Z' && (procStart === null || fields[19] === procStart);
}

/**
 * Re-attaches to a run a previous agent started (after a crash or kill -9): its output keeps
 * flowing into the log, its end is read from the shim's status file when the shim exits.
 */
export function attachRun(p: AttachParams): RunHandle {
  let detached = false;
  const watch: Watch = {
    pid: p.pid,
    procStart: p.procStart,
    // the shim kills its own group when it ends; once it is gone its pid may belong to someone else
    ownsGroup: () => shimAlive(p.pid, p.procStart),
    onExit: (exited) => {
      const check = (): void => {
        if (detached) return;
        if (shimAlive(p.pid, p.procStart)) {
          setTimeout(check, ATTACHED_POLL_MS);
          return;
        }
        exited(null, 'SIGKILL');
      };
      check();
    },
  };
  const h = supervise(p, watch, null);
  return {
    ...h,
    detach: () => {
      detached = true;
      h.detach();
    },
  };
}
