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
import { classifyExit } from '../failure';
import { Storage } from '../storage';
import type { Failure } from '../types';
import { TERMINATION_LOG } from './objects';

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

  const oomBefore = oomKills(cgroupDir);
  let tail = '';
  let stoppedBy: 'preemption' | undefined;
  const child = spawn(o.argv[0], o.argv.slice(1), { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
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
  try {
    fs.writeFileSync(termLog, JSON.stringify(failure ?? { class: null, reason: 'succeeded' }));
  } catch (e) {
    err.write(`mlinfra k8s-wrap: cannot write ${termLog}: ${(e as Error).message}\n`);
  }
  const exitCode = spawnError ? 127 : code ?? 128 + (signal ? (os.constants.signals as Record<string, number>)[signal] ?? 0 : 0);
  return { exitCode, failure, checkpointFiles: { restored, saved }, runDirFiles };
}
