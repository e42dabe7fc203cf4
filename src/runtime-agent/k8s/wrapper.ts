/**
 * `mlinfra-agent k8s-wrap -- COMMAND...`: the agent as a Job pod's entrypoint. It restores the
 * checkpoint directory from the artifact store, runs the command in its own process group, passes
 * SIGTERM on (eviction, preemption, Kueue eviction, cancel) and waits for it to save a checkpoint,
 * uploads the checkpoint, and writes the failure class to the termination log, where the gateway
 * reads it from the pod's status. An Indexed Job's completion index is the shard / node rank.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifyExit } from '../failure';
import { rankCommand } from '../gang-rank';
import { Storage } from '../storage';
import type { Failure } from '../types';
import { TERMINATION_LOG } from './objects';
import { digestDir, STEP_OUTPUT_ENV, uploadStepOutputs } from './step-files';

export interface WrapOptions {
  readonly argv: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** @default /dev/termination-log (MLINFRA_TERMINATION_LOG overrides, for tests) */
  readonly terminationLog?: string;
  /** Time the command has after SIGTERM before SIGKILL; below the pod's grace period (90 s). @default 75000 */
  readonly graceMs?: number;
  /** cgroup v2 directory whose memory.events oom_kill counter tells a kernel OOM kill. @default /sys/fs/cgroup */
  readonly cgroupDir?: string;
  /** Where the process's own SIGTERM comes from (tests pass an emitter). @default process */
  readonly signals?: NodeJS.EventEmitter;
  readonly stderr?: NodeJS.WritableStream;
  readonly stdout?: NodeJS.WritableStream;
}

export interface WrapResult {
  readonly exitCode: number;
  readonly failure: Failure | null;
  readonly checkpointFiles: { restored: number; saved: number };
  /** Files of the pipeline run directory brought from MLINFRA_RUN_DIR_URI before the command ran. */
  readonly runDirFiles: number;
  /** Files the step created or changed, uploaded to MLINFRA_STEP_OUTPUT_URI (after a success only). */
  readonly outputFiles: number;
}

const TAIL_BYTES = 16 * 1024;

