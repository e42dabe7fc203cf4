import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diskFaultOf } from './db';
import { RUN_MARKER_ENV, runProcess, type RunHandle, type StopReason } from './executor';
import { classifyExit, type ExitFacts } from './failure';
import type { JobLog } from './logs';
import { localPathOf, type Storage } from './storage/index';
import type { Failure, JobRecord, ShardRecord } from './types';

/** The user jobs run as (serve --job-user): their ids, and the environment a login would give. */
export interface JobUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface RunContext {
  readonly dataDir: string;
  readonly storage: Storage;
  readonly baseEnv: NodeJS.ProcessEnv;
  readonly graceMs: number;
  readonly jobUser?: JobUser;
  readonly log: JobLog;
}

export interface RunSlot {
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

export function workDir(dataDir: string, jobId: string, ...parts: string[]): string {
  return path.join(dataDir, 'work', jobId, ...parts);
}

/** Creates a directory the job user can write (the agent may run as root). */
async function jobDir(dir: string, user: JobUser | undefined): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  if (user) await fs.promises.chown(dir, user.uid, user.gid);
}

/**
 * One process of a job (a train attempt or a batch shard): fetches its inputs, runs it, uploads
 * its outputs. `onStarted` runs right after the spawn (the caller journals the pid).
 */
export async function executeRun(ctx: RunContext, job: JobRecord, run: RunSlot, onStarted: (h: RunHandle) => void): Promise<RunResult> {
  const { spec, id } = job;
  const { storage, dataDir } = ctx;
  let facts: ExitFacts | null = null;
  let failure: Failure | null = null;
  try {
    const ckpt = spec.checkpointDir;
    const ckptRemote = ckpt !== undefined && !storage.isLocal(ckpt);
    const ckptDir = ckpt === undefined ? path.join(dataDir, 'checkpoints', id) : ckptRemote ? workDir(dataDir, id, 'checkpoint') : localPathOf(ckpt);
    const artifactDir = workDir(dataDir, id, 'artifacts');
    await jobDir(ckptDir, ctx.jobUser);
    await jobDir(artifactDir, ctx.jobUser);
    if (ckptRemote && !run.shard) await storage.getDir(ckpt, ckptDir);
    const u = ctx.jobUser;
    const env: NodeJS.ProcessEnv = {
      ...ctx.baseEnv,
      ...(u ? { HOME: u.home, USER: u.name, LOGNAME: u.name } : {}),
      ...spec.env,
      CUDA_VISIBLE_DEVICES: run.gpuSlots.join(','),
      MLINFRA_JOB_ID: id,
      MLINFRA_ATTEMPT: String(job.attempts),
      MLINFRA_GPUS: String(spec.gpus),
      MLINFRA_CHECKPOINT_DIR: ckptDir,
      MLINFRA_ARTIFACT_DIR: artifactDir,
      [RUN_MARKER_ENV]: run.marker,
    };
    let outputLocal: string | undefined;
    if (run.shard) {
      const s = run.shard;
      const base = path.basename(s.key);
      const inputLocal = storage.isLocal(s.inputUri) ? localPathOf(s.inputUri) : workDir(dataDir, id, 'shards', String(s.idx), 'in', base);
      if (!storage.isLocal(s.inputUri)) await storage.get(s.inputUri, inputLocal);
      outputLocal = storage.isLocal(s.outputUri) ? localPathOf(s.outputUri) : workDir(dataDir, id, 'shards', String(s.idx), 'out', base);
      await jobDir(path.dirname(outputLocal), u);
      Object.assign(env, {
        MLINFRA_INPUT: inputLocal,
        MLINFRA_OUTPUT: outputLocal,
        MLINFRA_SHARD_INDEX: String(s.idx),
        MLINFRA_SHARD_KEY: s.key,
      });
    }
    if (spec.cwd !== undefined && !fs.existsSync(spec.cwd)) {
      facts = { exitCode: null, signal: null, stderrTail: '', spawnError: `the working directory ${spec.cwd} does not exist` };
    } else if (run.stopReason) {
      facts = { exitCode: null, signal: null, stderrTail: '', stoppedBy: run.stopReason };
    } else {
      const handle = runProcess({
        argv: spec.argv, env, marker: run.marker, cwd: spec.cwd, log: ctx.log, timeoutSeconds: spec.timeoutSeconds, graceMs: ctx.graceMs,
        ...(u ? { uid: u.uid, gid: u.gid } : {}),
      });
      run.handle = handle;
      onStarted(handle);
      facts = await handle.done;
    }
    failure = classifyExit(facts);
    if (!failure && run.shard && !storage.isLocal(run.shard.outputUri) && outputLocal && fs.existsSync(outputLocal)) {
      await storage.put(outputLocal, run.shard.outputUri);
    }
    if (!failure && !run.shard && spec.artifactUri) await storage.putDir(artifactDir, spec.artifactUri);
    if (ckptRemote && !run.shard) await storage.putDir(ckptDir, ckpt);
  } catch (e) {
    failure ??= diskFaultOf(e)
      ? { class: 'disk', reason: `the disk is ${diskFaultOf(e) === 'full' ? 'full' : 'read-only'}: ${(e as Error).message}` }
      : { class: 'exit', reason: `setup or storage error: ${(e as Error).message}` };
  }
  return { facts, failure };
}
