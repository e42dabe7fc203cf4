import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { diskFaultOf } from './db';
import { attachRun, RUN_MARKER_ENV, runProcess, type RunHandle, type StopReason } from './executor';
import { classifyExit, type ExitFacts } from './failure';
import type { RunLauncher } from './launcher';
import type { JobLog } from './logs';
import { runPaths, stageIn, stageOut, type StagingContext } from './staging';
import { runDirOf, type FifoPool } from './supervisor';
import type { Failure, JobRecord, ShardRecord } from './types';

export { workDir } from './staging';

/** The user jobs run as (serve --job-user): their ids, and the environment a login would give. */
export interface JobUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface RunContext extends StagingContext {
  readonly baseEnv: NodeJS.ProcessEnv;
  readonly graceMs: number;
  readonly log: JobLog;
  readonly pool: FifoPool;
  readonly launcher?: RunLauncher;
}

export interface RunSlot {
  readonly runId: number;
  readonly startedMs: number;
  /** A run a previous agent started whose shim is still there (running, or ended with a status). */
  readonly attach?: { readonly pid: number; readonly procStart: string | null };
  readonly marker: string;
  readonly shard: ShardRecord | null;
  readonly gpuSlots: number[];
  handle?: RunHandle;
  stopReason?: StopReason;
}

export interface RunResult {
  readonly facts: ExitFacts | null;
  readonly failure: Failure | null;
}

/** Looks a user up (getent, else /etc/passwd) for --job-user. Throws naming the user when unknown. */
export function resolveJobUser(name: string): JobUser {
  let line: string | undefined;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    try {
      line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[0] === name);
    } catch {
      // no passwd file
    }
  }
  const f = line?.split(':');
  if (!f || f.length < 7 || f[0] !== name || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) {
    throw new Error(`--job-user ${JSON.stringify(name)}: no such user on this host`);
  }
  return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
}

/**
 * One process of a job (a train attempt or a batch shard): stages its inputs, runs it under its
 * supervisor (or re-attaches to the one a previous agent started: `run.attach`), stages its outputs.
 * `onStarted` runs right after the spawn (the caller journals the pid).
 */
export async function executeRun(ctx: RunContext, job: JobRecord, run: RunSlot, onStarted: (h: RunHandle) => void): Promise<RunResult> {
  const { spec, id } = job;
  let facts: ExitFacts | null = null;
  let failure: Failure | null = null;
  try {
    const paths = runPaths(ctx, job, run.shard);
    const runDir = runDirOf(ctx.dataDir, run.runId);
    const common = { runDir, marker: run.marker, log: ctx.log, timeoutSeconds: spec.timeoutSeconds, graceMs: ctx.graceMs, argv0: spec.argv[0] };
    if (run.attach) {
      run.handle = attachRun({ ...common, pid: run.attach.pid, procStart: run.attach.procStart, startedMs: run.startedMs });
      facts = await run.handle.done;
    } else {
      await stageIn(ctx, job, run.shard, paths);
      const u = ctx.jobUser;
      const env: NodeJS.ProcessEnv = {
        ...ctx.baseEnv,
        ...(u ? { HOME: u.home, USER: u.name, LOGNAME: u.name } : {}),
        ...spec.env,
        CUDA_VISIBLE_DEVICES: run.gpuSlots.join(','),
        MLINFRA_JOB_ID: id,
        MLINFRA_ATTEMPT: String(job.attempts),
        MLINFRA_GPUS: String(spec.gpus),
        MLINFRA_CHECKPOINT_DIR: paths.ckptDir,
        MLINFRA_ARTIFACT_DIR: paths.artifactDir,
        [RUN_MARKER_ENV]: run.marker,
        ...(run.shard ? {
          MLINFRA_INPUT: paths.inputLocal,
          MLINFRA_OUTPUT: paths.outputLocal,
          MLINFRA_SHARD_INDEX: String(run.shard.idx),
          MLINFRA_SHARD_KEY: run.shard.key,
        } : {}),
      };
      if (spec.cwd !== undefined && !fs.existsSync(spec.cwd)) {
        facts = { exitCode: null, signal: null, stderrTail: '', spawnError: `the working directory ${spec.cwd} does not exist` };
      } else if (run.stopReason) {
        facts = { exitCode: null, signal: null, stderrTail: '', stoppedBy: run.stopReason };
      } else {
        const handle = await runProcess({
          ...common, argv: spec.argv, env, cwd: spec.cwd, pool: ctx.pool, launcher: ctx.launcher,
          ...(u ? { uid: u.uid, gid: u.gid } : {}),
        });
        run.handle = handle;
        onStarted(handle);
        // a stop that came while the shim was starting
        if (run.stopReason) handle.stop(run.stopReason);
        facts = await handle.done;
      }
    }
    failure = classifyExit(facts);
    await stageOut(ctx, job, run.shard, paths, !failure);
  } catch (e) {
    failure ??= diskFaultOf(e)
      ? { class: 'disk', reason: `the disk is ${diskFaultOf(e) === 'full' ? 'full' : 'read-only'}: ${(e as Error).message}` }
      : { class: 'exit', reason: `setup or storage error: ${(e as Error).message}` };
  }
  return { facts, failure };
}
