import * as fs from 'node:fs';
import * as path from 'node:path';
import { killGroup, killRunTree, pidsWithMarker, procStartTime, shimAlive } from './executor';
import type { Journal } from './journal';
import { readShimPid, readShimStatus, runDirOf } from './supervisor';
import type { JobRecord, RunRecord } from './types';

export interface Recovered {
  readonly orphansKilled: number;
  readonly interrupted: number;
  readonly requeued: number;
  /** Jobs queued after recovery, in journal order. */
  readonly queued: JobRecord[];
  /** Runs whose supervisor outlived the previous agent (still running, or ended with a status): adopted, not re-run. */
  readonly attached: ReadonlyArray<{ readonly job: JobRecord; readonly runs: RunRecord[] }>;
}

/** Where a run's shim is: still running, or ended with its status written. Null: nothing to re-attach to. */
function attachable(run: RunRecord, dataDir: string): { pid: number; procStart: string | null } | null {
  const dir = runDirOf(dataDir, run.runId);
  // no run dir: started by an agent without supervisors (an upgrade), or never spawned
  if (!fs.existsSync(dir)) return null;
  if (run.pid !== null && shimAlive(run.pid, run.procStart)) return { pid: run.pid, procStart: run.procStart };
  if (run.pid === null) {
    // killed between the spawn and the pid's record: the shim's own pid file (checked against the run's marker)
    const pid = readShimPid(dir);
    if (pid !== null && run.marker !== null && pidsWithMarker(run.marker).includes(pid) && shimAlive(pid, null)) {
      return { pid, procStart: procStartTime(pid) };
    }
  }
  return readShimStatus(dir) !== null ? { pid: run.pid ?? -1, procStart: run.procStart } : null;
}

/** Run directories of runs the journal has closed (the agent died between the end's record and the cleanup). */
function removeStaleRunDirs(dataDir: string, open: ReadonlySet<number>): void {
  const root = path.join(dataDir, 'runs');
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const e of entries) {
    if (/^\d+$/.test(e) && !open.has(Number(e))) fs.rmSync(path.join(root, e), { recursive: true, force: true });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether anything of a run a previous agent left is still alive (its group, or a process carrying its marker). */
function alive(run: RunRecord, groups: Set<number>): boolean {
  if (run.pgid !== null && groups.has(run.pgid) && killGroup(run.pgid, 0 as unknown as NodeJS.Signals)) return true;
  return run.marker !== null && pidsWithMarker(run.marker).length > 0;
}

/**
 * Crash recovery, before serving: kills every process of the runs a previous agent left behind
 * (their process group, and any process carrying the run's marker: it is journaled before the
 * spawn, so a crash between the spawn and the pid's record still finds them, as do setsid and
 * double-fork children), waits until they are gone, then in one transaction marks the jobs that
 * were running `interrupted` and re-queues those with retries left (and those interrupted by
 * preemption or a graceful shutdown, which do not count against retries). Runs whose supervisor
 * shim is still running, or ended and left its status, are not touched: they are returned in
 * `attached` for the scheduler to adopt (their real exit is recorded, nothing runs twice).
 */
export async function recoverJournal(j: Journal, dataDir: string): Promise<Recovered> {
  const adopt = new Map<string, RunRecord[]>();
  const open: RunRecord[] = [];
  for (const run of j.openRuns()) {
    const shim = attachable(run, dataDir);
    if (shim) adopt.set(run.jobId, [...(adopt.get(run.jobId) ?? []), { ...run, pid: shim.pid, procStart: shim.procStart }]);
    else open.push(run);
  }
  let orphansKilled = 0;
  const groups = new Set<number>();
  /** Jobs with a sign that a process started: a recorded pid, or a live process carrying a run's marker. */
  const spawned = new Set<string>();
  for (const run of open) {
    let pgid: number | null = null;
    if (run.pgid) {
      const start = procStartTime(run.pgid);
      const reused = start !== null && run.procStart !== null && start !== run.procStart;
      if (!reused) pgid = run.pgid;
    }
    const n = killRunTree(pgid, run.marker, 'SIGKILL');
    if (run.pid !== null || n > 0) spawned.add(run.jobId);
    if (n > 0) {
      orphansKilled++;
      if (pgid !== null) groups.add(pgid);
    }
  }
  const deadline = Date.now() + 5000;
  while (open.some((r) => alive(r, groups)) && Date.now() < deadline) {
    for (const r of open) if (r.marker) killRunTree(null, r.marker, 'SIGKILL');
    await sleep(20);
  }
  let interrupted = 0;
  let requeued = 0;
  j.transaction(() => {
    for (const run of open) {
      j.endRun(run.runId, 'interrupted', null, null, { class: 'signal', reason: 'the agent restarted while this run was active; its processes were killed' });
    }
    for (const job of j.jobsInState('running')) {
      // a batch job with some shard runs adopted: its lost shards stay pending and run again in this attempt
      if (adopt.has(job.id)) continue;
      interrupted++;
      if (!spawned.has(job.id)) {
        // the pid is journaled in the spawn's own tick: without one, the crash came before the process started
        j.endJob(job.id, {
          state: 'interrupted', exitCode: null, signal: null, charge: false, requeue: true,
          failure: { class: 'signal', reason: 'the agent stopped before the job\'s process started: re-queued without counting a retry' },
        });
        continue;
      }
      const rec = j.endJob(job.id, {
        state: 'interrupted', exitCode: null, signal: null, charge: true,
        failure: { class: 'signal', reason: 'the agent stopped unexpectedly (crash, kill -9 or host reboot) while the job was running' },
      });
      if (rec.charged <= rec.spec.retries) {
        j.requeueJob(job.id);
        requeued++;
      }
    }
    for (const job of j.jobsInState('interrupted')) {
      if (job.requeue) {
        j.requeueJob(job.id);
        requeued++;
      }
    }
  });
  removeStaleRunDirs(dataDir, new Set([...adopt.values()].flat().map((r) => r.runId)));
  const attached = [...adopt].map(([id, runs]) => ({ job: j.getJob(id)!, runs })).filter((x) => x.job.state === 'running');
  return { orphansKilled, interrupted, requeued, queued: j.jobsInState('queued'), attached };
}
