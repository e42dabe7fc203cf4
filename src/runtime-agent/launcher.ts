import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { RUN_MARKER_ENV, SHIM_NAME, SHIM_SCRIPT } from './supervisor';

/**
 * The launcher loop: reads `<marker> <runDir>` lines and starts a shim for each in a new session
 * (`setsid`, which does not fork here: a background child of a shell without job control leads no
 * group), answering `<pid> <runDir>`. Its children are reaped by the shell itself. Before each start
 * it checks that its parent is still the agent (`$2`, from /proc with builtins only): requests left
 * in the pipe by an agent killed meanwhile are dropped, so the next agent's recovery never races a
 * late start (it re-queues those runs as never started).
 */
const LAUNCHER_SCRIPT = [
  'shim=$1 agent=$2',
  'command -v setsid >/dev/null 2>&1 || { echo "unavailable setsid is not installed"; exit 3; }',
  '[ -r /proc/$$/stat ] || { echo "unavailable /proc is not mounted"; exit 3; }',
  "while IFS=' ' read -r m d; do",
  '  read -r st </proc/$$/stat || exit 4',
  '  st=${st##*) }; st=${st#* }',
  '  [ "${st%% *}" = "$agent" ] || exit 5',
  `  ${RUN_MARKER_ENV}=$m setsid /bin/sh -c "$shim" ${SHIM_NAME} "$d" </dev/null >/dev/null 2>&1 &`,
  '  echo "$! $d"',
  'done',
].join('\n');

/** What became of a launch: the shim's pid; `unavailable` (nothing started: spawn instead); `lost` (the launcher died: the shim may have started). */
export type Launched = { readonly pid: number } | { readonly unavailable: string } | { readonly lost: string };

/**
 * Starts run supervisors from one long-lived `/bin/sh` instead of forking the agent for each run:
 * a fork copies the agent's page tables (several ms of its event loop per run, measured in
 * `bench/agent-profile.mjs`), a fork of dash costs a fraction of that on another core. The shell
 * gets the agent's job environment (`env`: no token); a run's own variables are in its command
 * script. It ends with the agent (end of file on its input); shims it started live on.
 */
export class RunLauncher {
  private proc: ChildProcess | undefined;
  private unavailable: string | undefined;
  private readonly pending = new Map<string, (l: Launched) => void>();
  private buf = '';

  constructor(readonly env: NodeJS.ProcessEnv) {}

  /** Whether launches go through the launcher (false once it found it cannot: e.g. no `setsid`). */
  get usable(): boolean {
    return this.unavailable === undefined;
  }

  launch(runDir: string, marker: string): Promise<Launched> {
    if (this.unavailable) return Promise.resolve({ unavailable: this.unavailable });
    if (/[\s]/.test(marker) || runDir.includes('\n') || runDir.trim() !== runDir || this.pending.has(runDir)) {
      return Promise.resolve({ unavailable: 'the run directory cannot be passed on one line' });
    }
    const proc = this.start();
    return new Promise<Launched>((resolve) => {
      this.pending.set(runDir, resolve);
      proc.stdin!.write(`${marker} ${runDir}\n`);
    });
  }

  /** Ends the launcher (its input closes); running shims are not affected. */
  close(): void {
    this.proc?.stdin?.end();
  }

  private start(): ChildProcess {
    if (this.proc) return this.proc;
    // detached: a terminal's signals to the agent's group do not reach it; it ends on end of file
    const proc = spawn('/bin/sh', ['-c', LAUNCHER_SCRIPT, 'mlinfra-launcher', SHIM_SCRIPT, String(process.pid)], { env: this.env, detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
    this.proc = proc;
    // never what keeps the agent's process alive
    proc.unref();
    (proc.stdin as Socket).unref();
    (proc.stdout as Socket).unref();
    proc.stdin!.on('error', () => undefined); // EPIPE after it died: handled on exit
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      this.buf += chunk;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (line.startsWith('unavailable ')) {
          this.unavailable = line.slice('unavailable '.length);
          continue;
        }
        const sp = line.indexOf(' ');
        const dir = line.slice(sp + 1);
        const done = this.pending.get(dir);
        if (!done) continue;
        this.pending.delete(dir);
        done({ pid: Number(line.slice(0, sp)) });
      }
    });
    proc.on('error', (e) => {
      this.unavailable ??= `the run launcher could not start: ${e.message}`;
    });
    proc.on('close', (code, signal) => {
      this.proc = undefined;
      this.buf = '';
      const why = `the run launcher exited (${signal ?? `status ${code}`})`;
      for (const done of this.pending.values()) done(this.unavailable ? { unavailable: this.unavailable } : { lost: why });
      this.pending.clear();
    });
    return proc;
  }
}