function oomKills(cgroupDir: string): number {
  try {
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(cgroupDir, 'memory.events'), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * The command of one JobSet rank, as gang-rank runs a rank on VMs: a python script under torchrun (with
 * the image's own python: `python3` from PATH unless the command names one), anything else as is.
 * Sets MLINFRA_GANG_ATTEMPT (1-based) from JobSet's restart attempt.
 */
export function multiNodeArgv(argv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const attempt = Number(env.MLINFRA_JOBSET_RESTART_ATTEMPT ?? 0) + 1;
  env.MLINFRA_GANG_ATTEMPT = String(Number.isFinite(attempt) ? attempt : 1);
  const cmd = rankCommand([...argv], {
    gang: env.MLINFRA_GANG_ID ?? 'gang', attempt: Number(env.MLINFRA_GANG_ATTEMPT), nodes: Number(env.MLINFRA_NNODES),
    gpusPerNode: Number(env.MLINFRA_GPUS_PER_NODE ?? 0), rank: Number(env.MLINFRA_NODE_RANK ?? 0), endpoint: env.MLINFRA_RDZV_ENDPOINT ?? '',
  });
  if (cmd === argv || cmd.length === argv.length) return [...argv];
  cmd[0] = /(^|\/)python3?(\.\d+)?$/.test(argv[0]) ? argv[0] : 'python3';
  return cmd;
}

export async function runWrapped(o: WrapOptions): Promise<WrapResult> {
  if (!o.argv.length || !o.argv[0]) throw new Error('k8s-wrap: a command is required after --');
  const env: NodeJS.ProcessEnv = { ...(o.env ?? process.env) };
  const termLog = o.terminationLog ?? env.MLINFRA_TERMINATION_LOG ?? TERMINATION_LOG;
  const cgroupDir = o.cgroupDir ?? '/sys/fs/cgroup';
  const signals = o.signals ?? process;
  const out = o.stdout ?? process.stdout;
  const err = o.stderr ?? process.stderr;
  // Indexed Jobs: the completion index is the batch shard and, in a JobSet, the node rank.
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    env.MLINFRA_SHARD_INDEX = env.JOB_COMPLETION_INDEX;
    if (env.MLINFRA_NNODES) env.MLINFRA_NODE_RANK = env.JOB_COMPLETION_INDEX;
  }
  // A JobSet rank: the multi-node contract (contracts/pipeline-spec.ts), a `.py` command under torchrun.
  const argv = Number(env.MLINFRA_NNODES) > 1 ? multiNodeArgv(o.argv, env) : [...o.argv];

  // Checkpoints live in the artifact store; the job sees a local directory.
  const storage = new Storage();
  const ckptUri = env.MLINFRA_CHECKPOINT_URI;
  let restored = 0;
  if (ckptUri) {
    const dir = env.MLINFRA_CHECKPOINT_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-checkpoint-'));
    fs.mkdirSync(dir, { recursive: true });
    env.MLINFRA_CHECKPOINT_DIR = dir;
    restored = await storage.getDir(ckptUri, dir);
  }

  // A pipeline step escalated to this cluster (onOom) names the run directory's copy in the store:
  // another host's run directory is not here, so bring it to MLINFRA_RUN_DIR before the step starts.
  let runDirFiles = 0;
  if (env.MLINFRA_RUN_DIR_URI && env.MLINFRA_RUN_DIR) {
    fs.mkdirSync(env.MLINFRA_RUN_DIR, { recursive: true });
    runDirFiles = await storage.getDir(env.MLINFRA_RUN_DIR_URI, env.MLINFRA_RUN_DIR);
  }
  // A pipeline step on Kubernetes: what it saw, so only its own new or changed files go back (step-files.ts).
  // Of a JobSet's ranks only node rank 0 sends files back: one writer per step prefix.
  const outputUri = env[STEP_OUTPUT_ENV] && env.MLINFRA_RUN_DIR && Number(env.MLINFRA_NODE_RANK ?? 0) === 0 ? env[STEP_OUTPUT_ENV] : undefined;
  const seen = outputUri ? digestDir(env.MLINFRA_RUN_DIR!) : undefined;

  const oomBefore = oomKills(cgroupDir);
  let tail = '';
  let stoppedBy: 'preemption' | undefined;
  const child = spawn(argv[0], argv.slice(1), { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => out.write(c));
  child.stderr!.on('data', (c: Buffer) => {
    err.write(c);
    tail = (tail + c.toString('utf8')).slice(-TAIL_BYTES);
  });
  let killTimer: NodeJS.Timeout | undefined;
  const onTerm = () => {
    if (stoppedBy) return;
    stoppedBy = 'preemption';
    try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ }
    killTimer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, o.graceMs ?? 75_000);
  };
  signals.on('SIGTERM', onTerm);
  const spawnError = await new Promise<string | undefined>((resolve) => {
    child.once('error', (e) => resolve(e.message));
    child.once('spawn', () => resolve(undefined));
  });
  const { code, signal } = spawnError ? { code: null, signal: null }
    : await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (c, s) => resolve({ code: c, signal: s })));
  signals.off('SIGTERM', onTerm);
  if (killTimer) clearTimeout(killTimer);
  // 'exit' can come before the last stderr bytes are read (the OOM line is often the last line).
  // Wait for the pipes to end, but not for a stray grandchild that still holds them open.
  if (!spawnError) {
    const ended = Promise.all([finished(child.stdout!), finished(child.stderr!)]).catch(() => undefined);
    const bound = new AbortController();
    await Promise.race([ended, sleep(2_000, undefined, { signal: bound.signal }).catch(() => undefined)]);
    bound.abort();
  }

  let failure = classifyExit({
    exitCode: code, signal, stderrTail: tail, spawnError, stoppedBy,
    kernelOomKill: oomKills(cgroupDir) > oomBefore,
  });
  if (failure?.class === 'preempted') failure = { class: 'preempted', reason: 'the pod was asked to stop (eviction, preemption or Kueue eviction): the job was sent SIGTERM' };

  let saved = 0;
  if (ckptUri && env.MLINFRA_CHECKPOINT_DIR) {
    try {
      saved = await storage.putDir(env.MLINFRA_CHECKPOINT_DIR, ckptUri);
    } catch (e) {
      err.write(`mlinfra k8s-wrap: checkpoint upload to ${ckptUri} failed: ${(e as Error).message}\n`);
    }
  }
  let exitCode = spawnError ? 127 : code ?? 128 + (signal ? (os.constants.signals as Record<string, number>)[signal] ?? 0 : 0);
  let outputFiles = 0;
  // Only a success sends files back: a failed attempt's partial files must not reach the next steps.
  if (outputUri && seen && exitCode === 0 && !failure) {
    try {
      outputFiles = await uploadStepOutputs(storage, env.MLINFRA_RUN_DIR!, seen, outputUri);
    } catch (e) {
      // The step's files would be lost to the steps after it: the step fails (and retries), saying why.
      failure = { class: 'exit', reason: `the step succeeded but its run-directory files could not be uploaded to ${outputUri}: ${(e as Error).message}` };
      err.write(`mlinfra k8s-wrap: ${failure.reason}\n`);
      exitCode = 1;
    }
  }
  try {
    fs.writeFileSync(termLog, JSON.stringify(failure ?? { class: null, reason: 'succeeded' }));
  } catch (e) {
    err.write(`mlinfra k8s-wrap: cannot write ${termLog}: ${(e as Error).message}\n`);
  }
  return { exitCode, failure, checkpointFiles: { restored, saved }, runDirFiles, outputFiles };
}
