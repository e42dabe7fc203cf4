import { killGroup, killRunTree, pidsWithMarker, procStartTime } from './executor';
import type { Journal } from './journal';
import type { JobRecord, RunRecord } from './types';

export interface Recovered {
  readonly orphansKilled: number;
  readonly interrupted: number;
  readonly requeued: number;
  /** Jobs queued after recovery, in journal order. */
  readonly queued: JobRecord[];
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
 * preemption or a graceful shutdown, which do not count against retries).
 */
export async function recoverJournal(j: Journal): Promise<Recovered> {
  const open = j.openRuns();
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
  return { orphansKilled, interrupted, requeued, queued: j.jobsInState('queued') };
}
